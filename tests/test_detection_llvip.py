"""The LLVIP detection path end to end on real LLVIP files, as a smoke check (not a result): LLVIP's own VOC XML of
test pairs 190001-190005 -> YOLO labels -> the LLVIP protocol's data set (official folder layout, built here from
links to the sample files) -> the Ultralytics dataset folder -> a detector trained for one epoch at 64 px on the
nine annotated training samples and evaluated (val) once on the five annotated test images."""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from benchmarks import detection as det
from mmdrfuse.voc import convert_folder

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEST_STEMS = ("190001", "190002", "190003", "190004", "190005")


def _persons(xml: Path) -> list[tuple[float, float, float, float]]:
    """The person boxes of one VOC file, read here without mmdrfuse.voc."""
    root = ET.parse(xml).getroot()
    return [tuple(float(o.find(f"bndbox/{t}").text) for t in ("xmin", "ymin", "xmax", "ymax"))
            for o in root.iter("object") if o.findtext("name") == "person"]


@pytest.fixture(scope="module")
def llvip(shared_data) -> Path:
    root = shared_data / "LLVIP"
    if not all((root / "test_samples/Annotations" / f"{s}.xml").is_file() for s in TEST_STEMS):
        pytest.skip("LLVIP/test_samples/Annotations/190001-190005.xml not under the data root")
    return root


def test_llvip_test_annotations_convert(llvip, tmp_path):
    ann = llvip / "test_samples/Annotations"
    s = convert_folder(ann, tmp_path / "labels")
    counts = {stem: len(_persons(ann / f"{stem}.xml")) for stem in TEST_STEMS}
    assert counts == {"190001": 2, "190002": 1, "190003": 5, "190004": 1, "190005": 1}  # 10 (SOURCES.md)
    assert (s.files, s.boxes, s.skipped_class, s.dropped_empty) == (5, 10, 0, 0)
    for stem, n in counts.items():
        rows = [[float(v) for v in ln.split()] for ln in (tmp_path / "labels" / f"{stem}.txt").read_text().splitlines()]
        assert len(rows) == n and all(r[0] == 0 and all(0 <= v <= 1 for v in r[1:]) for r in rows)
        for r, (x0, y0, x1, y1) in zip(rows, _persons(ann / f"{stem}.xml")):  # 1280 x 1024, continuous edges
            np.testing.assert_allclose(r[1:], [(x0 + x1) / 2 / 1280, (y0 + y1) / 2 / 1024, (x1 - x0) / 1280,
                                               (y1 - y0) / 1024], atol=1e-6)
    # 190001's first box, by hand: (1018, 330)-(1137, 588) in a 1280 x 1024 image
    first = (tmp_path / "labels/190001.txt").read_text().splitlines()[0]
    assert first == "0 0.841797 0.448242 0.092969 0.251953"


def _official_layout(llvip: Path, root: Path) -> list[str]:
    """``root/LLVIP/{infrared,visible}/{train,test}`` and ``root/LLVIP/Annotations`` as LLVIP is distributed, linked
    to the annotated sample pairs (train 010001-010009, test 190001-190005); returns the training stems."""
    train = sorted(p.stem for p in (llvip / "train_samples/Annotations").glob("*.xml"))
    ann = root / "LLVIP/Annotations"
    ann.mkdir(parents=True)
    for part, src, stems in (("train", "train_samples", train), ("test", "test_samples", TEST_STEMS)):
        for mod, sub in (("infrared", "ir"), ("visible", "vi")):
            (root / "LLVIP" / mod / part).mkdir(parents=True)
            for s in stems:
                os.symlink(llvip / src / sub / f"{s}.jpg", root / "LLVIP" / mod / part / f"{s}.jpg")
        for s in stems:
            os.symlink(llvip / src / "Annotations" / f"{s}.xml", ann / f"{s}.xml")
    return train


def test_llvip_protocol_path_evaluates_five_test_images(llvip, shared_weights, tmp_path):
    if importlib.util.find_spec("ultralytics") is None:
        pytest.skip("Ultralytics is not installed")
    train = _official_layout(llvip, tmp_path / "data")
    assert len(train) == 9
    data = det.resolve_dataset("LLVIP", tmp_path / "data", tmp_path / "labels")
    assert (data.split.train, data.split.test) == (tuple(train), TEST_STEMS)
    assert det.count_boxes(data.labels_dir, TEST_STEMS) == 10
    # the paper profile's protocol on these 9 / 5 pairs, shrunk to a smoke run (yolov5n, 64 px, one epoch)
    prof = dataclasses.replace(det.load_profile("paper"), model="yolov5n.yaml", imgsz=64, epochs=1, batch=4,
                               warmup_epochs=0, close_mosaic=0)
    split = data.split.limited(prof.n_train, prof.n_test)
    assert split == data.split  # fewer pairs than the paper's 2000 / 250: all of them
    init = det.resolve_yolo_weights("yolov5n-coco", shared_weights) \
        if (shared_weights / det.YOLO_WEIGHTS["yolov5n-coco"].relpath).is_file() else None
    logs: list[str] = []
    df = det.detection_benchmark({"IR-only": data.ir}, data.labels_dir, split, prof, tmp_path / "out",
                                 dataset=data.name, work_dir=tmp_path / "work", yolo_weights=init, progress=False,
                                 log=logs.append)
    assert len(df) == 2 and df["value"].between(0, 1).all()  # evaluated without error; the value means nothing
    ds = tmp_path / "work/LLVIP/paper/IR-only/data"
    assert sorted(p.name for p in (ds / "images/test").iterdir()) == [f"{s}.jpg" for s in TEST_STEMS]
    for s in TEST_STEMS:
        assert (ds / "labels/test" / f"{s}.txt").read_text() == (data.labels_dir / f"{s}.txt").read_text()
    res = json.loads((tmp_path / "out/detection/LLVIP/paper/IR-only.json").read_text())
    assert (res["n_train"], res["n_test"], res["n_test_boxes"]) == (9, 5, 10)
    assert (res["yolo_init"] or {}).get("transferred") in ((None,) if init is None else (342,))
