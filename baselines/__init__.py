"""The methods MMDRFuse is compared with, and training-free fusion rules, behind one registry.

>>> import baselines
>>> spec = baselines.get("tardal")                 # MethodSpec; unknown names fail with "did you mean"
>>> method = spec.build("cpu")                     # loads <weights root>/baselines/TarDAL/tardal.pt
>>> fused = method.fuse(ir, vis)                   # N x 1 x H x W in [0, 1] -> fused, float in [0, 1]
>>> img8 = method.to_uint8(fused[:1])              # the original's rounding / truncation
>>> spec.build("cpu", weights=False).macs(1024, 1280)   # Table 3 counts without weights

``available(weights_root)`` lists the names that can produce fused images here (weights present; TextFusion also
needs its text vector). See docs/baselines.md for every method's conventions and what differs from the original.
MMDRFuse itself is registered by the core, not here.
"""
from __future__ import annotations

import os

from baselines import classical
from baselines.base import FusionMethod, MethodSpec, PaperRow, WeightFile, did_you_mean
from baselines.defusion import DeFusion
from baselines.lrrnet import LRRNet
from baselines.metafusion import MetaFusion
from baselines.mufusion import MUFusion
from baselines.tardal import TarDAL
from baselines.textfusion import TEXT_RELPATH, TextFusion

__all__ = ["REGISTRY", "get", "available", "names", "MethodSpec", "FusionMethod", "WeightFile"]

_RAW = "https://raw.githubusercontent.com"

CITATIONS = {
    "TextFusion": "C. Cheng, T. Xu, X.-J. Wu, H. Li, X. Li, Z. Tang, J. Kittler. TextFusion: Unveiling the Power of "
                  "Textual Semantics for Controllable Image Fusion. arXiv:2312.14209, 2023.",
    "MUFusion": "C. Cheng, T. Xu, X.-J. Wu. MUFusion: A general unsupervised image fusion network based on memory "
                "unit. Information Fusion 92 (2023) 80-92.",
    "LRRNet": "H. Li, T. Xu, X.-J. Wu, J. Lu, J. Kittler. LRRNet: A Novel Representation Learning Guided Fusion "
              "Network for Infrared and Visible Images. IEEE TPAMI 45(9) (2023) 11040-11052.",
    "MetaFusion": "W. Zhao, S. Xie, F. Zhao, Y. He, H. Lu. MetaFusion: Infrared and Visible Image Fusion via "
                  "Meta-Feature Embedding from Object Detection. CVPR 2023, 13955-13965.",
    "DeFusion": "P. Liang, J. Jiang, X. Liu, J. Ma. Fusion from Decomposition: A Self-Supervised Decomposition "
                "Approach for Image Fusion. ECCV 2022, 719-735.",
    "TarDAL": "J. Liu, X. Fan, Z. Huang, G. Wu, R. Liu, W. Zhong, Z. Luo. Target-aware Dual Adversarial Learning and "
              "a Multi-scenario Multi-Modality Benchmark to Fuse Infrared and Visible for Object Detection. "
              "CVPR 2022, 5792-5801.",
    "average": "Pixel-wise average of the two sources.",
    "max": "Pixel-wise maximum of the two sources (also MMDRFuse's intensity target).",
    "laplacian": "P. J. Burt, E. H. Adelson. The Laplacian Pyramid as a Compact Image Code. IEEE TCOM 31(4), 1983; "
                 "rules as in Y. Liu, S. Liu, Z. Wang, Information Fusion 24, 2015.",
    "dwt": "H. Li, B. S. Manjunath, S. K. Mitra. Multisensor Image Fusion Using the Wavelet Transform. GMIP 57(3), "
           "1995; settings of Y. Liu, S. Liu, Z. Wang, Information Fusion 24, 2015.",
    "gff": "S. Li, X. Kang, J. Hu. Image Fusion With Guided Filtering. IEEE TIP 22(7), 2013.",
    "mgff": "D. P. Bavirisetti, G. Xiao, J. Zhao, R. Dhuli, G. Liu. Multi-scale Guided Image and Video Fusion: A Fast "
            "and Efficient Approach. Circuits, Systems, and Signal Processing 38, 2019.",
    "tif": "D. P. Bavirisetti, R. Dhuli. Two-scale image fusion of visible and infrared images using saliency "
           "detection. Infrared Physics & Technology 76, 2016.",
    "cbf": "B. K. Shreyamsha Kumar. Image fusion based on pixel significance using cross bilateral filter. Signal, "
           "Image and Video Processing 9, 2015.",
}

