"""Metric properties and agreement with independent implementations (numpy/scipy/scikit-image/scikit-learn).

The naive reference implementations below follow the written definitions (docs/metrics.md, ../shared/SPEC.md) with
direct 2-D convolutions and loops-free numpy; they share no code with mmdrfuse.metrics.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmdrfuse import metrics as M
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.metrics import _primitives as P

scipy_signal = pytest.importorskip("scipy.signal")
scipy_ndimage = pytest.importorskip("scipy.ndimage")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ------------------------------------------------------------------------------------------------ fixtures
def _scene(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random scene with edges, flat patches and saturated areas (integers 0..255)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    img = 110 + 60 * np.sin(x / (3 + seed)) * np.cos(y / 5.0) + rng.normal(0, 12, (h, w))
    img[h // 4: h // 2, w // 5: w // 2] = 30 + 10 * seed  # flat patch
    img[-6:, :] = 255  # saturated band
    img[:, :3] = 0  # black border
    return np.clip(np.round(img), 0, 255)


@pytest.fixture(scope="module")
def triple():
    """(F, A, B) numpy images of 48 x 57 plus their N x 1 x H x W tensors."""
    a, b = _scene(48, 57, 1), _scene(48, 57, 2)
    f = np.clip(np.round(0.6 * a + 0.5 * b - 20 + _scene(48, 57, 3) * 0.1), 0, 255)
    t = [torch.from_numpy(x)[None, None] for x in (f, a, b)]
    return (f, a, b), t


# ----------------------------------------------------------------------------------- naive references
def _corr(x, y):
    x = x - x.mean()
    y = y - y.mean()
    return (x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum())


def _vif_naive(ref, dist):
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (5 - scale) + 1
        sd = n / 5.0
        m = (n - 1) / 2
        yy, xx = np.mgrid[-m:m + 1, -m:m + 1]
        win = np.exp(-(xx * xx + yy * yy) / (2 * sd * sd))
        win /= win.sum()
        if scale > 1:
            ref = scipy_signal.convolve2d(ref, win, "valid")[::2, ::2]
            dist = scipy_signal.convolve2d(dist, win, "valid")[::2, ::2]
        c = lambda z: scipy_signal.convolve2d(z, win, "valid")  # noqa: E731
        mu1, mu2 = c(ref), c(dist)
        s1 = np.maximum(c(ref * ref) - mu1 ** 2, 0)
        s2 = np.maximum(c(dist * dist) - mu2 ** 2, 0)
        s12 = c(ref * dist) - mu1 * mu2
        eps = 1e-10
        g = s12 / (s1 + eps)
        sv = s2 - g * s12
        lo1, lo2 = s1 < eps, s2 < eps
        g[lo1] = 0
        sv[lo1] = s2[lo1]
        s1[lo1] = 0
        g[lo2] = 0
        sv[lo2] = 0
        neg = g < 0
        sv[neg] = s2[neg]
        g[neg] = 0
        sv[sv <= eps] = eps
        num += np.sum(np.log10(1 + g * g * s1 / (sv + 2)))
        den += np.sum(np.log10(1 + s1 / 2))
    v = num / den
    return 1.0 if np.isnan(v) else v


def _qabf_naive(f, a, b):
    hx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)
    hy = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)

    def grad(img):
        sx = scipy_signal.convolve2d(img, hx, "same")
        sy = scipy_signal.convolve2d(img, hy, "same")
        ang = np.full(img.shape, math.pi / 2)
        nz = sx != 0
        ang[nz] = np.arctan(sy[nz] / sx[nz])
        return np.sqrt(sx * sx + sy * sy), ang

    def q(ga, aa, gf, af):
        rel = np.zeros_like(ga)
        m = ga > gf
        rel[m] = gf[m] / ga[m]
        m = ga == gf
        rel[m] = gf[m]
        m = ga < gf
        rel[m] = ga[m] / gf[m]
        ang = 1 - np.abs(aa - af) / (math.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (rel - 0.5))) * 0.9879 / (1 + np.exp(-22 * (ang - 0.8)))

    (ga, aa), (gb, ab), (gf, af) = grad(a), grad(b), grad(f)
    return np.sum(q(ga, aa, gf, af) * ga + q(gb, ab, gf, af) * gb) / np.sum(ga + gb)


def _nabf_naive(f, a, b):
    kv = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float) / 8
    kh = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float) / 8

    def grad(img):
        gv = scipy_ndimage.correlate(img, kv, mode="mirror")
        gh = scipy_ndimage.correlate(img, kh, mode="mirror")
        with np.errstate(divide="ignore", invalid="ignore"):
            ang = np.where((gv == 0) & (gh == 0), 0.0, np.arctan(gv / gh))
        return np.sqrt(gv ** 2 + gh ** 2), ang

    (ga, aa), (gb, ab), (gf, af) = grad(a), grad(b), grad(f)

    def q(gs, as_):
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where((gs == 0) | (gf == 0), 0.0, np.where(gs > gf, gf / gs, gs / gf))
        ang = np.abs(np.abs(as_ - af) - math.pi / 2) * 2 / math.pi
        return np.sqrt(0.9999 / (1 + np.exp(-19 * (rel - 0.5))) * 0.9995 / (1 + np.exp(-22 * (ang - 0.5))))

    wa = np.where(ga >= 2, ga ** 1.5, 0.001)
    wb = np.where(gb >= 2, gb ** 1.5, 0.001)
    na = (gf > ga) & (gf > gb)
    return np.sum(na * ((1 - q(ga, aa)) * wa + (1 - q(gb, ab)) * wb)) / np.sum(wa + wb)


def _matlab_round(x):
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def _normalize1(x):
    if x.max() == 0 and x.min() == 0:
        return x
    return _matlab_round((x - x.min()) / (x.max() - x.min()) * 255)


def _freqspace_shifted(h, w, su, sv):
    """r on MATLAB's freqspace([h, w], 'meshgrid') grid (centred, fftshift order), u scaled by su, v by sv."""
    fu = (np.arange(w) - w // 2) * (2.0 / w) * su
    fv = (np.arange(h) - h // 2) * (2.0 / h) * sv
    u, v = np.meshgrid(fu, fv)
    return np.sqrt(u * u + v * v)


def _filter_fft(x, s):
    return np.real(np.fft.ifft2(np.fft.ifftshift(np.fft.fftshift(np.fft.fft2(x)) * s)))


def _qcb_naive(f, a, b):
    h, w = f.shape
    r = _freqspace_shifted(h, w, w / 30, h / 30)
    sd = np.exp(-(r / 15.3870) ** 2) - 0.7622 * np.exp(-(r / 1.3456) ** 2)
    yy, xx = np.mgrid[-15:16, -15:16]

    def contrast(img):
        img = _filter_fft(_normalize1(img), sd)
        g = [np.exp(-(xx * xx + yy * yy) / (2 * s * s)) / (2 * np.pi * s * s) for s in (2, 4)]
        c = np.abs(scipy_signal.correlate2d(img, g[0], "same") / scipy_signal.correlate2d(img, g[1], "same") - 1)
        return c ** 3 / (c ** 2 + 1e-4)

    ca, cb, cf = contrast(a), contrast(b), contrast(f)
    qa = np.where(ca < cf, ca / cf, cf / ca)
    qb = np.where(cb < cf, cb / cf, cf / cb)
    return np.mean((ca ** 2 * qa + cb ** 2 * qb) / (ca ** 2 + cb ** 2))


def _qcv_naive(f, a, b):
    h, w = f.shape
    f, a, b = _normalize1(f), _normalize1(a), _normalize1(b)
    r = _freqspace_shifted(h, w, w / 8, h / 8)
    csf = 2.6 * (0.0192 + 0.144 * r) * np.exp(-(0.144 * r) ** 1.1)
    sx = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)

    def blocks(x, fn):
        return np.array([[fn(x[i:i + 16, j:j + 16]) for j in range(0, w, 16)] for i in range(0, h, 16)])

    num = den = 0.0
    for s in (a, b):
        g = np.hypot(scipy_signal.correlate2d(s, sx, "same"), scipy_signal.correlate2d(s, sx.T, "same"))
        lam = blocks(g, lambda z: np.sum(z ** 5))
        d = blocks(_filter_fft(s - f, csf), lambda z: np.sum(z ** 2) / 256)  # blkproc pads edge blocks with 0
        num += np.sum(lam * d)
        den += np.sum(lam)
    return num / den


def _naive(name, f, a, b):
    if name.startswith("SSIM"):
        ssim = pytest.importorskip("skimage.metrics").structural_similarity
    if name == "MI":
        mutual_info_score = pytest.importorskip("sklearn.metrics").mutual_info_score
    if name == "SD":
        return f.std()
    if name == "EN":
        h = np.bincount(f.astype(np.int64).ravel(), minlength=256) / f.size
        h = h[h > 0]
        return -np.sum(h * np.log2(h))
    if name == "SF":
        return np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2))
    if name == "AG":
        gy, gx = np.gradient(f)
        return np.mean(np.sqrt((gx ** 2 + gy ** 2) / 2))
    if name == "CC":
        return (_corr(a, f) + _corr(b, f)) / 2
    if name == "SCD":
        return _corr(f - b, a) + _corr(f - a, b)
    if name == "MSE":
        return (np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2
    if name == "PSNR":
        return 10 * np.log10(f.max() ** 2 / _naive("MSE", f, a, b))
    if name == "MI":
        return mutual_info_score(f.ravel(), a.ravel()) + mutual_info_score(f.ravel(), b.ravel())
    if name == "SSIM":
        return ssim(f, a, data_range=2) + ssim(f, b, data_range=2)
    if name == "SSIM_dr255":
        return ssim(f, a, data_range=255) + ssim(f, b, data_range=255)
    if name == "SSIM_gauss255":
        kw = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        return (ssim(f, a, **kw) + ssim(f, b, **kw)) / 2
    if name == "VIF":
        return _vif_naive(a, f) + _vif_naive(b, f)
    if name == "Qabf":
        return _qabf_naive(f, a, b)
    if name == "Nabf":
        return _nabf_naive(f, a, b)
    if name == "CE":
        def ce(s):
            ps = np.bincount(s.astype(np.int64).ravel(), minlength=256) / s.size
            pf = np.bincount(f.astype(np.int64).ravel(), minlength=256) / f.size
            m = (ps > 0) & (pf > 0)
            return np.sum(ps[m] * np.log2(ps[m] / pf[m]))
        return (ce(a) + ce(b)) / 2
    if name == "EI":
        k = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float)
        gx = scipy_ndimage.correlate(f, k, mode="nearest")
        gy = scipy_ndimage.correlate(f, k.T, mode="nearest")
        return np.mean(np.sqrt(gx ** 2 + gy ** 2))
    if name == "RMSE":
        return (np.sqrt(np.mean((f - a) ** 2)) + np.sqrt(np.mean((f - b) ** 2))) / 2
    if name == "Qcb":
        return _qcb_naive(f, a, b)
    if name == "Qcv":
        return _qcv_naive(f, a, b)
    raise KeyError(name)


