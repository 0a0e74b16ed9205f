"""The paper's numbers (Tables 1-5), transcribed from its text: Deng et al., "MMDRFuse: Distilled Mini-Model with
Dynamic Refresh for Multi-Modality Image Fusion", ACM Multimedia 2024.

These are the ONLY hand-typed numbers of the suite. They appear only in rows with ``source = paper`` of the tidy
reports (:func:`paper_rows`). Values are exactly as printed (the paper prints "60.1" and "1.1" for two MRI-PET cells
and "1063.000" for MetaFusion's FLOPs).

The paper does not say which weights it used for the compared methods; their paper rows carry weights ``authors``.
MMDRFuse's paper rows carry weights ``official`` (the authors' checkpoint, which reproduces them).
"""
from __future__ import annotations

METRICS = ("SD", "SCD", "VIF", "Qabf", "SSIM", "CC")
ABLATION_METRICS = ("SD", "VIF", "Qabf", "SSIM")
TABLE3_METRICS = ("Size_KB", "FLOPs_G", "Time_ms")
METHODS = ("TextFusion", "MUFusion", "LRRNet", "MetaFusion", "DeFusion", "TarDAL", "MMDRFuse")

# Test pairs per data set in the paper (section 4 and Tables 4-5).
PAPER_PAIRS = {"MSRS": 361, "LLVIP": 250, "RoadScene": 50, "MRI-SPECT": 73, "MRI-PET": 42}

# Table 1: ablation of the components, MSRS; columns SD, VIF, Qabf, SSIM.
TABLE1 = {
    "w/o intensity loss": (40.89, 0.85, 0.57, 0.96),
    "w/o gradient loss": (43.77, 0.86, 0.58, 0.92),
    "w/o perception loss": (40.97, 0.75, 0.51, 0.84),
    "w/o dynamic refresh": (42.82, 0.74, 0.55, 0.84),
    "w/o distillation": (39.10, 0.86, 0.58, 0.96),
    "w/o digestible distillation": (36.14, 0.76, 0.53, 0.89),
    "MMDRFuse": (43.08, 0.90, 0.60, 0.97),
}

# Table 2: student size, MSRS; columns SD, VIF, Qabf, SSIM.
TABLE2 = {
    "huge student (1021.01KB)": (43.48, 0.97, 0.63, 0.99),
    "large student (0.66KB)": (43.55, 0.89, 0.59, 0.93),
    "small student (0.22KB)": (38.35, 0.77, 0.50, 0.91),
    "MMDRFuse (0.44KB)": (43.08, 0.90, 0.60, 0.97),
}

# Table 3: efficiency; Size (KB), FLOPs (G), Time (ms; the paper's GPU, an RTX 3090).
TABLE3 = {
    "TextFusion": (288.51, 88.708, 11.17),
    "MUFusion": (4333.76, 240.669, 7.91),
    "LRRNet": (192.20, 60.445, 523.35),
    "MetaFusion": (3170.76, 1063.000, 325.37),
    "DeFusion": (30759.66, 322.696, 339.59),
    "TarDAL": (1158.50, 388.854, 124.10),
    "MMDRFuse": (0.44, 0.142, 0.62),
}
TABLE3_VENUES = {
    "TextFusion": "24' Arxiv", "MUFusion": "23' Inf. Fus.", "LRRNet": "23' TPAMI", "MetaFusion": "23' CVPR",
    "DeFusion": "22' ECCV", "TarDAL": "22' CVPR", "MMDRFuse": "Ours",
}

