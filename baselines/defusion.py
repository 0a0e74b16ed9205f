"""DeFusion (Liang et al., ECCV 2022): "Fusion from Decomposition", self-supervised decomposition for fusion.

Written from a description of the authors' public code (erfect2020/DecompositionForFusion @ 9e7a09a, test-time class
``UCTestSharedNetPro``: ResNeSt bottlenecks, radix 2, no normalisation layers). Architecture only: the checkpoint
(Google Drive) is not reachable here, so the method counts in Table 3 and refuses to fuse unless a user supplies the
file (a dict with ``state_dict``, 676 keys, every shared module under both of its names).

Structure: a shared ("upper" = "lower") encoder gives f0..f3 for each input; a common encoder on cat(f3_ir, f3_vis);
a common decoder and a private decoder (run once per input with shared weights) with skip connections, bilinear x2
upsampling and a nearest resize to the skip's size; ``fusion_rule`` (3x3 conv 16 -> 3, ReLU) on e_ir + e_vis + e_c.

Pipeline of ``test.py``: both images gray -> RGB (replicated), [0, 1]; reflect pad 16 px on every side; forward;
crop 16 px; clamp(0, 1); ToPILImage (x 255, truncation); saved as RGB. Here ``fuse`` returns the PIL luma of the
clamped 3-channel output (0.299 R + 0.587 G + 0.114 B, 1 channel) so it fits the gray pipeline; ``fuse_rgb`` gives
the 3 channels. Table 3 MACs are counted on the padded input (1056 x 1312 for 1024 x 1280).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import LearnedMethod, check_inputs, load_checkpoint, uint8_truncate

PAD = 16


class SplitAttentionConv(nn.Module):
    """ResNeSt split attention, radix 2, cardinality 1, no norm: grouped 3x3 conv, GAP, fc1-ReLU-fc2, r-softmax."""

    def __init__(self, channels: int):
        super().__init__()
        inter = max(channels * 2 // 4, 32)
        self.channels = channels
        self.conv = nn.Conv2d(channels, channels * 2, 3, padding=1, groups=2, bias=False)
        self.fc1 = nn.Conv2d(channels, inter, 1)
        self.fc2 = nn.Conv2d(inter, channels * 2, 1)

    def forward(self, x):
        x = F.relu(self.conv(x))
        a, b = torch.split(x, self.channels, dim=1)
        gap = F.adaptive_avg_pool2d(a + b, 1)
        att = self.fc2(F.relu(self.fc1(gap)))  # N x 2C x 1 x 1, radix-major
        att = F.softmax(att.view(x.shape[0], 2, self.channels), dim=1).view(x.shape[0], 2 * self.channels, 1, 1)
        wa, wb = torch.split(att, self.channels, dim=1)
        return wa * a + wb * b


class Bottleneck(nn.Module):
    """1x1 -> split-attention 3x3 (-> avd pool) -> 1x1 (x4), residual, ReLU."""

    def __init__(self, cin: int, planes: int, stride: int = 1, avd: bool = False, downsample: nn.Module | None = None):
        super().__init__()
        gw = planes
        self.conv1 = nn.Conv2d(cin, gw, 1, bias=False)
        self.conv2 = SplitAttentionConv(gw)
        self.avd_layer = nn.AvgPool2d(3, stride, padding=1) if avd else None
        self.conv3 = nn.Conv2d(gw, planes * 4, 1, bias=False)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv2(F.relu(self.conv1(x)))
        if self.avd_layer is not None:
            out = self.avd_layer(out)
        out = self.conv3(out)
        short = x if self.downsample is None else self.downsample(x)
        return F.relu(out + short)


class ResNestLayer(nn.Module):
    """``layer.{i}`` blocks; block 0 may stride (through avd), change width (downsample) and have is_first avd."""

    def __init__(self, cin: int, planes: int, blocks: int, stride: int = 1, is_first: bool = False,
                 avg_down: bool = True):
        super().__init__()
        ds = None
        if stride != 1 or cin != planes * 4:
            conv = nn.Conv2d(cin, planes * 4, 1, bias=False)
            if avg_down:  # key downsample.1.weight
                ds = nn.Sequential(nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False), conv)
            else:  # key downsample.0.weight
                ds = nn.Sequential(conv)
        first = Bottleneck(cin, planes, stride, avd=(stride > 1 or is_first), downsample=ds)
        self.layer = nn.Sequential(first, *[Bottleneck(planes * 4, planes) for _ in range(blocks - 1)])

    def forward(self, x):
        return self.layer(x)


def _up() -> nn.Upsample:
    return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)


def _to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class DeFusionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder_upper = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
                                           ResNestLayer(16, 8, 6, 1, is_first=True))
        self.maxpool_upper = nn.MaxPool2d(3, 2, 1)
        self.upper_encoder_layer1 = ResNestLayer(32, 16, 6, 1)
        self.upper_encoder_layer2 = ResNestLayer(64, 32, 4, 2)
        self.upper_encoder_layer3 = ResNestLayer(128, 64, 4, 2)
        self.common_encoder = nn.Sequential(ResNestLayer(512, 256, 4, 1))
        self.decoder_common_layer1 = ResNestLayer(1536, 64, 2, avg_down=False)
        self.decoder_common_layer2 = ResNestLayer(512, 16, 2, avg_down=False)
        self.decoder_common_layer3 = ResNestLayer(192, 4, 2, avg_down=False)
        self.decoder_common_layer4 = nn.Sequential(ResNestLayer(16, 4, 2, avg_down=False))
        self.decoder_upper_layer1 = ResNestLayer(1280, 96, 4, avg_down=False)
        self.decoder_upper_layer2 = ResNestLayer(512, 32, 4, avg_down=False)
        self.decoder_upper_layer3 = ResNestLayer(192, 16, 6, avg_down=False)
        self.decoder_upper_layer4 = nn.Sequential(ResNestLayer(64, 4, 6, avg_down=False))
        self.decoder_common_up1, self.decoder_common_up2, self.decoder_common_up3 = _up(), _up(), _up()
        self.decoder_upper_up1, self.decoder_upper_up2, self.decoder_upper_up3 = _up(), _up(), _up()
        self.fusion_rule = nn.Sequential(nn.Conv2d(16, 3, 3, padding=1), nn.ReLU())
        self.decoder_upper_projection_layer = nn.Sequential(nn.Conv2d(16, 3, 3, padding=1), nn.ReLU())
        self.decoder_common_projection_layer = nn.Sequential(nn.Conv2d(16, 3, 3, padding=1), nn.ReLU())  # unused
        # the "lower" (visible) branch shares every parametrised module with the "upper" (infrared) one
        self.encoder_lower = self.encoder_upper
        self.maxpool_lower = nn.MaxPool2d(3, 2, 1)
        self.lower_encoder_layer1 = self.upper_encoder_layer1
        self.lower_encoder_layer2 = self.upper_encoder_layer2
        self.lower_encoder_layer3 = self.upper_encoder_layer3
        self.decoder_lower_layer1 = self.decoder_upper_layer1
        self.decoder_lower_layer2 = self.decoder_upper_layer2
        self.decoder_lower_layer3 = self.decoder_upper_layer3
        self.decoder_lower_layer4 = self.decoder_upper_layer4
        self.decoder_lower_up1, self.decoder_lower_up2, self.decoder_lower_up3 = _up(), _up(), _up()
        self.decoder_lower_projection_layer = self.decoder_upper_projection_layer

    def _encode(self, x, side: str):
        f0 = getattr(self, f"encoder_{side}")(x)
        f1 = getattr(self, f"{side}_encoder_layer1")(getattr(self, f"maxpool_{side}")(f0))
        f2 = getattr(self, f"{side}_encoder_layer2")(f1)
        f3 = getattr(self, f"{side}_encoder_layer3")(f2)
        return f0, f1, f2, f3

    def _private(self, c, f, side: str):
        f0, f1, f2, f3 = f
        layer = lambda k: getattr(self, f"decoder_{side}_layer{k}")  # noqa: E731
        up = lambda k: getattr(self, f"decoder_{side}_up{k}")  # noqa: E731
        d = _to(up(1)(layer(1)(torch.cat([c, f3], 1))), f2)
        d = _to(up(2)(layer(2)(torch.cat([d, f2], 1))), f1)
        d = _to(up(3)(layer(3)(torch.cat([d, f1], 1))), f0)
        return layer(4)(d)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, torch.Tensor]:
        """ir, vis: N x 3 x H x W -> {'fusion', 'common', 'upper', 'lower'}, each N x 3 x H x W (after ReLU)."""
        fi = self._encode(ir, "upper")
        fv = self._encode(vis, "lower")
        c = self.common_encoder(torch.cat([fi[3], fv[3]], 1))
        d = _to(self.decoder_common_up1(self.decoder_common_layer1(torch.cat([c, fi[3], fv[3]], 1))), fi[2])
        d = _to(self.decoder_common_up2(self.decoder_common_layer2(torch.cat([d, fi[2], fv[2]], 1))), fi[1])
        d = _to(self.decoder_common_up3(self.decoder_common_layer3(torch.cat([d, fi[1], fv[1]], 1))), fi[0])
        e_c = self.decoder_common_layer4(d)
        e_ir = self._private(c, fi, "upper")
        e_vis = self._private(c, fv, "lower")
        return {
            "fusion": self.fusion_rule(e_ir + e_vis + e_c),
            "common": self.decoder_upper_projection_layer(e_c),
            "upper": self.decoder_upper_projection_layer(e_ir),
            "lower": self.decoder_lower_projection_layer(e_vis),
        }


class DeFusion(LearnedMethod):
    read_mode = "pil"  # RoadScene dataset class: PIL "L" then "RGB"

    def make_net(self) -> nn.Module:
        return DeFusionNet()

    def state_from_checkpoint(self, path):
        return load_checkpoint(path, self.spec.display, key="state_dict")

    def macs_inputs(self, h, w, device):
        z = torch.zeros(1, 3, h + 2 * PAD, w + 2 * PAD, device=device)
        return (z, z.clone())

    def outputs(self, ir: torch.Tensor, vis: torch.Tensor) -> dict[str, torch.Tensor]:
        """All four outputs (N x 3 x H x W, before the clamp) for gray or RGB inputs."""
        pad = lambda t: F.pad(t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t, (PAD,) * 4, mode="reflect")  # noqa: E731
        out = self.net(pad(ir), pad(vis))
        return {k: v[..., PAD:-PAD, PAD:-PAD] for k, v in out.items()}

    def raw(self, ir, vis):
        return self.outputs(ir, vis)["fusion"]

    @torch.no_grad()
    def fuse_rgb(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        check_inputs(ir, vis, vis_channels=(1, 3))
        self.require_loaded()
        return self.raw(*self._inputs(ir, vis)).clamp(0, 1).to(ir.device)

    def postprocess(self, raw):
        rgb = raw.clamp(0, 1)
        return (0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])

    def to_uint8(self, fused):
        return uint8_truncate(fused)
