"""Pedestrian detection on fused images (paper Sec. 4.5, Fig. 8) with Ultralytics YOLOv5.

For every fusion method (plus IR-only and visible-only rows) a YOLOv5 detector is trained on the method's fused
training images and evaluated once, with its final-epoch weights, on the fused test images: mAP@.5:.95 and mAP@.5 of
the person class. Profiles (``benchmarks/detection.yaml``): ``quick`` (smoke), ``cpu`` (from scratch on this machine),
``paper`` (the paper's protocol on the full LLVIP).

Data here: MSRS test set (361 pairs) with YOLO labels, split by :func:`block_split` (sorted stems, blocks of 10
consecutive stems, every 4th block -> test: 271 train / 90 test). The paper's protocol (LLVIP, 2000 train / 250 test
pairs, 3 epochs, COCO-pretrained YOLOv5) cannot be run here: no full LLVIP, no pretrained weights (pass
``--yolo-weights PATH`` if you have them). The paper prints Fig. 8 as a plot only, so there are no paper values to
compare against and no ``paper`` rows.

Offline by construction: ``YOLO_OFFLINE=1`` is set before Ultralytics is imported, ``amp=False`` (its AMP check
downloads a model), ``plots=False``, Ultralytics' font check (a HEAD request to its asset server) is disabled for the
run, ``workers=0``, absolute project folders, a local dataset YAML; its settings file lives in the work folder.

Resumable: one result JSON per (dataset, profile, method), written atomically; a rerun skips methods whose JSON
matches the current configuration, and an interrupted training resumes from its ``last.pt``.

Standalone use (without the harness)::

    python -m benchmarks.detection --profile quick --fused MMDRFuse=/path/to/fused/MSRS [--out DIR]   # ./results
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pandas as pd
import yaml

from benchmarks.fusion_methods import MethodEntry, method_entries
from benchmarks.report import STD_SUFFIX
from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.names import unknown
from mmdrfuse.errors import BadInputError, MMDRFuseError
from mmdrfuse.io import list_images
from mmdrfuse.lock import WorkLock
from mmdrfuse.paths import cache_dir

if TYPE_CHECKING:
    from benchmarks.run import Context

CONFIG_PATH = Path(__file__).with_name("detection.yaml")
TABLE = "detection"
YOLO_WEIGHTS_ENV = "MMDRFUSE_YOLO_WEIGHTS"  # initial detector weights (``ctx.yolo_weights`` / --yolo-weights first)
SOURCE_ROWS = {"IR-only": "ir", "visible-only": "vis"}  # rows that use a source image instead of a fused one
METRICS = {"mAP50-95": "metrics/mAP50-95(B)", "mAP50": "metrics/mAP50(B)"}  # tidy name -> Ultralytics key
TIDY_COLUMNS = ["table", "dataset", "method", "weights", "metric", "value", "source", "n_pairs", "profile"]
FIG8_NOTE = ("The paper gives Fig. 8 as a plot without printed numbers, so there are no paper values to compare "
             "against; every number here is ours.")


# ------------------------------------------------------------------------------------------------- configuration
@dataclass
class DetectionProfile:
    """Detector training settings of one profile (values and comments in ``benchmarks/detection.yaml``)."""

    name: str
    dataset: str = "MSRS"           # key of ``datasets`` in the YAML
    model: str = "yolov5n.yaml"     # Ultralytics model YAML (built from scratch)
    imgsz: int = 320                # training / evaluation input size
    epochs: int = 30
    batch: int = 16
    n_train: int | None = None      # evenly spaced subset of the train split (None = all)
    n_test: int | None = None       # evenly spaced subset of the test split (None = all)
    optimizer: str = "SGD"
    lr0: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 0.0005
    close_mosaic: int = 10
    warmup_epochs: float = 3.0
    nbs: int = 64                   # nominal batch: gradients are accumulated over nbs / batch batches
    seed: int = 0                   # training seed (deterministic=True); with ``seeds``, the first of them
    seeds: tuple[int, ...] = ()     # several training seeds: one detector each, rows = mean (and std) over them
    workers: int = 0
    fusion_methods: str = "all"     # "all" | "mmdrfuse" (only MMDRFuse's weights; baselines need --methods)

    def all_seeds(self) -> tuple[int, ...]:
        """The training seeds of this profile: ``seeds`` if given, else ``(seed,)``."""
        return tuple(self.seeds) or (self.seed,)

    def for_seed(self, seed: int) -> "DetectionProfile":
        """This profile with one training seed (``seeds`` cleared)."""
        return dataclasses.replace(self, seed=int(seed), seeds=())

    def key_settings(self) -> dict[str, Any]:
        """The settings that define one detector run (for result keys): every field but ``seeds``. A seed-0 run
        keys as it did before ``seeds`` existed, so earlier results stay valid."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "seeds"}

    def train_args(self) -> dict[str, Any]:
        """Keyword arguments for ``YOLO.train`` that come from the profile."""
        return dict(imgsz=self.imgsz, epochs=self.epochs, batch=self.batch, optimizer=self.optimizer, lr0=self.lr0,
                    momentum=self.momentum, weight_decay=self.weight_decay, close_mosaic=self.close_mosaic,
                    warmup_epochs=self.warmup_epochs, nbs=self.nbs, seed=self.seed, workers=self.workers)


