"""The VIFB convention: VIFB's 13 metrics with VIFB's definitions, colour handling and column names.

VIFB (X. Zhang, P. Ye, G. Xiao, "VIFB: A Visible and Infrared Image Fusion Benchmark", CVPR Workshops 2020;
github.com/xingchenzhang/VIFB @ 22b2ea9, ``compute_metrics.m`` and ``metrics/metrics<Name>.m``) calls every metric
as ``metrics<Name>(imgVI, imgIR, fused)`` on what MATLAB's ``imread`` returns: uint8 arrays, colour files kept as
three channels (a JPEG stored with three components stays 3-channel even when it looks gray). Its colour rule, the
block at the top of most metrics*.m:

- fused image colour: the metric is computed on each channel k with VI channel k and IR channel k (the whole IR
  image when it has one channel) and the three values are averaged;
- fused image gray: computed once; colour sources are converted with ``rgb2gray`` inside the metric: rounded to
  uint8 (Cross_entropy, Mutinf, Ssim: the source is still uint8 there) or not (Psnr, Rmse, Qabf: the source was cast
  to double first). VIFB's MATLAB stops with an error for Qcb and Qcv there and for a gray VI with a colour fused
  image; this module uses the unrounded ``rgb2gray`` and the gray VI for every channel in those cases.

Metrics (per channel; F fused, V visible, I infrared; values 0..255):

| column | definition (VIFB file) | better |
|---|---|---|
| Cross_entropy | (CE(V,F) + CE(I,F)) / 2, CE = sum p_S log2(p_S/p_F) where both > 0 (:func:`extras.CE`) | lower |
| Entropy | -sum p log2 p of the 256-bin histogram of floor(F) | higher |
| Mutinf | MI(V,F) + MI(I,F), nats, after min-max scaling each image to int16(255 (x - min)/(max - min)) | higher |
| Psnr | 20 log10(255 / sqrt(MES)), MES = (e(V,F) + e(I,F)) / 2, e(S,F) = sqrt(sum (S-F)^2) / (H W) | higher |
| Avg_gradient | sum sqrt((Gx^2 + Gy^2) / 2) / ((H-1)(W-1)), MATLAB ``gradient`` (= AG H W / ((H-1)(W-1))) | higher |
| Edge_intensity | mean of the replicate-border Sobel magnitude (:func:`extras.EI`) | higher |
| Qabf | Xydeas-Petrovic, Sobel with zero padding, L = 1 (exactly the paper convention's :func:`Qabf`) | higher |
| Variance | population standard deviation of F (the suite's :func:`SD`), despite the name | higher |
| Spatial_frequency | sqrt((sum dx^2 + sum dy^2) / (H W')), F seen as H x W' (W' = 3W, channels side by side) | higher |
| Rmse | MES as in Psnr (= mean over sources of RMSE(S,F) / sqrt(H W)) | lower |
| Ssim | SSIM(V,F) + SSIM(I,F), 11 x 11 Gaussian (1.5), L = 255, valid (= 2 x :func:`SSIM_gauss255`) | higher |
| Qcb | Chen-Blum (:func:`perceptual.Qcb`) | higher |
| Qcv | Chen-Varshney (:func:`perceptual.Qcv`) | lower |

Spatial_frequency is not averaged per channel: metricsSpatial_frequency.m runs ``[m, n] = size(fused)`` on the
H x W x 3 array, which makes n = 3W, and walks the three channels as one H x 3W image (the two seams included).
"""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from torch import Tensor

from mmdrfuse.metrics import _native, extras, perceptual
from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics._primitives import check_dtype, check_images, histogram256, joint_histogram256, reduce
from mmdrfuse.metrics.matlab import rgb2gray
from mmdrfuse.metrics.ssim import GAUSS_WINDOW
from mmdrfuse.metrics.statistics import mutual_information


@dataclass(frozen=True, kw_only=True)
class VifbMetric:
    """One VIFB column: ``fn(ctx)`` gives one value per gray channel image of the Batch (or, with ``whole``, takes
    the N x C x H x W fused tensor itself); ``gray`` says how colour sources become gray when F is gray."""

    fn: Callable[..., Tensor]
    higher_is_better: bool
    description: str  # one line
    gray: str | None = None  # "uint8" (rgb2gray rounded), "double" (unrounded); None: the fused image only
    min_size: int = 1
    whole: bool = False  # computed on the whole N x C x H x W fused tensor, not per channel
    group: str | None = None  # the group of _native.vifb_stats that computes it with the C kernels


# ---------------------------------------------------------------------------------------- per-channel values
def _registered(name: str) -> Callable[[Batch], Tensor]:
    def fn(ctx: Batch) -> Tensor:
        from mmdrfuse import metrics as M  # the registry (imported late: it imports this module)

        return M.get(name).impl(ctx)
    return fn


