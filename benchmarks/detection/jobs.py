"""Detection jobs: one detector per (method, training seed), named by a key of everything that defines it.

The key names the cached detector (``<work>/<dataset>/<profile>/<method>[/seed<s>]/run``) and its result JSON
(``<out>/detection/<dataset>/<profile>/`` + :func:`result_name`): a result whose key matches is reused, never
retrained. Reuse, locks and waiting are :mod:`mmdrfuse.jobs`' (several processes may share one results folder);
this module says what a detection job is and what its key covers.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from benchmarks.detection.config import DetectionProfile
from benchmarks.detection.data import Split, images_by_stem
from mmdrfuse import jobs as mjobs
from mmdrfuse.errors import BadInputError


@dataclass
class Job:
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


def fingerprint(images: Mapping[str, Path], split: Split, labels_dir: Path) -> str:
    """A cheap key of the exact inputs: split stems, image file sizes and label contents."""
    h = hashlib.sha256()
    for part, stems in (("train", split.train), ("test", split.test)):
        for s in stems:
            p = Path(images[s])
            lab = Path(labels_dir) / f"{s}.txt"
            h.update(f"{part}/{s}/{p.suffix}/{p.stat().st_size}/".encode())
            h.update(lab.read_bytes() if lab.is_file() else b"-")
    return h.hexdigest()[:16]


def cache_weights(folder: Path) -> str | None:
    """The weights sha256 recorded by the harness's fused-image cache in ``folder/manifest.json``, if any."""
    with contextlib.suppress(Exception):
        return str(json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8")).get("sha256"))
    return None


def job_config(profile: DetectionProfile, split: Split, keep_class: int | None, yolo_sha256: str | None) -> dict:
    """The settings part of a job's key (``profile``: with the job's one seed); recorded in its result JSON."""
    return {"profile": profile.key_settings(), "split_rule": split.rule, "n_train": len(split.train),
            "n_test": len(split.test), "keep_class": keep_class, "yolo_weights_sha256": yolo_sha256}


def job_key(config: Mapping, inputs: Mapping) -> str:
    """16 hex digits of the sha256 of the settings and the inputs (``{"inputs": fingerprint, "weights": [...]}``).
    Changing this formula orphans every cached detector and result (tests/test_jobs.py pins it)."""
    return mjobs.key_of({**config, **inputs})


def safe_name(method: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in method)


def result_name(method: str, seed: int) -> str:
    """Result JSON name of one (method, seed): ``<method>.json`` for seed 0 (as before seeds existed), else
    ``<method>.seed<s>.json``."""
    return f"{safe_name(method)}.json" if seed == 0 else f"{safe_name(method)}.seed{int(seed)}.json"


def plan_jobs(image_dirs: Mapping[str, Path | Sequence[Path]], labels_dir: Path, split: Split,
              profile: DetectionProfile, *, dataset: str, res_dir: Path, work_dir: Path, keep_class: int | None,
              yolo_sha256: str | None) -> list[Job]:
    """One job per method of ``image_dirs`` and seed of ``profile``; a method lacking an image of the split fails
    here, before anything is trained."""
    seeds = profile.all_seeds()
    jobs: list[Job] = []
    for method, folders in image_dirs.items():
        folders = [Path(folders)] if isinstance(folders, (str, os.PathLike)) else [Path(f) for f in folders]
        images = images_by_stem(folders)
        missing = [s for s in split.train + split.test if s not in images]
        if missing:
            raise BadInputError(f"{method}: no image {missing[0]}.* in {folders} ({len(missing)} stems missing); "
                                "fuse the whole dataset first", missing[0])
        inputs = {"inputs": fingerprint(images, split, labels_dir), "weights": [cache_weights(f) for f in folders]}
        for seed in seeds:
            one = profile.for_seed(seed)
            config = job_config(one, split, keep_class, yolo_sha256)
            mdir = work_dir / dataset / profile.name / safe_name(method)
            jobs.append(Job(method=method, profile=one, key=job_key(config, inputs), config=config, images=images,
                            folders=folders, res_path=res_dir / result_name(method, seed),
                            work=mdir if seed == 0 else mdir / f"seed{seed}",  # seed 0: its folder from before seeds
                            tag=f"{method} (seed {seed})" if len(seeds) > 1 else method))
    return jobs


def run_jobs(jobs: Sequence[Job], train: Callable[[Job], dict], log: Callable[[str], None]
             ) -> dict[tuple[str, int], dict]:
    """{(method, seed): result}: reused when its JSON carries the job's key, else trained here by ``train`` (which
    returns the result; it is written atomically), or awaited from the process that holds the job's lock
    (:func:`mmdrfuse.jobs.run_all`: first everything no other process is working on, then the rest)."""
    runs = [mjobs.Job(path=job.res_path, work=lambda job=job: train(job), check=mjobs.has_key(job.key),
                      tag=f"detection: {job.tag}") for job in jobs]
    results = mjobs.run_all(runs, log=log)
    return {(job.method, job.seed): r for job, r in zip(jobs, results)}
