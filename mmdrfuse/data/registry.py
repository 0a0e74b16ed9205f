"""The evaluation data sets as the paper used them: name -> :class:`DatasetSpec` (layouts under the data root, the
paper's pair count and table, the public archive and its provenance), and :func:`get` by name or alias.

Medical pairs put the MRI in the IR slot and PET/SPECT in the visible slot (the order that reproduces Table 5).
"""
from __future__ import annotations

from dataclasses import dataclass, field

_CDDFUSE = "https://github.com/Zhaozixiang1228/MMIF-CDDFuse/archive/fd8da1f.zip"


@dataclass(frozen=True)
class Source:
    """A public archive holding the data set, and where its folders are inside it.

    ``members`` maps a folder inside the archive (after stripping the archive's single top folder, as GitHub's
    ``archive/<commit>.zip`` files have) to the folder it becomes under the data root.
    """

    url: str | None  # archive address (None: no direct download; see the data set's ``homepage``)
    sha256: str | None  # of the archive; None = not known (GitHub builds archives on request; pin with --sha256)
    members: dict[str, str] = field(default_factory=dict)
    provenance: str = ""  # repository @ commit and path the files come from
    exclude: tuple[str, ...] = ()  # files inside the archive (same paths as ``members``' keys) left out


@dataclass(frozen=True)
class DatasetSpec:
    """One evaluation data set as the paper used it."""

    name: str
    kind: str  # "ivif" | "medical" | "synthetic"
    paper_pairs: int  # pairs in the paper's test split
    table: str  # where the paper reports it
    layouts: tuple[tuple[str, str], ...]  # (IR/MRI folder, VIS/PET/SPECT folder) under the data root, best first
    source: Source
    homepage: str = ""
    licence: str = ""
    slots: tuple[str, str] = ("IR", "VIS")  # what the two inputs are called
    aliases: tuple[str, ...] = ()
    note: str = ""
    extras: tuple[Source, ...] = ()  # optional archives fetched with it (e.g. MSRS's detection labels)
    unverified: str = ""  # why it is not known to be what its name says (shown by 'mmdrfuse data list', flagged)
    supplements: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # IR folder of a layout ->
    #   folder pairs whose pairs join that layout when it is short of ``paper_pairs`` (LLVIP: 49 more test pairs)


