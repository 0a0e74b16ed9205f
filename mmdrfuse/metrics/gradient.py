"""Gradient-based fusion metrics: Qabf (edge information transferred) and Nabf (fusion artifacts).

Qabf: Xydeas & Petrovic, "Objective image fusion performance measure", Electronics Letters 2000 (the paper cites
Piella & Heijmans 2003), in the authors' evaluator's form:

- Sobel responses with zero padding, same size: gx (kernel [[-1,0,1],[-2,0,2],[-1,0,1]]), gy ([[1,2,1],[0,0,0],
  [-1,-2,-1]]); strength g = sqrt(gx^2 + gy^2); orientation alpha = arctan(gy / gx), pi/2 where gx = 0;
- G_AF = gF/gA where gA > gF, gA/gF where gA < gF, and gF where gA = gF (the evaluator's convention: 0 on flat
  pixels, the strength itself on equal nonzero edges); A_AF = 1 - |alpha_A - alpha_F| / (pi/2);
- Q_AF = Tg / (1 + exp(kg (G_AF - Dg))) * Ta / (1 + exp(ka (A_AF - Da))), Tg = 0.9994, kg = -15, Dg = 0.5,
  Ta = 0.9879, ka = -22, Da = 0.8;
- Qabf = sum(Q_AF gA + Q_BF gB) / sum(gA + gB) (weights w = g^L with L = 1).

Nabf: the modified fusion-artifacts measure of B. K. Shreyamsha Kumar ("Multifocus and multispectral image fusion
based on pixel significance using discrete cosine harmonic wavelet transform", SIViP 2013; MATLAB
objective_fusion_perform_fn, 2011):

- Sobel/8 responses with mirror extension (edge not repeated): gv ([[-1,0,1],[-2,0,2],[-1,0,1]]/8),
  gh ([[-1,-2,-1],[0,0,0],[1,2,1]]/8); g = sqrt(gv^2 + gh^2); alpha = arctan(gv / gh), 0 where gv = gh = 0;
- g_AF = 0 where gA = 0 or gF = 0, else min(gA, gF) / max(gA, gF); a_AF = | |alpha_A - alpha_F| - pi/2 | * 2/pi;
- Q_AF = sqrt(Nrg / (1 + exp(-kg (g_AF - 0.5))) * Nra / (1 + exp(-ka (a_AF - 0.5)))), Nrg = 0.9999, kg = 19,
  Nra = 0.9995, ka = 22;
- w_A = gA^Lg where gA >= Td, else wt_min (Lg = 1.5, Td = 2, wt_min = 0.001);
- Nabf = sum(n (1 - Q_AF) w_A + n (1 - Q_BF) w_B) / sum(w_A + w_B), n = 1 where gF > gA and gF > gB, else 0.
  Lower is better (0 = no artifacts). Some Python ports set w = 0 below Td; this follows the MATLAB original.
"""
from __future__ import annotations


import torch
from torch import Tensor

from mmdrfuse.metrics._context import Batch, angle_differences
from mmdrfuse.metrics.registry import measure, register

from mmdrfuse.metrics._primitives import (  # noqa: E402,F401 - the constants, defined beside the shared primitives
    HALF_PI, NABF_KA, NABF_KG, NABF_LG, NABF_NRA, NABF_NRG, NABF_SIGMAA, NABF_SIGMAG, NABF_TD, NABF_WT_MIN, QABF_DA,
    QABF_DG, QABF_KA, QABF_KG, QABF_TA, QABF_TG)


