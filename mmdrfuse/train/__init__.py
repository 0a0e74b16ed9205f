"""``mmdrfuse train teacher|student``: the MMDRFuse training recipe (comprehensive loss, dynamic refresh, digestible
distillation), resumable, deterministic on CPU, and scalable with ``torchrun`` (DistributedDataParallel).

Python API: :func:`load_config` (a profile name or YAML path + overrides -> :class:`TrainConfig`) and
:func:`train` (config -> :class:`TrainResult`). The recipe follows the paper (docs/training.md); each profile in
``mmdrfuse/configs/train_<profile>_<kind>.yaml`` says whether it follows the paper or the authors' code.

Modules: :mod:`~mmdrfuse.train.config` (the config dataclasses and profiles), :mod:`~mmdrfuse.train.step` (the loss
terms, the caches and one step), :mod:`~mmdrfuse.train.loop` (epochs, DDP, resume), :mod:`~mmdrfuse.train.state`
(the run folder's files) and :mod:`~mmdrfuse.train.cli` (the command line).
"""
from mmdrfuse.train.config import (CONFIG_DIR, KINDS, PROFILES, BankConfig, DataConfig, LossConfig, ModelConfig,
                                   OptimConfig, SpeedConfig, TrainConfig, VGGConfig, config_path, load_config)
from mmdrfuse.train.loop import TrainingDivergedError, TrainResult, build_model, patch_set, train
from mmdrfuse.train.step import LOG_FIELDS, LOSS_KEYS, LOSS_TERMS, FeatureNet, StepOut, Trainer

__all__ = ["CONFIG_DIR", "KINDS", "PROFILES", "BankConfig", "DataConfig", "LossConfig", "ModelConfig", "OptimConfig",
           "SpeedConfig", "TrainConfig", "VGGConfig", "config_path", "load_config", "TrainingDivergedError",
           "TrainResult", "build_model", "patch_set", "train", "LOG_FIELDS", "LOSS_KEYS", "LOSS_TERMS", "FeatureNet", "StepOut",
           "Trainer"]