def load_config(path: str | os.PathLike = CONFIG_PATH) -> dict:
    """The parsed detection YAML."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_profile(name: str, path: str | os.PathLike = CONFIG_PATH,
                 seeds: Sequence[int] | None = None) -> DetectionProfile:
    """The profile ``name`` from the YAML, defaults applied, optionally with other training ``seeds``; an unknown
    name fails with a suggestion."""
    cfg = load_config(path)
    profiles = cfg.get("profiles", {})
    if name not in profiles:
        raise unknown("detection profile", name, profiles, where=str(path))
    values = {**cfg.get("defaults", {}), **profiles[name]}
    if seeds:
        values["seeds"] = seeds
    if values.get("seeds"):
        values["seeds"] = tuple(dict.fromkeys(int(s) for s in values["seeds"]))
        values["seed"] = values["seeds"][0]
    known = {f.name for f in dataclasses.fields(DetectionProfile)}
    extra = sorted(set(values) - known)
    if extra:
        raise MMDRFuseError(f"{path}: profile {name!r} has unknown keys {extra}; known keys: {sorted(known)}")
    return DetectionProfile(name=name, **{k: v for k, v in values.items() if k != "name"})


# ---------------------------------------------------------------------------------------------------------- split
@dataclass(frozen=True)
class Split:
    """A fixed train/test partition of stems and the rule that made it."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    rule: str

    def limited(self, n_train: int | None, n_test: int | None) -> "Split":
        """Evenly spaced subsets (deterministic) of at most ``n_train`` / ``n_test`` stems."""
        tr, te = evenly_spaced(self.train, n_train), evenly_spaced(self.test, n_test)
        if (len(tr), len(te)) == (len(self.train), len(self.test)):
            return self
        return Split(tr, te, f"{self.rule}; evenly spaced subset {len(tr)} train / {len(te)} test")


