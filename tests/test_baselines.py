"""Learned baselines: registry, weights handling, Table 3 counts and the reference test vectors.

Expected values come from ../shared/BASELINES.md (official code run outside the repositories) and from MMDRFuse
Table 3 (parsed from ../shared/paper); MAC counts are also cross-checked against the installed thop.
"""
from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest
import torch
from torch import nn

import baselines
from baselines.base import count_macs, synthetic_state_dict
from mmdrfuse.errors import MMDRFuseError

LEARNED = ["textfusion", "mufusion", "lrrnet", "metafusion", "defusion", "tardal"]

# ../shared/BASELINES.md section 1: params (Table 3), thop params, exact thop MACs at 1024 x 1280.
COUNTS = {
    "textfusion": (73_859, 68_819, 88_708_481_120),
    "mufusion": (554_721, 554_721, 240_669_163_520),
    "lrrnet": (49_204, 48_690, 60_445_163_520),
    "metafusion": (811_714, 811_714, 1_063_172_177_920),
    "defusion": (7_874_473, 7_874_038, 322_696_495_104),
    "tardal": (296_577, 296_577, 388_853_923_840),
}
# ../shared/BASELINES.md checkpoint md5 table.
MD5 = {
    "textfusion": "1c296a76b419da57ffe6cf4ba1462045", "mufusion": "5a3fac2c380cc74d1d58ba9606c27a99",
    "mufusion-roadscene": "fa0e31acc3541c36ecaffb0e52e15ff0", "mufusion-harvard": "e06067f6e31ed564aba3cb0198b7f89e",
    "lrrnet": "779def4c58b08faced5248f2e8931d11", "tardal": "a84f38fd3c82642139408c89603e4157",
    "tardal+": "305af5a28990ec67abeef65cb473cb0e", "tardal++": "bee1d1a1cbfa8e79795474e9d87a063c",
}


def stats(t: torch.Tensor) -> tuple[float, float, float, float]:
    t = t.detach().double()
    return t.mean().item(), t.std().item(), t.min().item(), t.max().item()


def assert_stats(t, mean, std, lo=None, hi=None, tol=1e-5):
    m, s, a, b = stats(t)
    assert m == pytest.approx(mean, abs=tol) and s == pytest.approx(std, abs=tol), (m, s)
    if lo is not None:
        assert a == pytest.approx(lo, abs=tol) and b == pytest.approx(hi, abs=tol), (a, b)


def rand_pair(h=64, w=96):
    """BASELINES.md section 0: seed 0, ir then vis, float32 uniform."""
    g = torch.Generator().manual_seed(0)
    ir = torch.rand(1, 1, h, w, generator=g, dtype=torch.float32)
    vis = torch.rand(1, 1, h, w, generator=g, dtype=torch.float32)
    return ir, vis


@pytest.fixture(scope="module")
def vec():
    ir, vis = rand_pair()
    # the fingerprint of BASELINES.md section 0: same generator, same inputs
    assert ir.mean().item() == pytest.approx(0.497664, abs=1e-6)
    assert vis[0, 0, 0, :3].tolist() == pytest.approx([0.308154, 0.780522, 0.737250], abs=1e-6)
    return ir, vis


# ------------------------------------------------------------------------------------------------- registry
def test_registry_contract():
    assert set(LEARNED) <= set(baselines.REGISTRY)
    table3 = [s for s in baselines.REGISTRY.values() if s.table3]
    assert sorted(s.display for s in table3) == sorted(
        ["TextFusion", "MUFusion", "LRRNet", "MetaFusion", "DeFusion", "TarDAL"])
    for spec in baselines.REGISTRY.values():
        assert spec.kind in ("learned", "classical")
        assert spec.citation
        if spec.kind == "learned":
            assert spec.weights and all(w.relpath.startswith(f"baselines/{spec.display}/") for w in spec.weights)
            assert all(w.url and w.url.startswith("https://") for w in spec.weights)
    assert baselines.get("TarDAL") is baselines.REGISTRY["tardal"]


def test_unknown_name_did_you_mean():
    with pytest.raises(MMDRFuseError, match="did you mean 'tardal'"):
        baselines.get("tardl")
    with pytest.raises(MMDRFuseError, match="unknown method"):
        baselines.get("zzzz")


