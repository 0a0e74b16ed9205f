"""The detection results: ``detection.{csv,tex,md}``, ``detection.provenance.json`` (via :mod:`benchmarks.report`)
and ``detection.seeds.csv``. Fig. 8 is drawn from ``detection.csv`` by the figures target (:mod:`benchmarks.figures`),
never here."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd

from benchmarks.detection import yolo
from benchmarks.detection.config import FIG8_NOTE, TABLE, DetectionProfile
from benchmarks.detection.data import DetectionData, Split
from benchmarks.report import provenance, write_outputs
from mmdrfuse.atomic import write_text


def write_reports(df: pd.DataFrame, out_dir: Path, prov: dict, table: str = TABLE) -> list[Path]:
    """``out_dir/<table>.{csv,tex,md}`` + ``<table>.provenance.json`` via :mod:`benchmarks.report` (``table``: the
    profile's output stem, ``detection`` unless the profile names another)."""
    return write_outputs(df, out_dir, table, prov)


def protocol_text(prof: DetectionProfile, data: DetectionData | None, split: Split, yolo_weights,
                  transfer: dict | None = None) -> str:
    """The protocol line of the report: data, split, detector, seeds, and the paper's protocol beside it."""
    init = f"initialised from {Path(yolo_weights).name}" if yolo_weights else "trained from scratch"
    if transfer:
        init += (f": {transfer['transferred']} tensors transferred, {transfer['skipped']} of the file skipped, "
                 f"{transfer['fresh']} of the model fresh")
    seeds = prof.all_seeds()
    seed_text = (f"seeds {list(seeds)}: one detector per seed, each cell the mean ± sample std (ddof=1) across seeds "
                 f"(the CSV keeps the std as metric <name>_std; per-seed values in {prof.table}.seeds.csv)"
                 if len(seeds) > 1 else f"seed {seeds[0]} (one detector per method: no seed spread measured)")
    accumulate = max(1, round(prof.nbs / prof.batch))
    warmup = min(prof.warmup_epochs, max(prof.epochs - 1, 0))  # Ultralytics leaves the last epoch out of warm-up
    schedule = ("one optimizer step per batch" if accumulate == 1 else f"gradients of {accumulate} batches per step")
    schedule += f", lr0 {prof.lr0}, {warmup:g} warm-up epoch(s), " + (
        "mosaic in every epoch" if not prof.close_mosaic else
        f"mosaic off for the last {min(prof.close_mosaic, prof.epochs)} epoch(s)")
    return (f"Data: {data.name if data else '?'} ({len(split.train)} train / {len(split.test)} test pairs; split: "
            f"{split.rule}); person boxes only. Detector: Ultralytics {prof.model} ({init}), {prof.optimizer}, "
            f"batch {prof.batch}, {prof.epochs} epoch(s), imgsz {prof.imgsz}, {schedule}, {seed_text}; "
            "final-epoch weights evaluated once on the test split. Paper protocol: YOLOv5, SGD, batch 16, 3 epochs, "
            "2000 LLVIP train / 250 LLVIP test pairs, COCO-pretrained implied.")


def finish(df: pd.DataFrame, out_dir: Path, prof: DetectionProfile, data: DetectionData | None, split: Split,
           yolo_weights=None, command: str | None = None, unavailable: Mapping[str, str] | None = None,
           per_seed: Sequence[Mapping] | None = None) -> list[Path]:
    """Write detection.{csv,tex,md} + provenance and ``detection.seeds.csv`` (one row per method and seed, when
    there are several seeds). Fig. 8 is drawn from ``detection.csv`` by the figures target (benchmarks.figures)."""
    transfer = yolo.describe_init(yolo_weights, prof.model).record() if yolo_weights else None
    protocol = protocol_text(prof, data, split, yolo_weights, transfer)
    flags = []
    if data is not None and data.name != "LLVIP":
        flags.append(f"substitute data: {data.name}, not the paper's LLVIP 2000/250 pairs")
    if not yolo_weights:
        flags.append("detector trained from scratch (the paper fine-tunes a pretrained YOLOv5)")
    elif transfer and transfer["kind"] == "state_dict" and transfer["fresh"]:
        flags.append(f"detector partly pretrained: {transfer['transferred']} tensors from {transfer['file']}; "
                     f"{transfer['fresh']} of the model's (YOLOv5 v6 weights: the detection head) start from scratch")
    prov = provenance(
        prof.table, profile=prof.name, command=command,
        data={"dataset": data.name if data else None, "train_pairs": len(split.train), "test_pairs": len(split.test),
              "split": split.rule, "test_stems": list(split.test)},
        weights={"yolo_init": transfer["sha256"] if transfer else None},
        yolo_init=transfer,
        flags=flags, notes=[protocol, FIG8_NOTE] + [f"{k}: no row ({v})" for k, v in (unavailable or {}).items()],
        settings={**dataclasses.asdict(prof), "seeds": list(prof.all_seeds())})
    written = write_reports(df, out_dir, prov, prof.table)
    seeds_csv = Path(out_dir) / f"{prof.table}.seeds.csv"
    if per_seed and len(prof.all_seeds()) > 1:
        write_text(seeds_csv, pd.DataFrame(list(per_seed)).to_csv(index=False, float_format=lambda v: repr(float(v)),
                                                                   lineterminator="\n"))
        written.append(seeds_csv)
    elif seeds_csv.is_file():
        seeds_csv.unlink()  # a single-seed run: no stale per-seed values from an earlier run beside the new table
    return written

