"""Speed of the student's forward on CPU: the straightforward nn.Module vs the suite's fast path, and the roofline.

    python -m benchmarks.speed_fuse [--size 1024x1280] [--batches 1,8] [--repeats 9] [--candidates default|all|a,b]
    python -m benchmarks.speed_fuse --whole-process [--pairs N] [--baseline-repo OLD_CHECKOUT]   (the command)

For each batch size, every candidate fuses a seeded random N x 2 x H x W input (the compute does not depend on the
values); after ``--warmup`` untimed calls each, the timed calls are *interleaved* across candidates (round r times
every candidate once) so that load from other processes hits all of them alike, with an untimed ``--gap`` pause
(0.05 s) before each timed call so that the previous candidate's spinning threads (onnxruntime, OpenMP) have settled;
caches are cold as in real use, since the other candidates ran in between. Reported: median and minimum ms per
pair (call time / N), megapixels per second (from the median), speed-up over ``plain`` and the ratio to the bound.

Candidates: ``plain`` (``Student.forward``), ``fast`` (:func:`mmdrfuse.fast.accelerate`, the path ``mmdrfuse fuse``
takes), ``channels_last`` (model and input in channels-last), ``onnxruntime`` (the exported ONNX graph, see
:mod:`mmdrfuse.export`), ``jit`` (``torch.jit.trace`` + ``freeze``), ``compile`` (``torch.compile``, inductor; its
compile time is reported as ``setup_s``). ``default`` = plain, channels_last, onnxruntime, fast; ``all`` adds jit and
compile. Every candidate's output is compared with ``plain`` (``max_abs_diff``).

Roofline bound per pair, measured on this machine: ``max(bytes / copy bandwidth, FLOPs / matmul FLOP/s)`` with
bytes = what the pass must move (read the 2 input planes, write the output plane: 12 bytes/pixel, float32), copy
bandwidth = best ``dst.copy_(src)`` of 64 MiB (read + write bytes / time), FLOPs = 2 x the model's MACs (thop's count:
108 MAC/pixel for the paper's student) and matmul FLOP/s = best 1024 x 1024 float32 ``torch.mm`` of 15, both with the
same thread count as the candidates (rows ``roofline_*``) and with one thread (rows ``roofline_*_1thread``).

``fast_1thread_slice_est`` (``--slices``, default 300): the fast path on one thread, best time of a 64-row slice
x H / 64 (its ``x_bound`` is relative to the single-thread bound). The minimum over many short calls drops the ones
interrupted by other processes, so on a shared machine it estimates the kernel's speed with a core to itself (no
thread start-up, no memory contention).

Writes ``<out-dir>/speed_fuse.csv`` (one row per method and batch, plus the bound rows) and
``speed_fuse.provenance.json`` (command, machine, date, git commit, torch version, threads, load average before and
after). Timings on a shared machine are noisy: look at the load average in the provenance, rerun, compare medians.
"""
from __future__ import annotations

import argparse
import copy
import datetime as _dt
import os
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmarks.roofline import roofline, roofline_rows
from mmdrfuse.atomic import write_json, write_with
from mmdrfuse.models import Student, StudentConfig

NAME = "speed_fuse"
DEFAULT_CANDIDATES = ("plain", "channels_last", "onnxruntime", "fast")
ALL_CANDIDATES = ("plain", "channels_last", "jit", "compile", "onnxruntime", "fast")


@dataclass
class Candidate:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    setup_s: float  # build time (+ first call for jit/compile)
    note: str = ""


