"""The only module that touches Ultralytics: its offline import, training a detector and evaluating it once.

Offline by construction: ``YOLO_OFFLINE=1`` is set before Ultralytics is imported, ``amp=False`` (its AMP check
downloads a model), ``plots=False``, Ultralytics' font check (a HEAD request to its asset server) is disabled for the
run, ``workers=0``, absolute project folders, a local dataset YAML; its settings file lives in the work folder.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.detection.config import METRICS, DetectionProfile
from mmdrfuse.errors import BadInputError, MMDRFuseError


def import_ultralytics(config_dir: Path):
    """Import Ultralytics offline: YOLO_OFFLINE=1 and a private settings folder, set before the first import."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(config_dir).resolve()))
    os.environ.setdefault("YOLO_VERBOSE", "False")
    omp = os.environ.get("OMP_NUM_THREADS")  # Ultralytics sets it to 1 on import when unset: keep ours
    from PIL import Image

    pil_open = Image.open  # Ultralytics replaces PIL.Image.open process-wide on import (a HEIF retry that
    try:                   # pip-installs pi-heif on any unreadable file): put the original back afterwards
        import ultralytics  # noqa: F401
        import ultralytics.utils.patches  # noqa: F401  (imported here so that its PIL patch is undone below)
        from ultralytics import YOLO
        from ultralytics.utils import SETTINGS
    except ImportError as exc:
        raise MMDRFuseError(f"pedestrian detection needs Ultralytics ({exc}); install it with "
                            "'pip install \"mmdrfuse[detect]\"' (or 'pip install ultralytics')") from None
    finally:
        if omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        Image.open = pil_open
    import ultralytics.utils as uu
    if getattr(uu, "ONLINE", False):  # imported earlier by someone else without YOLO_OFFLINE
        uu.ONLINE = False
    with contextlib.suppress(Exception):  # our private settings file: no analytics, no integrations
        if Path(SETTINGS.file).resolve().is_relative_to(Path(config_dir).resolve()) and (
                SETTINGS.get("sync") or SETTINGS.get("mlflow") or SETTINGS.get("comet") or SETTINGS.get("clearml")):
            SETTINGS.update(sync=False, clearml=False, comet=False, dvc=False, mlflow=False, raytune=False,
                            wandb=False, tensorboard=False)
    return YOLO


@contextlib.contextmanager
def _no_font_download():
    """Ultralytics checks for Arial.ttf while reading a dataset YAML and HEAD-requests its asset server when it is
    missing; plots are off, so the font is never used: skip the check for the duration of a run."""
    import ultralytics.data.utils as dutils
    saved = dutils.check_font
    dutils.check_font = lambda *a, **k: None
    try:
        yield
    finally:
        dutils.check_font = saved


def _epochs_done(run_dir: Path) -> int:
    csv = run_dir / "results.csv"
    if not csv.is_file():
        return 0
    with contextlib.suppress(Exception):
        return len(pd.read_csv(csv))
    return 0


def train_and_evaluate(data_yaml: Path, run_dir: Path, profile: DetectionProfile, *, device: str = "cpu",
                       yolo_weights: str | os.PathLike | None = None, config_dir: Path | None = None,
                       progress: bool = True, label: str = "", key: str = "") -> dict[str, Any]:
    """Train YOLO on ``data_yaml``'s train split into ``run_dir`` (resuming from ``run_dir/weights/last.pt`` when an
    earlier run with the same ``key`` stopped early), then evaluate the final-epoch weights once on its test split.

    Ultralytics sets ``torch.set_num_threads(cpu_count - 1)`` on CPU; the caller's thread count is kept during the
    run and restored afterwards. Returns ``{"mAP50-95", "mAP50", "precision", "recall", "train_seconds", "resumed"}``.
    """
    import torch

    run_dir = Path(run_dir).resolve()
    YOLO = import_ultralytics(config_dir or run_dir.parent / "ultralytics-config")
    last = run_dir / "weights" / "last.pt"
    common = dict(device=device, plots=False, verbose=False)
    threads = torch.get_num_threads()

    def keep_threads(*_):
        torch.set_num_threads(threads)

    t0 = time.perf_counter()
    bar = None
    try:
        with _no_font_download():
            model, train_kwargs, done = _start(YOLO, data_yaml, run_dir, profile, key, yolo_weights, common)
            resumed = train_kwargs.get("resume", False)
            if model is not None:
                model.add_callback("on_pretrain_routine_start", keep_threads)
                if progress:
                    from tqdm.auto import tqdm
                    bar = tqdm(total=profile.epochs, initial=done if resumed else 0,
                               desc=f"  {label or run_dir.parent.name}", unit="epoch", leave=False)
                    model.add_callback("on_train_epoch_end", lambda trainer: bar.update(1))
                model.train(**train_kwargs)
            if not last.is_file():
                raise MMDRFuseError(f"{run_dir}: Ultralytics finished without writing weights/last.pt; "
                                    "see its log above")
            train_seconds = time.perf_counter() - t0
            evaluator = YOLO(str(last))
            evaluator.add_callback("on_val_start", keep_threads)
            metrics = evaluator.val(data=str(data_yaml), split="test", imgsz=profile.imgsz, batch=profile.batch,
                                    project=str(run_dir), name="test", exist_ok=True, workers=profile.workers,
                                    **common)
    finally:
        if bar is not None:
            bar.close()
        torch.set_num_threads(threads)
    res = {k: float(metrics.results_dict[v]) for k, v in METRICS.items()}
    res["precision"] = float(metrics.results_dict.get("metrics/precision(B)", float("nan")))
    res["recall"] = float(metrics.results_dict.get("metrics/recall(B)", float("nan")))
    res["train_seconds"] = round(train_seconds, 1)
    res["resumed"] = resumed
    return res


def _start(YOLO, data_yaml: Path, run_dir: Path, profile: DetectionProfile, key: str,
           yolo_weights: str | os.PathLike | None, common: dict) -> tuple[Any, dict[str, Any], int]:
    """``(model, train kwargs, epochs done)`` for this run: resume an interrupted run with the same ``key``
    (kwargs ``resume=True``), or nothing to train (model None) when it finished before its result was written, or a
    fresh model in a cleared ``run_dir`` (``run_dir/mmdrfuse-key.txt`` records the key)."""
    last = run_dir / "weights" / "last.pt"
    key_file = run_dir / "mmdrfuse-key.txt"
    same = key_file.is_file() and key_file.read_text(encoding="utf-8").strip() == key
    done = _epochs_done(run_dir) if last.is_file() and same else 0
    if 0 < done < profile.epochs:
        return YOLO(str(last)), dict(resume=True), done
    if done >= profile.epochs and last.is_file():
        return None, {}, done  # training finished before the result was written: evaluate only
    if run_dir.exists():
        shutil.rmtree(run_dir)
    init: str | bool = False
    if yolo_weights:
        w = Path(yolo_weights).resolve()
        if not w.is_file():
            raise BadInputError(f"{w}: YOLO weights not found; pass an existing .pt file to --yolo-weights", str(w))
        init = str(w)
    run_dir.mkdir(parents=True)
    key_file.write_text(key + "\n", encoding="utf-8")
    kwargs = dict(data=str(data_yaml), project=str(run_dir.parent), name=run_dir.name, exist_ok=True, amp=False,
                  deterministic=True, val=False, pretrained=init, **profile.train_args(), **common)
    return YOLO(profile.model), kwargs, 0


def versions() -> dict[str, str]:
    """Python, torch and Ultralytics versions (recorded in every result JSON)."""
    out = {"python": platform.python_version()}
    for mod in ("torch", "ultralytics"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    return out
