"""The detection benchmark: one detector per method and seed (:mod:`.jobs`), trained by :mod:`.yolo`, reduced to
the tidy rows of the table (mean over seeds, and the sample std when there are several)."""
from __future__ import annotations

import datetime as _dt
import os
import statistics
from pathlib import Path
from typing import Callable, Mapping, Sequence

import pandas as pd

from benchmarks.detection import yolo
from benchmarks.detection.config import (METRICS, TIDY_COLUMNS, DetectionProfile, default_weights_label,
                                         load_profile)
from benchmarks.detection.data import Split, count_boxes, prepare_yolo_dataset
from benchmarks.detection.jobs import Job, plan_jobs, run_jobs
from benchmarks.detection.weights import resolve_yolo_weights
from benchmarks.report import STD_SUFFIX
from mmdrfuse.download import sha256_file


def detection_benchmark(image_dirs: Mapping[str, Path | Sequence[Path]], labels_dir: Path, split: Split,
                        profile: DetectionProfile | str, out_dir: Path, *, dataset: str = "MSRS",
                        work_dir: Path | None = None, keep_class: int | None = 0, device: str = "cpu",
                        yolo_weights: str | os.PathLike | None = None, weights_root: str | os.PathLike | None = None,
                        rows_as: Mapping[str, tuple[str, str]] | None = None,
                        progress: bool = True, log: Callable[[str], None] = print,
                        per_seed_out: list | None = None) -> pd.DataFrame:
    """Train and evaluate one detector per method; return the tidy rows (``TIDY_COLUMNS``).

    ``image_dirs``: method -> folder(s) of images named by stem (fused images, or the IR / visible sources for the
    ``IR-only`` / ``visible-only`` rows); ``rows_as``: key -> (method, weights) for the tidy rows (default: the key
    itself, weights ``official`` for MMDRFuse and ``none`` for the source rows). ``yolo_weights``: initial detector
    weights, a path or a name of :data:`~.weights.YOLO_WEIGHTS` under ``weights_root`` (None: from scratch); an
    Ultralytics checkpoint or a plain state dict (:func:`~.yolo.initial_weights`), its sha256 in the job key and its
    transfer counts in each result JSON (``yolo_init``). ``labels_dir``: YOLO label files
    named by stem. ``split``: the fixed partition (already limited to the profile's sizes). One detector per method
    and training seed (``profile.all_seeds()``); each result is written atomically to
    ``out_dir/detection/<dataset>/<profile>/`` + :func:`~.jobs.result_name`, and a (method, seed) whose JSON
    matches the current configuration is not retrained; several processes may share the work (:mod:`.jobs`). A
    row's value is the mean over the seeds; with several seeds a ``<metric>_std`` row holds the sample std (ddof=1).
    ``per_seed_out``, if given, receives one dict per (method, seed). Heavy files (dataset links, YOLO runs,
    weights) go to ``work_dir`` (the harness and the command line use ``<user cache>/mmdrfuse/detection``; default
    here ``out_dir/detection/work``).
    """
    prof = load_profile(profile) if isinstance(profile, str) else profile
    out_dir = Path(out_dir).resolve()
    res_dir = out_dir / "detection" / dataset / prof.name
    work_dir = Path(work_dir).resolve() if work_dir else res_dir.parent.parent / "work"
    yolo_weights = resolve_yolo_weights(yolo_weights, weights_root)
    w_sha = sha256_file(yolo_weights) if yolo_weights else None
    # checked (and counted) before anything trains: a file that fits nothing fails here, in one line
    init = yolo.describe_init(yolo_weights, prof.model).record() if yolo_weights else None
    n_boxes = count_boxes(labels_dir, split.test, keep_class)
    jobs = plan_jobs(image_dirs, labels_dir, split, prof, dataset=dataset, res_dir=res_dir, work_dir=work_dir,
                     keep_class=keep_class, yolo_sha256=w_sha)

    def train(job: Job) -> dict:
        start = (f"from {init['file']} ({init['transferred']} tensors transferred)" if init else "from scratch")
        log(f"detection: {job.tag}: training {prof.model} {start} for {prof.epochs} epoch(s) on {len(split.train)} "
            f"images at {prof.imgsz}px ({prof.name} profile)")
        data_yaml = prepare_yolo_dataset(job.images, labels_dir, split, job.work / "data", keep_class)
        metrics = yolo.train_and_evaluate(data_yaml, job.work / "run", job.profile, device=device,
                                          yolo_weights=yolo_weights, config_dir=work_dir / "ultralytics-config",
                                          progress=progress, label=job.tag, key=job.key)
        result = {"key": job.key, "method": job.method, "dataset": dataset, "profile": prof.name, "seed": job.seed,
                  "metrics": metrics, "n_train": len(split.train), "n_test": len(split.test),
                  "n_test_boxes": n_boxes, "config": job.config, "yolo_init": init,
                  "images": [str(f) for f in job.folders],
                  "versions": yolo.versions(), "date": _dt.datetime.now().isoformat(timespec="seconds")}
        log(f"detection: {job.tag}: mAP@.5:.95 {metrics['mAP50-95']:.4f}, mAP@.5 {metrics['mAP50']:.4f} "
            f"({metrics['train_seconds']:.0f} s)")
        return result  # written by run_jobs

    results = run_jobs(jobs, train, log)
    return tidy_rows(list(image_dirs), results, prof, split, dataset, rows_as, per_seed_out)


def tidy_rows(methods: Sequence[str], results: Mapping[tuple[str, int], dict], prof: DetectionProfile,
              split: Split, dataset: str, rows_as: Mapping[str, tuple[str, str]] | None = None,
              per_seed_out: list | None = None) -> pd.DataFrame:
    """The table's rows of ``methods`` (in that order) from their per-seed ``results``: the mean over the seeds, and
    a ``<metric>_std`` row with the sample std (ddof=1) when there are several."""
    seeds = prof.all_seeds()
    rows = []
    for method in methods:
        per_seed = [results[(method, seed)]["metrics"] for seed in seeds]
        row_method, row_weights = (rows_as or {}).get(method, (method, default_weights_label(method)))
        base = {"table": prof.table, "dataset": dataset, "method": row_method, "weights": row_weights, "source": "ours",
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