def test_venues_and_paper_rows_match_table3():
    from conftest import SHARED

    if SHARED is None:
        pytest.skip("../shared not found")
    text = (SHARED / "paper" / "MMDRFuse_ACMMM2024.txt").read_text(encoding="utf-8")
    for name in LEARNED:
        spec = baselines.get(name)
        m = re.search(rf"^{spec.display} (\d\d)’ (.+?) ([\d.]+) ([\d.]+) ([\d.]+)$", text, re.M)
        assert m, spec.display
        assert spec.venue == f"{m.group(1)}' {m.group(2)}"
        assert (spec.paper.size_kb, spec.paper.gflops, spec.paper.time_ms) == tuple(float(m.group(i)) for i in (3, 4, 5))


def test_sha256_and_md5_of_shared_checkpoints(shared_weights):
    for name, md5 in MD5.items():
        spec = baselines.get(name)
        path = spec.weights[0].path(shared_weights)
        data = path.read_bytes()
        assert hashlib.md5(data).hexdigest() == md5
        assert hashlib.sha256(data).hexdigest() == spec.weights[0].sha256
        assert spec.verify(shared_weights) == [(path, True)]


def test_missing_weights_one_line_error(tmp_path):
    for name in ["tardal", "lrrnet", "mufusion", "textfusion", "metafusion", "defusion"]:
        spec = baselines.get(name)
        with pytest.raises(MMDRFuseError) as exc:
            spec.build("cpu", tmp_path)
        msg = str(exc.value)
        assert "\n" not in msg
        assert str(tmp_path / spec.weights[0].relpath) in msg and spec.weights[0].url in msg


def test_available_lists(tmp_path, shared_weights):
    classical = baselines.names("classical")
    assert baselines.available(tmp_path) == classical
    avail = baselines.available(shared_weights)
    for n in ["tardal", "tardal+", "tardal++", "lrrnet", "mufusion", "mufusion-roadscene", "mufusion-harvard"]:
        assert n in avail
    reasons = baselines.unavailable(shared_weights)
    for n in ["metafusion", "defusion", "textfusion"]:  # unless someone dropped the files into ../shared
        if n not in avail:
            assert "\n" not in reasons[n]
    if "textfusion" not in avail:
        assert "text embedding" in reasons["textfusion"]


def test_textfusion_available_with_text_vector(tmp_path, shared_weights):
    d = tmp_path / "baselines" / "TextFusion"
    d.mkdir(parents=True)
    (d / "LLVIP_pretrained.model").symlink_to(shared_weights / "baselines/TextFusion/LLVIP_pretrained.model")
    assert "textfusion" not in baselines.available(tmp_path)
    np.save(d / "text_features.npy", np.zeros(512, np.float32))
    assert "textfusion" in baselines.available(tmp_path)
    m = baselines.get("textfusion").build("cpu", tmp_path)
    assert m.text is not None and m.text.shape == (1, 512)


# --------------------------------------------------------------------------------------------- Table 3 counts
@pytest.mark.parametrize("name", LEARNED)
def test_table3_params_size_macs(name):
    spec = baselines.get(name)
    m = spec.build("cpu", weights=False)
    params, thop_params, macs = COUNTS[name]
    assert m.num_params() == params
    assert round(m.size_kb(), 2) == spec.paper.size_kb
    report = m.count(1024, 1280)
    assert report.macs == macs and m.macs(1024, 1280) == macs
    assert report.params == thop_params
    if name != "metafusion":  # Table 3 prints "1063.000" for thop's 1063.172 G (BASELINES.md section 1)
        assert round(macs / 1e9, 3) == spec.paper.gflops


def _thop():
    thop = pytest.importorskip("thop")
    return thop


