"""Evaluation data sets: a registry (name -> layout, paper count, public source), lookup and download.

The data root is ``--data-root`` > ``$MMDRFUSE_DATA`` > ``<user cache>/data`` (:func:`mmdrfuse.paths.data_root`);
the first one that is set is used. Inside it every data set has the layout the registry names, e.g.
``MSRS/test/{ir,vi}``; several layouts can be listed (the full set's own layout first), the first one present wins.

A data set found with fewer pairs than the paper used (LLVIP: the 15 public sample pairs of the LLVIP repository,
bupt-ai-cz/LLVIP FusionGAN/Test_LLVIP_*, instead of the 250-pair test split) is still used, and
:attr:`Located.flag` carries the warning every report that uses it must print.

``mmdrfuse data list`` shows what is found; ``mmdrfuse data download NAME`` fetches the public archive named in the
registry with :func:`mmdrfuse.download.fetch` (progress bar; sha256 checked when one is known, a mismatch refused;
an interrupted download resumes where the server allows it), unpacks it into a temporary folder and only then moves
the data set's folders into place; the address and the archive's sha256 are recorded in
``<data root>/mmdrfuse-downloads.json``. ``mmdrfuse data demo`` writes the built-in synthetic demo set
(:mod:`mmdrfuse.demo`).

Medical pairs put the MRI in the IR slot and PET/SPECT in the visible slot (the order that reproduces Table 5).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mmdrfuse import paths
from mmdrfuse.errors import MMDRFuseError

_CDDFUSE = "https://github.com/Zhaozixiang1228/MMIF-CDDFuse/archive/fd8da1f.zip"


@dataclass(frozen=True)
class Source:
    """A public archive holding the data set, and where its folders are inside it.

    ``members`` maps a folder inside the archive (after stripping the archive's single top folder, as GitHub's
    ``archive/<commit>.zip`` files have) to the folder it becomes under the data root.
    """

    url: str | None  # archive address (None: no direct download; see the data set's ``homepage``)
    sha256: str | None  # of the archive; None = not known (GitHub builds archives on request; pin with --sha256)
    members: dict[str, str] = field(default_factory=dict)
    provenance: str = ""  # repository @ commit and path the files come from


@dataclass(frozen=True)
class DatasetSpec:
    """One evaluation data set as the paper used it."""

    name: str
    kind: str  # "ivif" | "medical" | "synthetic"
    paper_pairs: int  # pairs in the paper's test split
    table: str  # where the paper reports it
    layouts: tuple[tuple[str, str], ...]  # (IR/MRI folder, VIS/PET/SPECT folder) under the data root, best first
    source: Source
    homepage: str = ""
    licence: str = ""
    slots: tuple[str, str] = ("IR", "VIS")  # what the two inputs are called
    aliases: tuple[str, ...] = ()
    note: str = ""
    extras: tuple[Source, ...] = ()  # optional archives fetched with it (e.g. MSRS's detection labels)


REGISTRY: dict[str, DatasetSpec] = {
    "MSRS": DatasetSpec(
        "MSRS", "ivif", 361, "Table 4a, Tables 1-2",
        layouts=(("MSRS/test/ir", "MSRS/test/vi"),),
        source=Source("https://github.com/Linfeng-Tang/MSRS/archive/2052589d3a714d0285c8792e24d2db290d84b6ea.zip",
                      None, {"test/ir": "MSRS/test/ir", "test/vi": "MSRS/test/vi"},
                      "Linfeng-Tang/MSRS @ 2052589 test/{ir,vi} (the archive holds the whole MSRS, ~1 GB)"),
        homepage="https://github.com/Linfeng-Tang/MSRS", licence="research use; cite PIAFusion / SeAFusion",
        note="640x480 PNG; IR gray, visible RGB",
        extras=(Source("https://github.com/Lele-3/MSRS-detection-label/archive/cb6ffc0.zip", None,
                       {"fusion/test": "MSRS/test/labels"},
                       "Lele-3/MSRS-detection-label @ cb6ffc0 fusion/test (YOLO labels: 0 person, 1 bicycle, 2 car; "
                       "the detection benchmark)"),)),
    "LLVIP": DatasetSpec(
        "LLVIP", "ivif", 250, "Table 4b",
        layouts=(("LLVIP/infrared/test", "LLVIP/visible/test"),  # the full LLVIP as distributed
                 ("LLVIP/test/ir", "LLVIP/test/vi"),
                 ("LLVIP/test_samples/ir", "LLVIP/test_samples/vi")),  # LLVIP's 15 public samples (source below)
        source=Source("https://github.com/bupt-ai-cz/LLVIP/archive/60cdc80.zip", None,
                      {"FusionGAN/Test_LLVIP_ir": "LLVIP/test_samples/ir",
                       "FusionGAN/Test_LLVIP_vi": "LLVIP/test_samples/vi"},
                      "bupt-ai-cz/LLVIP @ 60cdc80 FusionGAN/Test_LLVIP_{ir,vi} (12 sample pairs only)"),
        homepage="https://bupt-ai-cz.github.io/LLVIP/",
        licence="non-commercial research and teaching only; cite LLVIP",
        aliases=("llvip",),
        note="the paper's 250-pair test split is distributed from the homepage under its licence (manual download; "
             "unpack so that LLVIP/infrared/test and LLVIP/visible/test exist); the archive here has 12 samples"),
    "RoadScene": DatasetSpec(
        "RoadScene", "ivif", 50, "Table 4c",
        layouts=(("RoadScene/test50/ir", "RoadScene/test50/vi"),),
        source=Source(_CDDFUSE, None, {"test_img/RoadScene/ir": "RoadScene/test50/ir",
                                       "test_img/RoadScene/vi": "RoadScene/test50/vi"},
                      "Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f test_img/RoadScene"),
        homepage="https://github.com/hanna-xu/RoadScene", licence="cite FusionDN / U2Fusion",
        note="the 50-pair split of CDDFuse; may differ from the paper's RoadScene-50"),
    "MRI-SPECT": DatasetSpec(
        "MRI-SPECT", "medical", 73, "Table 5a",
        layouts=(("MRI_SPECT/MRI", "MRI_SPECT/SPECT"),),
        source=Source(_CDDFUSE, None, {"test_img/MRI_SPECT/MRI": "MRI_SPECT/MRI",
                                       "test_img/MRI_SPECT/SPECT": "MRI_SPECT/SPECT"},
                      "Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f test_img/MRI_SPECT"),
        homepage="http://www.med.harvard.edu/AANLIB/", licence="Harvard Whole Brain Atlas",
        slots=("MRI", "SPECT"), aliases=("MRI_SPECT", "mrispect"), note="256x256 PNG"),
    "MRI-PET": DatasetSpec(
        "MRI-PET", "medical", 42, "Table 5b",
        layouts=(("MRI_PET/MRI", "MRI_PET/PET"),),
        source=Source(_CDDFUSE, None, {"test_img/MRI_PET/MRI": "MRI_PET/MRI",
                                       "test_img/MRI_PET/PET": "MRI_PET/PET"},
                      "Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f test_img/MRI_PET"),
        homepage="http://www.med.harvard.edu/AANLIB/", licence="Harvard Whole Brain Atlas",
        slots=("MRI", "PET"), aliases=("MRI_PET", "mripet"), note="256x256 PNG"),
    "LLVIP-train": DatasetSpec(
        "LLVIP-train", "ivif", 0, "none (training pairs; the detection benchmark's train split)",
        layouts=(("LLVIP/infrared/train", "LLVIP/visible/train"),
                 ("LLVIP/train/ir", "LLVIP/train/vi"),
                 ("LLVIP/train_samples/ir", "LLVIP/train_samples/vi")),
        source=Source("https://github.com/bupt-ai-cz/LLVIP/archive/60cdc80.zip", None,
                      {"FusionGAN/Train_LLVIP_ir": "LLVIP/train_samples/ir",
                       "FusionGAN/Train_LLVIP_vi": "LLVIP/train_samples/vi"},
                      "bupt-ai-cz/LLVIP @ 60cdc80 FusionGAN/Train_LLVIP_{ir,vi} (sample pairs only)"),
        homepage="https://bupt-ai-cz.github.io/LLVIP/",
        licence="non-commercial research and teaching only; cite LLVIP",
        aliases=("llvip_train",),
        note="training pairs (teacher/student training, detection); the full set comes from the homepage"),
    "DEMO": DatasetSpec(
        "DEMO", "synthetic", 0, "none (built-in synthetic demo; NOT the paper's data)",
        layouts=(("DEMO/ir", "DEMO/vi"),),
        source=Source(None, None, {}, "generated by mmdrfuse.demo"),
        aliases=("demo", "synthetic"),
        note="procedurally generated warm targets on a textured scene; for smoke runs only"),
}

PAPER_DATASETS = ("MSRS", "LLVIP", "RoadScene", "MRI-SPECT", "MRI-PET")


def get(name: str) -> DatasetSpec:
    """Registry entry by name or alias (case-insensitive); unknown names fail with a 'did you mean'."""
    if name in REGISTRY:
        return REGISTRY[name]
    low = name.lower().replace("_", "-")
    for spec in REGISTRY.values():
        if low == spec.name.lower() or low in (a.lower().replace("_", "-") for a in spec.aliases):
            return spec
    from mmdrfuse.names import unknown

    raise unknown("data set", name, REGISTRY)


# ------------------------------------------------------------------------------------------------------ lookup
@dataclass(frozen=True)
class Located:
    """A data set found under a data root."""

    spec: DatasetSpec
    root: Path
    ir_dir: Path
    vis_dir: Path
    n_pairs: int

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def short(self) -> bool:
        """Fewer pairs than the paper's test split (the data set is used, and flagged)."""
        return self.spec.paper_pairs > 0 and self.n_pairs < self.spec.paper_pairs

    @property
    def flag(self) -> str | None:
        """The warning every report using this data set prints, or None."""
        if self.spec.kind == "synthetic":
            return (f"{self.name}: synthetic demo images generated by mmdrfuse.demo, NOT the paper's data; "
                    "numbers are not comparable with the paper")
        if self.short:
            return (f"{self.name}: only {self.n_pairs} of the paper's {self.spec.paper_pairs} test pairs found "
                    f"({self.ir_dir.relative_to(self.root).parent}); values are not comparable with the paper's")
        return None


