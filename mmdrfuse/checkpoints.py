"""Checkpoints: the authors' files, the project's own format, and a registry of named weights.

Two formats load:
- the authors' checkpoints (``*.model``): plain state_dicts (``torch.load``); the architecture is inferred from the
  tensor shapes (student of any hidden width, or the teacher);
- the project's format: ``{"format": "mmdrfuse-checkpoint", "version": 1, "config": {...}, "state_dict": {...},
  "provenance": {...}, "sha256": <sha256 of the serialised weights>}``, checked on load.

Named weights: ``official-student`` / ``official-teacher`` are looked up under ``<weights root>/official/`` (see
:mod:`mmdrfuse.paths`) and, for users online, downloaded from the authors' public repository with a pinned sha256.
Weights trained by this project (e.g. ``mmdrfuse-cpu``) ship inside the package (they are < 2 KB).
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmdrfuse import paths
from mmdrfuse.atomic import atomic_path
from mmdrfuse.download import sha256_file
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.names import unknown
from mmdrfuse.models import Student, StudentConfig, Teacher, build, config_dict

FORMAT = "mmdrfuse-checkpoint"
_UPSTREAM = "https://raw.githubusercontent.com/yanglinDeng/MMDRFuse/c9e5014/pretrained_models"  # pinned commit
PACKAGE_WEIGHTS = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class NamedWeights:
    """One entry of the weights registry."""

    name: str
    kind: str  # "student" | "teacher"
    relpath: str  # path under the weights root, or under the package's weights/ folder when ``packaged``
    sha256: str | None
    url: str | None = None
    packaged: bool = False
    description: str = ""

    def local_path(self, weights_root: str | os.PathLike | None = None) -> Path:
        base = PACKAGE_WEIGHTS if self.packaged else paths.weights_root(weights_root)
        return base / self.relpath


WEIGHTS: dict[str, NamedWeights] = {
    "official-student": NamedWeights(
        "official-student", "student", "official/student.model",
        "e5ad5bab796f4480dbbc35a8f6f63e69ba3ccd1842476d2c2453ca1aca6eb17c", f"{_UPSTREAM}/student.model",
        description="the authors' published 113-parameter student (github.com/yanglinDeng/MMDRFuse @ c9e5014)"),
    "official-teacher": NamedWeights(
        "official-teacher", "teacher", "official/teacher.model",
        "6a4f86a0a543ceb1af93d9b1e955e9108ee35a5014710c6a2b0e071cdc8e25b5", f"{_UPSTREAM}/teacher.model",
        description="the authors' published 556,489-parameter teacher"),
}


def _register_packaged() -> None:
    """Register every checkpoint shipped in ``mmdrfuse/weights/*.pt`` under its file stem (e.g. mmdrfuse-cpu)."""
    for p in sorted(PACKAGE_WEIGHTS.glob("*.pt")):
        if p.stem not in WEIGHTS:
            WEIGHTS[p.stem] = NamedWeights(p.stem, "student", p.name, None, packaged=True,
                                           description="trained by this project (see results/training/)")


_register_packaged()


# ---------------------------------------------------------------------------------------------------- hashing
def sha256_state_dict(state_dict: dict[str, torch.Tensor]) -> str:
    """A format-independent hash of the weights: key names, dtypes, shapes and raw bytes, in key order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().to("cpu").contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------- download
def download(url: str, dest: str | os.PathLike, sha256: str | None = None, *, progress: bool = True,
             timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` with the suite's downloader (:func:`mmdrfuse.download.fetch`: sha256 checked, a
    mismatch leaves nothing behind, an interrupted download resumes)."""
    from mmdrfuse.download import fetch

    return fetch(url, dest, sha256, progress=progress, timeout=timeout, quiet=not progress).path


# ----------------------------------------------------------------------------------------------------- loading
def _infer_model(state_dict: dict[str, torch.Tensor]) -> nn.Module:
    keys = set(state_dict)
    if {"conv1.1.weight", "conv2.1.weight"} <= keys and "conv3.1.weight" not in keys:
        w1 = state_dict["conv1.1.weight"]
        if w1.dim() != 4:
            raise MMDRFuseError(f"student conv1 weight has shape {tuple(w1.shape)}, not hidden x 2 x 3 x 3")
        return Student(StudentConfig(hidden=int(w1.shape[0]), in_channels=int(w1.shape[1])))
    if "conv00.1.weight" in keys:
        return Teacher()
    raise MMDRFuseError("state_dict has neither the student's (conv1, conv2) nor the teacher's (conv1 ... conv00) keys")


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling/zip error means a corrupt or foreign file
        raise MMDRFuseError(f"{path}: not a readable torch checkpoint ({exc.__class__.__name__}); "
                            "re-download it or pass another file") from None


def load_state(path: str | os.PathLike) -> tuple[nn.Module, dict]:
    """Build the model a checkpoint file describes and load its weights; returns ``(model, info)``."""
    path = Path(path)
    if not path.is_file():
        raise MMDRFuseError(f"{path}: checkpoint not found")
    obj = _read(path)
    info: dict[str, Any] = {"path": str(path), "file_sha256": sha256_file(path)}
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        sd = obj["state_dict"]
        if obj.get("sha256") and sha256_state_dict(sd) != obj["sha256"]:
            raise MMDRFuseError(f"{path}: weights do not match the sha256 stored in the checkpoint (corrupt file)")
        cfg = dict(obj["config"])
        model = build(cfg.pop("kind"), **cfg)
        info["provenance"] = obj.get("provenance", {})
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        sd = obj
        model = _infer_model(sd)
    else:
        raise MMDRFuseError(f"{path}: neither an MMDRFuse state_dict nor a project checkpoint")
    try:
        model.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = next((ln.strip() for ln in first[1:] if ln.strip()), first[0] if first else "")
        raise MMDRFuseError(f"{path}: checkpoint does not fit the {type(model).__name__} ({detail[:200]})") from None
    _check_fusable(model, path)
    bad = [k for k, t in sd.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        raise MMDRFuseError(f"{path}: weights hold NaN or inf values ({', '.join(bad[:3])}); the checkpoint is corrupt "
                            "or came from a diverged training run")
    info["weights_sha256"] = sha256_state_dict(sd)
    info["config"] = config_dict(model)
    return model.eval(), info


def _check_fusable(model: nn.Module, path: Path) -> None:
    """Only networks that take the (IR, visible) pair fuse: a student with another input width is refused here,
    not by a torch error on the first image."""
    if isinstance(model, Student) and model.config.in_channels != 2:
        raise MMDRFuseError(f"{path}: student takes {model.config.in_channels} input channel(s); a fusion network "
                            "takes 2 (IR/MRI and visible/PET/SPECT)")


def verify_named(name: str, path: Path, model: nn.Module | None = None) -> None:
    """A named file must be what its name says: the pinned sha256 (where one is known) and the right network kind."""
    entry = WEIGHTS.get(str(name))
    if entry is None:
        return
    if entry.sha256 and sha256_file(path) != entry.sha256:
        raise MMDRFuseError(f"{path}: not the file named {name!r} (sha256 differs from the pinned {entry.sha256[:12]}...); "
                            f"replace it: mmdrfuse weights download {name}")
    if model is not None and type(model).__name__.lower() != entry.kind:
        raise MMDRFuseError(f"{path}: holds a {type(model).__name__.lower()}, but {name!r} is a {entry.kind}; "
                            "the file is misplaced")


def resolve(name_or_path: str | os.PathLike, weights_root: str | os.PathLike | None = None, *,
            allow_download: bool = False) -> Path:
    """Named weights or a path -> a local file (downloading named weights only when ``allow_download``)."""
    s = str(name_or_path)
    if s in WEIGHTS:
        entry = WEIGHTS[s]
        p = entry.local_path(weights_root)
        if p.is_file():
            return p
        if allow_download and entry.url:
            return download(entry.url, p, entry.sha256)
        where = f" or download it from {entry.url}" if entry.url else ""
        raise MMDRFuseError(f"weights {s!r} not found at {p}; set MMDRFUSE_WEIGHTS / --weights-root to the folder "
                            f"holding official/{Path(entry.relpath).name}{where} (mmdrfuse weights download {s})")
    p = Path(s).expanduser()
    if p.suffix or os.sep in s or p.exists():
        if not p.is_file():
            raise MMDRFuseError(f"{p}: checkpoint not found")
        return p
    raise unknown("weights", s, WEIGHTS)


def load_model(name_or_path: str | os.PathLike = "official-student", device: str | torch.device = "cpu",
               weights_root: str | os.PathLike | None = None, *, with_info: bool = False,
               allow_download: bool = False):
    """Load named weights or a checkpoint file into the right network, in eval mode, on ``device``."""
    path = resolve(name_or_path, weights_root, allow_download=allow_download)
    model, info = load_state(path)
    verify_named(str(name_or_path), path, model)
    info["name"] = str(name_or_path)
    model = model.to(device)
    return (model, info) if with_info else model


def save_checkpoint(path: str | os.PathLike, model: nn.Module, provenance: dict | None = None) -> Path:
    """Save ``model`` in the project's format (state_dict + config + provenance + sha256), atomically."""
    sd = {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    obj = {"format": FORMAT, "version": 1, "config": config_dict(model), "state_dict": sd,
           "provenance": dict(provenance or {}), "sha256": sha256_state_dict(sd)}
    buf = io.BytesIO()
    torch.save(obj, buf)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getvalue())
    return path


# ------------------------------------------------------------------------------------------------------- CLI
def _status(name: str, path: Path) -> str:
    """``found``, ``missing`` or ``WRONG`` (a file that fails the sha256 / architecture check) for ``weights list``."""
    if not path.is_file():
        return "missing"
    try:
        model, _ = load_state(path)
        verify_named(name, path, model)
    except MMDRFuseError:
        return "WRONG"
    return "found"


def add_arguments(p) -> None:
    import argparse

    root_help = "weights folder (default: $MMDRFUSE_WEIGHTS or the cache)"
    p.add_argument("--weights-root", default=None, help=root_help)
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    lst = sub.add_parser("list", help="list named weights and where they are found")
    d = sub.add_parser("download", help="download named weights into the weights root")
    d.add_argument("names", nargs="+", help="named weights (see 'list')")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    for q in (lst, d):  # also accepted after the action, as for 'mmdrfuse data'; SUPPRESS keeps an earlier value
        q.add_argument("--weights-root", default=argparse.SUPPRESS, help=root_help)


RESUME_HINT = "a partial download is kept beside its target: rerun the same command to resume it"


def run(args) -> int:
    if args.action == "list":
        for n, e in WEIGHTS.items():
            p = e.local_path(args.weights_root)
            print(f"{n:18s} {e.kind:8s} {_status(n, p):10s} {p}  {e.description}")
        return 0
    from mmdrfuse.atomic import check_out_dir

    for n in args.names:
        if n not in WEIGHTS:
            resolve(n)  # raises with a did-you-mean
    check_out_dir(paths.weights_root(args.weights_root), "weights root")
    for n in args.names:
        e = WEIGHTS[n]
        p = e.local_path(args.weights_root)
        if p.is_file() and (e.sha256 is None or sha256_file(p) == e.sha256):
            print(f"{n}: already present at {p}")
            continue
        if not e.url:
            raise MMDRFuseError(f"{n}: no public address known; it ships with the package")
        download(e.url, p, e.sha256, progress=not getattr(args, "quiet", False))
        print(f"{n}: saved to {p}")
    return 0
