"""``python -m benchmarks.run TARGET``: regenerate the paper's tables (and figures) from data, with provenance.

Targets: ``table3`` (efficiency), ``table4`` (MSRS, LLVIP, RoadScene), ``table5`` (MRI-SPECT, MRI-PET), ``table1`` /
``table2`` (ablations, module ``ablations.table1`` / ``ablations.table2``), ``detection`` and ``figures``
(``benchmarks.detection`` / ``benchmarks.figures``), ``all`` (every target in turn) and ``list`` (what is
available). Every target is a module exposing ``run(ctx) -> list[Path]``; a module that does not exist yet is
reported as "not implemented yet" and the others still run.

Results go to ``--out`` (default ``./results`` in the current directory): ``<target>.csv`` (tidy), ``.tex``,
``.md``, ``.provenance.json`` and ``REPORT.md`` gathering them. Fused images are cached per (method, weights sha256,
data set) under ``--cache`` (default ``<user cache>/fused``) and reused by every target, so reruns are cheap and an
interrupted run resumes.

Before running, the data sets and weights the targets need that are missing are downloaded into the data and weights
roots (:func:`fetch_missing`; sha256-checked where a digest is known, progress bars, resumable); ``--offline`` (or
``$MMDRFUSE_OFFLINE=1``) forbids it, and a machine without network is noticed at the first address and left alone.

With no evaluation data under the data root (``--data-root`` > ``$MMDRFUSE_DATA`` > user cache) every target runs on
the built-in synthetic demo set (:mod:`mmdrfuse.demo`) at a small scale: a DEMO run. It writes to ``./results-demo``
by default, flags every table, figure and provenance file DEMO, and refuses to write into a folder holding results
computed on real data (:func:`benchmarks.report.real_results_in`).
"""
from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from mmdrfuse import names, paths
from mmdrfuse.errors import MMDRFuseError

# target -> (module, what it makes). Order = the order of `all` (figures last: they read the other results).
TARGETS: dict[str, tuple[str, str]] = {
    "table3": ("benchmarks.table3", "Table 3: size, FLOPs and time per 1024x1280 pair"),
    "table4": ("benchmarks.table4", "Table 4: infrared-visible fusion on MSRS, LLVIP, RoadScene"),
    "table5": ("benchmarks.table5", "Table 5: medical fusion on MRI-SPECT, MRI-PET"),
    "table1": ("ablations.table1", "Table 1: ablation of the components (trains students)"),
    "table2": ("ablations.table2", "Table 2: student size (trains students)"),
    "detection": ("benchmarks.detection", "Fig. 8: pedestrian detection with YOLOv5 on fused images"),
    "figures": ("benchmarks.figures", "Figures 1, 3, 5-8"),
}
PROFILES_FILE = Path(__file__).resolve().parent / "profiles.yaml"
BANNER = "=" * 100
BASELINE_SELECTIONS = ("none", "default", "learned", "all")

# target -> (data sets it reads, named weights it uses, whether it runs the compared methods): what is fetched
NEEDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool]] = {
    "table3": ((), ("official-student",), True),
    "table4": (("MSRS", "LLVIP", "RoadScene"), ("official-student",), True),
    "table5": (("MRI-SPECT", "MRI-PET"), ("official-student",), True),
    "table1": (("MSRS", "LLVIP-train"), ("official-student", "official-teacher"), False),
    "table2": (("MSRS", "LLVIP-train"), ("official-student", "official-teacher"), False),
    "detection": (("MSRS",), ("official-student",), True),
    "figures": (("MSRS", "LLVIP", "MRI-PET"), ("official-student",), True),
}


def load_profiles(path: str | os.PathLike = PROFILES_FILE) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


