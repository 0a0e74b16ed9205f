"""Fusing images: ``mmdrfuse.fuse_pair`` for one pair, :func:`fuse_folder` and the ``mmdrfuse fuse`` command.

A *method* is anything with ``fuse(ir, vis) -> Tensor`` (N x 1 x H x W gray in [0, 1] in, float image out) and
``to_uint8(out) -> uint8 H x W``: :class:`MMDRFuseMethod` wraps a student/teacher checkpoint (minmax or clamp saving),
the baselines registry (:mod:`baselines`) provides the compared methods. Outputs are written atomically and a rerun
skips finished outputs unless ``overwrite``, so an interrupted run resumes where it stopped.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from mmdrfuse import io as mio
from mmdrfuse.errors import BadInputError, MMDRFuseError


class MMDRFuseMethod:
    """An MMDRFuse network (student or teacher) as a fusion method, using the fast inference path when it can."""

    name = "MMDRFuse"

    def __init__(self, model: torch.nn.Module, save: str = "minmax", fast: bool = True, info: dict | None = None):
        if save not in mio.SAVE_MODES:
            raise MMDRFuseError(f"unknown --save {save!r}; expected one of {', '.join(mio.SAVE_MODES)}")
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
        x = mio.stack_inputs(ir, vis).to(self.device, torch.float32)
        return self._forward(x)

    def to_uint8(self, out: torch.Tensor) -> np.ndarray:
        return mio.to_uint8(out, self.save)


def get_method(method: str = "mmdrfuse", *, weights: str | os.PathLike = "official-student",
               weights_root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
               save: str = "minmax"):
    """``mmdrfuse`` (with ``weights``) or the name of a baseline from :mod:`baselines`."""
    if method.lower() == "mmdrfuse":
        return MMDRFuseMethod.from_weights(weights, device=device, weights_root=weights_root, save=save)
    try:
        import baselines
    except ImportError:
        raise MMDRFuseError(f"method {method!r} needs the 'baselines' package (run from the repository root)") from None
    return baselines.get(method).build(device=torch.device(device), weights_root=weights_root)


# ---------------------------------------------------------------------------------------------- single pair
def _as_gray_tensor(x, role: str) -> tuple[torch.Tensor, np.ndarray | None]:
    """Path / PIL image / array / tensor -> (1 x 1 x H x W float32 in [0, 1], CbCr or None)."""
    if isinstance(x, (str, os.PathLike)):
        return mio.read_ycbcr(x) if role == "vis" else (mio.read_gray(x), None)
    if isinstance(x, Image.Image):
        img = x if x.mode in ("L", "RGB") else x.convert("RGB")
        if img.mode == "RGB" and role == "vis":
            ycc = np.asarray(img.convert("YCbCr"), np.uint8)
            return torch.from_numpy(ycc[..., 0] / np.float32(255.0))[None, None].float(), ycc[..., 1:].copy()
        return mio.pil_to_tensor(img.convert("L")), None
    if isinstance(x, np.ndarray):
        if x.dtype == np.uint8:
            return _as_gray_tensor(Image.fromarray(x), role)
        x = torch.from_numpy(np.asarray(x, np.float32))
    if isinstance(x, torch.Tensor):
        t = x.float()
        while t.dim() < 4:
            t = t.unsqueeze(0)
        if t.shape[1] != 1:
            raise BadInputError(f"{role} tensor must have one channel (gray in [0, 1]), got shape {tuple(x.shape)}")
        return t, None
    raise BadInputError(f"cannot read {role} input of type {type(x).__name__}")


def fuse_pair(ir, vis, *, method=None, weights: str | os.PathLike = "official-student", color: bool = False,
              save: str = "minmax", device: str | torch.device = "cpu") -> np.ndarray:
    """Fuse one pair (paths, PIL images, uint8 arrays or [0, 1] tensors) and return the 8-bit image.

    Gray H x W by default; with ``color`` the visible image's Y channel is fused and recombined with its CbCr
    (H x W x 3). ``method`` is a fusion method object (default: MMDRFuse with ``weights``).
    """
    m = method or get_method("mmdrfuse", weights=weights, device=device, save=save)
    a, _ = _as_gray_tensor(ir, "ir")
    b, cbcr = _as_gray_tensor(vis, "vis") if color else (_as_gray_tensor(vis, "ir")[0], None)
    if a.shape[-2:] != b.shape[-2:]:
        raise BadInputError(f"size mismatch: ir {tuple(a.shape[-2:])} vs vis {tuple(b.shape[-2:])}")
    y8 = m.to_uint8(m.fuse(a, b))
    return np.asarray(mio.recombine_color(y8, cbcr)) if (color and cbcr is not None) else y8


# ---------------------------------------------------------------------------------------------- folders
@dataclass
class FuseSummary:
    n_pairs: int = 0
    n_fused: int = 0
    n_existing: int = 0
    seconds: float = 0.0
    fuse_seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def ms_per_pair(self) -> float:
        return 1000.0 * self.seconds / self.n_fused if self.n_fused else float("nan")

    def line(self) -> str:
        s = (f"{self.n_pairs} pairs: {self.n_fused} fused, {self.n_existing} already done, {len(self.skipped)} skipped; "
             f"{self.seconds:.2f} s total, {self.ms_per_pair:.1f} ms per pair "
             f"({1000.0 * self.fuse_seconds / max(self.n_fused, 1):.2f} ms in the network)")
        return s


def _load_item(pair: mio.Pair, color: bool, method=None):
    """Read one pair; a method with its own reading quirk (``preprocess(ir_path, vis_path)``) reads gray pairs itself."""
    reader = getattr(method, "preprocess", None)
    if reader is not None and not color:
        ir, vis = reader(pair.ir, pair.vis)
        cbcr = None
    else:
        ir = mio.read_gray(pair.ir)
        vis, cbcr = mio.read_ycbcr(pair.vis) if color else (mio.read_gray(pair.vis), None)
    if ir.shape != vis.shape:
        raise BadInputError(f"{pair.vis}: size {tuple(vis.shape[-2:])} differs from {pair.ir} "
                            f"{tuple(ir.shape[-2:])}; resize or register the pair first", str(pair.vis))
    return ir, vis, cbcr


def fuse_folder(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike, out_dir: str | os.PathLike, method=None, *,
                model: torch.nn.Module | None = None, weights: str | os.PathLike = "official-student",
                weights_root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                save: str = "minmax", color: bool = False, skip_bad: bool = False, overwrite: bool = False,
                batch_size: int = 1, progress: bool = True, ext: str = ".png") -> FuseSummary:
    """Fuse every pair (matched by stem) of two folders into ``out_dir/<stem><ext>``; resumable.

    Pairs of equal size are batched ``batch_size`` at a time. Bad pairs raise :class:`BadInputError` unless
    ``skip_bad``, in which case they are listed in ``summary.skipped``.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    if method is None:
        method = MMDRFuseMethod(model, save=save) if model is not None else get_method(
            "mmdrfuse", weights=weights, weights_root=weights_root, device=device, save=save)
    out_dir = Path(out_dir)
    summary = FuseSummary()
    pairs = mio.match_stems(ir_dir, vis_dir, skip_bad=skip_bad, skipped=summary.skipped)
    summary.n_pairs = len(pairs) + len(summary.skipped)
    todo = []
    for p in pairs:
        target = out_dir / f"{p.stem}{ext}"
        if target.exists() and not overwrite:
            summary.n_existing += 1
            summary.outputs.append(target)
        else:
            todo.append((p, target))
    out_dir.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc=f"fuse {Path(ir_dir).parent.name or ir_dir}", unit="pair",
               disable=not progress, file=sys.stderr)
    i = 0
    while i < len(todo):
        batch, shapes = [], None
        while i < len(todo) and len(batch) < max(1, batch_size):
            pair, target = todo[i]
            try:
                item = _load_item(pair, color, method)
            except BadInputError as exc:
                if not skip_bad:
                    raise
                summary.skipped.append(str(exc))
                i += 1
                bar.update(1)
                continue
            if shapes is not None and item[0].shape != shapes:
                break  # a new size starts the next batch
            shapes = item[0].shape
            batch.append((pair, target, item))
            i += 1
        if not batch:
            continue
        ir = torch.cat([b[2][0] for b in batch])
        vis = torch.cat([b[2][1] for b in batch])
        tf = time.perf_counter()
        out = method.fuse(ir, vis)
        summary.fuse_seconds += time.perf_counter() - tf
        for k, (pair, target, (_, _, cbcr)) in enumerate(batch):
            y8 = method.to_uint8(out[k:k + 1])
            img = mio.recombine_color(y8, cbcr) if (color and cbcr is not None) else y8
            mio.save_image(target, img)
            summary.outputs.append(target)
            summary.n_fused += 1
        bar.update(len(batch))
    bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary


