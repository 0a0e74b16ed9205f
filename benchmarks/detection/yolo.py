"""The only module that touches Ultralytics: its offline import, training a detector and evaluating it once.

Offline by construction: ``YOLO_OFFLINE=1`` is set before Ultralytics is imported, ``amp=False`` (its AMP check
downloads a model), ``plots=False``, Ultralytics' font check (a HEAD request to its asset server) is disabled for the
run, ``workers=0``, absolute project folders, a local dataset YAML; its settings file lives in the work folder.
"""
from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from benchmarks.detection.config import METRICS, DetectionProfile
from benchmarks.detection.weights import read_state_dict
from mmdrfuse.download import sha256_file
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


# ------------------------------------------------------------------------------------------- initial weights
INIT_FILE = "init-weights.pt"  # in a run folder: the tensors a plain state dict gives the detector (pretrained=)


@dataclass(frozen=True)
class Transfer:
    """What a weights file gives a fresh detector of ``model`` (one class, person): recorded in provenance."""

    file: str          # the file's name
    sha256: str        # of the file
    kind: str          # "state_dict": moved here by name and shape | "ultralytics": an Ultralytics checkpoint
    model: str         # the model YAML it initialises
    transferred: int   # tensors of the file moved into the model (same name and shape)
    skipped: int       # tensors of the file with no counterpart (e.g. YOLOv5 v6's anchor-based head)
    fresh: int         # tensors of the model not from the file: they keep the model's own initialisation
    note: str = ""

    def record(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.file} ({self.kind}, sha256 {self.sha256[:12]}...): {self.transferred} tensors transferred "
                f"into {self.model}, {self.skipped} of the file skipped, {self.fresh} of the model fresh")


def build_model(model_yaml: str, config_dir: Path | None = None, nc: int = 1):
    """A fresh Ultralytics ``DetectionModel`` of ``model_yaml`` (e.g. ``yolov5n.yaml``: the anchor-free v5u) with
    ``nc`` classes, as the trainer builds it for the one-class (person) data set."""
    from mmdrfuse.paths import cache_dir

    import_ultralytics(config_dir or cache_dir() / "detection" / "ultralytics-config")
    from ultralytics.nn.tasks import DetectionModel

    try:
        return DetectionModel(str(model_yaml), nc=nc, ch=3, verbose=False)
    except Exception as exc:  # noqa: BLE001 - an unknown YAML name
        raise MMDRFuseError(f"detection model {model_yaml!r}: Ultralytics cannot build it "
                            f"({exc.__class__.__name__}: {str(exc).strip().splitlines()[0][:160]})") from None


