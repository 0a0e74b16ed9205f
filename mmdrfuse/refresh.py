"""Dynamic refresh: the two history banks, the training SSIM/GMSD and the refresh loss.

Paper: Deng et al., MMDRFuse (ACM MM 2024), Sec. 3.3 "dynamic refresh"; conventions (where the paper is silent) from the authors' public code,
github.com/yanglinDeng/MMDRFuse @ c9e5014.

Each training patch owns one slot in two banks: ``O_bs`` holds the output with the best training SSIM seen so far and
``O_bg`` the one with the best (lowest) GMSD. Epoch 0 only fills both banks. From epoch 1 on, per batch::

    S_cur = SSIM(O, I_ir) + SSIM(O, I_vis)       S_bs likewise for the stored O_bs (one scalar per batch)
    G_cur = GMSD(O, I_ir) + GMSD(O, I_vis)       G_bg likewise for O_bg (per-sample GMSD averaged over the batch)
    S_cur > S_bs ? overwrite O_bs : L_s = (MSE(phi4) + MSE(phi5)) / 2 + L1(O, O_bs)
    G_cur < G_bg ? overwrite O_bg : L_g = (MSE(phi1) + MSE(phi2) + MSE(phi3)) / 3 + MSE(grad(O), grad(O_bg))
    L_refresh = gain * ((S_bs - S_cur) * L_s + (G_cur - G_bg) * L_g)    gaps detached; gain 1 (paper), 10 (official)

The stored value is the detached output of the forward pass before the optimiser step. Banks are stored as float16 or
uint8 (or float32, for exact tests) in RAM, or memory-mapped on disk once they outgrow a memory budget.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from mmdrfuse.atomic import write_with
from mmdrfuse.losses import (check_nchw, feature_mse, gaussian_window, gradient, prewitt_kernels,
                             reduce_per_sample)
from mmdrfuse.rowcache import Budget, RowCache

BANK_DTYPES = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}


# ---------------------------------------------------------------------------------------- training metrics
def _guess_range(img: torch.Tensor) -> float:
    """The authors' guess of the data range from the first image: 255 if max > 128 else 1, minus -1 if min < -0.5."""
    hi = 255.0 if float(img.max()) > 128 else 1.0
    lo = -1.0 if float(img.min()) < -0.5 else 0.0
    return hi - lo


def ssim_train(x: torch.Tensor, y: torch.Tensor, data_range: float | str = 1.0, window_size: int = 11,
               sigma: float = 1.5, reduction: str = "mean") -> torch.Tensor:
    """Training SSIM: Gaussian window (11, sigma 1.5), valid convolution, C1 = (0.01 L)^2, C2 = (0.03 L)^2.

    Returns the mean of the SSIM map per sample, reduced (``mean``: the authors' batch value). ``data_range`` is L;
    ``"auto"`` reproduces the authors' guess from ``x`` (255 if max > 128 else 1, widened to 2 if min < -0.5,
    guessed once for the whole batch). The window shrinks to ``min(11, H, W)`` on small inputs as theirs does.
    """
    check_nchw(x, y, channels=1)
    L = _guess_range(x) if data_range == "auto" else float(data_range)
    size = min(window_size, x.shape[-2], x.shape[-1])
    w = gaussian_window(size, sigma, x)
    # one conv for the five local moments: stack them as channels of a grouped conv
    stack = torch.cat([x, y, x * x, y * y, x * y], 1)
    mom = F.conv2d(stack, w.expand(5, 1, size, size), groups=5)
    mu1, mu2, e11, e22, e12 = mom.unbind(1)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    s1, s2, s12 = e11 - mu1_sq, e22 - mu2_sq, e12 - mu12
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    ssim_map = ((2 * mu12 + c1) * (2 * s12 + c2)) / ((mu1_sq + mu2_sq + c1) * (s1 + s2 + c2))
    return reduce_per_sample(ssim_map.flatten(1).mean(1), reduction)


