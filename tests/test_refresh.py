"""Dynamic refresh: training SSIM/GMSD (reference values, independent implementations) and the bank logic."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import structural_similarity

from mmdrfuse import losses
from mmdrfuse.refresh import DynamicRefresh, OutputBank, gmsd_train, ssim_train


def _ref_inputs():
    g = torch.Generator().manual_seed(1)
    ir = torch.rand(4, 1, 64, 64, generator=g)
    vi = torch.rand(4, 1, 64, 64, generator=g)
    out = (0.6 * ir + 0.4 * vi + 0.05 * torch.randn(4, 1, 64, 64, generator=g)).clamp(0, 1)
    return ir, vi, out


@pytest.fixture(scope="module")
def ref_values(shared_reference):
    return json.loads((shared_reference / "loss_values.json").read_text())["values"]


def test_reference_ssim(ref_values):
    ir, vi, out = _ref_inputs()
    assert ssim_train(out, ir).item() == pytest.approx(ref_values["ssim_train(out,ir)"], rel=1e-5)
    s = (ssim_train(out, ir) + ssim_train(out, vi)).item()
    assert s == pytest.approx(ref_values["ssim_train(out,ir)+ssim_train(out,vi)"], rel=1e-5)


def test_reference_gmsd(ref_values):
    ir, vi, out = _ref_inputs()
    g = (gmsd_train(out, ir) + gmsd_train(out, vi)).item()
    assert g == pytest.approx(ref_values["gmsd_train(out,ir)+gmsd_train(out,vi)"], rel=1e-5)


def test_ssim_matches_skimage_gaussian_ssim():
    """skimage's Gaussian SSIM (sigma 1.5 -> 11x11, population covariance) averaged over the border-cropped map
    equals the valid-convolution training SSIM."""
    rng = np.random.default_rng(2)
    a = rng.random((40, 37))
    b = np.clip(0.7 * a + 0.3 * rng.random((40, 37)), 0, 1)
    _, smap = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    expect = smap[5:-5, 5:-5].mean()
    got = ssim_train(torch.tensor(a)[None, None], torch.tensor(b)[None, None]).item()
    assert got == pytest.approx(expect, rel=1e-6)


def _gmsd_naive(x: np.ndarray, y: np.ndarray, c: float = 170.0) -> float:
    def prep(a):
        a = a * 255.0 if a.max() <= 1 else a
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        return a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))

    kx = np.array([[1, 0, -1]] * 3, dtype=np.float64) / 3.0

    def mag(a):
        gx = ndimage.correlate(a, kx)[1:-1, 1:-1]
        gy = ndimage.correlate(a, kx.T)[1:-1, 1:-1]
        return np.sqrt(gx ** 2 + gy ** 2)

    mx, my = mag(prep(x)), mag(prep(y))
    gms = (2 * mx * my + c) / (mx ** 2 + my ** 2 + c)
    return float(gms.std(ddof=1))


def test_gmsd_matches_naive():
    rng = np.random.default_rng(3)
    xs = rng.random((3, 1, 30, 26))
    ys = np.clip(xs + 0.1 * rng.standard_normal(xs.shape), 0, 1)
    expect = np.mean([_gmsd_naive(xs[i, 0], ys[i, 0]) for i in range(3)])
    assert gmsd_train(torch.tensor(xs), torch.tensor(ys)).item() == pytest.approx(expect, rel=1e-6)


def test_ssim_auto_range_widens_for_negative_outputs():
    g = torch.Generator().manual_seed(4)
    x = torch.rand(1, 1, 16, 16, generator=g) * 2 - 1
    x[0, 0, 0, 0] = -0.9
    y = torch.rand(1, 1, 16, 16, generator=g)
    assert ssim_train(x, y, "auto").item() == pytest.approx(ssim_train(x, y, 2.0).item())
    assert ssim_train(y, x, "auto").item() == pytest.approx(ssim_train(y, x, 1.0).item())


# -------------------------------------------------------------------------------------------------- banks
@pytest.mark.parametrize("dtype,tol", [("float32", 0.0), ("float16", 1e-3), ("uint8", 1 / 127.5 / 2 + 1e-6)])
def test_bank_roundtrip(dtype, tol):
    bank = OutputBank(5, (1, 4, 4), dtype)
    v = torch.linspace(-1, 1, 32).view(2, 1, 4, 4)
    bank.put([3, 1], v)
    assert bank.filled.tolist() == [False, True, False, True, False]
    back = bank.get([3, 1])
    assert (back - v).abs().max().item() <= tol


def test_bank_spills_to_memmap_past_budget(tmp_path):
    bank = OutputBank(10, (1, 8, 8), "float16", memory_budget=100, spill_dir=tmp_path, name="b")
    assert bank.path is not None and bank.path.exists() and isinstance(bank.data, np.memmap)
    bank.put([9], torch.full((1, 1, 8, 8), 0.5))
    assert bank.get([9]).unique().tolist() == [0.5]
    small = OutputBank(10, (1, 8, 8), "float16", memory_budget=10**6, spill_dir=tmp_path, name="c")
    assert small.path is None and not isinstance(small.data, np.memmap)


def test_bank_state_roundtrip():
    a = OutputBank(4, (1, 2, 2), "float16")
    a.put([2], torch.full((1, 1, 2, 2), 0.25))
    b = OutputBank(4, (1, 2, 2), "float16")
    b.load_state(a.state())
    assert b.filled.tolist() == a.filled.tolist() and np.array_equal(b.data, a.data)
    with pytest.raises(ValueError):
        OutputBank(5, (1, 2, 2), "float16").load_state(a.state())


def _pool_features(x: torch.Tensor, depth: int) -> list[torch.Tensor]:
    """A cheap stand-in for VGG: average pools at 5 scales (differentiable, deterministic)."""
    feats, h = [x], x
    for _ in range(depth - 1):
        h = torch.nn.functional.avg_pool2d(h, 2)
        feats.append(h)
    return feats


def _batch(seed=0, n=2, s=16):
    g = torch.Generator().manual_seed(seed)
    ir, vi = torch.rand(n, 1, s, s, generator=g), torch.rand(n, 1, s, s, generator=g)
    return ir, vi


def test_epoch0_fills_both_banks_without_loss():
    ir, vi = _batch()
    r = DynamicRefresh(4, (1, 16, 16), "float32")
    out = (0.5 * (ir + vi)).requires_grad_(True)
    res = r.step([0, 2], out, ir, vi, 0, _pool_features(out, 5), _pool_features)
    assert res.filled and res.loss.item() == 0.0
    assert torch.equal(r.bank_s.get([0, 2]), out.detach()) and torch.equal(r.bank_g.get([0, 2]), out.detach())
    assert r.bank_s.filled.tolist() == [True, False, True, False]


def test_refresh_updates_only_when_better():
    ir, vi = _batch(1)
    r = DynamicRefresh(2, (1, 16, 16), "float32")
    good = 0.5 * (ir + vi)
    bad = torch.rand(ir.shape, generator=torch.Generator().manual_seed(9))
    r.step([0, 1], good, ir, vi, 0, _pool_features(good, 5), _pool_features)
    # a worse output: banks unchanged, both refresh terms active
    worse = bad.clone().requires_grad_(True)
    res = r.step([0, 1], worse, ir, vi, 1, _pool_features(worse, 5), _pool_features)
    assert not res.updated_s and not res.updated_g
    assert res.s_cur < res.s_bs and res.g_cur > res.g_bg and res.loss.item() > 0
    assert torch.equal(r.bank_s.get([0, 1]), good) and torch.equal(r.bank_g.get([0, 1]), good)
    # the same good output again: no strict improvement, no loss, no update
    res = r.step([0, 1], good, ir, vi, 1, _pool_features(good, 5), _pool_features)
    assert not res.updated_s and res.loss.item() == 0.0
    # a better-than-stored output overwrites the bank: start from the bad one stored
    r2 = DynamicRefresh(2, (1, 16, 16), "float32")
    r2.step([0, 1], bad, ir, vi, 0, _pool_features(bad, 5), _pool_features)
    res = r2.step([0, 1], good, ir, vi, 1, _pool_features(good, 5), _pool_features)
    assert res.updated_s and res.updated_g and res.loss.item() == 0.0
    assert torch.equal(r2.bank_s.get([0, 1]), good)


def test_gaps_are_detached_and_loss_matches_formula():
    ir, vi = _batch(2)
    good = 0.5 * (ir + vi)
    bad = torch.rand(ir.shape, generator=torch.Generator().manual_seed(11))
    r = DynamicRefresh(2, (1, 16, 16), "float32", gain=10.0)
    r.step([0, 1], good, ir, vi, 0, _pool_features(good, 5), _pool_features)
    out = bad.clone().requires_grad_(True)
    res = r.step([0, 1], out, ir, vi, 1, _pool_features(out, 5), _pool_features)
    res.loss.backward()
    # independent: constant gaps times the two terms written out by hand
    o2 = bad.clone().requires_grad_(True)
    f_o, f_m = _pool_features(o2, 5), _pool_features(good, 5)
    l_s = sum(((f_o[j] - f_m[j]) ** 2).mean() for j in (3, 4)) / 2 + (o2 - good).abs().mean()
    l_g = sum(((f_o[j] - f_m[j]) ** 2).mean() for j in (0, 1, 2)) / 3 \
        + ((losses.gradient(o2) - losses.gradient(good)) ** 2).mean()
    gap_s = (ssim_train(good, ir) + ssim_train(good, vi) - ssim_train(bad, ir) - ssim_train(bad, vi)).item()
    gap_g = (gmsd_train(bad, ir) + gmsd_train(bad, vi) - gmsd_train(good, ir) - gmsd_train(good, vi)).item()
    expect = 10.0 * (gap_s * l_s + gap_g * l_g)
    expect.backward()
    assert res.loss.item() == pytest.approx(expect.item(), rel=1e-5)
    assert torch.allclose(out.grad, o2.grad, rtol=1e-4, atol=1e-9)


def test_unfilled_slots_are_filled_not_compared():
    ir, vi = _batch(3)
    r = DynamicRefresh(4, (1, 16, 16), "float32")
    o = 0.5 * (ir + vi)
    res = r.step([1, 3], o, ir, vi, 2, _pool_features(o, 5), _pool_features)
    assert res.filled and res.loss.item() == 0.0 and r.bank_g.filled[[1, 3]].all()


def test_refresh_save_load_roundtrip(tmp_path):
    a = DynamicRefresh(3, (1, 4, 4), "uint8", memory_budget=10, spill_dir=tmp_path / "spill")
    assert a.bank_s.path is not None  # memory-mapped
    a.bank_s.put([1], torch.full((1, 1, 4, 4), 0.5))
    a.bank_g.put([2], torch.full((1, 1, 4, 4), -0.5))
    a.save(tmp_path / "banks.npz")
    b = DynamicRefresh(3, (1, 4, 4), "uint8")
    b.load(tmp_path / "banks.npz")
    assert np.array_equal(b.bank_s.data, a.bank_s.data) and np.array_equal(b.bank_g.data, a.bank_g.data)
    assert b.bank_s.filled.tolist() == [False, True, False] and b.bank_g.filled.tolist() == [False, False, True]
    with pytest.raises(ValueError):
        DynamicRefresh(3, (1, 4, 4), "float16").load(tmp_path / "banks.npz")


# ------------------------------------------------------------------------------------------ the tap cache
class _CountingFeatures:
    """_pool_features, counting the images it is run on (the stored outputs' passes are what the cache saves)."""

    def __init__(self):
        self.images = 0

    def __call__(self, x, depth):
        self.images += x.shape[0] if not x.requires_grad else 0
        return _pool_features(x, depth)


def _lagging_pair(seed=21):
    ir, vi = _batch(seed, n=4)
    good = 0.5 * (ir + vi)
    bad = torch.rand(ir.shape, generator=torch.Generator().manual_seed(seed + 1))
    return ir, vi, good, bad


def test_tap_cache_serves_the_stored_outputs_taps_exactly():
    """With the cache, a lagging batch seen again runs no feature pass on stored outputs, and every value
    (loss, gaps, terms, input gradient) equals the uncached computation."""
    ir, vi, good, bad = _lagging_pair()
    plain = DynamicRefresh(4, (1, 16, 16), "float16")
    cached = DynamicRefresh(4, (1, 16, 16), "float16", tap_cache=10**7)
    f_plain, f_cached = _CountingFeatures(), _CountingFeatures()
    for r, f in ((plain, f_plain), (cached, f_cached)):
        r.step([0, 1, 2, 3], good, ir, vi, 0, None, f)
    for ids in ([0, 1], [2, 3], [1, 2], [0, 1]):  # worse outputs: both terms active, no slot rewritten
        sel = torch.tensor(ids)
        results = []
        for r, f in ((plain, f_plain), (cached, f_cached)):
            out = bad[sel].clone().requires_grad_(True)
            res = r.step(ids, out, ir[sel], vi[sel], 1, None, f)
            res.loss.backward()
            results.append((res, out.grad))
        (a, ga), (b, gb) = results
        assert not a.updated_s and not a.updated_g and a.loss.item() > 0
        assert (a.loss.item(), a.loss_s, a.loss_g, a.s_bs, a.g_bg) == (b.loss.item(), b.loss_s, b.loss_g, b.s_bs,
                                                                       b.g_bg)
        assert torch.equal(ga, gb)
    assert f_plain.images == 4 * 2 * 2  # four batches of two, both banks, every time
    assert f_cached.images == 4 * 2  # each of the four patches once per bank
    assert (cached.taps_s.hits, cached.taps_s.misses) == (4, 4)


def test_tap_cache_forgets_a_rewritten_slot():
    ir, vi, good, bad = _lagging_pair(31)
    r = DynamicRefresh(4, (1, 16, 16), "float32", tap_cache=10**7)
    f = _CountingFeatures()
    r.step([0, 1, 2, 3], bad, ir, vi, 0, None, f)  # the banks start with the bad output
    worse = (bad + 0.5).clamp(0, 1)
    res = r.step([0, 1], worse[:2], ir[:2], vi[:2], 1, None, f)  # lags: taps of slots 0, 1 cached
    assert res.o_bs is not None and len(r.taps_s) == 2 and len(r.taps_g) == 2
    res = r.step([0, 1], good[:2], ir[:2], vi[:2], 1, None, f)  # better: both slots rewritten, taps dropped
    assert res.updated_s and res.updated_g and len(r.taps_s) == 0 and len(r.taps_g) == 0
    before = f.images
    res = r.step([0, 1], worse[:2].clone().requires_grad_(True), ir[:2], vi[:2], 1, None, f)
    assert f.images == before + 4  # the new stored outputs' taps computed afresh, for both banks
    assert len(r.taps_s) == 2
    r.load_state(r.state())  # restoring banks forgets every cached tap
    assert len(r.taps_s) == 0 and len(r.taps_g) == 0
