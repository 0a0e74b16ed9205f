"""Table 3: model size (KB), FLOPs (G) and time (ms per 1024 x 1280 pair) (``python -m benchmarks.run table3``).

- Size = parameters x bytes per parameter / 1024 (4 bytes; 8 for MUFusion, which runs in float64), as the paper.
- FLOPs = thop-style MACs of one forward on a 1 x C x 1024 x 1280 input, as the paper counted them (the model's
  own ``macs(h, w)``: analytic for MMDRFuse, thop's rules on a meta-device copy for the baselines).
- Time = median wall time of ``fuse(ir, vis)`` on one seeded random 1024 x 1280 pair, after warm-up runs, measured
  here (CPU, or also the GPU when one is present); MMDRFuse through the suite's fast inference path, the path
  ``mmdrfuse fuse`` uses. The paper timed on an RTX 3090, so the time columns are not comparable.

Methods without weights are timed with randomly initialised weights (the compute does not depend on the values;
weights label ``random-init``); the heaviest methods are not timed in the quick profile (``max_gmacs_timed``).
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from benchmarks import paper_values as pv
from benchmarks.report import provenance, write_outputs
from mmdrfuse.errors import MMDRFuseError

TABLE = "table3"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_ms(fn, warmup: int, runs: int, device: torch.device) -> list[float]:
    """Wall time of ``fn()`` in ms for ``runs`` calls after ``warmup`` untimed calls."""
    for _ in range(max(0, warmup)):
        fn()
    _sync(device)
    times = []
    for _ in range(max(1, runs)):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def random_pair(h: int, w: int, device: torch.device, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ir = torch.rand(1, 1, h, w, generator=g)
    vis = torch.rand(1, 1, h, w, generator=g)
    return ir.to(device), vis.to(device)


def _entries(ctx, device: torch.device) -> tuple[list[dict], dict[str, str]]:
    """What to measure: MMDRFuse then the compared methods (one registry entry each), built on ``device``."""
    entries: list[dict] = []
    missing: dict[str, str] = {}
    want = None if ctx.methods is None else {m.lower() for m in ctx.methods}

    if want is None or "mmdrfuse" in want:
        from mmdrfuse.fusion import MMDRFuseMethod
        from mmdrfuse.models import Student

        try:
            method = MMDRFuseMethod.from_weights("official-student", device=device, weights_root=ctx.weights_root)
            label = "official"
            sha = method.info.get("file_sha256", "")
        except MMDRFuseError as exc:
            method = MMDRFuseMethod(Student().to(device))
            label, sha = "random-init", ""
            missing["MMDRFuse (official)"] = f"timed with random weights: {exc}"
        model = method.model
        entries.append({"method": "MMDRFuse", "weights": label, "sha256": sha, "params": model.num_params(),
                        "size_kb": model.size_kb(), "macs": lambda h, w, m=model: m.macs(h, w),
                        "fuse": method.fuse, "kind": "mmdrfuse",
                        "path": "fast" if method._forward is not method.model else "plain"})
    from benchmarks.cache import baselines_registry
    from mmdrfuse import paths

    registry = baselines_registry()
    wroot = paths.weights_root(ctx.weights_root)
    for key, spec in registry.items():
        display = getattr(spec, "display", key)
        if getattr(spec, "kind", "learned") != "learned" or not getattr(spec, "table3", True):
            continue
        if want is not None and not ({key.lower(), display.lower()} & want):
            continue
        try:
            reason = spec.status(wroot)
            if reason is None:
                m = spec.build(device, wroot)
                label = Path(spec.weights[0].relpath).name if spec.weights else "none"
                sha = (spec.weights[0].sha256 or "") if spec.weights else ""
                fuse = m.fuse
            else:
                m = spec.build(device, wroot, weights=False)
                label, sha = "random-init", ""
                fuse = (lambda ir, vis, m=m: m.raw(*m._inputs(ir, vis))) if hasattr(m, "raw") else None
                missing[display] = f"no weights here ({reason}); size/FLOPs from the architecture" + (
                    ", time with random weights" if fuse else "")
        except Exception as exc:  # noqa: BLE001 - one broken baseline must not stop the table
            missing[display] = f"cannot be built: {exc.__class__.__name__}: {exc}"
            continue
        entries.append({"method": display, "weights": label, "sha256": sha, "params": m.num_params(),
                        "size_kb": m.size_kb(), "macs": m.macs, "fuse": fuse, "kind": "learned", "path": "plain"})
    return entries, missing


def _time_all(ctx, entries: list[dict], device: torch.device, cfg: dict, metric: str, rows: list, notes: list,
              timings: dict, dataset: str) -> None:
    h, w = (int(x) for x in dataset.split("x"))
    max_g = cfg.get("max_gmacs_timed")
    ir, vis = random_pair(h, w, device)
    for e in entries:
        macs = e["macs"](h, w)
        gmacs = None if macs is None else macs / 1e9
        tag = f"{e['method']} ({e['weights']}) on {device.type}"
        if e["fuse"] is None:
            notes.append(f"{tag}: not timed (cannot run here)")
            continue
        if e["kind"] != "mmdrfuse" and not cfg.get("time_baselines", True):
            notes.append(f"{e['method']}: not timed in the {ctx.profile} profile (run --profile cpu)")
            continue
        if max_g is not None and gmacs is not None and gmacs > float(max_g):
            notes.append(f"{e['method']}: not timed in the {ctx.profile} profile ({gmacs:.0f} G MACs > "
                         f"{max_g}); run --profile cpu")
            continue
        heavy = e["kind"] != "mmdrfuse"
        warm = 0 if heavy else int(cfg.get("warmup", 1))
        n = int(cfg.get("baseline_runs" if heavy else "runs", 1))
        ctx.say(f"timing {tag} at {dataset}: {warm} warm-up + {n} run(s)")
        with torch.inference_mode():
            try:
                ms = measure_ms(lambda: e["fuse"](ir, vis), warm, n, device)
            except (RuntimeError, MMDRFuseError) as exc:  # e.g. out of memory
                notes.append(f"{tag}: timing failed ({exc.__class__.__name__}: {str(exc)[:120]})")
                continue
        med = statistics.median(ms)
        timings[tag] = {"runs_ms": ms, "median_ms": med, "warmup": warm, "path": e["path"], "device": str(device)}
        rows.append({"table": TABLE, "dataset": dataset, "method": e["method"], "weights": e["weights"],
                     "metric": metric, "value": med, "source": "ours", "n_pairs": len(ms), "profile": ctx.profile})


def run(ctx) -> list[Path]:
    cfg = ctx.settings.get("table3", {}) or {}
    h, w = (int(x) for x in cfg.get("size", (1024, 1280)))
    device = torch.device(ctx.device)
    dataset = f"{h}x{w}"
    entries, missing = _entries(ctx, device)
    rows, notes, timings, weights_info = [], [], {}, {}
    for e in entries:
        macs = e["macs"](h, w)
        base = {"table": TABLE, "dataset": dataset, "method": e["method"], "weights": e["weights"],
                "source": "ours", "profile": ctx.profile, "n_pairs": None}
        rows.append({**base, "metric": "Size_KB", "value": e["size_kb"]})
        if macs is not None:
            rows.append({**base, "metric": "FLOPs_G", "value": macs / 1e9})
        rows.append({**base, "metric": "Params", "value": float(e["params"])})
        weights_info[f"{e['method']} ({e['weights']})"] = e["sha256"]
    # Time_ms: on the CPU (or the --device GPU); Time_ms_gpu: also on the GPU when one is present.
    _time_all(ctx, entries, device, cfg, "Time_ms" if device.type == "cpu" else "Time_ms_gpu", rows, notes,
              timings, dataset)
    if device.type == "cpu" and torch.cuda.is_available():
        gpu = torch.device("cuda")
        gpu_entries, _ = _entries(ctx, gpu)
        _time_all(ctx, gpu_entries, gpu, cfg, "Time_ms_gpu", rows, notes, timings, dataset)
    rows += pv.paper_rows(TABLE)
    for name, reason in missing.items():
        notes.append(f"{name}: {reason}")
    where = f"this machine's {device.type.upper()}" + (" and GPU" if "Time_ms_gpu" in {r["metric"] for r in rows}
                                                      and device.type == "cpu" else "")
    notes.append(f"Time: median ms per {dataset} pair measured on {where} (Time_ms: CPU, Time_ms_gpu: GPU); the "
                 "paper's times are from an RTX 3090 GPU. Other processes may share the CPU: see the machine and "
                 "the individual runs in the provenance file.")
    notes.append("Params: parameter count (not a column of the paper's Table 3).")
    prov = provenance(TABLE, profile=ctx.profile, command=ctx.command, weights=weights_info, notes=notes,
                      timings=timings, input_size=[h, w],
                      protocol="Size = params x bytes / 1024; FLOPs = thop-style MACs at 1 x C x H x W; "
                               "Time = median of fuse(ir, vis) on seeded random input after warm-up")
    return write_outputs(rows, ctx.out_dir, TABLE, prov)
