"""What an ablation run is: the rows (``configs/<row>.yaml``) and the profiles (``configs/profiles.yaml``).

A *row* holds the recipe keys of :class:`mmdrfuse.train.TrainConfig` (teacher, loss.*, model.*) and the list of
keys it ``ablates``; a *profile* (quick | cpu | paper, the names of ``python -m benchmarks.run --profile``) says how
every row is trained (the trainer config ``mmdrfuse/configs/train_<trainer>_student.yaml`` plus data/optim/speed
overrides, never a recipe key) and evaluated (data set, number of pairs, seeds). :func:`train_config` lays them
over each other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml

from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.names import unknown

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PROFILES_FILE = CONFIG_DIR / "profiles.yaml"
RECIPE_SECTIONS = ("teacher", "loss", "model")  # the TrainConfig keys a row may set (and a profile may not)
METRICS = ("SD", "VIF", "Qabf", "SSIM")  # the columns of Tables 1 and 2
PROFILE_KEYS = {"trainer", "stored_as", "train", "row_train", "skip", "seeds", "dataset", "max_pairs", "metrics"}


@dataclass(frozen=True)
class Row:
    """One configuration of an ablation table."""

    key: str  # file stem in configs/, e.g. "wo_intensity"
    ablates: tuple[str, ...]  # dotted recipe keys that differ from full.yaml
    recipe: dict  # nested TrainConfig overrides (teacher, loss, model)
    description: str  # the YAML's leading comment
    path: Path


@dataclass(frozen=True)
class Profile:
    """How every row is trained and evaluated."""

    name: str  # quick | cpu | paper
    trainer: str  # trainer config (mmdrfuse/configs/train_<trainer>_student.yaml)
    train: dict  # dotted overrides of data/optim/bank/speed/vgg
    seeds: tuple[int, ...]
    dataset: str = "MSRS"
    max_pairs: int | None = None
    metrics: tuple[str, ...] = METRICS
    stored_as: str = ""  # the name its runs are stored and keyed under ("" = name); see profiles.yaml
    row_train: dict = field(default_factory=dict)  # row key -> dotted overrides for that row only (e.g. its own lr)
    skip: dict = field(default_factory=dict)  # row key -> why this profile does not run it (reported, never silent)

    @property
    def store(self) -> str:
        """The profile's name in run folders and in the trained configs (part of every run's key)."""
        return self.stored_as or self.name


def _yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise MMDRFuseError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None


def row_keys() -> list[str]:
    """Every row file in configs/ (all YAML files but profiles.yaml)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.name != PROFILES_FILE.name)


def load_row(key: str) -> Row:
    """The row ``configs/<key>.yaml``; unknown keys fail with a did-you-mean."""
    path = CONFIG_DIR / f"{key}.yaml"
    if not path.is_file():
        raise unknown("ablation row", key, row_keys())
    raw = _yaml(path)
    bad = sorted(set(raw) - {"ablates", "recipe"})
    if bad:
        raise MMDRFuseError(f"{path}: unknown key(s) {bad}; a row has only 'ablates' and 'recipe'")
    recipe = raw.get("recipe") or {}
    extra = sorted(set(recipe) - set(RECIPE_SECTIONS))
    if extra:
        raise MMDRFuseError(f"{path}: recipe key(s) {extra} are not recipe keys ({', '.join(RECIPE_SECTIONS)}); "
                            "data/optim/speed settings belong in profiles.yaml")
    lines = path.read_text(encoding="utf-8").splitlines()
    desc = []
    for ln in lines:
        if not ln.startswith("#"):
            break
        desc.append(ln.lstrip("# ").rstrip())
    return Row(key, tuple(raw.get("ablates") or ()), recipe, " ".join(d for d in desc if d), path)


def load_profile(name: str, seeds: Sequence[int] | None = None) -> Profile:
    """A profile of profiles.yaml, optionally with other seeds."""
    raw = _yaml(PROFILES_FILE)
    if name not in raw:
        raise MMDRFuseError(f"unknown ablation profile {name!r}; known: {', '.join(raw)}")
    p = dict(raw[name])
    extra = sorted(set(p) - PROFILE_KEYS)
    if extra:
        raise MMDRFuseError(f"{PROFILES_FILE}: profile {name!r} has unknown key(s) {extra}; known: "
                            f"{', '.join(sorted(PROFILE_KEYS))}")
    train = dict(p.get("train") or {})
    row_train = {str(k): dict(v or {}) for k, v in (p.get("row_train") or {}).items()}
    skip = {str(k): str(v) for k, v in (p.get("skip") or {}).items()}
    for where, keys in (("train", train), *((f"row_train.{k}", v) for k, v in row_train.items())):
        touched = sorted(k for k in keys if k.split(".")[0] in RECIPE_SECTIONS)
        if touched:
            raise MMDRFuseError(f"{PROFILES_FILE}: profile {name!r} sets recipe key(s) {touched} in {where}; "
                                "only rows may")
    for key in (*row_train, *skip):
        if key not in row_keys():
            raise unknown("ablation row", key, row_keys(), f"{PROFILES_FILE}: profile {name!r}")
    return Profile(name=name, trainer=str(p["trainer"]), train=train,
                   seeds=tuple(int(s) for s in (seeds if seeds else p.get("seeds", [0]))),
                   dataset=str(p.get("dataset", "MSRS")), max_pairs=p.get("max_pairs"),
                   metrics=tuple(p.get("metrics") or METRICS), stored_as=str(p.get("stored_as") or ""),
                   row_train=row_train, skip=skip)


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"intensity": 0}} -> {"loss.intensity": 0}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def train_config(row: Row, profile: Profile, seed: int, teacher: str | None = None):
    """The :class:`~mmdrfuse.train.TrainConfig` of one run: trainer config < profile overrides < the profile's
    ``row_train`` of this row < row recipe (< ``teacher``: the demo's stand-in teacher, see
    :func:`ablations.rows.env_from_ctx`). Its recipe hash keys the run (:func:`ablations.rows.run_dir`)."""
    import mmdrfuse.train as training

    overrides = {**profile.train, **profile.row_train.get(row.key, {}), **flatten(row.recipe), "seed": int(seed),
                 "profile": f"ablation-{profile.store}"}
    if teacher:
        overrides["teacher"] = str(teacher)
    return training.load_config(profile.trainer, "student", overrides)
