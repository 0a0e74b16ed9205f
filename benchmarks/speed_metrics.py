"""Speed of the fusion metrics on CPU: the kernels (mmdrfuse.metrics.compute_all) per pair at 640 x 480 and
1280 x 1024, per metric, the whole MSRS test set in pairs/s, the direct-convolution NumPy/SciPy evaluator for
comparison, and what a user sees: ``mmdrfuse evaluate`` as a whole process on a folder.

    python -m benchmarks.speed_metrics [--data-root DIR] [--fused DIR] [--runs 15] [--warmup 3] [--threads 1,2]
                                       [--baseline-runs 1] [--no-dataset] [--out-dir results] [--quiet]
                                       [--process-repeats 5] [--process-pairs N] [--baseline-repo DIR]
                                       [--process-threads T] [--only-process] [--no-process]

Cases (real images from the data root; the fused image is round((A + B) / 2) unless ``--fused`` names a folder of
fused MSRS test images, e.g. MMDRFuse's outputs):

- ``pair_640x480`` / ``pair_1280x1024``: one MSRS / LLVIP pair, ``compute_all`` of the twelve paper + extra metrics
  (SD SCD VIF Qabf SSIM CC EN SF AG MI PSNR MSE), and of those plus Nabf (``+Nabf``). ``--warmup`` untimed calls,
  then ``--runs`` timed ones: median and minimum wall time, median process CPU time.
- ``metric_<name>``: each metric alone on the 640 x 480 pair (what sharing saves shows in the sum).
- ``numpy_direct_640x480``: the same twelve definitions computed the way the authors' evaluator does (NumPy, direct
  2-D ``scipy.signal.convolve2d`` windows, scikit-image SSIM, scikit-learn MI; benchmarks/numpy_direct.py),
  single-threaded; the speed-up column is relative to it.
- ``msrs_test_set``: ``evaluate_folder`` on all MSRS test pairs (reading, pairing, batching: what ``mmdrfuse
  evaluate`` does), in pairs/s; ``msrs_test_set_compute_batch{1,4}`` the same pairs already in memory.
- ``process_this`` / ``process_baseline``: the whole process, ``python -m mmdrfuse evaluate --fused F --ir I --vis V
  --out m.csv --quiet`` (the 13 default metrics) run as a subprocess with this checkout (or ``--baseline-repo``) as
  working directory, on the MSRS test folders (``--process-pairs N``: the first N pairs), wall time from process
  start to exit, amortised per pair; ``process_startup_*`` the start-up alone (``evaluate --list-metrics``: the
  interpreter, torch and the command's modules, no image). One untimed run of each first, then
  ``--process-repeats`` rounds with the checkouts' order alternating, so both see the same load (the suite's one
  whole-command timer, benchmarks/whole_process.py). The baseline's CSV is compared value by value with this
  checkout's (largest relative difference in the note).
  ``--only-process`` runs just these rows.

Writes ``<out-dir>/speed_metrics.csv`` and ``speed_metrics.provenance.json`` (command, machine, date, git commit,
torch version, threads, load average before/after). Other processes on a shared machine slow every row: the minimum
is the best estimate of the kernels' speed, the median of what a user sees under the recorded load.

Old against new, side by side (e.g. the commit before the C kernels)::

    git worktree add --detach /tmp/old 47d04ee
    python -m benchmarks.speed_metrics --only-process --baseline-repo /tmp/old --process-repeats 5 --out-dir /tmp/sm
"""
from __future__ import annotations

import argparse
import datetime as _dt
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mmdrfuse import metrics as M
from mmdrfuse.atomic import write_json, write_with
from mmdrfuse.paths import data_root, repo_root

