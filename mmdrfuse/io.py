"""Image I/O with the paper's conventions.

- Reading for fusion: any PNG/JPG/BMP/TIFF, 8- or 16-bit, gray/RGB/RGBA -> gray exactly as the authors read it,
  PIL ``convert("L")`` (ITU-R 601-2 luma, integer rounding), then /255 -> float32 in [0, 1]. 16-bit images are
  scaled to 8 bit first (``>> 8`` after PIL's own mode handling), so a 16-bit file and its 8-bit twin agree.
- Colour: fuse the Y channel of the visible (or PET/SPECT) image and recombine with its CbCr (PIL's JPEG YCbCr).
- Saving: ``minmax`` (the official convention, default): ``round((O - min) * 255 / (max - min))`` per image;
  ``clamp``: ``round(clip(O, 0, 1) * 255)``.
- Pairs are matched by file stem across folders (``00004N.png`` pairs with ``00004N.jpg``).

Medical pairs put the MRI in the IR slot and PET/SPECT in the visible slot.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mmdrfuse.atomic import atomic_path
from mmdrfuse.errors import BadInputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SAVE_MODES = ("minmax", "clamp")


# ----------------------------------------------------------------------------------------------------- reading
def _open(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: file not found", str(path))
    try:
        img = Image.open(path)
        img.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc}); replace or remove the file", str(path)) from None
    return img


def _to_8bit(img: Image.Image) -> Image.Image:
    """Bring 16/32-bit modes to 8 bit (I;16 -> >>8; I/F -> clip 0..65535 then >>8 if any value > 255)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16") or arr.max() > 255:
            arr = np.clip(arr, 0, 65535) / 257.0  # full 16-bit range -> 0..255
        return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("LA", "PA"):
        return img.convert("L")
    if img.mode in ("RGBA", "P", "CMYK", "RGBX", "1"):
        return img.convert("RGB") if img.mode != "1" else img.convert("L")
    return img


