"""Whole-process timing of a suite command, as a user runs it: ``python -m mmdrfuse CMD ...`` on a folder, wall time
from process start to exit, amortised per pair, beside the same command in another checkout (the code before a
change), in one interleaved run (old, new, old, new, ...) so that load from other processes hits both alike.

The suite's one whole-command timer: ``python -m benchmarks.speed_fuse --whole-process`` (``mmdrfuse fuse``, this
module's :func:`main`) and the ``process_*`` rows of ``python -m benchmarks.speed_metrics`` (``mmdrfuse evaluate``)
both run :func:`compare`. A checkout is run with itself as the working directory and as ``PYTHONPATH``, so its own
``mmdrfuse`` is imported (``git worktree add --detach /tmp/old <commit>`` makes one). Start-up alone (a command that
does no work: importing the command's modules, or ``evaluate --list-metrics``) is measured too, so the per-pair
figure can be read with and without it.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from mmdrfuse.images import match_stems


@dataclass
class Timing:
    label: str  # "new" (this checkout) or "old" (--baseline-repo)
    repo: Path
    seconds: list[float]  # whole-process wall time of each run
    startup: list[float]  # wall time of the start-up alone
    pairs: int
    cpu: list[float] = field(default_factory=list)  # CPU seconds (user + system, all threads) of each run
    last_out: Path | None = None  # the output path given to the last run

    def row(self) -> dict:
        med, best = statistics.median(self.seconds), min(self.seconds)
        up = statistics.median(self.startup) if self.startup else float("nan")
        return {"code": self.label, "repo": str(self.repo), "pairs": self.pairs, "runs": len(self.seconds),
                "total_s_median": med, "total_s_min": best, "startup_s": up,
                "ms_per_pair_median": 1000 * med / self.pairs, "ms_per_pair_min": 1000 * best / self.pairs,
                "ms_per_pair_excl_startup": 1000 * (med - up) / self.pairs}


def subset(folders: dict[str, Path], n: int | None, into: Path) -> dict[str, Path]:
    """The first ``n`` pairs (by stem, matched across ``folders``) as symlinks under ``into`` (all when None)."""
    pairs = match_stems(*folders.values())
    if n is None or n >= len(pairs):
        return dict(folders)
    out = {}
    for i, (role, _) in enumerate(folders.items()):
        d = into / role
        d.mkdir(parents=True, exist_ok=True)
        for p in pairs[:n]:
            (d / p.paths[i].name).symlink_to(p.paths[i].resolve())
        out[role] = d
    return out


def _env(repo: Path, threads: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(repo)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def _run(argv: list[str], cwd: Path, env: dict) -> tuple[float, float]:
    """(wall s from process start to exit, CPU s of the child) of ``argv``; a failure raises RuntimeError."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} (in {cwd}) failed with exit code {proc.returncode}: "
                           f"{proc.stderr.strip().splitlines()[-1:]}")
    return dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def import_only(modules: Sequence[str]) -> list[str]:
    """The interpreter arguments of a start-up run that imports ``modules`` and does nothing else."""
    return ["-c", "; ".join(f"import {m}" for m in modules)]


def compare(repos: dict[str, Path], args_for: Callable[[Path], list[str]] | Mapping[str, Callable[[Path], list[str]]],
            pairs: int, startup: Sequence[str],
            repeats: int = 3, warmup: int = 1, threads: int | None = None, progress: bool = True,
            alternate: bool = False, out_dir: Path | None = None) -> list[Timing]:
    """Time ``python -m mmdrfuse <args_for(out)>`` in each repo ``repeats`` times, interleaved, after ``warmup``
    untimed runs each (they also build the C kernels into the cache); each run is followed by the start-up alone,
    ``python <startup>`` (e.g. :func:`import_only`). ``alternate``: the repos' order is reversed every other timed
    round (old, new, new, old, ...). ``out`` is a fresh path per run under ``out_dir`` (default: a temporary folder
    removed at the end); ``Timing.last_out`` names the last one. ``args_for`` may map each label of ``repos`` to its
    own arguments (two commands of one checkout, e.g. two metric conventions, timed interleaved)."""
    timings = {k: Timing(k, Path(r).resolve(), [], [], pairs) for k, r in repos.items()}
    with tempfile.TemporaryDirectory(prefix="mmdrfuse-whole-") as tmp:
        for r in range(warmup + repeats):
            order = list(timings.values())
            if alternate and r >= warmup and (r - warmup) % 2 == 1:
                order.reverse()
            for t in order:
                env = _env(t.repo, threads)
                t.last_out = Path(out_dir or tmp) / f"{t.label}-{r}"
                argv = (args_for[t.label] if isinstance(args_for, Mapping) else args_for)(t.last_out)
                secs, cpu = _run([sys.executable, "-m", "mmdrfuse", *argv], t.repo, env)
                up, _ = _run([sys.executable, *startup], t.repo, env)
                if r >= warmup:
                    t.seconds.append(secs)
                    t.cpu.append(cpu)
                    t.startup.append(up)
                if progress:
                    print(f"  {t.label} run {r + 1 - warmup if r >= warmup else 'warm-up'}: {secs:.2f} s "
                          f"({1e3 * secs / pairs:.1f} ms per pair; start-up {up:.2f} s)", file=sys.stderr)
    return list(timings.values())


