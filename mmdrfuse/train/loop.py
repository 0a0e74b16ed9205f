"""The training loop: :func:`train` (config -> :class:`TrainResult`), resumable, deterministic on CPU, and scalable
with ``torchrun`` (DistributedDataParallel).

Run folder (``out_dir``): ``config.yaml`` (resolved), ``state.pt`` (model + optimiser + epoch, atomic, every
epoch), ``banks-rank<r>.npz`` (refresh banks at that epoch), ``log.csv`` (every loss term of every step, rewritten
atomically with each checkpoint), ``model.pt`` (the trained network in the project's checkpoint format),
``summary.json``. Rerunning with ``resume=True`` continues from the last finished epoch and ends with the same
weights as an uninterrupted run.
"""
from __future__ import annotations

import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from mmdrfuse import paths
from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.models import Student, StudentConfig, Teacher
from mmdrfuse.patches import PatchConfig, PatchSet, build_patches, epoch_order, shard_ids
from mmdrfuse.refresh import DynamicRefresh
from mmdrfuse.train.config import TrainConfig, load_config
from mmdrfuse.train.state import (check_banks, checkpoint, fmt, load_state, load_teacher, read_log, save_model,
                                  write_log)
from mmdrfuse.train.step import LOSS_KEYS, FeatureNet, StepOut, Trainer, log_row
from mmdrfuse.vgg import load_vgg

log = logging.getLogger(__name__)


