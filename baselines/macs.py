"""MAC counting with thop 0.1.1's rules (MMDRFuse Table 3's FLOPs column), through forward hooks, so that it works
on a meta-device copy of a network (no memory, no time); docs/baselines.md on Table 3's columns."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn


@dataclass
class MacsReport:
    macs: int  # total, thop 0.1.1 rules
    params: int  # thop's parameter count (registered leaf modules that ran)
    by_type: dict[str, int]  # MACs per module type name


def _conv_ops(m, x, y):
    return y.numel() * (x.shape[1] // m.groups) * int(np.prod(m.kernel_size))


def _norm_ops(m, x, y):
    n = 2 * x.numel()
    return 2 * n if (getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)) else n


def _softmax_ops(m, x, y):
    n = x.shape[m.dim]
    return (x.numel() // n) * (3 * n - 1) if n else 0


_UPSAMPLE_OPS = {"nearest": 1, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}

# thop 0.1.1's counting rules (docs/baselines.md). Types are matched exactly, as thop does.
_RULES: dict[type, Callable] = {
    **{t: _conv_ops for t in (nn.Conv1d, nn.Conv2d, nn.Conv3d)},
    **{t: _norm_ops for t in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.LayerNorm,
                              nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)},
    nn.Softmax: _softmax_ops,
    nn.Linear: lambda m, x, y: m.in_features * y.numel(),
    **{t: (lambda m, x, y: y.numel()) for t in (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)},
    nn.Upsample: lambda m, x, y: _UPSAMPLE_OPS.get(m.mode, 0) * y.numel(),
    nn.LeakyReLU: lambda m, x, y: x.numel(),
    **{t: (lambda m, x, y: 0) for t in (nn.ReLU, nn.ReLU6, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d,
                                        nn.ZeroPad2d, nn.Dropout, nn.PixelShuffle)},
}


def count_macs(net: nn.Module, inputs: Sequence) -> MacsReport:
    """Count MACs of ``net(*inputs)`` with thop 0.1.1's rules, via forward hooks (works on the meta device).

    A module called several times is counted each time; thop's parameter count sums the parameters of the
    registered leaf modules that ran (each module once), so parameters held by custom containers and modules that
    never run are left out, as thop does.
    """
    ops: dict[str, int] = {}
    ran: dict[int, nn.Module] = {}
    handles = []

    def hook(m, args, y):
        x = args[0] if args else y
        n = int(_RULES[type(m)](m, x, y))
        ops[type(m).__name__] = ops.get(type(m).__name__, 0) + n
        ran[id(m)] = m

    for m in net.modules():
        if type(m) in _RULES:
            handles.append(m.register_forward_hook(hook))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            net(*inputs)
    finally:
        for h in handles:
            h.remove()
        net.train(was_training)
    params = sum(p.numel() for m in ran.values() for p in m.parameters(recurse=False))
    return MacsReport(macs=sum(ops.values()), params=params, by_type=ops)
