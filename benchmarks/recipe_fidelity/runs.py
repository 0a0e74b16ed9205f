"""Part 2 of the recipe diagnosis: controlled training runs that change one factor at a time.

Every run starts from the same initialisation (the recipe's seed) and differs from the ``base`` run in one factor of
:data:`FACTORS`. Each run is a resumable job (:mod:`mmdrfuse.jobs`): its training folder resumes after an
interruption and its result JSON (keyed by the resolved config) is reused when present. A run's result holds

- the distance to the authors' student: the parameters (L2, minimised over the orderings of the hidden channels,
  which the network does not see), the outputs on the LLVIP training patches (mean |difference| x 255, the
  selection criterion: calibration is fitted on LLVIP, judged on MSRS and MRI-PET) and the fused MSRS / MRI-PET
  images as the ``fuse`` command writes them (mean |difference| in grey levels);
- the paper's six metrics on MSRS (361) and MRI-PET (42), and the last epoch's mean loss terms.

The authors' student is used only here, to measure distances: never as a loss term or an initialisation.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmdrfuse import jobs
from mmdrfuse.evaluate import evaluate_folder
from mmdrfuse.folders import fuse_folder
from mmdrfuse.images import match_stems, read_array
from mmdrfuse.metrics import PAPER_METRICS
from mmdrfuse.train import TrainConfig, load_config, train

DATASETS = {"MSRS": ("MSRS/test/ir", "MSRS/test/vi"), "MRI_PET": ("MRI_PET/MRI", "MRI_PET/PET")}
REFERENCE = "official-student"  # the authors' student: measured against, never trained towards


@dataclass(frozen=True)
class Factor:
    name: str
    overrides: dict  # dotted config overrides on top of the base recipe
    what: str  # one line for the report


FACTORS = (
    Factor("base", {}, "the base recipe unchanged"),
    Factor("perceptual_x4", {"loss.perceptual": 8.0},
           "perceptual weight x4 (the Caffe backbone's unknown scale; refresh feature terms unchanged)"),
    Factor("perceptual_div4", {"loss.perceptual": 0.5}, "perceptual weight / 4"),
    Factor("perceptual_div16", {"loss.perceptual": 0.125}, "perceptual weight / 16"),
    Factor("patch_128", {"data.patch_size": 128, "data.max_patches": 80, "optim.batch_size": 2},
           "128x128 patches (the authors' size), a quarter as many, batch 2: the same pixels per step, same steps"),
    Factor("no_refresh", {"loss.refresh": False}, "dynamic refresh off"),
    Factor("conv2_random", {"model.init_from_teacher": False}, "conv2 randomly initialised instead of the teacher's conv00"),
    Factor("lr_1e-3", {"optim.lr": 1.0e-3}, "learning rate 1e-3 (a third of the walk)"),
    Factor("data_x3", {"data.max_patches": 960, "optim.epochs": 2},
           "3x the patches, each seen twice instead of six times (same steps; refresh acts in 1 epoch, not 5)"),
)
FACTOR_NAMES = tuple(f.name for f in FACTORS)


def config_dict(cfg: TrainConfig) -> dict:
    """The config as the jobs' keys hold it: ``optim.schedule`` is left out when constant, so the runs made before
    that key existed keep their keys."""
    d = cfg.to_dict()
    if d["optim"].get("schedule") == "constant":
        d["optim"].pop("schedule")
    return d


def run_config(base: str | Path, factor: Factor, budget: dict) -> TrainConfig:
    """The base recipe (a profile name or YAML file) + the run budget (e.g. fewer patches for a quick check) +
    the factor's change."""
    return load_config(base, "student", {**budget, **factor.overrides})


def param_distance(a: nn.Module, b: nn.Module) -> float:
    """L2 distance of two students' parameters, minimised over the orderings of the hidden channels."""
    wa = [p.detach().double() for p in (a.conv1[1].weight, a.conv1[1].bias, a.conv2[1].weight, a.conv2[1].bias)]
    wb = [p.detach().double() for p in (b.conv1[1].weight, b.conv1[1].bias, b.conv2[1].weight, b.conv2[1].bias)]
    hidden = wa[0].shape[0]
    best = float("inf")
    for perm in itertools.permutations(range(hidden)):
        idx = torch.tensor(perm)
        pb = [wb[0][idx], wb[1][idx], wb[2][:, idx], wb[3]]
        best = min(best, float(sum(((x - y) ** 2).sum() for x, y in zip(wa, pb)).sqrt()))
    return best


@torch.no_grad()
def patch_distance(a: nn.Module, b: nn.Module, patches, batch: int = 64) -> float:
    """Mean |O_a - O_b| x 255 of two students' outputs over the training patches."""
    total, n = 0.0, 0
    for start in range(0, len(patches), batch):
        ids = np.arange(start, min(start + batch, len(patches)))
        ir, vis = patches.batch(ids)
        x = torch.cat([ir, vis], 1)
        total += float((a(x) - b(x)).abs().mean()) * len(ids)
        n += len(ids)
    return 255.0 * total / n


def image_distance(dir_a: Path, dir_b: Path) -> float:
    """Mean |difference| in grey levels of the fused images two folders hold (matched by stem)."""
    diffs = [np.abs(read_array(p.ir).astype(np.int16) - read_array(p.vis).astype(np.int16)).mean()
             for p in match_stems(dir_a, dir_b)]
    return float(np.mean(diffs))


