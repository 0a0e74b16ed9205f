"""Training-step speed: the straightforward step (the authors' code structure) versus the project's step.

Both compute the same loss for the same model, batch and refresh banks; the script checks every loss term agrees to
``--tol`` (relative, default 1e-5) and then times forward + backward (no optimiser step, banks restored before each
step so both sides do identical work) after warm-up steps.

Straightforward (as in the authors' train_student.py / train_teacher.py): every VGG tap ``features[:k]`` recomputed
from the input for ir, vis and the output separately (5 passes each, the output's with grad); the refresh terms rerun
``features[:k]`` on the stored and the live output; the frozen teacher runs every step; GMSD per sample.

Project's (:class:`mmdrfuse.train.Trainer`): one VGG pass gives all five taps; ``max(VGG(ir), VGG(vis))`` cached per
patch (or one batched no-grad pass on a miss); frozen-teacher outputs cached per patch; the live output's taps are
reused by the refresh terms; stored outputs pass through VGG only as deep as their term needs (5 or 3 taps).
"Cold" = the project's step with empty caches (the first epoch), "warm" = caches filled (later epochs).

    python -m benchmarks.speed_train [--patch 64] [--batch 8] [--steps 3] [--kinds student teacher] [--out results/training]
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from mmdrfuse import losses, paths
from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.patches import PatchConfig, build_patches
from mmdrfuse.refresh import DynamicRefresh, gmsd_train, ssim_train
from mmdrfuse.train import FeatureNet, Trainer, build_model, load_config
from mmdrfuse.train.state import load_teacher
from mmdrfuse.vgg import TAPS, load_vgg


# ---------------------------------------------------------------------------------------- straightforward step
def _slice(vgg, k: int, img: torch.Tensor) -> torch.Tensor:
    """``features[:TAPS[k]]`` applied from scratch to a gray image (what the authors' code does per tap)."""
    return vgg.features[:TAPS[k]](vgg.prepare(img)) * vgg.feature_scale


def _gmsd_loop(a: torch.Tensor, b: torch.Tensor) -> float:
    return sum(float(gmsd_train(a[i:i + 1], b[i:i + 1])) for i in range(a.shape[0])) / a.shape[0]


def straightforward_step(tr: Trainer, ids: np.ndarray, epoch: int) -> tuple[torch.Tensor, dict]:
    vgg, w = tr.vgg, tr.cfg.loss
    ir, vis = tr.patches.batch(ids, tr.device)
    x = torch.cat([ir, vis], 1)
    feat, out = tr.model.features(x)
    per = 0.0
    for k in range(5):
        with torch.no_grad():
            g_ir, g_vi = _slice(vgg, k, ir), _slice(vgg, k, vis)
        per = per + ((_slice(vgg, k, out) - torch.maximum(g_ir, g_vi)) ** 2).mean()
    per = per / 5
    l_int = (out - torch.maximum(ir, vis)).abs().mean()
    l_grad = ((losses.gradient(out) - losses.gradient(torch.maximum(ir, vis))) ** 2).mean()
    total = w.intensity * l_int + w.gradient * l_grad + w.perceptual * per
    terms = {"int": l_int.item(), "grad": l_grad.item(), "per": per.item()}
    if tr.teacher is not None:
        with torch.no_grad():
            t_feat, t_out = tr.teacher.features(x)
        l_dis = losses.distillation_loss(feat, t_feat, out, t_out, mode=w.distill_mode)
        total = total + w.distill * l_dis
        terms["dis"] = l_dis.item()
    if tr.refresh is not None:
        r = tr.refresh
        o = out.detach()
        ref = out.new_zeros(())
        if epoch == 0:
            r.bank_s.put(ids, o)
            r.bank_g.put(ids, o)
        else:
            o_bs, o_bg = r.bank_s.get(ids), r.bank_g.get(ids)
            rng = r.ssim_range
            s_cur = float(ssim_train(o, ir, rng)) + float(ssim_train(o, vis, rng))
            s_bs = float(ssim_train(o_bs, ir, rng)) + float(ssim_train(o_bs, vis, rng))
            g_cur = _gmsd_loop(o, ir) + _gmsd_loop(o, vis)
            g_bg = _gmsd_loop(o_bg, ir) + _gmsd_loop(o_bg, vis)
            if s_cur > s_bs:
                r.bank_s.put(ids, o)
            elif s_cur < s_bs:
                l_s = 0.0
                for k in (3, 4):
                    with torch.no_grad():
                        g_last = _slice(vgg, k, o_bs)
                    l_s = l_s + ((g_last - _slice(vgg, k, out)) ** 2).mean()
                l_s = l_s / 2 + (o_bs - out).abs().mean()
                ref = ref + (s_bs - s_cur) * l_s
            if g_cur < g_bg:
                r.bank_g.put(ids, o)
            elif g_cur > g_bg:
                l_g = 0.0
                for k in range(3):
                    with torch.no_grad():
                        g_last = _slice(vgg, k, o_bg)
                    l_g = l_g + ((g_last - _slice(vgg, k, out)) ** 2).mean()
                l_g = l_g / 3 + ((losses.gradient(out) - losses.gradient(o_bg)) ** 2).mean()
                ref = ref + (g_cur - g_bg) * l_g
        ref = r.gain * ref
        total = total + ref
        terms["ref"] = ref.item()
    terms["total"] = total.item()
    return total, terms


# -------------------------------------------------------------------------------------------------- harness
def _setup(kind: str, args) -> tuple[Trainer, np.ndarray]:
    cfg = load_config("cpu", kind, {"data.patch_size": args.patch, "data.max_patches": args.batch * (args.steps + 1),
                                    "data.max_images": 4, "optim.batch_size": args.batch,
                                    "speed.feature_cache_mb": 4096, "bank.dtype": "float32",
                                    "vgg.random_init": args.random_vgg})
    root = paths.data_root(args.data_root) / cfg.data.root
    patches = build_patches(root / cfg.data.ir, root / cfg.data.vis,
                            PatchConfig(cfg.data.patch_size, cfg.data.mode, None, cfg.data.max_patches,
                                        cfg.data.max_images, cfg.seed), progress=False)
    dev = torch.device("cpu")
    vgg = load_vgg(cfg.vgg.weights, False, cfg.vgg.random_init, dev)
    teacher = load_teacher(cfg.teacher, args.weights_root, dev)[0] if kind == "student" else None
    model = build_model(cfg, teacher)
    refresh = DynamicRefresh(len(patches), (1, patches.size, patches.size), "float32", None, None,
                             cfg.loss.refresh_gain, cfg.loss.ssim_range)
    tr = Trainer(cfg, model, vgg, patches, teacher, refresh, dev)
    tr.net = FeatureNet(model)
    # banks hold a plausible earlier output (the mean of the sources), so refresh terms are live in the timed steps
    ids = np.arange(len(patches))
    ir, vis = patches.batch(ids)
    refresh.bank_s.put(ids, 0.5 * (ir + vis))
    refresh.bank_g.put(ids, 0.5 * (ir + vis))
    return tr, ids


def _timed(fn, tr: Trainer, batches: list[np.ndarray], bank_state: dict) -> tuple[float, list[dict]]:
    times, terms = [], []
    for ids in batches:
        tr.refresh.load_state(copy.deepcopy(bank_state))
        tr.model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        total, t = fn(ids)
        total.backward()
        times.append(time.perf_counter() - t0)
        terms.append(t)
    return float(np.median(times)), terms


def bench(kind: str, args) -> dict:
    tr, ids = _setup(kind, args)
    bs = args.batch
    batches = [ids[i * bs:(i + 1) * bs] for i in range(args.steps + 1)]
    warm_batch, timed = batches[0], batches[1:]
    bank_state = copy.deepcopy(tr.refresh.state())
    straight = lambda b: straightforward_step(tr, b, epoch=1)  # noqa: E731
    project = lambda b: (lambda r: (r.total, r.terms))(tr.step(b, epoch=1))  # noqa: E731
    # warm-up (also fills the project's caches for the warm batch only)
    _timed(straight, tr, [warm_batch], bank_state)
    _timed(project, tr, [warm_batch], bank_state)
    t_straight, terms_s = _timed(straight, tr, timed, bank_state)
    t_cold, terms_c = _timed(project, tr, timed, bank_state)  # cache misses: first sight of these patches
    t_warm, terms_w = _timed(project, tr, timed, bank_state)  # cache hits
    worst = 0.0
    for a, b, c in zip(terms_s, terms_c, terms_w):
        for k in a:
            for other in (b, c):
                worst = max(worst, abs(a[k] - other[k]) / max(abs(a[k]), 1e-12))
    active = sum(1 for t in terms_s if t.get("ref", 0) != 0)
    return {"kind": kind, "patch": args.patch, "batch": bs, "measured_steps": len(timed), "backbone": tr.vgg.backbone,
            "straightforward_patch_steps_per_s": bs / t_straight, "project_cold_patch_steps_per_s": bs / t_cold,
            "project_warm_patch_steps_per_s": bs / t_warm, "speedup_cold": t_straight / t_cold,
            "speedup_warm": t_straight / t_warm, "max_rel_loss_diff": worst, "equal_losses": worst <= args.tol,
            "steps_with_refresh_terms": active}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", nargs="+", default=["student", "teacher"], choices=["student", "teacher"])
    ap.add_argument("--patch", type=int, default=64, help="patch side (the cpu profile's 64; the paper's 128)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="measured steps (median reported) after one warm-up")
    ap.add_argument("--tol", type=float, default=1e-5, help="relative tolerance for equal loss terms")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--random-vgg", action="store_true", help="random VGG weights (no weight files needed)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--weights-root", default=None)
    ap.add_argument("--out", default=None, help="folder for speed_train.json / .md (default: print only)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [bench(k, args) for k in args.kinds]
    meta = {"torch": str(torch.__version__), "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
            "machine": platform.machine(), "load_average_1min": os.getloadavg()[0]}
    hdr = ("| kind | patch | batch | straightforward | project (cold caches) | project (warm caches) | speed-up cold | "
           "speed-up warm | max rel. loss diff |\n|---|---|---|---|---|---|---|---|---|\n")
    md = hdr + "".join(
        f"| {r['kind']} | {r['patch']} | {r['batch']} | {r['straightforward_patch_steps_per_s']:.3f} | "
        f"{r['project_cold_patch_steps_per_s']:.3f} | {r['project_warm_patch_steps_per_s']:.3f} | "
        f"{r['speedup_cold']:.2f}x | {r['speedup_warm']:.2f}x | {r['max_rel_loss_diff']:.1e} |\n" for r in rows)
    md = ("# Training-step speed (patch-steps/s, forward + backward, median of measured steps)\n\n"
          f"Backbone {rows[0]['backbone']}; {meta['threads']} torch threads on {meta['cpu_count']} CPUs, "
          f"1-min load average {meta['load_average_1min']:.1f} at the end (the machine was shared).\n\n" + md)
    print(md)
    if args.out:
        out = Path(args.out)
        write_json(out / "speed_train.json", {"rows": rows, "meta": meta, "args": vars(args)})
        write_text(out / "speed_train.md", md)
    return 0 if all(r["equal_losses"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
