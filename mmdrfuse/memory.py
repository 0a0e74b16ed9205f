"""Allocator setting for the suite's command-line entry points (a process-wide choice, never made on import).

The metric kernels and the fused forward pass work on many short-lived float64 maps of 2-20 MB. With glibc's default
malloc, blocks that large are often served by fresh ``mmap`` calls, or carved from heap memory that was just
returned to the kernel, so every map is page-faulted and zeroed again: measured on a 640 x 480 pair, the twelve
metrics took 95-106 ms per pair that way against 73-74 ms with freed memory kept (2 threads; docs/metrics.md).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve blocks below ``mmap_threshold`` from the heap and to keep
up to ``trim_threshold`` bytes of freed heap instead of returning it, so that the next map reuses warm pages. The
cost is a resident size that stays near its peak instead of shrinking between batches. It is called by the
``mmdrfuse`` command, ``python -m benchmarks.run``, the speed benchmarks and the ablation scripts, never by the
library functions themselves (a library must not change its host process). ``MMDRFUSE_MALLOC=default`` turns it off.
It does nothing on non-glibc systems.
"""
from __future__ import annotations

import ctypes
import os
import platform

MALLOC_ENV = "MMDRFUSE_MALLOC"  # "default" (or 0/off) keeps glibc's own policy

_M_TRIM_THRESHOLD = -1  # glibc <malloc.h> parameter numbers
_M_MMAP_THRESHOLD = -3

_state = {"applied": None}  # what keep_freed_memory() did in this process (for provenance), None = not called


def keep_freed_memory(mmap_threshold: int = 256 << 20, trim_threshold: int = 1 << 30) -> str:
    """Apply the setting (idempotent) and return a one-line description of the allocator policy now in force."""
    if _state["applied"] is not None:
        return _state["applied"]
    if os.environ.get(MALLOC_ENV, "").strip().lower() in {"default", "0", "off", "no", "false"}:
        desc = f"glibc default (disabled by {MALLOC_ENV})"
    elif platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        desc = "system default (not glibc)"
    else:
        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            mallopt = None
        ok = False
        if mallopt is not None:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            # older glibc refuse mmap thresholds above 32 MB: fall back to that cap
            for mt in (mmap_threshold, min(mmap_threshold, 32 << 20)):
                if mallopt(_M_MMAP_THRESHOLD, mt) == 1:
                    mmap_threshold = mt
                    ok = mallopt(_M_TRIM_THRESHOLD, trim_threshold) == 1
                    break
        desc = (f"glibc, freed memory kept (M_MMAP_THRESHOLD {mmap_threshold >> 20} MB, "
                f"M_TRIM_THRESHOLD {trim_threshold >> 20} MB)") if ok else "glibc default (mallopt refused)"
    _state["applied"] = desc
    return desc


def malloc_policy() -> str:
    """The allocator policy of this process as :func:`keep_freed_memory` left it (for provenance files)."""
    return _state["applied"] or "allocator default (keep_freed_memory not called)"
