"""Shared machinery of the compared methods: specs, the FusionMethod interface, reading quirks, 8-bit output.
The weights (files, checkpoints, synthetic weights) are in baselines/weights.py, MAC counting in baselines/macs.py;
both are re-exported here.

Conventions (the suite's core conventions, ``mmdrfuse.images``):

- ``fuse(ir, vis)`` takes N x 1 x H x W float gray images in [0, 1] (IR or MRI first) and returns the fused image
  as float in [0, 1] *after* the method's own output convention (TarDAL's clip, MUFusion's per-image bytescale,
  LRRNet's min-max, ...) and *before* 8-bit quantisation. ``to_uint8(fused)`` applies the original's rounding or
  truncation and returns an H x W uint8 array.
- Colour is handled by the caller: fuse the Y channel of the visible / PET / SPECT image and recombine its CbCr
  (``mmdrfuse.images.read_ycbcr`` + ``recombine_color``). No method here recombines colour itself.
- ``preprocess(ir_path, vis_path)`` reads a pair the way the original code does (OpenCV gray, resizing, ...);
  the default is the core's reading (PIL ``convert("L")`` / 255).
- ``num_params()`` = sum of ``numel`` over ``parameters()`` (MMDRFuse Table 3), ``size_kb()`` = params x bytes /
  1024 (8 bytes for MUFusion, which runs in float64), ``macs(h, w)`` = thop 0.1.1's MAC count of one forward at
  h x w, reproduced by :func:`count_macs` on a meta-device copy of the network (no memory, no time).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from baselines.macs import MacsReport, count_macs
from baselines.weights import WeightFile, load_checkpoint, load_strict, sha256_of, synthetic_state_dict
from mmdrfuse.errors import BadInputError, MMDRFuseError, NonFiniteError
from mmdrfuse.names import unknown
from mmdrfuse.paths import weights_root as _weights_root

__all__ = [  # what the methods and the tests import from here (the last line: re-exported from weights, macs)
    "FusionMethod", "LearnedMethod", "MethodSpec", "PaperRow", "did_you_mean", "check_inputs", "read_pil_gray",
    "read_cv2_gray", "uint8_round_half_even", "uint8_truncate", "uint8_round_half_up",
    "WeightFile", "load_checkpoint", "load_strict", "sha256_of", "synthetic_state_dict", "MacsReport", "count_macs",
]


# ----------------------------------------------------------------------------------------------------- spec
@dataclass(frozen=True)
class PaperRow:
    """MMDRFuse Table 3 as printed (paper values; only for columns labelled ``paper``)."""

    size_kb: float
    gflops: float
    time_ms: float


@dataclass(frozen=True)
class MethodSpec:
    """A registry entry. ``build(device, weights_root)`` returns a ready :class:`FusionMethod`."""

    name: str  # registry key, lower case
    display: str  # the name used in the paper's tables ("MUFusion")
    kind: str  # "learned" | "classical"
    citation: str
    venue: str  # as in MMDRFuse Table 3, e.g. "22' CVPR" ("" for classical methods)
    factory: Callable[..., "FusionMethod"] = field(repr=False)
    weights: tuple[WeightFile, ...] = ()
    note: str = ""  # why it cannot run here (or what differs from the original), if anything
    table3: bool = False  # the entry that stands for its method in Table 3 (one per method)
    paper: PaperRow | None = None
    requires: tuple[str, ...] = ()  # extra files needed at inference besides the weights (relative to weights root)

    def build(self, device: str | torch.device = "cpu", weights_root: str | os.PathLike | None = None, *,
              weights: bool = True, **options) -> "FusionMethod":
        """Instantiate the method on ``device``.

        ``weights=False`` gives the architecture only (random init; enough for params / size / MACs); ``fuse`` then
        refuses to run. With ``weights=True`` a missing checkpoint, or one whose sha256 differs from the published
        file's, raises :class:`MMDRFuseError` (a misplaced file never fuses silently).
        """
        if weights:
            for path, ok in self.verify(weights_root):
                if ok is False:
                    raise MMDRFuseError(f"{path}: not {self.display}'s published weights (sha256 differs); replace "
                                        "the file with the published one")
        return self.factory(spec=self, device=torch.device(device), weights_root=weights_root,
                            load_weights=weights, **options)

    def weight_paths(self, weights_root: str | os.PathLike | None = None) -> list[Path]:
        return [w.path(weights_root) for w in self.weights]

    def status(self, weights_root: str | os.PathLike | None = None) -> str | None:
        """``None`` when the method can produce fused images here, else the one-line reason why not."""
        for w in self.weights:
            if not w.path(weights_root).is_file():
                if w.sha256 is None and self.note:  # never published in a reachable place
                    return f"{self.note}; a copy placed at {w.path(weights_root)} would be used"
                return w.missing_message(self.display, weights_root)
        for rel in self.requires:
            if not (_weights_root(weights_root) / rel).is_file():
                return self.note or f"{self.display}: {rel} missing under the weights root"
        return None

    def verify(self, weights_root: str | os.PathLike | None = None) -> list[tuple[Path, bool | None]]:
        """sha256 check of each present weights file: (path, True/False), or (path, None) when absent/unknown."""
        out = []
        for w in self.weights:
            p = w.path(weights_root)
            out.append((p, None if (not p.is_file() or w.sha256 is None) else sha256_of(p) == w.sha256))
        return out


def did_you_mean(name: str, choices: Iterable[str], what: str = "method") -> MMDRFuseError:
    return unknown(what, name, choices)


# -------------------------------------------------------------------------------------------- reading quirks
def read_pil_gray(path: str | os.PathLike) -> torch.Tensor:
    """The core convention (PIL ``L`` / 255), also scipy.misc.imread(mode='L') as MUFusion reads."""
    from mmdrfuse.images import read_gray

    return read_gray(path)


def read_cv2_gray(path: str | os.PathLike, via_bgr: bool = False) -> torch.Tensor:
    """OpenCV gray / 255: ``imread(IMREAD_GRAYSCALE)`` or, with ``via_bgr``, colour read + ``BGR2GRAY``."""
    import cv2

    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: file not found", str(p))
    if via_bgr:
        arr = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if arr is not None:
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2GRAY)
    else:
        arr = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        raise BadInputError(f"{p}: OpenCV cannot read this image; replace or convert it", str(p))
    return torch.from_numpy(arr.astype(np.float32) / 255.0)[None, None]


def _check_pair(ir: torch.Tensor, vis: torch.Tensor, ir_path, vis_path) -> tuple[torch.Tensor, torch.Tensor]:
    if ir.shape[-2:] != vis.shape[-2:]:
        raise BadInputError(f"{vis_path}: size {tuple(vis.shape[-2:])} differs from {ir_path} "
                            f"{tuple(ir.shape[-2:])}; resize or register the pair first", str(vis_path))
    return ir, vis


# ------------------------------------------------------------------------------------------------ uint8 output
def _plane(fused: torch.Tensor) -> np.ndarray:
    f = fused.detach().to("cpu", torch.float64)
    if f.dim() > 2:
        if f.shape[:-2].numel() != 1:
            raise ValueError(f"to_uint8 expects one image (1 x 1 x H x W), got shape {tuple(fused.shape)}")
        f = f.reshape(f.shape[-2:])
    if not torch.isfinite(f).all():  # clip would turn NaN into black pixels silently
        raise NonFiniteError("the method produced NaN or inf values; check its weights and the input images")
    return f.numpy()


def uint8_round_half_even(fused: torch.Tensor) -> np.ndarray:
    """``uint8(rint(clip(255 x F, 0, 255)))`` (numpy/OpenCV rounding)."""
    return np.rint(np.clip(_plane(fused) * 255.0, 0, 255)).astype(np.uint8)


def uint8_truncate(fused: torch.Tensor) -> np.ndarray:
    """``(255 x F).astype(uint8)`` after clipping to [0, 255]: truncation toward zero."""
    return np.clip(_plane(fused) * 255.0, 0, 255).astype(np.uint8)


def uint8_round_half_up(fused: torch.Tensor) -> np.ndarray:
    """``uint8(clip(255 x F, 0, 255) + 0.5)`` (scipy's bytescale)."""
    return (np.clip(_plane(fused) * 255.0, 0, 255) + 0.5).astype(np.uint8)


def check_inputs(ir: torch.Tensor, vis: torch.Tensor, vis_channels: tuple[int, ...] = (1,)) -> None:
    """Shared input validation of ``fuse``: 4-D float tensors of equal N, H, W."""
    for name, t, chans in (("ir", ir, (1,)), ("vis", vis, vis_channels)):
        if not torch.is_tensor(t) or t.dim() != 4 or not t.is_floating_point():
            raise ValueError(f"{name} must be a float tensor N x C x H x W, got "
                             f"{getattr(t, 'shape', type(t).__name__)}")
        if t.shape[1] not in chans:
            raise ValueError(f"{name} must have {' or '.join(map(str, chans))} channel(s), got {t.shape[1]}")
    if ir.shape[0] != vis.shape[0] or ir.shape[-2:] != vis.shape[-2:]:
        raise ValueError(f"ir {tuple(ir.shape)} and vis {tuple(vis.shape)} differ in batch or size")


# ---------------------------------------------------------------------------------------------- FusionMethod
class FusionMethod:
    """Common interface; subclasses set ``supports_color`` and implement :meth:`fuse` and :meth:`to_uint8`."""

    supports_color = True  # through the caller's Y-channel fusion + CbCr recombination
    bytes_per_param = 4
    read_mode = "pil"  # "pil" (core), "cv2" (IMREAD_GRAYSCALE), "cv2-bgr2gray" (TarDAL's visible image)

    def __init__(self, spec: MethodSpec, device: torch.device):
        self.spec = spec
        self.name = spec.name
        self.device = device

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} on {self.device}>"

    def preprocess(self, ir_path: str | os.PathLike, vis_path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
        """Read a pair as the original code does (gray, [0, 1], 1 x 1 x H x W each)."""
        if self.read_mode == "pil":
            ir, vis = read_pil_gray(ir_path), read_pil_gray(vis_path)
        elif self.read_mode == "cv2":
            ir, vis = read_cv2_gray(ir_path), read_cv2_gray(vis_path)
        elif self.read_mode == "cv2-bgr2gray":
            ir, vis = read_cv2_gray(ir_path), read_cv2_gray(vis_path, via_bgr=True)
        else:  # pragma: no cover - programming error
            raise ValueError(self.read_mode)
        return _check_pair(ir, vis, ir_path, vis_path)

    def fuse(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def to_uint8(self, fused: torch.Tensor) -> np.ndarray:
        return uint8_round_half_even(fused)

    def num_params(self) -> int:
        return 0

    def size_kb(self) -> float:
        return self.num_params() * self.bytes_per_param / 1024.0

    def macs(self, h: int, w: int) -> int | None:
        """MACs of one forward at h x w; ``None`` for training-free methods (not a network)."""
        return None


class LearnedMethod(FusionMethod):
    """A network-backed method. Subclasses define ``make_net()``, ``raw(ir, vis)`` and ``macs_inputs(h, w)``."""

    dtype = torch.float32

    def __init__(self, spec: MethodSpec, device: torch.device, weights_root=None, load_weights: bool = True):
        super().__init__(spec, device)
        self.weights_root = weights_root
        self.net = self.make_net().to(device=device, dtype=self.dtype).eval()
        self.loaded = False
        self.weights_path: Path | None = None
        if load_weights:
            self.load_weights()

    # --- to override
    def make_net(self) -> nn.Module:
        raise NotImplementedError

    def state_from_checkpoint(self, path: Path) -> dict[str, torch.Tensor]:
        return load_checkpoint(path, self.spec.display)

    def macs_inputs(self, h: int, w: int, device: torch.device) -> tuple:
        """The inputs of the counted forward at h x w (the call thop.profile makes)."""
        raise NotImplementedError

    def raw(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """The network's output before the method's output convention."""
        raise NotImplementedError

    def postprocess(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    # --- common
    def weight_file(self) -> WeightFile:
        return self.spec.weights[0]

    def load_weights(self) -> None:
        wf = self.weight_file()
        path = wf.path(self.weights_root)
        if not path.is_file():
            raise MMDRFuseError(wf.missing_message(self.spec.display, self.weights_root))
        self.load_state_dict(self.state_from_checkpoint(path), path)

    def load_state_dict(self, state: dict[str, torch.Tensor], path: Path | str = "<state_dict>") -> None:
        """Strict load (any float dtype is cast to the method's precision); marks the method runnable."""
        load_strict(self.net, state, Path(path), self.spec.display)
        self.net.to(device=self.device, dtype=self.dtype)
        self.loaded = True
        self.weights_path = Path(path)

    def require_loaded(self) -> None:
        if not self.loaded:
            raise MMDRFuseError(self.spec.note or f"{self.spec.display}: built without weights (architecture "
                                "only); build with weights=True")

    def _inputs(self, ir: torch.Tensor, vis: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return ir.to(self.device, self.dtype), vis.to(self.device, self.dtype)

    @torch.no_grad()
    def fuse(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        check_inputs(ir, vis)
        self.require_loaded()
        out = self.postprocess(self.raw(*self._inputs(ir, vis)))
        return out.to(ir.device)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def count(self, h: int, w: int) -> "MacsReport":
        with torch.device("meta"):
            net = self.make_net()
        net = net.to(device="meta", dtype=self.dtype).eval()
        inputs = self.macs_inputs(h, w, torch.device("meta"))
        return count_macs(net, inputs)

    def macs(self, h: int, w: int) -> int:
        return self.count(h, w).macs