def _fitting(source: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """The tensors of ``source`` with the same name and shape in ``target``. A scalar (a BatchNorm's
    ``num_batches_tracked``) fits only beside a non-scalar tensor of its module that fits: scalars match any model."""
    same = {k: v for k, v in source.items() if k in target and tuple(v.shape) == tuple(target[k].shape)}
    modules = {k.rpartition(".")[0] for k, v in same.items() if v.dim() > 0}
    return {k: v for k, v in same.items() if v.dim() > 0 or k.rpartition(".")[0] in modules}


def transfer_state_dict(model, tensors: Mapping[str, Any], source: str = "state dict",
                        what: str = "the detector") -> dict[str, Any]:
    """Copy every tensor of ``tensors`` whose name and shape match ``model``'s state dict into ``model`` (in place);
    return the moved ``{name: tensor}``. Nothing fitting fails in one line (a file for another model)."""
    import torch

    target = model.state_dict()
    moved = _fitting(tensors, target)
    if not moved:
        k0, v0 = next(iter(tensors.items()), ("-", None))
        shape = tuple(v0.shape) if v0 is not None else ()
        raise BadInputError(f"{source}: none of its {len(tensors)} tensors fits {what} by name and shape "
                            f"(e.g. {k0} {shape}); pass weights of the profile's model (a YOLOv5 v6 state dict of "
                            "the same size, or an Ultralytics checkpoint)", str(source))
    with torch.no_grad():
        for k, v in moved.items():
            target[k].copy_(v.to(target[k].dtype))
    return moved


def _tensor_tree(tensors: Mapping[str, Any]):
    """A module whose state dict is exactly ``tensors`` (``model.<i>.<...>`` names), for Ultralytics'
    ``pretrained=PATH``: its loader moves those tensors by name and shape and nothing else, so the layers the file
    does not give (the head) keep the trainer's own seeded initialisation."""
    from torch import nn

    root = nn.Module()
    layers = 1 + max((int(k.split(".")[1]) for k in tensors if k.split(".")[1:2] and k.split(".")[1].isdigit()),
                     default=-1)
    root.model = nn.ModuleList(nn.Module() for _ in range(layers))  # Ultralytics reads model.model[-1]
    for name, t in tensors.items():
        *parents, leaf = name.split(".")
        node = root
        for part in parents:
            child = node._modules.get(part)
            if child is None:
                child = nn.Module()
                node.add_module(part, child)
            node = child
        node.register_buffer(leaf, t.detach().clone())
    return root


def initial_weights(path: str | os.PathLike, model_yaml: str, *, config_dir: Path | None = None,
                    write_to: Path | None = None) -> tuple[Path, Transfer]:
    """``(file for Ultralytics' pretrained=, Transfer)`` of initial weights ``path`` for a ``model_yaml`` detector.

    A plain state dict: its tensors are moved into a fresh model by name and shape (YOLOv5 v6 -> Ultralytics v5u:
    backbone and neck; the anchor-based head has no counterpart) and, with ``write_to``, exactly the moved tensors
    are written there for Ultralytics to load (the head then starts as in a from-scratch run). An Ultralytics
    checkpoint is given to Ultralytics as it is; its counts are the name-and-shape matches against a fresh model
    (Ultralytics' loader may move a few head tensors more: it rebuilds the class branch at the source width and
    maps class rows by name). Anything else fails in one line."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: YOLO weights not found; pass an existing .pt file to --yolo-weights", str(path))
    tensors = read_state_dict(path)
    model = build_model(model_yaml, config_dir)
    n_model = len(model.state_dict())
    digest = sha256_file(path)
    if tensors is not None:
        moved = transfer_state_dict(model, tensors, str(path), str(model_yaml))
        info = Transfer(path.name, digest, "state_dict", str(model_yaml), len(moved), len(tensors) - len(moved),
                        n_model - len(moved), "moved by name and shape; the rest of the model starts fresh")
        if write_to is None:
            return path, info
        import torch

        from mmdrfuse.atomic import atomic_path

        write_to = Path(write_to)
        write_to.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(write_to) as tmp:
            torch.save({"model": _tensor_tree(moved), "mmdrfuse_source": {"file": path.name, "sha256": digest}}, tmp)
        return write_to, info
    from ultralytics.nn.tasks import load_checkpoint
    from ultralytics.utils.torch_utils import intersect_dicts

    try:
        src, _ = load_checkpoint(str(path))
    except Exception as exc:  # noqa: BLE001 - not an Ultralytics checkpoint either
        first = (str(exc).strip().splitlines() or [""])[0][:160]
        raise BadInputError(f"{path}: neither a state dict (name -> tensor) nor an Ultralytics checkpoint "
                            f"({exc.__class__.__name__}: {first}); pass one of those to --yolo-weights",
                            str(path)) from None
    csd = src.float().state_dict()
    n_match = len(intersect_dicts(csd, model.state_dict()))  # what Ultralytics' loader matches (scalars included)
    if not _fitting(csd, model.state_dict()):
        n_match = 0
    if n_match == 0:
        raise BadInputError(f"{path}: none of its {len(csd)} tensors fits {model_yaml} by name and shape; pass "
                            "weights of the profile's model", str(path))
    return path, Transfer(path.name, digest, "ultralytics", str(model_yaml), n_match, len(csd) - n_match,
                          n_model - n_match, "counted as name-and-shape matches; Ultralytics' loader transfers it")


@functools.lru_cache(maxsize=8)
def _describe(path: str, size: int, mtime_ns: int, model_yaml: str) -> Transfer:
    return initial_weights(path, model_yaml)[1]


def describe_init(path: str | os.PathLike, model_yaml: str) -> Transfer:
    """:func:`initial_weights`' :class:`Transfer` (nothing written), remembered per file state and model."""
    st = Path(path).stat()
    return _describe(str(Path(path).resolve()), st.st_size, st.st_mtime_ns, str(model_yaml))


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
    run_dir.mkdir(parents=True)
    if yolo_weights:  # an Ultralytics checkpoint as it is; a plain state dict: its transferred tensors, written here
        init_file, _ = initial_weights(Path(yolo_weights).resolve(), profile.model, write_to=run_dir / INIT_FILE)
        init = str(init_file)
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
