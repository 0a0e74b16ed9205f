"""One training step: :class:`Trainer` holds the networks, the refresh banks and the caches, and
:meth:`Trainer.step` computes one batch's loss (no optimiser work)::

    total = w_int * L_int + w_grad * L_grad + w_per * L_per + w_dis * L_dis + L_refresh
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mmdrfuse import losses
from mmdrfuse.models import Teacher
from mmdrfuse.patches import PatchSet
from mmdrfuse.refresh import DynamicRefresh, RefreshResult
from mmdrfuse.rowcache import RowCache
from mmdrfuse.train.config import TrainConfig
from mmdrfuse.native import num_threads
from mmdrfuse.vgg import VGGFeatures


# ------------------------------------------------------------------------------------------- the loss terms
@dataclass(frozen=True)
class LossTerm:
    """One term of the total loss: its log column (and epoch-mean key) and the ``loss`` weight that scales it."""

    key: str  # log.csv column, progress-bar field, epoch-mean key
    weight: str | None  # LossConfig attribute multiplying it in the total (None: the term carries its own weights)
    doc: str


LOSS_TERMS = (
    LossTerm("int", "intensity", "L_int = |O - max(ir, vis)|_1 / HW"),
    LossTerm("grad", "gradient", "L_grad = MSE(grad O, grad max(ir, vis))"),
    LossTerm("per", "perceptual", "L_per = sum_j MSE(phi_j(O), max(phi_j(ir), phi_j(vis))) / 5"),
    LossTerm("dis", "distill", "L_dis: digestible (attention) or plain distillation from the frozen teacher"),
    LossTerm("ref", None, "L_refresh = gain * (gap_s * L_s + gap_g * L_g), dynamic refresh"),
)
LOSS_KEYS = (*(t.key for t in LOSS_TERMS), "total")  # every logged loss value (epoch means, progress bar)
REFRESH_FIELDS = ("loss_s", "loss_g", "s_cur", "s_bs", "g_cur", "g_bg", "updated_s", "updated_g", "filled")
LOG_FIELDS = ["epoch", "step", "batch", "patch_steps", *LOSS_KEYS, *REFRESH_FIELDS, "seconds"]


# ------------------------------------------------------------------------------------------------- the step
@dataclass
class StepOut:
    total: torch.Tensor
    terms: dict[str, float]
    refresh: RefreshResult | None


@dataclass
class _Batch:
    """What the loss terms of one step read (and, for the live output's VGG taps, share)."""

    ids: np.ndarray
    epoch: int
    ir: torch.Tensor
    vis: torch.Tensor
    x: torch.Tensor
    feat: torch.Tensor  # the network's hidden features (distillation)
    out: torch.Tensor  # the network's output O
    f_out: list[torch.Tensor] | None = None  # VGG taps of O (with grad), computed by the perceptual term
    refresh: RefreshResult | None = None


class Trainer:
    """Holds the networks, the banks and the caches; :meth:`step` computes one batch's loss (no optimiser work).

    Each row of :data:`LOSS_TERMS` is computed by the method ``_loss_<key>`` (None: the term is off for this run)."""

    def __init__(self, cfg: TrainConfig, model: nn.Module, vgg: VGGFeatures, patches: PatchSet,
                 teacher: Teacher | None, refresh: DynamicRefresh | None, device: torch.device):
        self.cfg, self.model, self.vgg, self.patches = cfg, model, vgg, patches
        self.teacher, self.refresh, self.device = teacher, refresh, device
        self.fast = cfg.speed.step == "fast"
        # the VGG taps: fused channels-last passes (fast) or the plain module (the reference step)
        self.features: nn.Module = vgg.fused() if self.fast else vgg
        self._teacher_net = teacher  # fast: a channels-last copy (the frozen teacher's values to float32 rounding)
        if self.fast and teacher is not None:
            self._teacher_net = copy.deepcopy(teacher).to(memory_format=torch.channels_last)
        self.feat_cache = RowCache(cfg.speed.feature_cache_mb * 2**20, partial=self.fast)
        self.teacher_cache = RowCache(cfg.speed.teacher_cache_mb * 2**20, partial=self.fast)
        self.net: nn.Module = model  # DDP wrapper of FeatureNet(model) when distributed
        self._conv_threads: int | None = None  # set by _threads (fast step on the CPU)

    def step(self, ids: np.ndarray, epoch: int) -> StepOut:
        """One batch's loss terms and total (call :meth:`backward` on the result, then the optimiser)."""
        with self._threads():
            return self._step(ids, epoch)

    def backward(self, out: StepOut) -> None:
        """``out.total.backward()`` with the threading of :meth:`step` (training the teacher, whose backward is
        dominated by its own convolutions: the process's thread count throughout)."""
        with self._threads() if self.cfg.kind == "student" else contextlib.nullcontext():
            out.total.backward()

    def threads(self):
        """The context :meth:`step` runs in (see :meth:`_threads`)."""
        return self._threads()

    def _threads(self):
        """The fast step on the CPU runs its many small tensor operations on one intra-op thread and gives the
        process's thread count only to the convolutions that carry the work: VGG-19's (forward and backward), the
        frozen teacher's and the trained network's forward pass. Every parallel operation waits for all its threads,
        which on a busy machine costs milliseconds each (a 2-thread cat + sum of a 1.3 MB tensor took 11 ms against
        64 us on one thread with 5 jobs on 2 cores)."""
        if not self.fast or self.device.type != "cpu":
            return contextlib.nullcontext()
        self._conv_threads = self.features.conv_threads = torch.get_num_threads()
        return num_threads(1)

    def terms(self, ids: np.ndarray, epoch: int) -> tuple[dict[str, torch.Tensor], RefreshResult | None]:
        """The unweighted loss terms of one batch (``LOSS_TERMS`` keys of the terms that are on, with grad) and what
        the refresh did. :meth:`step` weights and sums them; the recipe diagnosis (``benchmarks.recipe_fidelity``)
        differentiates each one separately. Call inside :meth:`threads` for the fast step's threading."""
        ir, vis = self.patches.batch(ids, self.device)
        x = torch.cat([ir, vis], 1)
        with num_threads(self._conv_threads):
            feat, out = self.net(x)
        b = _Batch(ids, epoch, ir, vis, x, feat, out)
        values = {}
        for term in LOSS_TERMS:
            value = getattr(self, f"_loss_{term.key}")(b)
            if value is not None:
                values[term.key] = value
        return values, b.refresh

    def weighted(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """``sum_k w_k * L_k`` over the terms present (the refresh term carries its own weights)."""
        total = None
        for term in LOSS_TERMS:
            if term.key in values:
                v = values[term.key]
                weighted = v if term.weight is None else getattr(self.cfg.loss, term.weight) * v
                total = weighted if total is None else total + weighted
        return total

    def _step(self, ids: np.ndarray, epoch: int) -> StepOut:
        values, refresh = self.terms(ids, epoch)
        total = self.weighted(values)
        values["total"] = total
        with torch.no_grad():  # one device sync for every logged value
            floats = torch.stack([v.detach().reshape(()) for v in values.values()]).tolist()
        return StepOut(total, dict(zip(values, floats)), refresh)

    # -- the terms (LOSS_TERMS order)
    def _loss_int(self, b: _Batch) -> torch.Tensor:
        return losses.intensity_loss(b.out, b.ir, b.vis)

    def _loss_grad(self, b: _Batch) -> torch.Tensor:
        return losses.gradient_loss(b.out, b.ir, b.vis)

    def _loss_per(self, b: _Batch) -> torch.Tensor | None:
        if self.cfg.loss.perceptual == 0:  # the 'w/o perception loss' ablation skips the VGG passes
            return None
        b.f_out = self.features(b.out, 5)
        return losses.perceptual_loss(b.f_out, self._targets(b.ids, b.ir, b.vis))

    def _loss_dis(self, b: _Batch) -> torch.Tensor | None:
        if self.teacher is None or self.cfg.loss.distill == 0:  # 'w/o distillation' skips the teacher pass
            return None
        t_feat, t_out = self._teacher(b.ids, b.x)
        return losses.distillation_loss(b.feat, t_feat, b.out, t_out, mode=self.cfg.loss.distill_mode)

    def _loss_ref(self, b: _Batch) -> torch.Tensor | None:
        if self.refresh is None:
            return None
        b.refresh = self.refresh.step(b.ids, b.out, b.ir, b.vis, b.epoch, b.f_out, self.features)
        return b.refresh.loss

    # -- no-grad helpers (cached per patch)
    def _targets(self, ids: np.ndarray, ir: torch.Tensor, vis: torch.Tensor) -> list[torch.Tensor]:
        """``max(VGG(ir), VGG(vis))`` per tap: one batched pass over both sources of the patches not cached."""
        def compute(pos: np.ndarray) -> list[torch.Tensor]:
            a, v = (ir, vis) if len(pos) == len(ids) else (ir[pos], vis[pos])
            with torch.no_grad():
                f = self.features(torch.cat([a, v], 0), 5)
            return [torch.maximum(t[:len(pos)], t[len(pos):]) for t in f]

        return self.feat_cache.fetch(ids, compute, self.device)

    def _teacher(self, ids: np.ndarray, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The frozen teacher's features and output of the batch (cached per patch)."""
        def compute(pos: np.ndarray) -> list[torch.Tensor]:
            xs = x if len(pos) == len(ids) else x[pos]
            if self.fast:
                xs = xs.contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), num_threads(self._conv_threads):
                return list(self._teacher_net.features(xs))

        t_feat, t_out = self.teacher_cache.fetch(ids, compute, self.device)
        return t_feat, t_out


class FeatureNet(nn.Module):
    """``forward = model.features`` so DistributedDataParallel sees the pass it must synchronise."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.features(x)


def log_row(out: StepOut) -> dict:
    """The log fields of one step: its loss terms and, when refresh ran, what it did (:data:`REFRESH_FIELDS`)."""
    row = dict(out.terms)
    r = out.refresh
    if r is not None:
        row.update({k: getattr(r, k) for k in REFRESH_FIELDS})
        row.update(updated_s=int(r.updated_s), updated_g=int(r.updated_g), filled=int(r.filled))
    return row
