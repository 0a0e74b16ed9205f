"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

Temporary files are named ``.<target name>.tmp-<pid>-<random><suffix>``, so that a later run can tell the leftovers
of a killed process (SIGKILL skips every clean-up) from the files of a live one: :func:`remove_stale_temps`.
Output locations are checked before any work starts: :func:`check_out_dir` and :func:`check_out_file`.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from mmdrfuse.lock import pid_alive


TMP_TAG = ".tmp-"
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)-[A-Za-z0-9_]+")


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_path` in ``folder`` whose writing process has died.

    Only this machine's processes can be checked: call it on local folders (a shared network folder written by
    another host could hold live temp files of a same-numbered pid, which this would wrongly remove).
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP_RE.match(p.name)
        if m and int(m["pid"]) != os.getpid() and not pid_alive(int(m["pid"])) and p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


def _first_existing(path: Path) -> Path:
    p = path
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_out_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Fail with one line, before any work, if ``path`` cannot become a writable folder (exists as a file, lies under
    a file, or its nearest existing parent is not writable)."""
    from mmdrfuse.errors import MMDRFuseError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise MMDRFuseError(f"{path}: the {what} is an existing file; give a folder")
    base = _first_existing(path.absolute())
    if not base.is_dir():
        raise MMDRFuseError(f"{path}: the {what} lies under {base}, which is a file, not a folder")
    try:  # a real probe: os.access says yes to root even on a read-only file system
        fd, probe = tempfile.mkstemp(prefix=f".probe{TMP_TAG}{os.getpid()}-", dir=base)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise MMDRFuseError(f"{path}: the {what} is not writable ({exc.strerror} in {base})") from None
    return path


def check_out_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Fail with one line, before any work, if a file cannot be written at ``path``."""
    from mmdrfuse.errors import MMDRFuseError

    path = Path(path)
    if path.is_dir():
        raise MMDRFuseError(f"{path}: the {what} is an existing folder; give a file name")
    base = _first_existing(path.absolute().parent)
    if not base.is_dir():
        raise MMDRFuseError(f"{path}: the {what} lies under {base}, which is a file, not a folder")
    check_out_dir(path.parent, what=f"folder of the {what}")
    if path.exists() and not os.access(path, os.W_OK):
        raise MMDRFuseError(f"{path}: the {what} exists and is not writable")
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it onto ``target``, else delete it.

    ``suffix`` defaults to the target's suffix so that writers which infer the format from the name
    (PIL, pandas) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sfx = suffix if suffix is not None else target.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}{TMP_TAG}{os.getpid()}-", suffix=sfx, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; results should get the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(obj, indent=1, sort_keys=False, default=str) + "\n")


def write_with(target: str | os.PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)
