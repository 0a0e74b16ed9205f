"""Weights of the compared methods: the checkpoint file records (where a file goes, its public copy, its sha256),
reading a checkpoint into a network with one-line errors, and deterministic synthetic weights for checking an
architecture's wiring where no checkpoint is available."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmdrfuse.download import sha256_file
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.paths import weights_root as _weights_root


@dataclass(frozen=True)
class WeightFile:
    """One checkpoint file: where it goes under the weights root, where the public copy is, its sha256."""

    relpath: str  # relative to the weights root, e.g. "baselines/TarDAL/tardal.pt"
    url: str | None  # public raw-file address of the original repository (None: no reachable copy)
    sha256: str | None  # of the published file (None: never seen)
    source: str = ""  # "owner/repo@commit path" it was read from

    def path(self, weights_root: str | os.PathLike | None = None) -> Path:
        return _weights_root(weights_root) / self.relpath

    def missing_message(self, method: str, weights_root: str | os.PathLike | None = None) -> str:
        """One line: what is missing, where to put it, where to get it."""
        where = self.path(weights_root)
        get = f"download {self.url}" if self.url else "no public copy is reachable (see docs/baselines.md)"
        return (f"{method} weights not found: put {Path(self.relpath).name} at {where} ({get}; "
                f"or point --weights-root / MMDRFUSE_WEIGHTS at a folder holding {self.relpath})")


sha256_of = sha256_file  # the suite's one file hash (mmdrfuse.download)


def load_checkpoint(path: Path, method: str, key: str | None = None) -> dict[str, torch.Tensor]:
    """``torch.load`` a state_dict (optionally ``obj[key]``) on CPU; unreadable files become one-line errors."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or not a torch file
        raise MMDRFuseError(f"{path}: cannot read the {method} checkpoint ({exc.__class__.__name__}); "
                            "download it again") from None
    if key is not None and isinstance(obj, dict) and key in obj:
        obj = obj[key]
    if not isinstance(obj, dict):
        raise MMDRFuseError(f"{path}: not a {method} state_dict (got {type(obj).__name__}); download it again")
    return obj


def load_strict(net: nn.Module, state: dict[str, torch.Tensor], path: Path, method: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "key mismatch"
        raise MMDRFuseError(f"{path}: does not match the {method} architecture ({first}); "
                            "use the checkpoint named in docs/baselines.md") from None


def synthetic_state_dict(net_or_state: nn.Module | dict, gain: float) -> dict[str, torch.Tensor]:
    """Deterministic synthetic weights (check the architecture's wiring where no checkpoint is available).

    For each floating tensor (n elements, shape s): t = 0..n-1 (float64), u = frac(sin(12.9898 t + 78.233) *
    43758.5453); >= 2-D: (2u - 1) sqrt(3 gain / (n / s[0])); 1-D: 0.1 (2u - 1); cast to float32.
    """
    state = net_or_state.state_dict() if isinstance(net_or_state, nn.Module) else net_or_state
    out: dict[str, torch.Tensor] = {}
    for key, v in state.items():
        if not v.is_floating_point():
            out[key] = v.clone()
            continue
        n = v.numel()
        t = np.arange(n, dtype=np.float64)
        x = np.sin(12.9898 * t + 78.233) * 43758.5453
        u = x - np.trunc(x)
        u = np.where(u < 0, u + 1.0, u)
        if v.dim() >= 2:
            vals = (2 * u - 1) * np.sqrt(3.0 * gain / (n / v.shape[0]))
        else:
            vals = 0.1 * (2 * u - 1)
        out[key] = torch.from_numpy(vals.astype(np.float32)).reshape(v.shape)
    return out