# MMDRFuse Table 3 as printed: size (KB), FLOPs (G), time (ms) on the authors' GPU.
PAPER_TABLE3 = {
    "TextFusion": PaperRow(288.51, 88.708, 11.17),
    "MUFusion": PaperRow(4333.76, 240.669, 7.91),
    "LRRNet": PaperRow(192.20, 60.445, 523.35),
    "MetaFusion": PaperRow(3170.76, 1063.000, 325.37),
    "DeFusion": PaperRow(30759.66, 322.696, 339.59),
    "TarDAL": PaperRow(1158.50, 388.854, 124.10),
}

VENUES = {"TextFusion": "24' Arxiv", "MUFusion": "23' Inf. Fus.", "LRRNet": "23' TPAMI", "MetaFusion": "23' CVPR",
          "DeFusion": "22' ECCV", "TarDAL": "22' CVPR"}


def _factory(cls, **fixed):
    def build(spec, device, weights_root=None, load_weights=True, **options):
        return cls(spec, device, weights_root=weights_root, load_weights=load_weights, **{**fixed, **options})

    return build


def _learned(name, display, cls, weights, note="", table3=False, requires=(), **fixed) -> MethodSpec:
    return MethodSpec(name=name, display=display, kind="learned", citation=CITATIONS[display], venue=VENUES[display],
                      factory=_factory(cls, **fixed), weights=tuple(weights), note=note, table3=table3,
                      paper=PAPER_TABLE3[display], requires=tuple(requires))


_MU = "AWCXV/MUFusion"
_TD = "JinyuanLiu-CV/TarDAL/1d1d1e99b96e7de0cd4e4f57aa0d321e5b5e2727"


def _tardal(file: str, sha: str) -> WeightFile:
    return WeightFile(f"baselines/TarDAL/{file}", f"{_RAW}/{_TD}/weights/{file}", sha,
                      f"JinyuanLiu-CV/TarDAL@1d1d1e9 weights/{file}")