# The same as mmdrfuse.images.IMAGE_EXTENSIONS (a test checks), repeated so that listing data does not import torch.
_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _count_pairs(ir_dir: Path, vis_dir: Path) -> int:
    def stems(d: Path) -> set[str]:
        return {p.stem for p in d.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_EXTENSIONS
                and not p.name.startswith(".")}

    return len(stems(ir_dir) & stems(vis_dir))


def find(name: str, data_root: str | os.PathLike | None = None) -> Located | None:
    """The data set under the resolved data root (first layout present with at least one pair), or None."""
    spec = get(name)
    root = paths.data_root(data_root)
    for ir_rel, vis_rel in spec.layouts:
        ir_dir, vis_dir = root / ir_rel, root / vis_rel
        if ir_dir.is_dir() and vis_dir.is_dir():
            n = _count_pairs(ir_dir, vis_dir)
            if n:
                return Located(spec, root, ir_dir, vis_dir, n)
    return None


def locate(name: str, data_root: str | os.PathLike | None = None) -> Located:
    """Like :func:`find` but raises a one-line :class:`MMDRFuseError` saying how to get the data."""
    found = find(name, data_root)
    if found is not None:
        return found
    spec = get(name)
    root = paths.data_root(data_root)
    looked = " or ".join(f"{a}+{b}" for a, b in spec.layouts)
    how = (f"run 'mmdrfuse data download {spec.name}'" if spec.source.url else
           "run 'mmdrfuse data demo'" if spec.kind == "synthetic" else f"get it from {spec.homepage}")
    raise MMDRFuseError(f"data set {spec.name} not found under {root} (looked for {looked}); {how}, "
                        f"or point --data-root / ${paths.DATA_ENV} at a folder holding it")


