"""Pedestrian detection on fused images (paper Sec. 4.5, Fig. 8) with Ultralytics YOLOv5.

For every fusion method (plus IR-only and visible-only rows) a YOLOv5 detector is trained on the method's fused
training images and evaluated once, with its final-epoch weights, on the fused test images: mAP@.5:.95 and mAP@.5 of
the person class. Profiles (``benchmarks/detection/profiles.yaml``): ``quick`` (smoke), ``cpu`` (from scratch on this
machine), ``paper`` (the paper's protocol on the full LLVIP).

Data here: MSRS test set (361 pairs) with YOLO labels, split by :func:`block_split` (sorted stems, blocks of 10
consecutive stems, every 4th block -> test: 271 train / 90 test). The paper's protocol (LLVIP, 2000 train / 250 test
pairs, 3 epochs, COCO-pretrained YOLOv5) cannot be run here: no full LLVIP. Initial weights (``--yolo-weights``,
:mod:`.weights`): an Ultralytics checkpoint, or a plain YOLOv5 v6 state dict whose backbone and neck are transferred
into the v5u model by name and shape (:func:`.yolo.initial_weights`; the head starts fresh). The paper prints Fig. 8
as a plot only, so there are no paper values to compare against and no ``paper`` rows. Fig. 8 itself is drawn by the
figures target from ``detection.csv``.

Resumable: one result JSON per (dataset, profile, method, seed), written atomically; a rerun skips jobs whose JSON
matches the current configuration, and an interrupted training resumes from its ``last.pt``.

Modules: :mod:`.config` (profiles, constants), :mod:`.data` (data sets, splits, labels, the Ultralytics dataset
layout), :mod:`.weights` (named initial weights, reading a state dict), :mod:`.yolo` (the only one that touches
Ultralytics: offline import, training, evaluation, moving initial weights), :mod:`.jobs` (job keys, locks, cached
results), :mod:`.benchmark` (jobs -> tidy rows), :mod:`.report` (CSV / TeX / MD / provenance), :mod:`.cli`
(``python -m benchmarks.detection``); here: the harness entry :func:`run`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.detection import yolo
from benchmarks.detection.benchmark import detection_benchmark, tidy_rows
from benchmarks.detection.cli import main
from benchmarks.detection.config import (CONFIG_PATH, FIG8_NOTE, METRICS, SOURCE_ROWS, TABLE, TIDY_COLUMNS,
                                         YOLO_WEIGHTS_ENV, DetectionProfile, load_config, load_profile)
from benchmarks.detection.data import (DetectionData, Split, block_split, count_boxes, evenly_spaced,
                                       prepare_yolo_dataset, read_yolo_labels, resolve_dataset)
from benchmarks.detection.jobs import job_key, result_name
from benchmarks.detection.report import finish, protocol_text, write_reports
from benchmarks.detection.weights import YOLO_WEIGHTS, read_state_dict, resolve_yolo_weights
from benchmarks.detection.yolo import Transfer, import_ultralytics, initial_weights, transfer_state_dict
from benchmarks.fusion_methods import MethodEntry, method_entries
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.paths import cache_dir

if TYPE_CHECKING:
    from benchmarks.run import Context

__all__ = ["CONFIG_PATH", "FIG8_NOTE", "METRICS", "SOURCE_ROWS", "TABLE", "TIDY_COLUMNS", "YOLO_WEIGHTS_ENV",
           "DetectionData", "DetectionProfile", "MethodEntry", "Split", "block_split", "count_boxes",
           "detection_benchmark", "evenly_spaced", "finish", "fused_folders", "import_ultralytics", "job_key",
           "load_config", "load_profile", "main", "method_entries", "prepare_yolo_dataset", "protocol_text",
           "read_yolo_labels", "resolve_dataset", "result_name", "run", "tidy_rows", "write_reports", "yolo",
           "YOLO_WEIGHTS", "Transfer", "initial_weights", "read_state_dict", "resolve_yolo_weights",
           "transfer_state_dict"]


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
    prof = load_profile(ctx.profile, seeds=ctx.seeds, pretrained=ctx.pretrained)
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
    yolo_weights = resolve_yolo_weights(ctx.yolo_weights or os.environ.get(YOLO_WEIGHTS_ENV) or prof.yolo_weights,
                                        ctx.weights_root)
    per_seed: list[dict] = []
    df = detection_benchmark(image_dirs, data.labels_dir, split, prof, out_dir, dataset=data.name, work_dir=work,
                             keep_class=data.person_class, device=str(ctx.device or "cpu"),
                             yolo_weights=yolo_weights, rows_as=rows_as, progress=ctx.progress, log=ctx.say,
                             per_seed_out=per_seed)
    return finish(df, out_dir, prof, data, split, yolo_weights, command=ctx.command or None,
                  unavailable=unavailable, per_seed=per_seed)

