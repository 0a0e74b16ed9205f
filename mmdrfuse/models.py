"""MMDRFuse networks: the 113-parameter student and the 556,489-parameter teacher.

Both take one tensor ``x = cat([ir, vis], dim=1)`` of shape N x 2 x H x W, gray values in [0, 1], IR (or MRI) in
channel 0, and return the tanh output N x 1 x H x W in (-1, 1). ``forward`` returns only the fused image; the
intermediate 4-channel maps that distillation needs come from :meth:`features`, which returns ``(feat, out)``.

Architectures follow the paper (Deng et al., "MMDRFuse: Distilled Mini-Model with Dynamic Refresh for
Multi-Modality Image Fusion", ACM MM 2024) and the authors' checkpoints. State-dict keys match those checkpoints
(``conv1.1.weight`` ...: each conv is ``Sequential(ReflectionPad2d(1), Conv2d(..., padding=0), activation)``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# thop's count for nn.Upsample(mode="bicubic"): 259 operations per output element (thop 0.1.1's rule).
_BICUBIC_OPS_PER_OUTPUT = 259


@dataclass(frozen=True)
class StudentConfig:
    """The student's only knob is the width of its single hidden layer."""

    hidden: int = 4  # 2 -> 57 params (0.22 KB), 4 -> 113 (0.44 KB, the paper's), 6 -> 169 (0.66 KB)
    in_channels: int = 2  # IR/MRI and visible/PET/SPECT, IR first


def _conv_block(cin: int, cout: int, act: nn.Module | None, stride: int = 1) -> nn.Sequential:
    """ReflectionPad2d(1) -> 3x3 Conv2d (padding 0, bias) -> activation (index 2, absent when ``act`` is None)."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(cin, cout, 3, stride=stride, padding=0, bias=True)]
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


class _Countable(nn.Module):
    """num_params / size_kb shared by both networks."""

    def num_params(self) -> int:
        """Trainable parameters (Table 3 counts all of them)."""
        return sum(p.numel() for p in self.parameters())

    def size_kb(self, bytes_per_param: int = 4) -> float:
        """Model size as the paper reports it: params x 4 bytes (fp32) / 1024."""
        return self.num_params() * bytes_per_param / 1024.0


class Student(_Countable):
    """The 2-layer mini-model: Conv(2->hidden)+ReLU, Conv(hidden->1)+Tanh, both 3x3 with reflection padding."""

    def __init__(self, config: StudentConfig | None = None, **overrides):
        super().__init__()
        cfg = config or StudentConfig()
        if overrides:
            cfg = StudentConfig(**{**asdict(cfg), **overrides})
        if cfg.hidden < 1:
            raise ValueError(f"hidden width must be >= 1, got {cfg.hidden}")
        self.config = cfg
        self.conv1 = _conv_block(cfg.in_channels, cfg.hidden, nn.ReLU())
        self.conv2 = _conv_block(cfg.hidden, 1, nn.Tanh())

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(relu(conv1(x)), output)``: the hidden map used for feature distillation and the fused image."""
        feat = self.conv1(x)
        return feat, self.conv2(feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))

    def macs(self, h: int, w: int) -> int:
        """Multiply-accumulates of one forward on a 1 x 2 x h x w input, counted as thop does (bias excluded)."""
        c, k = self.config.hidden, 9
        return h * w * (self.config.in_channels * c * k + c * 1 * k)


@dataclass(frozen=True)
class TeacherConfig:
    """The teacher is fixed by the paper; widths are exposed for documentation and ablations."""

    width: int = 32  # full-resolution width (conv1, conv2, conv22)
    mid: int = 64  # half-resolution width (conv3 ... conv33)
    feat: int = 4  # channels of relu(conv11), the map distilled into the student's hidden layer
    in_channels: int = 2


