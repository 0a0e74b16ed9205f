"""MUFusion (Cheng, Xu & Wu, Information Fusion 2023): unsupervised fusion with a memory unit.

Written from a description of the authors' public code (AWCXV/MUFusion @ 223134e ``TwoFusion_net``; checkpoints
TNO / RoadScene for infrared-visible, harvard for medical images). The inference network is ``decoder(encoder(x))``:
a dense encoder with one stride-2 stage and a skip-connected decoder with a bicubic x2 upsample, 12 reflection-padded
3x3 convs, tanh output.

Pipeline as in the official test scripts:

- everything in **float64** (the scripts set the default tensor type to double); ``precision="float32"`` is
  offered as a ~4x faster option on CPU (outputs differ by ~1e-6; not the original);
- input cat([IR, VIS]) read with PIL ``L`` / 255 (the core convention);
- **tiling**: 128 x 128 tiles with stride 124 (plus one extra column of tiles at w - 128, one extra row at
  h - 128 and the corner tile), run as a batch, summed and divided by the per-pixel tile count. The official code
  cannot handle a side < 128 px (``np.resize`` wraps and the accumulation fails); here such images are run as one
  whole-image forward instead (``tiling="auto"``), the way the 64 x 96 test vectors were made. Odd sides
  of a whole-image forward are reflect-padded by one pixel and cropped back (the network needs even sizes);
- output tanh; the gray save is scipy's ``imsave`` bytescale: (x - min) * 255 / (max - min), clipped, + 0.5,
  truncated. ``fuse`` returns (x - min) / (max - min) (float64), ``to_uint8`` does the + 0.5 truncation.

Medical images: MUFusion's own medical script puts the PET/SPECT image in the IR slot; this suite keeps its core
order (MRI first). Note this when comparing with MUFusion's published medical results.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import LearnedMethod, uint8_round_half_up
from mmdrfuse.models import DenseSkipTrunk

TILE = 128
STRIDE = 124


class MUFusionNet(DenseSkipTrunk):
    """Keys ``convXX.1.weight``; forward = decoder(encoder(x)) of the original: the MMDRFuse teacher's trunk with a
    one-channel tanh head (conv11 64 -> 1)."""

    def __init__(self):
        super().__init__(in_channels=2, width=32, mid=64)
        self.conv11 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(64, 1, 3), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv11(self.trunk(x))


def tile_origins(h: int, w: int, tile: int = TILE, stride: int = STRIDE) -> list[tuple[int, int]]:
    """Top-left corners of the official tiling (h, w >= tile), duplicates kept as the original keeps them."""
    rows = list(range(0, h - tile + 1, stride))
    cols = list(range(0, w - tile + 1, stride))
    out = [(i, j) for i in rows for j in cols]
    out += [(i, w - tile) for i in rows]
    out += [(h - tile, j) for j in cols]
    out.append((h - tile, w - tile))
    return out


class MUFusion(LearnedMethod):
    dtype = torch.float64
    bytes_per_param = 8
    read_mode = "pil"

    def __init__(self, *args, tiling: str = "auto", tile_batch: int = 16, precision: str = "float64", **kwargs):
        if precision not in ("float64", "float32"):
            raise ValueError(f"precision must be 'float64' (the original) or 'float32', got {precision!r}")
        # float32 is ~4x faster on CPU and differs from the original by ~1e-6; Table 3 counts stay at 8 bytes
        self.dtype = torch.float64 if precision == "float64" else torch.float32
        super().__init__(*args, **kwargs)
        if tiling not in ("auto", "whole"):
            raise ValueError(f"tiling must be 'auto' or 'whole', got {tiling!r}")
        self.tiling = tiling  # "auto": official tiles when both sides >= 128, else whole image; "whole": never tile
        self.tile_batch = max(1, int(tile_batch))  # tiles per forward; no normalisation layer, so results equal

    def make_net(self) -> nn.Module:
        return MUFusionNet()

    def macs_inputs(self, h, w, device):
        return (torch.zeros(1, 2, h, w, device=device, dtype=self.dtype),)

    def whole(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        ph, pw = h % 2, w % 2
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        return self.net(x)[..., :h, :w]

    def tiled(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        origins = tile_origins(h, w)
        acc = x.new_zeros(n, 1, h, w)
        cnt = x.new_zeros(1, 1, h, w)
        for k in range(0, len(origins), self.tile_batch):
            chunk = origins[k:k + self.tile_batch]
            tiles = torch.cat([x[:, :, i:i + TILE, j:j + TILE] for i, j in chunk])  # (len(chunk) * n) x 2 x T x T
            out = self.net(tiles).view(len(chunk), n, 1, TILE, TILE)
            for (i, j), o in zip(chunk, out):
                acc[:, :, i:i + TILE, j:j + TILE] += o
                cnt[:, :, i:i + TILE, j:j + TILE] += 1
        return acc / cnt

    def raw(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        x = torch.cat([ir, vis], 1)
        h, w = x.shape[-2:]
        if self.tiling == "whole" or h < TILE or w < TILE:
            return self.whole(x)
        return self.tiled(x)

    def postprocess(self, raw: torch.Tensor) -> torch.Tensor:
        """scipy bytescale without the final rounding: (x - min) / (max - min) per image (0 when constant)."""
        flat = raw.flatten(1)
        lo = flat.min(1).values.view(-1, 1, 1, 1)
        rng = flat.max(1).values.view(-1, 1, 1, 1) - lo
        rng = torch.where(rng == 0, torch.ones_like(rng), rng)
        return ((raw - lo) / rng).clamp(0, 1)

    def to_uint8(self, fused):
        return uint8_round_half_up(fused)