REGISTRY: dict[str, DatasetSpec] = {
    "MSRS": DatasetSpec(
        "MSRS", "ivif", 361, "Table 4a, Tables 1-2",
        layouts=(("MSRS/test/ir", "MSRS/test/vi"),),
        source=Source("https://github.com/Linfeng-Tang/MSRS/archive/2052589d3a714d0285c8792e24d2db290d84b6ea.zip",
                      None, {"test/ir": "MSRS/test/ir", "test/vi": "MSRS/test/vi"},
                      "Linfeng-Tang/MSRS @ 2052589 test/{ir,vi} (the archive holds the whole MSRS, ~1 GB)"),
        homepage="https://github.com/Linfeng-Tang/MSRS", licence="research use; cite PIAFusion / SeAFusion",
        note="640x480 PNG; IR gray, visible RGB",
        extras=(Source("https://github.com/Lele-3/MSRS-detection-label/archive/cb6ffc0.zip", None,
                       {"fusion/test": "MSRS/test/labels"},
                       "Lele-3/MSRS-detection-label @ cb6ffc0 fusion/test (YOLO labels: 0 person, 1 bicycle, 2 car; "
                       "the detection benchmark)"),)),
    "LLVIP": DatasetSpec(
        "LLVIP", "ivif", 250, "Table 4b",
        layouts=(("LLVIP/infrared/test", "LLVIP/visible/test"),  # the full LLVIP as distributed
                 ("LLVIP/test/ir", "LLVIP/test/vi"),
                 ("LLVIP/test_samples/ir", "LLVIP/test_samples/vi")),  # LLVIP's 15 public samples (source below)
        source=Source("https://github.com/bupt-ai-cz/LLVIP/archive/60cdc80.zip", None,
                      {"FusionGAN/Test_LLVIP_ir": "LLVIP/test_samples/ir",
                       "FusionGAN/Test_LLVIP_vi": "LLVIP/test_samples/vi"},
                      "bupt-ai-cz/LLVIP @ 60cdc80 FusionGAN/Test_LLVIP_{ir,vi} (12 sample pairs only)"),
        homepage="https://bupt-ai-cz.github.io/LLVIP/",
        licence="non-commercial research and teaching only; cite LLVIP",
        aliases=("llvip",),
        note="the paper's 250-pair test split is distributed from the homepage under its licence (manual download; "
             "unpack so that LLVIP/infrared/test and LLVIP/visible/test exist); the archive here has 12 samples, "
             "49 more test pairs come with it (LLVIP/test_extra, renamed 1..50 by their publisher)",
        extras=(Source("https://github.com/Liling-yang/LENFsuion/archive/13cfbd6.zip", None,
                       {"test/LLVIP/ir": "LLVIP/test_extra/ir", "test/LLVIP/vi": "LLVIP/test_extra/vi"},
                       "Liling-yang/LENFsuion @ 13cfbd6 test/LLVIP/{ir,vi} (50 LLVIP test pairs renamed 1..50; "
                       "no. 29 is 190001 of the samples and is left out)",
                       exclude=("test/LLVIP/ir/29.jpg", "test/LLVIP/vi/29.jpg")),),
        supplements={"LLVIP/test_samples/ir": (("LLVIP/test_extra/ir", "LLVIP/test_extra/vi"),)}),
    "RoadScene": DatasetSpec(
        "RoadScene", "ivif", 50, "Table 4c",
        layouts=(("RoadScene/test50/ir", "RoadScene/test50/vi"),),
        source=Source(_CDDFUSE, None, {"test_img/RoadScene/ir": "RoadScene/test50/ir",
                                       "test_img/RoadScene/vi": "RoadScene/test50/vi"},
                      "Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f test_img/RoadScene"),
        homepage="https://github.com/hanna-xu/RoadScene", licence="cite FusionDN / U2Fusion",
        note="the 50-pair split of CDDFuse; may differ from the paper's RoadScene-50"),
    "MRI-SPECT": DatasetSpec(
        "MRI-SPECT", "medical", 73, "Table 5a",
        layouts=(("MRI_SPECT/MRI", "MRI_SPECT/SPECT"),),
        source=Source(_CDDFUSE, None, {"test_img/MRI_SPECT/MRI": "MRI_SPECT/MRI",
                                       "test_img/MRI_SPECT/SPECT": "MRI_SPECT/SPECT"},
                      "Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f test_img/MRI_SPECT"),
        homepage="http://www.med.harvard.edu/AANLIB/", licence="Harvard Whole Brain Atlas",
        slots=("MRI", "SPECT"), aliases=("MRI_SPECT", "mrispect"), note="256x256 PNG"),
    "MRI-PET": DatasetSpec(
        "MRI-PET", "medical", 42, "Table 5b",
        layouts=(("MRI_PET/MRI", "MRI_PET/PET"),),
        source=Source(_CDDFUSE, None, {"test_img/MRI_PET/MRI": "MRI_PET/MRI",
                                       "test_img/MRI_PET/PET": "MRI_PET/PET"},
                      "Zhaozixiang1228/MMIF-CDDFuse @ fd8da1f test_img/MRI_PET"),
        homepage="http://www.med.harvard.edu/AANLIB/", licence="Harvard Whole Brain Atlas",
        slots=("MRI", "PET"), aliases=("MRI_PET", "mripet"), note="256x256 PNG"),
    "LLVIP-train": DatasetSpec(
        "LLVIP-train", "ivif", 0, "none (training pairs; the detection benchmark's train split)",
        layouts=(("LLVIP/infrared/train", "LLVIP/visible/train"),
                 ("LLVIP/train/ir", "LLVIP/train/vi"),
                 ("LLVIP/train_samples/ir", "LLVIP/train_samples/vi")),
        source=Source("https://github.com/bupt-ai-cz/LLVIP/archive/60cdc80.zip", None,
                      {"FusionGAN/Train_LLVIP_ir": "LLVIP/train_samples/ir",
                       "FusionGAN/Train_LLVIP_vi": "LLVIP/train_samples/vi"},
                      "bupt-ai-cz/LLVIP @ 60cdc80 FusionGAN/Train_LLVIP_{ir,vi} (sample pairs only)"),
        homepage="https://bupt-ai-cz.github.io/LLVIP/",
        licence="non-commercial research and teaching only; cite LLVIP",
        aliases=("llvip_train",),
        note="training pairs (teacher/student training, detection); the full set comes from the homepage"),
    "IVT_250": DatasetSpec(
        "IVT_250", "ivif", 250, "Table 4b (probably: the paper's 250 LLVIP test pairs)",
        layouts=(("IVT_250/ir", "IVT_250/vis"),),
        source=Source("https://github.com/AWCXV/FusionBooster/archive/35de693.zip", None,
                      {"dataset/IVT_250/ir": "IVT_250/ir", "dataset/IVT_250/vis": "IVT_250/vis"},
                      "AWCXV/FusionBooster @ 35de693 dataset/IVT_250/{ir,vis} (files 1..250; the archive holds the "
                      "whole repository, ~600 MB)"),
        homepage="https://github.com/AWCXV/FusionBooster",
        licence="LLVIP's: non-commercial research and teaching only; cite LLVIP",
        aliases=("ivt250", "IVT-250"),
        note="250 LLVIP test pairs renamed 1..250, published by the paper authors' group with FusionBooster; "
             "probably the paper's LLVIP test split",
        unverified="never downloaded by the project: no sha256 known for its archive, and not shown to be the "
                   "paper's LLVIP test set; after downloading, run 'python -m benchmarks.check_ivt250' (fuses it "
                   "with official-student and compares with Table 4b)"),
    "DEMO": DatasetSpec(
        "DEMO", "synthetic", 0, "none (built-in synthetic demo; NOT the paper's data)",
        layouts=(("DEMO/ir", "DEMO/vi"),),
        source=Source(None, None, {}, "generated by mmdrfuse.demo"),
        aliases=("demo", "synthetic"),
        note="procedurally generated warm targets on a textured scene; for smoke runs only"),
}

PAPER_DATASETS = ("MSRS", "LLVIP", "RoadScene", "MRI-SPECT", "MRI-PET")


def get(name: str) -> DatasetSpec:
    """Registry entry by name or alias (case-insensitive); unknown names fail with a 'did you mean'."""
    if name in REGISTRY:
        return REGISTRY[name]
    low = name.lower().replace("_", "-")
    for spec in REGISTRY.values():
        if low == spec.name.lower() or low in (a.lower().replace("_", "-") for a in spec.aliases):
            return spec
    from mmdrfuse.names import unknown

    raise unknown("data set", name, REGISTRY)
