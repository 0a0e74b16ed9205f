"""Time per pair of the two metric conventions on 640 x 480 pairs with a colour visible image.

    python -m benchmarks.speed_conventions [--fused F --ir I --vis V] [--data-root D] [--reference-root R]
        [--runs 15] [--warmup 3] [--threads 1,2]

Pairs (``--fused/--ir/--vis`` name another; by default two triples of the metric reference values, from the data
root (``--data-root``, else ``$MMDRFUSE_DATA``, else the user cache; :func:`mmdrfuse.paths.data_root`) and the
reference folder (``--reference-root``, else ``$MMDRFUSE_REFERENCE``, else the folder ``reference`` beside the data
root), which only the project's development setup has; a missing file is reported in one line):

- ``msrs_gray_fused``: MSRS 00004N (gray IR, colour visible) with the published MMDRFuse student's fused image,
  which is gray (``<reference>/metrics/fused/MSRS_00004N_mmdrfuse.png``, ``<data>/MSRS/test/{ir,vi}/00004N.png``):
  VIFB evaluates it once, converting the visible image with rgb2gray;
- ``vifb_colour_fused``: VIFB's labMan (IR stored as a 3-channel JPEG, colour visible) with CBF's colour fused
  image (``<reference>/vifb/{fused/labMan_CBF,input/IR/labMan,input/VI/labMan}.jpg``): VIFB evaluates each of the
  three channels.

For each pair, thread count and convention: ``--warmup`` untimed calls, then ``--runs`` timed ones of

- ``compute``: ``mmdrfuse.metrics.compute_all`` on the images already in memory (mmdrfuse: the 13 default metrics on
  the gray images; vifb: VIFB's 13 metrics on the colour images, ``convention="vifb"``);
- ``read+compute``: the same plus reading the three files as the convention reads them (what ``mmdrfuse evaluate``
  does per pair, without the folder pairing).

Prints median and minimum wall time and median process CPU time per pair, and the vifb / mmdrfuse ratios of the
median wall and median CPU times. Writes nothing. Other processes on a shared machine slow every row (wall time
most; with one thread the CPU time is the steadier measure); compare rows of the same run.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from benchmarks.speed_metrics import _time  # the speed benchmarks' one timing loop
from mmdrfuse import metrics as M
from mmdrfuse.memory import keep_freed_memory
from mmdrfuse.metrics import vifb
from mmdrfuse.metrics.reading import read_eval_gray
from mmdrfuse.paths import data_root

REFERENCE_ENV = "MMDRFUSE_REFERENCE"


def reference_root(explicit: str | os.PathLike | None = None, data: Path | None = None) -> Path:
    """The reference values' folder: ``explicit`` > ``$MMDRFUSE_REFERENCE`` > ``reference`` beside the data root."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(REFERENCE_ENV)
    if env:
        return Path(env).expanduser()
    return (data if data is not None else data_root()).parent / "reference"


def default_pairs(data: Path, reference: Path) -> dict[str, tuple[Path, Path, Path]]:
    """The two default triples (fused, IR, visible) under the data root and the reference folder."""
    msrs = data / "MSRS" / "test"
    vifb_dir = reference / "vifb"
    return {
        "msrs_gray_fused": (reference / "metrics" / "fused" / "MSRS_00004N_mmdrfuse.png",
                            msrs / "ir" / "00004N.png", msrs / "vi" / "00004N.png"),
        "vifb_colour_fused": (vifb_dir / "fused" / "labMan_CBF.jpg", vifb_dir / "input" / "IR" / "labMan.jpg",
                              vifb_dir / "input" / "VI" / "labMan.jpg"),
    }



def cases(fused: Path, ir: Path, vis: Path) -> dict[tuple[str, str], Callable[[], object]]:
    """(case, convention) -> a callable computing one pair."""
    gray = [read_eval_gray(p)[None, None] for p in (fused, ir, vis)]
    colour = [vifb.read_vifb(p)[None] for p in (fused, ir, vis)]

    def read_mmdrfuse():
        return M.compute_all(*(read_eval_gray(p)[None, None] for p in (fused, ir, vis)))

    def read_vifb():
        return M.compute_all(*(vifb.read_vifb(p)[None] for p in (fused, ir, vis)), convention="vifb")

    return {("compute", "mmdrfuse"): lambda: M.compute_all(*gray),
            ("compute", "vifb"): lambda: M.compute_all(*colour, convention="vifb"),
            ("read+compute", "mmdrfuse"): read_mmdrfuse,
            ("read+compute", "vifb"): read_vifb}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fused", type=Path)
    ap.add_argument("--ir", type=Path)
    ap.add_argument("--vis", type=Path)
    ap.add_argument("--data-root", help="data root (default: $MMDRFUSE_DATA, else the user cache)")
    ap.add_argument("--reference-root",
                    help=f"reference values' folder (default: ${REFERENCE_ENV}, else 'reference' beside the data root)")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    args = ap.parse_args(argv)
    given = [args.fused, args.ir, args.vis]
    if any(given) and not all(given):
        print("speed_conventions: give all of --fused, --ir and --vis, or none", file=sys.stderr)
        return 2
    if all(given):
        pairs = {"given": tuple(given)}
    else:
        data = data_root(args.data_root)
        pairs = default_pairs(data, reference_root(args.reference_root, data))
    missing = [p for paths in pairs.values() for p in paths if not p.is_file()]
    if missing:
        print(f"speed_conventions: {len(missing)} input file(s) missing, first {missing[0]} (set --data-root / "
              f"$MMDRFUSE_DATA and --reference-root / ${REFERENCE_ENV}, or give --fused, --ir, --vis)", file=sys.stderr)
        return 2
    keep_freed_memory()  # as the mmdrfuse commands do
    for name, paths in pairs.items():
        shapes = ", ".join(f"{p.name} {tuple(vifb.read_vifb(p).shape)}" for p in paths)
        print(f"{name}: {shapes}")
    print(f"{'pair':<18}  {'threads':>7}  {'case':<12}  {'convention':<10}  {'median ms':>9}  {'min ms':>7}  "
          f"{'cpu ms':>7}  {'ratio':>5}  {'cpu ratio':>9}")
    for name, paths in pairs.items():
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            fns = cases(*paths)
            for case in ("compute", "read+compute"):
                res = {conv: _time(fns[(case, conv)], args.runs, args.warmup) for conv in ("mmdrfuse", "vifb")}
                for conv, r in res.items():
                    ratio = r["median_ms"] / res["mmdrfuse"]["median_ms"]
                    cpu_ratio = r["cpu_ms"] / res["mmdrfuse"]["cpu_ms"]
                    print(f"{name:<18}  {threads:>7}  {case:<12}  {conv:<10}  {r['median_ms']:9.1f}  "
                          f"{r['min_ms']:7.1f}  {r['cpu_ms']:7.1f}  {ratio:5.2f}  {cpu_ratio:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
