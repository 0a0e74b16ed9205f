"""One validated batch (F, A, B) and the intermediate maps several metrics share.

Metric implementations take a :class:`Batch` and read what they need from its cached properties, so that
:func:`mmdrfuse.metrics.compute_all` computes each shared map once. On float64 CPU tensors outside autograd (with
the C kernels built) the properties ``native_*`` hold the final values of each group of metrics, one kernel pass
per group (:mod:`._native`: VIF, SSIM, Qabf + Nabf, and the nine global statistics together; the Gaussian SSIM,
Qcb and Qcv of the VIFB convention). Otherwise (the torch
path) the shared maps are: the centred images and their products (SSIM and VIF both filter F, F^2, S, S^2, S*F),
the gray levels (EN, MI) and the Sobel responses (Qabf, Nabf). The two sources are stacked on a leading axis of
size 2 (A then B) so every per-source computation runs once, batched, with F's statistics broadcast to both.
"""
from __future__ import annotations

from functools import cached_property

import torch
from torch import Tensor

from mmdrfuse.metrics import _native
from mmdrfuse.metrics._primitives import check_images, rows_outer_empty, sobel_mirror8, sobel_zero, to_levels


class Batch:
    """Validated images: ``f`` (N, H, W) and, when sources are given, ``a``, ``b`` (N, H, W) and
    ``s`` (2, N, H, W) = stack(A, B)."""

    # (3, N) int64 or None: slots of stack(F, A, B) with the same label hold the same image, so that maps of one
    # image (the perceptual metrics' normalisation, spectra, contrast) are computed once; set by callers that know
    # (mmdrfuse.metrics.vifb: a gray source serving the three channels of a colour fused image)
    labels: Tensor | None = None

    def __init__(self, fused: Tensor, a: Tensor | None = None, b: Tensor | None = None, *,
                 dtype: torch.dtype = torch.float64, min_size: int = 1, need_sources: bool = True):
        if need_sources and (a is None or b is None):
            raise TypeError("this metric needs both source images a and b")
        if not need_sources:
            a = b = None  # fused-only metrics accept and ignore the sources
        f, a, b = check_images(fused, a, b, dtype=dtype, min_size=min_size)
        self.dtype = dtype
        self.f: Tensor = f
        self.a: Tensor | None = a
        self.b: Tensor | None = b

    @classmethod
    def trusted(cls, f: Tensor, a: Tensor, b: Tensor) -> "Batch":
        """A batch of float64 (N, H, W) images known to hold 0..255 values (e.g. converted from uint8), without the
        validation pass."""
        self = cls.__new__(cls)
        self.dtype, self.f, self.a, self.b = f.dtype, f, a, b
        return self

    @cached_property
    def s(self) -> Tensor | None:
        """(2, N, H, W): stack(A, B), or None without sources."""
        return None if self.a is None else torch.stack([self.a, self.b])

    # ------------------------------------------------------------------------------------------ C kernels
    @cached_property
    def native(self) -> bool:
        """True when the metrics of this batch run as C kernels (float64 CPU outside autograd, kernels built)."""
        return _native.usable(self.f)

    @cached_property
    def _native_shifts(self) -> Tensor:
        a = self.f if self.a is None else self.a  # fused-only: F stands in for the sources
        b = self.f if self.b is None else self.b
        return _native.shifts(self.f, a, b)

    @cached_property
    def native_stats(self) -> dict[str, Tensor]:
        """SD, SCD, CC, EN, SF, AG, MI, PSNR, MSE -> (N,) from one kernel pass (only when :attr:`native`)."""
        a = self.f if self.a is None else self.a
        b = self.f if self.b is None else self.b
        return _native.stats(self.f, a, b, self._native_shifts)

    @cached_property
    def native_vif(self) -> Tensor:
        """VIF(A, F) + VIF(B, F), (N,) (only when :attr:`native`)."""
        return _native.vif(self.f, self.a, self.b, self._native_shifts)

    @cached_property
    def native_gradients(self) -> Tensor:
        """(2, N): Qabf and Nabf (only when :attr:`native`)."""
        return _native.gradients(self.f, self.a, self.b)

    def native_ssim7(self, c1: float, c2: float) -> Tensor:
        """SSIM(F, A) + SSIM(F, B), 7 x 7 uniform window, (N,) (only when :attr:`native`)."""
        return _native.ssim7(self.f, self.a, self.b, self._native_shifts, c1, c2)

    def native_ssim_gauss(self, win: Tensor, c1: float, c2: float) -> Tensor:
        """SSIM(F, A) and SSIM(F, B) with the separable window outer(win, win), (2, N) (only when :attr:`native`)."""
        return _native.ssim_gauss(self.f, self.a, self.b, self._native_shifts, win, c1, c2)

    # ------------------------------------------------------------------------------------------- levels
    @cached_property
    def f_levels(self) -> Tensor:
        """F rounded to int64 gray levels (N, H, W)."""
        return to_levels(self.f)

    @cached_property
    def s_levels(self) -> Tensor:
        return to_levels(self.s)

    # ------------------------------------------------------------------------------- centred products
    @cached_property
    def shifts(self) -> tuple[Tensor, Tensor]:
        """Integer shifts (rounded image means) for F (N,) and the sources (2, N). Subtracting an integer keeps
        integer images integer (exact box sums) and shrinks the magnitudes that E[x^2] - E[x]^2 cancels."""
        if self.native:
            sh = self._native_shifts
            return sh[0], sh[1:]
        fs = torch.round(self.f.mean((-2, -1)))
        ss = torch.round(self.s.mean((-2, -1)))
        return fs, ss

    @cached_property
    def centred(self) -> Tensor:
        """(3, N, H, W): Fc, Ac, Bc with Xc = X - shift(X), one stack (VIF filters it for its coarser scales)."""
        fs, ss = self.shifts
        x = torch.empty((3,) + tuple(self.f.shape), dtype=self.f.dtype, device=self.f.device)
        torch.sub(self.f, fs[:, None, None], out=x[0])
        torch.sub(self.s, ss[..., None, None], out=x[1:])
        return x

    @cached_property
    def products(self) -> Tensor:
        """(8, N, H, W): Fc, Fc^2, Ac, Bc, Ac^2, Bc^2, Ac*Fc, Bc*Fc with Xc = X - shift(X)."""
        c = self.centred
        return stack_products(c[0], c[1:])

    # ------------------------------------------------------------------------------------------ gradients
    @cached_property
    def qabf_gradients(self) -> tuple[Tensor, Tensor, Tensor]:
        """Zero-padded Sobel strength g and orientation of stack(F, A, B), each (3, N, H, W).

        The orientation alpha = arctan(gy / gx) (pi/2 where gx = 0, the evaluator's convention) is returned as a
        direction vector (vx, vy) in the half-plane vx >= 0 with alpha = atan2(vy, vx): (|gx|, gy sign(gx)), and
        (0, 1) where gx = 0. Angle differences then need one atan2 per source instead of one arctan per image.
        """
        x = torch.cat([self.f[None], self.s])
        gx, gy = sobel_zero(x)
        g = torch.sqrt(gx * gx + gy * gy)
        vy = gy.mul_(torch.sign(gx)).add_(gx == 0)
        return g, gx.abs_(), vy

    @cached_property
    def nabf_gradients(self) -> tuple[Tensor, Tensor, Tensor]:
        """Mirror-extended Sobel/8 strength g and orientation alpha = arctan(gv / gh) (0 where gv = gh = 0) of
        stack(F, A, B) as a direction vector with alpha = atan2(vy, vx), vx >= 0: (|gh|, gv sign(gh)); (0, gv) where
        gh = 0 (alpha = +-pi/2, as arctan(gv / +0)); (1, 0) where gv = gh = 0."""
        x = torch.cat([self.f[None], self.s])
        gv, gh = sobel_mirror8(x)
        g = torch.sqrt(gv * gv + gh * gh)
        zero_h = gh == 0
        vy = gv.mul_(torch.sign(gh).add_(zero_h))
        vx = gh.abs_().add_(g == 0)
        return g, vx, vy


def angle_differences(vx: Tensor, vy: Tensor) -> Tensor:
    """|alpha_S - alpha_F| for the sources S = A, B from direction vectors of stack(F, A, B) (3, N, H, W) whose
    angles lie in [-pi/2, pi/2]: atan2(cross, dot) of the two vectors is exactly that difference (in [-pi, pi]).
    For integer images the cross and dot products are exact."""
    xf, yf, xs, ys = vx[0], vy[0], vx[1:], vy[1:]
    cross = (xf * ys).sub_(yf * xs)
    dot = (xf * xs).add_(yf * ys)
    return torch.atan2(cross, dot).abs_()


def stack_products(f: Tensor, s: Tensor) -> Tensor:
    """(N, H, W) fused and (2, N, H, W) sources -> (8, N, H, W) stack F, F^2, S, S^2, S*F, stored rows-outermost
    so that :func:`mmdrfuse.metrics._primitives.filter_valid` starts without a copy."""
    out = rows_outer_empty((8,) + tuple(f.shape), dtype=f.dtype, device=f.device)
    out[0] = f
    torch.mul(f, f, out=out[1])
    out[2:4] = s
    torch.mul(s, s, out=out[4:6])
    torch.mul(s, f, out=out[6:8])
    return out
