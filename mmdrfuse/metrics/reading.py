"""The authors' evaluator's reading convention: every image (fused and sources) -> 8-bit colour -> gray -> integers.

The evaluator reads with ``cv2.imread(path)`` (8-bit BGR; a gray file becomes three equal channels), casts to
float32, converts with ``cv2.cvtColor(..., COLOR_BGR2GRAY)`` and rounds to integers 0..255. OpenCV's float32
BGR2GRAY evaluates ``fma(R, 0.299f, fma(B, 0.114f, G * 0.587f))`` in float32; :func:`gray_float_path` reproduces that
bit for bit (checked against OpenCV on all 2^24 colours) without needing OpenCV. With it, the metrics reproduce
../shared/reference/metrics/reference_values.csv to ~1e-7 relative.

``convention="uint8"`` instead follows ``cv2.cvtColor`` on uint8 input, OpenCV's fixed-point path (OpenCV 5.0:
``(9798 R + 19235 G + 3735 B + 2^14) >> 15``, checked on all 2^24 colours; other OpenCV versions may round
differently on a few colours). The two conventions differ by one gray level on 22,111 of the 2^24 colours (0.13%;
297 of 89 million pixels in a sample of the shared data); both calibrate within the tolerance.

Files are decoded with PIL through :func:`mmdrfuse.io.read_pil` (8-bit L or RGB, alpha dropped, 16-bit scaled),
which decodes the shared PNG/JPEG files to the same pixels as ``cv2.imread``. Gray files are returned unchanged.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from mmdrfuse.io import read_pil

CONVENTIONS = ("float", "uint8")

# float32 constants of OpenCV's float BGR2GRAY and the 15-bit fixed-point ones of its uint8 path
_R32, _G32, _B32 = np.float32(0.299), np.float32(0.587), np.float32(0.114)
_R15, _G15, _B15 = 9798, 19235, 3735


def gray_float_path(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3) RGB -> float64 (...) integers: round(fma(R, .299f, fma(B, .114f, G * .587f))) in float32.

    The fused multiply-adds are emulated in float64: products of float32 values are exact there, and the single
    rounding to float32 afterwards matches OpenCV on every 8-bit colour.
    """
    x = rgb.to(torch.float64)
    r, g, b = x[..., 0], x[..., 1], x[..., 2]
    t = (g * float(_G32)).to(torch.float32).to(torch.float64)
    t = (b * float(_B32) + t).to(torch.float32).to(torch.float64)
    t = (r * float(_R32) + t).to(torch.float32).to(torch.float64)
    return torch.round(t)


def gray_uint8_path(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3) RGB -> float64 (...) integers with OpenCV 5's fixed-point BGR2GRAY."""
    x = rgb.to(torch.int64)
    y = (x[..., 0] * _R15 + x[..., 1] * _G15 + x[..., 2] * _B15 + (1 << 14)) >> 15
    return y.to(torch.float64)


def read_eval_gray(path: str | os.PathLike, convention: str = "float") -> torch.Tensor:
    """Read ``path`` as the authors' evaluator does: H x W float64 tensor of integers 0..255.

    ``convention``: ``"float"`` (the evaluator's float32 cvtColor, default) or ``"uint8"`` (OpenCV's uint8
    fixed-point cvtColor). Raises :class:`mmdrfuse.errors.BadInputError` for missing or unreadable files.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    img = read_pil(path)
    arr = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy())
    if img.mode == "L":
        return arr.to(torch.float64)
    return gray_float_path(arr) if convention == "float" else gray_uint8_path(arr)
