"""TextFusion (Cheng et al., arXiv 2312.14209, 2023): text-controlled fusion, ``TextFusionNet_t``.

Written from a description of the authors' public code (AWCXV/TextFusion @ f409874, checkpoint
models/LLVIP_pretrained.model).
One transformer-style block (DehazeFormer-like: RLN norm, 8x8 window attention with a learned relative-position
bias, depthwise 5x5 conv) per branch, visible ``v`` and infrared "assistant" ``a``; then
``mlp_vis(v) + text * mlp_ir(a)`` (512 channels) and a 3x3 conv to one channel, ``tanh / 2 + 0.5``.

Reproduced exactly, including the original's behaviour:

- the assistant branch computes its own window attention (thop counts its softmax) but then uses the *visible*
  branch's attention result (``proj_ass(conv_ass(ass_V) + attn_v)``): the IR enters the output only through the
  text-weighted term, so a zero text vector gives an IR-independent image;
- the relative-position bias MLP runs once per block and is shared by both branches;
- images are reflect-padded (bottom/right) to a multiple of 4, the attention maps to a multiple of 8; the output is
  cropped back to H x W.

Inputs: IR and visible as OpenCV gray / 255 (``main_test_gray_ir.py``). Output: ``round(255 x out)``
(round-half-even) as uint8; the original then saves a JPEG, which the caller may or may not reproduce.

Text: the network needs a 512-d CLIP ViT-B/32 ``encode_text`` vector (not L2-normalised). CLIP cannot run here,
so the vector is read from a ``.npy`` file (shape (512,) or (1, 512)): ``text=`` when building, else
``<weights root>/baselines/TextFusion/text_features.npy``. Without one the method builds (params / size / MACs)
but refuses to fuse, and is left out of quality tables.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines.base import LearnedMethod, uint8_round_half_even
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.paths import weights_root as _weights_root

TEXT_RELPATH = "baselines/TextFusion/text_features.npy"
DIM = 24
HEADS = 2
WINDOW = 8
TEXT_DIM = 512


def _reflect_conv(cin: int, cout: int, k: int, groups: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="reflect", groups=groups, bias=bias)


class PatchEmbed(nn.Module):
    def __init__(self, cin: int = 1, dim: int = DIM):
        super().__init__()
        self.proj = _reflect_conv(cin, dim, 3)

    def forward(self, x):
        return self.proj(x)


class RLN(nn.Module):
    """Revised LayerNorm: normalise over (C, H, W) per sample; also returns rescale/rebias from sigma and mu."""

    def __init__(self, dim: int = DIM, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.meta1 = nn.Conv2d(1, dim, 1)
        self.meta2 = nn.Conv2d(1, dim, 1)

    def forward(self, x):
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        sigma = torch.sqrt((x - mu).pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps)
        n = (x - mu) / sigma * self.weight + self.bias
        return n, self.meta1(sigma), self.meta2(mu)


def relative_positions(window: int = WINDOW) -> torch.Tensor:
    """(w*w, w*w, 2): sign(d) * ln(1 + |d|), d = (row_i - row_j, col_i - col_j) over row-major window tokens."""
    r = torch.arange(window, dtype=torch.float64)
    rows, cols = torch.meshgrid(r, r, indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()], dim=1)  # (w*w, 2)
    d = coords[:, None, :] - coords[None, :, :]
    return (torch.sign(d) * torch.log1p(d.abs())).float()


class WindowAttention(nn.Module):
    """Softmax(q k^T / sqrt(d) + B) v inside each window; B from a 2 -> 256 -> heads MLP on relative positions."""

    def __init__(self, dim: int = DIM, heads: int = HEADS, window: int = WINDOW):
        super().__init__()
        self.dim, self.heads, self.window = dim, heads, window
        self.scale = (dim // heads) ** -0.5
        self.register_buffer("relative_positions", relative_positions(window))
        self.meta = nn.Sequential(nn.Linear(2, 256, bias=True), nn.ReLU(), nn.Linear(256, heads, bias=True))
        self.softmax = nn.Softmax(dim=-1)

    def bias(self) -> torch.Tensor:
        return self.meta(self.relative_positions).permute(2, 0, 1).contiguous()  # heads x T x T

    def forward(self, qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """qkv: B x 3C x H x W (H, W multiples of the window) -> B x C x H x W."""
        b, c3, h, w = qkv.shape
        c, nh, ws = c3 // 3, self.heads, self.window
        hd = c // nh
        # windows: B x (3, heads, hd) x (h/ws, ws) x (w/ws, ws) -> (B * nW) x 3 x heads x T x hd
        t = qkv.view(b, 3, nh, hd, h // ws, ws, w // ws, ws)
        t = t.permute(0, 4, 6, 1, 2, 5, 7, 3).reshape(b * (h // ws) * (w // ws), 3, nh, ws * ws, hd)
        q, k, v = t[:, 0], t[:, 1], t[:, 2]
        attn = self.softmax((q * self.scale) @ k.transpose(-2, -1) + bias.unsqueeze(0))
        out = attn @ v  # (B * nW) x heads x T x hd
        out = out.view(b, h // ws, w // ws, nh, ws, ws, hd).permute(0, 3, 6, 1, 4, 2, 5)
        return out.reshape(b, c, h, w)


class Attention(nn.Module):
    def __init__(self, dim: int = DIM, heads: int = HEADS, window: int = WINDOW):
        super().__init__()
        self.window = window
        self.V = nn.Conv2d(dim, dim, 1)
        self.ass_V = nn.Conv2d(dim, dim, 1)
        self.QK = nn.Conv2d(dim, dim * 2, 1)
        self.ass_QK = nn.Conv2d(dim, dim * 2, 1)
        self.conv = _reflect_conv(dim, dim, 5, groups=dim)
        self.conv_ass = _reflect_conv(dim, dim, 5, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 1)
        self.proj_ass = nn.Conv2d(dim, dim, 1)
        self.attn = WindowAttention(dim, heads, window)

    def _windowed(self, qk: torch.Tensor, v: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        h, w = v.shape[-2:]
        qkv = torch.cat([qk, v], 1)
        ph, pw = (-h) % self.window, (-w) % self.window
        if ph or pw:
            qkv = F.pad(qkv, (0, pw, 0, ph), mode="reflect")
        return self.attn(qkv, bias)[..., :h, :w]

    def forward(self, n_v: torch.Tensor, n_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        bias = self.attn.bias()  # once per block, shared by both branches
        v = self.V(n_v)
        attn_v = self._windowed(self.QK(n_v), v, bias)
        ass_v = self.ass_V(n_a)
        self._windowed(self.ass_QK(n_a), ass_v, bias)  # computed (and counted) but unused, as in the original
        out_v = self.proj(self.conv(v) + attn_v)
        out_a = self.proj_ass(self.conv_ass(ass_v) + attn_v)  # the original's cross-branch reuse
        return out_v, out_a


class Mlp(nn.Module):
    def __init__(self, dim: int = DIM, hidden: int = 2 * DIM, out: int = DIM, bias: bool = True):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1, bias=bias), nn.ReLU(), nn.Conv2d(hidden, out, 1, bias=bias))

    def forward(self, x):
        return self.mlp(x)


class Block(nn.Module):
    def __init__(self, dim: int = DIM):
        super().__init__()
        self.norm1 = RLN(dim)
        self.ass_norm1 = RLN(dim)
        self.attn = Attention(dim)
        self.mlp = Mlp(dim)
        self.mlp_ass = Mlp(dim)

    def forward(self, v: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n_v, rs_v, rb_v = self.norm1(v)
        n_a, rs_a, rb_a = self.ass_norm1(a)
        out_v, out_a = self.attn(n_v, n_a)
        v = v + (out_v * rs_v + rb_v)
        a = a + (out_a * rs_a + rb_a)
        return v + self.mlp(v), a + self.mlp_ass(a)


class Layer(nn.Module):
    def __init__(self, dim: int = DIM, depth: int = 1):
        super().__init__()
        self.blocks = nn.ModuleList(Block(dim) for _ in range(depth))

    def forward(self, v, a):
        for blk in self.blocks:
            v, a = blk(v, a)
        return v, a


class FuseTextImage(nn.Module):
    def __init__(self, dim: int = DIM, text_dim: int = TEXT_DIM):
        super().__init__()
        self.mlp_vis = Mlp(dim, 2 * dim, text_dim, bias=False).mlp
        self.mlp_ir = Mlp(dim, 2 * dim, text_dim, bias=False).mlp

    def forward(self, v, a, text):
        return self.mlp_vis(v) + text.view(1, -1, 1, 1) * self.mlp_ir(a)


class PatchUnEmbed(nn.Module):
    def __init__(self, cin: int = TEXT_DIM, cout: int = 1):
        super().__init__()
        self.proj = nn.Sequential(_reflect_conv(cin, cout, 3), nn.PixelShuffle(1))

    def forward(self, x):
        return self.proj(x)


class PatchMerge(nn.Module):
    """In the checkpoint (and in Table 3's count) but never executed."""

    def __init__(self, dim: int = DIM):
        super().__init__()
        self.proj = nn.Conv2d(dim, 2 * dim, 2, stride=2)


class TextFusionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch_embed = PatchEmbed()
        self.patch_embed2 = PatchEmbed()
        self.layer1 = Layer()
        self.vt_features_fusion = Mlp(DIM, 4, 2 * DIM, bias=False)  # never executed
        self.patch_merge1 = PatchMerge()  # never executed
        self.fuse_text_image = FuseTextImage()
        self.patch_unembed1 = PatchUnEmbed()

    def forward(self, vis: torch.Tensor, ir: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        if text.numel() != TEXT_DIM:
            raise ValueError(f"text vector must have {TEXT_DIM} values (batch 1), got shape {tuple(text.shape)}")
        h, w = vis.shape[-2:]
        ph, pw = (-h) % 4, (-w) % 4
        if ph or pw:
            vis = F.pad(vis, (0, pw, 0, ph), mode="reflect")
            ir = F.pad(ir, (0, pw, 0, ph), mode="reflect")
        v, a = self.layer1(self.patch_embed(vis), self.patch_embed2(ir))
        x = self.patch_unembed1(self.fuse_text_image(v, a, text))
        return (torch.tanh(x) / 2 + 0.5)[..., :h, :w]


def load_text(source: str | os.PathLike | np.ndarray | torch.Tensor) -> torch.Tensor:
    """A 512-d text vector from an array or a ``.npy`` file -> float32 tensor (1, 512)."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise MMDRFuseError(f"{path}: TextFusion text vector not found; save a (512,) CLIP ViT-B/32 "
                                "encode_text vector there with numpy.save")
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise MMDRFuseError(f"{path}: not a .npy array ({exc.__class__.__name__}); save it with numpy.save") from None
    else:
        arr = source.detach().cpu().numpy() if torch.is_tensor(source) else np.asarray(source)
    if arr.size != TEXT_DIM:
        raise MMDRFuseError(f"TextFusion text vector must have {TEXT_DIM} values, got shape {arr.shape}")
    return torch.from_numpy(np.asarray(arr, dtype=np.float32).reshape(1, TEXT_DIM))


class TextFusion(LearnedMethod):
    read_mode = "cv2"

    def __init__(self, *args, text: str | os.PathLike | np.ndarray | torch.Tensor | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.text: torch.Tensor | None = None
        if text is None:
            default = _weights_root(self.weights_root) / TEXT_RELPATH
            if default.is_file():
                text = default
        if text is not None:
            self.set_text(text)

    def set_text(self, text) -> None:
        self.text = load_text(text).to(self.device)

    def make_net(self) -> nn.Module:
        return TextFusionNet()

    def macs_inputs(self, h, w, device):
        z = torch.zeros(1, 1, h, w, device=device)
        return (z, z.clone(), torch.zeros(1, TEXT_DIM, device=device))

    def raw(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        if self.text is None:
            raise MMDRFuseError(self.spec.note)
        return torch.cat([self.net(vis[i:i + 1], ir[i:i + 1], self.text) for i in range(ir.shape[0])])

    def to_uint8(self, fused):
        return uint8_round_half_even(fused)
