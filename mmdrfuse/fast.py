"""Fast CPU inference for the MMDRFuse student: one fused, tiled C kernel (conv1 + ReLU + conv2 + tanh).

The straightforward ``Student.forward`` runs four full-image passes (reflection pad, conv, pad, conv) and, at
1024 x 1280, takes ~120 ms on a 2-core CPU although the work is only 0.28 GFLOP. This module computes exactly
the same function in a single pass that stays in cache:

* each hidden row ``relu(conv1)`` is computed once from three reflection-padded input rows held in a 4-slot ring,
  and each output row ``tanh(conv2)`` from three hidden rows held in another 4-slot ring, so only the input is read
  and only the output is written to memory;
* 8-wide SIMD through GCC vector extensions (an AVX2+FMA build selected at run time on x86-64, a portable build
  otherwise), with every column processed by the same vector code (row buffers are padded to a multiple of 64), so
  the result does not depend on the tiling or the thread count (deterministic);
* rows are cut into tiles and spread over ``torch.get_num_threads()`` Python threads (ctypes releases the GIL).

The C source is compiled once with the system C compiler (``$CC``, else ``cc``/``gcc``/``clang``; ~2 s) into
the user cache (``<cache>/kernels`` or ``$MMDRFUSE_KERNEL_DIR``, keyed by a hash of source, flags and compiler) and
loaded with ctypes: no torch headers, pybind or ninja, so the first call is fast. The C source is ``mmdrfuse/csrc/student.c`` (+ ``student_body.h``, included once
per instruction set). Without a compiler (or with
``MMDRFUSE_FAST=0``) everything falls back to the plain forward, with one warning. See docs/performance.md for
the measurements behind the choice.

Use :func:`accelerate` (what ``mmdrfuse fuse`` calls): for a :class:`~mmdrfuse.models.Student` it returns a
no-grad callable ``x -> out`` that takes the fast path on float32 CPU input and the plain forward otherwise; any
other model (including a Student whose structure the kernel does not implement, see :func:`implements`) is
returned unchanged. Outputs match ``Student.forward`` to ~2e-7 (tested to 1e-6).
"""
from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from mmdrfuse import native
from mmdrfuse.models import Student

_MIN_PIXELS_PER_THREAD = 1 << 17  # ~0.5 ms of kernel work; below that one thread runs the whole call

_p, _i, _f = ctypes.c_void_p, ctypes.c_int, ctypes.c_float
KERNEL = native.Kernel("mmdrfuse_student", "student.c", {
    "mmdr_student_rows": ([_p, _p, _i, _i, _i, _i, _p, _p, _p, _f, _i, _i, _i], _i),
    "mmdr_student_batch": ([_p, _p, _i, _i, _i, _i, _i, _p, _p, _p, _f, _i, _i, _i], _i),
    "mmdr_best_isa": ([], _i),
    "mmdr_openmp": ([], _i),
})


def build_kernel(force: bool = False, openmp: bool = True) -> Path:
    """Compile ``csrc/student.c`` into the kernel cache (atomically) and return the library's path (see
    :func:`mmdrfuse.native.build_library`: with OpenMP when possible, else without and the tiles go to Python
    threads). Raises ``RuntimeError`` when no C compiler is found or compilation fails."""
    return KERNEL.build(force=force, openmp=openmp)


def kernel_available() -> bool:
    """True when the C kernel is built and loaded (compiling it on first use)."""
    return KERNEL.load() is not None


def kernel_status() -> str:
    """One line for logs and benchmarks: which path the student will take and why."""
    lib = KERNEL.load()
    if lib is None:
        return f"plain forward (fast kernel unavailable: {KERNEL.error.splitlines()[0]})"
    return ("fused C kernel (" + ("avx2+fma" if lib.mmdr_best_isa() == 1 else "portable")
            + (", OpenMP threads" if KERNEL.openmp else ", Python threads") + ")")


def implements(model: nn.Module) -> bool:
    """Whether the kernel computes exactly ``model``: a :class:`Student` of the paper's structure (reflection pad,
    3x3 conv with bias, stride 1, no dilation or groups, ReLU; the same to one channel with tanh) and no change to
    its forward. Anything else (a subclass, another layer, another conv setting) takes the plain forward."""
    if type(model) is not Student:
        return False
    expect = ((nn.ReflectionPad2d, nn.Conv2d, nn.ReLU), (nn.ReflectionPad2d, nn.Conv2d, nn.Tanh))
    names = [n for n, _ in model.named_children()]
    if names != ["conv1", "conv2"]:
        return False
    for block, kinds in zip((model.conv1, model.conv2), expect):
        if len(block) != 3 or any(type(m) is not k for m, k in zip(block, kinds)):
            return False
        pad, conv = block[0], block[1]
        if tuple(pad.padding) != (1, 1, 1, 1) or conv.bias is None:
            return False
        if (conv.kernel_size, conv.stride, conv.padding, conv.dilation, conv.groups) != ((3, 3), (1, 1), (0, 0),
                                                                                         (1, 1), 1):
            return False
        if conv.padding_mode != "zeros":
            return False
    c1, c2 = model.conv1[1], model.conv2[1]
    return c2.out_channels == 1 and c2.in_channels == c1.out_channels and c1.in_channels == model.config.in_channels


