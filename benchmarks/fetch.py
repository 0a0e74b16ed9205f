"""Before a run: download the data sets and weights its targets need and are missing (``python -m benchmarks.run``
without ``--offline``), with :mod:`mmdrfuse.download` (sha256-checked where a digest is known, resumable)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from benchmarks.context import load_profiles
from benchmarks.targets import NEEDS
from mmdrfuse import paths
from mmdrfuse.errors import MMDRFuseError


def fetch_missing(args: argparse.Namespace, targets: list[str], *, offline: bool) -> tuple[list[dict], list[str]]:
    """Download the data sets and weights ``targets`` need that are not under the data / weights roots.

    Returns ``(records, problems)``: what was downloaded (address, sha256, whether it was checked) and one line per
    thing that could not be fetched. Nothing is tried when ``offline``; after the first address that cannot be
    reached at all (no network) nothing more is tried."""
    from mmdrfuse.download import NetworkError

    if offline:
        return [], []
    records: list[dict] = []
    problems: list[str] = []
    for label, job in _download_jobs(args, targets):
        try:
            records += [r for r in job() if r not in records]
        except NetworkError as exc:
            problems.append(f"not downloaded ({label} and everything after it): {exc}")
            break
        except MMDRFuseError as exc:
            problems.append(f"not downloaded ({label}): {exc}")
    return records, problems


def _wanted(args: argparse.Namespace, targets: list[str]) -> tuple[list[str], list[str], bool]:
    """(data sets, named weights, whether the compared methods run) that ``targets`` need."""
    from mmdrfuse import data

    want_data: list[str] = []
    want_weights: list[str] = []
    baselines = False
    for t in targets:
        ds, ws, b = NEEDS.get(t, ((), (), False))
        if args.datasets:
            given = {data.get(d).name for d in args.datasets}
            ds = tuple(d for d in ds if d in given or d == "LLVIP-train")
        want_data += [d for d in ds if d not in want_data]
        want_weights += [w for w in ws if w not in want_weights]
        baselines |= b
    return ([] if args.synthetic else want_data), want_weights, baselines


def _download_jobs(args: argparse.Namespace, targets: list[str]) -> list[tuple[str, Callable[[], list[dict]]]]:
    """(label, download) for every missing data set archive and weights file, data sets first."""
    from mmdrfuse import checkpoints, data
    from mmdrfuse.download import fetch

    data_root = paths.data_root(args.data_root)
    weights_root = paths.weights_root(args.weights_root)
    progress = not args.quiet
    want_data, want_weights, baselines = _wanted(args, targets)
    jobs: list[tuple[str, Callable[[], list[dict]]]] = []

    def incomplete(name: str) -> bool:
        spec = data.get(name)
        return data.find(name, data_root) is None or any(
            not (data_root / dest).is_dir() for e in spec.extras for dest in e.members.values())

    groups: dict[str, list[str]] = {}  # archive address -> data sets (CDDFuse's archive holds three)
    for name in want_data:
        spec = data.get(name)
        if spec.source.url and incomplete(name):
            groups.setdefault(spec.source.url, []).append(name)
    for group in groups.values():
        def get_data(group=group):
            data.download(group, data_root, progress=progress)
            return [r for n in group if (r := data.download_record(n, data_root))]
        jobs.append((" + ".join(group), get_data))

    files: list[tuple[str, str, str | None, Path]] = []  # (label, url, sha256, destination)
    for n in want_weights:
        e = checkpoints.WEIGHTS.get(n)
        if e is not None and e.url and not e.local_path(weights_root).is_file():
            files.append((n, e.url, e.sha256, e.local_path(weights_root)))
    if baselines:
        files += _baseline_files(args, weights_root)
    for label, url, sha, dest in files:
        def get_file(url=url, sha=sha, dest=dest):
            return [fetch(url, dest, sha, progress=progress).record()]
        jobs.append((label, get_file))
    return jobs


def _baseline_files(args: argparse.Namespace, weights_root: Path) -> list[tuple[str, str, str | None, Path]]:
    """Published weights (address and sha256 known) of the compared methods the run would use, not yet here."""
    from benchmarks.cache import baselines_registry

    registry = baselines_registry()
    which = args.baselines or load_profiles()[args.profile].get("baselines", "default")
    if which == "none":
        return []
    want = {m.lower() for m in args.methods} if args.methods else None
    out = []
    for key, spec in registry.items():
        display = getattr(spec, "display", None) or key
        if getattr(spec, "kind", "learned") != "learned" or (which == "default" and not getattr(spec, "table3", True)):
            continue
        if want is not None and not ({key.lower(), display.lower()} & want):
            continue
        if any(not (weights_root / r).exists() for r in getattr(spec, "requires", ()) or ()):
            continue  # it cannot run here anyway (e.g. TextFusion's text embedding)
        for w in getattr(spec, "weights", ()) or ():
            if w.url and w.sha256 and not w.path(weights_root).is_file():
                out.append((f"{display} {Path(w.relpath).name}", w.url, w.sha256, w.path(weights_root)))
    return out
