"""``python -m benchmarks.recipe_fidelity``: why the suite's own recipe does not produce the authors' student.

    python -m benchmarks.recipe_fidelity diagnose                 # loss terms + gradients at fixed students (~2 min)
    python -m benchmarks.recipe_fidelity runs                     # the controlled runs (one factor each; resumable)
    python -m benchmarks.recipe_fidelity runs --factors base no_refresh --budget optim.epochs=3
    python -m benchmarks.recipe_fidelity all                      # both
    python -m benchmarks.recipe_fidelity curve --budget optim.epochs=12   # metrics after every epoch of one run
    python -m benchmarks.recipe_fidelity target --weights mmdrfuse-cpu    # a student against the issue's target

Writes ``results/training/recipe_diagnosis.csv``, ``recipe_factors.csv``, ``recipe_fidelity.md`` and their
provenance (``--out`` for another folder). Training folders and per-run results go to ``--work``
(default ``./runs/recipe_fidelity``); an interrupted ``runs`` resumes where it stopped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mmdrfuse.errors import MMDRFuseError

from benchmarks.recipe_fidelity import gradients, report, runs

STUDENTS = ("official-student", "mmdrfuse-cpu")  # named weights measured by `diagnose`
# the two settings: 96 grid patches of 64x64 and 48 of 128x128 (the official profile's size)
DIAG_SETTINGS = ({"data.patch_size": 64, "data.max_patches": 96, "seed": 1},
                 {"data.patch_size": 128, "data.max_patches": 48, "seed": 1})


def _overrides(items) -> dict:
    import yaml

    out = {}
    for item in items or ():
        if "=" not in item:
            raise MMDRFuseError(f"--budget {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        out[k] = yaml.safe_load(v)
    return out


def diagnose(args) -> list[dict]:
    from mmdrfuse.checkpoints import load_model
    from mmdrfuse.train import Trainer, patch_set
    from mmdrfuse.train.state import load_teacher
    from mmdrfuse.vgg import load_vgg
    import torch

    rows = []
    students = {s: load_model(s, weights_root=args.weights_root) for s in args.students}
    for setting in DIAG_SETTINGS:
        cfg = runs.load_config(args.base, "student", {**setting, "loss.refresh": False, **_overrides(args.budget)})
        _, patches = patch_set(cfg, args.data_root, progress=False)
        vgg = load_vgg(cfg.vgg.weights, cfg.vgg.download, cfg.vgg.random_init, "cpu")
        teacher, _ = load_teacher(cfg.teacher, args.weights_root, torch.device("cpu"))
        trainer = Trainer(cfg, next(iter(students.values())), vgg, patches, teacher, None, torch.device("cpu"))
        for row in gradients.diagnosis_rows(cfg, trainer, students):
            row["backbone"] = vgg.backbone
            rows.append(row)
            print(f"{row['student']} {cfg.data.patch_size}px: total {row['total']:.4f}, "
                  f"fit residual {row['fit_residual']:.2f}", file=sys.stderr)
    report.write_diagnosis(rows, Path(args.out))
    return rows


def _yardstick(args):
    """The data root, the work folder, the authors' student, its fused test images (made once) and their scores."""
    from mmdrfuse import paths
    from mmdrfuse.checkpoints import load_model

    data_root = paths.data_root(args.data_root)
    work = Path(args.work)
    reference = load_model(runs.REFERENCE, weights_root=args.weights_root).eval()
    ref_fused = work / "reference"
    ref_scores = runs.fuse_and_score(runs.REFERENCE, ref_fused, data_root, args.weights_root)
    return data_root, work, reference, ref_fused, ref_scores


def run_factors(args) -> list[dict]:
    from mmdrfuse import jobs

    data_root, work, reference, ref_fused, ref_scores = _yardstick(args)
    todo = runs.factor_jobs(args.base, _overrides(args.budget), args.factors, work, reference, ref_fused,
                            data_root, args.weights_root)
    results = jobs.run_all(todo, log=lambda m: print(m, file=sys.stderr))
    report.write_factors(results, ref_scores, Path(args.out), base=args.base, budget=_overrides(args.budget))
    return results


def curve(args) -> list[dict]:
    from mmdrfuse import jobs

    data_root, work, reference, ref_fused, _ = _yardstick(args)
    cfg = runs.load_config(args.base, "student", _overrides(args.budget))
    key = jobs.key_of({"config": runs.config_dict(cfg), "reference": runs.REFERENCE, "curve": "MSRS",
                       **({"every": args.every} if args.every != 1 else {})})
    job = jobs.Job(work / "results" / f"curve-{key}.json",
                   lambda: {"key": key, "rows": runs.learning_curve(cfg, work, reference, ref_fused, data_root,
                                                                    args.weights_root, every=args.every)},
                   jobs.has_key(key), "curve")
    rows = jobs.run(job, log=lambda m: print(m, file=sys.stderr))["rows"]
    report.write_curve(rows, Path(args.out), base=args.base, budget=_overrides(args.budget))
    return rows


def check_target(args) -> list[dict]:
    from mmdrfuse import paths

    from benchmarks.recipe_fidelity import target

    data_root, out = paths.data_root(args.data_root), Path(args.out)
    fused = Path(args.work) / "fused"
    ours = target.evaluate_weights(args.weights, data_root, args.weights_root, fused, out)
    ref = target.evaluate_weights(runs.REFERENCE, data_root, args.weights_root, fused, out)
    rows = target.target_rows(ours, ref, args.weights)
    target.write_target(rows, out, args.weights)
    for r in rows:
        print(f"{r['dataset']:8s} {r['metric']:5s} {r['ratio']:.3f} ({r['rule']}): {'met' if r['pass'] else 'NOT met'}")
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.recipe_fidelity", description=__doc__.split("\n")[0])
    p.add_argument("action", choices=("diagnose", "runs", "curve", "target", "all"))
    p.add_argument("--base", default="cpu", help="the recipe the runs start from: a profile name or YAML (default cpu)")
    p.add_argument("--budget", nargs="*", metavar="KEY=VALUE",
                   help="overrides for every run before the factor's own (e.g. optim.epochs=3)")
    p.add_argument("--factors", nargs="*", default=list(runs.FACTOR_NAMES), help="default: all")
    p.add_argument("--weights", default="mmdrfuse-cpu", help="target: the student to check (named weights or path)")
    p.add_argument("--every", type=int, default=1, help="curve: measure every N epochs (default 1)")
    p.add_argument("--students", nargs="*", default=list(STUDENTS), help="named weights or checkpoints to diagnose")
    p.add_argument("--out", default="results/training")
    p.add_argument("--work", default="runs/recipe_fidelity")
    p.add_argument("--data-root")
    p.add_argument("--weights-root")
    args = p.parse_args(argv)
    for name in args.factors:
        if name not in runs.FACTOR_NAMES:
            from mmdrfuse.names import unknown

            raise unknown("factor", name, runs.FACTOR_NAMES)
    if args.action in ("diagnose", "all"):
        diagnose(args)
    if args.action in ("runs", "all"):
        run_factors(args)
    if args.action == "curve":
        curve(args)
    if args.action == "target":
        check_target(args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
