"""Fusing folders: :func:`fuse_folder` (two folders matched by stem) and :func:`fuse_pairs`, the suite's one
fusing loop (the ``fuse`` command, the tables' image cache and the ablations all come here): a read-fuse-write
pipeline that is resumable, never writes into an input folder, and optionally shares a folder between processes.
"""
from __future__ import annotations

import os
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mmdrfuse import images
from mmdrfuse.atomic import check_out_dir, remove_stale_temps
from mmdrfuse.errors import BadInputError, MMDRFuseError
from mmdrfuse.fusion import _MIN_SIDE, MMDRFuseMethod, check_device, check_min_size, get_method
from mmdrfuse.lock import WorkLock
from mmdrfuse.native import num_threads


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
        return (f"{self.n_pairs} pairs: {self.n_fused} fused, {self.n_existing} already done, {len(self.skipped)} "
                f"skipped; {self.seconds:.2f} s total, {self.ms_per_pair:.1f} ms per pair "
                f"({1000.0 * self.fuse_seconds / max(self.n_fused, 1):.2f} ms in the network)")


def check_folders(out_dir, *inputs) -> None:
    """Refuse an output folder that is, contains or lies inside an input folder, and two equal input folders."""
    out = Path(out_dir).resolve()
    ins = [Path(d).resolve() for d in inputs]
    for i, d in enumerate(ins):
        if out == d or out.is_relative_to(d) or d.is_relative_to(out):
            rel = "is" if out == d else ("lies inside" if out.is_relative_to(d) else "contains")
            raise MMDRFuseError(f"{out_dir}: the output folder {rel} the input folder {inputs[i]}; "
                                "choose a separate output folder (sources are never overwritten)")
    if len(set(ins)) < len(ins):
        raise MMDRFuseError(f"{inputs[0]}: --ir and --vis name the same folder; give the two modalities' folders")
    check_out_dir(out_dir)


def _load_item(pair: images.Pair, color: bool, method=None):
    """Read one pair; a method with its own reading quirk (``preprocess(ir_path, vis_path)``) reads gray pairs itself.

    Runs in a reader thread; every failure a file can cause comes back as :class:`BadInputError`."""
    try:
        reader = getattr(method, "preprocess", None)
        if reader is not None and not color:
            ir, vis = reader(pair.ir, pair.vis)
            cbcr = None
        else:
            ir = images.read_gray(pair.ir)
            vis, cbcr = images.read_ycbcr(pair.vis) if color else (images.read_gray(pair.vis), None)
    except MemoryError:
        raise BadInputError(f"{pair.ir}: not enough memory to read this pair", str(pair.ir)) from None
    if ir.shape != vis.shape:
        raise BadInputError(f"{pair.vis}: size {tuple(vis.shape[-2:])} differs from {pair.ir} "
                            f"{tuple(ir.shape[-2:])}; resize or register the pair first", str(pair.vis))
    check_min_size(ir.shape, str(pair.ir), getattr(method, "min_size", _MIN_SIDE))
    return ir, vis, cbcr


def _write_item(method, out: torch.Tensor, target: Path, cbcr, color: bool) -> Path:
    y8 = method.to_uint8(out)
    images.save_image(target, images.recombine_color(y8, cbcr) if (color and cbcr is not None) else y8)
    return target


def fuse_folder(ir_dir: str | os.PathLike, vis_dir: str | os.PathLike, out_dir: str | os.PathLike, method=None, *,
                model: torch.nn.Module | None = None, weights: str | os.PathLike = "official-student",
                weights_root: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                save: str = "minmax", color: bool = False, skip_bad: bool = False, overwrite: bool = False,
                batch_size: int = 1, progress: bool = True, ext: str = ".png", workers: int | None = None) -> FuseSummary:
    """Fuse every pair (matched by stem) of two folders into ``out_dir/<stem><ext>``; resumable.

    Bad pairs raise :class:`BadInputError` unless ``skip_bad``, in which case they are listed in
    ``summary.skipped``. The output folder may not be, contain or lie inside an input folder. See
    :func:`fuse_pairs` for the rest.
    """
    check_folders(out_dir, ir_dir, vis_dir)
    if method is None:
        method = MMDRFuseMethod(model, save=save) if model is not None else get_method(
            "mmdrfuse", weights=weights, weights_root=weights_root, device=device, save=save)
    skipped: list[str] = []
    pairs = images.match_stems(ir_dir, vis_dir, skip_bad=skip_bad, skipped=skipped)
    return fuse_pairs(pairs, out_dir, method, color=color, skip_bad=skip_bad, overwrite=overwrite,
                      batch_size=batch_size, progress=progress, ext=ext, workers=workers, skipped=skipped,
                      desc=f"fuse {Path(ir_dir).parent.name or ir_dir}")