def gmsd_train(x: torch.Tensor, y: torch.Tensor, c: float = 170.0, reduction: str = "mean") -> torch.Tensor:
    """Training GMSD per sample (Xue et al. 2014 as the authors compute it), then reduced (``mean``: theirs).

    Each image is scaled x255 when its max <= 1; 2x2 mean filter and stride-2 subsampling (= 2x2 average pooling);
    Prewitt gradients (valid); ``GMS = (2 m_x m_y + c) / (m_x^2 + m_y^2 + c)``; GMSD = unbiased std of the GMS map.
    """
    check_nchw(x, y, channels=1)

    def prep(t: torch.Tensor) -> torch.Tensor:
        peak = t.flatten(1).amax(1).view(-1, 1, 1, 1)
        t = torch.where(peak <= 1, t * 255.0, t)
        return F.avg_pool2d(t, 2, 2)

    k = prewitt_kernels(x)
    gx = F.conv2d(prep(x), k)  # N x 2 x h x w: d/dx, d/dy
    gy = F.conv2d(prep(y), k)
    mx_sq = (gx * gx).sum(1)
    my_sq = (gy * gy).sum(1)
    gms = (2 * torch.sqrt(mx_sq) * torch.sqrt(my_sq) + c) / (mx_sq + my_sq + c)
    return reduce_per_sample(gms.flatten(1).std(1, unbiased=True), reduction)