_SPECS: list[MethodSpec] = [
    _learned("textfusion", "TextFusion", TextFusion, [WeightFile(
        "baselines/TextFusion/LLVIP_pretrained.model",
        f"{_RAW}/AWCXV/TextFusion/7509094be5db539708dc67af47469d04bdcedec5/models/LLVIP_pretrained.model",
        "4471c6c376b8f7c5d63b2766d0dd9f5c361c740e1dc937658ed418febcd7d657",
        "AWCXV/TextFusion@7509094 models/LLVIP_pretrained.model")],
        note=(f"TextFusion needs a 512-d CLIP ViT-B/32 text embedding, which cannot be computed here: save one "
              f"(numpy.save) as <weights root>/{TEXT_RELPATH} or pass text= when building"),
        table3=True, requires=(TEXT_RELPATH,)),
    _learned("mufusion", "MUFusion", MUFusion, [WeightFile(
        "baselines/MUFusion/TNO.model",
        f"{_RAW}/{_MU}/ac52204b1ae899dd4bab69124b10fb099c4b43b1/ir_vis/models/TNO.model",
        "5d96ad1812c61e005edb439c85e341bac91c7bf275f1a41cd20a0a62769b2dbb", f"{_MU}@ac52204 ir_vis/models/TNO.model")],
        note="TNO checkpoint (the official default for infrared-visible); float64, official 128/124 tiling",
        table3=True),
    _learned("mufusion-roadscene", "MUFusion", MUFusion, [WeightFile(
        "baselines/MUFusion/RoadScene.model",
        f"{_RAW}/{_MU}/3a1f4948edc473296163a845fb4e6c7981effbfb/ir_vis/models/RoadScene.model",
        "8c358e4869092fb0bb553947674ee1b04bfffe06eb200354c3a62ee005f093fd",
        f"{_MU}@3a1f494 ir_vis/models/RoadScene.model")],
        note="RoadScene checkpoint; float64, official 128/124 tiling"),
    _learned("mufusion-harvard", "MUFusion", MUFusion, [WeightFile(
        "baselines/MUFusion/harvard.model",
        f"{_RAW}/{_MU}/602822354fbe985af5162d73854e2160fb575a35/medical/models/harvard.model",
        "f8537a378d5b980fc190897eb94981fc74ab8afb5d362e7aada86b672455584d",
        f"{_MU}@6028223 medical/models/harvard.model")],
        note="medical (Harvard) checkpoint; float64, official tiling; the suite keeps MRI in the first slot"),
    _learned("lrrnet", "LRRNet", LRRNet, [WeightFile(
        "baselines/LRRNet/lrrnet_final.model",
        f"{_RAW}/hli1221/imagefusion-LRRNet/fa97de87794f5aed6cadf66e6245a74af29afdbf/model/"
        "final_lrr_net_lam2_1.5_wir_3.0_lam3_gram_2000_epoch_4_block_4.model",
        "1de9dd8dee9b650ce69c74ea53e3b9a6b749222f1059a689aabf28f68ee63e29",
        "hli1221/imagefusion-LRRNet@fa97de8 model/final_lrr_net_lam2_1.5_wir_3.0_lam3_gram_2000_epoch_4_block_4.model")],
        table3=True),
    _learned("metafusion", "MetaFusion", MetaFusion, [WeightFile(
        "baselines/MetaFusion/model_weight.pth",
        "https://github.com/wdzhao123/MetaFusion/raw/a8c5eaf/weight/model_weight.pth", None,
        "wdzhao123/MetaFusion@a8c5eaf weight/model_weight.pth (listed, blob not retrievable)")],
        note=("MetaFusion: no checkpoint reachable (weight/model_weight.pth is listed in wdzhao123/MetaFusion but its "
              "blob is absent); architecture only, counted in Table 3"),
        table3=True),
    _learned("defusion", "DeFusion", DeFusion, [WeightFile(
        "baselines/DeFusion/defusion.pth",
        "https://drive.google.com/file/d/1CUoFLiV3mugvbfBcMcwgXbDF6bWPhdd9/view?usp=sharing", None,
        "erfect2020/DecompositionForFusion README (Google Drive)")],
        note=("DeFusion: the checkpoint is only on Google Drive, unreachable here; architecture only, counted in "
              "Table 3"),
        table3=True),
    _learned("tardal", "TarDAL", TarDAL, [_tardal(
        "tardal.pt", "e0fa61e25cffa9fb14ff17b47ea7ba237a6e8c6f37e1b9b115d63354ff0f13e1")],
        note="tardal.pt run with per-image BatchNorm statistics (train mode), as the official README runs it",
        table3=True),
    _learned("tardal+", "TarDAL", TarDAL, [_tardal(
        "tardal+.pt", "cff3756548b511e3e415616debc557cdc85b3bb19393ca158cac8d08f232897c")],
        note="tardal+.pt, BatchNorm in eval mode (running statistics), as the official README runs it"),
    _learned("tardal++", "TarDAL", TarDAL, [_tardal(
        "tardal++.pt", "7009d125e36db043d6918d9358e10c6dca7fdf2dd08ada09c5ecd294f45f98c5")],
        note="tardal++.pt, BatchNorm in eval mode (running statistics), as the official README runs it"),
]

_CLASSICAL_DISPLAY = {"average": "Average", "max": "Max", "laplacian": "LP", "dwt": "DWT", "gff": "GFF",
                      "mgff": "MGFF", "tif": "TIF", "cbf": "CBF"}
for _name, _display in _CLASSICAL_DISPLAY.items():
    _SPECS.append(MethodSpec(name=_name, display=_display, kind="classical", citation=CITATIONS[_name], venue="",
                             factory=classical.factory(_name)))

REGISTRY: dict[str, MethodSpec] = {s.name: s for s in _SPECS}


def names(kind: str | None = None) -> list[str]:
    """Registered names, optionally only ``learned`` or ``classical`` ones."""
    return [n for n, s in REGISTRY.items() if kind is None or s.kind == kind]


def get(name: str) -> MethodSpec:
    """The spec registered under ``name`` (case-insensitive); unknown names raise MMDRFuseError ("did you mean")."""
    spec = REGISTRY.get(name.strip().lower())
    if spec is None:
        raise did_you_mean(name, REGISTRY)
    return spec


def available(weights_root: str | os.PathLike | None = None) -> list[str]:
    """Names that can produce fused images with the files under ``weights_root`` (classical ones always)."""
    return [n for n, s in REGISTRY.items() if s.status(weights_root) is None]


def unavailable(weights_root: str | os.PathLike | None = None) -> dict[str, str]:
    """name -> one-line reason, for every method that cannot produce fused images here."""
    return {n: r for n, s in REGISTRY.items() if (r := s.status(weights_root)) is not None}
