"""LRRNet (Li et al., TPAMI 2023): a fusion network unrolled from learnable low-rank representation (LISTA).

Written from a description of the authors' public code (hli1221/imagefusion-LRRNet @ e489fc3, n = 128, 4 blocks,
'cat' fusion).

Pipeline as in ``testing_fusion_lrr.py``: OpenCV gray (uint8 values as float, no /255) -> per-image min-max
normalisation (x - min) / (max - min + 1e-5) -> ``model(ir, vis)['fuse']`` -> min-max to [0, 1) with the same 1e-5
-> x 255 and ``astype(uint8)`` (truncation), the released CUDA path (no clamp). No activation anywhere; any H x W.
"""
from __future__ import annotations

import torch
from torch import nn

from baselines.base import LearnedMethod, uint8_truncate


class ConvLayer(nn.Module):
    """ReflectionPad2d(1) + 3x3 conv with bias (key ``conv2d``)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv2d = nn.Conv2d(cin, cout, 3, bias=True)

    def forward(self, x):
        return self.conv2d(self.pad(x))


def soft_threshold(r: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """sign(r) * max(|r| - lambda_c, 0), literally (the trained lambdas include small negative values).

    Written with in-place steps (2 temporaries instead of 4): the 256-channel maps make this memory-bound."""
    out = r.abs().sub_(lam.view(1, -1, 1, 1)).clamp_(min=0)
    return out.mul_(torch.sign(r))


class LRRBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv_Wdz = ConvLayer(channels, 1)
        self.conv_Wdtz = ConvLayer(1, channels)


class GetLS(nn.Module):
    """Low-rank (first n channels) and sparse (last n) codes of one image by 4 unrolled LISTA iterations."""

    def __init__(self, n: int = 128, blocks: int = 4):
        super().__init__()
        c = 2 * n
        self.n = n
        self.lamj = nn.Parameter(torch.zeros(1, c))  # per-channel thresholds, shared by all blocks
        self.lamz = nn.Parameter(torch.ones(1, 1))  # step on the previous code, shared by all blocks
        self.conv_W00 = ConvLayer(1, c)
        for k in range(blocks):
            self.add_module(f"lrrblock{k}", LRRBlock(c))
        self.blocks = blocks

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = soft_threshold(self.conv_W00(x), self.lamj)
        for k in range(self.blocks):
            blk = getattr(self, f"lrrblock{k}")
            r = blk.conv_Wdtz(x - blk.conv_Wdz(z)).addcmul_(self.lamz.view(1, 1, 1, 1), z)  # + lamz * z
            z = soft_threshold(r, self.lamj)
        return z[:, :self.n], z[:, self.n:]


class Decoder(nn.Module):
    def __init__(self, n: int = 128):
        super().__init__()
        self.conv_ReZx = ConvLayer(n, 1)
        self.conv_ReUx = ConvLayer(n, 1)
        self.conv_ReZy = ConvLayer(n, 1)
        self.conv_ReUy = ConvLayer(n, 1)
        self.conv_ReL = ConvLayer(2, 1)
        self.conv_ReH = ConvLayer(2, 1)

    def forward(self, l_ir, s_ir, l_vis, s_vis):
        low = self.conv_ReL(torch.cat([self.conv_ReZx(l_ir), self.conv_ReZy(l_vis)], 1))
        high = self.conv_ReH(torch.cat([self.conv_ReUx(s_ir), self.conv_ReUy(s_vis)], 1))
        return low + high


class LRRNetModel(nn.Module):
    def __init__(self, n: int = 128, blocks: int = 4):
        super().__init__()
        self.get_ls1 = GetLS(n, blocks)  # infrared
        self.get_ls2 = GetLS(n, blocks)  # visible
        self.decoder = Decoder(n)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        l_ir, s_ir = self.get_ls1(ir)
        l_vis, s_vis = self.get_ls2(vis)
        return self.decoder(l_ir, s_ir, l_vis, s_vis)


def minmax_1e5(x: torch.Tensor) -> torch.Tensor:
    """Per-image (x - min) / (max - min + 1e-5) over C, H, W."""
    flat = x.flatten(1)
    lo = flat.min(1).values.view(-1, 1, 1, 1)
    hi = flat.max(1).values.view(-1, 1, 1, 1)
    return (x - lo) / (hi - lo + 1e-5)


class LRRNet(LearnedMethod):
    read_mode = "cv2"

    def make_net(self) -> nn.Module:
        return LRRNetModel()

    def macs_inputs(self, h, w, device):
        return (torch.zeros(1, 1, h, w, device=device), torch.zeros(1, 1, h, w, device=device))

    def raw(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        # the original normalises 0..255 values; scaling [0, 1] inputs by 255 first keeps the 1e-5 term identical
        return self.net(minmax_1e5(ir * 255.0), minmax_1e5(vis * 255.0))

    def postprocess(self, raw: torch.Tensor) -> torch.Tensor:
        return minmax_1e5(raw)

    def to_uint8(self, fused):
        return uint8_truncate(fused)
