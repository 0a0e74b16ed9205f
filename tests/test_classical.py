"""Training-free fusion rules: properties (self-fusion, range, colour via Y) and primitives against naive or
scipy/numpy references."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

import baselines
from baselines import classical as C

RULES = baselines.names("classical")


def smooth_pair(h=48, w=40, seed=0):
    """Two images with structure (smoothed noise plus an edge), float64 in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        img = ndimage.gaussian_filter(rng.random((h, w)), 1.5)
        img[:, : w // 3] += 0.3
        img = (img - img.min()) / (img.max() - img.min())
        out.append(torch.from_numpy(img)[None, None])
    return out


@pytest.fixture(scope="module")
def real_pair(shared_data):
    from mmdrfuse.images import read_gray

    ir_dir, vis_dir = shared_data / "MSRS/test/ir", shared_data / "MSRS/test/vi"
    stem = sorted(p.name for p in ir_dir.iterdir())[0]
    return read_gray(ir_dir / stem)[..., :160, :200], read_gray(vis_dir / stem)[..., :160, :200]


# -------------------------------------------------------------------------------------------------- properties
def test_registry_has_the_required_rules():
    assert {"average", "max", "laplacian", "dwt", "gff"} <= set(RULES)
    for name in RULES:
        m = baselines.get(name).build("cpu")
        assert m.num_params() == 0 and m.size_kb() == 0 and m.macs(1024, 1280) is None
        assert baselines.get(name).status("/nonexistent") is None


@pytest.mark.parametrize("name", RULES)
@pytest.mark.parametrize("shape", [(48, 40), (37, 53)])
def test_self_fusion_returns_the_image(name, shape):
    a, _ = smooth_pair(*shape)
    a = a.float()
    m = baselines.get(name).build("cpu")
    assert torch.allclose(m.fuse(a, a), a, atol=1e-6)


def test_self_fusion_real_image(real_pair):
    ir, _ = real_pair
    for name in RULES:
        assert torch.allclose(baselines.get(name).build("cpu").fuse(ir, ir), ir, atol=1e-6), name


@pytest.mark.parametrize("name", RULES)
def test_output_range_shape_dtype(name):
    a, b = smooth_pair(33, 45, seed=3)
    a, b = a.float(), (1 - b).float()
    m = baselines.get(name).build("cpu")
    for x, y in [(a, b), (torch.zeros_like(a), torch.ones_like(b)), (a, torch.zeros_like(a))]:
        f = m.fuse(x, y)
        assert f.shape == x.shape and f.dtype == x.dtype
        assert torch.isfinite(f).all() and f.min() >= 0 and f.max() <= 1
    u = m.to_uint8(m.fuse(a, b))
    assert u.dtype == np.uint8 and u.shape == (33, 45)


@pytest.mark.parametrize("name", RULES)
def test_batch_equals_single(name):
    a, b = smooth_pair(32, 36, seed=1)
    c, d = smooth_pair(32, 36, seed=2)
    m = baselines.get(name).build("cpu")
    both = m.fuse(torch.cat([a, c]).float(), torch.cat([b, d]).float())
    assert torch.allclose(both[1:], m.fuse(c.float(), d.float()), atol=1e-6)


def test_average_and_max_exact():
    a, b = smooth_pair()
    assert torch.allclose(baselines.get("average").build("cpu").fuse(a, b), (a + b) / 2)
    assert torch.equal(baselines.get("max").build("cpu").fuse(a, b), torch.maximum(a, b))


def test_symmetric_rules_are_symmetric():
    a, b = smooth_pair(40, 44, seed=5)
    for name in ["average", "max", "mgff", "tif", "cbf"]:
        m = baselines.get(name).build("cpu")
        assert torch.allclose(m.fuse(a, b), m.fuse(b, a), atol=1e-6), name


def test_multiscale_rules_keep_the_stronger_detail():
    """A textured source fused with a flat one keeps most of the texture in LP, DWT, GFF (energy of the detail)."""
    a, _ = smooth_pair(64, 64, seed=7)
    rng = np.random.default_rng(0)
    tex = torch.from_numpy(0.5 + 0.2 * np.sign(rng.standard_normal((64, 64))))[None, None]
    flat = torch.full_like(tex, 0.5)
    for name in ["laplacian", "dwt", "gff"]:
        f = baselines.get(name).build("cpu").fuse(tex, flat)
        assert (f - 0.5).abs().mean() > 0.6 * (tex - 0.5).abs().mean(), name


def test_colour_recombination_via_y():
    """Caller-side colour: fuse Y of the visible image, recombine its CbCr; with a zero IR and the max rule the
    colour image comes back (up to YCbCr rounding)."""
    from PIL import Image

    from mmdrfuse.images import recombine_color

    rng = np.random.default_rng(1)
    rgb = (ndimage.gaussian_filter(rng.random((30, 40, 3)), (2, 2, 0)) * 255).astype(np.uint8)
    ycc = np.asarray(Image.fromarray(rgb).convert("YCbCr"))
    y = torch.from_numpy(ycc[..., 0].astype(np.float32) / 255)[None, None]
    m = baselines.get("max").build("cpu")
    fused_y = m.to_uint8(m.fuse(torch.zeros_like(y), y))
    assert np.array_equal(fused_y, ycc[..., 0])
    back = np.asarray(recombine_color(fused_y, ycc[..., 1:]))
    assert np.abs(back.astype(int) - rgb).max() <= 3
    assert m.supports_color


# -------------------------------------------------------------------------------------------------- primitives
def test_pad_symmetric_matches_numpy():
    x = torch.arange(20.0).view(1, 1, 4, 5)
    assert np.array_equal(C.pad_symmetric(x, 3)[0, 0].numpy(), np.pad(x[0, 0].numpy(), 3, mode="symmetric"))


@pytest.mark.parametrize("mode,scipy_mode", [("replicate", "nearest"), ("circular", "wrap"),
                                             ("symmetric", "reflect"), ("reflect", "mirror")])
def test_box_mean_modes_match_scipy(mode, scipy_mode):
    x = torch.rand(1, 1, 23, 31, dtype=torch.float64)
    for r in (1, 4):
        ref = ndimage.uniform_filter(x[0, 0].numpy(), 2 * r + 1, mode=scipy_mode)
        assert np.allclose(C.box_mean(x, r, mode)[0, 0].numpy(), ref, atol=1e-12)


def test_box_mean_circular_larger_than_image():
    x = torch.rand(1, 1, 10, 12, dtype=torch.float64)
    ref = ndimage.uniform_filter(x[0, 0].numpy(), 35, mode="wrap")
    assert np.allclose(C.box_mean(x, 17, "circular")[0, 0].numpy(), ref, atol=1e-12)


def naive_box_truncated(x: np.ndarray, r: int) -> np.ndarray:
    h, w = x.shape
    out = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            out[i, j] = x[max(0, i - r):i + r + 1, max(0, j - r):j + r + 1].mean()
    return out


def test_guided_filter_matches_naive():
    rng = np.random.default_rng(0)
    g, p = rng.random((14, 11)), rng.random((14, 11))
    r, eps = 2, 0.01
    mi, mp = naive_box_truncated(g, r), naive_box_truncated(p, r)
    a = (naive_box_truncated(g * p, r) - mi * mp) / (naive_box_truncated(g * g, r) - mi * mi + eps)
    b = mp - a * mi
    ref = naive_box_truncated(a, r) * g + naive_box_truncated(b, r)
    got = C.guided_filter(torch.from_numpy(g)[None, None], torch.from_numpy(p)[None, None], r, eps)
    assert np.allclose(got[0, 0].numpy(), ref, atol=1e-10)


def test_guided_filter_large_radius_exceeding_image():
    g = torch.rand(1, 1, 9, 7, dtype=torch.float64)
    # r = 45 > image: every window is the whole image, so the filter is a global linear fit of p on g
    got = C.guided_filter(g, 2 * g + 1, 45, 1e-12)
    assert torch.allclose(got, 2 * g + 1, atol=1e-6)


def test_gaussian_is_fspecial():
    g = C.gaussian_1d(11, 5.0)
    k2 = torch.outer(g, g)
    ax = np.arange(11) - 5
    ref = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / 50.0)
    assert np.allclose(k2.numpy(), ref / ref.sum(), atol=1e-15)


