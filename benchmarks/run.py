"""``python -m benchmarks.run TARGET``: regenerate the paper's tables (and figures) from data, with provenance.

Targets: ``table3`` (efficiency), ``table4`` (MSRS, LLVIP, RoadScene), ``table5`` (MRI-SPECT, MRI-PET), ``table1`` /
``table2`` (ablations, module ``ablations.table1`` / ``ablations.table2``), ``detection`` and ``figures``
(``benchmarks.detection`` / ``benchmarks.figures``), ``all`` (every target in turn) and ``list`` (what is
available). Every target is a module exposing ``run(ctx) -> list[Path]`` (:mod:`benchmarks.targets`); a target that
fails is reported and the others still run.

Results go to ``--out`` (default ``./results`` in the current directory): ``<target>.csv`` (tidy), ``.tex``,
``.md``, ``.provenance.json`` and ``REPORT.md`` gathering them. Fused images are cached per (method, weights sha256,
data set) under ``--cache`` (default ``<user cache>/fused``) and reused by every target, so reruns are cheap and an
interrupted run resumes.

Before running, the data sets and weights the targets need that are missing are downloaded into the data and weights
roots (:func:`benchmarks.fetch.fetch_missing`; sha256-checked where a digest is known, progress bars, resumable); ``--offline`` (or
``$MMDRFUSE_OFFLINE=1``) forbids it, and a machine without network is noticed at the first address and left alone.

With no evaluation data under the data root (``--data-root`` > ``$MMDRFUSE_DATA`` > user cache) every target runs on
the built-in synthetic demo set (:mod:`mmdrfuse.demo`) at a small scale: a DEMO run. It writes to ``./results-demo``
by default, flags every table, figure and provenance file DEMO, and refuses to write into a folder holding results
computed on real data (:func:`benchmarks.report.real_results_in`).

Modules: :mod:`benchmarks.context` (what a target gets, the profiles), :mod:`benchmarks.targets` (the targets,
running one), :mod:`benchmarks.fetch` (downloads before a run); here: the command line.
"""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from benchmarks.context import PROFILES_FILE, Context, load_profiles
from benchmarks.fetch import fetch_missing
from benchmarks.targets import NEEDS, TARGETS, Outcome, known_methods, list_targets, run_target
from mmdrfuse import names, paths
from mmdrfuse.errors import MMDRFuseError

__all__ = ["BASELINE_SELECTIONS", "NEEDS", "PROFILES_FILE", "TARGETS", "Context", "Outcome", "build_context",
           "check_names", "fetch_missing", "known_methods", "list_targets", "load_profiles", "main", "parse_args",
           "print_summary", "run_target"]

BANNER = "=" * 100
BASELINE_SELECTIONS = ("none", "default", "learned", "all")


def check_names(args: argparse.Namespace, profiles: dict) -> None:
    """Unknown target, profile, methods, data sets or baselines selection: one line with a did-you-mean (exit 2)."""
    from mmdrfuse import data

    args.target = names.check("target", args.target, ["all", "list", *TARGETS])
    args.profile = names.check("profile", args.profile, profiles)
    if args.baselines is not None:
        args.baselines = names.check("baselines selection", args.baselines, BASELINE_SELECTIONS)
    for d in args.datasets or ():
        data.get(d)
    if args.methods:
        known = known_methods()
        args.methods = [names.check("method", m, known) for m in args.methods]


def build_context(args: argparse.Namespace) -> Context:
    from benchmarks.cache import FusedCache
    from benchmarks.report import real_results_in
    from mmdrfuse import data

    profiles = load_profiles()
    check_names(args, profiles)
    cache_root = Path(args.cache) if args.cache else paths.cache_dir() / "fused"
    settings = dict(profiles[args.profile])
    if args.baselines:
        settings["baselines"] = args.baselines
    ctx = Context(profile=args.profile, settings=settings, data_root=paths.data_root(args.data_root),
                  weights_root=paths.weights_root(args.weights_root), out_dir=paths.results_dir(args.out),
                  methods=args.methods, datasets=args.datasets, device=args.device, seeds=args.seeds,
                  yolo_weights=getattr(args, "yolo_weights", None),
                  pretrained=args.pretrained,
                  cache=FusedCache(cache_root, progress=not args.quiet),
                  command=" ".join(["python -m benchmarks.run", *map(shlex.quote, args.argv)]), progress=not args.quiet)
    wanted = ctx.settings.get("datasets", list(data.PAPER_DATASETS))
    if args.synthetic or (not args.datasets and args.target != "list"
                          and not any(data.find(n, ctx.data_root) for n in wanted)):
        # nothing real anywhere: the demo set stands in (said loudly everywhere), written to a folder of its own
        ctx.synthetic = True
        ctx.searched_data_root = ctx.data_root
        ctx.data_root = ctx._demo().root
        ctx.out_dir = paths.results_dir(args.out, demo=True)
        real = real_results_in(ctx.out_dir)
        if real is not None:
            raise MMDRFuseError(f"{ctx.out_dir} holds results computed on real data ({real.name} is not from a demo "
                                "run); demo numbers are never written there: drop --out (a demo run writes to "
                                f"./{paths.DEMO_RESULTS}) or name another folder")
    return ctx



