"""Training-step speed: the reference step (the trainer before issue 14, ``speed.step: reference``) against the fast
step (``speed.step: fast``, the default), side by side in one process.

Both trainers share the network, the perceptual backbone, the teacher and the patches, and start from identical
refresh banks holding a plausible earlier output (the mean of the two sources), so the refresh terms are live and the
banks are not rewritten (no optimiser step is taken: every repetition of a batch does the same work). Every loss term
and refresh scalar of the two steps is compared (``--tol``, relative) before anything is timed.

Timed: forward + backward of one batch, ``--rounds`` rounds over ``--batches`` batches, the two implementations
interleaved (the order alternates every round, ABBA) so that a change in the machine's load hits both alike.
``warm`` = every cache filled (later epochs: targets, teacher outputs, and for the fast step the VGG taps of the stored
bank outputs); ``cold`` = every cache emptied before each step (the first epoch; the refresh terms still live).

    python -m benchmarks.speed_train [--patch 64] [--batch 8] [--batches 4] [--rounds 5] [--threads 0 1]
                                     [--out results/training]

With ``--out``: ``speed_train.csv`` (one row per kind, caches and implementation), ``speed_train.md`` and
``speed_train.provenance.json`` (command, commit, machine, load averages before and after). ``--threads 0 1``
measures torch's default thread count and one thread, interleaved: on a machine shared with other jobs the second
shows the work saved, the first also what waiting for descheduled worker threads costs.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from mmdrfuse import paths
from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.patches import PatchConfig, build_patches
from mmdrfuse.refresh import DynamicRefresh
from mmdrfuse.train import FeatureNet, Trainer, build_model, load_config
from mmdrfuse.train.state import load_teacher
from mmdrfuse.vgg import load_vgg

IMPLS = ("reference", "fast")
FIELDS = ["kind", "threads", "caches", "implementation", "patch", "batch", "steps", "median_s", "min_s",
          "patch_steps_per_s", "patch_steps_per_s_best", "speedup", "max_rel_diff", "steps_with_refresh_terms"]


# -------------------------------------------------------------------------------------------------- set-up
def _setup(kind: str, args) -> tuple[dict[str, Trainer], list[np.ndarray], dict]:
    n = args.batch * args.batches
    over = {"data.patch_size": args.patch, "data.max_patches": n, "data.max_images": 4, "optim.batch_size": args.batch,
            "bank.dtype": "float32", "speed.feature_cache_mb": 4096, "speed.tap_cache_mb": 4096,
            "vgg.random_init": args.random_vgg}
    cfgs = {impl: load_config("cpu", kind, {**over, "speed.step": impl}) for impl in IMPLS}
    cfg = cfgs["fast"]
    root = paths.data_root(args.data_root) / cfg.data.root
    patches = build_patches(root / cfg.data.ir, root / cfg.data.vis,
                            PatchConfig(cfg.data.patch_size, cfg.data.mode, None, n, cfg.data.max_images, cfg.seed),
                            progress=False)
    dev = torch.device("cpu")
    vgg = load_vgg(cfg.vgg.weights, False, cfg.vgg.random_init, dev)
    teacher = load_teacher(cfg.teacher, args.weights_root, dev)[0] if kind == "student" else None
    model = build_model(cfg, teacher)
    ids = np.arange(len(patches))
    ir, vis = patches.batch(ids)
    trainers = {}
    for impl, c in cfgs.items():
        taps = c.speed.tap_cache_mb * 2**20 if impl == "fast" else 0
        refresh = DynamicRefresh(len(patches), (1, patches.size, patches.size), "float32", None, None,
                                 c.loss.refresh_gain, c.loss.ssim_range, taps)
        refresh.bank_s.put(ids, 0.5 * (ir + vis))  # a plausible earlier output: the refresh terms are live
        refresh.bank_g.put(ids, 0.5 * (ir + vis))
        tr = Trainer(c, model, vgg, patches, teacher, refresh, dev)
        tr.net = FeatureNet(model)
        trainers[impl] = tr
    banks = trainers["fast"].refresh.state()
    return trainers, [ids[i * args.batch:(i + 1) * args.batch] for i in range(args.batches)], banks


def _clear(tr: Trainer) -> None:
    """Empty every cache of a trainer (the first epoch's situation)."""
    for cache in (tr.feat_cache, tr.teacher_cache, tr.refresh.taps_s, tr.refresh.taps_g):
        cache.clear()


def _one(tr: Trainer, ids: np.ndarray, banks: dict, cold: bool) -> tuple[float, dict]:
    if cold:
        _clear(tr)
    tr.model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    res = tr.step(ids, epoch=1)
    tr.backward(res)
    dt = time.perf_counter() - t0
    r = res.refresh
    if r.updated_s or r.updated_g:  # keep every repetition identical (clears the tap caches: counted as misses)
        tr.refresh.load_state(banks)
    return dt, {**res.terms, "s_cur": r.s_cur, "s_bs": r.s_bs, "g_cur": r.g_cur, "g_bg": r.g_bg,
                "loss_s": r.loss_s, "loss_g": r.loss_g}


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), 1e-12)