# ----------------------------------------------------------------------------------------------- registry
def test_registry_contract():
    assert M.PAPER_METRICS == ["SD", "SCD", "VIF", "Qabf", "SSIM", "CC"]
    for n in M.PAPER_METRICS:
        assert M.METRICS[n].in_paper
    for n in ["EN", "SF", "AG", "MI", "PSNR", "MSE", "Nabf", "SSIM_gauss255"]:
        assert n in M.METRICS and not M.METRICS[n].in_paper
    assert not M.get("MSE").higher_is_better and not M.get("Nabf").higher_is_better
    assert M.get("VIF").higher_is_better
    for spec in M.METRICS.values():
        assert callable(spec.fn) and spec.description and "\n" not in spec.description


def test_registry_order_directions_and_descriptions():
    """Every metric is registered where it is defined, with a direction, a one-line description, its smallest side
    and a shared-Batch implementation; the paper's six come first in its column order, the others as registered."""
    assert list(M.METRICS) == ["SD", "SCD", "VIF", "Qabf", "SSIM", "CC", "EN", "SF", "AG", "MI", "PSNR", "MSE",
                               "Nabf", "SSIM_dr255", "SSIM_gauss255", "CE", "EI", "RMSE", "Qcb", "Qcv"]
    assert [n for n, s in M.METRICS.items() if s.in_paper] == M.PAPER_METRICS
    for name, spec in M.METRICS.items():
        assert isinstance(spec.higher_is_better, bool), name
        assert spec.description and "\n" not in spec.description, name
        assert isinstance(spec.min_size, int) and spec.min_size >= 1, name
        assert callable(spec.impl) and spec.fn is getattr(M, name), name
        assert spec.fn.__module__ != "mmdrfuse.metrics", name  # registered in its own module
    assert [n for n, s in M.METRICS.items() if not s.needs_sources] == ["SD", "EN", "SF", "AG", "EI"]