# ---------------------------------------------------------------------------------------------------------------
# The fast student
# ---------------------------------------------------------------------------------------------------------------
class FastStudent:
    """Callable computing ``student(x)`` with the fused kernel (float32, CPU, inference only).

    Weights are read from ``student`` at every call, so later changes to the model are seen. Anything the kernel
    does not cover (other dtypes or devices, autograd, H or W < 2, a kernel that failed to build) goes to
    ``student.forward``, so the result is always the student's output.

    Args:
        student: a :class:`~mmdrfuse.models.Student` (any hidden width).
        threads: worker threads (default: ``torch.get_num_threads()`` at call time).
        rows_per_task: rows per work item (default: one per image on one thread, else ~4 tiles per thread and
            image, at least 16 rows; inputs under 2^17 pixels per thread use fewer threads).
        isa: force the kernel build, 0 = portable, 1 = AVX2+FMA (default: the best this CPU runs).
    """

    def __init__(self, student: Student, threads: int | None = None, rows_per_task: int | None = None,
                 isa: int | None = None):
        if not implements(student):
            raise TypeError(f"the fast kernel does not implement this {type(student).__name__} (only the paper's "
                            "two-layer student structure); use its plain forward")
        self.student = student
        self.threads = threads
        self.rows_per_task = rows_per_task
        self.isa = isa
        self._pool: ThreadPoolExecutor | None = None
        self._pool_size = 0

    # -- applicability -------------------------------------------------------------------------------------
    def _params(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.student
        return s.conv1[1].weight, s.conv1[1].bias, s.conv2[1].weight, s.conv2[1].bias

    def supports(self, x: torch.Tensor) -> bool:
        """Whether ``x`` takes the fast path (else the call falls back to the plain forward)."""
        params = self._params()
        if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.dtype == torch.float32 and x.device.type == "cpu"):
            return False
        if x.shape[1] != self.student.config.in_channels or x.shape[-2] < 2 or x.shape[-1] < 2 or x.numel() == 0:
            return False
        if any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params):
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
            return False
        if x.is_sparse or x.is_quantized:
            return False
        return KERNEL.load() is not None

    # -- call --------------------------------------------------------------------------------------------------
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self.supports(x):
            if isinstance(x, torch.Tensor) and x.dtype == torch.float32:
                KERNEL.warn_once("mmdrfuse.fast: using the plain forward")
            return self.student(x)
        return self._run(x)

    def _executor(self, n: int) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_size != n:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
            self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="mmdrfuse-fast")
            self._pool_size = n
        return self._pool

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        lib = KERNEL.load()
        isa = lib.mmdr_best_isa() if self.isa is None else min(int(self.isa), lib.mmdr_best_isa())
        w1, b1, w2, b2 = (p.detach().contiguous() for p in self._params())
        x = x.detach().contiguous()
        n, cin, h, w = x.shape
        c = w1.shape[0]
        out = torch.empty((n, 1, h, w), dtype=torch.float32)
        threads = max(1, self.threads or torch.get_num_threads())
        if self.threads is None:  # small inputs: thread hand-off costs more than it saves
            threads = max(1, min(threads, n * h * w // _MIN_PIXELS_PER_THREAD))
        xp, op, isz = x.data_ptr(), out.data_ptr(), cin * h * w * 4
        args = (w1.data_ptr(), b1.data_ptr(), w2.data_ptr(), ctypes.c_float(float(b2.item())))
        if KERNEL.openmp:  # one call; tiles handed out dynamically by torch's OpenMP threads
            tiles = 1 if threads == 1 else -(-2 * threads // n)  # ~2 tiles per thread when the batch is small
            rows = self.rows_per_task or max(16, -(-h // tiles))
            if lib.mmdr_student_batch(xp, op, n, cin, h, w, c, *args, rows, threads, isa):
                raise MemoryError("mmdrfuse.fast: the kernel could not allocate its row buffers")
            return out
        rows = self.rows_per_task or (h if threads == 1 else max(16, -(-h // (4 * threads))))
        tasks = [(i, r0, min(h, r0 + rows)) for i in range(n) for r0 in range(0, h, rows)]

        def job(task: tuple[int, int, int]) -> int:
            i, r0, r1 = task
            return lib.mmdr_student_rows(xp + i * isz, op + i * h * w * 4, cin, h, w, c, *args, r0, r1, isa)

        if threads == 1 or len(tasks) == 1:
            codes = [job(t) for t in tasks]
        else:
            codes = list(self._executor(min(threads, len(tasks))).map(job, tasks))
        if any(codes):
            raise MemoryError("mmdrfuse.fast: the kernel could not allocate its row buffers")
        return out

    def close(self) -> None:
        """Stop the worker threads (they are also stopped at interpreter exit)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass


def accelerate(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The fastest inference callable for ``model`` (put in eval mode): ``f(x) == model(x)``.

    A :class:`~mmdrfuse.models.Student` gets the fused kernel (:class:`FastStudent`, run under ``torch.no_grad()``)
    for float32 CPU input and its plain forward otherwise. Any other model (e.g. the teacher) is returned as is,
    so ``accelerate(m) is m`` tells that no fast path applies.
    """
    model.eval()
    if not implements(model):
        return model
    fast = FastStudent(model)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return fast(x)

    run.fast = fast  # type: ignore[attr-defined]
    return run