def fuse_pairs(pairs, out_dir: str | os.PathLike, method, *, color: bool = False, skip_bad: bool = False,
               overwrite: bool = False, batch_size: int = 1, progress: bool = True, ext: str = ".png",
               workers: int | None = None, locks: bool = False, skipped: list[str] | None = None,
               desc: str = "fuse") -> FuseSummary:
    """Fuse ``pairs`` (:class:`mmdrfuse.images.Pair`) with ``method`` into ``out_dir/<stem><ext>``: the one fusing loop
    of the suite (the ``fuse`` command, the tables' image cache and the ablations all come here).

    Existing outputs are kept unless ``overwrite`` (an interrupted run resumes); temp files left by a killed earlier
    run are removed first. Reading and writing (PNG decoding and encoding release the GIL) run in ``workers``
    threads (default: torch's thread count) while the network runs: a pipeline. Pairs of equal size are batched
    ``batch_size`` at a time. With ``locks``, several processes can fill one folder: each pair is fused by the
    process holding ``.<stem>.lock`` (:mod:`mmdrfuse.lock`); pairs held elsewhere are waited for at the end.
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    if batch_size < 1:
        raise MMDRFuseError("--batch-size must be >= 1")
    out_dir = Path(out_dir)
    summary = FuseSummary(skipped=list(skipped or []))
    summary.n_pairs = len(pairs) + len(summary.skipped)
    todo = []
    for p in pairs:
        target = out_dir / f"{p.stem}{ext}"
        if target.exists() and not overwrite:
            summary.n_existing += 1
            summary.outputs.append(target)
        else:
            todo.append((p, target))
    if not todo:
        summary.seconds = time.perf_counter() - t0
        return summary
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir)
    workers = max(1, workers or torch.get_num_threads())
    # a method may ask for fewer intra-op threads (torch's, process-wide, restored after) while the pipeline's
    # readers and writers use the other cores (see MMDRFuseMethod.pipeline_threads for the measurement)
    with tqdm(total=len(todo), desc=desc, unit="pair", disable=not progress, file=sys.stderr) as bar, \
            ThreadPoolExecutor(workers, thread_name_prefix="fuse-io") as pool, \
            num_threads(getattr(method, "pipeline_threads", None)):
        run = _Pipeline(pool, method, summary, bar, color, skip_bad, batch_size, 2 * workers + batch_size, locks)
        while todo:
            held = run(todo)
            todo = []
            for pair, target in held:  # another process is fusing these: wait for its images
                WorkLock(_lock_path(target)).wait_released(poll_s=0.5)
                if target.exists():
                    summary.n_existing += 1
                    summary.outputs.append(target)
                    bar.update(1)
                else:  # that process stopped before writing it
                    todo.append((pair, target))
    summary.seconds = time.perf_counter() - t0
    return summary


def _lock_path(target: Path) -> Path:
    return target.with_name(f".{target.stem}.lock")


class _Pipeline:
    """One pass of :func:`fuse_pairs` over a job list: reads run ahead in the pool, the network runs here, writes
    go back to the pool; returns the jobs whose lock another process holds."""

    def __init__(self, pool, method, summary: FuseSummary, bar, color: bool, skip_bad: bool, batch_size: int,
                 lookahead: int, locks: bool):
        self.pool, self.method, self.summary, self.bar = pool, method, summary, bar
        self.color, self.skip_bad, self.batch_size, self.lookahead, self.locks = (color, skip_bad, batch_size,
                                                                                  lookahead, locks)

    def __call__(self, todo: list) -> list:
        self.todo, self.next, self.held = todo, 0, []
        self.reads: deque = deque()
        self.writes: deque = deque()
        try:
            self._refill()
            while self.reads:
                batch = self._next_batch()
                if batch:
                    self._fuse(batch)
                    self._drain(self.lookahead)
            self._drain(0)
        finally:
            for *_, fut, lock in self.reads:
                fut.cancel()
                lock.release()
            for fut, lock in self.writes:
                fut.cancel()
                lock.release()
        return self.held

    def _refill(self) -> None:
        while self.next < len(self.todo) and len(self.reads) < self.lookahead:
            pair, target = self.todo[self.next]
            self.next += 1
            lock = WorkLock(_lock_path(target))
            if self.locks and not lock.acquire():
                self.held.append((pair, target))
                continue
            if self.locks and target.exists():  # finished by another process meanwhile
                lock.release()
                self.summary.n_existing += 1
                self.summary.outputs.append(target)
                self.bar.update(1)
                continue
            self.reads.append((pair, target, self.pool.submit(_load_item, pair, self.color, self.method), lock))

    def _skip(self, msg: str, n: int = 1) -> None:
        if not self.skip_bad:
            raise BadInputError(msg)
        self.summary.skipped.append(msg)
        self.bar.update(n)

    def _next_batch(self) -> list:
        batch = []
        while self.reads and len(batch) < self.batch_size:
            pair, target, fut, lock = self.reads[0]
            try:
                item = fut.result()
            except BadInputError as exc:
                if not self.skip_bad:
                    raise
                self.reads.popleft()
                lock.release()
                self._skip(str(exc))
                self._refill()
                continue
            if batch and item[0].shape != batch[0][2][0].shape:
                break  # a new size starts the next batch
            self.reads.popleft()
            batch.append((pair, target, item, lock))
            self._refill()
        return batch

    @torch.inference_mode()
    def _fuse(self, batch: list) -> None:
        ir = torch.cat([b[2][0] for b in batch])
        vis = torch.cat([b[2][1] for b in batch])
        tf = time.perf_counter()
        try:
            out = self.method.fuse(ir, vis)
        except (MemoryError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and "alloc" not in str(exc).lower():
                raise
            for b in batch:
                b[3].release()
            where = batch[0][0].ir
            self._skip(f"{where}: not enough memory to fuse {tuple(ir.shape[-2:])} x {len(batch)}; use "
                       "--batch-size 1 or smaller images", len(batch))
            return
        self.summary.fuse_seconds += time.perf_counter() - tf
        for k, (pair, target, (_, _, cbcr), lock) in enumerate(batch):
            fut = self.pool.submit(_write_item, self.method, out[k:k + 1], target, cbcr, self.color)
            self.writes.append((fut, lock))

    def _drain(self, limit: int) -> None:
        while len(self.writes) > limit:
            fut, lock = self.writes.popleft()
            try:
                self.summary.outputs.append(fut.result())
            finally:
                lock.release()
            self.summary.n_fused += 1
            self.bar.update(1)


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
    p.add_argument("--save", choices=images.SAVE_MODES, default="minmax",
                   help="output scaling: minmax (the paper's, per-image) or clamp to [0, 1]")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--batch-size", type=int, default=1, help="pairs per forward pass (equal sizes are batched)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad pairs and list them instead of stopping")
    p.add_argument("--overwrite", action="store_true", help="recompute outputs that already exist")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


RESUME_HINT = "rerun the same command to resume (finished images are kept)"


def run(args) -> int:
    check_device(args.device)
    if args.batch_size < 1:
        raise MMDRFuseError("--batch-size must be >= 1")
    check_folders(args.out, args.ir, args.vis)
    method = get_method(args.method, weights=args.weights, weights_root=args.weights_root, device=args.device,
                        save=args.save)
    s = fuse_folder(args.ir, args.vis, args.out, method, color=args.color, skip_bad=args.skip_bad,
                    overwrite=args.overwrite, batch_size=args.batch_size, progress=not args.quiet)
    for msg in s.skipped:
        print(f"skipped: {msg}", file=sys.stderr)
    print(s.line())
    return 0
