"""Compiling and caching the suite's small C kernels (the fused student in :mod:`mmdrfuse.fast`, the per-pixel
metric terms in :mod:`mmdrfuse.metrics._native`).

A kernel is C source (a file under ``mmdrfuse/csrc/`` with its headers, or a string), compiled on first use with the system C compiler (``$CC``, else
``cc``/``gcc``/``clang``) into ``<user cache>/mmdrfuse/kernels`` (or ``$MMDRFUSE_KERNEL_DIR``) under a name keyed by
a hash of source, flags, compiler version and platform, written atomically, and loaded with :mod:`ctypes`: no torch
headers, pybind or ninja, so the first call costs ~2 s and later ones nothing. Kernels are built with ``-fopenmp``
when torch itself uses OpenMP, so that they bind to torch's libgomp (same soname, loaded first) and run on torch's
thread team; :func:`load_library` checks that no second OpenMP runtime came with them. ``MMDRFUSE_FAST=0`` turns
every kernel off (the callers then take their plain torch paths).
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path

import torch

from mmdrfuse.paths import cache_dir

FAST_ENV = "MMDRFUSE_FAST"  # set to 0 to disable the C kernels (plain torch paths everywhere)
CFLAGS = ["-O3", "-std=gnu11", "-fPIC", "-shared",  # no -ffast-math (IEEE NaN/inf), no -march=native (portable)
          "-Wall", "-Wextra",
          "-Wno-psabi"]  # psabi: GCC's note that 32-byte vectors in *static* functions of the AVX2 build pass
                         # differently from the portable build; no such function crosses the library's ABI
CSRC = Path(__file__).resolve().parent / "csrc"  # the C sources of the kernels


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


def source_text(filename: str) -> str:
    """A kernel's C file under :data:`CSRC` with the local headers it includes, as one translation unit's text
    (the build hash covers all of it, so editing a header rebuilds)."""
    main = CSRC / filename
    if not main.is_file():
        raise RuntimeError(f"kernel source {main} is missing from the installed package")
    return main.read_text()


def _build(name: str, src: str, force: bool, flags: list[str]) -> Path:
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set $CC or install gcc)")
    headers = "".join(p.read_text() for p in sorted(CSRC.glob("*.h")))
    key = hashlib.sha256("\0".join([src, headers, " ".join(flags), compiler_version(cc), platform.machine(),
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
        proc = subprocess.run([cc, *flags, f"-I{CSRC}", str(c_file), "-o", str(tmp_lib)], capture_output=True,
                              text=True, timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"compiling the {name} kernel with {cc} failed:\n{proc.stderr[-2000:]}")
        if proc.stderr.strip():  # -Wall -Wextra: the sources are kept warning-free, so say so when they are not
            warnings.warn(f"compiling the {name} kernel: {proc.stderr.strip()[:500]}", RuntimeWarning, stacklevel=2)
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


class Kernel:
    """One C library, built and loaded on first use (thread-safe), shared by every caller in the process.

    ``Kernel(name, filename, signatures)``: ``filename`` under :data:`CSRC`; ``signatures`` maps each exported
    function to ``(argtypes, restype)``. :meth:`load` returns the ctypes library or None (``error`` says why:
    disabled, no compiler, compile error); ``openmp`` is True when its threads run on torch's OpenMP team.
    """

    def __init__(self, name: str, filename: str, signatures: dict[str, tuple[list, object]],
                 openmp_symbol: str = "mmdr_openmp"):
        self.name, self.filename, self.signatures = name, filename, signatures
        self.openmp_symbol = openmp_symbol  # an exported int f(void): 1 when built with OpenMP
        self.lib: ctypes.CDLL | None = None
        self.error: str | None = None
        self.openmp = False
        self._warned = False
        self._lock = threading.Lock()

    def build(self, force: bool = False, openmp: bool = True) -> Path:
        """Compile into the kernel cache (see :func:`build_library`) and return the library's path."""
        return build_library(self.name, source_text(self.filename), force=force, openmp=openmp)

    def load(self) -> ctypes.CDLL | None:
        if self.lib is not None or self.error is not None:
            return self.lib
        with self._lock:
            if self.lib is not None or self.error is not None:
                return self.lib
            if disabled():
                self.error = f"disabled by {FAST_ENV}=0"
                return None
            try:
                try:
                    lib, own_runtime = load_library(self.build())
                except OSError:  # a damaged cached library: rebuild once
                    lib, own_runtime = load_library(self.build(force=True))
            except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                self.error = str(exc) or type(exc).__name__
                return None
            for fn, (argtypes, restype) in self.signatures.items():
                getattr(lib, fn).argtypes = argtypes
                getattr(lib, fn).restype = restype
            omp = getattr(lib, self.openmp_symbol, None)
            self.openmp = bool(omp and omp()) and not own_runtime
            self.lib = lib
        return self.lib

    def warn_once(self, what: str) -> None:
        """One RuntimeWarning per process that ``what`` runs without the kernel, with the reason."""
        if not self._warned and self.error is not None:
            self._warned = True
            warnings.warn(f"{what}: {self.error.splitlines()[0]}", RuntimeWarning, stacklevel=3)


@contextlib.contextmanager
def num_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (None: unchanged), then restore the process's setting."""
    before = torch.get_num_threads()
    if n is None or n == before:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