NAME = "speed_metrics"
TWELVE = M.PAPER_METRICS + ["EN", "SF", "AG", "MI", "PSNR", "MSE"]
TARGET_MS_640 = 70.0  # issue 3: <= 70 ms per 640 x 480 pair for the twelve metrics on the 2-core CPU
AUTHORS_S_PER_PAIR = 3.5  # the authors' NumPy evaluator, one core, per 640 x 480 pair (issue 20's reference)
PROCESS_TARGET_MS, PROCESS_AIM_MS = 35.0, 17.5  # issue 20: 100x and 200x the authors' evaluator, whole process
PAIRS = {  # case -> (folder under the data root, ir subfolder, vis subfolder, stem)
    "640x480": ("MSRS/test", "ir", "vi", "00004N"),
    "1280x1024": ("LLVIP/test_samples", "ir", "vi", "190001"),
}


# ---------------------------------------------------------------------------------------------------- timing
def _time(fn: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"median_ms": 1e3 * statistics.median(wall), "min_ms": 1e3 * min(wall),
            "cpu_ms": 1e3 * statistics.median(cpu), "runs": runs}


def _find(root: Path, folder: str, sub: str, stem: str) -> Path | None:
    from mmdrfuse.images import IMAGE_EXTENSIONS

    d = root / folder / sub
    return next((d / (stem + e) for e in IMAGE_EXTENSIONS if (d / (stem + e)).is_file()), None)


def _load_pair(root: Path, case: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
    """(F, A, B) as 1 x 1 x H x W float64 0..255 (F = round((A + B) / 2)), and where they came from."""
    from mmdrfuse.metrics.reading import read_eval_gray

    folder, ir, vi, stem = PAIRS[case]
    pa, pb = _find(root, folder, ir, stem), _find(root, folder, vi, stem)
    if pa is None or pb is None:
        h, w = (int(v) for v in case.split("x")[::-1])
        g = torch.Generator().manual_seed(0)
        a = torch.randint(0, 256, (1, 1, h, w), generator=g).double()
        b = torch.randint(0, 256, (1, 1, h, w), generator=g).double()
        src = f"synthetic random {h}x{w} (seed 0; {folder}/{ir}/{stem}.* not found)"
    else:
        a, b = read_eval_gray(pa)[None, None], read_eval_gray(pb)[None, None]
        src = f"{folder}/{{{ir},{vi}}}/{pa.name}"
    return torch.round((a + b) / 2), a, b, src


# ---------------------------------------------------------------------------------------------------- dataset
def _prepare_dataset(root: Path, fused: Path | None, tmp: Path, quiet: bool) -> dict | None:
    """The MSRS test folders, a fused folder (written to ``tmp`` as round((A + B) / 2) unless given; not timed) and
    all triples in memory for the compute-only row."""
    from mmdrfuse.images import match_stems
    from mmdrfuse.metrics.reading import read_eval_gray

    ir, vi = root / "MSRS" / "test" / "ir", root / "MSRS" / "test" / "vi"
    if not ir.is_dir() or not vi.is_dir():
        print(f"skipping the MSRS test set: {ir} not found", file=sys.stderr)
        return None
    if fused is None:
        fused = _mean_folder(ir, vi, tmp)
        note = "fused = round((A + B) / 2)"
    else:
        note = f"fused = {fused}"
    triples = torch.stack([torch.stack([read_eval_gray(x) for x in p.paths]).to(torch.uint8)
                           for p in match_stems(fused, ir, vi)])
    return {"fused": fused, "ir": ir, "vi": vi, "note": note, "triples": triples}


def _mean_folder(ir: Path, vi: Path, out: Path) -> Path:
    """``out`` filled with round((A + B) / 2) of every pair (a stand-in fused folder)."""
    from mmdrfuse.images import match_stems, save_image
    from mmdrfuse.metrics.reading import read_eval_gray

    out.mkdir(parents=True, exist_ok=True)
    for p in match_stems(ir, vi):
        a, b = read_eval_gray(p.paths[0]), read_eval_gray(p.paths[1])
        save_image(out / f"{p.stem}.png", torch.round((a + b) / 2).numpy().astype(np.uint8))
    return out


def _dataset_rows(prep: dict, threads: int, quiet: bool) -> list[dict]:
    from mmdrfuse.evaluate import evaluate_folder

    t0, c0 = time.perf_counter(), time.process_time()
    df = evaluate_folder(prep["fused"], prep["ir"], prep["vi"], TWELVE, progress=not quiet)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(df)
    rows = [_row("msrs_test_set", "640x480", n, TWELVE, threads,
                 {"median_ms": 1e3 * wall / n, "min_ms": float("nan"), "cpu_ms": 1e3 * cpu / n, "runs": 1},
                 note=f"evaluate_folder end to end (read + pair, default batch size), {prep['note']}",
                 pairs_per_s=n / wall)]
    x = prep["triples"]
    for bs in (1, 4):
        t0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(x), bs):
            xb = x[i:i + bs].double()
            M.compute_all(xb[:, 0:1], xb[:, 1:2], xb[:, 2:3], TWELVE)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append(_row(f"msrs_test_set_compute_batch{bs}", "640x480", len(x), TWELVE, threads,
                         {"median_ms": 1e3 * wall / len(x), "min_ms": float("nan"), "cpu_ms": 1e3 * cpu / len(x),
                          "runs": 1}, note=f"compute_all only, images in memory, batches of {bs}",
                         pairs_per_s=len(x) / wall))
    return rows


