"""Fusion methods and one pair: :class:`MMDRFuseMethod`, :func:`get_method` and ``mmdrfuse.fuse_pair``.

A *method* is anything with ``fuse(ir, vis) -> Tensor`` (N x 1 x H x W gray in [0, 1] in, float image out) and
``to_uint8(out) -> uint8 H x W``: :class:`MMDRFuseMethod` wraps a student/teacher checkpoint (minmax or clamp saving);
the compared methods come from the packages registered in :mod:`mmdrfuse.methods`. Folders (and the ``mmdrfuse fuse``
command) are in :mod:`mmdrfuse.folders`.
"""
from __future__ import annotations

import functools
import os
from typing import Callable

import numpy as np
import torch
from PIL import Image

from mmdrfuse import images
from mmdrfuse.errors import BadInputError, MMDRFuseError, NonFiniteError


class MMDRFuseMethod:
    """An MMDRFuse network (student or teacher) as a fusion method, using the fast inference path when it can."""

    name = "MMDRFuse"
    # In a read-fuse-write pipeline (mmdrfuse.folders) the student's fast kernel runs on one thread while the readers
    # and writers use the other cores: measured on 361 MSRS pairs, 2 cores, 2 I/O threads: 11.5-11.9 ms per pair
    # against 16.0-18.4 ms with the kernel on 2 threads (its OpenMP team waits for cores the decoders hold).
    # None (torch's threads) for networks without the kernel (the teacher).
    pipeline_threads: int | None = None

    def __init__(self, model: torch.nn.Module, save: str = "minmax", fast: bool = True, info: dict | None = None):
        if save not in images.SAVE_MODES:
            raise MMDRFuseError(f"unknown --save {save!r}; expected one of {', '.join(images.SAVE_MODES)}")
        bad = [n for n, t in model.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:
            raise NonFiniteError(f"the model's weights hold NaN or inf values ({', '.join(bad[:3])}); "
                                 "the checkpoint is corrupt or training diverged")
        self.model = model.eval()
        self.save = save
        self.info = info or {}
        self._forward: Callable[[torch.Tensor], torch.Tensor] = self.model
        if fast:
            try:
                from mmdrfuse.fast import accelerate
            except ImportError:
                pass
            else:
                self._forward = accelerate(self.model)
                self.pipeline_threads = None if self._forward is self.model else 1

    @classmethod
    def from_weights(cls, weights: str | os.PathLike = "official-student", device: str | torch.device = "cpu",
                     weights_root: str | os.PathLike | None = None, save: str = "minmax", fast: bool = True):
        from mmdrfuse.checkpoints import load_model

        model, info = load_model(weights, device=device, weights_root=weights_root, with_info=True)
        return cls(model, save=save, fast=fast, info=info)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.inference_mode()
    def fuse(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        x = images.stack_inputs(ir, vis).to(self.device, torch.float32)
        return self._forward(x)

    def to_uint8(self, out: torch.Tensor) -> np.ndarray:
        return images.to_uint8(out, self.save)


def get_method(method: str = "mmdrfuse", *, weights: str | os.PathLike = "official-student",
               weights_root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               save: str = "minmax"):
    """``mmdrfuse`` (with ``weights``) or the name of a registered method (:mod:`mmdrfuse.methods`)."""
    from mmdrfuse import methods

    if method.lower() == methods.CORE:
        return MMDRFuseMethod.from_weights(weights, device=device, weights_root=weights_root, save=save)
    return methods.spec(method).build(device=torch.device(device), weights_root=weights_root)


# ---------------------------------------------------------------------------------------------- single pair
def _array_to_unit(x: np.ndarray, role: str) -> np.ndarray:
    """A numeric array -> float32 in [0, 1]: uint8 / 255, uint16 scaled to 8 bit as files are, floats as they are
    (they must lie in [0, 1]). Other dtypes are refused: an int64 array of 0..255 is ambiguous, so it is not guessed."""
    if x.dtype == np.uint8:
        return x.astype(np.float32) / np.float32(255.0)
    if x.dtype == np.uint16:
        return np.rint(x.astype(np.float64) / 257.0).astype(np.float32) / np.float32(255.0)
    if x.dtype in (np.float16, np.float32, np.float64):
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise NonFiniteError(f"{role} input holds NaN or inf values")
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise BadInputError(f"{role} input: float values must lie in [0, 1], got [{lo:g}, {hi:g}]; "
                                "divide by 255 (8-bit data) or pass a uint8 array")
        return x
    raise BadInputError(f"{role} input has dtype {x.dtype}; pass uint8 or uint16 images, or floats in [0, 1]")


def _as_gray_tensor(x, role: str, color: bool = False) -> tuple[torch.Tensor, np.ndarray | None]:
    """Path / PIL image / array / tensor -> (1 x 1 x H x W float32 in [0, 1], CbCr or None).

    Colour (H x W x 3 / 4) input must be uint8; with ``color`` the visible image gives its Y and CbCr (PIL YCbCr),
    otherwise it is made gray with PIL's ``convert("L")``, exactly as files are read.
    """
    if isinstance(x, (str, os.PathLike)):
        arr = images.read_array(x)
    elif isinstance(x, Image.Image):
        arr = np.asarray(x if x.mode in ("L", "RGB") else x.convert("RGB"), np.uint8)
    elif isinstance(x, (np.ndarray, torch.Tensor)):
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
        if arr.ndim == 3 and arr.shape[-1] in (3, 4) and arr.shape[0] not in (1,):
            if arr.dtype != np.uint8:
                raise BadInputError(f"{role} input: colour arrays (H x W x {arr.shape[-1]}) must be uint8, got {arr.dtype}")
            arr = np.ascontiguousarray(arr[..., :3])
        else:
            squeezed = arr.reshape(arr.shape[-2:]) if arr.ndim >= 2 and int(np.prod(arr.shape[:-2])) == 1 else None
            if squeezed is None:
                raise BadInputError(f"{role} input must be one gray image (H x W, 1 x H x W or 1 x 1 x H x W) or "
                                    f"H x W x 3 uint8 colour, got shape {tuple(arr.shape)}")
            return torch.from_numpy(np.ascontiguousarray(_array_to_unit(squeezed, role)))[None, None], None
    else:
        raise BadInputError(f"cannot read {role} input of type {type(x).__name__}")
    if color:
        return images.split_ycbcr(arr)
    return images.u8_to_tensor(images.gray_u8(arr)), None


_MIN_SIDE = 2  # the student's reflection padding needs two pixels per side


def check_min_size(shape, where: str, min_side: int = _MIN_SIDE) -> None:
    h, w = int(shape[-2]), int(shape[-1])
    if h < min_side or w < min_side:
        raise BadInputError(f"{where}: {w}x{h} is too small to fuse (at least {min_side}x{min_side} pixels)", where)


def check_device(device: str | torch.device) -> torch.device:
    """A torch device that exists here, or one line saying why not."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise MMDRFuseError(f"--device {device!r}: {str(exc).splitlines()[0]}; use cpu or cuda[:N]") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise MMDRFuseError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise MMDRFuseError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif dev.type != "cpu":
        raise MMDRFuseError(f"--device {device}: only cpu and cuda are supported")
    return dev


@functools.lru_cache(maxsize=4)
def _cached_method(weights: str, path: str, mtime_ns: int, size: int, device: str, save: str) -> "MMDRFuseMethod":
    """Loaded methods keyed by the checkpoint file's identity (path, mtime, size): a changed file loads again."""
    return MMDRFuseMethod.from_weights(weights, device=device, save=save)


def _method_for(weights, device, save) -> "MMDRFuseMethod":
    from mmdrfuse.checkpoints import resolve

    path = resolve(weights)
    st = path.stat()
    return _cached_method(str(weights), str(path), st.st_mtime_ns, st.st_size, str(check_device(device)), save)


def fuse_pair(ir, vis, *, method=None, weights: str | os.PathLike = "official-student", color: bool = False,
              save: str = "minmax", device: str | torch.device = "cpu") -> np.ndarray:
    """Fuse one pair (paths, PIL images, arrays or tensors) and return the 8-bit image.

    Accepted inputs: file paths; PIL images; uint8 / uint16 arrays or tensors (gray H x W, or colour H x W x 3);
    float arrays or tensors with values in [0, 1] (gray only). Anything else raises :class:`BadInputError`.
    Gray H x W by default; with ``color`` the visible image's Y channel is fused and recombined with its CbCr
    (H x W x 3). ``method`` is a fusion method object (default: MMDRFuse with ``weights``, loaded once and reused
    while the checkpoint file is unchanged).
    """
    m = method or _method_for(weights, device, save)
    a, _ = _as_gray_tensor(ir, "ir")
    b, cbcr = _as_gray_tensor(vis, "vis", color=color)
    if a.shape[-2:] != b.shape[-2:]:
        raise BadInputError(f"size mismatch: ir {tuple(a.shape[-2:])} vs vis {tuple(b.shape[-2:])}")
    check_min_size(a.shape, "input")
    y8 = m.to_uint8(m.fuse(a, b))
    return np.asarray(images.recombine_color(y8, cbcr)) if (color and cbcr is not None) else y8
