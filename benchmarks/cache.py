"""Fused-image cache: each (method, weights sha256, data set) is fused once and reused by every table and figure.

Layout under the cache root (default ``<user cache>/fused``, ``--cache DIR`` to change)::

    <root>/<method>/<weights>-<sha256[:12]>-c<code>/<dataset>/<stem>.png   fused 8-bit images (the method's saving)
                                                      /manifest.json  what made them (method, weights, sha256, sources)
                                                      /metrics-<code>.csv  per-image metrics, computed once per stem

Every image and file is written atomically; a run that stops halfway resumes where it stopped (existing stems are
kept, missing ones fused). The weights sha256 and a fingerprint of the fusing code are part of the folder name, and
the metrics file is named by a fingerprint of the metrics code, so new weights or changed code never reuse stale
images or values.

:class:`MethodRun` describes one row of the quality tables: MMDRFuse with named weights (``official`` = the
authors' checkpoint, ``mmdrfuse-cpu`` = trained here) or a baseline from :mod:`baselines` with its weights.
"""
from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from mmdrfuse import images
from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.errors import MMDRFuseError

CACHE_VERSION = 1

# Source files whose code decides the fused images of a method kind / the metric values: their hash is part of the
# cache keys, so a change in that code never reuses stale images or metrics.
MMDRFUSE_CODE = ("mmdrfuse.models", "mmdrfuse.fast", "mmdrfuse.fusion", "mmdrfuse.folders", "mmdrfuse.images")
BASELINES_CODE = ("baselines",)
METRICS_CODE = ("mmdrfuse.metrics",)


def code_fingerprint(modules: Sequence[str]) -> str:
    """sha256 (12 hex) of the source of the given modules / packages (every .py file of a package)."""
    import hashlib
    import importlib.util

    h = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None and not spec.submodule_search_locations:
            h.update(f"{name}:missing".encode())
            continue
        if spec.submodule_search_locations:  # a package: every .py below it
            files = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.py"))
        else:
            files = [Path(spec.origin)]
        for f in files:
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:12]


@dataclass
class MethodRun:
    """One fusion method with one set of weights, built lazily."""

    method: str  # "MMDRFuse" or a baseline name
    weights: str  # "official", "mmdrfuse-cpu", a baseline weights file name, or "none" (training-free)
    sha256: str  # of the weights file ("none" for training-free methods)
    factory: Callable[[], object]  # -> object with fuse(ir, vis) and to_uint8(out)
    kind: str = "mmdrfuse"  # "mmdrfuse" | "learned" | "classical"
    note: str = ""
    code: str = ""  # fingerprint of the code that fuses (part of the cache key; "" = not tracked)
    _built: object | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return self.method if self.weights in ("official", "none") else f"{self.method} ({self.weights})"

    @property
    def slug(self) -> str:
        return f"{_safe(self.weights)}-{self.sha256[:12]}" + (f"-c{self.code[:8]}" if self.code else "")

    def build(self):
        if self._built is None:
            self._built = self.factory()
        return self._built


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(s)).strip("_") or "x"


# -------------------------------------------------------------------------------------------------- method runs
def mmdrfuse_runs(weights_root=None, device: str = "cpu", names: Sequence[str] = ("official-student", "mmdrfuse-cpu")
                  ) -> tuple[list[MethodRun], dict[str, str]]:
    """MMDRFuse rows: the authors' checkpoint (weights ``official``) and the project's trained weights when present.

    Returns ``(runs, unavailable)`` where ``unavailable`` maps a row label to the reason it has no values of ours.
    """
    from mmdrfuse import checkpoints

    runs: list[MethodRun] = []
    missing: dict[str, str] = {}
    for name in names:
        label = "official" if name == "official-student" else name
        if name not in checkpoints.WEIGHTS:
            missing[f"MMDRFuse ({label})"] = (f"no weights named {name!r} yet (train them with 'mmdrfuse train' and "
                                              f"save as mmdrfuse/weights/{name}.pt)")
            continue
        try:
            path = checkpoints.resolve(name, weights_root)
        except MMDRFuseError as exc:
            missing[f"MMDRFuse ({label})"] = str(exc)
            continue
        sha = _sha256(path)

        def factory(name=name):
            from mmdrfuse.fusion import MMDRFuseMethod

            return MMDRFuseMethod.from_weights(name, device=device, weights_root=weights_root, save="minmax")

        runs.append(MethodRun("MMDRFuse", label, sha, factory, kind="mmdrfuse", note=f"{name}: {path}",
                              code=code_fingerprint(MMDRFUSE_CODE)))
    return runs, missing


