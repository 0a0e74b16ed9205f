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
:func:`read_eval_gray_u8` (what ``mmdrfuse evaluate`` reads with) decodes plain 8-bit gray or RGB PNG files with
OpenCV when it is installed (PNG is lossless: the same pixels, ~15% faster than PIL, and the GIL is released) and
converts colour in the C kernel of :mod:`._native` (the same arithmetic as :func:`gray_float_path` /
:func:`gray_uint8_path`); every other file goes through PIL as above.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

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


def _cv2():
    """OpenCV's module, or None when it is not installed (it is optional: ``pip install mmdrfuse[bench]``)."""
    global _CV2
    if _CV2 is False:
        try:
            import cv2
        except ImportError:
            cv2 = None
        _CV2 = cv2
    return _CV2


_CV2 = False  # not looked up yet


def _decode_png_cv2(path: str | os.PathLike) -> tuple[np.ndarray, bool] | None:
    """(pixels, is_colour) of a plain 8-bit gray or RGB PNG decoded by OpenCV (colour in BGR order), or None when
    the file is anything else (other formats, palettes, alpha, transparency, other bit depths), OpenCV is missing or
    its result does not have the shape PIL reports: the caller then decodes with PIL."""
    if Path(path).suffix.lower() != ".png" or _cv2() is None:
        return None
    try:
        with Image.open(path) as im:
            if im.format != "PNG" or im.mode not in ("L", "RGB") or "transparency" in im.info or len(im.tile) != 1:
                return None
            if im.tile[0][3] not in ("L", "RGB"):  # the raw mode: 8 bits per sample
                return None
            mode, (w, h) = im.mode, im.size
    except (OSError, ValueError, SyntaxError):
        return None  # PIL's own reading reports the error
    arr = _cv2().imread(os.fspath(path), _cv2().IMREAD_UNCHANGED)
    want = (h, w) if mode == "L" else (h, w, 3)
    if arr is None or arr.dtype != np.uint8 or arr.shape != want:
        return None
    return arr, mode == "RGB"


def read_eval_gray_u8(path: str | os.PathLike, convention: str = "float") -> np.ndarray:
    """:func:`read_eval_gray` as an H x W uint8 array (the same pixels): OpenCV decodes plain 8-bit PNG files when
    installed, the C kernel converts colour; otherwise PIL and the torch conversion."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    from mmdrfuse.metrics import _native

    fast = _decode_png_cv2(path) if Path(path).is_file() else None
    if fast is not None:
        arr, colour = fast
        bgr = True
    else:
        img = read_pil(path)  # BadInputError for missing or unreadable files
        arr, colour, bgr = np.array(img, dtype=np.uint8), img.mode != "L", False
    if not colour:
        return arr
    gray = _native.gray(arr, bgr, convention)
    if gray is not None:
        return gray
    rgb = torch.from_numpy(np.array(arr[..., ::-1] if bgr else arr))
    out = gray_float_path(rgb) if convention == "float" else gray_uint8_path(rgb)
    return out.numpy().astype(np.uint8)


def read_eval_gray(path: str | os.PathLike, convention: str = "float") -> torch.Tensor:
    """Read ``path`` as the authors' evaluator does: H x W float64 tensor of integers 0..255.

    ``convention``: ``"float"`` (the evaluator's float32 cvtColor, default) or ``"uint8"`` (OpenCV's uint8
    fixed-point cvtColor). Raises :class:`mmdrfuse.errors.BadInputError` for missing or unreadable files.
    """
    return torch.from_numpy(read_eval_gray_u8(path, convention).astype(np.float64))