def test_register_refuses_a_duplicate_name_and_positional_flags():
    from mmdrfuse.metrics.registry import register

    before = dict(M.METRICS)
    with pytest.raises(ValueError, match="'SD' is registered twice"):
        register("SD", higher_is_better=True, description="again", impl=lambda ctx: ctx.f)(lambda *a, **k: None)
    with pytest.raises(TypeError):
        register("X", True, True)  # keywords only
    with pytest.raises(TypeError, match="higher_is_better"):
        register("X", higher_is_better=None, description="x", impl=lambda ctx: ctx.f)
    assert M.METRICS == before and list(M.METRICS) == list(before)


def test_public_functions_check_the_registered_min_size():
    x = torch.zeros(1, 1, 40, 40)
    with pytest.raises(ValueError, match="41 x 41"):
        M.VIF(x, x, x)
    assert M.get("VIF").min_size == 41
    assert M.SD(torch.zeros(1, 1, 1, 1)).shape == (1,)  # fused only: the sources are not needed


@pytest.mark.parametrize("typo, hint", [("VFI", "VIF"), ("ssim", "SSIM"), ("qabf", "Qabf"), ("Qab", "Qabf")])
def test_get_did_you_mean(typo, hint):
    with pytest.raises(M.UnknownMetricError) as exc:
        M.get(typo)
    assert isinstance(exc.value, KeyError) and isinstance(exc.value, MMDRFuseError)
    msg = str(exc.value)
    assert "did you mean" in msg and repr(hint) in msg and "\n" not in msg