@dataclass
class Context:
    """What every target gets: settings, folders, the method rows and the fused-image cache."""

    profile: str
    settings: dict
    data_root: Path
    weights_root: Path
    out_dir: Path
    methods: list[str] | None = None  # restrict to these method names (None = all)
    datasets: list[str] | None = None  # restrict to these data sets (None = the profile's)
    device: str = "cpu"
    seeds: list[int] | None = None  # training seeds for table1/table2/detection (None = each profile's)
    cache: object = None  # benchmarks.cache.FusedCache
    command: str = ""
    progress: bool = True
    evaluator: Callable | None = None  # per-image metrics function (tests pass a fake); None = the suite's metrics
    synthetic: bool = False  # set when no real data was found and the demo set is used (data_root = the demo's)
    searched_data_root: Path | None = None  # the data root searched (data_root before the demo stood in)
    work_dir: Path | None = None  # heavy files of the training targets (None: ablations beside the cache,
    #                               detection under <user cache>/mmdrfuse/detection)
    yolo_weights: str | None = None  # initial detector weights (None: $MMDRFUSE_YOLO_WEIGHTS, else from scratch)
    vgg_weights: str | None = None  # VGG-19 weights of Fig. 3 (None: mmdrfuse.vgg's search)
    figure_stems: dict[str, str] | None = None  # data set -> pair shown in Figs. 5-7 (None: chosen by the figures)
    downloads: list[dict] = field(default_factory=list)  # files fetched for this run (address, sha256)
    log: list[str] = field(default_factory=list)
    _runs: tuple | None = field(default=None, repr=False)
    _demo_loc: object = field(default=None, repr=False)

    # ---------------------------------------------------------------------------------------------- data sets
    def demo_root(self) -> Path:
        return Path(self.cache.root) / "_demo_data"

    def datasets_for(self, names: list[str]) -> tuple[list, dict[str, str]]:
        """Located data sets among ``names`` (filtered by ``--datasets``) and {name: why missing}.

        When none of the paper's data sets is found anywhere, the synthetic demo set stands in (``self.synthetic``).
        """
        from mmdrfuse import data

        if self.synthetic:
            return [self._demo()], {}
        only = None if self.datasets is None else {data.get(d).name for d in self.datasets}
        wanted = [n for n in names if only is None or data.get(n).name in only]
        found, missing = [], {}
        for n in wanted:
            loc = data.find(n, self.data_root)
            if loc is None:
                try:
                    data.locate(n, self.data_root)
                except MMDRFuseError as exc:
                    missing[n] = str(exc)
            else:
                found.append(loc)
        return found, missing

    def _demo(self):
        """The demo set (written once per run under the cache: ``<cache>/_demo_data/DEMO``)."""
        from mmdrfuse import data, demo

        if self._demo_loc is None:
            root = self.demo_root()
            demo.write_demo(root, n_pairs=int(self.settings.get("demo_pairs", demo.DEFAULT_PAIRS)))
            self._demo_loc = data.locate("DEMO", root)
        return self._demo_loc

    def max_pairs(self, run) -> int | None:
        mp = self.settings.get("max_pairs", {}) or {}
        return mp.get("mmdrfuse" if run.kind == "mmdrfuse" else "baselines")

    # ------------------------------------------------------------------------------------------------ methods
    def method_runs(self) -> tuple[list, dict[str, str]]:
        """(runs, unavailable): MMDRFuse official + ours, then every baseline that can run; filtered by --methods."""
        if self._runs is None:
            from benchmarks import cache as bc

            runs, missing = bc.mmdrfuse_runs(self.weights_root, self.device)
            which = self.settings.get("baselines", "default")
            b_runs, b_missing = bc.baseline_runs(self.weights_root, self.device, which)
            runs += b_runs
            missing.update(b_missing)
            if self.methods is not None:
                want = {m.lower() for m in self.methods}
                runs = [r for r in runs if r.method.lower() in want or r.label.lower() in want]
                missing = {k: v for k, v in missing.items() if k.split(" (")[0].lower() in want or k.lower() in want}
            self._runs = (runs, missing)
        return self._runs

    def find_run(self, method: str, weights: str | None = None):
        runs, missing = self.method_runs()
        for r in runs:
            if r.method.lower() == method.lower() and (weights is None or r.weights == weights):
                if weights is None and r.kind == "mmdrfuse" and r.weights != "official":
                    continue  # MMDRFuse alone means the official weights
                return r
        reason = missing.get(method) or missing.get(f"{method} ({weights})") or "not in the method list"
        raise MMDRFuseError(f"method {method!r}{f' with weights {weights!r}' if weights else ''} cannot run: {reason}")

    def fused_dir(self, method: str, dataset: str, weights: str | None = None, max_pairs: int | None = None) -> Path:
        """Folder of fused PNGs (``<stem>.png``) of ``method`` on ``dataset``, fused now if not cached."""
        from mmdrfuse import data

        run = self.find_run(method, weights)
        loc = self._demo() if (self.synthetic and dataset.upper() == "DEMO") else data.locate(dataset, self.data_root)
        pairs = self.cache.select(loc, max_pairs)
        return self.cache.ensure(run, loc, pairs).folder

    def say(self, msg: str) -> None:
        """The targets' one logger: ``msg`` to stderr, kept in ``log`` (FLAG lines reach the summary)."""
        self.log.append(msg)
        print(msg, file=sys.stderr)