def read_pil(path: str | os.PathLike) -> Image.Image:
    """Open an image as an 8-bit PIL image in mode ``L`` or ``RGB`` (alpha dropped, 16-bit scaled)."""
    img = _to_8bit(_open(path))
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return img


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """8-bit ``L`` image -> float32 tensor 1 x 1 x H x W in [0, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    return torch.from_numpy(arr.astype(np.float32) / 255.0)[None, None]


def read_gray(path: str | os.PathLike) -> torch.Tensor:
    """Read ``path`` as the authors do: PIL ``convert("L")``, /255 -> float32 1 x 1 x H x W in [0, 1]."""
    return pil_to_tensor(read_pil(path).convert("L"))


def read_ycbcr(path: str | os.PathLike) -> tuple[torch.Tensor, np.ndarray | None]:
    """Return ``(Y, CbCr)``: Y as float32 1 x 1 x H x W in [0, 1]; CbCr as uint8 H x W x 2 (None for gray files)."""
    img = read_pil(path)
    if img.mode == "L":
        return pil_to_tensor(img), None
    ycc = np.asarray(img.convert("YCbCr"), dtype=np.uint8)
    y = torch.from_numpy(ycc[..., 0].astype(np.float32) / 255.0)[None, None]
    return y, ycc[..., 1:].copy()


# ------------------------------------------------------------------------------------------------------ saving
def to_uint8(out: torch.Tensor, mode: str = "minmax") -> np.ndarray:
    """Fused output (..., H, W) tensor -> uint8 H x W array with the given save convention.

    ``minmax``: round((O - min) * 255 / (max - min)), half up, in float32 exactly as the official test script's
    ``scipy.misc.imsave`` byte-scaling (a constant image maps to 0).
    ``clamp``: round(clip(O, 0, 1) * 255), half up.
    """
    if mode not in SAVE_MODES:
        raise ValueError(f"unknown save mode {mode!r}; expected one of {SAVE_MODES}")
    o = out.detach().to("cpu", torch.float32).reshape(out.shape[-2:]).numpy()
    if mode == "minmax":
        # The official script's scipy bytescale, in its float32 arithmetic: (O - min) * scale, clip, +0.5, truncate.
        lo, hi = o.min(), o.max()
        if not hi > lo:
            return np.zeros(o.shape, np.uint8)
        scale = np.float32(255.0 / np.float64(hi - lo))
        o = (o - lo) * scale
    else:
        o = np.clip(o, np.float32(0), np.float32(1)) * np.float32(255.0)
    return (np.clip(o, 0, 255) + np.float32(0.5)).astype(np.uint8)


def recombine_color(y8: np.ndarray, cbcr: np.ndarray) -> Image.Image:
    """uint8 fused Y (H x W) + uint8 CbCr (H x W x 2) -> RGB PIL image (PIL's YCbCr -> RGB)."""
    ycc = np.concatenate([y8[..., None], cbcr], axis=-1)
    return Image.fromarray(ycc, mode="YCbCr").convert("RGB")


def save_image(path: str | os.PathLike, img: np.ndarray | Image.Image) -> Path:
    """Write an 8-bit image atomically (temp file + rename); the format follows the suffix."""
    path = Path(path)
    pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise BadInputError(f"{path}: unsupported output extension; use one of {', '.join(IMAGE_EXTENSIONS)}", str(path))
    with atomic_path(path) as tmp:
        pil.save(tmp, format=fmt)
    return path


# ------------------------------------------------------------------------------------------------------ pairing
@dataclass(frozen=True)
class Pair:
    """One matched set of files sharing a stem: ``paths[i]`` comes from ``folders[i]``."""

    stem: str
    paths: tuple[Path, ...]

    @property
    def ir(self) -> Path:
        return self.paths[0]

    @property
    def vis(self) -> Path:
        return self.paths[1]


def list_images(folder: str | os.PathLike) -> dict[str, Path]:
    """Map stem -> path of the images directly inside ``folder``. Raises on a missing folder or duplicate stems."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInputError(f"{folder}: folder not found", str(folder))
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."):
            if p.stem in found:
                raise BadInputError(f"{p}: two images share the stem {p.stem!r} ({found[p.stem].name}); keep one", str(p))
            found[p.stem] = p
    return found


def match_stems(*folders: str | os.PathLike, skip_bad: bool = False,
                skipped: list[str] | None = None) -> list[Pair]:
    """Pair the images of several folders by file stem, sorted by stem.

    A stem missing from any folder raises :class:`BadInputError` naming the file that has no partner, unless
    ``skip_bad`` is set, in which case the stem is left out and a message is appended to ``skipped``.
    An empty result always raises.
    """
    if len(folders) < 2:
        raise ValueError("match_stems needs at least two folders")
    maps = [list_images(f) for f in folders]
    stems = sorted(set().union(*maps))
    pairs: list[Pair] = []
    for stem in stems:
        missing = [str(Path(f)) for f, m in zip(folders, maps) if stem not in m]
        if missing:
            have = next(m[stem] for m in maps if stem in m)
            msg = f"{have}: no partner named {stem}.* in {', '.join(missing)}; add it or pass --skip-bad"
            if not skip_bad:
                raise BadInputError(msg, str(have))
            if skipped is not None:
                skipped.append(msg)
            continue
        pairs.append(Pair(stem, tuple(m[stem] for m in maps)))
    if not pairs:
        raise BadInputError(f"no image pairs found in {', '.join(str(Path(f)) for f in folders)} "
                            f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
    return pairs


def read_pair(ir_path: str | os.PathLike, vis_path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an IR/visible pair as gray [0, 1] tensors and check that their sizes agree."""
    ir, vis = read_gray(ir_path), read_gray(vis_path)
    if ir.shape != vis.shape:
        raise BadInputError(f"{vis_path}: size {tuple(vis.shape[-2:])} differs from {ir_path} {tuple(ir.shape[-2:])}; "
                            "resize or register the pair first", str(vis_path))
    return ir, vis


def stack_inputs(ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
    """``cat([ir, vis], dim=1)``: the 2-channel network input (IR/MRI first)."""
    return torch.cat([ir, vis], dim=1)


def iter_batches(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive chunks of ``items`` of at most ``size``."""
    for i in range(0, len(items), max(1, size)):
        yield items[i:i + size]