def test_resolve_defaults_and_duplicates():
    assert M.resolve(None) == M.PAPER_METRICS + ["EN", "SF", "AG", "MI", "PSNR", "MSE", "Nabf"]
    assert M.resolve(["VIF", "SD", "VIF"]) == ["VIF", "SD"]
    assert M.min_size(["VIF"]) == 41 and M.min_size(["SD"]) == 1


# ------------------------------------------------------------------------------------ independent values
@pytest.mark.parametrize("name", sorted(M.METRICS))
def test_matches_naive_reference(triple, name):
    (f, a, b), (tf, ta, tb) = triple
    got = M.get(name).fn(tf, ta, tb)
    assert got.shape == (1,) and got.dtype == torch.float64
    assert got.item() == pytest.approx(_naive(name, f, a, b), rel=1e-9, abs=1e-12)


def test_compute_all_equals_single_functions(triple):
    _, (tf, ta, tb) = triple
    names = list(M.METRICS)
    together = M.compute_all(tf, ta, tb, names)
    assert list(together) == names
    for n in names:
        torch.testing.assert_close(together[n], M.get(n).fn(tf, ta, tb), rtol=1e-12, atol=0)


def test_batch_equals_one_by_one():
    imgs = [torch.from_numpy(_scene(45, 50, s))[None, None] for s in range(6)]
    f, a, b = torch.cat(imgs[0:2]), torch.cat(imgs[2:4]), torch.cat(imgs[4:6])
    out = M.compute_all(f, a, b, list(M.METRICS))
    for n, v in out.items():
        assert v.shape == (2,)
        for i in range(2):
            single = M.get(n).fn(f[i:i + 1], a[i:i + 1], b[i:i + 1])
            torch.testing.assert_close(v[i:i + 1], single, rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------- properties
def test_identical_images():
    x = torch.from_numpy(_scene(64, 64, 4))[None, None]
    v = M.compute_all(x, x, x, list(M.METRICS))
    assert v["SSIM"].item() == pytest.approx(2.0, abs=1e-12)  # SSIM(x, x) = 1 per source
    assert v["SSIM_dr255"].item() == pytest.approx(2.0, abs=1e-12)
    assert v["SSIM_gauss255"].item() == pytest.approx(1.0, abs=1e-12)
    assert v["CC"].item() == pytest.approx(1.0, abs=1e-12)
    assert v["VIF"].item() == pytest.approx(2.0, abs=1e-6)  # VIF(x, x) = 1 up to eps
    assert v["MSE"].item() == 0.0 and math.isinf(v["PSNR"].item())
    assert v["Nabf"].item() == 0.0  # the fused image has no edge stronger than both sources
    # MI(x, x) is the entropy of x: in nats, twice (two sources)
    assert v["MI"].item() == pytest.approx(2 * math.log(2) * v["EN"].item(), rel=1e-12)
    # Qabf: equal strengths take the evaluator's G = gF (>= 1 on integer images) -> Q ~ Tg * Ta / (1 + e^(-22*0.2))
    assert v["Qabf"].item() == pytest.approx(0.9994 * 0.9879 / (1 + math.exp(-22 * 0.2)), rel=2e-4)


@pytest.mark.parametrize("name", [n for n, s in M.METRICS.items() if s.needs_sources])
def test_symmetric_in_the_sources(triple, name):
    _, (tf, ta, tb) = triple
    fn = M.get(name).fn
    torch.testing.assert_close(fn(tf, ta, tb), fn(tf, tb, ta), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", sorted(set(M.METRICS) - {"VIF", "Qcv"}))
def test_invariant_under_rotation_by_180(triple, name):
    # (Qabf's "pi/2 where gx = 0" rule breaks mirror symmetry, but a 180 degree turn negates gx and gy together;
    # Qcv's 16 x 16 regions start at the top-left corner, so a turn moves them unless H and W are multiples of 16)
    _, t = triple
    fn = M.get(name).fn
    rot = [x.flip(-1, -2) for x in t]
    torch.testing.assert_close(fn(*rot), fn(*t), rtol=1e-10, atol=1e-13)


def test_vif_rotation_needs_a_symmetric_subsampling_grid():
    # VIF subsamples [::2, ::2] after valid filtering: a 180 degree turn keeps the grid only if every intermediate
    # length is odd (57 -> 49 -> 25 -> 21 -> 11 -> 9 -> 5); with an even one (48) the grid shifts by a pixel.
    t = [torch.from_numpy(_scene(57, 57, s))[None, None] for s in (3, 1, 2)]
    rot = [x.flip(-1, -2) for x in t]
    torch.testing.assert_close(M.VIF(*rot), M.VIF(*t), rtol=1e-10, atol=1e-13)
    t48 = [x[..., :48, :] for x in t]
    assert abs(M.VIF(*[x.flip(-1, -2) for x in t48]).item() - M.VIF(*t48).item()) > 1e-6


def test_fused_only_metrics_ignore_sources(triple):
    _, (tf, ta, tb) = triple
    for n in ["SD", "EN", "SF", "AG"]:
        fn = M.get(n).fn
        torch.testing.assert_close(fn(tf), fn(tf, ta, tb))
        torch.testing.assert_close(fn(tf, "ignored", None), fn(tf))


def test_shift_and_scale_invariances(triple):
    _, (tf, ta, tb) = triple
    dark = (tf * 0.5).round()
    torch.testing.assert_close(M.SD(tf * 0.5), M.SD(tf) * 0.5)
    torch.testing.assert_close(M.SD(tf * 0.5 + 7), M.SD(tf * 0.5))  # SD ignores a brightness offset
    torch.testing.assert_close(M.CC(dark * 1.5 + 1, ta, tb), M.CC(dark, ta, tb))  # correlation: affine in F
    torch.testing.assert_close(M.EN(tf.flip(-1)), M.EN(tf))  # only the histogram counts
    torch.testing.assert_close(M.SF(tf.transpose(-1, -2)), M.SF(tf))
    torch.testing.assert_close(M.AG(tf.transpose(-1, -2)), M.AG(tf))


def test_ranges(triple):
    _, (tf, ta, tb) = triple
    v = M.compute_all(tf, ta, tb, list(M.METRICS))
    assert 0 <= v["Qabf"].item() <= 1 and 0 <= v["Nabf"].item() <= 1
    assert -2 <= v["SSIM"].item() <= 2 and -1 <= v["CC"].item() <= 1
    assert 0 <= v["EN"].item() <= 8 and v["MI"].item() >= 0


def test_reduction_dtype_and_integer_input(triple):
    _, (tf, ta, tb) = triple
    batch = [torch.cat([x, x.flip(-1)]) for x in (tf, ta, tb)]
    for n, spec in M.METRICS.items():
        per = spec.fn(*batch)
        assert per.shape == (2,)
        torch.testing.assert_close(spec.fn(*batch, reduction="mean"), per.mean())
        f32 = spec.fn(*batch, dtype=torch.float32)
        assert f32.dtype == torch.float32
        # float32 is selectable; VIF's variance maps lose most there (documented: ~2e-4 relative on real images)
        torch.testing.assert_close(f32.double(), per, rtol=2e-3, atol=1e-4)
        u8 = spec.fn(*[x.to(torch.uint8) for x in batch])
        torch.testing.assert_close(u8, per, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_the_input_device(triple):
    _, t = triple
    cuda = [x.cuda() for x in t]
    for n, v in M.compute_all(*cuda, list(M.METRICS)).items():
        assert v.device.type == "cuda"
        torch.testing.assert_close(v.cpu(), M.get(n).fn(*t), rtol=1e-9, atol=1e-12)


def test_constant_images_give_documented_values():
    c = torch.full((1, 1, 48, 48), 100.0)
    v = M.compute_all(c, c, c, ["VIF", "SD", "EN", "Nabf", "Qabf"])
    assert v["VIF"].item() == 2.0  # 0/0 -> 1 per source, as the evaluator
    assert v["SD"].item() == 0.0 and v["EN"].item() == 0.0
    assert v["Nabf"].item() == 0.0
    # Qabf pads with zeros, so a constant non-zero image has edges at its border; an all-black one has none: 0/0
    z = torch.zeros(1, 1, 48, 48)
    assert torch.isnan(M.Qabf(z, z, z)).item()


# -------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad, err", [
    (torch.zeros(48, 48), ValueError),  # no batch / channel axes
    (torch.zeros(1, 3, 48, 48), ValueError),  # colour
    (torch.zeros(1, 1, 48, 47), ValueError),  # shape differs from the sources
    (torch.zeros(1, 1, 48, 48, dtype=torch.bool), TypeError),
    (torch.zeros(1, 1, 48, 48, dtype=torch.complex64), TypeError),
    (np.zeros((1, 1, 48, 48)), TypeError),
    (torch.full((1, 1, 48, 48), float("nan")), ValueError),
    (torch.full((1, 1, 48, 48), 256.0), ValueError),
    (torch.full((1, 1, 48, 48), -1.0), ValueError),
    (torch.zeros(0, 1, 48, 48), ValueError),
])
def test_bad_inputs(bad, err):
    ok = torch.zeros(1, 1, 48, 48)
    with pytest.raises(err):
        M.SSIM(bad, ok, ok)


def test_bad_arguments():
    x = torch.zeros(1, 1, 48, 48)
    with pytest.raises(ValueError):
        M.VIF(x, x, x, dtype=torch.int64)
    with pytest.raises(ValueError):
        M.VIF(x, x, x, reduction="sum")
    with pytest.raises(TypeError):
        M.VIF(x, x, None)
    with pytest.raises(ValueError, match="too small"):
        M.VIF(*[torch.zeros(1, 1, 40, 60)] * 3)
    M.VIF(*[torch.zeros(1, 1, 41, 41)] * 3)  # the smallest size with a window at every scale


# ---------------------------------------------------------------------------------------------- primitives
@pytest.mark.parametrize("width", [17, 40, 63, 64, 65, 130])
@pytest.mark.parametrize("taps", [3, 9, 17])
def test_banded_filters_match_scipy(width, taps):
    rng = np.random.default_rng(width + taps)
    x = rng.uniform(0, 255, (2, 70, width))
    w = rng.uniform(0.1, 1.0, taps)
    got_last = P.correlate_last(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    want_last = scipy_ndimage.correlate1d(x, w, axis=-1)[..., taps // 2: width - taps // 2]
    np.testing.assert_allclose(got_last, want_last, rtol=1e-12)
    got_rows = P.correlate_rows(torch.from_numpy(x), torch.from_numpy(w)).numpy()
    want_rows = scipy_ndimage.correlate1d(x, w, axis=-2)[:, taps // 2: 70 - taps // 2]
    np.testing.assert_allclose(got_rows, want_rows, rtol=1e-12)


def test_box_sums_exact_on_integers():
    rng = np.random.default_rng(0)
    x = rng.integers(-255, 256, (3, 50, 61)).astype(np.float64) ** 2
    got = P.box_sum_valid(torch.from_numpy(x), 7).numpy()
    want = scipy_signal.convolve2d(x[1], np.ones((7, 7)), "valid")
    assert np.array_equal(got[1], want)
    got32 = P.box_sum_valid(torch.from_numpy(x).float(), 7)
    assert got32.dtype == torch.float32 and np.array_equal(got32[1].double().numpy(), want)


def test_gaussian_window():
    w = P.gaussian_window(17, 17 / 5)
    assert w.sum().item() == pytest.approx(1.0, abs=1e-15)
    torch.testing.assert_close(w, w.flip(0))
    assert w.argmax().item() == 8