def fuse_and_score(model_or_weights, fused_root: Path, data_root: Path, weights_root) -> dict[str, dict]:
    """Fuse both test sets with a model (or named weights) as the ``fuse`` command does; score them."""
    out = {}
    for ds, (ir, vis) in DATASETS.items():
        target = fused_root / ds
        kw = {"model": model_or_weights} if isinstance(model_or_weights, nn.Module) else {
            "weights": model_or_weights, "weights_root": weights_root}
        fuse_folder(data_root / ir, data_root / vis, target, progress=False, **kw)
        df = evaluate_folder(target, data_root / ir, data_root / vis, PAPER_METRICS, progress=False)
        out[ds] = {m: float(df[m].mean()) for m in PAPER_METRICS}
    return out


def run_factor(factor: Factor, cfg: TrainConfig, work: Path, reference: nn.Module, ref_fused: Path,
               data_root: Path, weights_root, log=print) -> dict:
    """Train one run (resuming its folder), then measure it against the reference."""
    from mmdrfuse.train import patch_set

    run_dir = work / "runs" / f"{factor.name}-{jobs.key_of(config_dict(cfg))}"
    t0 = time.perf_counter()
    result = train(cfg, run_dir, resume=(run_dir / "state.pt").exists(), data_root=str(data_root),
                   weights_root=weights_root, progress=True)
    seconds = time.perf_counter() - t0
    model = result.model.eval()
    _, patches = patch_set(cfg, str(data_root), progress=False)
    scores = fuse_and_score(model, run_dir / "fused", data_root, weights_root)
    from mmdrfuse.train.loop import epoch_means
    from mmdrfuse.train.state import read_log

    rows = read_log(run_dir / "log.csv")
    row = {"factor": factor.name, "what": factor.what, "overrides": factor.overrides, "steps": result.steps,
           "train_seconds": round(seconds, 1), "run_dir": str(run_dir),
           "param_distance": param_distance(model, reference),
           "patch_distance": patch_distance(model, reference, patches),
           "last_epoch": epoch_means(rows, cfg.optim.epochs - 1)}
    for ds in DATASETS:
        row[f"image_distance_{ds}"] = image_distance(run_dir / "fused" / ds, ref_fused / ds)
        row[ds] = scores[ds]
    log(f"{factor.name}: patch distance {row['patch_distance']:.2f}, MSRS VIF {scores['MSRS']['VIF']:.3f}")
    return row


def factor_jobs(base: str | Path, budget: dict, names, work: Path, reference: nn.Module, ref_fused: Path,
                data_root: Path, weights_root) -> list[jobs.Job]:
    """One resumable job per factor (result JSON ``work/results/<factor>-<key>.json``)."""
    by_name = {f.name: f for f in FACTORS}
    out = []
    for name in names:
        factor = by_name[name]
        cfg = run_config(base, factor, budget)
        key = jobs.key_of({"config": config_dict(cfg), "reference": REFERENCE,
                           "datasets": {k: [str(x) for x in v] for k, v in DATASETS.items()}})
        path = work / "results" / f"{name}-{key}.json"

        def work_fn(factor=factor, cfg=cfg, key=key):
            return {"key": key, **run_factor(factor, cfg, work, reference, ref_fused, data_root, weights_root)}

        out.append(jobs.Job(path, work_fn, jobs.has_key(key), tag=name))
    return out




def learning_curve(cfg: TrainConfig, work: Path, reference: nn.Module, ref_fused: Path, data_root: Path,
                   weights_root, dataset: str = "MSRS", every: int = 1) -> list[dict]:
    """Train ``cfg`` once and measure the student after every epoch: the distance to the authors' student on the
    training patches and on ``dataset``'s fused images, and the paper's six metrics there (does more training of this
    recipe move towards the authors' student, or away?)."""
    from mmdrfuse.models import Student, StudentConfig
    from mmdrfuse.train import patch_set

    run_dir = work / "curves" / f"{cfg.profile}-{jobs.key_of(config_dict(cfg))}"
    _, patches = patch_set(cfg, str(data_root), progress=False)
    rows = []

    def on_epoch(epoch: int, model: nn.Module) -> None:
        if (epoch + 1) % every and epoch != cfg.optim.epochs - 1:
            return
        snap = Student(StudentConfig(hidden=cfg.model.hidden))
        snap.load_state_dict(model.state_dict())
        snap.eval()
        target = run_dir / f"fused-epoch{epoch}" / dataset
        ir, vis = DATASETS[dataset]
        fuse_folder(data_root / ir, data_root / vis, target, model=snap, progress=False)
        df = evaluate_folder(target, data_root / ir, data_root / vis, PAPER_METRICS, progress=False)
        rows.append({"epoch": epoch, "patch_distance": patch_distance(snap, reference, patches),
                     f"image_distance_{dataset}": image_distance(target, ref_fused / dataset),
                     **{f"{dataset}_{m}": float(df[m].mean()) for m in PAPER_METRICS}})

    if run_dir.exists():  # an interrupted curve starts over: its per-epoch measurements were not kept
        import shutil

        shutil.rmtree(run_dir)
    train(cfg, run_dir, resume=False, data_root=str(data_root), weights_root=weights_root, on_epoch=on_epoch)
    return rows
