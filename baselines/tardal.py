"""TarDAL (Liu et al., CVPR 2022): the generator of "Target-aware Dual Adversarial Learning".

Written from a description of the authors' public code (JinyuanLiu-CV/TarDAL, generator dim 32, depth 3;
weights tardal.pt / tardal+.pt / tardal++.pt from the v0 release @1d1d1e9).

Pipeline as in the v0 ``fuse.py`` (the one the published weights come with):

- input cat[ir, vis] (IR: OpenCV gray / 255; visible: OpenCV colour -> BGR2GRAY / 255), whole image, batch 1;
- BatchNorm mode: ``tardal.pt`` is run in **train mode** (the README omits ``--eval``): each BN layer normalises
  with the current image's own per-channel mean and biased variance (eps 1e-5). The stored running statistics are
  never used. ``tardal+.pt`` / ``tardal++.pt`` are run in eval mode (running statistics), as their README lines say;
- output tanh -> clip(0, 1); the gray save is OpenCV's write of 255 x F (round to nearest, saturate).
"""
from __future__ import annotations

import torch
from torch import nn

from baselines.base import LearnedMethod, uint8_round_half_even


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1, bias=True)  # zero padding


class TarDALGenerator(nn.Module):
    """Conv-BN-ReLU encoder, 3 densely connected Conv-BN-ReLU layers, 4-layer fuse head ending in tanh."""

    def __init__(self, dim: int = 32, depth: int = 3):
        super().__init__()
        self.encoder = nn.Sequential(_conv(2, dim), nn.BatchNorm2d(dim), nn.ReLU())
        self.dense = nn.ModuleList(
            nn.Sequential(_conv(dim * (i + 1), dim), nn.BatchNorm2d(dim), nn.ReLU()) for i in range(depth))
        width = dim * (depth + 1)  # 128
        self.fuse = nn.Sequential(
            nn.Sequential(_conv(width, width), nn.ReLU()),
            nn.Sequential(_conv(width, width // 2), nn.BatchNorm2d(width // 2), nn.ReLU()),
            nn.Sequential(_conv(width // 2, width // 4), nn.BatchNorm2d(width // 4), nn.ReLU()),
            nn.Sequential(_conv(width // 4, 1), nn.Tanh()),
        )

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        x = self.encoder(torch.cat([ir, vis], dim=1))
        for layer in self.dense:
            x = torch.cat([x, layer(x)], dim=1)
        return self.fuse(x)


class TarDAL(LearnedMethod):
    read_mode = "cv2-bgr2gray"

    def __init__(self, *args, bn_mode: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # "batch": per-image BN statistics (tardal.pt as published); "running": eval mode (tardal+ / tardal++).
        self.bn_mode = bn_mode or ("batch" if self.weight_file().relpath.endswith("/tardal.pt") else "running")
        if self.bn_mode not in ("batch", "running"):
            raise ValueError(f"bn_mode must be 'batch' or 'running', got {self.bn_mode!r}")

    def make_net(self) -> nn.Module:
        return TarDALGenerator()

    def macs_inputs(self, h, w, device):
        return (torch.zeros(1, 1, h, w, device=device), torch.zeros(1, 1, h, w, device=device))

    def _bn_batch_stats(self, on: bool) -> None:
        for m in self.net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.train(on)
                # momentum 0 keeps the stored buffers untouched while the batch statistics are used
                m.momentum = 0.0 if on else 0.1

    def raw(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        if self.bn_mode == "running":
            return self.net(ir, vis)
        self._bn_batch_stats(True)
        try:  # one image at a time: the original runs batch 1, so statistics are per image
            return torch.cat([self.net(ir[i:i + 1], vis[i:i + 1]) for i in range(ir.shape[0])])
        finally:
            self._bn_batch_stats(False)

    def postprocess(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.clamp(0, 1)

    def to_uint8(self, fused):
        return uint8_round_half_even(fused)
