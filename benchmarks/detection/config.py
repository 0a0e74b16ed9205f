"""What a detection run is: the constants of its table and the profiles of ``profiles.yaml`` (beside this file)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import yaml

from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.names import unknown

CONFIG_PATH = Path(__file__).with_name("profiles.yaml")
TABLE = "detection"
YOLO_WEIGHTS_ENV = "MMDRFUSE_YOLO_WEIGHTS"  # initial detector weights (``ctx.yolo_weights`` / --yolo-weights first)
SOURCE_ROWS = {"IR-only": "ir", "visible-only": "vis"}  # rows that use a source image instead of a fused one
METRICS = {"mAP50-95": "metrics/mAP50-95(B)", "mAP50": "metrics/mAP50(B)"}  # tidy name -> Ultralytics key
TIDY_COLUMNS = ["table", "dataset", "method", "weights", "metric", "value", "source", "n_pairs", "profile"]
FIG8_NOTE = ("The paper gives Fig. 8 as a plot without printed numbers, so there are no paper values to compare "
             "against; every number here is ours.")


@dataclass
class DetectionProfile:
    """Detector training settings of one profile (values and comments in ``benchmarks/detection/profiles.yaml``)."""

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
    yolo_weights: str | None = None  # initial weights: a name of weights.YOLO_WEIGHTS or a path (None: from scratch);
    #                                  --yolo-weights / $MMDRFUSE_YOLO_WEIGHTS / ctx.yolo_weights come first
    table: str = TABLE              # output stem: <out>/<table>.{csv,tex,md}, .provenance.json, .seeds.csv

    def all_seeds(self) -> tuple[int, ...]:
        """The training seeds of this profile: ``seeds`` if given, else ``(seed,)``."""
        return tuple(self.seeds) or (self.seed,)

    def for_seed(self, seed: int) -> "DetectionProfile":
        """This profile with one training seed (``seeds`` cleared)."""
        return dataclasses.replace(self, seed=int(seed), seeds=())

    def key_settings(self) -> dict[str, Any]:
        """The settings that define one detector run (for result keys): every field but ``seeds``, ``yolo_weights``
        (the initial weights enter the key as their file's sha256, whatever named them) and ``table`` (where the
        report goes). A seed-0 run keys as it did before ``seeds`` existed, so earlier results stay valid."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in ("seeds", "yolo_weights", "table")}

    def train_args(self) -> dict[str, Any]:
        """Keyword arguments for ``YOLO.train`` that come from the profile."""
        return dict(imgsz=self.imgsz, epochs=self.epochs, batch=self.batch, optimizer=self.optimizer, lr0=self.lr0,
                    momentum=self.momentum, weight_decay=self.weight_decay, close_mosaic=self.close_mosaic,
                    warmup_epochs=self.warmup_epochs, nbs=self.nbs, seed=self.seed, workers=self.workers)


def load_config(path: str | os.PathLike = CONFIG_PATH) -> dict:
    """The parsed detection YAML."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_profile(name: str, path: str | os.PathLike = CONFIG_PATH, seeds: Sequence[int] | None = None,
                 pretrained: bool = False) -> DetectionProfile:
    """The profile ``name`` from the YAML, defaults applied, optionally with other training ``seeds``; an unknown
    name fails with a suggestion. ``pretrained``: the YAML's ``pretrained`` settings over the profile (the paper's
    fine-tuning from COCO weights on the profile's data), named ``<name>-pretrained``."""
    cfg = load_config(path)
    profiles = cfg.get("profiles", {})
    if name not in profiles:
        raise unknown("detection profile", name, profiles, where=str(path))
    values = {**cfg.get("defaults", {}), **profiles[name], **(cfg.get("pretrained", {}) if pretrained else {})}
    if seeds:
        values["seeds"] = seeds
    if values.get("seeds"):
        values["seeds"] = tuple(dict.fromkeys(int(s) for s in values["seeds"]))
        values["seed"] = values["seeds"][0]
    known = {f.name for f in dataclasses.fields(DetectionProfile)}
    extra = sorted(set(values) - known)
    if extra:
        raise MMDRFuseError(f"{path}: profile {name!r} has unknown keys {extra}; known keys: {sorted(known)}")
    return DetectionProfile(name=f"{name}-pretrained" if pretrained else name,
                            **{k: v for k, v in values.items() if k != "name"})



def default_weights_label(method: str) -> str:
    """The tidy ``weights`` of a row given without one: ``none`` for the source rows, ``official`` for MMDRFuse."""
    if method in SOURCE_ROWS:
        return "none"
    if method == "MMDRFuse":
        return "official"
    return "default"
