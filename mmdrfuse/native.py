"""Compiling and caching the suite's small C kernels (the fused student in :mod:`mmdrfuse.fast`, the per-pixel
metric terms in :mod:`mmdrfuse.metrics._native`).

A kernel is C source held in a Python module, compiled on first use with the system C compiler (``$CC``, else
``cc``/``gcc``/``clang``) into ``<user cache>/mmdrfuse/kernels`` (or ``$MMDRFUSE_KERNEL_DIR``) under a name keyed by
a hash of source, flags, compiler version and platform, written atomically, and loaded with :mod:`ctypes`: no torch
headers, pybind or ninja, so the first call costs ~2 s and later ones nothing. Kernels are built with ``-fopenmp``
when torch itself uses OpenMP, so that they bind to torch's libgomp (same soname, loaded first) and run on torch's
thread team; :func:`load_library` checks that no second OpenMP runtime came with them. ``MMDRFUSE_FAST=0`` turns
every kernel off (the callers then take their plain torch paths).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from mmdrfuse.paths import cache_dir

FAST_ENV = "MMDRFUSE_FAST"  # set to 0 to disable the C kernels (plain torch paths everywhere)
CFLAGS = ["-O3", "-std=gnu11", "-fPIC", "-shared"]  # no -ffast-math (IEEE NaN/inf), no -march=native (portable)


def disabled() -> bool:
    """True when ``MMDRFUSE_FAST`` switches the kernels off."""
    return os.environ.get(FAST_ENV, "1").strip().lower() in {"0", "false", "no", "off"}


def compiler() -> str | None:
    """The C compiler to use: ``$CC``, else the first of cc, gcc, clang on the PATH; None when there is none."""
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def compiler_version(cc: str) -> str:
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout.splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def kernel_dir() -> Path:
    """Where compiled kernels are cached: ``$MMDRFUSE_KERNEL_DIR`` or ``<cache>/kernels``."""
    env = os.environ.get("MMDRFUSE_KERNEL_DIR")
    return Path(env).expanduser() if env else cache_dir() / "kernels"


def torch_uses_openmp() -> bool:
    return "parallel backend: OpenMP" in torch.__config__.parallel_info()


def build_library(name: str, src: str, force: bool = False, openmp: bool = True) -> Path:
    """Compile ``src`` into ``<kernel_dir>/<name>_<hash>.so`` (unless cached) and return its path.

    With ``openmp`` (and torch on OpenMP) it is built with ``-fopenmp`` first; when that fails (no libgomp to link,
    a compiler without OpenMP) it is built without. Raises ``RuntimeError`` when no C compiler is found or
    compilation fails.
    """
    if openmp and torch_uses_openmp():
        try:
            return _build(name, src, force, [*CFLAGS, "-fopenmp"])
        except RuntimeError:
            pass
    return _build(name, src, force, CFLAGS)


def _build(name: str, src: str, force: bool, flags: list[str]) -> Path:
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC or install gcc)")
    key = hashlib.sha256("\0".join([src, " ".join(flags), compiler_version(cc), platform.machine(),
                                    sys.platform]).encode()).hexdigest()[:16]
    out_dir = kernel_dir()
    lib_path = out_dir / f"{name}_{key}.so"
    if lib_path.exists() and not force:
        return lib_path
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        c_file = Path(tmp) / f"{name}.c"
        c_file.write_text(src)
        tmp_lib = Path(tmp) / lib_path.name
        proc = subprocess.run([cc, *flags, str(c_file), "-o", str(tmp_lib)], capture_output=True, text=True,
                              timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling the {name} kernel with {cc} failed:\n{proc.stderr[-2000:]}")
        os.replace(tmp_lib, lib_path)
    return lib_path


def openmp_runtimes() -> set[str] | None:
    """Paths of the OpenMP runtimes mapped into this process (Linux), or None where that cannot be read."""
    try:
        with open("/proc/self/maps") as fh:
            return {os.path.realpath(line.split()[-1]) for line in fh
                    if any(k in line.rsplit("/", 1)[-1] for k in ("libgomp", "libomp", "libiomp"))}
    except OSError:
        return None


def load_library(path: str | os.PathLike) -> tuple[ctypes.CDLL, bool]:
    """``(library, own_runtime)``: load a built kernel; ``own_runtime`` is True when loading it mapped an OpenMP
    runtime that was not there before, i.e. it did not bind to torch's (two thread teams would then compete for the
    cores, so its threads must not be used). Other libraries' private runtimes (scikit-learn vendors its own libgomp
    under another soname) do not matter: only what this library brings in counts. Assumed False where the process's
    mappings cannot be read."""
    before = openmp_runtimes()
    lib = ctypes.CDLL(str(path))
    after = openmp_runtimes()
    return lib, bool(before is not None and after is not None and after - before)