class DenseSkipTrunk(nn.Module):
    """The dense encoder (one stride-2 stage) + skip-connected decoder shared by the teacher and MUFusion.

    conv1 ... conv22 and the bicubic x2 upsample; :meth:`trunk` returns ``cat(G11, G2_2)`` (2 x width channels),
    to which each network adds its own head (teacher: conv11 -> 4 + ReLU, conv00 -> 1 + tanh; MUFusion: conv11 -> 1
    + tanh). H and W must be even.
    """

    def __init__(self, in_channels: int = 2, width: int = 32, mid: int = 64):
        super().__init__()
        w, m, relu = width, mid, nn.ReLU
        self.conv1 = _conv_block(in_channels, w, relu())
        self.conv2 = _conv_block(w, w, relu())
        self.conv3 = _conv_block(2 * w, m, relu(), stride=2)
        self.conv4 = _conv_block(m, m, relu())
        self.conv5 = _conv_block(2 * m, m, relu())
        self.conv6 = _conv_block(3 * m, m, relu())
        self.conv66 = _conv_block(m, m, relu())
        self.conv55 = _conv_block(2 * m, m, relu())
        self.conv44 = _conv_block(2 * m, m, relu())
        self.conv33 = _conv_block(2 * m, m, relu())
        self.up = nn.Upsample(scale_factor=2, mode="bicubic", align_corners=False)
        self.conv22 = _conv_block(w + m, w, relu())

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        g11 = self.conv1(x)
        g21 = self.conv2(g11)
        g31 = self.conv3(torch.cat([g11, g21], 1))
        g41 = self.conv4(g31)
        g51 = self.conv5(torch.cat([g31, g41], 1))
        g61 = self.conv6(torch.cat([g31, g41, g51], 1))
        d = self.conv66(g61)
        d = self.conv55(torch.cat([g51, d], 1))
        d = self.conv44(torch.cat([g41, d], 1))
        g32 = self.conv33(torch.cat([g31, d], 1))
        g22 = self.conv22(torch.cat([g21, self.up(g32)], 1))
        return torch.cat([g11, g22], 1)


class Teacher(DenseSkipTrunk, _Countable):
    """Dense encoder (one stride-2 stage) + skip-connected decoder, 13 reflection-padded 3x3 convs (the paper's).

    Accepts any H, W: odd sides are reflect-padded to even before the forward pass and cropped back after.
    """

    def __init__(self, config: TeacherConfig | None = None):
        cfg = config or TeacherConfig()
        super().__init__(cfg.in_channels, cfg.width, cfg.mid)
        self.config = cfg
        self.conv11 = _conv_block(2 * cfg.width, cfg.feat, None)  # ReLU in features(): relu(conv11) is distilled
        self.conv00 = _conv_block(cfg.feat, 1, nn.Tanh())

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(relu(conv11), output)`` for any H, W (reflect-pad to even, crop back)."""
        h, w = x.shape[-2:]
        ph, pw = h % 2, w % 2
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        feat = torch.relu(self.conv11(self.trunk(x)))
        out = self.conv00(feat)
        if ph or pw:
            feat, out = feat[..., :h, :w], out[..., :h, :w]
        return feat, out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]

    def macs(self, h: int, w: int) -> int:
        """thop-style MACs for a 1 x 2 x h x w input (h, w even): conv out_elements x C_in x 9, + 259/output of bicubic."""
        hp, wp = h + h % 2, w + w % 2
        full, half = hp * wp, (hp // 2) * (wp // 2)
        total = 0
        for name, mod in self.named_children():
            if isinstance(mod, nn.Sequential):
                conv = mod[1]
                n_out = half if name in {"conv3", "conv4", "conv5", "conv6", "conv66", "conv55", "conv44", "conv33"} else full
                total += n_out * conv.out_channels * conv.in_channels * 9
        total += _BICUBIC_OPS_PER_OUTPUT * self.config.mid * full
        return total


def build(kind: str, **config) -> nn.Module:
    """Build a network by kind name: ``student`` or ``teacher`` (config keys as in the config dataclasses)."""
    if kind == "student":
        return Student(StudentConfig(**config))
    if kind == "teacher":
        return Teacher(TeacherConfig(**config))
    raise ValueError(f"unknown model kind {kind!r}; expected 'student' or 'teacher'")


def config_dict(model: nn.Module) -> dict:
    """``{"kind": ..., **config}``: enough to rebuild ``model`` with :func:`build`."""
    kind = "student" if isinstance(model, Student) else "teacher" if isinstance(model, Teacher) else None
    if kind is None:
        raise TypeError(f"not an MMDRFuse model: {type(model).__name__}")
    return {"kind": kind, **asdict(model.config)}