# ---------------------------------------------------------------------------------------------------- running
@dataclass
class Outcome:
    target: str
    status: str  # ok | not implemented | failed
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    message: str = ""


def run_target(name: str, ctx: Context) -> Outcome:
    module, _ = TARGETS[name]
    t0 = time.perf_counter()
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            return Outcome(name, "not implemented", 0.0, message=f"not implemented yet: module {module} does not exist")
        return Outcome(name, "failed", time.perf_counter() - t0, message=f"not available yet: {exc}")
    if not hasattr(mod, "run"):
        return Outcome(name, "not implemented", 0.0, message=f"not implemented yet: {module} has no run(ctx)")
    ctx.say(f"--- {name}: {TARGETS[name][1]} (profile {ctx.profile})")
    try:
        outputs = list(mod.run(ctx) or [])
    except MMDRFuseError as exc:
        return Outcome(name, "failed", time.perf_counter() - t0, message=str(exc))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken target must not stop `all`; the summary shows it
        traceback.print_exc()
        return Outcome(name, "failed", time.perf_counter() - t0, message=f"{exc.__class__.__name__}: {exc}")
    return Outcome(name, "ok", time.perf_counter() - t0, outputs)


def list_targets(ctx: Context) -> int:
    from mmdrfuse import data

    print("targets:")
    for name, (module, what) in TARGETS.items():
        try:
            ok = hasattr(importlib.import_module(module), "run")
        except ModuleNotFoundError:
            ok = False
        except Exception as exc:  # noqa: BLE001
            print(f"  {name:10s} BROKEN ({exc.__class__.__name__}: {exc})  {what}")
            continue
        print(f"  {name:10s} {'ready' if ok else 'not implemented yet':20s} {what}")
    print(f"data root: {ctx.data_root}")
    for name in data.PAPER_DATASETS:
        f = data.find(name, ctx.data_root)
        print(f"  {name:10s} " + (f"{f.n_pairs:4d} pairs" + (f"  ! {f.flag}" if f.flag else "") if f else "missing"))
    runs, missing = ctx.method_runs()
    print(f"methods (weights root {ctx.weights_root}):")
    for r in runs:
        print(f"  {r.label:28s} weights {r.weights} sha256 {r.sha256[:12]}")
    for k, v in missing.items():
        print(f"  {k:28s} unavailable: {v}")
    return 0


def known_methods() -> list[str]:
    """Every name ``--methods`` accepts: MMDRFuse, the compared methods (registry keys and display names), the
    classical rules, and the row labels with their weights (e.g. ``MMDRFuse (mmdrfuse-cpu)``)."""
    from benchmarks import paper_values as pv
    from benchmarks.cache import baselines_registry
    from mmdrfuse import checkpoints

    known = ["MMDRFuse", *pv.METHODS, *(f"MMDRFuse ({n})" for n, e in checkpoints.WEIGHTS.items()
                                        if e.kind == "student" and n != "official-student")]
    registry, _ = baselines_registry()
    for key, spec in (registry or {}).items():
        display = getattr(spec, "display", None) or key
        known += [display, key]
        known += [f"{display} ({Path(w.relpath).name})" for w in getattr(spec, "weights", ()) or ()]
    return list({k.lower(): k for k in reversed(known)}.values())[::-1]  # first spelling of each name


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


