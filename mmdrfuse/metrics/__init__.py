"""Fusion metrics with the paper's conventions, batched in torch.

Every metric is ``fn(fused, a, b, *, dtype=torch.float64, reduction="none") -> Tensor`` on N x 1 x H x W tensors
holding 0..255 values (A = IR/MRI, B = VIS/PET/SPECT), runs on the input's device and returns one value per image
(``reduction="none"``) or the batch mean (``"mean"``). Fused-only metrics (SD, EN, SF, AG) ignore ``a`` and ``b``.

- :data:`METRICS`: name -> :class:`MetricSpec`; :func:`get` looks a name up with a "did you mean" on typos.
- :data:`PAPER_METRICS`: the paper's six in its column order.
- :func:`compute_all`: several metrics at once, sharing intermediate maps (products, Sobel responses, levels).
- :mod:`mmdrfuse.metrics.reading`: the authors' evaluator's way of reading images.
- :data:`CONVENTIONS`: ``compute_all(..., convention="vifb")`` computes VIFB's 13 metrics with VIFB's definitions,
  colour handling and names instead (:mod:`mmdrfuse.metrics.vifb`).

Conventions, sources and the alternatives found in other codebases are documented in docs/metrics.md.
"""
from __future__ import annotations

import difflib
from typing import Callable, Iterable

import torch
from torch import Tensor

from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics._primitives import reduce
from mmdrfuse.metrics.registry import METRICS, MetricSpec, lead_with

# each metric is registered in the module that defines it (registry.register): importing the modules in this order
# fills METRICS in the order kept for the metrics that are not the paper's
from mmdrfuse.metrics import statistics, gradient, ssim, vif, extras, perceptual  # noqa: F401  (not sorted)
from mmdrfuse.metrics.extras import CE, EI, RMSE
from mmdrfuse.metrics.gradient import Nabf, Qabf
from mmdrfuse.metrics.perceptual import Qcb, Qcv
from mmdrfuse.metrics.ssim import SSIM, SSIM_dr255, SSIM_gauss255
from mmdrfuse.metrics.statistics import AG, CC, EN, MI, MSE, PSNR, SCD, SD, SF
from mmdrfuse.metrics.vif import VIF

PAPER_METRICS: list[str] = ["SD", "SCD", "VIF", "Qabf", "SSIM", "CC"]  # the paper's six, in its column order
EXTRA_METRICS: list[str] = ["EN", "SF", "AG", "MI", "PSNR", "MSE", "Nabf"]
DEFAULT_METRICS: list[str] = PAPER_METRICS + EXTRA_METRICS
lead_with(PAPER_METRICS)  # METRICS: the paper's six first, then the others in registration order


class UnknownMetricError(MMDRFuseError, KeyError):
    """An unknown metric name (a user error: one line, with the closest names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def get(name: str) -> MetricSpec:
    """The :class:`MetricSpec` registered as ``name``; unknown names raise :class:`UnknownMetricError` ("did you
    mean ...?", matching case-insensitively first)."""
    spec = METRICS.get(name)
    if spec is not None:
        return spec
    folded = {k.lower(): k for k in METRICS}
    if isinstance(name, str) and name.lower() in folded:
        hint = [folded[name.lower()]]
    else:
        hint = difflib.get_close_matches(str(name), list(METRICS), n=3, cutoff=0.5)
        hint += [folded[m] for m in difflib.get_close_matches(str(name).lower(), list(folded), n=3, cutoff=0.5)
                 if folded[m] not in hint]
    msg = f"unknown metric {name!r}"
    msg += f"; did you mean {' or '.join(repr(h) for h in hint[:3])}?" if hint else ""
    raise UnknownMetricError(msg + f" (available: {', '.join(METRICS)})")


def resolve_names(names: Iterable[str] | None, default: Iterable[str], lookup: Callable[[str], object]) -> list[str]:
    """Validate names with ``lookup`` (which raises on an unknown one); None -> ``default``; order kept, duplicates
    dropped. Shared by both conventions."""
    if names is None:
        return list(default)
    out: list[str] = []
    for n in names:
        lookup(n)
        if n not in out:
            out.append(n)
    if not out:
        raise ValueError("no metric names given")
    return out


def resolve(names: Iterable[str] | None) -> list[str]:
    """Validate a list of names (None -> :data:`DEFAULT_METRICS`), keeping order and dropping duplicates."""
    return resolve_names(names, DEFAULT_METRICS, get)


def min_size(names: Iterable[str] | None = None) -> int:
    """The smallest image side all the given metrics accept."""
    return max(get(n).min_size for n in resolve(names))


def compute_all(fused: Tensor, a: Tensor, b: Tensor, names: Iterable[str] | None = None, *,
                dtype: torch.dtype = torch.float64, reduction: str = "none",
                convention: str = "mmdrfuse") -> dict[str, Tensor]:
    """Compute several metrics on one batch, sharing work: name -> Tensor (N values, or a scalar with ``mean``).

    ``convention="vifb"``: VIFB's metrics instead, on N x C x H x W images (C = 1 or 3) with VIFB's names
    (:func:`mmdrfuse.metrics.vifb.compute_all`); see :data:`CONVENTIONS`.

    ``names`` defaults to the paper's six then the extras (:data:`DEFAULT_METRICS`). The inputs are validated
    once; products of the centred images are formed once for SSIM and VIF, the fused image's maps are filtered once
    for both sources, Sobel responses once for Qabf, and gray levels once for EN and MI.
    """
    if check_convention(convention) != "mmdrfuse":
        from mmdrfuse.metrics import vifb

        return vifb.compute_all(fused, a, b, names, dtype=dtype, reduction=reduction)
    names = resolve(names)
    need_sources = any(get(n).needs_sources for n in names)
    ctx = Batch(fused, a, b, dtype=dtype, min_size=min_size(names), need_sources=need_sources)
    return {n: reduce(get(n).impl(ctx), reduction) for n in names}


# ------------------------------------------------------------------------------------------- conventions
CONVENTIONS: dict[str, str] = {
    "mmdrfuse": "the MMDRFuse paper's evaluator (default): gray images, metrics SD, SCD, VIF, Qabf, SSIM, CC, ...",
    "vifb": "VIFB's MATLAB benchmark: colour per channel, VIFB's definitions and names Cross_entropy, ..., Qcv",
}


class UnknownConventionError(MMDRFuseError, ValueError):
    """An unknown metric convention (a user error: one line, with the closest names)."""


def check_convention(name: str) -> str:
    """``name`` if it is one of :data:`CONVENTIONS`, else :class:`UnknownConventionError` ("did you mean ...?")."""
    if name in CONVENTIONS:
        return name
    hint = difflib.get_close_matches(str(name).lower(), list(CONVENTIONS), n=2, cutoff=0.5)
    msg = f"unknown metric convention {name!r}"
    msg += f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
    raise UnknownConventionError(msg + f" (available: {', '.join(CONVENTIONS)})")


__all__ = ["METRICS", "PAPER_METRICS", "EXTRA_METRICS", "DEFAULT_METRICS", "MetricSpec", "UnknownMetricError", "get",
           "resolve", "min_size", "compute_all", "SD", "SCD", "VIF", "Qabf", "SSIM", "CC", "EN", "SF", "AG", "MI",
           "PSNR", "MSE", "Nabf", "SSIM_dr255", "SSIM_gauss255"]
__all__ += ["CE", "EI", "RMSE", "Qcb", "Qcv", "CONVENTIONS", "UnknownConventionError", "check_convention"]