def _stat(ctx: Batch, key: str) -> Tensor:
    """A value of :func:`mmdrfuse.metrics._native.vifb_stats` (C kernel): one pass per Batch for the groups its
    metrics need (``ctx.vifb_groups``, set by :func:`compute_all`; all but MI otherwise)."""
    def make() -> dict[str, Tensor]:
        groups = getattr(ctx, "vifb_groups", None) or {"CE", "EN", "RMSE", "EI", "SD", "AG"}
        return _native.vifb_stats(ctx.f, ctx.a, ctx.b, ctx._native_shifts if "SD" in groups else None, groups)
    return perceptual.shared(ctx, "_vifb_stats", make)[key]


def _with_kernel(key: str, fallback: Callable[[Batch], Tensor]) -> Callable[[Batch], Tensor]:
    """The value from :func:`_stat` where the C kernels run (float64 CPU), else ``fallback`` (the torch path)."""
    def fn(ctx: Batch) -> Tensor:
        return _stat(ctx, key) if ctx.native else fallback(ctx)
    return fn


def _entropy(ctx: Batch) -> Tensor:
    if ctx.native:
        return _stat(ctx, "EN")
    h = histogram256(torch.floor(ctx.f).clamp_(0, 255).to(torch.int64)).to(ctx.dtype)
    p = h / h.sum(-1, keepdim=True)
    return -torch.where(p > 0, p * torch.log2(p), 0.0).sum(-1)


def _mutinf(ctx: Batch) -> Tensor:
    # metricsMutinf.m scales each image to int16(255 (x - min) / (max - min)) (0 for a constant image): the same
    # numbers as Qcb's and Qcv's normalize1 (shared), whose NaN for a constant non-zero image becomes 0 here
    if ctx.native:
        return _native.vifb_stats(*perceptual.normalized_slots(ctx), None, {"MI"})["MI"]
    levels = torch.nan_to_num(perceptual.normalized(ctx), nan=0.0).to(torch.int64)  # (3, N, H, W): F, A, B
    return mutual_information(joint_histogram256(levels[1:], levels[0]), ctx.dtype).sum(0)


def _mes(ctx: Batch) -> Tensor:
    """VIFB's 'mse': (e(V, F) + e(I, F)) / 2 with e = sqrt(sum of squares) / (H W) (once per Batch: Psnr and Rmse)."""
    h, w = ctx.f.shape[-2:]

    def make() -> Tensor:
        rmse = torch.stack([_stat(ctx, "RMSE_A"), _stat(ctx, "RMSE_B")]) if ctx.native else \
            extras.rmse_per_source(ctx)
        return rmse.mean(0) / math.sqrt(h * w)
    return perceptual.shared(ctx, "_vifb_mes", make)


def _psnr(ctx: Batch) -> Tensor:
    return 20.0 * torch.log10(255.0 / torch.sqrt(_mes(ctx)))


def _avg_gradient(ctx: Batch) -> Tensor:
    h, w = ctx.f.shape[-2:]
    ag = _stat(ctx, "AG") if ctx.native else _registered("AG")(ctx)
    return ag * (h * w / ((h - 1) * (w - 1)))


def _qabf(ctx: Batch) -> Tensor:
    if ctx.native:  # the gradient kernel without Nabf's terms (the same Qabf values)
        return _native.gradients(ctx.f, ctx.a, ctx.b, nabf=False)[0]
    return _registered("Qabf")(ctx)


def _ssim(ctx: Batch) -> Tensor:
    return 2.0 * _registered("SSIM_gauss255")(ctx)


def _spatial_frequency(f: Tensor) -> Tensor:
    """(N, C, H, W) -> (N,): the channels side by side as one H x CW image, sums divided by H CW."""
    if _native.usable(f):  # the C kernel: one pass, no side-by-side copy
        return _native.spatial_frequency_wide(f)
    n, c, h, w = f.shape
    x = f.permute(0, 2, 1, 3).reshape(n, h, c * w)
    dx = x[..., 1:] - x[..., :-1]
    dy = x[..., 1:, :] - x[..., :-1, :]
    return torch.sqrt(((dx * dx).sum((-2, -1)) + (dy * dy).sum((-2, -1))) / float(h * c * w))