# ----------------------------------------------------------------------------------------------- whole process
def process_rows(fused: Path, ir: Path, vi: Path, *, pairs: int | None, repeats: int, baseline: Path | None,
                 threads: int | None, tmp: Path, quiet: bool) -> list[dict]:
    """The whole-process rows: this checkout (and ``baseline``) running ``mmdrfuse evaluate`` on the folders, timed by
    the suite's whole-command timer (benchmarks.whole_process: one untimed run each, then the checkouts alternating;
    the start-up alone is ``evaluate --list-metrics``)."""
    from benchmarks.whole_process import command_argv, compare, csv_max_rel_diff, subset
    from mmdrfuse.images import match_stems

    use = subset({"fused": fused, "ir": ir, "vis": vi}, pairs, tmp / "subset")
    n = len(match_stems(*use.values()))
    repos = {"this": repo_root()}
    if baseline is not None:
        repos["baseline"] = Path(baseline)
    extra = ["--threads", str(threads)] if threads else []
    timings = compare(repos, command_argv("evaluate", use, extra=extra), n,
                      ["-m", "mmdrfuse", "evaluate", "--list-metrics"], repeats=repeats, warmup=1,
                      progress=not quiet, alternate=True, out_dir=tmp / "process")
    last = {t.label: t.last_out / "metrics.csv" for t in timings}
    diff = csv_max_rel_diff(last["this"], last["baseline"]) if baseline else None
    rows = []
    for t in timings:
        med, mn = statistics.median(t.seconds), min(t.seconds)
        tt = {"median_ms": 1e3 * med / n, "min_ms": 1e3 * mn / n, "cpu_ms": 1e3 * statistics.median(t.cpu) / n,
              "runs": repeats}
        note = (f"python -m mmdrfuse evaluate (13 default metrics, reading included) in {t.repo}, wall time "
                f"from process start, amortised over {n} pairs; {use['fused']}")
        if t.label == "baseline" and diff is not None:
            note += f"; largest relative difference of its CSV to this checkout's: {diff:.1e}"
        rows.append(_row(f"process_{t.label}", "640x480", n, M.DEFAULT_METRICS, threads or torch.get_num_threads(),
                         tt, note=note, pairs_per_s=n / med, total_s=(med, mn)))
        st = {"median_ms": 1e3 * statistics.median(t.startup), "min_ms": 1e3 * min(t.startup),
              "cpu_ms": float("nan"), "runs": repeats}
        rows.append(_row(f"process_startup_{t.label}", "", 0, [], threads or torch.get_num_threads(), st,
                         note="python -m mmdrfuse evaluate --list-metrics: interpreter, torch and the command's "
                              "modules (ms_per_pair columns hold the whole run)", pairs_per_s=float("nan")))
    return rows