def baselines_registry() -> dict:
    """``baselines.REGISTRY``: registry key -> spec of every compared method."""
    import baselines

    return baselines.REGISTRY


def baseline_runs(weights_root=None, device: str = "cpu", which: str = "default",
                  only: Sequence[str] | None = None) -> tuple[list[MethodRun], dict[str, str]]:
    """Baseline rows from :mod:`baselines` whose weights are here, and {method: why not} for the others.

    ``which``: ``none``; ``default`` (one entry per compared method: the registry entry standing for it in Table 3);
    ``learned`` (every learned entry, e.g. each TarDAL checkpoint); ``all`` (also the training-free methods).
    Rows are named as in the paper (``spec.display``), weights by the checkpoint's file name.
    """
    if which == "none":
        return [], {}
    if which not in ("default", "learned", "all"):
        raise MMDRFuseError(f"unknown baselines selection {which!r}; expected none, default, learned or all")
    registry = baselines_registry()
    from mmdrfuse import paths

    wroot = paths.weights_root(weights_root)
    runs: list[MethodRun] = []
    missing: dict[str, str] = {}
    for key, spec in registry.items():
        display = getattr(spec, "display", None) or getattr(spec, "name", key)
        kind = getattr(spec, "kind", "learned")
        if only is not None and not ({key.lower(), display.lower()} & {o.lower() for o in only}):
            continue
        if kind != "learned" and which != "all":
            continue
        if which == "default" and kind == "learned" and not getattr(spec, "table3", True):
            continue
        try:
            reason = spec.status(wroot)
        except Exception as exc:  # noqa: BLE001 - a half-written registry entry must not stop the tables
            reason = f"status check failed ({exc.__class__.__name__}: {exc})"
        if reason:
            missing.setdefault(display, reason)
            continue
        weights = tuple(getattr(spec, "weights", ()) or ())
        label, sha = "none", "none"
        if weights:
            wf = weights[0]
            label = Path(wf.relpath).name
            sha = wf.sha256 or _sha256(wf.path(wroot))

        def factory(spec=spec):
            return spec.build(device, wroot)

        runs.append(MethodRun(display, label, sha, factory, kind=kind, note=getattr(spec, "citation", ""),
                              code=code_fingerprint(BASELINES_CODE)))
    return runs, missing


def _sha256(path: Path) -> str:
    from mmdrfuse.download import sha256_file

    return sha256_file(path)


# -------------------------------------------------------------------------------------------------------- cache
@dataclass
class CacheEntry:
    folder: Path
    stems: list[str]
    n_new: int = 0
    seconds: float = 0.0


