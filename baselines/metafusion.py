"""MetaFusion (Zhao et al., CVPR 2023): infrared-visible fusion via meta-feature embedding from object detection.

Written from a description of the authors' public code (wdzhao123/MetaFusion @ a8c5eaf ``FusionNet``, block_num 3).
Architecture only: the checkpoint ``weight/model_weight.pth`` is not reachable (its blob is absent from the public
snapshot), so this method counts in Table 3 (params / size / MACs) and refuses to fuse unless a user supplies the
file.

Counting quirk reproduced: block1 is built from ``MetaConv2d`` layers, custom modules (not ``nn.Conv2d``) whose
weight and bias are registered *buffers* used through the functional conv. They are neither parameters (Table 3:
811,714 params = block2 only) nor seen by thop (1063.172 G MACs = block2's convs only; the true count with block1
is 2950.609 G).

Pipeline of the original (``test.py``): every image resized to 512 x 384 (W x H, bilinear) and left at that size;
input cat[IR, visible RGB] (4 channels); two independent sigmoid maps w0, w1; fused V = w0 IR + w1 V_vis with V the
HSV value (max over RGB) of the visible image; x 255, clip, truncation to uint8; the V channel of the visible HSV
image is replaced and converted back to RGB. Here ``fuse`` takes the IR and the visible image as gray (1 channel:
replicated to RGB, V = gray) or RGB (3 channels) at whatever size it is given; ``preprocess`` reproduces the
resize. The fused V (clipped to [0, 1]) is returned.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import LearnedMethod, check_inputs, uint8_truncate

SIZE_WH = (512, 384)


class MetaConv2d(nn.Module):
    """3x3 conv (zero padding 1) whose weight and bias are buffers, applied with ``F.conv2d``."""

    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__()
        w = torch.empty(cout, cin, k, k)
        nn.init.kaiming_uniform_(w, a=5 ** 0.5)
        bound = 1 / (cin * k * k) ** 0.5
        self.register_buffer("weight", w)
        self.register_buffer("bias", torch.empty(cout).uniform_(-bound, bound))
        self.padding = k // 2

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, padding=self.padding)


class MetaBlock(nn.Module):
    """conv1_1 -> ReLU -> conv1_2 -> ReLU -> cat[ReLU(conv1_0_00), ReLU(conv1_0_01)] (2 x cout channels)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1_1 = MetaConv2d(cin, cout)
        self.conv1_2 = MetaConv2d(cout, cout)
        self.conv1_0_00 = MetaConv2d(cout, cout)
        self.conv1_0_01 = MetaConv2d(cout, cout)

    def forward(self, x):
        x = F.relu(self.conv1_2(F.relu(self.conv1_1(x))))
        return torch.cat([F.relu(self.conv1_0_00(x)), F.relu(self.conv1_0_01(x))], 1)


class MetaFusionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.block1 = nn.Sequential(MetaBlock(4, 64), MetaBlock(128, 128), MetaBlock(256, 128))
        layers: list[nn.Module] = []
        for cin, cout in ((256, 128), (128, 128), (128, 128), (128, 128), (128, 64)):
            layers += [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
        layers += [nn.Conv2d(64, 2, 1), nn.Sigmoid()]
        self.block2 = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 4 x H x W (IR, R, G, B) -> N x 2 x H x W sigmoid weights (w0 for IR, w1 for V_vis)."""
        return self.block2(self.block1(x))


class MetaFusion(LearnedMethod):
    read_mode = "pil"

    def make_net(self) -> nn.Module:
        return MetaFusionNet()

    def macs_inputs(self, h, w, device):
        return (torch.zeros(1, 4, h, w, device=device),)

    def preprocess(self, ir_path, vis_path):
        """PIL bilinear resize of both images to 512 x 384; IR as ``L``, visible as RGB (N x 3), both / 255."""
        from mmdrfuse.images import read_pil

        ir = read_pil(ir_path).resize(SIZE_WH, resample=2).convert("L")  # 2 = BILINEAR
        vis = read_pil(vis_path).resize(SIZE_WH, resample=2).convert("RGB")
        t_ir = torch.from_numpy(np.asarray(ir, dtype=np.float32) / 255.0)[None, None]
        t_vis = torch.from_numpy(np.asarray(vis, dtype=np.float32) / 255.0).permute(2, 0, 1)[None]
        return t_ir, t_vis

    def raw(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """Fused V before the clip: w0 * IR + w1 * V."""
        rgb = vis.expand(-1, 3, -1, -1) if vis.shape[1] == 1 else vis
        w = self.net(torch.cat([ir, rgb], 1))
        return w[:, :1] * ir + w[:, 1:2] * rgb.amax(1, keepdim=True)

    @torch.no_grad()
    def fuse(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        check_inputs(ir, vis, vis_channels=(1, 3))
        self.require_loaded()
        return self.raw(*self._inputs(ir, vis)).clamp(0, 1).to(ir.device)

    def to_uint8(self, fused):
        return uint8_truncate(fused)
