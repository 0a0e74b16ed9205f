"""The targets of ``python -m benchmarks.run``: what each one makes and needs, running one, listing them.

Every target is a module exposing ``run(ctx) -> list[Path]`` (:class:`benchmarks.context.Context`). A target that
fails (also one whose module does not import) is reported with its traceback and the others still run.
"""
from __future__ import annotations

import importlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.context import Context
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


@dataclass
class Outcome:
    target: str
    status: str  # ok | failed
    seconds: float
    outputs: list[Path] = field(default_factory=list)
    message: str = ""


def run_target(name: str, ctx: Context) -> Outcome:
    """Import the target's module and call its ``run(ctx)``; any failure (an import included) is reported."""
    module, what = TARGETS[name]
    t0 = time.perf_counter()
    ctx.say(f"--- {name}: {what} (profile {ctx.profile})")
    try:
        outputs = list(importlib.import_module(module).run(ctx) or [])
    except MMDRFuseError as exc:
        return Outcome(name, "failed", time.perf_counter() - t0, message=str(exc))
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - one broken target must not stop `all`; the summary shows it
        traceback.print_exc()
        return Outcome(name, "failed", time.perf_counter() - t0, message=f"{exc.__class__.__name__}: {exc}")
    return Outcome(name, "ok", time.perf_counter() - t0, outputs)


def list_targets(ctx: Context) -> int:
    """``python -m benchmarks.run list``: the targets (and whether their modules import), data sets, methods."""
    from mmdrfuse import data

    print("targets:")
    for name, (module, what) in TARGETS.items():
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - shown, not raised: the listing is for finding what is broken
            print(f"  {name:10s} BROKEN ({exc.__class__.__name__}: {exc})  {what}")
            continue
        print(f"  {name:10s} {'ready':20s} {what}")
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
    for key, spec in baselines_registry().items():
        display = getattr(spec, "display", None) or key
        known += [display, key]
        known += [f"{display} ({Path(w.relpath).name})" for w in getattr(spec, "weights", ()) or ()]
    return list({k.lower(): k for k in reversed(known)}.values())[::-1]  # first spelling of each name