def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", help=f"what to regenerate: {', '.join(['all', 'list', *TARGETS])}")
    ap.add_argument("--profile", default="quick", help="quick | cpu | paper (benchmarks/profiles.yaml)")
    ap.add_argument("--data-root", default=None, help=f"evaluation data (default: ${paths.DATA_ENV}, else the cache)")
    ap.add_argument("--weights-root", default=None, help=f"weights (default: ${paths.WEIGHTS_ENV}, else the cache)")
    ap.add_argument("--out", default=None, help=f"results folder (default: ./{paths.RESULTS}; a demo run: "
                                                 f"./{paths.DEMO_RESULTS})")
    ap.add_argument("--cache", default=None, help="fused-image cache (default: <user cache>/fused)")
    ap.add_argument("--methods", nargs="+", default=None, help="only these methods (e.g. MMDRFuse TarDAL)")
    ap.add_argument("--datasets", nargs="+", default=None, help="only these data sets (e.g. MSRS MRI-PET)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--baselines", default=None, metavar="|".join(BASELINE_SELECTIONS),
                    help="compared methods with rows of ours (default: the profile's): default = one entry per "
                         "method, learned = every checkpoint (e.g. the three TarDAL ones), all = also training-free")
    ap.add_argument("--seeds", type=int, nargs="+", default=None,
                    help="training seeds of table1, table2 and detection (default: each profile's)")
    ap.add_argument("--yolo-weights", default=None, metavar="PATH|NAME",
                    help="initial detector weights of the detection target: an Ultralytics checkpoint, a YOLOv5 v6 "
                         "state dict (backbone and neck transferred) or a named file under the weights root "
                         "(default: $MMDRFUSE_YOLO_WEIGHTS, else the detection profile's, else from scratch)")
    ap.add_argument("--pretrained", action="store_true",
                    help="detection: fine-tune from the COCO-trained YOLOv5n as the paper (3 epochs, 640 px, seeds "
                         "0-2; benchmarks/detection/profiles.yaml 'pretrained'); results in detection_pretrained.*")
    ap.add_argument("--synthetic", action="store_true", help="use the synthetic demo set even if real data exists")
    ap.add_argument("--offline", action="store_true",
                    help="download nothing (default: missing data sets and weights are fetched); "
                         "$MMDRFUSE_OFFLINE=1 does the same")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from benchmarks.report import run_context
    from mmdrfuse.download import offline_requested
    from mmdrfuse.lock import interrupt_on_sigterm
    from mmdrfuse.memory import keep_freed_memory

    keep_freed_memory()  # see mmdrfuse/memory.py; recorded in every provenance file
    interrupt_on_sigterm()  # kill PID: locks released, no temp files left (mmdrfuse/lock.py)
    problems: list[str] = []
    try:
        if args.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise MMDRFuseError(f"--device {args.device}: CUDA is not available here; use --device cpu")
        check_names(args, load_profiles())
        if args.target == "list":
            return list_targets(build_context(args))
        names_ = list(TARGETS) if args.target == "all" else [args.target]
        downloads, problems = fetch_missing(args, names_, offline=args.offline or offline_requested())
        for p in problems:
            print(f"warning: {p}", file=sys.stderr)
        ctx = build_context(args)
        ctx.downloads = downloads
        if ctx.synthetic:
            how = ("--offline: nothing was downloaded" if args.offline or offline_requested() else
                   "the downloads did not succeed (see the warnings above)" if problems else "")
            print(f"{BANNER}\nDEMO RUN. NO EVALUATION DATA FOUND under {ctx.searched_data_root} (--data-root / "
                  f"${paths.DATA_ENV}){'; ' + how if how else ''}.\n"
                  "Every target runs on the built-in SYNTHETIC demo set, at a small scale. These are NOT the paper's "
                  "data; the numbers are not\ncomparable with the paper's. "
                  f"Results go to {ctx.out_dir} (flagged DEMO). Get the data with 'mmdrfuse data download all'.\n"
                  f"{BANNER}", file=sys.stderr)
        outcomes = []
        with run_context(demo=ctx.synthetic, downloads=downloads):
            for name in names_:
                outcomes.append(run_target(name, ctx))
                _rebuild_report(ctx)
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (fused images are cached)", file=sys.stderr)
        return 130
    print_summary(ctx, outcomes, problems)
    return 0 if all(o.status != "failed" for o in outcomes) else 1


def _rebuild_report(ctx: Context) -> None:
    from benchmarks.report import build_report

    if ctx.out_dir.is_dir():
        try:
            build_report(ctx.out_dir)
        except Exception as exc:  # noqa: BLE001 - the report is a convenience; the per-target files are written
            print(f"warning: REPORT.md not rebuilt ({exc.__class__.__name__}: {exc})", file=sys.stderr)


def print_summary(ctx: Context, outcomes: list[Outcome], problems: list[str] = ()) -> None:
    from tabulate import tabulate

    rows = [[o.target, o.status, f"{o.seconds:.1f}", len(o.outputs), o.message[:90]] for o in outcomes]
    print()
    print(f"summary (profile {ctx.profile}, results in {ctx.out_dir}):")
    print(tabulate(rows, headers=["target", "status", "seconds", "files", "message"], tablefmt="simple"))
    flags = [m for m in ctx.log if m.startswith("FLAG")]
    for f in dict.fromkeys(flags):
        print(f)
    for d in ctx.downloads:
        check = "checked" if d["sha256_verified"] else "recorded"
        print(f"downloaded {d['url']} (sha256 {d['sha256'][:16]}..., {check})")
    for p in problems:
        print(f"not downloaded: {p}")
    if ctx.synthetic:
        print(f"NOTE: DEMO run: computed on the SYNTHETIC demo set, NOT the paper's data; results in {ctx.out_dir} "
              "(real-data results go to ./results).")
    report = ctx.out_dir / "REPORT.md"
    if report.is_file():
        print(f"report: {report}")


if __name__ == "__main__":
    sys.exit(main())
