"""MMDRFuse training losses: intensity, max-gradient, perceptual and (digestible) distillation.

Paper: Deng et al., "MMDRFuse: Distilled Mini-Model with Dynamic Refresh for Multi-Modality Image Fusion",
ACM MM 2024, Sec. 3 (comprehensive loss and digestible distillation); conventions (where the paper is silent) from the
authors' public code, github.com/yanglinDeng/MMDRFuse @ c9e5014.

``O`` is the network's tanh output, ``M = max(I_ir, I_vis)`` pixelwise. Every function takes N x C x H x W tensors,
validates them at the top with :func:`check_nchw`, works per sample and reduces at the bottom (``mean`` | ``sum`` |
``none`` -> one value per sample), so ``mean`` equals the authors' batch-mean definitions.

This module also holds the input check and reduction (:func:`check_nchw`, :func:`reduce_per_sample`) and the small
fixed kernels (:func:`grad_kernel`, :func:`gaussian_window`, :func:`prewitt_kernels`) that :mod:`mmdrfuse.refresh`
shares; all of them are public.
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch
import torch.nn.functional as F

REDUCTIONS = ("mean", "sum", "none")
DISTILL_MODES = ("attention", "plain")


# ----------------------------------------------------------------------------------------- shared primitives
def check_nchw(*tensors: torch.Tensor, same_shape: bool = True, channels: int | None = None) -> None:
    """Check that every input is a floating 4-D tensor (N x C x H x W), on one device, optionally same shape."""
    ref = tensors[0]
    for t in tensors:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"expected a 4-D N x C x H x W tensor, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"expected a floating-point tensor, got {t.dtype}")
        if t.device != ref.device:
            raise ValueError(f"inputs on different devices: {ref.device} and {t.device}")
        if same_shape and t.shape != ref.shape:
            raise ValueError(f"shape mismatch: {tuple(ref.shape)} vs {tuple(t.shape)}")
        if channels is not None and t.shape[1] != channels:
            raise ValueError(f"expected {channels} channel(s), got shape {tuple(t.shape)}")


def reduce_per_sample(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"unknown reduction {reduction!r}; expected one of {REDUCTIONS}")


def _per_sample_mean(x: torch.Tensor) -> torch.Tensor:
    """Mean over all but the first dim: no copy for channels-last maps (equal to ``x.flatten(1).mean(1)``)."""
    return x.mean(dim=tuple(range(1, x.dim())))


@functools.lru_cache(maxsize=None)
def _grad_kernel_cpu(dtype: torch.dtype) -> torch.Tensor:
    k = torch.full((3, 3), 1.0 / 8.0, dtype=dtype)
    k[1, 1] = -1.0
    return k.view(1, 1, 3, 3)


def grad_kernel(like: torch.Tensor) -> torch.Tensor:
    """The authors' 3x3 gradient (Laplacian-like) kernel [[1/8]*3, [1/8, -1, 1/8], [1/8]*3], shape 1 x 1 x 3 x 3."""
    return _grad_kernel_cpu(like.dtype).to(like.device)


def gradient(x: torch.Tensor) -> torch.Tensor:
    """``grad(x)``: :func:`grad_kernel` applied to each channel with zero padding 1 (same size as ``x``)."""
    c = x.shape[1]
    return F.conv2d(x, grad_kernel(x).expand(c, 1, 3, 3), padding=1, groups=c)


@functools.lru_cache(maxsize=None)
def _gaussian_cpu(size: int, sigma: float, dtype: torch.dtype) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2.0
    g = torch.exp(-(r ** 2) / (2.0 * sigma ** 2))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype).view(1, 1, size, size)


def gaussian_window(size: int, sigma: float, like: torch.Tensor) -> torch.Tensor:
    """Normalised 2-D Gaussian window (1 x 1 x size x size) on ``like``'s device and dtype."""
    return _gaussian_cpu(size, float(sigma), like.dtype).to(like.device)


@functools.lru_cache(maxsize=None)
def _prewitt_cpu(dtype: torch.dtype) -> torch.Tensor:
    kx = torch.tensor([[1.0, 0.0, -1.0]] * 3, dtype=torch.float64) / 3.0
    return torch.stack([kx, kx.t()]).to(dtype).unsqueeze(1)  # 2 x 1 x 3 x 3: (d/dx, d/dy)


def prewitt_kernels(like: torch.Tensor) -> torch.Tensor:
    """GMSD's Prewitt pair [[1/3, 0, -1/3]] x 3 and its transpose, shape 2 x 1 x 3 x 3."""
    return _prewitt_cpu(like.dtype).to(like.device)