class FusedCache:
    """Fused images and per-image metrics per (method, weights sha256, data set)."""

    def __init__(self, root: str | Path, progress: bool = True):
        self.root = Path(root)
        self.progress = progress

    def folder(self, run: MethodRun, dataset: str) -> Path:
        return self.root / _safe(run.method) / run.slug / _safe(dataset)

    @staticmethod
    def select(located, max_pairs: int | None = None) -> list[images.Pair]:
        """The pairs of a data set sorted by stem; with ``max_pairs``, that many evenly spaced ones (first and last
        included), the same every time."""
        found: dict[str, images.Pair] = {}
        for ir_dir, vis_dir in located.folder_pairs:
            for p in images.match_stems(ir_dir, vis_dir, skip_bad=True, skipped=[]):
                found.setdefault(p.stem, p)  # a stem in two folders: the data set's own layout wins
        pairs = [found[s] for s in sorted(found)]
        if not max_pairs or max_pairs >= len(pairs):
            return pairs
        idx = sorted({int(round(i)) for i in np.linspace(0, len(pairs) - 1, int(max_pairs))})
        return [pairs[i] for i in idx]

    def ensure(self, run: MethodRun, located, pairs: Sequence[images.Pair] | None = None) -> CacheEntry:
        """Fuse the pairs not yet in the cache; return the folder and the stems it now covers.

        Several processes may fill one folder at once: each pair is fused by the process holding its lock file
        (``.<stem>.lock``, :mod:`mmdrfuse.lock`); a process skips pairs another one holds and waits for them at
        the end, so every pair is fused once.
        """
        from mmdrfuse.folders import fuse_pairs

        pairs = list(pairs) if pairs is not None else self.select(located)
        folder = self.folder(run, located.name)
        todo = [p for p in pairs if not (folder / f"{p.stem}.png").is_file()]
        entry = CacheEntry(folder, [p.stem for p in pairs])
        if todo:
            folder.mkdir(parents=True, exist_ok=True)
            self._write_manifest(run, located, folder)
            s = fuse_pairs(todo, folder, run.build(), locks=True, progress=self.progress,
                           desc=f"fuse {run.label} / {located.name}")
            entry.n_new, entry.seconds = s.n_fused, s.seconds
        return entry

    def _write_manifest(self, run: MethodRun, located, folder: Path) -> None:
        path = folder / "manifest.json"
        if path.is_file():
            return
        write_json(path, {"cache_version": CACHE_VERSION, "method": run.method, "weights": run.weights,
                          "sha256": run.sha256, "code": run.code, "dataset": located.name,
                          "ir_dir": str(located.ir_dir),
                          "vis_dir": str(located.vis_dir), "note": run.note,
                          "more_dirs": [[str(a), str(b)] for a, b in located.more],
                          "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")})

    def metrics(self, run: MethodRun, located, pairs: Sequence[images.Pair], metrics: Sequence[str],
                evaluator: Callable | None = None, chunk: int = 16) -> pd.DataFrame:
        """Per-image metrics (columns ``stem`` + metrics) for ``pairs``, computing only what is not cached.

        New values are saved every ``chunk`` pairs, so an interrupted evaluation resumes where it stopped.
        """
        from tqdm import tqdm

        folder = self.folder(run, located.name)
        ev = evaluator or default_evaluator
        if ev is default_evaluator:
            key = code_fingerprint(METRICS_CODE)
        else:
            key = code_fingerprint([ev.__module__]) + "-" + _safe(getattr(ev, "__qualname__", "evaluator"))
        path = folder / f"metrics-{key}.csv"
        have = pd.read_csv(path, dtype={"stem": str}) if path.is_file() else pd.DataFrame(columns=["stem"])
        if not all(m in have.columns for m in metrics):
            have = have.iloc[0:0]  # a metric is new: its column must be computed for every stem
        stems = [p.stem for p in pairs]
        known = set(have["stem"].astype(str))
        todo = [p for p in pairs if p.stem not in known]
        with tqdm(total=len(todo), desc=f"metrics {run.label} / {located.name}", unit="pair",
                  disable=not self.progress or not todo, file=sys.stderr) as bar:
            for i in range(0, len(todo), max(1, chunk)):
                part = todo[i:i + chunk]
                new = ev(folder, part, list(metrics), progress=False, desc="")
                new["stem"] = new["stem"].astype(str)
                have = pd.concat([have[~have["stem"].isin(new["stem"])], new], ignore_index=True) \
                    if len(have) else new
                write_text(path, have.to_csv(index=False, float_format=lambda v: repr(float(v)),
                                             lineterminator="\n"))
                bar.update(len(part))
        have = have.assign(stem=have["stem"].astype(str))
        missing = [s for s in stems if s not in set(have["stem"])]
        if missing:
            raise MMDRFuseError(f"{path}: the evaluator returned no values for {missing[:3]}")
        out = have.drop_duplicates("stem", keep="last").set_index("stem").loc[stems].reset_index()
        return out[["stem", *metrics]]


def default_evaluator(fused_dir: Path, pairs: Sequence[images.Pair], metrics: Sequence[str], progress: bool = True,
                      desc: str = "metrics") -> pd.DataFrame:
    """Per-image metrics with the suite's evaluator: the paper's reading convention
    (:func:`mmdrfuse.metrics.reading.read_eval_gray`) and :func:`mmdrfuse.metrics.compute_all`."""
    from tqdm import tqdm

    from mmdrfuse.metrics import compute_all
    from mmdrfuse.metrics.reading import read_eval_gray

    rows = []
    for p in tqdm(pairs, desc=desc, unit="pair", disable=not progress, file=sys.stderr):
        f = read_eval_gray(fused_dir / f"{p.stem}.png")[None, None]
        a = read_eval_gray(p.ir)[None, None]
        b = read_eval_gray(p.vis)[None, None]
        vals = compute_all(f, a, b, names=list(metrics))
        rows.append({"stem": p.stem, **{m: float(vals[m].detach().cpu().reshape(-1)[0]) for m in metrics}})
    return pd.DataFrame(rows, columns=["stem", *metrics])


def manifest(folder: Path) -> dict:
    try:
        return json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
