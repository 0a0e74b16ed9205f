"""Part 1 of the recipe diagnosis: the suite's training loss, term by term, at fixed students.

For a student and a set of LLVIP training patches this computes, with the suite's own :class:`Trainer` (refresh off:
the refresh terms need banks filled by a trajectory, which a fixed student does not have):

- every term's value ``L_k`` (unweighted, mean over the patches),
- every term's gradient ``g_k = dL_k/dtheta`` (a vector of the student's 113 parameters, mean over the patches),

and a non-negative least-squares fit: which weights ``w >= 0`` of the intensity, gradient and perceptual terms make
``w_dis * g_dis + sum_k w_k g_k`` smallest, i.e. make the student as close to stationary as the other terms can.
The relative residual ``|w_dis g_dis + G w| / |w_dis g_dis|`` is 0 when some mix of the terms balances distillation,
1 when none cancels any of it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mmdrfuse.train import LOSS_TERMS, FeatureNet, Trainer, TrainConfig

FIT_TERMS = ("int", "grad", "per")  # the comprehensive loss's terms, fitted against the distillation term


@dataclass
class TermStats:
    """One student's loss terms on one patch set."""

    values: dict[str, float]  # unweighted term -> mean value over the patches
    grads: dict[str, np.ndarray]  # term -> gradient (flattened parameters, float64)
    weights: dict[str, float]  # the recipe's weight of each term

    def weighted_grad(self) -> np.ndarray:
        return sum(self.weights[k] * g for k, g in self.grads.items())


def term_stats(trainer: Trainer, model: nn.Module, batch_size: int) -> TermStats:
    """Mean values and gradients of every loss term of ``trainer`` at ``model`` over all its patches, ``batch_size``
    patches at a time (the gradient of a mean is the batch-size-weighted mean of the batch gradients; the
    distillation term's batch-level normalisation makes its value depend a little on the batch split, so the
    diagnosis uses the recipe's batch size)."""
    trainer.model, trainer.net = model, FeatureNet(model)
    params = [p for p in model.parameters()]
    n = len(trainer.patches)
    ids_all = np.arange(n)
    sums: dict[str, float] = {}
    grads: dict[str, np.ndarray] = {}
    done = 0
    for start in range(0, n - batch_size + 1, batch_size):
        ids = ids_all[start:start + batch_size]
        with trainer.threads():
            values, _ = trainer.terms(ids, epoch=0)
            for key, value in values.items():
                g = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
                flat = torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                                  for x, p in zip(g, params)]).double().numpy()
                grads[key] = grads.get(key, 0) + flat * len(ids)
                sums[key] = sums.get(key, 0.0) + float(value.detach()) * len(ids)
        done += len(ids)
    weights = {t.key: float(getattr(trainer.cfg.loss, t.weight)) for t in LOSS_TERMS if t.weight and t.key in sums}
    return TermStats({k: v / done for k, v in sums.items()}, {k: g / done for k, g in grads.items()}, weights)


def stationarity_fit(stats: TermStats) -> dict:
    """Non-negative weights of :data:`FIT_TERMS` that best cancel the (weighted) distillation gradient, the relative
    residual, and the recipe's own weights' residual for comparison."""
    from scipy.optimize import nnls

    target = -stats.weights["dis"] * stats.grads["dis"]
    cols = [k for k in FIT_TERMS if k in stats.grads]
    a = np.stack([stats.grads[k] for k in cols], 1)
    w, _ = nnls(a, target)
    norm = float(np.linalg.norm(target))
    own = stats.weighted_grad()
    return {
        "fit_weights": dict(zip(cols, (float(x) for x in w))),
        "fit_residual": float(np.linalg.norm(a @ w - target) / norm),
        "recipe_residual": float(np.linalg.norm(own) / norm),  # |total gradient| / |w_dis g_dis| at the recipe's weights
        "distill_grad_norm": norm,
    }


def cosines(stats: TermStats) -> dict[str, float]:
    """Cosine between each term's gradient and the distillation term's (negative: the term pulls against it)."""
    d = stats.grads["dis"]
    return {k: float(g @ d / (np.linalg.norm(g) * np.linalg.norm(d) + 1e-300)) for k, g in stats.grads.items()
            if k != "dis"}


def diagnosis_rows(cfg: TrainConfig, trainer: Trainer, students: dict[str, nn.Module]) -> list[dict]:
    """One row per student: term values, gradient norms, cosines to distillation and the stationarity fit."""
    rows = []
    for name, model in students.items():
        st = term_stats(trainer, model, cfg.optim.batch_size)
        fit = stationarity_fit(st)
        row = {"student": name, "patch_size": cfg.data.patch_size, "patches": len(trainer.patches),
               "total": sum(st.weights[k] * v for k, v in st.values.items())}
        row.update({f"L_{k}": v for k, v in st.values.items()})
        row.update({f"|g_{k}|": float(np.linalg.norm(g)) for k, g in st.grads.items()})
        row.update({f"cos(g_{k},g_dis)": c for k, c in cosines(st).items()})
        row.update({f"fit_w_{k}": w for k, w in fit["fit_weights"].items()})
        row.update(fit_residual=fit["fit_residual"], recipe_residual=fit["recipe_residual"])
        rows.append(row)
    return rows
