"""The roofline bound of the student's forward on this machine: per pair, max(bytes moved / copy bandwidth, FLOPs /
matmul FLOP/s), both measured here (best of several short runs), with the current torch thread count and with one
thread. Used by ``python -m benchmarks.speed_fuse`` (its ``x_bound`` column and ``roofline_*`` rows)."""
from __future__ import annotations

import time

import torch

from mmdrfuse.models import Student


def copy_bandwidth(mib: int = 64, repeats: int = 9) -> float:
    """Best bytes/s of ``dst.copy_(src)`` over ``mib`` MiB (read + write bytes counted)."""
    n = mib * 1024 * 1024 // 4
    src, dst = torch.rand(n), torch.empty(n)
    dst.copy_(src)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        dst.copy_(src)
        best = min(best, time.perf_counter() - t0)
    return 2 * n * 4 / best


def matmul_flops(n: int = 1024, repeats: int = 15) -> float:
    """Best float32 FLOP/s of an n x n ``torch.mm`` (2 n^3 FLOPs)."""
    a, b = torch.rand(n, n), torch.rand(n, n)
    c = torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=c)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best


def roofline(model: Student, h: int, w: int, copy_mib: int = 64, mm_n: int = 1024) -> dict:
    """The per-pair bound: max(memory time, compute time) from measured copy bandwidth and matmul FLOP/s.

    Measured with the current torch thread count (``*_ms``, ``bound_ms``) and with one thread (``*_1thread``, the
    reference for the single-thread estimate). Best of several short runs, so that a shared machine disturbs it less.
    """
    cin = model.config.in_channels
    bytes_moved = (cin + 1) * h * w * 4
    flops = 2 * model.macs(h, w)
    threads = torch.get_num_threads()
    bw, fl = copy_bandwidth(copy_mib), matmul_flops(mm_n)
    torch.set_num_threads(1)
    try:
        bw1, fl1 = copy_bandwidth(copy_mib), matmul_flops(mm_n)
    finally:
        torch.set_num_threads(threads)
    mem_ms, comp_ms = bytes_moved / bw * 1e3, flops / fl * 1e3
    mem1, comp1 = bytes_moved / bw1 * 1e3, flops / fl1 * 1e3
    return {"bytes_per_pair": bytes_moved, "flops_per_pair": flops, "threads": threads,
            "copy_bandwidth_GBps": bw / 1e9, "matmul_GFLOPps": fl / 1e9,
            "memory_ms": mem_ms, "compute_ms": comp_ms, "bound_ms": max(mem_ms, comp_ms),
            "copy_bandwidth_1thread_GBps": bw1 / 1e9, "matmul_1thread_GFLOPps": fl1 / 1e9,
            "memory_1thread_ms": mem1, "compute_1thread_ms": comp1, "bound_1thread_ms": max(mem1, comp1)}


def roofline_rows(roof: dict, h: int, w: int) -> list[dict]:
    """The bound as rows of results/speed_fuse.csv (``roofline_{memory,compute,bound}``, also ``_1thread``)."""
    rows = []
    for kind, suffix, nthreads in [(k, s, t) for s, t in (("", roof["threads"]), ("_1thread", 1))
                                   for k in ("memory", "compute", "bound")]:
        ms = roof[f"{kind}{suffix}_ms"]
        bw, fl = roof[f"copy_bandwidth{suffix}_GBps"], roof[f"matmul{suffix}_GFLOPps"]
        rows.append({"method": f"roofline_{kind}{suffix}", "batch": None, "height": h, "width": w,
                     "threads": nthreads, "ms_per_pair_median": ms, "mpix_per_s": h * w / (ms / 1e3) / 1e6,
                     "status": "bound",
                     "note": {"memory": f"{roof['bytes_per_pair'] / 1e6:.2f} MB at {bw:.1f} GB/s copy bandwidth",
                              "compute": f"{roof['flops_per_pair'] / 1e9:.4f} GFLOP at {fl:.1f} GFLOP/s (fp32 matmul)",
                              "bound": "max(memory, compute)"}[kind]})
    return rows
