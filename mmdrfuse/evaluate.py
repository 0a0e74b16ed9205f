"""``mmdrfuse evaluate``: fusion metrics for a folder of fused images against their source pairs.

    mmdrfuse evaluate --fused DIR --ir DIR --vis DIR [--metrics SD VIF ...|paper|all] [--out FILE.csv] [--skip-bad]
                      [--convention mmdrfuse|vifb]
    mmdrfuse evaluate --list-conventions | --list-metrics [--convention vifb]

Images are paired by file stem across the three folders and read with the authors' evaluator's convention
(:func:`mmdrfuse.metrics.reading.read_eval_gray`: 8-bit, OpenCV BGR2GRAY weights, rounded). For medical pairs pass
the MRI folder as ``--ir`` and the PET/SPECT folder as ``--vis``. The CSV holds one row per image and a final
``mean`` row (plain mean over the images; NaN if any image's value is NaN).

``--convention vifb`` computes VIFB's 13 metrics instead, as VIFB's MATLAB code does (colour kept, per channel,
VIFB's definitions and column names; :mod:`mmdrfuse.metrics.vifb`, :mod:`mmdrfuse.evaluate_vifb`).

On CPU in float64 (the defaults) pairs are evaluated in a pipeline: ``torch.get_num_threads()`` worker threads each
read (decoding releases the GIL), convert and compute one pair at a time with single-threaded C kernels, so that
decoding and computing share the thread budget instead of oversubscribing it; results are collected in order.

Python API: :func:`evaluate_folder` returns the per-image rows as a :class:`pandas.DataFrame`.
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from mmdrfuse import metrics as M
from mmdrfuse.atomic import atomic_path
from mmdrfuse.errors import BadInputError, MMDRFuseError
from mmdrfuse.images import Pair, match_stems, pair_rows, read_ahead
from mmdrfuse.metrics import _native
from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics.reading import CONVENTIONS, read_eval_gray_u8

DTYPES = {"float64": torch.float64, "float32": torch.float32}
PIXEL_BUDGET = 4 * 640 * 480  # pixels per batch (memory: ~40 float64 maps of that size); large images go one by one


# ------------------------------------------------------------------------------------------------- reading
# Peak memory per pixel of one pair in flight (measured: a 2000 x 3000 triple added ~25 B/px to the process with the
# C kernels; the plain torch path took ~140 B/px on 8000 x 8000), with a margin for the second worker's pair.
EVAL_BYTES_PER_PIXEL = 64


def _read_triple_u8(pair: Pair, convention: str) -> np.ndarray:
    """Read (fused, ir, vis) of one pair as a 3 x H x W uint8 array; BadInputError on unreadable or mismatched, and on
    an image too large for the memory available (checked from its header, before decoding)."""
    from mmdrfuse.images import check_pixels, image_size

    check_pixels(pair.paths[0], *image_size(pair.paths[0]), EVAL_BYTES_PER_PIXEL)
    imgs = [read_eval_gray_u8(p, convention) for p in pair.paths]
    shape = imgs[0].shape
    for p, img in zip(pair.paths[1:], imgs[1:]):
        if img.shape != shape:
            raise BadInputError(f"{pair.paths[0]}: size {tuple(shape)} differs from {p} {tuple(img.shape)}; "
                                "fuse the pair again or remove it (or pass --skip-bad)", str(pair.paths[0]))
    return np.stack(imgs)


def _read_triple(pair: Pair, convention: str) -> torch.Tensor:
    """:func:`_read_triple_u8` as a torch tensor."""
    return torch.from_numpy(_read_triple_u8(pair, convention))


def _too_small(pair: Pair, shape: Sequence[int], names: Sequence[str], need: int) -> BadInputError:
    return BadInputError(f"{pair.paths[0]}: {shape[-2]} x {shape[-1]} is too small for "
                         f"{', '.join(n for n in names if M.get(n).min_size > min(shape[-2:]))} "
                         f"(needs >= {need} x {need}); drop those metrics or the image", str(pair.paths[0]))


def _evaluate_pair(pair: Pair, names: Sequence[str], convention: str, need: int) -> dict[str, float]:
    """Read one pair and compute its metrics on this thread alone (the C kernels single-threaded): a pipeline
    worker's job. The values equal ``compute_all`` on the same images."""
    x = _read_triple_u8(pair, convention)
    if min(x.shape[-2:]) < need:
        raise _too_small(pair, x.shape, names, need)
    xd = torch.from_numpy(x.astype(np.float64))  # values 0..255 from uint8: no validation pass needed
    ctx = Batch.trusted(xd[0:1], xd[1:2], xd[2:3])
    with _native.thread_limit(1):
        return {n: float(M.get(n).impl(ctx)[0]) for n in names}