# ------------------------------------------------------------------------------------------------- candidates
def _build(name: str, model: Student, example: torch.Tensor, tmp: Path) -> Candidate:
    t0 = time.perf_counter()
    note = ""
    if name == "plain":
        fn = model
    elif name == "fast":
        from mmdrfuse import fast

        fn = fast.accelerate(model)
        note = fast.kernel_status()
    elif name == "channels_last":
        m_cl = copy.deepcopy(model).to(memory_format=torch.channels_last)

        def fn(x: torch.Tensor) -> torch.Tensor:
            return m_cl(x.contiguous(memory_format=torch.channels_last))
    elif name == "jit":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn = torch.jit.freeze(torch.jit.trace(copy.deepcopy(model), example).eval())
            fn(example)
            fn(example)  # the profiling executor optimises on the second call
    elif name == "compile":
        fn = torch.compile(copy.deepcopy(model), dynamic=False)
        fn(example)
        note = "inductor, dynamic=False (compiled for this shape)"
    elif name == "onnxruntime":
        from mmdrfuse.export import INPUT_NAME, OUTPUT_NAME, export_onnx, onnx_session

        path = export_onnx(model, tmp / "student.onnx")
        sess = onnx_session(path)

        def fn(x: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        import onnxruntime

        note = f"onnxruntime {onnxruntime.__version__}, CPUExecutionProvider"
    else:
        raise ValueError(f"unknown candidate {name!r}; choose from {', '.join(ALL_CANDIDATES)}")
    return Candidate(name, fn, time.perf_counter() - t0, note)


# ------------------------------------------------------------------------------------------------ measurement
def measure(cands: list[Candidate], x: torch.Tensor, warmup: int, repeats: int,
            gap: float = 0.05) -> dict[str, list[float]]:
    """Seconds per call for each candidate: warm-up, then ``repeats`` interleaved rounds, with an untimed pause of
    ``gap`` seconds before every timed call: onnxruntime's threads spin for a while after each run (and OpenMP's
    after each parallel region), which would otherwise take a core from whichever candidate comes next."""
    times: dict[str, list[float]] = {c.name: [] for c in cands}
    with torch.inference_mode():
        for c in cands:
            for _ in range(warmup):
                c.fn(x)
        for _ in range(repeats):
            for c in cands:
                if gap > 0:
                    time.sleep(gap)
                t0 = time.perf_counter()
                c.fn(x)
                times[c.name].append(time.perf_counter() - t0)
    return times


def slice_estimate(model: Student, h: int, w: int, slices: int = 300, seed: int = 0, rows: int = 64) -> dict:
    """Single-thread time of the fast path per pair, estimated as (best time of one ``rows``-row slice) x h / rows.

    On a shared machine the minimum over many short calls keeps the calls that were not interrupted, so this
    approximates the kernel's speed with a core to itself (it ignores thread start-up and memory contention).
    """
    from mmdrfuse.fast import FastStudent, kernel_status

    f = FastStudent(model, threads=1)
    g = torch.Generator().manual_seed(seed)
    rows = min(rows, h)
    parts = [torch.rand(1, model.config.in_channels, rows, w, generator=g) for _ in range(max(1, h // rows))]
    best = float("inf")
    with torch.inference_mode():
        f(parts[0])
        for i in range(slices):
            x = parts[i % len(parts)]
            t0 = time.perf_counter()
            f(x)
            best = min(best, time.perf_counter() - t0)
    ms = best * h / rows * 1e3
    return {"method": "fast_1thread_slice_est", "batch": 1, "height": h, "width": w, "threads": 1,
            "ms_per_pair_median": ms, "ms_per_pair_min": ms, "mpix_per_s": h * w / ms / 1e3, "runs": slices,
            "status": "ok", "note": f"best of {slices} {rows}-row slices x {h / rows:g}, 1 thread; {kernel_status()}"}


def run_benchmark(h: int = 1024, w: int = 1280, batches=(1, 8), candidates=DEFAULT_CANDIDATES, repeats: int = 9,
                  warmup: int = 2, hidden: int = 4, seed: int = 0, threads: int | None = None,
                  progress: bool = True, copy_mib: int = 64, mm_n: int = 2048,
                  slices: int = 0, gap: float = 0.05) -> tuple[list[dict], dict]:
    """Measure; return (rows, roofline info). ``threads`` sets ``torch.set_num_threads`` (default: unchanged);
    ``copy_mib`` and ``mm_n`` size the bandwidth and matmul measurements of the bound; ``slices`` > 0 adds the
    contention-robust single-thread estimate of :func:`slice_estimate`."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = Student(StudentConfig(hidden=hidden)).eval()
    say = print if progress else (lambda *a, **k: None)
    say(f"roofline: measuring copy bandwidth and matmul FLOP/s ({torch.get_num_threads()} threads) ...")
    roof = roofline(model, h, w, copy_mib, mm_n)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in batches:
            g = torch.Generator().manual_seed(seed)
            x = torch.rand(n, model.config.in_channels, h, w, generator=g)
            cands = []
            for name in candidates:
                say(f"batch {n}: preparing {name} ...")
                try:
                    cands.append(_build(name, model, x, Path(tmp)))
                except Exception as exc:  # a candidate that cannot run here is reported, not fatal
                    rows.append({"method": name, "batch": n, "status": f"unavailable: {type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:160] if str(exc) else ''}"})
            with torch.inference_mode():
                ref = model(x)
                diffs = {c.name: float((c.fn(x) - ref).abs().max()) for c in cands}
            say(f"batch {n}: timing {', '.join(c.name for c in cands)} ({warmup} warm-up + {repeats} interleaved)")
            times = measure(cands, x, warmup, repeats, gap)
            plain_med = statistics.median(times["plain"]) / n if "plain" in times else None
            for c in cands:
                per_pair = [t / n for t in times[c.name]]
                med = statistics.median(per_pair)
                rows.append({
                    "method": c.name, "batch": n, "height": h, "width": w, "threads": torch.get_num_threads(),
                    "ms_per_pair_median": med * 1e3, "ms_per_pair_min": min(per_pair) * 1e3,
                    "mpix_per_s": h * w / med / 1e6,
                    "speedup_vs_plain": plain_med / med if plain_med else None,
                    "x_bound": med * 1e3 / roof["bound_ms"], "max_abs_diff": diffs[c.name],
                    "runs": len(per_pair), "setup_s": c.setup_s, "status": "ok", "note": c.note,
                })
    if slices and "fast" in candidates:
        say(f"fast path, 1 thread: best of {slices} timed 64-row slices ...")
        est = slice_estimate(model, h, w, slices, seed)
        est["x_bound"] = est["ms_per_pair_median"] / roof["bound_1thread_ms"]  # vs the single-thread bound
        rows.append(est)
    return rows + roofline_rows(roof, h, w), roof


COLUMNS = ["method", "batch", "height", "width", "threads", "ms_per_pair_median", "ms_per_pair_min", "mpix_per_s",
           "speedup_vs_plain", "x_bound", "max_abs_diff", "runs", "setup_s", "status", "note"]


def write_results(rows: list[dict], roof: dict, out_dir: Path, command: str, load_before, load_after,
                  settings: dict) -> list[Path]:
    import pandas as pd

    from benchmarks.report import git_commit, git_dirty, machine

    out_dir = Path(out_dir)
    df = pd.DataFrame(rows).reindex(columns=COLUMNS)
    csv = out_dir / f"{NAME}.csv"
    write_with(csv, lambda p: df.to_csv(p, index=False, float_format="%.6g"))
    prov = {
        "target": NAME,
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "machine": machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "settings": settings,
        "roofline": roof,
        "notes": ["Median and minimum wall time per pair over interleaved runs after warm-up; the machine may be "
                  "shared with other processes (see the load averages): compare medians of several runs."],
    }
    write_json(out_dir / f"{NAME}.provenance.json", prov)
    return [csv, out_dir / f"{NAME}.provenance.json"]


def format_table(rows: list[dict]) -> str:
    from tabulate import tabulate

    head = ["method", "batch", "ms/pair (median)", "ms/pair (min)", "MPix/s", "x plain", "x bound", "max|diff|",
            "setup s"]
    body = []
    for r in rows:
        if r.get("status") not in ("ok", "bound"):
            body.append([r["method"], r.get("batch"), r.get("status"), "", "", "", "", "", ""])
            continue
        body.append([r["method"], r.get("batch") or "-", r.get("ms_per_pair_median"), r.get("ms_per_pair_min"),
                     r.get("mpix_per_s"), r.get("speedup_vs_plain"), r.get("x_bound"), r.get("max_abs_diff"),
                     r.get("setup_s")])
    return tabulate(body, headers=head, floatfmt=".3g", missingval="")


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.speed_fuse", description=__doc__.splitlines()[0])
    p.add_argument("--size", default="1024x1280", help="HxW of the pair (default 1024x1280, LLVIP)")
    p.add_argument("--batches", default="1,8", help="comma-separated batch sizes (default 1,8)")
    p.add_argument("--candidates", default="default",
                   help=f"'default' ({','.join(DEFAULT_CANDIDATES)}), 'all' ({','.join(ALL_CANDIDATES)}) or a list")
    p.add_argument("--repeats", type=int, default=9, help="timed (interleaved) runs per candidate (default 9)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per candidate first (default 2)")
    p.add_argument("--gap", type=float, default=0.05,
                   help="untimed pause in seconds before every timed call, so that the previous candidate's "
                        "spinning threads settle (default 0.05)")
    p.add_argument("--hidden", type=int, default=4, help="student hidden width (default 4, the paper's)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    p.add_argument("--slices", type=int, default=300,
                   help="timed 64-row slices for the single-thread estimate of the fast path (0 = skip; default 300)")
    p.add_argument("--out-dir", default=None, help="where to write speed_fuse.csv (default ./results)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--whole-process" in argv:  # the `mmdrfuse fuse` command on a folder, from process start
        from benchmarks.whole_process import main as whole

        return whole([a for a in argv if a != "--whole-process"])
    args = parse_args(argv)
    from mmdrfuse.memory import keep_freed_memory

    keep_freed_memory()  # the policy of `mmdrfuse fuse` (mmdrfuse/memory.py); recorded in the provenance
    try:
        h, w = (int(v) for v in args.size.lower().split("x"))
        batches = tuple(int(b) for b in args.batches.split(",") if b.strip())
    except ValueError:
        print(f"error: --size must look like 1024x1280 and --batches like 1,8 (got {args.size!r}, {args.batches!r})",
              file=sys.stderr)
        return 2
    if h < 2 or w < 2 or not batches or min(batches) < 1:
        print("error: the size must be at least 2x2 and batch sizes at least 1", file=sys.stderr)
        return 2
    cands = {"default": DEFAULT_CANDIDATES, "all": ALL_CANDIDATES}.get(args.candidates)
    cands = tuple(cands or [c.strip() for c in args.candidates.split(",") if c.strip()])
    unknown = [c for c in cands if c not in ALL_CANDIDATES]
    if unknown:
        print(f"error: unknown candidate(s) {', '.join(unknown)}; choose from {', '.join(ALL_CANDIDATES)}",
              file=sys.stderr)
        return 2
    if "plain" not in cands:
        cands = ("plain", *cands)
    from mmdrfuse.paths import results_dir

    out_dir = results_dir(args.out_dir)
    command = " ".join(shlex.quote(a) for a in ["python", "-m", "benchmarks.speed_fuse", *(argv if argv is not None
                                                                                           else sys.argv[1:])])
    load_before = _loadavg()
    rows, roof = run_benchmark(h, w, batches, cands, repeats=args.repeats, warmup=args.warmup, hidden=args.hidden,
                               threads=args.threads, progress=not args.quiet, slices=args.slices, gap=args.gap)
    settings = {"size": [h, w], "batches": list(batches), "candidates": list(cands), "repeats": args.repeats,
                "warmup": args.warmup, "hidden": args.hidden, "seed": 0, "slices": args.slices, "gap_s": args.gap}
    paths = write_results(rows, roof, out_dir, command, load_before, _loadavg(), settings)
    print(format_table(rows))
    print(f"load average before/after: {load_before} / {_loadavg()} on {os.cpu_count()} CPUs; "
          f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def run(ctx) -> list[Path]:
    """Entry point for ``python -m benchmarks.run`` (if registered there): default settings, ``ctx.out_dir``."""
    load_before = _loadavg()
    rows, roof = run_benchmark(progress=getattr(ctx, "progress", True), slices=300)
    settings = {"size": [1024, 1280], "batches": [1, 8], "candidates": list(DEFAULT_CANDIDATES), "repeats": 9,
                "warmup": 2, "hidden": 4, "seed": 0, "slices": 300, "gap_s": 0.05}
    return write_results(rows, roof, Path(ctx.out_dir), getattr(ctx, "command", "") or "python -m benchmarks.run",
                         load_before, _loadavg(), settings)


if __name__ == "__main__":
    sys.exit(main())