# ------------------------------------------------------------------------------------------------------- main
def _row(case, size, pairs, names, threads, t, note="", pairs_per_s=None, speedup=None, total_s=None) -> dict:
    return {"case": case, "size": size, "pairs": pairs, "metrics": " ".join(names), "threads": threads,
            "ms_per_pair_median": round(t["median_ms"], 3), "ms_per_pair_min": round(t["min_ms"], 3),
            "cpu_ms_per_pair": round(t["cpu_ms"], 3), "runs": t["runs"],
            "pairs_per_s": round(pairs_per_s if pairs_per_s is not None else 1e3 / t["median_ms"], 3),
            "speedup_vs_numpy_direct": "" if speedup is None else round(speedup, 1),
            "total_s_median": "" if total_s is None else round(total_s[0], 3),
            "total_s_min": "" if total_s is None else round(total_s[1], 3), "note": note}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.speed_metrics", description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", help="data root (default: $MMDRFUSE_DATA or the user cache)")
    ap.add_argument("--fused", help="folder of fused MSRS test images for the data-set row (default round((A+B)/2))")
    ap.add_argument("--runs", type=int, default=15, help="timed calls per case (default 15)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    ap.add_argument("--threads", default=None,
                    help="comma-separated torch thread counts to measure (default: 1 and torch's default, the core "
                         "count); every case runs once per setting")
    ap.add_argument("--baseline-runs", type=int, default=1, help="timed runs of the direct NumPy evaluator (0: skip)")
    ap.add_argument("--no-dataset", action="store_true", help="skip the MSRS test-set rows")
    ap.add_argument("--out-dir", default=str(repo_root() / "results"), help="where the CSV and provenance go")
    ap.add_argument("--malloc", choices=["keep", "default"], default="keep",
                    help="keep: the allocator policy of the suite's commands (freed memory kept, "
                         "mmdrfuse/memory.py); default: glibc's own (default: keep)")
    ap.add_argument("--process-repeats", type=int, default=5,
                    help="timed whole-process runs of mmdrfuse evaluate per checkout (default 5; 0: none)")
    ap.add_argument("--process-pairs", type=int, default=None,
                    help="whole-process runs on the first N MSRS test pairs only (default: all)")
    ap.add_argument("--baseline-repo", help="another checkout (e.g. an older commit's worktree) whose mmdrfuse "
                                            "evaluate is timed side by side with this one's")
    ap.add_argument("--process-threads", type=int, default=None,
                    help="pass --threads T to mmdrfuse evaluate (default: torch's choice, the core count)")
    ap.add_argument("--only-process", action="store_true", help="only the whole-process rows")
    ap.add_argument("--no-process", action="store_true", help="skip the whole-process rows")
    ap.add_argument("--quiet", action="store_true")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from mmdrfuse.memory import keep_freed_memory

    if args.malloc == "keep":
        keep_freed_memory()
    default_threads = torch.get_num_threads()
    thread_list = ([int(t) for t in args.threads.split(",")] if args.threads
                   else sorted({1, default_threads}))
    root = data_root(args.data_root)
    load_before = os.getloadavg()
    pairs = {case: _load_pair(root, case) for case in PAIRS}
    kernels = not args.only_process
    rows, base_ms = _numpy_direct_rows(pairs, args) if kernels else ([], None)
    tmp = tempfile.TemporaryDirectory(prefix="speed_metrics_")
    prep = None
    if kernels and not args.no_dataset:
        prep = _prepare_dataset(root, Path(args.fused) if args.fused else None, Path(tmp.name), args.quiet)
    for threads in (thread_list if kernels else []):
        torch.set_num_threads(threads)
        rows += _pair_rows(pairs, threads, args, base_ms)
        if prep is not None:
            rows += _dataset_rows(prep, threads, args.quiet)
    torch.set_num_threads(default_threads)
    if not args.no_process and args.process_repeats > 0:
        ir, vi = root / "MSRS" / "test" / "ir", root / "MSRS" / "test" / "vi"
        if not ir.is_dir() or not vi.is_dir():
            print(f"skipping the whole-process rows: {ir} not found", file=sys.stderr)
        else:
            fused = Path(args.fused) if args.fused else (prep["fused"] if prep is not None else
                                                         _mean_folder(ir, vi, Path(tmp.name) / "mean"))
            rows += process_rows(fused, ir, vi, pairs=args.process_pairs, repeats=args.process_repeats,
                                 baseline=Path(args.baseline_repo) if args.baseline_repo else None,
                                 threads=args.process_threads, tmp=Path(tmp.name), quiet=args.quiet)
    tmp.cleanup()
    _write_and_print(rows, args, argv, root, thread_list, {case: v[3] for case, v in pairs.items()}, load_before)
    return 0