# -------------------------------------------------------------------------------------------------- measure
def bench(kind: str, args) -> tuple[list[dict], str]:
    """The rows of one network kind (per thread count: warm, then cold caches) and the perceptual backbone's name."""
    trainers, batches, banks = _setup(kind, args)
    worst, active = 0.0, 0
    for ids in batches:  # warm-up (fills the caches) and the equality check
        _, a = _one(trainers["reference"], ids, banks, False)
        _, b = _one(trainers["fast"], ids, banks, False)
        worst = max([worst] + [_rel(a[k], b[k]) for k in a])
        active += int(a.get("ref", 0) != 0)
    if worst > args.tol:
        raise SystemExit(f"{kind}: the two steps disagree (max relative difference {worst:.2e} > {args.tol:g})")
    default = torch.get_num_threads()
    counts = [t or default for t in args.threads]
    rows = []
    for cold in ([False, True] if args.cold else [False]):
        times = {(t, impl): [] for t in counts for impl in IMPLS}
        for rnd in range(args.rounds):
            order = IMPLS if rnd % 2 == 0 else IMPLS[::-1]
            for ids in batches:
                for t in counts:
                    torch.set_num_threads(t)
                    for impl in order:
                        times[t, impl].append(_one(trainers[impl], ids, banks, cold)[0])
        torch.set_num_threads(default)
        for t in counts:
            ref_median = statistics.median(times[t, "reference"])
            for impl in IMPLS:
                ts = times[t, impl]
                med, best = statistics.median(ts), min(ts)
                rows.append({"kind": kind, "threads": t, "caches": "cold" if cold else "warm", "implementation": impl,
                             "patch": args.patch, "batch": args.batch, "steps": len(ts),
                             "median_s": round(med, 4), "min_s": round(best, 4),
                             "patch_steps_per_s": round(args.batch / med, 3),
                             "patch_steps_per_s_best": round(args.batch / best, 3),
                             "speedup": round(ref_median / med, 3), "max_rel_diff": f"{worst:.1e}",
                             "steps_with_refresh_terms": f"{active}/{len(batches)}"})
    return rows, trainers["fast"].vgg.backbone


# -------------------------------------------------------------------------------------------------- output
def _markdown(rows: list[dict], meta: dict) -> str:
    head = ("| kind | threads | caches | reference (patch-steps/s) | fast (patch-steps/s) | speed-up (medians) | "
            "best of each | speed-up (bests) | max rel. loss diff |\n|---|---|---|---|---|---|---|---|---|\n")
    body = ""
    for i in range(0, len(rows), 2):
        r, f = rows[i], rows[i + 1]
        body += (f"| {r['kind']} | {r['threads']} | {r['caches']} | {r['patch_steps_per_s']:.2f} | "
                 f"{f['patch_steps_per_s']:.2f} | **{f['speedup']:.2f}x** | {r['patch_steps_per_s_best']:.2f} vs "
                 f"{f['patch_steps_per_s_best']:.2f} | {r['min_s'] / f['min_s']:.2f}x | {f['max_rel_diff']} |\n")
    return ("# Training-step speed: reference vs fast step (forward + backward of one batch)\n\n"
            f"Patches {rows[0]['patch']}x{rows[0]['patch']}, batch {rows[0]['batch']}, {rows[0]['steps']} timed steps "
            f"per implementation and thread count (all interleaved), medians (and the best step); backbone "
            f"{meta['backbone']}; torch's default {meta['threads']} threads on {meta['cpu_count']} CPUs. 1-min load average "
            f"{meta['load_before']:.1f} before and {meta['load_after']:.1f} after: the machine was shared with other "
            "jobs, so absolute numbers vary from run to run; the ratio of interleaved medians is the robust figure.\n\n"
            + head + body)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", default=["student", "teacher"], choices=["student", "teacher"])
    ap.add_argument("--patch", type=int, default=64, help="patch side (the cpu profile's 64; the paper's 128)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batches", type=int, default=4, help="distinct batches per round")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds over the batches (after one warm-up round)")
    ap.add_argument("--no-cold", dest="cold", action="store_false", help="skip the cold-cache measurement")
    ap.add_argument("--tol", type=float, default=1e-5, help="relative tolerance for equal loss terms")
    ap.add_argument("--threads", type=int, nargs="+", default=[0],
                    help="intra-op thread counts to measure, interleaved (0 = torch's default)")
    ap.add_argument("--random-vgg", action="store_true", help="random VGG weights (no weight files needed)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--weights-root", default=None)
    ap.add_argument("--out", default=None, help="folder for speed_train.csv / .md / .provenance.json (default: print)")
    args = ap.parse_args(argv)
    from mmdrfuse.memory import keep_freed_memory

    keep_freed_memory()
    torch.manual_seed(0)
    load_before = os.getloadavg()[0]
    rows, backbone = [], ""
    for kind in args.kinds:
        got, backbone = bench(kind, args)
        rows += got
    meta = {"threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "load_before": load_before,
            "load_after": os.getloadavg()[0], "backbone": backbone}
    md = _markdown(rows, meta)
    print(md)
    if args.out:
        from benchmarks.report import provenance

        out = Path(args.out)
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_text(out / "speed_train.csv", buf.getvalue())
        write_text(out / "speed_train.md", md)
        write_json(out / "speed_train.provenance.json", provenance(
            "speed_train", profile="cpu", args=vars(args), load_average_1min=[meta["load_before"], meta["load_after"]],
            notes=["measured on a machine shared with other jobs (load averages above); the two implementations are "
                   "interleaved in one process, so their ratio is meaningful, absolute rates less so"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