# ------------------------------------------------------------------------------------------------- banks
class OutputBank:
    """One slot per training patch holding a 1 x H x W output, stored as float32 / float16 / uint8.

    uint8 maps the tanh range [-1, 1] to 0..255. Storage is a numpy array in RAM, or a ``np.memmap`` file in
    ``spill_dir`` when the bank is larger than ``memory_budget`` bytes. ``filled`` marks slots written at least once.
    """

    def __init__(self, n: int, shape: Sequence[int], dtype: str = "float16", memory_budget: int | None = None,
                 spill_dir: str | os.PathLike | None = None, name: str = "bank"):
        if dtype not in BANK_DTYPES:
            raise ValueError(f"unknown bank dtype {dtype!r}; expected one of {tuple(BANK_DTYPES)}")
        self.n, self.shape, self.dtype, self.name = int(n), tuple(int(s) for s in shape), dtype, name
        np_dtype = BANK_DTYPES[dtype]
        nbytes = self.n * int(np.prod(self.shape)) * np.dtype(np_dtype).itemsize
        self.path: Path | None = None
        if memory_budget is not None and nbytes > memory_budget:
            if spill_dir is None:
                raise ValueError(f"{name}: {nbytes / 2**20:.0f} MiB exceeds the memory budget and no spill_dir was given")
            self.path = Path(spill_dir) / f"{name}.{dtype}.mmap"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.data = np.memmap(self.path, dtype=np_dtype, mode="w+", shape=(self.n, *self.shape))
        else:
            self.data = np.zeros((self.n, *self.shape), dtype=np_dtype)
        self.filled = np.zeros(self.n, dtype=bool)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def _encode(self, t: torch.Tensor) -> np.ndarray:
        a = t.detach().to("cpu", torch.float32).numpy()
        if self.dtype == "uint8":
            return np.clip(np.rint((a + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return a.astype(BANK_DTYPES[self.dtype])

    def _decode(self, a: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.asarray(a, dtype=np.float32))
        if self.dtype == "uint8":
            t = t / 127.5 - 1.0
        return t

    def put(self, ids: torch.Tensor | np.ndarray, values: torch.Tensor) -> None:
        idx = np.asarray(ids, dtype=np.int64)
        self.data[idx] = self._encode(values)
        self.filled[idx] = True

    def get(self, ids: torch.Tensor | np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
        idx = np.asarray(ids, dtype=np.int64)
        return self._decode(self.data[idx]).to(device)

    def all_filled(self, ids) -> bool:
        return bool(self.filled[np.asarray(ids, dtype=np.int64)].all())

    def state(self) -> dict:
        """A copy of the contents (for checkpoints)."""
        return {"data": np.array(self.data), "filled": self.filled.copy(), "dtype": self.dtype, "shape": self.shape}

    def load_state(self, state: dict) -> None:
        if (tuple(state["data"].shape) != (self.n, *self.shape) or state["dtype"] != self.dtype
                or state["data"].dtype != self.data.dtype):
            raise ValueError(f"{self.name}: checkpoint bank {tuple(state['data'].shape)} {state['dtype']} does not "
                             f"match {(self.n, *self.shape)} {self.dtype}")
        self.data[...] = state["data"]
        self.filled[...] = state["filled"]


# ----------------------------------------------------------------------------------------- refresh logic
@dataclass
class RefreshResult:
    """What one refresh step did: the loss (0 when nothing lagged) and the scalars behind it."""

    loss: torch.Tensor
    s_cur: float = math.nan
    s_bs: float = math.nan
    g_cur: float = math.nan
    g_bg: float = math.nan
    loss_s: float = 0.0
    loss_g: float = 0.0
    updated_s: bool = False
    updated_g: bool = False
    filled: bool = False
    o_bs: torch.Tensor | None = None  # stored outputs whose refresh term is active (internal to step)
    o_bg: torch.Tensor | None = None


FeatureFn = Callable[[torch.Tensor, int], list]  # (images N x 1 x H x W, depth) -> the first depth VGG taps
SSIM_TAPS = slice(3, 5)  # relu4_4, relu5_4: the feature part of L_s
GMSD_TAPS = slice(0, 3)  # relu1_2, relu2_2, relu3_4: the feature part of L_g


class DynamicRefresh:
    """The two banks plus the per-batch refresh decision; :meth:`step` is the one entry point of a training step.

    ``tap_cache`` bytes (0: off) keep the VGG taps of the stored outputs that the refresh terms compare with
    (:data:`SSIM_TAPS` of ``O_bs``, :data:`GMSD_TAPS` of ``O_bg``), per patch. A stored output changes only when its
    slot is rewritten, and its cached taps are dropped then, so the cache returns exactly the taps that a new VGG
    pass over the stored output would give (up to the float32 rounding of a pass over another batch).
    """

    def __init__(self, n: int, shape: Sequence[int], dtype: str = "float16", memory_budget: int | None = None,
                 spill_dir: str | os.PathLike | None = None, gain: float = 1.0, ssim_range: float | str = 1.0,
                 tap_cache: int = 0):
        half = None if memory_budget is None else memory_budget // 2
        self.bank_s = OutputBank(n, shape, dtype, half, spill_dir, "bank_ssim")
        self.bank_g = OutputBank(n, shape, dtype, half, spill_dir, "bank_gmsd")
        self.gain = float(gain)
        self.ssim_range = ssim_range
        budget = Budget(tap_cache)  # shared by the two banks' taps
        self.taps_s, self.taps_g = RowCache(budget), RowCache(budget)

    @property
    def nbytes(self) -> int:
        return self.bank_s.nbytes + self.bank_g.nbytes

    def state(self) -> dict:
        return {"s": self.bank_s.state(), "g": self.bank_g.state()}

    def load_state(self, state: dict) -> None:
        self.bank_s.load_state(state["s"])
        self.bank_g.load_state(state["g"])
        self.taps_s.clear()
        self.taps_g.clear()

    def save(self, path: str | os.PathLike) -> None:
        """Write both banks to an uncompressed ``.npz`` atomically, streaming (no full copy of memory-mapped banks)."""
        def writer(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, s_data=self.bank_s.data, s_filled=self.bank_s.filled,
                         g_data=self.bank_g.data, g_filled=self.bank_g.filled)

        write_with(path, writer)

    def load(self, path: str | os.PathLike) -> None:
        """Restore both banks from :meth:`save`'s file (shapes and storage dtype must match)."""
        with np.load(path) as z:
            for key, bank in (("s", self.bank_s), ("g", self.bank_g)):
                bank.load_state({"data": z[f"{key}_data"], "filled": z[f"{key}_filled"], "dtype": bank.dtype,
                                 "shape": bank.shape})
        self.taps_s.clear()
        self.taps_g.clear()

    def step(self, ids, out: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, epoch: int,
             feats_out: Sequence[torch.Tensor] | None, features: FeatureFn) -> RefreshResult:
        """One batch's refresh: scores, bank writes and ``L_refresh`` (``res.loss``, 0 when nothing lags).

        ``features(images, depth)`` returns the first ``depth`` VGG taps of ``images``; it is called without grad on
        the stored outputs that lag and whose taps are not cached (depth 5 for the SSIM bank's term, 3 for the GMSD
        bank's). ``feats_out`` are the live output's taps with grad (at least 5, or 3 when only the GMSD term can be
        active); ``None`` computes them with ``features(out, depth)`` under grad, and only when a term is active.
        """
        res = self._plan(ids, out, ir, vis, epoch)
        if feats_out is None and (res.o_bs is not None or res.o_bg is not None):
            feats_out = features(out, 5 if res.o_bs is not None else 3)
        with torch.no_grad():
            f_bs = self._stored_taps(self.taps_s, ids, res.o_bs, SSIM_TAPS, features) if res.o_bs is not None else None
            f_bg = self._stored_taps(self.taps_g, ids, res.o_bg, GMSD_TAPS, features) if res.o_bg is not None else None
        return self._finish(res, out, feats_out, f_bs, f_bg)

    @staticmethod
    def _stored_taps(cache: RowCache, ids, stored: torch.Tensor, taps: slice, features: FeatureFn) -> list:
        def compute(pos: np.ndarray) -> list:
            imgs = stored if len(pos) == len(stored) else stored[torch.as_tensor(pos, device=stored.device)]
            return features(imgs, taps.stop)[taps]

        return cache.fetch(ids, compute, stored.device)

    def _put(self, bank: OutputBank, taps: RowCache, ids, values: torch.Tensor) -> None:
        bank.put(ids, values)
        taps.drop(np.asarray(ids, dtype=np.int64))

    def _scores(self, out: torch.Tensor, o_bs: torch.Tensor, o_bg: torch.Tensor, ir: torch.Tensor,
                vis: torch.Tensor) -> list[float]:
        """``[S_cur, S_bs, G_cur, G_bg]`` as Python floats (no graph; one device sync)."""
        with torch.no_grad():
            rng = self.ssim_range
            s_cur = ssim_train(out, ir, rng) + ssim_train(out, vis, rng)
            g_cur = gmsd_train(out, ir) + gmsd_train(out, vis)
            s_bs = ssim_train(o_bs, ir, rng) + ssim_train(o_bs, vis, rng)
            g_bg = gmsd_train(o_bg, ir) + gmsd_train(o_bg, vis)
            return torch.stack([s_cur, s_bs, g_cur, g_bg]).tolist()

    def _plan(self, ids, out: torch.Tensor, ir: torch.Tensor, vis: torch.Tensor, epoch: int) -> RefreshResult:
        """First half of :meth:`step`: scores, bank writes, and which stored outputs need VGG features.

        Epoch 0 (or any slot never written) fills both banks and yields no loss. Otherwise the batch's stored outputs
        are compared with the live ``out``; a better live output overwrites its bank, a worse one sets
        ``res.o_bs`` / ``res.o_bg`` to the stored outputs whose features :meth:`_finish` needs.
        """
        zero = out.new_zeros(())
        detached = out.detach()
        if epoch == 0 or not (self.bank_s.all_filled(ids) and self.bank_g.all_filled(ids)):
            self._put(self.bank_s, self.taps_s, ids, detached)
            self._put(self.bank_g, self.taps_g, ids, detached)
            return RefreshResult(zero, filled=True)
        dev = out.device
        o_bs, o_bg = self.bank_s.get(ids, dev), self.bank_g.get(ids, dev)
        s_cur, s_bs, g_cur, g_bg = self._scores(detached, o_bs, o_bg, ir, vis)
        res = RefreshResult(zero, s_cur, s_bs, g_cur, g_bg)
        if s_cur > s_bs:
            self._put(self.bank_s, self.taps_s, ids, detached)
            res.updated_s = True
        elif s_cur < s_bs:
            res.o_bs = o_bs
        if g_cur < g_bg:
            self._put(self.bank_g, self.taps_g, ids, detached)
            res.updated_g = True
        elif g_cur > g_bg:
            res.o_bg = o_bg
        return res

    def _finish(self, res: RefreshResult, out: torch.Tensor, feats_out: Sequence[torch.Tensor],
                f_bs: Sequence[torch.Tensor] | None, f_bg: Sequence[torch.Tensor] | None) -> RefreshResult:
        """Second half of :meth:`step`: ``L_refresh`` from the live output, its VGG taps (with grad) and the stored
        outputs' taps: ``f_bs`` (:data:`SSIM_TAPS` of ``res.o_bs``) when ``res.o_bs`` is set, ``f_bg``
        (:data:`GMSD_TAPS` of ``res.o_bg``) when ``res.o_bg`` is. The gaps are plain floats: no gradient flows
        through them.
        """
        loss = out.new_zeros(())
        if res.o_bs is not None:
            l_s = feature_mse(feats_out[SSIM_TAPS], f_bs) + (out - res.o_bs).abs().mean()
            res.loss_s = l_s.item()
            loss = loss + (res.s_bs - res.s_cur) * l_s
        if res.o_bg is not None:
            l_g = feature_mse(feats_out[GMSD_TAPS], f_bg) + ((gradient(out) - gradient(res.o_bg)) ** 2).mean()
            res.loss_g = l_g.item()
            loss = loss + (res.g_cur - res.g_bg) * l_g
        res.loss = self.gain * loss
        return res