VIFB_METRICS: dict[str, VifbMetric] = {
    "Cross_entropy": VifbMetric(fn=_with_kernel("CE", _registered("CE")), higher_is_better=False, gray="uint8",
                                group="CE",
                                description="(CE(V,F) + CE(I,F)) / 2 in bits, 256-bin histograms"),
    "Entropy": VifbMetric(fn=_entropy, higher_is_better=True, group="EN",
                          description="entropy of F's 256-bin histogram, bits"),
    "Mutinf": VifbMetric(fn=_mutinf, higher_is_better=True, gray="uint8",
                         description="MI(V,F) + MI(I,F) in nats, each image min-max scaled to 0..255 first"),
    "Psnr": VifbMetric(fn=_psnr, higher_is_better=True, gray="double", group="RMSE",
                       description="20 log10(255 / sqrt(MES)), MES = mean over sources of sqrt(SSE) / (H W)"),
    "Avg_gradient": VifbMetric(fn=_avg_gradient, higher_is_better=True, min_size=2, group="AG",
                               description="sum sqrt((Gx^2 + Gy^2) / 2) / ((H-1)(W-1)), MATLAB gradient"),
    "Edge_intensity": VifbMetric(fn=_with_kernel("EI", _registered("EI")), higher_is_better=True, group="EI",
                                 description="mean Sobel magnitude, replicated borders"),
    "Qabf": VifbMetric(fn=_qabf, higher_is_better=True, gray="double",
                       description="Xydeas-Petrovic Q^AB/F, Sobel with zero padding"),
    "Variance": VifbMetric(fn=_with_kernel("SD", _registered("SD")), higher_is_better=True, group="SD",
                           description="population standard deviation of F (VIFB's name)"),
    "Spatial_frequency": VifbMetric(fn=_spatial_frequency, higher_is_better=True, min_size=2, whole=True,
                                    description="sqrt((sum dx^2 + sum dy^2) / (H W')), channels side by side "
                                                "(W' = 3W)"),
    "Rmse": VifbMetric(fn=_mes, higher_is_better=False, gray="double", group="RMSE",
                       description="mean over sources of sqrt(SSE) / (H W) (= RMSE / sqrt(H W))"),
    "Ssim": VifbMetric(fn=_ssim, higher_is_better=True, gray="uint8", min_size=GAUSS_WINDOW,
                       description="SSIM(V,F) + SSIM(I,F), 11x11 Gaussian (1.5), L = 255"),
    "Qcb": VifbMetric(fn=_registered("Qcb"), higher_is_better=True, gray="double",
                      description="Chen-Blum perceptual metric (Z. Liu's metricChenBlum.m)"),
    "Qcv": VifbMetric(fn=_registered("Qcv"), higher_is_better=False, gray="double",
                      description="Chen-Varshney perceptual metric, 16x16 regions, alpha 5"),
}
NAMES: list[str] = list(VIFB_METRICS)


# ---------------------------------------------------------------------------------------------- names
def get(name: str) -> VifbMetric:
    """The VIFB metric called ``name``; an unknown name raises :class:`mmdrfuse.metrics.UnknownMetricError`."""
    spec = VIFB_METRICS.get(name)
    if spec is not None:
        return spec
    from mmdrfuse.metrics import UnknownMetricError

    folded = {k.lower(): k for k in VIFB_METRICS}
    hint = [folded[name.lower()]] if isinstance(name, str) and name.lower() in folded else \
        [folded[m] for m in difflib.get_close_matches(str(name).lower(), list(folded), n=3, cutoff=0.5)]
    msg = f"unknown VIFB metric {name!r}"
    msg += f"; did you mean {' or '.join(repr(h) for h in hint)}?" if hint else ""
    raise UnknownMetricError(msg + f" (available with --convention vifb: {', '.join(VIFB_METRICS)})")


def resolve(names: Iterable[str] | None) -> list[str]:
    """Validate VIFB names (None -> all 13 in VIFB's order), keeping order and dropping duplicates."""
    from mmdrfuse.metrics import resolve_names

    return resolve_names(names, NAMES, get)


def min_size(names: Iterable[str] | None = None) -> int:
    return max(get(n).min_size for n in resolve(names))


# ---------------------------------------------------------------------------------------------- reading
def read_vifb(path: str | os.PathLike) -> Tensor:
    """Read an image as MATLAB's ``imread`` gives it to VIFB: C x H x W uint8, C = 3 for colour files (a 3-component
    JPEG stays 3-channel), 1 for gray ones. Decoded with PIL (:func:`mmdrfuse.images.read_pil`; see docs/metrics.md for
    how its JPEG decoding compares with MATLAB's), except plain 8-bit gray/RGB PNG files, which the default
    convention's reader decodes (:mod:`mmdrfuse.metrics.reading`: the same pixels, faster)."""
    from mmdrfuse.images import read_pil
    from mmdrfuse.metrics.reading import _decode_png

    fast = _decode_png(path)  # a fresh array; PIL's is read-only, so copied
    t = torch.from_numpy(fast[0] if fast is not None else np.array(read_pil(path), dtype=np.uint8))
    return t[None] if t.dim() == 2 else t.permute(2, 0, 1).contiguous()