# ------------------------------------------------------------------------------------------------------ fetching
def fetch_missing(args: argparse.Namespace, targets: list[str], *, offline: bool) -> tuple[list[dict], list[str]]:
    """Download the data sets and weights ``targets`` need that are not under the data / weights roots.

    Returns ``(records, problems)``: what was downloaded (address, sha256, whether it was checked) and one line per
    thing that could not be fetched. Nothing is tried when ``offline``; after the first address that cannot be
    reached at all (no network) nothing more is tried."""
    from mmdrfuse import data
    from mmdrfuse.download import NetworkError, fetch

    if offline:
        return [], []
    data_root = paths.data_root(args.data_root)
    weights_root = paths.weights_root(args.weights_root)
    progress = not args.quiet
    want_data: list[str] = []
    want_weights: list[str] = []
    baselines = False
    for t in targets:
        ds, ws, b = NEEDS.get(t, ((), (), False))
        if args.datasets:
            given = {data.get(d).name for d in args.datasets}
            ds = tuple(d for d in ds if d in given or d == "LLVIP-train")
        want_data += [d for d in ds if d not in want_data]
        want_weights += [w for w in ws if w not in want_weights]
        baselines |= b
    if args.synthetic:
        want_data = []
    records: list[dict] = []
    problems: list[str] = []
    jobs: list[tuple[str, Callable[[], list[dict]]]] = []

    def incomplete(name: str) -> bool:
        spec = data.get(name)
        return data.find(name, data_root) is None or any(
            not (data_root / dest).is_dir() for e in spec.extras for dest in e.members.values())

    groups: dict[str, list[str]] = {}  # archive address -> data sets (CDDFuse's archive holds three)
    for name in want_data:
        spec = data.get(name)
        if spec.source.url and incomplete(name):
            groups.setdefault(spec.source.url, []).append(name)
    for group in groups.values():
        def get_data(group=group):
            data.download(group, data_root, progress=progress)
            return [r for n in group if (r := data.download_record(n, data_root))]
        jobs.append((" + ".join(group), get_data))

    from mmdrfuse import checkpoints

    files: list[tuple[str, str, str | None, Path]] = []  # (label, url, sha256, destination)
    for n in want_weights:
        e = checkpoints.WEIGHTS.get(n)
        if e is not None and e.url and not e.local_path(weights_root).is_file():
            files.append((n, e.url, e.sha256, e.local_path(weights_root)))
    if baselines:
        files += _baseline_files(args, weights_root)
    for label, url, sha, dest in files:
        def get_file(url=url, sha=sha, dest=dest):
            return [fetch(url, dest, sha, progress=progress).record()]
        jobs.append((label, get_file))

    for label, job in jobs:
        try:
            records += [r for r in job() if r not in records]
        except NetworkError as exc:
            problems.append(f"not downloaded ({label} and everything after it): {exc}")
            break
        except MMDRFuseError as exc:
            problems.append(f"not downloaded ({label}): {exc}")
    return records, problems


def _baseline_files(args: argparse.Namespace, weights_root: Path) -> list[tuple[str, str, str | None, Path]]:
    """Published weights (address and sha256 known) of the compared methods the run would use, not yet here."""
    from benchmarks.cache import baselines_registry

    registry, _ = baselines_registry()
    which = args.baselines or load_profiles()[args.profile].get("baselines", "default")
    if registry is None or which == "none":
        return []
    want = {m.lower() for m in args.methods} if args.methods else None
    out = []
    for key, spec in registry.items():
        display = getattr(spec, "display", None) or key
        if getattr(spec, "kind", "learned") != "learned" or (which == "default" and not getattr(spec, "table3", True)):
            continue
        if want is not None and not ({key.lower(), display.lower()} & want):
            continue
        if any(not (weights_root / r).exists() for r in getattr(spec, "requires", ()) or ()):
            continue  # it cannot run here anyway (e.g. TextFusion's text embedding)
        for w in getattr(spec, "weights", ()) or ():
            if w.url and w.sha256 and not w.path(weights_root).is_file():
                out.append((f"{display} {Path(w.relpath).name}", w.url, w.sha256, w.path(weights_root)))
    return out


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
