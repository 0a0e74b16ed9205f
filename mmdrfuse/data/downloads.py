"""Downloading data sets: fetch the public archive named in the registry (:func:`mmdrfuse.download.fetch`), unpack it
into a temporary folder, refuse unsafe members, move the data set's folders into place and record the address and
sha256 in ``<data root>/mmdrfuse-downloads.json``."""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from mmdrfuse import paths
from mmdrfuse.data.lookup import Located, find, locate
from mmdrfuse.data.registry import REGISTRY, DatasetSpec, Source, get
from mmdrfuse.errors import MMDRFuseError


def _safe_parts(member: str) -> tuple[str, ...] | None:
    p = PurePosixPath(member.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts:
        return None
    return tuple(x for x in p.parts if x not in ("", "."))


def _unpack(archive: Path, into: Path) -> None:
    """Unpack a zip or tar archive into ``into``, refusing members that would escape it."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                if _safe_parts(info.filename) is None:
                    raise MMDRFuseError(f"{archive.name}: unsafe path {info.filename!r} in the archive; refusing it")
            zf.extractall(into)
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                if _safe_parts(m.name) is None or m.issym() or m.islnk():
                    raise MMDRFuseError(f"{archive.name}: unsafe member {m.name!r} in the archive; refusing it")
            tf.extractall(into, filter="data")
        return
    raise MMDRFuseError(f"{archive}: the download is neither a zip nor a tar archive; check the address")


def _strip_top(folder: Path) -> Path:
    """GitHub archives wrap everything in one ``<repo>-<commit>/`` folder: descend into it."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return folder


DOWNLOADS_DIR = ".downloads"  # under the data root: archives being downloaded (partial files stay for a resume)
RECORD_FILE = "mmdrfuse-downloads.json"  # under the data root: what was downloaded from where, with its sha256


def download_record(name: str, data_root: str | os.PathLike | None = None) -> dict | None:
    """How data set ``name`` came into the data root (address, archive sha256, date), or None (placed by hand)."""
    import json

    path = paths.data_root(data_root) / RECORD_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8")).get(get(name).name)
    except (OSError, ValueError):
        return None


def _record(root: Path, spec: DatasetSpec, fetched, extra: bool = False) -> None:
    import datetime as _dt
    import json

    from mmdrfuse.atomic import write_json

    path = root / RECORD_FILE
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        rec = {}
    entry = {**fetched.record(), "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    del entry["path"]
    if extra:
        rec.setdefault(spec.name, {}).setdefault("extras", []).append(entry)
    else:
        rec[spec.name] = {**entry, "provenance": spec.source.provenance}
    write_json(path, rec)


def _archive_name(url: str) -> str:
    return f"{hashlib.sha1(url.encode()).hexdigest()[:10]}-{url.rstrip('/').rsplit('/', 1)[-1]}"


def download(names: str | list[str], data_root: str | os.PathLike | None = None, *, url: str | None = None,
             sha256: str | None = None, force: bool = False, progress: bool = True, offline: bool = False,
             timeout: float = 60.0) -> list[Located]:
    """Download and unpack data sets into the data root; returns what is found afterwards.

    Data sets already present are left alone unless ``force``. Several data sets sharing one archive (CDDFuse's
    RoadScene / MRI-PET / MRI-SPECT) download it once, and every missing data set it holds is unpacked. ``url`` / ``sha256`` override the registry (one data set).
    Archives go through :func:`mmdrfuse.download.fetch` into ``<data root>/.downloads/`` (resumable) and are deleted
    once unpacked; the address and sha256 of each are recorded in ``<data root>/mmdrfuse-downloads.json``. A data
    set's ``extras`` (e.g. MSRS's detection labels) are fetched too; if one fails, a warning says so.
    """
    names = [names] if isinstance(names, str) else list(names)
    specs = [get(n) for n in names]
    if (url or sha256) and len(specs) != 1:
        raise MMDRFuseError("--url / --sha256 apply to one data set at a time")
    root = paths.data_root(data_root)
    # (address, sha256) -> [(data set, source, role)]; role: "main" (asked for), "extra" (optional archive of a data
    # set, e.g. MSRS's labels), "also" (another missing data set in the same archive: unpacked if it is there)
    todo: dict[tuple[str, str | None], list[tuple[DatasetSpec, Source, str]]] = {}
    for spec in specs:
        if spec.kind == "synthetic":
            raise MMDRFuseError(f"{spec.name} is generated locally, not downloaded; run 'mmdrfuse data demo'")
        present = None if force else find(spec.name, root)
        if present is not None:
            print(f"{spec.name}: already present under {root} ({present.n_pairs} pairs; --force to fetch again)",
                  file=sys.stderr)
        else:
            src_url = url or spec.source.url
            if not src_url:
                raise MMDRFuseError(f"{spec.name}: no direct download address; get it from {spec.homepage}")
            todo.setdefault((src_url, sha256 or spec.source.sha256), []).append((spec, spec.source, "main"))
        supplement_dirs = {d for pairs in spec.supplements.values() for pair in pairs for d in pair}
        for extra in spec.extras:
            if present is not None and not present.short and set(extra.members.values()) <= supplement_dirs:
                continue  # pairs that only stand in for a short layout (LLVIP's extra test pairs beside the full set)
            if force or not all((root / dest).is_dir() for dest in extra.members.values()):
                todo.setdefault((extra.url, extra.sha256), []).append((spec, extra, "extra"))
    for (src_url, _), group in todo.items():  # an archive holding other missing data sets: unpack them too
        names_in = {s.name for s, _, _ in group}
        for other in REGISTRY.values():
            if other.source.url == src_url and other.name not in names_in and find(other.name, root) is None:
                group.append((other, other.source, "also"))

    for (src_url, digest), group in todo.items():
        optional = all(role != "main" for _, _, role in group)
        try:
            _download_one(root, src_url, digest, group, progress=progress, offline=offline, timeout=timeout)
        except MMDRFuseError as exc:
            if not optional:
                raise
            print(f"warning: {', '.join(s.provenance for _, s, _ in group)}: not fetched ({exc})", file=sys.stderr)
    return [locate(s.name, root) for s in specs]


def _download_one(root: Path, src_url: str, digest: str | None, group, *, progress: bool, offline: bool,
                  timeout: float) -> None:
    """Fetch one archive, check that every folder the group needs is in it, move them into place, record it."""
    from mmdrfuse.download import fetch

    dl_dir = root / DOWNLOADS_DIR
    try:
        fetched = fetch(src_url, dl_dir / _archive_name(src_url), digest, progress=progress, offline=offline,
                        timeout=timeout, quiet=not progress)
    except MMDRFuseError:
        with contextlib.suppress(OSError):
            dl_dir.rmdir()  # only when empty: a partial download stays for the next try to resume
        raise
    archive = fetched.path
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=root))
    try:
        _unpack(archive, staging)
        top = _strip_top(staging)
        moves, done = [], []
        for spec, source, role in group:
            missing = [inner for inner in source.members if not (top / inner).is_dir()]
            if missing and role == "also":
                continue
            if missing:
                raise MMDRFuseError(f"{fetched.url}: folder {missing[0]!r} not in the archive; "
                                    f"the upstream layout changed, place {spec.name} by hand")
            for rel in source.exclude:  # e.g. a duplicate of another data set's pair
                (top / rel).unlink(missing_ok=True)
            moves += [(top / inner, root / dest) for inner, dest in source.members.items()]
            done.append((spec, role))
        for src, dest in moves:  # every folder checked before anything is moved
            if dest.exists():
                shutil.rmtree(dest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dest)
        for spec, role in done:
            _record(root, spec, fetched, extra=role == "extra")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            archive.unlink()
        with contextlib.suppress(OSError):
            dl_dir.rmdir()  # only when empty (no partial download of another archive waiting)