class TrainingDivergedError(MMDRFuseError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    out_dir: Path
    model: nn.Module
    epochs_done: int
    steps: int
    model_path: Path | None
    backbone: str
    resumed_from: int | None = None


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _maybe_init_dist(device: torch.device) -> bool:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return True
    return False


def build_model(cfg: TrainConfig, teacher: Teacher | None) -> nn.Module:
    """The network to train, seeded by ``cfg.seed`` (the student's conv2 from the teacher's conv00 if asked)."""
    torch.manual_seed(cfg.seed)
    if cfg.kind == "teacher":
        return Teacher()
    model = Student(StudentConfig(hidden=cfg.model.hidden))
    if cfg.model.init_from_teacher:
        if teacher is None:
            raise MMDRFuseError("model.init_from_teacher needs a teacher")
        if cfg.model.hidden != teacher.conv00[1].in_channels:
            raise MMDRFuseError(f"model.init_from_teacher: the teacher's conv00 takes {teacher.conv00[1].in_channels} "
                                f"channels, the student's conv2 {cfg.model.hidden}; set model.init_from_teacher: false")
        model.conv2.load_state_dict(teacher.conv00.state_dict())
    return model


def patch_set(cfg: TrainConfig, data_root: str | None = None, progress: bool = True) -> tuple[Path, PatchSet]:
    """The training folder ``cfg.data.root`` (relative to the data root) and the patches ``cfg`` cuts from it."""
    root = Path(cfg.data.root)
    if not root.is_absolute():
        root = paths.data_root(data_root) / root
    pcfg = PatchConfig(cfg.data.patch_size, cfg.data.mode, cfg.data.per_image, cfg.data.max_patches,
                       cfg.data.max_images, cfg.seed)
    return root, build_patches(root / cfg.data.ir, root / cfg.data.vis, pcfg, progress=progress)


def train(config: TrainConfig | dict | str, out_dir: str | os.PathLike, *, resume: bool = False,
          data_root: str | None = None, weights_root: str | None = None, device: str = "cpu",
          progress: bool = True, output: str | os.PathLike | None = None,
          on_step: Callable[[int, dict], None] | None = None,
          on_epoch: Callable[[int, nn.Module], None] | None = None) -> TrainResult:
    """Train a teacher or a student with ``config`` into ``out_dir`` (see the module docstring for its contents).

    ``resume`` continues from ``out_dir/state.pt`` (which must come from the same recipe). ``output`` also writes the
    final checkpoint there. ``on_step(step, terms)`` is called after every optimiser step (tests, monitoring),
    ``on_epoch(epoch, model)`` after every epoch's checkpoint (learning curves; the model is in train mode).
    Under ``torchrun`` the process group is initialised here (gloo on CPU, nccl on GPU).
    """
    cfg = config if isinstance(config, TrainConfig) else load_config(config)  # a dict or a YAML path naming its kind
    dev = torch.device(device)
    started_dist = _maybe_init_dist(dev)
    try:
        return _train(cfg, Path(out_dir), resume, data_root, weights_root, dev, progress, output, on_step, on_epoch)
    finally:
        if started_dist:
            dist.destroy_process_group()


@dataclass
class _Run:
    """Everything one call of :func:`train` works with."""

    cfg: TrainConfig
    out_dir: Path
    rank: int
    world: int
    local_bs: int
    root: Path
    patches: PatchSet
    my_ids: np.ndarray
    steps_per_epoch: int
    trainer: Trainer
    optimizer: torch.optim.Optimizer
    start_epoch: int = 0
    rows: list | None = None
    resumed_from: int | None = None
    teacher_info: dict | None = None

    @property
    def state_path(self) -> Path:
        return self.out_dir / "state.pt"


def _train(cfg: TrainConfig, out_dir: Path, resume: bool, data_root, weights_root, dev: torch.device,
           progress: bool, output, on_step, on_epoch=None) -> TrainResult:
    run = _setup(cfg, out_dir, resume, data_root, weights_root, dev, progress)
    vgg = run.trainer.vgg
    if run.rank == 0:
        write_text(out_dir / "config.yaml", f"# resolved training config ({cfg.profile} profile)\n"
                   + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        log.info("training %s (%s profile): %d patches, %d steps/epoch, backbone %s", cfg.kind, cfg.profile,
                 len(run.patches), run.steps_per_epoch, vgg.backbone)
    provenance = {
        "kind": cfg.kind, "profile": cfg.profile, "recipe": cfg.recipe_hash(), "config": cfg.to_dict(),
        "data": str(run.root), "patches": len(run.patches), "perceptual_backbone": vgg.backbone,
        "perceptual_weights": vgg.source, "teacher": run.teacher_info, "world_size": run.world,
        "torch": str(torch.__version__), "python": platform.python_version(),
    }
    t0 = time.perf_counter()
    step = _run_epochs(run, t0, progress, on_step, on_epoch)
    model = run.trainer.model
    model_path = None
    if run.rank == 0:
        provenance.update(epochs=cfg.optim.epochs, steps=step, seconds_this_run=round(time.perf_counter() - t0, 1))
        model_path = save_model(out_dir / "model.pt", model.eval(), provenance)
        if output:
            save_model(output, model, provenance)
        write_json(out_dir / "summary.json", {
            "kind": cfg.kind, "profile": cfg.profile, "epochs": cfg.optim.epochs, "steps": step,
            "patches": len(run.patches), "perceptual_backbone": vgg.backbone, "resumed_from_epoch": run.resumed_from,
            "last_epoch_mean": epoch_means(run.rows, cfg.optim.epochs - 1), "model": str(model_path),
            "output": str(output) if output else None})
    return TrainResult(out_dir, model, cfg.optim.epochs, step, model_path, vgg.backbone, run.resumed_from)


def _setup(cfg: TrainConfig, out_dir: Path, resume: bool, data_root, weights_root, dev: torch.device,
           progress: bool) -> _Run:
    """Data, networks, optimiser, banks and (with ``resume``) the saved state: everything before the first step."""
    rank, world = _dist_info()
    if cfg.speed.threads:
        torch.set_num_threads(int(cfg.speed.threads))
    if cfg.optim.batch_size % world:
        raise MMDRFuseError(f"optim.batch_size {cfg.optim.batch_size} does not split over {world} processes; "
                            "use a multiple of the process count")
    local_bs = cfg.optim.batch_size // world
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "state.pt"
    if state_path.exists() and not resume:
        raise MMDRFuseError(f"{state_path}: a run already exists here; pass --resume to continue it or choose another --out-dir")

    # data
    root, patches = patch_set(cfg, data_root, progress=progress and rank == 0)
    n = len(patches)
    my_ids = shard_ids(n, rank, world)
    steps_per_epoch = len(my_ids) // local_bs
    if steps_per_epoch == 0:
        raise MMDRFuseError(f"{root}: {n} patches give no full batch of {cfg.optim.batch_size}; lower optim.batch_size")

    # networks
    vgg = load_vgg(cfg.vgg.weights, cfg.vgg.download, cfg.vgg.random_init, dev)
    teacher, teacher_info = (None, None)
    if cfg.kind == "student":
        teacher, teacher_info = load_teacher(cfg.teacher, weights_root, dev)
    model = build_model(cfg, teacher).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    refresh = None
    if cfg.loss.refresh:
        taps = cfg.speed.tap_cache_mb * 2**20 if cfg.speed.step == "fast" else 0
        refresh = DynamicRefresh(n, (1, patches.size, patches.size), cfg.bank.dtype, cfg.bank.memory_mb * 2**20,
                                 out_dir / "banks", cfg.loss.refresh_gain, cfg.loss.ssim_range, taps)
    trainer = Trainer(cfg, model, vgg, patches, teacher, refresh, dev)
    run = _Run(cfg, out_dir, rank, world, local_bs, root, patches, my_ids, steps_per_epoch, trainer, optimizer,
               rows=[], teacher_info=teacher_info)
    if resume and state_path.exists():
        _restore(run)
    net: nn.Module = FeatureNet(model)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net)
    trainer.net = net
    return run


def _restore(run: _Run) -> None:
    """Model, optimiser, banks and log rows of the last finished epoch (``--resume``)."""
    st = load_state(run.state_path)
    if st["recipe"] != run.cfg.recipe_hash() or st["world"] != run.world:
        raise MMDRFuseError(f"{run.state_path}: was written by a different recipe or process count; "
                            "resume with the same config and torchrun size, or choose another --out-dir")
    run.trainer.model.load_state_dict(st["model"])
    run.optimizer.load_state_dict(st["optimizer"])
    run.start_epoch = run.resumed_from = st["epoch"] + 1
    if run.trainer.refresh is not None:
        banks = run.out_dir / f"banks-rank{run.rank}.npz"
        check_banks(banks)
        run.trainer.refresh.load(banks)
    rows = read_log(run.out_dir / "log.csv")
    run.rows = [r for r in rows if int(r["epoch"]) < run.start_epoch]


def _run_epochs(run: _Run, t0: float, progress: bool, on_step, on_epoch=None) -> int:
    """The epochs from ``run.start_epoch`` on, a checkpoint after each; returns the global step count."""
    cfg, model, optimizer = run.cfg, run.trainer.model, run.optimizer
    step = run.start_epoch * run.steps_per_epoch
    total_steps = cfg.optim.epochs * run.steps_per_epoch
    bar = tqdm(total=cfg.optim.epochs * run.steps_per_epoch, initial=step, disable=not progress or run.rank != 0,
               desc=f"train {cfg.kind}", unit="step", dynamic_ncols=True)
    try:
        for epoch in range(run.start_epoch, cfg.optim.epochs):
            model.train()
            order = epoch_order(run.my_ids, cfg.seed, epoch, run.rank)
            epoch_rows: list[dict] = []
            for b in range(run.steps_per_epoch):
                ids = order[b * run.local_bs:(b + 1) * run.local_bs]
                optimizer.zero_grad(set_to_none=True)
                if cfg.optim.schedule == "cosine":  # from the global step alone, so a resumed run continues it
                    for group in optimizer.param_groups:
                        group["lr"] = cfg.optim.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
                res = run.trainer.step(ids, epoch)
                _check_finite(run, res, epoch, step, epoch_rows)
                run.trainer.backward(res)
                optimizer.step()
                step += 1
                row = {"epoch": epoch, "step": step, "batch": b, "patch_steps": step * cfg.optim.batch_size,
                       **log_row(res), "seconds": round(time.perf_counter() - t0, 3)}
                epoch_rows.append({k: fmt(v) for k, v in row.items()})
                bar.set_postfix({k: f"{v:.4g}" for k, v in res.terms.items()}, refresh=False)
                bar.update(1)
                if on_step is not None:
                    on_step(step, res.terms)
            run.rows += epoch_rows
            checkpoint(run.out_dir, run.rank, run.world, epoch, model, optimizer, run.trainer.refresh, cfg, run.rows)
            if on_epoch is not None:
                on_epoch(epoch, model)
    finally:
        bar.close()
    return step


def _check_finite(run: _Run, res: StepOut, epoch: int, step: int, epoch_rows: list[dict]) -> None:
    """Stop before the optimiser step when the loss is not finite on any rank (the last checkpoint is kept)."""
    finite = torch.tensor([1.0 if math.isfinite(res.terms["total"]) else 0.0])
    if run.world > 1:
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
    if finite.item() >= 1:
        return
    bad = {k: v for k, v in res.terms.items() if not math.isfinite(v)}
    if run.rank == 0:
        write_log(run.out_dir / "log.diverged.csv", run.rows + epoch_rows)
    keep = (f"the last good checkpoint {run.state_path} (epoch {epoch - 1}) is kept" if run.state_path.exists()
            else "no epoch had finished, so there is no checkpoint")
    raise TrainingDivergedError(
        f"loss became non-finite at epoch {epoch} step {step + 1} ({', '.join(bad) or 'total'}); "
        f"{keep}; lower optim.lr or check the data, then rerun with --resume")


def epoch_means(rows: list[dict], epoch: int) -> dict:
    """The mean of every loss term (and the total) over the logged steps of ``epoch``."""
    sel = [r for r in rows if int(r["epoch"]) == epoch]
    out = {}
    for k in LOSS_KEYS:
        vals = [float(r[k]) for r in sel if r.get(k) not in (None, "")]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out