@pytest.mark.parametrize("name", LEARNED)
def test_counter_agrees_with_installed_thop(name, monkeypatch):
    """The hook counter against thop itself on a small real forward, restricted to thop 0.1.1's rules: AvgPool
    1 op per output and no functional ops (newer ultralytics-thop releases also count matmuls)."""
    import sys

    thop = _thop()
    monkeypatch.setattr(sys.modules["thop.profile"], "_COUNTS_FUNCTIONS", False, raising=False)
    m = baselines.get(name).build("cpu", weights=False)
    h, w = (32, 48)
    inputs = m.macs_inputs(h, w, torch.device("cpu"))
    mine = count_macs(m.net, inputs)

    def avgpool_011(mod, x, y):
        mod.total_ops += y.numel()

    net = m.make_net().to(dtype=m.dtype)
    macs, _ = thop.profile(net, inputs=inputs, verbose=False, custom_ops={nn.AvgPool2d: avgpool_011})
    assert mine.macs == int(macs)  # (newer thop releases count every parameter; 0.1.1's count is tested above)


def test_mufusion_macs_are_untiled_forward():
    m = baselines.get("mufusion").build("cpu", weights=False)
    assert m.bytes_per_param == 8 and m.dtype == torch.float64
    # conv MACs at 64 x 96 by hand: full-res convs conv1, conv2, conv22, conv11; half-res the other eight
    full, half = 64 * 96, 32 * 48
    conv = 9 * (full * (2 * 32 + 32 * 32 + 96 * 32 + 64 * 1)
                + half * (64 * 64 + 64 * 64 + 128 * 64 + 192 * 64 + 64 * 64 + 3 * 128 * 64))
    assert m.macs(64, 96) == conv + 259 * 64 * full


# ------------------------------------------------------------------------------------------------ test vectors
TARDAL = {  # checkpoint, BN mode: raw mean, std, min, max; after clip mean, std (BASELINES.md section 7)
    ("tardal", "batch"): (0.627833, 0.163629, -0.837972, 1.000000, 0.628251, 0.161195),
    ("tardal+", "running"): (-0.366683, 0.420355, -0.990536, 0.899040, 0.058517, 0.146444),
    ("tardal++", "running"): (0.253233, 0.571199, -0.908212, 0.998716, 0.399715, 0.397597),
    ("tardal", "running"): (0.542849, 0.152636, -0.757801, 0.998058, 0.543503, 0.149215),
    ("tardal+", "batch"): (0.029688, 0.521599, -0.991623, 0.987213, 0.239997, 0.302765),
}


@pytest.mark.parametrize("name,mode", list(TARDAL))
def test_tardal_vectors(name, mode, vec, shared_weights):
    ir, vis = vec
    m = baselines.get(name).build("cpu", shared_weights, bn_mode=mode)
    mean, std, lo, hi, cmean, cstd = TARDAL[(name, mode)]
    with torch.no_grad():
        assert_stats(m.raw(ir, vis), mean, std, lo, hi)
    assert_stats(m.fuse(ir, vis), cmean, cstd)


def test_tardal_default_bn_modes_and_buffers_untouched(vec, shared_weights):
    ir, vis = vec
    assert baselines.get("tardal").build("cpu", shared_weights).bn_mode == "batch"
    assert baselines.get("tardal++").build("cpu", shared_weights).bn_mode == "running"
    m = baselines.get("tardal").build("cpu", shared_weights)
    before = {k: v.clone() for k, v in m.net.state_dict().items() if "running" in k}
    pair = m.fuse(torch.cat([ir, vis]), torch.cat([vis, ir]))  # batch of 2: per-image statistics
    assert torch.allclose(pair[1:], m.fuse(vis, ir), atol=1e-6)
    assert all(torch.equal(v, m.net.state_dict()[k]) for k, v in before.items())
    assert not any(mod.training for mod in m.net.modules())


def test_lrrnet_vector(vec, shared_weights):
    ir, vis = vec
    m = baselines.get("lrrnet").build("cpu", shared_weights)
    with torch.no_grad():
        assert_stats(m.raw(ir, vis), 0.140093, 0.047805, -0.006892, 0.320052)
    u = m.to_uint8(m.fuse(ir, vis))
    assert u.dtype == np.uint8 and u.shape == (64, 96)
    assert u.mean() == pytest.approx(114.143717, abs=1e-4) and u.std(ddof=1) == pytest.approx(37.281774, abs=1e-4)