def evenly_spaced(items: Sequence[str], n: int | None) -> tuple[str, ...]:
    """``n`` items spread evenly over ``items`` (first included), or all of them when ``n`` is None or too large."""
    items = tuple(items)
    if n is None or n >= len(items):
        return items
    if n <= 0:
        return ()
    return tuple(items[(i * len(items)) // n] for i in range(n))


def block_split(stems: Iterable[str], block: int = 10, test_every: int = 4) -> Split:
    """Sort ``stems``; cut them into blocks of ``block`` consecutive stems; block ``k`` is test when
    ``k % test_every == test_every - 1``, else train. Consecutive frames stay on one side of the split."""
    if block < 1 or test_every < 2:
        raise ValueError("block must be >= 1 and test_every >= 2")
    ordered = sorted(set(stems))
    train, test = [], []
    for i, stem in enumerate(ordered):
        (test if (i // block) % test_every == test_every - 1 else train).append(stem)
    return Split(tuple(train), tuple(test),
                 f"sorted stems, blocks of {block} consecutive stems, every {test_every}th block is test")


# --------------------------------------------------------------------------------------------------------- labels
def read_yolo_labels(path: str | os.PathLike, keep_class: int | None = 0) -> list[str]:
    """Lines of a YOLO label file, keeping only ``keep_class`` (renumbered 0); None keeps every class as is.

    A missing file means "no objects". A malformed line raises :class:`BadInputError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, vals = int(float(parts[0])), [float(v) for v in parts[1:]]
        except ValueError:
            raise BadInputError(f"{path}:{n}: not a YOLO label line ({line.strip()!r}); fix or remove it",
                                str(path)) from None
        if len(vals) != 4 or not all(-1e-6 <= v <= 1 + 1e-6 for v in vals):
            raise BadInputError(f"{path}:{n}: expected 'class cx cy w h' with values in [0, 1]; fix or remove it",
                                str(path))
        if keep_class is None:
            out.append(f"{cls} " + " ".join(f"{min(max(v, 0.0), 1.0):.6f}" for v in vals))
        elif cls == keep_class:
            out.append("0 " + " ".join(f"{min(max(v, 0.0), 1.0):.6f}" for v in vals))
    return out


def prepare_yolo_dataset(images: Mapping[str, Path], labels_dir: Path, split: Split, root: Path,
                         keep_class: int | None = 0) -> Path:
    """Lay out an Ultralytics dataset under ``root`` and return its YAML.

    ``root/images/{train,test}/<stem><ext>`` link to ``images[stem]`` (copies where links are impossible);
    ``root/labels/{train,test}/<stem>.txt`` hold the person boxes; ``root/data.yaml`` names one class, person.
    The folder is rebuilt from scratch (Ultralytics also writes its label caches there).
    """
    root = Path(root).resolve()
    missing = [s for s in split.train + split.test if s not in images]
    if missing:
        raise BadInputError(f"no image for stem {missing[0]!r} ({len(missing)} missing) among {len(images)} images; "
                            "fuse the whole dataset first", missing[0])
    if root.exists():
        shutil.rmtree(root)
    for part, stems in (("train", split.train), ("test", split.test)):
        (root / "images" / part).mkdir(parents=True)
        (root / "labels" / part).mkdir(parents=True)
        for stem in stems:
            src = Path(images[stem]).resolve()
            dst = root / "images" / part / f"{stem}{src.suffix.lower()}"
            try:
                os.symlink(src, dst)
            except OSError:
                shutil.copy2(src, dst)
            lines = read_yolo_labels(Path(labels_dir) / f"{stem}.txt", keep_class)
            (root / "labels" / part / f"{stem}.txt").write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    data_yaml = root / "data.yaml"
    write_text(data_yaml, yaml.safe_dump({"path": str(root), "train": "images/train", "val": "images/test",
                                          "test": "images/test", "names": {0: "person"}}, sort_keys=False))
    return data_yaml


def count_boxes(labels_dir: Path, stems: Iterable[str], keep_class: int | None = 0) -> int:
    """Number of kept boxes over ``stems``."""
    return sum(len(read_yolo_labels(Path(labels_dir) / f"{s}.txt", keep_class)) for s in stems)


# -------------------------------------------------------------------------------------------------- ultralytics
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
    resumed = False
    bar = None
    key_file = run_dir / "mmdrfuse-key.txt"
    same = key_file.is_file() and key_file.read_text(encoding="utf-8").strip() == key
    try:
        with _no_font_download():
            done = _epochs_done(run_dir) if last.is_file() and same else 0
            if 0 < done < profile.epochs:
                model, resumed = YOLO(str(last)), True
                train_kwargs: dict[str, Any] = dict(resume=True)
            elif done >= profile.epochs and last.is_file():
                model = None  # training finished before the result was written: evaluate only
            else:
                if run_dir.exists():
                    shutil.rmtree(run_dir)
                init: str | bool = False
                if yolo_weights:
                    w = Path(yolo_weights).resolve()
                    if not w.is_file():
                        raise BadInputError(f"{w}: YOLO weights not found; pass an existing .pt file to "
                                            "--yolo-weights", str(w))
                    init = str(w)
                run_dir.mkdir(parents=True)
                key_file.write_text(key + "\n", encoding="utf-8")
                model = YOLO(profile.model)
                train_kwargs = dict(data=str(data_yaml), project=str(run_dir.parent), name=run_dir.name,
                                    exist_ok=True, amp=False, deterministic=True, val=False, pretrained=init,
                                    **profile.train_args(), **common)
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


# ------------------------------------------------------------------------------------------------------ benchmark
def _sha256(path: Path) -> str:
    from mmdrfuse.download import sha256_file

    return sha256_file(path)


def _fingerprint(images: Mapping[str, Path], split: Split, labels_dir: Path) -> str:
    """A cheap key of the exact inputs: split stems, image file sizes and label contents."""
    h = hashlib.sha256()
    for part, stems in (("train", split.train), ("test", split.test)):
        for s in stems:
            p = Path(images[s])
            lab = Path(labels_dir) / f"{s}.txt"
            h.update(f"{part}/{s}/{p.suffix}/{p.stat().st_size}/".encode())
            h.update(lab.read_bytes() if lab.is_file() else b"-")
    return h.hexdigest()[:16]


def _cache_weights(folder: Path) -> str | None:
    """The weights sha256 recorded by the harness's fused-image cache in ``folder/manifest.json``, if any."""
    with contextlib.suppress(Exception):
        return str(json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8")).get("sha256"))
    return None


def _images_by_stem(folders: Path | Sequence[Path]) -> dict[str, Path]:
    folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    found: dict[str, Path] = {}
    for f in folders:
        found.update(list_images(f))
    return found


def _safe_name(method: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in method)


def detection_benchmark(image_dirs: Mapping[str, Path | Sequence[Path]], labels_dir: Path, split: Split,
                        profile: DetectionProfile | str, out_dir: Path, *, dataset: str = "MSRS",
                        work_dir: Path | None = None, keep_class: int | None = 0, device: str = "cpu",
                        yolo_weights: str | os.PathLike | None = None,
                        rows_as: Mapping[str, tuple[str, str]] | None = None,
                        progress: bool = True, log=print, per_seed_out: list | None = None) -> pd.DataFrame:
    """Train and evaluate one detector per method; return the tidy rows (``TIDY_COLUMNS``).

    ``image_dirs``: method -> folder(s) of images named by stem (fused images, or the IR / visible sources for the
    ``IR-only`` / ``visible-only`` rows); ``rows_as``: key -> (method, weights) for the tidy rows (default: the key
    itself, weights ``official`` for MMDRFuse and ``none`` for the source rows). ``labels_dir``: YOLO label files
    named by stem. ``split``: the fixed partition (already limited to the profile's sizes). One detector per method
    and training seed (``profile.all_seeds()``); each result is written atomically to
    ``out_dir/detection/<dataset>/<profile>/`` + :func:`result_name`, and a (method, seed) whose JSON matches the
    current configuration is not retrained. Several processes may run the same benchmark at once: each (method,
    seed) is trained by the one process that holds its lock file (:mod:`mmdrfuse.lock`); the others do other jobs
    first, then wait for its result. A row's value is the mean over the seeds; with several seeds a
    ``<metric>_std`` row holds the sample std (ddof=1). ``per_seed_out``, if given, receives one dict per
    (method, seed). Heavy files (dataset links, YOLO runs, weights) go to ``work_dir`` (the harness and the
    command line use ``<user cache>/mmdrfuse/detection``; default here ``out_dir/detection/work``).
    """
    prof = load_profile(profile) if isinstance(profile, str) else profile
    out_dir = Path(out_dir).resolve()
    res_dir = out_dir / "detection" / dataset / prof.name
    work_dir = Path(work_dir).resolve() if work_dir else res_dir.parent.parent / "work"
    if yolo_weights and not Path(yolo_weights).is_file():
        raise BadInputError(f"{yolo_weights}: YOLO weights not found; pass an existing .pt file (--yolo-weights / "
                            f"${YOLO_WEIGHTS_ENV}) or none to train from scratch", str(yolo_weights))
    w_sha = _sha256(Path(yolo_weights)) if yolo_weights else None
    seeds = prof.all_seeds()
    n_boxes = count_boxes(labels_dir, split.test, keep_class)
    jobs: list[_Job] = []
    for method, folders in image_dirs.items():
        folders = [Path(folders)] if isinstance(folders, (str, os.PathLike)) else [Path(f) for f in folders]
        images = _images_by_stem(folders)
        missing = [s for s in split.train + split.test if s not in images]
        if missing:
            raise BadInputError(f"{method}: no image {missing[0]}.* in {folders} ({len(missing)} stems missing); "
                                "fuse the whole dataset first", missing[0])
        inputs = {"inputs": _fingerprint(images, split, labels_dir), "weights": [_cache_weights(f) for f in folders]}
        for seed in seeds:
            one = prof.for_seed(seed)
            config = {"profile": one.key_settings(), "split_rule": split.rule, "n_train": len(split.train),
                      "n_test": len(split.test), "keep_class": keep_class, "yolo_weights_sha256": w_sha}
            key = hashlib.sha256(json.dumps({**config, **inputs}, sort_keys=True).encode()).hexdigest()[:16]
            mdir = work_dir / dataset / prof.name / _safe_name(method)
            jobs.append(_Job(method=method, profile=one, key=key, config=config, images=images,
                             folders=folders, res_path=res_dir / result_name(method, seed),
                             work=mdir if seed == 0 else mdir / f"seed{seed}",  # seed 0: its folder from before seeds
                             tag=f"{method} (seed {seed})" if len(seeds) > 1 else method))

    def run_job(job: _Job, wait: bool) -> dict | None:
        """The job's result: reused, trained now, or (``wait``) awaited from the process that holds its lock;
        None when another process holds it and ``wait`` is False."""
        lock = WorkLock(job.res_path.with_name(job.res_path.name + ".lock"))
        while True:
            result = _load_result(job.res_path, job.key)
            if result is not None:
                log(f"detection: {job.tag}: done earlier ({job.res_path.name}), skipped")
                return result
            with lock as got:
                if got:
                    result = _load_result(job.res_path, job.key)  # finished by another process meanwhile?
                    return result if result is not None else train_job(job)
            owner = lock.owner()
            who = f"process {owner[1]} on {owner[0]}" if owner else "another process"
            if not wait:
                log(f"detection: {job.tag}: {who} is training it; other methods first")
                return None
            log(f"detection: {job.tag}: waiting for {who} ({lock.path})")
            lock.wait_released()

    def train_job(job: _Job) -> dict:
        log(f"detection: {job.tag}: training {prof.model} for {prof.epochs} epoch(s) on {len(split.train)} "
            f"images at {prof.imgsz}px ({prof.name} profile)")
        data_yaml = prepare_yolo_dataset(job.images, labels_dir, split, job.work / "data", keep_class)
        metrics = train_and_evaluate(data_yaml, job.work / "run", job.profile, device=device,
                                     yolo_weights=yolo_weights, config_dir=work_dir / "ultralytics-config",
                                     progress=progress, label=job.tag, key=job.key)
        result = {"key": job.key, "method": job.method, "dataset": dataset, "profile": prof.name, "seed": job.seed,
                  "metrics": metrics, "n_train": len(split.train), "n_test": len(split.test),
                  "n_test_boxes": n_boxes, "config": job.config, "images": [str(f) for f in job.folders],
                  "versions": _versions(), "date": _dt.datetime.now().isoformat(timespec="seconds")}
        write_json(job.res_path, result)
        log(f"detection: {job.tag}: mAP@.5:.95 {metrics['mAP50-95']:.4f}, mAP@.5 {metrics['mAP50']:.4f} "
            f"({metrics['train_seconds']:.0f} s)")
        return result

    results: dict[tuple[str, int], dict] = {}
    for job in jobs:  # first pass: everything no other process is working on
        r = run_job(job, wait=False)
        if r is not None:
            results[(job.method, job.seed)] = r
    for job in jobs:  # then wait for what others were training
        if (job.method, job.seed) not in results:
            results[(job.method, job.seed)] = run_job(job, wait=True)

    rows = []
    for method in image_dirs:
        per_seed = [results[(method, seed)]["metrics"] for seed in seeds]
        row_method, row_weights = (rows_as or {}).get(method, (method, _default_weights_label(method)))
        base = {"table": TABLE, "dataset": dataset, "method": row_method, "weights": row_weights, "source": "ours",
                "n_pairs": len(split.test), "profile": prof.name}
        for metric in METRICS:
            values = [float(m[metric]) for m in per_seed]
            rows.append({**base, "metric": metric, "value": float(statistics.fmean(values))})
            if len(values) > 1:  # sample std across seeds (ddof=1), shown by the report as "mean ± std"
                rows.append({**base, "metric": f"{metric}{STD_SUFFIX}", "value": float(statistics.stdev(values))})
        if per_seed_out is not None:
            per_seed_out.extend({"method": row_method, "weights": row_weights, "seed": seed,
                                 **{m: float(r[m]) for m in METRICS}} for seed, r in zip(seeds, per_seed))
    return pd.DataFrame(rows, columns=TIDY_COLUMNS)


@dataclass
class _Job:
    """One detector to train and evaluate: a method's images with one training seed."""

    method: str
    profile: DetectionProfile  # with the job's one training seed
    key: str                  # hash of everything that defines the run (settings, split, inputs)
    config: dict
    images: dict
    folders: list
    res_path: Path            # result JSON
    work: Path                # dataset links + YOLO run folder
    tag: str                  # name in log lines

    @property
    def seed(self) -> int:
        return self.profile.seed


def _load_result(path: Path, key: str) -> dict | None:
    """The result JSON at ``path`` if it exists, parses and was made with ``key``."""
    if path.is_file():
        with contextlib.suppress(Exception):
            old = json.loads(path.read_text(encoding="utf-8"))
            if old.get("key") == key:
                return old
    return None


def result_name(method: str, seed: int) -> str:
    """Result JSON name of one (method, seed): ``<method>.json`` for seed 0 (as before seeds existed), else
    ``<method>.seed<s>.json``."""
    return f"{_safe_name(method)}.json" if seed == 0 else f"{_safe_name(method)}.seed{int(seed)}.json"


def _default_weights_label(method: str) -> str:
    if method in SOURCE_ROWS:
        return "none"
    if method == "MMDRFuse":
        return "official"
    return "default"


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for mod in ("torch", "ultralytics"):
        with contextlib.suppress(Exception):
            out[mod] = __import__(mod).__version__
    return out


# ------------------------------------------------------------------------------------------------------- datasets
@dataclass
class DetectionData:
    """Where one detection dataset lives: source folders, labels, split, and the harness names of its fused sets."""

    name: str
    ir: list[Path]
    vis: list[Path]
    labels_dir: Path
    split: Split
    fused: dict[str, str]           # {"all": harness dataset} or {"train": ..., "test": ...}
    person_class: int = 0
    notes: list[str] = field(default_factory=list)


def resolve_dataset(name: str, data_root: Path, labels_cache: Path, config: dict | None = None) -> DetectionData:
    """Find dataset ``name`` of the detection YAML under ``data_root`` (LLVIP XML labels converted into
    ``labels_cache``); raise a one-line error naming what is missing."""
    cfg = (config or load_config())["datasets"]
    if name not in cfg:
        raise unknown("detection dataset", name, cfg)
    d = cfg[name]
    root = Path(data_root)
    ir, vis = root / d["ir"], root / d["vis"]
    sp = d.get("split", {})
    kind = sp.get("kind", "blocks")
    if kind == "blocks":
        for folder in (ir, vis, root / d.get("labels", "")):
            if not folder.is_dir():
                raise BadInputError(f"{folder}: folder not found; the {name} detection set needs "
                                    f"{d['ir']}, {d['vis']} and {d['labels']} under the data root "
                                    "(--data-root or MMDRFUSE_DATA)", str(folder))
        stems = sorted(set(list_images(ir)) & set(list_images(vis)))
        split = block_split(stems, int(sp.get("block", 10)), int(sp.get("test_every", 4)))
        return DetectionData(name, [ir], [vis], root / d["labels"], split, dict(d.get("fused", {"all": name})),
                             int(d.get("person_class", 0)))
    if kind == "folders":
        need = [ir / "train", ir / "test", vis / "train", vis / "test", root / d["annotations"]]
        for folder in need:
            if not folder.is_dir():
                raise BadInputError(f"{folder}: folder not found; the {name} detection protocol needs the full "
                                    f"{name} ({d['ir']}/{{train,test}}, {d['vis']}/{{train,test}}, "
                                    f"{d['annotations']}); use --profile cpu for the MSRS substitute", str(folder))
        from mmdrfuse.voc import convert_folder
        labels = Path(labels_cache) / name
        if not labels.is_dir() or not any(labels.iterdir()):
            convert_folder(root / d["annotations"], labels, classes=("person",))
        train = sorted(set(list_images(ir / "train")) & set(list_images(vis / "train")))
        test = sorted(set(list_images(ir / "test")) & set(list_images(vis / "test")))
        split = Split(tuple(train), tuple(test), f"{name} official train/ and test/ folders")
        return DetectionData(name, [ir / "train", ir / "test"], [vis / "train", vis / "test"], labels, split,
                             dict(d.get("fused", {})), 0)
    raise MMDRFuseError(f"{CONFIG_PATH}: unknown split kind {kind!r} for {name} (use blocks or folders)")


# -------------------------------------------------------------------------------------------------------- reports
def write_reports(df: pd.DataFrame, out_dir: Path, prov: dict) -> list[Path]:
    """``out_dir/detection.{csv,tex,md}`` + ``detection.provenance.json`` via :mod:`benchmarks.report`."""
    from benchmarks import report

    return report.write_outputs(df, out_dir, TABLE, prov)


# --------------------------------------------------------------------------------------------------- harness entry
def fused_folders(ctx: Context, entry: MethodEntry, data: DetectionData, split: Split) -> list[Path]:
    """Folders holding ``entry``'s fused images of the split's stems. With the harness cache only the stems the
    split needs are fused (not the whole data set); otherwise ``ctx.fused_dir(method, dataset)``."""
    folders = []
    for part, ds in data.fused.items():
        stems = set(split.train + split.test) if part == "all" else set(getattr(split, part))
        try:
            if entry.run is not None and ctx.cache is not None:
                from mmdrfuse import data as mdata
                loc = mdata.locate(ds, ctx.data_root)
                pairs = [p for p in ctx.cache.select(loc) if p.stem in stems]
                folders.append(Path(ctx.cache.ensure(entry.run, loc, pairs).folder))
            else:
                folders.append(Path(ctx.fused_dir(entry.method, ds)))
        except MMDRFuseError:
            raise
        except Exception as exc:  # noqa: BLE001 - the harness could not fuse: one clear line
            raise MMDRFuseError(f"detection: no fused images of {entry.key} on {ds} "
                                f"({exc.__class__.__name__}: {exc})") from None
    return folders


def run(ctx: Context) -> list[Path]:
    """Harness entry (``python -m benchmarks.run detection``): every method + IR-only + visible-only -> results."""
    prof = load_profile(ctx.profile, seeds=ctx.seeds)
    cfg = load_config()
    out_dir = Path(ctx.out_dir)
    datasets = [d for d in (ctx.datasets or []) if d in cfg["datasets"]]
    dataset = "DEMO" if ctx.synthetic else datasets[0] if datasets else prof.dataset
    work = Path(ctx.work_dir or cache_dir() / "detection")
    data = resolve_dataset(dataset, Path(ctx.data_root), work / "labels", cfg)
    split = data.split.limited(prof.n_train, prof.n_test)
    entries, unavailable = method_entries(ctx, prof.name, prof.fusion_methods)
    image_dirs: dict[str, list[Path]] = {}
    rows_as: dict[str, tuple[str, str]] = {}
    for e in entries:
        image_dirs[e.key] = fused_folders(ctx, e, data, split)
        rows_as[e.key] = (e.method, e.weights)
    for m, slot in SOURCE_ROWS.items():
        image_dirs[m] = list(data.ir if slot == "ir" else data.vis)
        rows_as[m] = (m, "none")
    yolo_weights = ctx.yolo_weights or os.environ.get(YOLO_WEIGHTS_ENV) or None
    per_seed: list[dict] = []
    df = detection_benchmark(image_dirs, data.labels_dir, split, prof, out_dir, dataset=data.name, work_dir=work,
                             keep_class=data.person_class, device=str(ctx.device or "cpu"), yolo_weights=yolo_weights,
                             rows_as=rows_as, progress=ctx.progress, log=ctx.say, per_seed_out=per_seed)
    return finish(df, out_dir, prof, data, split, yolo_weights, command=ctx.command or None,
                  unavailable=unavailable, per_seed=per_seed)


def protocol_text(prof: DetectionProfile, data: DetectionData | None, split: Split, yolo_weights) -> str:
    init = f"initialised from {Path(yolo_weights).name}" if yolo_weights else "trained from scratch"
    seeds = prof.all_seeds()
    seed_text = (f"seeds {list(seeds)}: one detector per seed, each cell the mean ± sample std (ddof=1) across seeds "
                 "(the CSV keeps the std as metric <name>_std; per-seed values in detection.seeds.csv)"
                 if len(seeds) > 1 else f"seed {seeds[0]} (one detector per method: no seed spread measured)")
    return (f"Data: {data.name if data else '?'} ({len(split.train)} train / {len(split.test)} test pairs; split: "
            f"{split.rule}); person boxes only. Detector: Ultralytics {prof.model} ({init}), {prof.optimizer}, "
            f"batch {prof.batch}, {prof.epochs} epoch(s), imgsz {prof.imgsz}, {seed_text}; final-epoch weights "
            "evaluated once on the test split. Paper protocol: YOLOv5, SGD, batch 16, 3 epochs, 2000 LLVIP train / "
            "250 LLVIP test pairs, COCO-pretrained implied.")


def finish(df: pd.DataFrame, out_dir: Path, prof: DetectionProfile, data: DetectionData | None, split: Split,
           yolo_weights=None, command: str | None = None, unavailable: Mapping[str, str] | None = None,
           per_seed: Sequence[Mapping] | None = None) -> list[Path]:
    """Write detection.{csv,tex,md} + provenance and ``detection.seeds.csv`` (one row per method and seed, when
    there are several seeds). Fig. 8 is drawn from ``detection.csv`` by the figures target (benchmarks.figures)."""
    from benchmarks import report

    protocol = protocol_text(prof, data, split, yolo_weights)
    flags = []
    if data is not None and data.name != "LLVIP":
        flags.append(f"substitute data: {data.name}, not the paper's LLVIP 2000/250 pairs")
    if not yolo_weights:
        flags.append("detector trained from scratch (the paper fine-tunes a pretrained YOLOv5)")
    prov = report.provenance(
        TABLE, profile=prof.name, command=command,
        data={"dataset": data.name if data else None, "train_pairs": len(split.train), "test_pairs": len(split.test),
              "split": split.rule, "test_stems": list(split.test)},
        weights={"yolo_init": _sha256(Path(yolo_weights)) if yolo_weights else None},
        flags=flags, notes=[protocol, FIG8_NOTE] + [f"{k}: no row ({v})" for k, v in (unavailable or {}).items()],
        settings={**dataclasses.asdict(prof), "seeds": list(prof.all_seeds())})
    written = write_reports(df, out_dir, prov)
    seeds_csv = Path(out_dir) / f"{TABLE}.seeds.csv"
    if per_seed and len(prof.all_seeds()) > 1:
        write_text(seeds_csv, pd.DataFrame(list(per_seed)).to_csv(index=False, float_format=lambda v: repr(float(v)),
                                                                   lineterminator="\n"))
        written.append(seeds_csv)
    elif seeds_csv.is_file():
        seeds_csv.unlink()  # a single-seed run: no stale per-seed values from an earlier run beside the new table
    return written


# ------------------------------------------------------------------------------------------------------ standalone
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.detection", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="quick")
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default=None, help="results folder (default: ./results)")
    p.add_argument("--dataset", default=None, help="detection dataset (default: the profile's)")
    p.add_argument("--fused", action="append", default=[], metavar="METHOD=DIR",
                   help="a folder of fused images named by stem for METHOD (repeatable)")
    p.add_argument("--yolo-weights", default=os.environ.get(YOLO_WEIGHTS_ENV),
                   help=f"initial detector weights (.pt); default: ${YOLO_WEIGHTS_ENV}, else from scratch")
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-sources", action="store_true", help="skip the IR-only and visible-only rows")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="detector training seeds (default: the profile's); rows are the mean (± std) over them")
    args = p.parse_args(argv)
    try:
        from mmdrfuse.paths import data_root, results_dir
        prof = load_profile(args.profile, seeds=args.seeds)
        out = results_dir(args.out).resolve()
        work = cache_dir() / "detection"
        data = resolve_dataset(args.dataset or prof.dataset, data_root(args.data_root), work / "labels")
        split = data.split.limited(prof.n_train, prof.n_test)
        image_dirs: dict[str, Any] = {}
        for item in args.fused:
            name, sep, folder = item.partition("=")
            if not sep:
                raise MMDRFuseError(f"--fused {item!r}: expected METHOD=DIR")
            image_dirs[name] = [Path(folder)]
        if not args.no_sources:
            image_dirs.update({"IR-only": data.ir, "visible-only": data.vis})
        if not image_dirs:
            raise MMDRFuseError("nothing to run: give --fused METHOD=DIR or drop --no-sources")
        per_seed: list[dict] = []
        df = detection_benchmark(image_dirs, data.labels_dir, split, prof, out, dataset=data.name, work_dir=work,
                                 keep_class=data.person_class, device=args.device, yolo_weights=args.yolo_weights,
                                 per_seed_out=per_seed)
        for path in finish(df, out, prof, data, split, args.yolo_weights, per_seed=per_seed):
            print(f"wrote {path}")
        print(f"Fig. 8 (from {TABLE}.csv and table3.csv): python -m benchmarks.run figures --out {out}")
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
