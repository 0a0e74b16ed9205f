"""Table 5: medical image fusion quality on MRI-SPECT and MRI-PET (``python -m benchmarks.run table5``).

Same protocol as Table 4 (:func:`benchmarks.table4.quality_table`): the MRI takes the IR slot and SPECT/PET the
visible slot (this order reproduces the paper's MMDRFuse row with the authors' checkpoint); rows MMDRFuse official,
MMDRFuse trained here, every compared method with weights; columns SD, SCD, VIF, Qabf, SSIM, CC, ours and the paper's.
"""
from __future__ import annotations

from pathlib import Path

from benchmarks.table4 import quality_table

TABLE = "table5"
DATASETS = ("MRI-SPECT", "MRI-PET")


NOTES = ("The compared methods run with their infrared-visible weights (the registry's default entry per method) "
         "with the MRI in the first slot: the paper applies them to the medical sets 'without retraining' and does "
         "not say more (MUFusion's own medical checkpoint and slot order are not used; see docs/baselines.md).",)


def run(ctx) -> list[Path]:
    return quality_table(ctx, TABLE, DATASETS, extra_notes=NOTES)