MUFUSION = {  # raw mean, std, min, max; bytescaled uint8 mean, std (BASELINES.md section 3)
    "mufusion": (0.535287, 0.177893, -0.140830, 0.954839, 157.357910, 41.402083),
    "mufusion-roadscene": (0.597046, 0.186812, -0.118065, 0.966834, 168.083008, 43.906683),
    "mufusion-harvard": (0.515219, 0.178700, -0.096219, 0.913574, 154.398438, 45.127877),
}


@pytest.mark.parametrize("name", list(MUFUSION))
def test_mufusion_whole_image_vectors(name, vec, shared_weights):
    ir, vis = vec
    m = baselines.get(name).build("cpu", shared_weights)
    mean, std, lo, hi, umean, ustd = MUFUSION[name]
    with torch.no_grad():
        raw = m.raw(ir.double(), vis.double())  # < 128 px: whole-image fallback
    assert raw.dtype == torch.float64
    assert_stats(raw, mean, std, lo, hi, tol=2e-6)
    u = m.to_uint8(m.fuse(ir, vis))
    assert u.mean() == pytest.approx(umean, abs=1e-5) and u.std(ddof=1) == pytest.approx(ustd, abs=1e-5)


@pytest.mark.slow  # ~27 G float64 MACs (9 tiles): about 30 s on 2 cores
def test_mufusion_official_tiling_vector(shared_weights):
    g = torch.Generator().manual_seed(0)
    ir = torch.rand(1, 1, 256, 320, generator=g).double()
    vis = torch.rand(1, 1, 256, 320, generator=g).double()
    m = baselines.get("mufusion").build("cpu", shared_weights, tile_batch=4)
    with torch.no_grad():
        tiled = m.raw(ir, vis)
    assert_stats(tiled, 0.537669, 0.179163, -0.167296, 0.965712, tol=2e-6)
    u = m.to_uint8(m.fuse(ir, vis))
    assert u.mean() == pytest.approx(158.663513, abs=1e-5) and u.std(ddof=1) == pytest.approx(40.324021, abs=1e-5)
    whole = baselines.get("mufusion").build("cpu", shared_weights, tiling="whole")
    with torch.no_grad():
        w = whole.raw(ir, vis)
    assert_stats(w, 0.536867, 0.180441, -0.167296, 0.965718, tol=2e-6)
    assert (tiled - w).abs().max() > 0.1  # tiling matters at tile borders (0.271 in BASELINES.md)


def test_mufusion_tile_origins_cover_image():
    from baselines.mufusion import tile_origins

    for h, w in [(128, 128), (256, 320), (480, 640), (131, 1000)]:
        cover = np.zeros((h, w), int)
        for i, j in tile_origins(h, w):
            assert 0 <= i <= h - 128 and 0 <= j <= w - 128
            cover[i:i + 128, j:j + 128] += 1
        assert cover.min() >= 1
    assert len(tile_origins(256, 320)) == 4 + 2 + 2 + 1


def test_mufusion_odd_small_sizes(shared_weights):
    m = baselines.get("mufusion").build("cpu", shared_weights)
    ir, vis = rand_pair(63, 77)
    out = m.fuse(ir, vis)
    assert out.shape == (1, 1, 63, 77) and 0 <= out.min() and out.max() <= 1


TEXTFUSION = {  # text vector -> mean, std, min, max of the output (BASELINES.md section 2)
    "zeros": (0.603253, 0.268526, 0.097964, 0.969031),
    "ones": (0.453366, 0.269582, 0.037544, 0.925813),
}


@pytest.mark.parametrize("text", list(TEXTFUSION))
def test_textfusion_vectors(text, vec, shared_weights):
    ir, vis = vec
    m = baselines.get("textfusion").build("cpu", shared_weights, text=getattr(np, text)(512))
    out = m.fuse(ir, vis)
    assert_stats(out, *TEXTFUSION[text])
    if text == "zeros":
        u = m.to_uint8(out)
        assert u.mean() == pytest.approx(153.819824, abs=1e-4) and u.std(ddof=1) == pytest.approx(68.470644, abs=1e-4)
        assert (u.min(), u.max()) == (25, 247)
        # a zero text vector makes the output IR-independent (the original's cross-branch reuse)
        assert torch.equal(out, m.fuse(torch.zeros_like(ir), vis))