# -------------------------------------------------------------------------------------------------- python
def evaluate_folder(fused_dir: str | os.PathLike, ir_dir: str | os.PathLike, vis_dir: str | os.PathLike,
                    metrics: Iterable[str] | None = None, *, batch_size: int = 1, device: str | torch.device = "cpu",
                    dtype: torch.dtype = torch.float64, convention: str = "float", skip_bad: bool = False,
                    skipped: list[str] | None = None, progress: bool = True, read_workers: int = 2):
    """Metrics of every fused image in ``fused_dir`` against its (IR, VIS) sources: a DataFrame with a ``stem``
    column and one column per metric (one row per image, sorted by stem, no mean row).

    ``metrics`` defaults to the paper's six then the extras (:data:`mmdrfuse.metrics.DEFAULT_METRICS`). Images of
    equal size are evaluated ``batch_size`` at a time on ``device`` (fewer when a batch would exceed
    :data:`PIXEL_BUDGET` pixels), with images read ahead in ``read_workers`` threads; except on CPU in float64 with
    ``batch_size`` 1 (the defaults, with the C kernels built), where ``torch.get_num_threads()`` workers each read
    and compute whole pairs single-threaded (torch's intra-op threads are set to 1 while they run, then restored;
    ``read_workers`` is not used). A missing partner, an unreadable image, a size
    mismatch or an image too small for a metric raises :class:`BadInputError`, or with ``skip_bad`` leaves the pair
    out and appends a message to ``skipped`` (also stored in ``df.attrs["skipped"]``).

    ``convention``: ``"mmdrfuse"`` (= ``"float"``, the default) or its reading variant ``"uint8"`` (see
    :mod:`mmdrfuse.metrics.reading`), or ``"vifb"``: VIFB's metrics, names and colour reading
    (:func:`mmdrfuse.evaluate_vifb.evaluate_folder_vifb`; ``batch_size`` does not apply there).
    """
    if convention == "vifb":
        from mmdrfuse.evaluate_vifb import evaluate_folder_vifb

        return evaluate_folder_vifb(fused_dir, ir_dir, vis_dir, metrics, device=device, dtype=dtype,
                                    skip_bad=skip_bad, skipped=skipped, progress=progress, read_workers=read_workers)
    if convention not in CONVENTIONS and M.check_convention(convention) == "mmdrfuse":  # unknown names raise
        convention = "float"
    import pandas as pd

    names = M.resolve(metrics)
    need = M.min_size(names)
    skipped = [] if skipped is None else skipped
    pairs = match_stems(fused_dir, ir_dir, vis_dir, skip_bad=skip_bad, skipped=skipped)
    dev = torch.device(device)
    rows: list[dict] = []
    bar = _progress(len(pairs), progress)
    try:
        if dev.type == "cpu" and dtype == torch.float64 and batch_size == 1 and _native.available():
            # the pipeline: torch.get_num_threads() workers, each reading and computing whole pairs on one thread
            # (torch's own intra-op threads set to 1 meanwhile, for metrics without a C kernel)
            with _native.one_thread_each() as workers:
                job = functools.partial(_evaluate_pair, names=names, convention=convention, need=need)
                rows = pair_rows(pairs, job, workers, skip_bad=skip_bad, skipped=skipped, bar=bar)
        else:
            _evaluate_batched(pairs, names, need, batch_size, dev, dtype, convention, skip_bad, skipped,
                              read_workers, rows, bar)
    finally:
        bar.close()
    if not rows:
        first = f"; first: {skipped[0]}" if skipped else ""
        raise BadInputError(f"{fused_dir}: no pair could be evaluated ({len(skipped)} skipped{first})", str(fused_dir))
    df = pd.DataFrame(rows, columns=["stem"] + names)
    df.attrs["skipped"] = list(skipped)
    return df


def _progress(total: int, enabled: bool):
    """A tqdm bar on stderr, or a stand-in with ``update``/``close`` when disabled (tqdm then is not imported)."""
    if not enabled:
        class _Off:
            def update(self, n: int = 1) -> None:
                pass

            def close(self) -> None:
                pass

        return _Off()
    from tqdm import tqdm

    return tqdm(total=total, desc="evaluate", unit="pair", file=sys.stderr)