# ------------------------------------------------------------------------------------------------------- CLI
def add_arguments(p) -> None:
    p.add_argument("--ir", required=True, help="folder of infrared (or MRI) images")
    p.add_argument("--vis", required=True, help="folder of visible (or PET/SPECT) images, matched by file stem")
    p.add_argument("--out", required=True, help="output folder (created); fused images are <stem>.png")
    p.add_argument("--method", default="mmdrfuse", help="mmdrfuse (default) or a baseline name (see baselines)")
    p.add_argument("--weights", default="official-student",
                   help="named weights (official-student, official-teacher, mmdrfuse-cpu, ...) or a checkpoint path")
    p.add_argument("--weights-root", default=None, help="folder with official/*.model (default: $MMDRFUSE_WEIGHTS)")
    p.add_argument("--color", action="store_true", help="fuse the visible image's Y channel and keep its colour")
    p.add_argument("--save", choices=mio.SAVE_MODES, default="minmax",
                   help="output scaling: minmax (the paper's, per-image) or clamp to [0, 1]")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=1, help="pairs per forward pass (equal sizes are batched)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad pairs and list them instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise MMDRFuseError(f"--device {args.device}: CUDA is not available on this machine; use --device cpu")
    if args.batch_size < 1:
        raise MMDRFuseError("--batch-size must be >= 1")
    method = get_method(args.method, weights=args.weights, weights_root=args.weights_root, device=args.device,
                        save=args.save)
    s = fuse_folder(args.ir, args.vis, args.out, method, color=args.color, skip_bad=args.skip_bad,
                    overwrite=args.overwrite, batch_size=args.batch_size, progress=not args.quiet)
    for msg in s.skipped:
        print(f"skipped: {msg}", file=sys.stderr)
    print(s.line())
    return 0