def test_textfusion_padding_vector(shared_weights):
    ir, vis = rand_pair(61, 90)
    m = baselines.get("textfusion").build("cpu", shared_weights, text=np.zeros((1, 512), np.float32))
    out = m.fuse(ir, vis)
    assert out.shape == (1, 1, 61, 90)
    assert_stats(out, 0.602550, 0.268858, 0.097487, 0.965157)


def test_textfusion_without_text(vec, shared_weights, tmp_path):
    m = baselines.get("textfusion").build("cpu", shared_weights)
    if m.text is None:
        with pytest.raises(MMDRFuseError, match="text embedding"):
            m.fuse(*vec)
    bad = tmp_path / "t.npy"
    np.save(bad, np.zeros(300))
    with pytest.raises(MMDRFuseError, match="512"):
        m.set_text(bad)


def test_metafusion_synthetic_vector(vec):
    ir, vis = vec
    m = baselines.get("metafusion").build("cpu", weights=False)
    with pytest.raises(MMDRFuseError, match="MetaFusion"):
        m.fuse(ir, vis)
    state = synthetic_state_dict(m.net, gain=2.0)
    assert len(state) == 36 and sum(v.numel() for v in state.values()) == 2_252_994
    m.load_state_dict(state)
    rgb = torch.cat([vis, 0.9 * vis, 0.8 * vis], 1)
    with torch.no_grad():
        w = m.net(torch.cat([ir, rgb], 1))
        v = m.raw(ir, rgb)
    assert_stats(w[:, 0], 0.734803, 0.040000, 0.579027, 0.875088)
    assert_stats(w[:, 1], 0.679627, 0.044280, 0.515958, 0.828384)
    assert_stats(v, 0.709382, 0.291023, 0.013118, 1.494059)
    fused = m.fuse(ir, rgb)
    assert fused.max() <= 1 and torch.allclose(fused, v.clamp(0, 1))


def test_synthetic_fill_rule():
    state = synthetic_state_dict({"w": torch.zeros(4, 2), "b": torch.zeros(4)}, gain=1.0)
    u = np.array([0.182916, 0.740085, 0.564395, 0.454749])  # BASELINES.md section 5
    assert np.allclose(state["b"].numpy(), 0.1 * (2 * u - 1), atol=1e-6)
    assert np.allclose(state["w"].flatten()[:4].numpy(), (2 * u - 1) * np.sqrt(3 / 2), atol=1e-6)


def test_defusion_structure():
    m = baselines.get("defusion").build("cpu", weights=False)
    state = m.net.state_dict()
    assert len(state) == 676
    assert len({id(p) for p in m.net.parameters()}) == 384
    layer_params = {  # BASELINES.md section 6 layer table
        "encoder_upper.2": 11_808, "upper_encoder_layer1": 37_248, "upper_encoder_layer2": 88_448,
        "upper_encoder_layer3": 328_320, "common_encoder": 5_245_440, "decoder_common_layer1": 627_008,
        "decoder_common_layer2": 51_840, "decoder_common_layer3": 5_168, "decoder_common_layer4": 1_392,
        "decoder_upper_layer1": 1_260_480, "decoder_upper_layer2": 160_128, "decoder_upper_layer3": 50_048,
        "decoder_upper_layer4": 5_392,
    }
    for prefix, n in layer_params.items():
        assert sum(p.numel() for p in m.net.get_submodule(prefix).parameters()) == n, prefix
    assert m.net.encoder_lower is m.net.encoder_upper
    # padded 1056 x 1312: bilinear x2 outputs are 48 HW (common decoder) + 2 x 120 HW (private decoder, twice)
    # at 11 ops each; AvgPool outputs 90 HW at 1 op each (BASELINES.md: 4.389 G and 0.125 G)
    hw = 1056 * 1312
    report = m.count(1024, 1280)
    assert report.by_type["Upsample"] == 11 * 288 * hw
    assert report.by_type["AvgPool2d"] == 90 * hw
    assert round(report.by_type["Conv2d"] / 1e9, 3) == 318.183