def test_median3x3_matches_scipy():
    x = torch.rand(1, 1, 12, 9, dtype=torch.float64)
    ref = ndimage.median_filter(x[0, 0].numpy(), 3, mode="constant", cval=0.0)
    assert np.allclose(C.median3x3(x)[0, 0].numpy(), ref)


def test_cross_bilateral_matches_naive():
    rng = np.random.default_rng(2)
    a, b = rng.random((9, 8)) * 255, rng.random((9, 8)) * 255
    r, ss, sr = 5, 1.8, 25.0
    ap, bp = np.pad(a, r, mode="symmetric"), np.pad(b, r, mode="symmetric")
    ref = np.empty_like(a)
    for i in range(9):
        for j in range(8):
            num = den = 0.0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    wgt = math.exp(-(dy * dy + dx * dx) / (2 * ss * ss)) * math.exp(
                        -(b[i, j] - bp[i + r + dy, j + r + dx]) ** 2 / (2 * sr * sr))
                    num += wgt * ap[i + r + dy, j + r + dx]
                    den += wgt
            ref[i, j] = num / den
    got = C.cross_bilateral(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None])
    assert np.allclose(got[0, 0].numpy(), ref, atol=1e-9)


def test_cbf_weight_is_sum_of_covariance_eigenvalues():
    rng = np.random.default_rng(3)
    d = rng.standard_normal((8, 10))
    dp = np.pad(d, 2, mode="symmetric")
    ref = np.empty_like(d)
    for i in range(8):
        for j in range(10):
            win = dp[i:i + 5, j:j + 5]
            ref[i, j] = np.linalg.eigvalsh(np.cov(win, rowvar=False)).sum() + np.linalg.eigvalsh(np.cov(win)).sum()
    got = C._cbf_weight(torch.from_numpy(d)[None, None])
    assert np.allclose(got[0, 0].numpy(), ref, atol=1e-9)