def _numpy_direct_rows(pairs: dict, args: argparse.Namespace) -> tuple[list[dict], float | None]:
    """The direct NumPy evaluator's row on the 640 x 480 pair and its median time (the speed-ups' base), when
    scikit-image and scikit-learn are installed and ``--baseline-runs`` > 0."""
    try:
        import sklearn.metrics  # noqa: F401
        import skimage.metrics  # noqa: F401
    except ImportError as exc:
        print(f"skipping the direct NumPy evaluator: {exc} (pip install scikit-image scikit-learn)", file=sys.stderr)
        args.baseline_runs = 0
    if args.baseline_runs <= 0:
        return [], None
    f, a, b, src = pairs["640x480"]
    from benchmarks.numpy_direct import numpy_direct

    fn, an, bn = (x[0, 0].numpy() for x in (f, a, b))
    tb = _time(lambda: numpy_direct(fn, an, bn), args.baseline_runs, 0)
    ref = numpy_direct(fn, an, bn)
    ours = {k: v.item() for k, v in M.compute_all(f, a, b, TWELVE).items()}
    worst = max(abs(ours[k] - ref[k]) / max(abs(ref[k]), 1e-12) for k in TWELVE)
    return [_row("numpy_direct_640x480", "640x480", 1, TWELVE, 1, tb, speedup=1.0,
                 note=f"direct 2-D convolutions (NumPy/SciPy, one thread); max rel. diff to ours {worst:.1e}")], \
        tb["median_ms"]


