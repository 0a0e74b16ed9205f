"""Is IVT_250 the paper's LLVIP test set? Fuse it with the authors' student and compare with Table 4b.

    mmdrfuse data download IVT_250          # AWCXV/FusionBooster @ 35de693, dataset/IVT_250 (~600 MB archive)
    python -m benchmarks.check_ivt250 [--data-root DIR] [--weights-root DIR] [--cache DIR] [--device cpu] [--quiet]

IVT_250 (250 LLVIP test pairs, files 1..250, published by the paper authors' group with FusionBooster) is registered
as ``unverified`` (:mod:`mmdrfuse.data.registry`): nobody here has downloaded it, its archive has no known sha256,
and that it is the paper's 250-pair LLVIP test split is a guess. This command checks the guess: it fuses every pair
with ``official-student`` through the suite's fused-image cache (the fusion and per-image metrics of Table 4,
:mod:`benchmarks.cache`; an interrupted run resumes), averages the paper's six metrics over the pairs and compares
them with Table 4b's MMDRFuse row (:data:`benchmarks.paper_values.TABLE4`).

Verdict per metric (the paper prints two decimals): ``matches`` when ours rounds to the printed value
(|ours - paper| <= 0.005), ``near`` within one more unit of the last printed digit (<= 0.015), else ``differs``.
Overall: the six match and 250 pairs were found -> consistent with IVT_250 being the paper's test set (the authors'
checkpoint reproduces all six MSRS cells of Table 4a to the printed digit, results/table4.csv); otherwise not
confirmed. Exit code 0 when the check ran, whatever the verdict; 2 on an error (data set or weights missing).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from benchmarks import paper_values as pv
from mmdrfuse import paths
from mmdrfuse.errors import MMDRFuseError

DATASET = "IVT_250"
PAPER_DATASET, PAPER_METHOD = "LLVIP", "MMDRFuse"  # the Table 4b row compared with
WEIGHTS = "official-student"
MATCH, NEAR = 0.005, 0.015  # half a unit and one and a half units of the paper's last printed digit (two decimals)


@dataclass(frozen=True)
class Comparison:
    metric: str
    ours: float
    paper: float

    @property
    def diff(self) -> float:
        return self.ours - self.paper

    @property
    def verdict(self) -> str:
        d = abs(self.diff)
        return "matches" if d <= MATCH + 1e-9 else "near" if d <= NEAR + 1e-9 else "differs"


@dataclass(frozen=True)
class CheckResult:
    n_pairs: int
    paper_pairs: int
    folder: Path  # the IVT_250 folder found
    weights_sha256: str
    rows: tuple[Comparison, ...]
    flag: str | None  # the data set's warning (unverified; short)

    @property
    def confirmed(self) -> bool:
        return self.n_pairs == self.paper_pairs and all(r.verdict == "matches" for r in self.rows)

    def summary(self) -> str:
        n = sum(r.verdict == "matches" for r in self.rows)
        if self.confirmed:
            return (f"{n}/{len(self.rows)} metrics match Table 4b as printed on all {self.n_pairs} pairs: consistent "
                    f"with {DATASET} being the paper's LLVIP test set")
        why = (f"{self.n_pairs} pairs found, the paper's LLVIP test set has {self.paper_pairs}; "
               if self.n_pairs != self.paper_pairs else "")
        return (f"{why}{n}/{len(self.rows)} metrics match Table 4b as printed: NOT confirmed that {DATASET} is the "
                "paper's LLVIP test set")


def paper_row() -> dict[str, float]:
    """Table 4b's MMDRFuse row, metric -> value, from :mod:`benchmarks.paper_values`."""
    return dict(zip(pv.METRICS, pv.TABLE4[PAPER_DATASET][PAPER_METHOD]))


def check(data_root=None, weights_root=None, cache_root=None, device: str = "cpu", progress: bool = True,
          evaluator: Callable | None = None) -> CheckResult:
    """Fuse IVT_250 with ``official-student`` (cached), evaluate the paper's six metrics and compare them with
    Table 4b's MMDRFuse row. ``evaluator``: the cache's per-image metrics function (None: the suite's)."""
    import numpy as np

    from benchmarks.cache import FusedCache, mmdrfuse_runs
    from mmdrfuse import data

    loc = data.locate(DATASET, data_root)
    runs, missing = mmdrfuse_runs(weights_root, device, names=(WEIGHTS,))
    if not runs:
        raise MMDRFuseError(next(iter(missing.values()), f"{WEIGHTS}: not available"))
    run = runs[0]
    cache = FusedCache(Path(cache_root) if cache_root else paths.cache_dir() / "fused", progress=progress)
    pairs = cache.select(loc)
    cache.ensure(run, loc, pairs)
    paper = paper_row()
    per = cache.metrics(run, loc, pairs, list(paper), evaluator)
    rows = tuple(Comparison(m, float(np.mean(per[m].to_numpy(dtype=float))), v) for m, v in paper.items())
    return CheckResult(len(per), pv.PAPER_PAIRS[PAPER_DATASET], loc.ir_dir.parent, run.sha256, rows, loc.flag)


def report(res: CheckResult) -> str:
    """The printed report: what was checked, one line per metric with its verdict, the overall verdict."""
    lines = [f"{DATASET}: {res.n_pairs} pairs at {res.folder}; fused with {WEIGHTS} (sha256 {res.weights_sha256[:12]}"
             f"...); compared with Table 4b, {PAPER_METHOD} on {PAPER_DATASET} ({res.paper_pairs} pairs)"]
    if res.flag:
        lines.append(f"note: {res.flag}")
    lines.append(f"{'metric':<7} {'ours':>9} {'paper':>7} {'diff':>8}  verdict")
    lines += [f"{r.metric:<7} {r.ours:9.4f} {r.paper:7.2f} {r.diff:+8.4f}  {r.verdict}" for r in res.rows]
    lines.append(f"verdict: {res.summary()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.check_ivt250", description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help=f"data folder (default: ${paths.DATA_ENV}, else the cache)")
    ap.add_argument("--weights-root", default=None, help=f"weights (default: ${paths.WEIGHTS_ENV}, else the cache)")
    ap.add_argument("--cache", default=None, help="fused-image cache (default: <user cache>/fused, as the tables)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    try:
        res = check(args.data_root, args.weights_root, args.cache, args.device, progress=not args.quiet)
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(report(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
