"""The twelve metrics computed the way the authors' evaluator computes them: NumPy, direct 2-D
``scipy.signal.convolve2d`` windows, scikit-image SSIM, scikit-learn MI, one thread. ``python -m
benchmarks.speed_metrics`` times it as the reference of its speed-up column (row ``numpy_direct_640x480``) and
reports the largest relative difference of the suite's kernels to it. Needs scikit-image and scikit-learn.
"""
from __future__ import annotations

import numpy as np


def numpy_direct(f: np.ndarray, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The twelve metrics with direct 2-D windows, as the authors' NumPy evaluator computes them (for timing)."""
    from scipy.signal import convolve2d
    from skimage.metrics import structural_similarity
    from sklearn.metrics import mutual_info_score

    def corr(x, y):
        x, y = x - x.mean(), y - y.mean()
        return (x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum())

    def vif(ref, dist):
        num = den = 0.0
        for s in range(1, 5):
            n = 2 ** (5 - s) + 1
            m = (n - 1) / 2
            yy, xx = np.mgrid[-m:m + 1, -m:m + 1]
            win = np.exp(-(xx * xx + yy * yy) / (2 * (n / 5.0) ** 2))
            win /= win.sum()
            if s > 1:
                ref = convolve2d(ref, win, "valid")[::2, ::2]
                dist = convolve2d(dist, win, "valid")[::2, ::2]
            mu1, mu2 = convolve2d(ref, win, "valid"), convolve2d(dist, win, "valid")
            s1 = np.maximum(convolve2d(ref * ref, win, "valid") - mu1 ** 2, 0)
            s2 = np.maximum(convolve2d(dist * dist, win, "valid") - mu2 ** 2, 0)
            s12 = convolve2d(ref * dist, win, "valid") - mu1 * mu2
            g = s12 / (s1 + 1e-10)
            sv = s2 - g * s12
            lo1, lo2 = s1 < 1e-10, s2 < 1e-10
            g[lo1], sv[lo1], s1[lo1] = 0, s2[lo1], 0
            g[lo2], sv[lo2] = 0, 0
            neg = g < 0
            sv[neg], g[neg] = s2[neg], 0
            sv[sv <= 1e-10] = 1e-10
            num += np.sum(np.log10(1 + g * g * s1 / (sv + 2)))
            den += np.sum(np.log10(1 + s1 / 2))
        return num / den

    def grad(img):
        sx = convolve2d(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float), "same")
        sy = convolve2d(img, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float), "same")
        ang = np.full(img.shape, np.pi / 2)
        nz = sx != 0
        ang[nz] = np.arctan(sy[nz] / sx[nz])
        return np.sqrt(sx * sx + sy * sy), ang

    def q(ga, aa, gf, af):
        rel = np.zeros_like(ga)
        for m, v in ((ga > gf, lambda m: gf[m] / ga[m]), (ga == gf, lambda m: gf[m]),
                     (ga < gf, lambda m: ga[m] / gf[m])):
            rel[m] = v(m)
        ang = 1 - np.abs(aa - af) / (np.pi / 2)
        return 0.9994 / (1 + np.exp(-15 * (rel - 0.5))) * 0.9879 / (1 + np.exp(-22 * (ang - 0.8)))

    (ga, aa), (gb, ab), (gf, af) = grad(a), grad(b), grad(f)
    hist = np.bincount(f.astype(np.int64).ravel(), minlength=256) / f.size
    gy, gx = np.gradient(f)
    mse = (np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2
    return {
        "SD": f.std(), "SCD": corr(f - b, a) + corr(f - a, b), "VIF": vif(a, f) + vif(b, f),
        "Qabf": np.sum(q(ga, aa, gf, af) * ga + q(gb, ab, gf, af) * gb) / np.sum(ga + gb),
        "SSIM": structural_similarity(f, a, data_range=2) + structural_similarity(f, b, data_range=2),
        "CC": (corr(a, f) + corr(b, f)) / 2, "EN": -np.sum(hist[hist > 0] * np.log2(hist[hist > 0])),
        "SF": np.sqrt(np.mean(np.diff(f, axis=1) ** 2) + np.mean(np.diff(f, axis=0) ** 2)),
        "AG": np.mean(np.sqrt((gx ** 2 + gy ** 2) / 2)),
        "MI": mutual_info_score(f.ravel(), a.ravel()) + mutual_info_score(f.ravel(), b.ravel()),
        "PSNR": 10 * np.log10(f.max() ** 2 / mse), "MSE": mse,
    }