def _evaluate_batched(pairs, names, need, batch_size, dev, dtype, convention, skip_bad, skipped, read_workers,
                      rows, bar) -> None:
    """The general loop (any device, dtype and batch size): images read ahead in ``read_workers`` threads, batches
    of equal size computed with :func:`mmdrfuse.metrics.compute_all` on this thread."""
    batch: list[tuple[str, torch.Tensor]] = []

    def flush() -> None:
        if not batch:
            return
        x = torch.stack([t for _, t in batch]).to(dev)  # n x 3 x H x W uint8
        x = x.to(dtype)
        vals = M.compute_all(x[:, 0:1], x[:, 1:2], x[:, 2:3], names, dtype=dtype)
        vals = {k: v.detach().to("cpu", torch.float64).tolist() for k, v in vals.items()}
        for i, (stem, _) in enumerate(batch):
            rows.append({"stem": stem, **{k: vals[k][i] for k in names}})
        batch.clear()

    for pair, fut in read_ahead(pairs, lambda p: _read_triple(p, convention), read_workers, depth=max(4, 2 * batch_size)):
        try:
            triple = fut.result()
            if min(triple.shape[-2:]) < need:
                raise _too_small(pair, triple.shape, names, need)
        except BadInputError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
            bar.update(1)
            continue
        cap = max(1, min(batch_size, PIXEL_BUDGET // (triple.shape[-2] * triple.shape[-1])))
        if batch and (batch[0][1].shape != triple.shape or len(batch) >= cap):
            flush()
        batch.append((pair.stem, triple))
        bar.update(1)
    flush()


def with_mean_row(df):
    """The per-image table plus a final ``mean`` row (NaN propagates, as in the evaluator)."""
    import pandas as pd

    mean = df.drop(columns=["stem"]).mean(skipna=False)
    return pd.concat([df, pd.DataFrame([{"stem": "mean", **mean.to_dict()}])], ignore_index=True)


# ----------------------------------------------------------------------------------------------------- CLI
def _metric_names(values: list[str] | None, convention: str = "mmdrfuse") -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for v in values:
        for n in filter(None, (s.strip() for s in v.split(","))):
            if n.lower() == "paper":
                if convention == "vifb":
                    raise MMDRFuseError("--metrics paper names the MMDRFuse paper's six; with --convention vifb use "
                                        "VIFB's names (mmdrfuse evaluate --list-metrics --convention vifb) or 'all'")
                out += M.PAPER_METRICS
            elif n.lower() == "all":
                out += _vifb().NAMES if convention == "vifb" else list(M.METRICS)
            else:
                out.append(n)
    return out


def _vifb():
    from mmdrfuse.metrics import vifb

    return vifb


def _resolve(names: list[str] | None, convention: str) -> list[str]:
    return _vifb().resolve(names) if convention == "vifb" else M.resolve(names)


def _spec(name: str, convention: str) -> tuple[bool, bool, str]:
    """(in the paper, higher is better, description) of a metric of the convention."""
    spec = _vifb().get(name) if convention == "vifb" else M.get(name)
    return getattr(spec, "in_paper", False), spec.higher_is_better, spec.description


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fused", metavar="DIR", help="folder of fused images (paired with the sources by file stem)")
    parser.add_argument("--ir", metavar="DIR", help="folder of IR (or MRI) source images: source A")
    parser.add_argument("--vis", metavar="DIR", help="folder of visible (or PET/SPECT) source images: source B")
    parser.add_argument("--metrics", nargs="+", metavar="NAME",
                        help="metric names (space- or comma-separated), 'paper' for the paper's six, 'all' for every "
                             "registered one; default: the paper's six then EN SF AG MI PSNR MSE Nabf")
    parser.add_argument("--out", metavar="FILE.csv", help="write per-image values and a final 'mean' row to this CSV")
    parser.add_argument("--skip-bad", action="store_true",
                        help="skip pairs with a missing partner, an unreadable image or a size mismatch "
                             "(listed at the end)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="images of equal size evaluated together (default 1: on CPU one pair at a time keeps the "
                             "maps in cache and measured faster per pair than 4; batches help on a GPU)")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float64",
                        help="computation precision (default float64)")
    parser.add_argument("--reading", choices=CONVENTIONS, default=None,
                        help="colour -> gray convention of --convention mmdrfuse: 'float' = the authors' evaluator "
                             "(cv2 float32 BGR2GRAY, rounded; default), 'uint8' = cv2.cvtColor on uint8")
    parser.add_argument("--convention", default="mmdrfuse", metavar="NAME",
                        help="metric convention: 'mmdrfuse' (the paper's evaluator; default) or 'vifb' (VIFB's MATLAB "
                             "benchmark: its 13 metrics, colour per channel, its column names); see "
                             "--list-conventions")
    parser.add_argument("--list-conventions", action="store_true", help="list the metric conventions and exit")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, the core count); "
                             "1 is faster when other processes keep the cores busy")
    parser.add_argument("--list-metrics", action="store_true",
                        help="list the registered metrics (of --convention) and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _list_metrics(convention: str = "mmdrfuse") -> int:
    from tabulate import tabulate

    if convention == "vifb":
        rows = [(n, "higher" if s.higher_is_better else "lower", s.description)
                for n, s in _vifb().VIFB_METRICS.items()]
        print(tabulate(rows, headers=["VIFB metric", "better", "description"]))
        return 0
    rows = [(n, "yes" if s.in_paper else "", "higher" if s.higher_is_better else "lower", s.description)
            for n, s in M.METRICS.items()]
    print(tabulate(rows, headers=["metric", "paper", "better", "description"]))
    return 0


def _list_conventions() -> int:
    for name, desc in M.CONVENTIONS.items():
        print(f"{name:<9} {desc}")
    return 0


RESUME_HINT = "nothing was written (--out is written at the end); rerun the command to start again"


def run(args: argparse.Namespace) -> int:
    from tabulate import tabulate
    from mmdrfuse.atomic import check_out_file

    if args.list_conventions:
        return _list_conventions()
    convention = M.check_convention(args.convention)
    if args.list_metrics:
        return _list_metrics(convention)
    if convention == "vifb" and args.reading:
        raise MMDRFuseError("--reading applies to --convention mmdrfuse; the vifb convention reads colour as "
                            "MATLAB's imread does")
    missing = [f"--{k}" for k in ("fused", "ir", "vis") if not getattr(args, k)]
    if missing:
        raise MMDRFuseError(f"mmdrfuse evaluate needs {' '.join(missing)} (see mmdrfuse evaluate --help)")
    if args.batch_size < 1:
        raise MMDRFuseError("--batch-size must be >= 1")
    if args.threads is not None:
        if args.threads < 1:
            raise MMDRFuseError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.out and Path(args.out).suffix.lower() != ".csv":
        raise MMDRFuseError(f"{args.out}: --out must name a .csv file")
    if args.out:
        check_out_file(args.out, "--out CSV")  # before any metric is computed
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, ValueError, AssertionError) as exc:  # AssertionError: torch built without CUDA
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MMDRFuseError(f"--device {args.device}: not usable here ({reason}); try --device cpu") from None
    names = _resolve(_metric_names(args.metrics, convention), convention)
    skipped: list[str] = []
    reading = "vifb" if convention == "vifb" else args.reading or "float"
    df = evaluate_folder(args.fused, args.ir, args.vis, names, batch_size=args.batch_size, device=device,
                         dtype=DTYPES[args.dtype], convention=reading, skip_bad=args.skip_bad, skipped=skipped,
                         progress=not args.quiet)
    table = with_mean_row(df)
    if args.out:
        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, index=False)
    mean = table.iloc[-1]
    rows = [(n, f"{mean[n]:.4f}", "paper" if paper else "", "higher" if higher else "lower")
            for n in names for paper, higher, _ in [_spec(n, convention)]]
    print(tabulate(rows, headers=[f"metric (mean of {len(df)})", "value", "", "better"]))
    for msg in skipped[:10]:
        print(f"skipped: {msg}", file=sys.stderr)
    if len(skipped) > 10:
        print(f"skipped: ... and {len(skipped) - 10} more", file=sys.stderr)
    nan = [n for n in names if df[n].isna().any()]
    if nan:
        print(f"warning: NaN values for {', '.join(nan)} (e.g. constant images); their mean is NaN", file=sys.stderr)
    if args.out:
        print(f"wrote {args.out} ({len(df)} images + mean row{f', {len(skipped)} skipped' if skipped else ''})")
    return 0