# ------------------------------------------------------------------------------------------------ losses
def intensity_loss(out: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Intensity loss ``L_int = || O - max(I_ir, I_vis) ||_1 / (HW)`` (mean absolute error per sample)."""
    check_nchw(out, ir, vis)
    return reduce_per_sample(_per_sample_mean((out - torch.maximum(ir, vis)).abs()), reduction)


def gradient_loss(out: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Max-gradient loss ``L_grad = MSE(grad(O), grad(max(I_ir, I_vis)))`` (the max is taken on the images first)."""
    check_nchw(out, ir, vis)
    return reduce_per_sample(_per_sample_mean((gradient(out) - gradient(torch.maximum(ir, vis))) ** 2), reduction)


def perceptual_target(feats_ir: Sequence[torch.Tensor], feats_vis: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The perceptual targets ``max(phi_j(I_ir), phi_j(I_vis))`` for each VGG tap j."""
    return [torch.maximum(a, b) for a, b in zip(feats_ir, feats_vis)]


class _SquaredErrorMean(torch.autograd.Function):
    """Per-sample ``mean((a - b)^2)`` whose backward keeps the maps' memory layout (one multiply, no copy)."""

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        d = a - b
        ctx.save_for_backward(d)
        ctx.count = d[0].numel()
        return _per_sample_mean(d * d)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        (d,) = ctx.saved_tensors
        ga = d * (g * (2.0 / ctx.count)).view(-1, *([1] * (d.dim() - 1)))
        return (ga if ctx.needs_input_grad[0] else None), (-ga if ctx.needs_input_grad[1] else None)


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


def squared_error_mean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``mean((a - b)^2)`` per sample (N values). Channels-last maps (the fast training step's VGG taps) take a fused
    path that keeps their layout in the backward pass; other tensors the plain ops (bit-identical to before)."""
    if _channels_last(a) and _channels_last(b):
        return _SquaredErrorMean.apply(a, b)
    return _per_sample_mean((a - b) ** 2)


def feature_mse(feats_a: Sequence[torch.Tensor], feats_b: Sequence[torch.Tensor], reduction: str = "mean") -> torch.Tensor:
    """``sum_j MSE(a_j, b_j) / J`` over paired feature maps (the perceptual loss and the refresh feature terms)."""
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(f"need the same non-zero number of feature maps, got {len(feats_a)} and {len(feats_b)}")
    check_nchw(*feats_a, same_shape=False)
    total = None
    for a, b in zip(feats_a, feats_b):
        check_nchw(a, b)
        term = squared_error_mean(a, b)
        total = term if total is None else total + term
    return reduce_per_sample(total / len(feats_a), reduction)


def perceptual_loss(feats_out: Sequence[torch.Tensor], target: Sequence[torch.Tensor],
                    reduction: str = "mean") -> torch.Tensor:
    """Perceptual loss ``L_per = sum_j MSE(phi_j(O), max(phi_j(I_ir), phi_j(I_vis))) / 5``.

    ``feats_out`` are the VGG-19 taps of the output and ``target`` those of :func:`perceptual_target`.
    """
    return feature_mse(feats_out, target, reduction)


def _attention(x: torch.Tensor) -> torch.Tensor:
    """Channel-summed attention map, divided by the L2 norm of the whole batch tensor (one scalar)."""
    a = x.sum(1, keepdim=True)
    return a / a.norm().clamp_min(1e-12)


def distillation_loss(s_feat: torch.Tensor, t_feat: torch.Tensor, s_out: torch.Tensor, t_out: torch.Tensor,
                      mode: str = "attention", reduction: str = "mean") -> torch.Tensor:
    """Digestible distillation ``L_dis = (term(F_s, F_t) + term(O_s, O_t)) / 2``.

    ``mode="attention"`` (the paper's): ``term(s, t) = || A(s) - A(t) ||_2^2`` with ``A(x) = sum_c x / ||sum_c x||_2``
    and the norm taken over the whole batch (so the student's hidden width may differ from the teacher's 4 channels;
    batch and spatial sizes must agree), so the batch's terms are coupled: ``reduction`` ``mean`` returns the
    authors' value (the batch sum), ``none`` splits that sum per sample and ``sum`` equals ``mean``.
    ``mode="plain"`` (the 'w/o digestible distillation' ablation): ``term = MSE(s, t)`` on the raw 4-channel
    features and outputs, reduced per sample as usual. The teacher tensors should come from a no-grad pass.
    """
    check_nchw(s_feat, t_feat, same_shape=False)
    check_nchw(s_out, t_out)
    if mode == "attention":  # channel sums: a student of any hidden width can follow the 4-channel teacher
        if s_feat.shape[0] != t_feat.shape[0] or s_feat.shape[2:] != t_feat.shape[2:]:
            raise ValueError(f"feature maps differ beyond channels: {tuple(s_feat.shape)} vs {tuple(t_feat.shape)}")
        d1 = (_attention(s_feat) - _attention(t_feat)) ** 2
        d2 = (_attention(s_out) - _attention(t_out)) ** 2
        per_sample = (d1.flatten(1).sum(1) + d2.flatten(1).sum(1)) / 2
        return per_sample if reduction == "none" else reduce_per_sample(per_sample, "sum")
    if mode == "plain":
        if s_feat.shape != t_feat.shape:
            raise ValueError(f"plain distillation needs equal feature shapes: {tuple(s_feat.shape)} vs "
                             f"{tuple(t_feat.shape)} (use mode='attention' for other student widths)")
        per_sample = (_per_sample_mean((s_feat - t_feat) ** 2) + _per_sample_mean((s_out - t_out) ** 2)) / 2
        return reduce_per_sample(per_sample, reduction)
    raise ValueError(f"unknown distillation mode {mode!r}; expected one of {DISTILL_MODES}")
