"""Table 1: ablation of MMDRFuse's components on MSRS (``python -m ablations.table1 --profile cpu``).

Rows (configs/*.yaml, each full.yaml with one change): w/o intensity loss (gamma = 0), w/o gradient loss
(delta = 0), w/o perception loss (perceptual weight 0), w/o dynamic refresh (refresh off), w/o distillation
(theta = 0), w/o digestible distillation (plain MSE on the raw 4-channel features and outputs instead of the
attention maps: our interpretation), and the full recipe. The harness calls :func:`run`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from ablations.rows import env_from_ctx
from ablations.tables import TableSpec, main, run_table

SPEC = TableSpec(
    name="table1",
    title="Table 1: ablation of the components (trains one student per row and seed, evaluates on MSRS)",
    rows=(
        ("wo_intensity", "w/o intensity loss"),
        ("wo_gradient", "w/o gradient loss"),
        ("wo_perception", "w/o perception loss"),
        ("wo_refresh", "w/o dynamic refresh"),
        ("wo_distillation", "w/o distillation"),
        ("wo_digestible", "w/o digestible distillation"),
        ("full", "MMDRFuse"),
    ),
    notes=(
        "'w/o digestible distillation' is our interpretation (the paper gives no formula): the same two distillation "
        "pairs (student relu(conv1) vs teacher relu(conv11), student vs teacher output) with plain MSE on the raw "
        "tensors instead of the normalised channel-sum attention maps, same weight theta = 5.",
        "'w/o perception loss' removes the comprehensive loss's VGG term only; the refresh terms (which also use VGG "
        "features) stay, as they belong to the dynamic refresh. 'w/o distillation' sets theta = 0 (no teacher "
        "initialisation in any row).",
    ),
)


def run(ctx) -> list[Path]:
    """Harness entry point: ctx.profile quick|cpu|paper, data/weights roots, out_dir, device."""
    return run_table(SPEC, env_from_ctx(ctx))


if __name__ == "__main__":
    sys.exit(main(SPEC))
