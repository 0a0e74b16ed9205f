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

``--whole-process``: the two conventions as a user runs them, ``python -m mmdrfuse evaluate`` with and without
``--convention vifb`` on whole folders, wall time from process start to exit (the suite's whole-command timer,
:mod:`benchmarks.whole_process`; the two commands interleaved, one untimed run each first), per pair with and
without the start-up (``evaluate --list-metrics``), on ``--threads`` (``--threads N`` and ``OMP_NUM_THREADS=N``)
for three folders: the MSRS test set (361 pairs, 640 x 480, colour visible) fused by the published student as gray
images and, with ``mmdrfuse fuse --color``, as colour images (both fused first, untimed, into a temporary folder;
``--pairs`` takes the first N), and VIFB's 21 pairs with CBF's colour fused images (sizes vary).
"""
from __future__ import annotations

import argparse
import os
import subprocess
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
    ap.add_argument("--whole-process", action="store_true", help="time whole `mmdrfuse evaluate` commands on folders")
    ap.add_argument("--repeats", type=int, default=3, help="--whole-process: timed runs per command (default 3)")
    ap.add_argument("--pairs", type=int, default=None, help="--whole-process: the first N MSRS pairs (default all)")
    args = ap.parse_args(argv)
    if args.whole_process:
        return whole_process(args)
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


# ------------------------------------------------------------------------------------------------ whole process
def _folders(data: Path, reference: Path, tmp: Path, pairs: int | None) -> dict[str, dict[str, Path]]:
    """name -> {fused, ir, vis} folders: MSRS fused gray and in colour by the published student, VIFB with CBF."""
    from benchmarks.whole_process import subset

    msrs = subset({"ir": data / "MSRS" / "test" / "ir", "vis": data / "MSRS" / "test" / "vi"}, pairs, tmp / "msrs")
    out = {}
    for name, extra in (("MSRS, gray fused", []), ("MSRS, colour fused", ["--color"])):
        fused = tmp / ("fused_colour" if extra else "fused_gray")
        subprocess.run([sys.executable, "-m", "mmdrfuse", "fuse", "--ir", str(msrs["ir"]), "--vis", str(msrs["vis"]),
                        "--out", str(fused), "--quiet", *extra], check=True, stdout=subprocess.DEVNULL)
        out[name] = {"fused": fused, **msrs}
    vifb_dir, cbf = reference / "vifb", tmp / "vifb_cbf"
    cbf.mkdir()
    for f in sorted((vifb_dir / "fused").glob("*_CBF.jpg")):
        (cbf / f"{f.name[:-len('_CBF.jpg')]}.jpg").symlink_to(f.resolve())
    out["VIFB 21, CBF colour fused"] = {"fused": cbf, "ir": vifb_dir / "input" / "IR", "vis": vifb_dir / "input" / "VI"}
    return out


def whole_process(args: argparse.Namespace) -> int:
    """``--whole-process``: see the module doc."""
    import tempfile

    from benchmarks.whole_process import command_argv, compare
    from mmdrfuse.images import match_stems

    data = data_root(args.data_root)
    reference = reference_root(args.reference_root, data)
    need = [data / "MSRS" / "test" / "ir", data / "MSRS" / "test" / "vi", reference / "vifb" / "fused"]
    missing = [p for p in need if not p.is_dir()]
    if missing:
        print(f"speed_conventions: folder missing: {missing[0]} (set --data-root / $MMDRFUSE_DATA and "
              f"--reference-root / ${REFERENCE_ENV})", file=sys.stderr)
        return 2
    root = Path(__file__).resolve().parents[1]
    print(f"{'folder':<26}  {'pairs':>5}  {'threads':>7}  {'convention':<10}  {'ms/pair':>8}  {'excl. start':>11}  "
          f"{'ratio':>5}  {'ratio excl.':>11}")
    with tempfile.TemporaryDirectory(prefix="mmdrfuse-conventions-") as tmp:
        try:
            cases = _folders(data, reference, Path(tmp), args.pairs)
        except subprocess.CalledProcessError as exc:  # mmdrfuse fuse printed its one-line reason above
            print(f"speed_conventions: fusing the MSRS test set failed (exit code {exc.returncode}; the published "
                  f"student's weights come from $MMDRFUSE_WEIGHTS)", file=sys.stderr)
            return 2
        for name, folders in cases.items():
            n = len(match_stems(*folders.values()))
            for threads in (int(t) for t in args.threads.split(",")):
                extra = ["--threads", str(threads)]
                argv = {"mmdrfuse": command_argv("evaluate", folders, extra=extra),
                        "vifb": command_argv("evaluate", folders, extra=[*extra, "--convention", "vifb"])}
                timings = compare({"mmdrfuse": root, "vifb": root}, argv, n,
                                  ["-m", "mmdrfuse", "evaluate", "--list-metrics"], repeats=args.repeats, warmup=1,
                                  threads=threads, progress=False, alternate=True)
                rows = {t.label: t.row() for t in timings}
                for conv, r in rows.items():
                    base = rows["mmdrfuse"]
                    print(f"{name:<26}  {n:>5}  {threads:>7}  {conv:<10}  {r['ms_per_pair_median']:8.1f}  "
                          f"{r['ms_per_pair_excl_startup']:11.1f}  "
                          f"{r['ms_per_pair_median'] / base['ms_per_pair_median']:5.2f}  "
                          f"{r['ms_per_pair_excl_startup'] / base['ms_per_pair_excl_startup']:11.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