def available(data_root: str | os.PathLike | None = None, names=PAPER_DATASETS) -> list[Located]:
    """The data sets among ``names`` found under the data root."""
    return [f for f in (find(n, data_root) for n in names) if f is not None]


# ---------------------------------------------------------------------------------------------------- download
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
        for extra in spec.extras:
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


# ---------------------------------------------------------------------------------------------------------- CLI
def add_arguments(p) -> None:
    import argparse

    root_help = f"data folder (default: ${paths.DATA_ENV}, else {paths.cache_dir() / 'data'})"
    p.add_argument("--data-root", default=None, help=root_help)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    lst = sub.add_parser("list", help="list the data sets, their paper counts and what is found")
    d = sub.add_parser("download", help="download data sets from their public sources")
    d.add_argument("names", nargs="+", help=f"data set names ({', '.join(PAPER_DATASETS)}) or 'all'")
    d.add_argument("--url", default=None, help="archive address overriding the registry (one data set)")
    d.add_argument("--sha256", default=None, help="expected sha256 of the archive; a mismatch is refused")
    d.add_argument("--force", action="store_true", help="download again even when present")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    m = sub.add_parser("demo", help="write the built-in synthetic demo pairs (NOT the paper's data)")
    m.add_argument("--pairs", type=int, default=None, help="number of pairs (default: the demo's default)")
    for q in (lst, d, m):  # also accepted after the action; SUPPRESS keeps the value given before it
        q.add_argument("--data-root", default=argparse.SUPPRESS, help=root_help)


