"""Provenance: the record written beside every result (command, profile, git commit, date, machine, data, weights,
flags, notes) and the run's DEMO state (:func:`run_context`)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from contextvars import ContextVar
from pathlib import Path
from typing import Sequence


def git_commit(repo: str | os.PathLike | None = None) -> str | None:
    """``git rev-parse HEAD`` of the repository (read-only), or None outside git / before the first commit."""
    from mmdrfuse.paths import repo_root

    try:
        r = subprocess.run(["git", "-C", str(repo or repo_root()), "rev-parse", "HEAD"], capture_output=True,
                           text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout.strip() if r.returncode == 0 and r.stdout.strip() else None


def git_dirty(repo: str | os.PathLike | None = None) -> bool | None:
    """Whether tracked files outside results/ differ from the commit (the code that made a result is then not
    exactly the commit's). Results being rewritten, as every run does, do not count."""
    from mmdrfuse.paths import repo_root

    try:
        r = subprocess.run(["git", "-C", str(repo or repo_root()), "status", "--porcelain", "--untracked-files=no",
                            "--", ".", ":(exclude)results"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(r.stdout.strip()) if r.returncode == 0 else None


def machine() -> dict:
    """What the numbers were measured on."""
    import torch

    from mmdrfuse.memory import malloc_policy

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "malloc": malloc_policy()}
    return info


DEMO_FLAG = ("DEMO: computed on the built-in synthetic demo set (mmdrfuse.demo), NOT on the paper's data; the numbers "
             "only show that the pipeline runs")
_RUN: ContextVar[dict] = ContextVar("mmdrfuse_run", default={})


@contextlib.contextmanager
def run_context(*, demo: bool = False, downloads: Sequence[dict] = ()):
    """Within it, every :func:`provenance` record says whether the run is a DEMO (and is flagged so in every table
    and figure) and lists the files this run downloaded (address and sha256)."""
    token = _RUN.set({"demo": bool(demo), "downloads": list(downloads)})
    try:
        yield
    finally:
        _RUN.reset(token)


def is_demo() -> bool:
    """Whether the current run is on the synthetic demo set (see :func:`run_context`)."""
    return bool(_RUN.get().get("demo"))


def real_results_in(folder: str | os.PathLike) -> Path | None:
    """A provenance file in ``folder`` that does not come from a demo run (so the folder holds real-data results), or
    None. Demo numbers must never be written beside such files."""
    folder = Path(folder)
    for p in [*sorted(folder.glob("*.provenance.json")), folder / "figures" / "figures.json"]:
        if not p.is_file():
            continue
        try:
            demo = json.loads(p.read_text(encoding="utf-8")).get("demo") is True
        except (OSError, ValueError, AttributeError):
            demo = False
        if not demo:
            return p
    return None


def provenance(target: str, *, profile: str, command: str | None = None, data: dict | None = None,
               weights: dict | None = None, flags: Sequence[str] = (), notes: Sequence[str] = (),
               **extra) -> dict:
    """The provenance record written beside every result: how to regenerate it and what it was made from.

    In a demo run (:func:`run_context`) it has ``"demo": true`` and the DEMO flag first; files downloaded by the run
    are listed under ``downloads``."""
    run = _RUN.get()
    if run.get("demo"):
        flags = [DEMO_FLAG, *flags]
        extra = {**extra, "demo": True}
    if run.get("downloads"):
        extra = {**extra, "downloads": list(run["downloads"])}
    return {
        "target": target,
        "command": command or " ".join([Path(sys.executable).name, *sys.argv]),
        "profile": profile,
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "data": data or {},
        "weights_sha256": weights or {},
        "flags": list(flags),
        "notes": list(notes),
        **extra,
    }