def test_defusion_synthetic_vector(vec):
    ir, vis = vec
    m = baselines.get("defusion").build("cpu", weights=False)
    m.load_state_dict(synthetic_state_dict(m.net, gain=1.0))
    with torch.no_grad():
        out = m.outputs(ir, vis)
    assert out["fusion"].shape == (1, 3, 64, 96)
    assert_stats(out["fusion"], 2.320936, 1.951494, 0.0, 5.376626)
    assert_stats(out["fusion"].clamp(0, 1), 0.681995, 0.452050)
    assert_stats(out["common"], 0.492453, 0.502404)
    assert_stats(out["upper"], 1.052267, 0.859573)
    assert_stats(out["lower"], 1.056476, 0.859850)
    gray = m.fuse(ir, vis)
    rgb = out["fusion"].clamp(0, 1)
    assert torch.allclose(gray, 0.299 * rgb[:, :1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:], atol=1e-6)


# ------------------------------------------------------------------------------------------------ interface
def test_fuse_validates_inputs(shared_weights):
    m = baselines.get("tardal").build("cpu", shared_weights)
    with pytest.raises(ValueError):
        m.fuse(torch.rand(1, 64, 96), torch.rand(1, 64, 96))
    with pytest.raises(ValueError):
        m.fuse(torch.rand(1, 1, 64, 96), torch.rand(1, 1, 64, 90))
    with pytest.raises(ValueError):
        m.fuse(torch.rand(1, 1, 8, 8), torch.rand(1, 3, 8, 8))


def test_uint8_conventions():
    from baselines.base import uint8_round_half_even, uint8_round_half_up, uint8_truncate

    # 255 x f: 0, 127.5 (an exact tie), 191.25, 254.49, 254.745, 306 (saturates), -25.5 (saturates)
    f = torch.tensor([[0.0, 0.5, 0.75, 0.998, 0.999, 1.2, -0.1]], dtype=torch.float64)
    assert uint8_truncate(f).tolist() == [[0, 127, 191, 254, 254, 255, 0]]
    assert uint8_round_half_up(f).tolist() == [[0, 128, 191, 254, 255, 255, 0]]
    assert uint8_round_half_even(f).tolist() == [[0, 128, 191, 254, 255, 255, 0]]
    assert uint8_round_half_even(torch.tensor([[0.5 * 253 / 255]], dtype=torch.float64)).tolist() == [[126]]  # 126.5 -> even


def test_preprocess_reading_quirks(tmp_path, shared_weights):
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "v.png")
    Image.fromarray(rgb[..., 0]).save(tmp_path / "i.png")
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    for name in ["tardal", "lrrnet", "mufusion"]:
        m = baselines.get(name).build("cpu", shared_weights)
        ir, vis = m.preprocess(tmp_path / "i.png", tmp_path / "v.png")
        assert ir.shape == vis.shape == (1, 1, 20, 30)
        assert torch.equal(ir[0, 0], torch.from_numpy(rgb[..., 0].astype(np.float32) / 255))
        # PIL and OpenCV's BGR2GRAY round the 0.299/0.587/0.114 luma; OpenCV's IMREAD_GRAYSCALE (LRRNet) leaves the
        # conversion to libpng, whose fixed-point weights can land one level away
        tol = 1.01 if m.read_mode == "cv2" else 0.51
        assert np.abs(vis[0, 0].double().numpy() * 255 - luma).max() <= tol
    meta = baselines.get("metafusion").build("cpu", weights=False)
    ir, vis = meta.preprocess(tmp_path / "i.png", tmp_path / "v.png")
    assert ir.shape == (1, 1, 384, 512) and vis.shape == (1, 3, 384, 512)


def test_misplaced_weights_file_is_refused(tmp_path):
    """A file at a method's weights path that is not its published checkpoint is an error, not a silent fusion."""
    import baselines

    spec = baselines.get("tardal")
    w = spec.weights[0]
    if w.sha256 is None:
        pytest.skip("no pinned sha256 for tardal's weights")
    p = w.path(tmp_path)
    p.parent.mkdir(parents=True)
    p.write_bytes(b"not the published file")
    with pytest.raises(MMDRFuseError, match="sha256 differs"):
        spec.build(weights_root=tmp_path)