RESUME_HINT = "a partial download is kept beside its target: rerun the same command to resume it"


def run(args) -> int:
    from mmdrfuse.atomic import check_out_dir

    if args.action == "list":
        root = paths.data_root(args.data_root)
        print(f"data root: {root}")
        for spec in REGISTRY.values():
            f = find(spec.name, root)
            status = "missing" if f is None else ("FLAGGED" if f.flag else "ok")
            where = (f"{f.ir_dir.relative_to(root)} + {f.vis_dir.relative_to(root)}" if f
                     else " | ".join(f"{a} + {b}" for a, b in spec.layouts))
            found = f.n_pairs if f else 0
            print(f"{spec.name:12s} {spec.kind:9s} paper {spec.paper_pairs:4d}  found {found:4d}  {status:8s} {where}")
            if f is not None and f.flag:
                print(f"             ! {f.flag}")
        return 0
    if args.action in ("download", "demo"):
        check_out_dir(paths.data_root(args.data_root), "data root")
    if args.action == "download":
        names = list(PAPER_DATASETS) if args.names == ["all"] else args.names
        for f in download(names, args.data_root, url=args.url, sha256=args.sha256, force=args.force,
                          progress=not args.quiet):
            print(f"{f.name}: {f.n_pairs} pairs at {f.ir_dir.parent}" + (f"  ! {f.flag}" if f.flag else ""))
        return 0
    if args.action == "demo":
        from mmdrfuse import demo

        if args.pairs is not None and args.pairs < 1:
            raise MMDRFuseError(f"--pairs {args.pairs}: give at least 1")
        kw = {} if args.pairs is None else {"n_pairs": args.pairs}
        out = demo.write_demo(paths.data_root(args.data_root), **kw)
        print(f"synthetic demo pairs written to {out} (NOT the paper's data)")
        return 0
    raise MMDRFuseError(f"unknown action {args.action!r}")