def _pair_rows(pairs: dict, threads: int, args: argparse.Namespace, base_ms: float | None) -> list[dict]:
    """Per pair: the twelve metrics (and with Nabf); on the 640 x 480 pair also each metric alone."""
    rows = []
    for case, (f, a, b, src) in pairs.items():
        for names, label in ((TWELVE, "pair"), (TWELVE + ["Nabf"], "pair+Nabf")):
            t = _time(lambda: M.compute_all(f, a, b, names), args.runs, args.warmup)
            sp = base_ms / t["median_ms"] if base_ms and case == "640x480" else None
            rows.append(_row(f"{label}_{case}", case, 1, names, threads, t, note=src, speedup=sp))
        if case == "640x480":
            for n in TWELVE + ["Nabf"]:
                t = _time(lambda: M.compute_all(f, a, b, [n]), max(5, args.runs // 3), 1)
                rows.append(_row(f"metric_{n}", case, 1, [n], threads, t, note="this metric alone"))
    return rows


def _write_and_print(rows: list[dict], args: argparse.Namespace, argv: list[str] | None, root: Path,
                     thread_list: list[int], sources: dict, load_before: tuple) -> None:
    """Write the CSV and the provenance, print the table and the verdict on the 640 x 480 target."""
    import pandas as pd
    from tabulate import tabulate

    from benchmarks.report import git_commit, git_dirty, machine
    from mmdrfuse.memory import malloc_policy

    load_after = os.getloadavg()
    df = pd.DataFrame(rows)
    out = Path(args.out_dir)
    write_with(out / f"{NAME}.csv", lambda p: df.to_csv(p, index=False))
    commit, dirty = git_commit(), git_dirty()
    write_json(out / f"{NAME}.provenance.json", {
        "target": NAME,
        "command": "python -m benchmarks.speed_metrics " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:])),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "git_dirty": dirty,
        "machine": machine(),
        "torch": torch.__version__, "numpy": np.__version__, "threads": thread_list, "malloc": malloc_policy(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "settings": {"runs": args.runs, "warmup": args.warmup, "baseline_runs": args.baseline_runs,
                     "metrics": TWELVE, "dtype": "float64", "data_root": str(root), "inputs": sources,
                     "fused_for_dataset": args.fused or "round((A + B) / 2)",
                     "process": None if args.no_process else {
                         "repeats": args.process_repeats, "pairs": args.process_pairs, "threads": args.process_threads,
                         "baseline_repo": args.baseline_repo, "metrics": M.DEFAULT_METRICS,
                         "authors_s_per_pair": AUTHORS_S_PER_PAIR}},
        "kernels": _kernel_build(),
        "note": "shared machine: compare medians under the recorded load; the minimum estimates the unloaded speed",
    })
    cols = ["case", "threads", "ms_per_pair_median", "ms_per_pair_min", "cpu_ms_per_pair", "pairs_per_s",
            "speedup_vs_numpy_direct"]
    print(tabulate(df[cols].values.tolist(), headers=cols, floatfmt=".1f"))
    print(f"allocator: {malloc_policy()}; metric kernels: {_kernel_build()}")
    _print_process_summary(df)
    for _, r in df[df.case == "pair_640x480"].iterrows():
        verdict = "met" if r.ms_per_pair_median <= TARGET_MS_640 else "not met"
        print(f"target <= {TARGET_MS_640:.0f} ms per 640x480 pair (twelve metrics), {r.threads} thread(s): {verdict} "
              f"(median {r.ms_per_pair_median:.1f} ms, min {r.ms_per_pair_min:.1f} ms)")
    print(f"load average {load_before[0]:.1f} -> {load_after[0]:.1f} (other processes share the CPU: timings are "
          "pessimistic)")
    print(f"wrote {out / (NAME + '.csv')} and {NAME}.provenance.json")


def _kernel_build() -> str:
    from mmdrfuse.metrics import _native

    return _native.isa()


def _print_process_summary(df) -> None:
    """Per checkout: ms per pair amortised (median, min), start-up, x the authors' evaluator, the issue's target."""
    proc = df[df.case.isin(["process_this", "process_baseline"])]
    for _, r in proc.iterrows():
        label = r.case.removeprefix("process_")
        st = df[df.case == f"process_startup_{label}"].iloc[0]
        x = 1e3 * AUTHORS_S_PER_PAIR / r.ms_per_pair_median
        verdict = ("aim met" if r.ms_per_pair_median <= PROCESS_AIM_MS else
                   "target met" if r.ms_per_pair_median <= PROCESS_TARGET_MS else "target not met")
        print(f"whole process ({label}): {r.total_s_median:.2f} s for {r.pairs} pairs (min {r.total_s_min:.2f} s), "
              f"{r.ms_per_pair_median:.1f} ms per pair (min {r.ms_per_pair_min:.1f}), start-up "
              f"{st.ms_per_pair_median / 1e3:.2f} s (min {st.ms_per_pair_min / 1e3:.2f}); {x:.0f}x the authors' "
              f"evaluator ({AUTHORS_S_PER_PAIR} s per pair); target <= {PROCESS_TARGET_MS} ms (aim "
              f"{PROCESS_AIM_MS}): {verdict}")
    if len(proc) == 2:
        this, base = (proc[proc.case == f"process_{k}"].iloc[0] for k in ("this", "baseline"))
        print(f"this checkout vs baseline, whole process: {base.ms_per_pair_median / this.ms_per_pair_median:.2f}x "
              f"faster (median), {base.ms_per_pair_min / this.ms_per_pair_min:.2f}x (min)")


if __name__ == "__main__":
    sys.exit(main())
