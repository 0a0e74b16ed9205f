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

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from mmdrfuse.atomic import atomic_path
from mmdrfuse.errors import BadInputError, NonFiniteError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SAVE_MODES = ("minmax", "clamp")


# ----------------------------------------------------------------------------------------------------- reading
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# PIL's convert("L") weights (ITU-R 601-2 in 16-bit fixed point, Pillow's Convert.c), applied to B, G, R in that order
_L_WEIGHTS_BGR = np.array([7471, 38470, 19595], np.uint32)


def _png_header(path: Path) -> tuple[int, int, int, int] | None:
    """``(height, width, bit depth, colour type)`` from a PNG's IHDR, or None when the file is not a PNG."""
    try:
        with open(path, "rb") as f:
            head = f.read(26)
    except OSError:
        return None
    if len(head) < 26 or head[:8] != _PNG_MAGIC or head[12:16] != b"IHDR":
        return None
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return h, w, head[24], head[25]


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """``(height, width)`` from the file's header, without decoding it (PNG directly, other formats via PIL)."""
    head = _png_header(Path(path))
    if head is not None:
        return head[0], head[1]
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"{path}: {str(exc).split(',')[0]}; refused as too large to decode", str(path)) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInputError(f"{path}: cannot read image ({exc.__class__.__name__}: {exc}); replace or remove the file",
                            str(path)) from None


def _open(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: file not found", str(path))
    try:
        img = Image.open(path)
        check_pixels(path, img.height, img.width)
        img.load()
    except Image.DecompressionBombError as exc:
        raise BadInputError(f"{path}: {str(exc).split(',')[0]}; refused as too large to decode", str(path)) from None
    except MemoryError:
        raise BadInputError(f"{path}: not enough memory to decode this image", str(path)) from None
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


def _read_png_cv2(path: Path) -> np.ndarray | None:
    """8-bit gray/RGB/RGBA PNGs with OpenCV (2-3x faster than PIL, and it releases the GIL so reads overlap):
    the same pixels as PIL's decoder (PNG is lossless). Anything else (other formats, 16-bit, palette, gray+alpha,
    no OpenCV) returns None and takes the PIL path."""
    head = _png_header(path)
    if head is None or head[2] != 8 or head[3] not in (0, 2, 6):
        return None
    try:
        import cv2
    except ImportError:
        return None
    check_pixels(path, head[0], head[1])
    try:
        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        arr = None
    if arr is None or arr.dtype != np.uint8 or arr.shape[:2] != head[:2]:
        return None  # let PIL report what is wrong with the file
    if arr.ndim == 3:
        arr = np.ascontiguousarray(arr[..., 2::-1])  # BGR(A) -> RGB, alpha dropped as PIL's RGBA -> RGB does
    return arr


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Read an image as uint8 ``H x W`` (gray files) or ``H x W x 3`` RGB, with :func:`read_pil`'s conventions."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: file not found", str(path))
    arr = _read_png_cv2(path)
    return arr if arr is not None else np.asarray(read_pil(path), dtype=np.uint8)


def gray_u8(arr: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 RGB -> uint8 H x W exactly as PIL's ``convert("L")`` (gray input returned as is)."""
    if arr.ndim == 2:
        return arr
    bgr = arr[..., ::-1].reshape(-1, 3).astype(np.uint32)
    return ((bgr @ _L_WEIGHTS_BGR + 0x8000) >> 16).astype(np.uint8).reshape(arr.shape[:2])


def u8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """uint8 H x W -> float32 tensor 1 x 1 x H x W in [0, 1] (x / 255 in float32, as the authors' reading)."""
    return torch.from_numpy(arr.astype(np.float32) / np.float32(255.0))[None, None]


def read_gray(path: str | os.PathLike) -> torch.Tensor:
    """Read ``path`` as the authors do: PIL ``convert("L")``, /255 -> float32 1 x 1 x H x W in [0, 1]."""
    return u8_to_tensor(gray_u8(read_array(path)))


def split_ycbcr(arr: np.ndarray) -> tuple[torch.Tensor, np.ndarray | None]:
    """uint8 gray or RGB array -> ``(Y, CbCr)`` as :func:`read_ycbcr` returns them (PIL's YCbCr)."""
    if arr.ndim == 2:
        return u8_to_tensor(arr), None
    ycc = np.asarray(Image.fromarray(arr, mode="RGB").convert("YCbCr"), dtype=np.uint8)
    return u8_to_tensor(ycc[..., 0]), ycc[..., 1:].copy()


def read_ycbcr(path: str | os.PathLike) -> tuple[torch.Tensor, np.ndarray | None]:
    """Return ``(Y, CbCr)``: Y as float32 1 x 1 x H x W in [0, 1]; CbCr as uint8 H x W x 2 (None for gray files)."""
    return split_ycbcr(read_array(path))


# ----------------------------------------------------------------------------------------------- size limits
MAX_PIXELS_ENV = "MMDRFUSE_MAX_PIXELS"  # override the memory-derived limit on pixels per image
BYTES_PER_PIXEL = 48  # what fusing one pixel of a gray pair holds at peak (decoded RGB, float inputs, output, PNG)


def available_memory() -> int | None:
    """Bytes this process may still allocate: the least of MemAvailable, the cgroup's and RLIMIT_AS's headroom."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    for cg_max, cg_cur in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),):
        try:
            hi, cur = Path(cg_max).read_text().strip(), Path(cg_cur).read_text().strip()
            if hi != "max":
                limits.append(int(hi) - int(cur))
        except (OSError, ValueError):
            pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/statm") as f:
                used = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
            limits.append(soft - used)
    except (ImportError, OSError, ValueError):
        pass
    return max(0, min(limits)) if limits else None


def max_pixels(bytes_per_pixel: int = BYTES_PER_PIXEL) -> int | None:
    """The largest image (in pixels) a command should take on: ``$MMDRFUSE_MAX_PIXELS``, else what fits in memory."""
    env = os.environ.get(MAX_PIXELS_ENV)
    if env:
        return int(float(env))
    mem = available_memory()
    return None if mem is None else mem // bytes_per_pixel


def check_pixels(path: str | os.PathLike, h: int, w: int, bytes_per_pixel: int = BYTES_PER_PIXEL) -> None:
    """Refuse (one line, before decoding) an image too large for the memory this process has."""
    limit = max_pixels(bytes_per_pixel)
    if limit is not None and h * w > limit:
        raise BadInputError(f"{path}: {w}x{h} ({h * w / 1e6:.0f} Mpx) needs ~{h * w * bytes_per_pixel / 2**30:.1f} GiB; "
                            f"only {limit / 1e6:.0f} Mpx fit in the memory available (set {MAX_PIXELS_ENV} to "
                            "override)", str(path))


# ------------------------------------------------------------------------------------------------------ saving
def to_uint8(out: torch.Tensor, mode: str = "minmax") -> np.ndarray:
    """Fused output (..., H, W) tensor -> uint8 H x W array with the given save convention.

    ``minmax``: round((O - min) * 255 / (max - min)), half up, in float32 exactly as the official test script's
    ``scipy.misc.imsave`` byte-scaling (a constant image maps to 0).
    ``clamp``: round(clip(O, 0, 1) * 255), half up.
    A non-finite output (NaN/inf from bad weights or input) raises instead of saving a black image.
    """
    if mode not in SAVE_MODES:
        raise ValueError(f"unknown save mode {mode!r}; expected one of {SAVE_MODES}")
    o = out.detach().to("cpu", torch.float32).reshape(out.shape[-2:]).numpy()
    lo, hi = o.min(), o.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise NonFiniteError("the network produced NaN or inf values; check the weights and the input images")
    if mode == "minmax":
        # The official script's scipy bytescale, in its float32 arithmetic: (O - min) * scale, clip, +0.5, truncate.
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


# PNG coding of saved images: zlib level 1 with the RLE strategy (OpenCV). Measured on 30 MSRS fused 640x480 gray
# images (shared machine): 5.2 ms and 129 KB per image, against PIL's default (level 6) 29 ms and 135 KB, and
# OpenCV level 1 default strategy 6.3 ms and 155 KB; the pixels are identical (PNG is lossless).
PNG_LEVEL = 1


def encode_png(img: np.ndarray) -> bytes:
    """uint8 H x W (gray) or H x W x 3 (RGB) -> PNG bytes (OpenCV, level :data:`PNG_LEVEL`; PIL without OpenCV)."""
    try:
        import cv2
    except ImportError:
        import io as _stdio

        buf = _stdio.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=PNG_LEVEL)
        return buf.getvalue()
    arr = img[..., ::-1] if img.ndim == 3 else img  # RGB -> BGR
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr), [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL,
                                                                cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE])
    if not ok:  # pragma: no cover - OpenCV reports failure only for unsupported arrays
        raise BadInputError("OpenCV could not encode the image as PNG")
    return buf.tobytes()


def save_image(path: str | os.PathLike, img: np.ndarray | Image.Image) -> Path:
    """Write an 8-bit image atomically (temp file + rename); the format follows the suffix (PNG via OpenCV)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise BadInputError(f"{path}: unsupported output extension; use one of {', '.join(IMAGE_EXTENSIONS)}", str(path))
    if fmt == "PNG":
        arr = np.asarray(img, dtype=np.uint8)
        data = encode_png(arr)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return path
    pil = img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))
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