def _qabf(ctx: Batch) -> Tensor:
    if ctx.native:  # the C kernel: one Sobel pass for Qabf and Nabf (see _native.py)
        return ctx.native_gradients[0]
    g, vx, vy = ctx.qabf_gradients  # (3, N, H, W): F, A, B
    g_f, g_s = g[0], g[1:]
    # G = min/max where the strengths differ, gF where equal (0/0 avoided: both 0 gives 0/tiny = 0)
    lo, hi = torch.minimum(g_s, g_f), torch.maximum(g_s, g_f)
    rel = lo.div_(hi.clamp_min_(torch.finfo(hi.dtype).tiny))  # the floor only ever divides an exact 0
    rel.add_((g_s == g_f) * (g_f - rel))
    # T / (1 + exp(k (x - D))) = T sigmoid(-k (x - D)); with A = 1 - |dalpha| / (pi/2) the angle term's argument
    # is -ka (1 - Da) + ka |dalpha| / (pi/2); Tg Ta is applied to the final sum
    qg = torch.sigmoid_(rel.sub_(QABF_DG).mul_(-QABF_KG))
    qa = torch.sigmoid_(angle_differences(vx, vy).mul_(QABF_KA / HALF_PI).add_(-QABF_KA * (1.0 - QABF_DA)))
    return (qg.mul_(qa).mul_(g_s)).sum((0, -2, -1)).mul_(QABF_TG * QABF_TA) / g_s.sum((0, -2, -1))


def _nabf(ctx: Batch) -> Tensor:
    if ctx.native:
        return ctx.native_gradients[1]
    g, vx, vy = ctx.nabf_gradients  # (3, N, H, W): F, A, B
    g_f, g_s = g[0], g[1:]
    # g_AF = min/max, 0 where either strength is 0 (then min = 0 and 0/tiny = 0)
    rel = torch.minimum(g_s, g_f).div_(torch.maximum(g_s, g_f).clamp_min_(torch.finfo(g.dtype).tiny))
    ang = angle_differences(vx, vy).sub_(HALF_PI).abs_().mul_(1.0 / HALF_PI)
    # N / (1 + exp(-k (x - s))) = N sigmoid(k (x - s))
    qg = torch.sigmoid_(rel.sub_(NABF_SIGMAG).mul_(NABF_KG))
    qa = torch.sigmoid_(ang.sub_(NABF_SIGMAA).mul_(NABF_KA))
    one_minus_q = qg.mul_(qa).mul_(NABF_NRG * NABF_NRA).sqrt_().neg_().add_(1.0)
    wt = torch.where(g_s >= NABF_TD, g_s * g_s.sqrt(), NABF_WT_MIN)  # g^1.5 where g >= Td, else wt_min
    artifact = (g_f > g_s[0]) & (g_f > g_s[1])
    loss = one_minus_q.mul_(wt).sum(0).mul_(artifact)
    return loss.sum((-2, -1)) / wt.sum((0, -2, -1))


@register("Qabf", higher_is_better=True, paper=True, impl=_qabf,
          description="Xydeas-Petrovic edge transfer Q^AB/F with Sobel gradients")
def Qabf(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Xydeas-Petrovic edge-information metric Q^{AB/F} with Sobel gradients and the authors' evaluator's constants
    (Tg 0.9994, kg -15, Dg 0.5, Ta 0.9879, ka -22, Da 0.8; see the module docstring). Range 0..1; NaN when both
    sources are constant."""
    return measure("Qabf", fused, a, b, dtype=dtype, reduction=reduction)


@register("Nabf", higher_is_better=False, min_size=2, impl=_nabf,
          description="Shreyamsha Kumar's fusion-artifact measure N^AB/F (lower is better)")
def Nabf(fused: Tensor, a: Tensor, b: Tensor, *, dtype: torch.dtype = torch.float64, reduction: str = "none") -> Tensor:
    """Shreyamsha Kumar's modified fusion-artifacts measure N^{AB/F} (Sobel/8 gradients with mirror extension,
    Td 2, wt_min 0.001, Lg 1.5, Nrg 0.9999, kg 19, Nra 0.9995, ka 22; see the module docstring). Range 0..1, lower
    is better."""
    return measure("Nabf", fused, a, b, dtype=dtype, reduction=reduction)