def csv_max_rel_diff(a: Path, b: Path) -> float:
    """Largest relative difference between two checkouts' metric CSVs (same stems in the same order; columns in
    both); NaN when they do not line up, inf when one value is finite where the other is not."""
    import numpy as np
    import pandas as pd

    x, y = pd.read_csv(a), pd.read_csv(b)
    cols = [c for c in x.columns if c != "stem" and c in y.columns]
    if list(x.stem) != list(y.stem) or not cols:
        return float("nan")
    xv, yv = x[cols].to_numpy(float), y[cols].to_numpy(float)
    both = np.isfinite(xv) & np.isfinite(yv)
    if (np.isfinite(xv) != np.isfinite(yv)).any():
        return float("inf")
    return float(np.max(np.abs(xv - yv)[both] / np.maximum(np.abs(yv[both]), 1e-300), initial=0.0))


# ------------------------------------------------------------------------------------------------------- command
FUSE_STARTUP = ("mmdrfuse.cli", "mmdrfuse.fusion")  # the modules whose import is `mmdrfuse fuse`'s start-up


def command_argv(kind: str, folders: dict[str, Path], weights: str = "official-student",
                 extra: Sequence[str] = ()) -> Callable[[Path], list[str]]:
    """``out`` -> the ``mmdrfuse`` arguments of one timed run: ``fuse`` into the folder ``out``, or ``evaluate``
    into ``out/metrics.csv``; ``extra`` is appended (e.g. ``--threads 2``)."""
    if kind == "fuse":
        return lambda out: ["fuse", "--ir", str(folders["ir"]), "--vis", str(folders["vis"]), "--out", str(out),
                            "--weights", weights, "--quiet", *extra]
    return lambda out: ["evaluate", "--fused", str(folders["fused"]), "--ir", str(folders["ir"]), "--vis",
                        str(folders["vis"]), "--out", str(out / "metrics.csv"), "--quiet", *extra]


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.speed_fuse --whole-process``: see the module doc."""
    from mmdrfuse.errors import MMDRFuseError

    try:
        return _main(argv)
    except (MMDRFuseError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    import argparse
    import datetime as _dt
    import shlex

    import pandas as pd

    from benchmarks.report import git_commit, git_dirty, machine
    from mmdrfuse import paths
    from mmdrfuse.atomic import write_json, write_with

    p = argparse.ArgumentParser(prog="python -m benchmarks.speed_fuse --whole-process",
                                description=__doc__.splitlines()[0])
    p.add_argument("--ir", default=None, help="IR folder (default: <data root>/MSRS/test/ir)")
    p.add_argument("--vis", default=None, help="visible folder (default: <data root>/MSRS/test/vi)")
    p.add_argument("--weights", default="official-student", help="fuse: the weights (default official-student)")
    p.add_argument("--pairs", type=int, default=None, help="the first N pairs only (default: all)")
    p.add_argument("--baseline-repo", default=None, help="another checkout to time beside this one (the old code)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per checkout (default 3)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs per checkout first (default 1)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS for the commands (default: unset)")
    p.add_argument("--out-dir", default=None, help="where to write the CSV (default ./results)")
    args = p.parse_args(argv)
    root = paths.data_root()
    folders = {"ir": Path(args.ir or root / "MSRS/test/ir"), "vis": Path(args.vis or root / "MSRS/test/vi")}
    repos = {"new": paths.repo_root()}
    if args.baseline_repo:
        repos = {"old": Path(args.baseline_repo), **repos}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mmdrfuse-subset-") as tmp:
        use = subset(folders, args.pairs, Path(tmp))
        n = len(match_stems(*use.values()))
        timings = compare(repos, command_argv("fuse", use, args.weights), n, import_only(FUSE_STARTUP),
                          repeats=args.repeats, warmup=args.warmup, threads=args.threads)
    df = pd.DataFrame([t.row() for t in timings])
    name = "speed_fuse_command"
    out = paths.results_dir(args.out_dir)
    write_with(out / f"{name}.csv", lambda f: df.to_csv(f, index=False, float_format="%.6g"))
    command = shlex.join(["python", "-m", f"benchmarks.{name.rsplit('_', 1)[0]}", "--whole-process",
                          *(argv if argv is not None else sys.argv[2:])])
    write_json(out / f"{name}.provenance.json", {
        "target": name, "command": command, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(), "git_dirty": git_dirty(), "machine": machine(),
        "baseline_commit": git_commit(args.baseline_repo) if args.baseline_repo else None,
        "folders": {k: str(v) for k, v in folders.items()}, "pairs": n,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "notes": ["Whole process: `python -m mmdrfuse ...` from process start to exit, median over interleaved "
                  "runs after warm-up; start-up = importing the command's modules alone."]})
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {out / (name + '.csv')}")
    return 0