def read_ahead(items, read, workers: int, depth: int):
    """Yield ``(item, future of read(item))`` in order, with at most ``depth`` reads submitted ahead to a pool of
    ``workers`` threads (PNG decoding, the metric kernels and torch's FFTs release the GIL): the one read-ahead of
    the evaluators, and their one-pair-per-thread pipeline (``read`` then reads and computes a whole pair)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        queue: deque = deque()
        it = iter(items)
        try:
            for item in it:
                queue.append((item, pool.submit(read, item)))
                if len(queue) >= depth:
                    break
            while queue:
                yield queue.popleft()
                nxt = next(it, None)
                if nxt is not None:
                    queue.append((nxt, pool.submit(read, nxt)))
        finally:  # the consumer stopped early (an error, a closed generator): drop what has not started
            for _, fut in queue:
                fut.cancel()


def pair_rows(pairs, job, workers: int, *, skip_bad: bool, skipped: list[str], bar) -> list[dict]:
    """``{"stem": pair.stem, **job(pair)}`` for each pair in order, ``job`` (read and compute one whole pair) run in
    ``workers`` threads, ``2 * workers`` pairs in flight: the evaluators' one-pair-per-thread pipeline (both metric
    conventions). A :class:`BadInputError` from a job is raised, or with ``skip_bad`` appended to ``skipped``;
    ``bar.update(1)`` per pair."""
    rows: list[dict] = []
    for pair, fut in read_ahead(pairs, job, workers, depth=2 * workers):
        try:
            rows.append({"stem": pair.stem, **fut.result()})
        except BadInputError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
        bar.update(1)
    return rows