def test_choose_max_consistency_matches_naive():
    rng = np.random.default_rng(4)
    c1, c2 = rng.standard_normal((7, 9)), rng.standard_normal((7, 9))

    def window_max(c):
        p = np.pad(np.abs(c), 1, mode="reflect")
        return ndimage.maximum_filter(p, 3, mode="constant", cval=0.0)

    mask = (window_max(c1) > window_max(c2)).astype(float)
    votes = ndimage.uniform_filter(mask, 3, mode="constant")[1:-1, 1:-1] * 9
    ref = np.where(votes > 4.5, c1, c2)
    got = C.choose_max_consistency(torch.from_numpy(c1)[None, None], torch.from_numpy(c2)[None, None])
    assert np.allclose(got[0, 0].numpy(), ref)


def test_laplacian_pyramid_levels_and_odd_sizes():
    a, b = smooth_pair(37, 53, seed=9)
    f = C.fuse_laplacian(a, b)
    assert f.shape == a.shape
    assert C._levels(37, 53, 4) == 3 and C._levels(480, 640, 4) == 4 and C._levels(3, 100, 4) == 0
    assert torch.allclose(C.fuse_laplacian(a, b, levels=0), (a + b) / 2)


def test_dwt_single_level_haar_by_hand():
    """Level-1 Haar by hand: average approximation, consistency-checked details, inverse transform."""
    pywt = pytest.importorskip("pywt")
    a, b = smooth_pair(16, 16, seed=11)
    ca = pywt.dwt2(a[0, 0].numpy(), "db1", mode="periodization")
    cb = pywt.dwt2(b[0, 0].numpy(), "db1", mode="periodization")
    details = tuple(C.choose_max_consistency(torch.from_numpy(x)[None, None], torch.from_numpy(y)[None, None])[0, 0]
                    .numpy() for x, y in zip(ca[1], cb[1]))
    ref = pywt.idwt2(((ca[0] + cb[0]) / 2, details), "db1", mode="periodization")
    assert np.allclose(C.fuse_dwt(a, b, levels=1)[0, 0].numpy(), ref, atol=1e-12)