# ---------------------------------------------------------------------------------------------- computing
def _check(fused: Tensor, ir: Tensor, vis: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    out = []
    for name, x in (("fused", fused), ("ir", ir), ("vis", vis)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"{name}: expected shape N x C x H x W with C = 1 or 3, got {tuple(x.shape)}")
        out.append(x)
    f = out[0]
    for name, x in (("ir", out[1]), ("vis", out[2])):
        if x.shape[0] != f.shape[0] or x.shape[-2:] != f.shape[-2:]:
            raise ValueError(f"{name}: shape {tuple(x.shape)} does not match fused {tuple(f.shape)} (N, H, W)")
        if x.device != f.device:
            raise ValueError(f"{name}: device {x.device} differs from fused {f.device}")
    return out[0], out[1], out[2]


def _channel_labels(f: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """(3, N C) labels of the colour fused image's per-channel batch (see :attr:`Batch.labels`): F's channels are
    all distinct; a source with one channel, or with three equal ones, gives every channel of an image one label."""
    n, c = f.shape[:2]
    labels = torch.arange(3 * n * c).reshape(3, n, c)
    for role, x in ((1, a), (2, b)):
        for i in range(n):
            if x.shape[1] == 1 or all(torch.equal(x[i, 0], x[i, k]) for k in range(1, c)):
                labels[role, i] = labels[role, i, 0].item()
    return labels.reshape(3, n * c)


def compute_all(fused: Tensor, ir: Tensor, vis: Tensor, names: Iterable[str] | None = None, *,
                dtype: torch.dtype = torch.float64, reduction: str = "none") -> dict[str, Tensor]:
    """VIFB's metrics of N x C x H x W images (C = 1 or 3 per image, 0..255 as MATLAB's uint8 ``imread`` gives them;
    A = IR, B = VIS as in :func:`mmdrfuse.metrics.compute_all`): VIFB name -> Tensor (N values, or their mean
    with ``reduction="mean"``). ``names`` defaults to all 13 in VIFB's order. Per-channel work is batched: the three
    channels of a colour fused image are one batch of 3N gray images through the shared :class:`Batch`."""
    check_dtype(dtype)
    names = resolve(names)
    f, a, b = _check(fused, ir, vis)
    n, c, h, w = f.shape
    specs = {k: get(k) for k in names}
    need = max(s.min_size for s in specs.values())
    if min(h, w) < need:
        small = ", ".join(k for k, s in specs.items() if s.min_size > min(h, w))
        raise ValueError(f"fused: images of {h} x {w} are too small for {small} (need >= {need} x {need})")
    # each input converted to ``dtype`` and checked (finite, 0..255) once, for every metric and channel
    f64, a64, b64 = (check_images(x.reshape(-1, 1, h, w), dtype=dtype, names=(name,))[0].reshape(x.shape)
                     for name, x in (("fused", f), ("ir", a), ("vis", b)))
    colour_source = a.shape[1] == 3 or b.shape[1] == 3
    out: dict[str, Tensor] = {}
    contexts: dict[str, Batch] = {}

    def gray(x: Tensor, mode: str) -> Tensor:  # (n, C, h, w) -> (n, h, w): rgb2gray, rounded for "uint8"
        if x.shape[1] == 1:
            return x[:, 0]
        if _native.usable(x):  # the C kernel: the same bits
            return _native.rgb2gray(x, integer=(mode == "uint8"))
        return rgb2gray(x, integer=(mode == "uint8"))

    def context_key(mode: str | None) -> str:
        if c == 3:  # one context: channel k of F with channel k of each source (a gray source for every k)
            return "channels"
        # F alone (mode None) is the same in every context; the two conversions differ for colour sources only
        return "uint8" if mode == "uint8" and colour_source else "double"

    groups: dict[str, set[str]] = {}  # per context, what its one pass of the statistics kernel computes
    for spec in specs.values():
        if spec.group is not None:
            groups.setdefault(context_key(spec.gray), set()).add(spec.group)

    def context(mode: str | None) -> Batch:
        key = context_key(mode)
        if key not in contexts:
            if key == "channels":
                ak, bk = (x.expand(n, c, h, w).reshape(n * c, h, w) for x in (a64, b64))
                contexts[key] = Batch.trusted(f64.reshape(n * c, h, w), ak, bk)
                contexts[key].labels = _channel_labels(f, a, b)
            else:
                contexts[key] = Batch.trusted(f64[:, 0], gray(a64, key), gray(b64, key))
            contexts[key].vifb_groups = groups.get(key, set())
        return contexts[key]

    for k, spec in specs.items():
        if spec.whole:
            v = spec.fn(f64)
        else:
            v = spec.fn(context(spec.gray)).reshape(n, c).mean(1)
        out[k] = reduce(v, reduction)
    return out