# Table 4: infrared-visible fusion; columns SD, SCD, VIF, Qabf, SSIM, CC.
TABLE4 = {
    "MSRS": {
        "TextFusion": (38.02, 1.43, 0.72, 0.52, 0.76, 0.59),
        "MUFusion": (28.48, 1.26, 0.60, 0.42, 0.71, 0.61),
        "LRRNet": (31.76, 0.79, 0.54, 0.45, 0.43, 0.51),
        "MetaFusion": (39.64, 1.50, 0.71, 0.48, 0.78, 0.60),
        "DeFusion": (34.86, 1.29, 0.75, 0.51, 0.93, 0.60),
        "TarDAL": (37.58, 1.53, 0.70, 0.42, 0.70, 0.63),
        "MMDRFuse": (43.08, 1.66, 0.90, 0.60, 0.97, 0.61),
    },
    "LLVIP": {
        "TextFusion": (47.82, 1.41, 0.71, 0.53, 0.77, 0.68),
        "MUFusion": (40.44, 1.03, 0.68, 0.47, 0.70, 0.65),
        "LRRNet": (35.42, 1.09, 0.56, 0.47, 0.65, 0.69),
        "MetaFusion": (48.90, 1.36, 0.61, 0.29, 0.60, 0.67),
        "DeFusion": (43.93, 1.23, 0.74, 0.43, 0.83, 0.67),
        "TarDAL": (61.77, 1.44, 0.65, 0.42, 0.71, 0.66),
        "MMDRFuse": (47.74, 1.55, 0.83, 0.60, 0.84, 0.71),
    },
    "RoadScene": {
        "TextFusion": (38.43, 1.63, 0.68, 0.44, 0.94, 0.49),
        "MUFusion": (54.92, 1.62, 0.51, 0.34, 0.78, 0.48),
        "LRRNet": (43.90, 1.69, 0.51, 0.38, 0.71, 0.51),
        "MetaFusion": (48.66, 1.60, 0.51, 0.36, 0.75, 0.51),
        "DeFusion": (32.86, 1.48, 0.50, 0.38, 0.86, 0.48),
        "TarDAL": (44.88, 1.50, 0.53, 0.39, 0.83, 0.52),
        "MMDRFuse": (45.02, 1.70, 0.62, 0.44, 0.95, 0.52),
    },
}

# Table 5: medical fusion; columns SD, SCD, VIF, Qabf, SSIM, CC.
TABLE5 = {
    "MRI-SPECT": {
        "TextFusion": (41.32, 0.31, 0.52, 0.21, 0.32, 0.87),
        "MUFusion": (54.19, 0.91, 0.46, 0.44, 0.36, 0.85),
        "LRRNet": (42.16, 0.42, 0.34, 0.20, 0.21, 0.84),
        "MetaFusion": (45.43, 0.73, 0.47, 0.39, 1.40, 0.86),
        "DeFusion": (51.33, 0.70, 0.59, 0.55, 1.47, 0.86),
        "TarDAL": (58.41, 1.19, 0.56, 0.48, 0.37, 0.78),
        "MMDRFuse": (65.67, 1.78, 0.59, 0.57, 0.39, 0.88),
    },
    "MRI-PET": {
        "TextFusion": (60.1, 1.29, 0.63, 0.36, 0.38, 0.79),
        "MUFusion": (60.81, 1.22, 0.43, 0.42, 0.38, 0.77),
        "LRRNet": (48.30, 0.55, 0.37, 0.21, 0.22, 0.73),
        "MetaFusion": (63.47, 1.26, 0.50, 0.51, 1.43, 0.77),
        "DeFusion": (49.26, 1.11, 0.45, 0.45, 1.18, 0.64),
        "TarDAL": (52.99, 1.1, 0.46, 0.45, 0.30, 0.84),
        "MMDRFuse": (71.50, 1.72, 0.60, 0.56, 0.43, 0.81),
    },
}

TABLES = ("table1", "table2", "table3", "table4", "table5")


def _weights(method: str) -> str:
    return "official" if method.startswith("MMDRFuse") else "authors"


def paper_rows(table: str) -> list[dict]:
    """The paper's values of one table as tidy rows (``source = paper``, ``profile = published``).

    Table 1/2 rows use the configuration as the method name and the MSRS pair count; Table 3 rows use the data
    set label ``1024x1280`` (the input size of the measurement) and no pair count.
    """
    rows: list[dict] = []

    def add(tab, dataset, method, metrics, values, n_pairs):
        for m, v in zip(metrics, values):
            rows.append({"table": tab, "dataset": dataset, "method": method, "weights": _weights(method),
                         "metric": m, "value": float(v), "source": "paper", "n_pairs": n_pairs,
                         "profile": "published"})

    if table == "table1":
        for cfg, vals in TABLE1.items():
            add("table1", "MSRS", cfg, ABLATION_METRICS, vals, PAPER_PAIRS["MSRS"])
    elif table == "table2":
        for cfg, vals in TABLE2.items():
            add("table2", "MSRS", cfg, ABLATION_METRICS, vals, PAPER_PAIRS["MSRS"])
    elif table == "table3":
        for method, vals in TABLE3.items():
            add("table3", "1024x1280", method, TABLE3_METRICS, vals, None)
    elif table in ("table4", "table5"):
        src = TABLE4 if table == "table4" else TABLE5
        for dataset, block in src.items():
            for method, vals in block.items():
                add(table, dataset, method, METRICS, vals, PAPER_PAIRS[dataset])
    else:
        raise KeyError(f"the paper has no {table!r}; known: {', '.join(TABLES)}")
    return rows
