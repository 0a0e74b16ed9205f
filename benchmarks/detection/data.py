"""The detection data: where a data set lives (LLVIP's VOC labels converted by :mod:`mmdrfuse.voc`), its fixed
train/test split, its YOLO labels (person boxes), and the Ultralytics dataset layout of one run."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import yaml

from benchmarks.detection.config import CONFIG_PATH, load_config
from mmdrfuse.atomic import write_text
from mmdrfuse.errors import BadInputError, MMDRFuseError
from mmdrfuse.images import list_images
from mmdrfuse.names import unknown


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


def images_by_stem(folders: Path | Sequence[Path]) -> dict[str, Path]:
    """stem -> image over one folder or several (later folders win)."""
    folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
    found: dict[str, Path] = {}
    for f in folders:
        found.update(list_images(f))
    return found


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

