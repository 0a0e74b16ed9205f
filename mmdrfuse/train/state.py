"""The run folder: ``state.pt`` (model, optimiser, finished epoch, recipe hash), ``banks-rank<r>.npz``,
``log.csv`` and ``model.pt``; reading them back for ``--resume`` with one-line errors for damaged files."""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from mmdrfuse.atomic import atomic_path, write_text
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.models import Teacher
from mmdrfuse.train.config import TrainConfig
from mmdrfuse.train.step import LOG_FIELDS


def load_state(path: Path) -> dict:
    """The resumable state of a run, or one line saying it cannot be used (truncated or foreign file)."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling/zip error means a corrupt file
        raise MMDRFuseError(f"{path}: cannot read the saved training state ({exc.__class__.__name__}); the file is "
                            "truncated or corrupt: start a new run in another --out-dir") from None
    if not isinstance(st, dict) or not {"recipe", "world", "model", "optimizer", "epoch"} <= set(st):
        raise MMDRFuseError(f"{path}: not a training state written by 'mmdrfuse train'")
    return st


def check_banks(path: Path) -> None:
    """Read every array of a saved refresh-bank file once (a truncated .npz fails here with one line)."""
    try:
        with np.load(path) as z:
            for key in ("s_data", "s_filled", "g_data", "g_filled"):
                z[key]
    except Exception as exc:  # noqa: BLE001 - zip/pickle/format errors all mean a corrupt file
        raise MMDRFuseError(f"{path}: cannot restore the refresh banks ({exc.__class__.__name__}); the file is "
                            "missing or corrupt: start a new run in another --out-dir") from None


def save_model(path: str | os.PathLike, model: nn.Module, provenance: dict) -> Path:
    """Write the trained network in the project's checkpoint format (:func:`mmdrfuse.checkpoints.save_checkpoint`)."""
    from mmdrfuse.checkpoints import save_checkpoint

    return save_checkpoint(path, model, provenance)


def load_teacher(spec: str, weights_root: str | None, device: torch.device) -> tuple[Teacher, dict]:
    from mmdrfuse.checkpoints import load_model

    model, info = load_model(spec, device=device, weights_root=weights_root, with_info=True)
    if not isinstance(model, Teacher):
        raise MMDRFuseError(f"{spec}: is a {type(model).__name__}, not a teacher; pass --teacher official-teacher or a teacher checkpoint")
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval(), {k: info.get(k) for k in ("name", "path", "weights_sha256")}


def torch_save_atomic(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())


def write_log(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=LOG_FIELDS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_text(path, buf.getvalue())


def read_log(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def fmt(v: Any) -> Any:
    return f"{v:.7g}" if isinstance(v, float) else v


def checkpoint(out_dir: Path, rank: int, world: int, epoch: int, model: nn.Module, optimizer, refresh,
                cfg: TrainConfig, rows: list[dict]) -> None:
    """Banks of every rank first, then (rank 0) the log and ``state.pt``, which names the finished epoch."""
    if refresh is not None:
        refresh.save(out_dir / f"banks-rank{rank}.npz")
    if world > 1:
        dist.barrier()
    if rank == 0:
        write_log(out_dir / "log.csv", rows)
        torch_save_atomic(out_dir / "state.pt", {
            "epoch": epoch, "recipe": cfg.recipe_hash(), "world": world,
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict()})
    if world > 1:
        dist.barrier()
