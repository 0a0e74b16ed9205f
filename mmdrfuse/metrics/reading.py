"""The authors' evaluator's reading convention: every image (fused and sources) -> 8-bit colour -> gray -> integers.

The evaluator reads with ``cv2.imread(path)`` (8-bit BGR; a gray file becomes three equal channels), casts to
float32, converts with ``cv2.cvtColor(..., COLOR_BGR2GRAY)`` and rounds to integers 0..255. OpenCV's float32
BGR2GRAY evaluates ``fma(R, 0.299f, fma(B, 0.114f, G * 0.587f))`` in float32; :func:`gray_float_path` reproduces that
bit for bit (checked against OpenCV on all 2^24 colours) without needing OpenCV. With it, the metrics reproduce
the values of the authors' evaluator on the same files to ~1e-7 relative.

``convention="uint8"`` instead follows ``cv2.cvtColor`` on uint8 input, OpenCV's fixed-point path (OpenCV 5.0:
``(9798 R + 19235 G + 3735 B + 2^14) >> 15``, checked on all 2^24 colours; other OpenCV versions may round
differently on a few colours). The two conventions differ by one gray level on 22,111 of the 2^24 colours (0.13%;
297 of 89 million pixels in a sample of the evaluation data sets); both calibrate within the tolerance.

Files are decoded with PIL through :func:`mmdrfuse.images.read_pil` (8-bit L or RGB, alpha dropped, 16-bit scaled),
which decodes the data sets' PNG/JPEG files to the same pixels as ``cv2.imread``. Gray files are returned unchanged.
:func:`read_eval_gray_u8` (what ``mmdrfuse evaluate`` reads with) decodes plain 8-bit gray or RGB PNG files itself
(PNG is lossless, so the pixels are PIL's: inflation by libdeflate when the system has it, else zlib, both without
the GIL; the scanline filters in C; ~1.4x faster than PIL or OpenCV with zlib, ~2.3x with libdeflate) and converts
colour in the C kernel of :mod:`._native` (the same arithmetic as :func:`gray_float_path` / :func:`gray_uint8_path`);
every other file goes through PIL as above.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import torch

from mmdrfuse.images import read_pil

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


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Inflater(threading.local):
    """zlib inflation with libdeflate when the system has it (2-3x faster than zlib; the same bytes: DEFLATE
    decoding is exact), else Python's zlib. Both release the GIL. One libdeflate decompressor per thread."""

    lib = None  # the libdeflate CDLL, False when looked up and absent

    def __init__(self):
        self.handle = None

    def __call__(self, data: bytes, size: int) -> np.ndarray | bytes | None:
        cls = type(self)
        if cls.lib is None:
            cls.lib = _libdeflate() or False
        if cls.lib:
            if self.handle is None:
                self.handle = cls.lib.libdeflate_alloc_decompressor()
            if self.handle:
                out = np.empty(size, dtype=np.uint8)
                n = ctypes.c_size_t(0)
                rc = cls.lib.libdeflate_zlib_decompress(self.handle, data, len(data), out.ctypes.data, size,
                                                        ctypes.byref(n))
                return out if rc == 0 and n.value == size else None
        try:
            raw = zlib.decompress(data, bufsize=size)
        except zlib.error:
            return None
        return raw if len(raw) == size else None


def _libdeflate():
    name = ctypes.util.find_library("deflate")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.libdeflate_alloc_decompressor.restype = ctypes.c_void_p
        lib.libdeflate_alloc_decompressor.argtypes = []
        lib.libdeflate_zlib_decompress.restype = ctypes.c_int
        lib.libdeflate_zlib_decompress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p,
                                                   ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    except (OSError, AttributeError):
        return None
    return lib


_inflate = _Inflater()


def _decode_png(path: str | os.PathLike) -> tuple[np.ndarray, bool] | None:
    """(pixels, is_colour) of a plain PNG: 8-bit gray or RGB, not interlaced (the evaluation data sets' and
    ``mmdrfuse fuse``'s files), decoded here: chunks parsed in Python, the image data inflated (libdeflate or zlib),
    the scanline filters undone in C. None for anything else (other PNG kinds, other formats, a broken or
    truncated file, a bad checksum outside the image data, no C kernels): the caller then uses PIL, whose
    pixels these equal (PIL does not check the image data's checksums either; transparency and colour-space chunks
    do not change the stored values, which is what PIL returns for L and RGB files)."""
    from mmdrfuse.metrics import _native

    if Path(path).suffix.lower() != ".png" or not _native.available():
        return None
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data.startswith(_PNG_SIGNATURE):
        return None
    pos, header, idat = 8, None, []
    while True:
        if pos + 12 > len(data):
            return None
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 12 + length
        if end > len(data):
            return None
        body = data[pos + 8:pos + 8 + length]
        if ctype == b"IDAT":
            idat.append(body)
        elif zlib.crc32(ctype + body) != struct.unpack(">I", data[end - 4:end])[0]:
            return None
        if header is None:
            if ctype != b"IHDR" or length != 13:
                return None
            header = struct.unpack(">IIBBBBB", body)
        if ctype == b"IEND":
            break
        pos = end
    width, height, depth, colour, compression, filtering, interlace = header
    if depth != 8 or colour not in (0, 2) or compression or filtering or interlace or not (idat and width and height):
        return None
    channels = 3 if colour == 2 else 1
    raw = _inflate(b"".join(idat), height * (1 + width * channels))
    if raw is None:
        return None
    pixels = _native.png_unfilter(raw, height, width, channels)
    return None if pixels is None else (pixels, channels == 3)


def read_eval_gray_u8(path: str | os.PathLike, convention: str = "float") -> np.ndarray:
    """:func:`read_eval_gray` as an H x W uint8 array (the same pixels): plain 8-bit PNG files decoded by
    :func:`_decode_png`, colour converted by the C kernel; otherwise PIL and the torch conversion."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    from mmdrfuse.metrics import _native

    fast = _decode_png(path)
    if fast is not None:
        arr, colour = fast
        bgr = False
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
