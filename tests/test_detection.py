"""Pedestrian detection benchmark (Fig. 8): VOC -> YOLO conversion, split, dataset layout, resumability, quick e2e."""
from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmarks import detection as det
from mmdrfuse.errors import BadInputError, MMDRFuseError
from mmdrfuse.voc import ConversionSummary, convert_folder, parse_voc, yolo_lines

VOC_XML = """<?xml version="1.0" ?><annotation>
  <filename>a.jpg</filename>
  <size><width>{w}</width><height>{h}</height><depth>1</depth></size>
  {objects}
</annotation>"""
OBJ = ("<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
       "<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")


def _xml(path: Path, w: int, h: int, objects: list[tuple]) -> Path:
    objs = "".join(OBJ.format(name=n, x0=a, y0=b, x1=c, y1=d) for n, a, b, c, d in objects)
    path.write_text(VOC_XML.format(w=w, h=h, objects=objs), encoding="utf-8")
    return path


def _parse_lines(text: str) -> list[list[float]]:
    return [[float(v) for v in line.split()] for line in text.splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------------ VOC -> YOLO
def test_voc_to_yolo_hand_made(tmp_path):
    xml_dir = tmp_path / "ann"
    xml_dir.mkdir()
    # 200 x 100 image: a box (20,10)-(60,50) -> cx 40/200, cy 30/100, w 40/200, h 40/100 (worked out by hand)
    _xml(xml_dir / "a.xml", 200, 100, [("person", 20, 10, 60, 50),
                                       ("car", 0, 0, 10, 10),            # other class: skipped
                                       ("person", 180, 80, 220, 120),    # clipped to (180,80)-(200,100)
                                       ("person", 50, 50, 50, 70)])      # zero width: dropped
    # a second file with another <size>: the size must be read per file
    _xml(xml_dir / "b.xml", 400, 400, [("person", 100, 100, 300, 200)])
    summary = convert_folder(xml_dir, tmp_path / "labels")
    assert (summary.files, summary.boxes, summary.skipped_class, summary.dropped_empty) == (2, 3, 1, 1)
    a = _parse_lines((tmp_path / "labels" / "a.txt").read_text())
    np.testing.assert_allclose(a, [[0, 0.2, 0.3, 0.2, 0.4], [0, 0.95, 0.9, 0.1, 0.2]], atol=1e-6)
    b = _parse_lines((tmp_path / "labels" / "b.txt").read_text())
    np.testing.assert_allclose(b, [[0, 0.5, 0.375, 0.5, 0.25]], atol=1e-6)


def test_voc_classes_order_and_parse(tmp_path):
    p = _xml(tmp_path / "c.xml", 100, 50, [("car", 0, 0, 50, 50), ("person", 50, 0, 100, 25)])
    ann = parse_voc(p)
    assert (ann.width, ann.height, len(ann.objects)) == (100, 50, 2)
    s = ConversionSummary()
    lines = yolo_lines(ann, classes=("person", "car"), summary=s)
    assert [ln.split()[0] for ln in lines] == ["1", "0"] and s.skipped_class == 0


def test_voc_missing_size_names_the_file(tmp_path):
    bad = tmp_path / "ann"
    bad.mkdir()
    (bad / "x.xml").write_text("<annotation><object><name>person</name></object></annotation>")
    with pytest.raises(BadInputError, match=r"x\.xml.*<size>"):
        convert_folder(bad, tmp_path / "out")
    _xml(bad / "y.xml", 10, 10, [("person", 1, 1, 5, 5)])
    s = convert_folder(bad, tmp_path / "out", skip_bad=True)
    assert s.files == 1 and len(s.bad_files) == 1 and "x.xml" in s.bad_files[0]
    (bad / "x.xml").write_text("<annotation><size><width>0</width><height>10</height></size></annotation>")
    with pytest.raises(BadInputError, match="positive"):
        parse_voc(bad / "x.xml")


def test_voc_cli_error_is_one_line(tmp_path, capsys):
    from mmdrfuse.voc import main
    assert main([str(tmp_path / "nope"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_voc_real_llvip_annotations(shared_data, tmp_path):
    """SOURCES.md: the 9 LLVIP sample annotations hold 45 person boxes."""
    s = convert_folder(shared_data / "LLVIP/train_samples/Annotations", tmp_path / "labels")
    assert (s.files, s.boxes) == (9, 45)
    for f in (tmp_path / "labels").glob("*.txt"):
        for row in _parse_lines(f.read_text()):
            assert row[0] == 0 and all(0 <= v <= 1 for v in row[1:])


# ------------------------------------------------------------------------------------------------- split/labels
def test_block_split_properties():
    stems = [f"{i:05d}{'D' if i % 3 else 'N'}" for i in range(361)]
    sp = det.block_split(reversed(stems), block=10, test_every=4)
    assert set(sp.train) | set(sp.test) == set(stems) and not set(sp.train) & set(sp.test)
    assert len(sp.test) == 90 and len(sp.train) == 271  # 37 blocks, blocks 3, 7, ..., 35 are test
    ordered = sorted(stems)
    for k in range(0, 361, 10):  # every block of 10 consecutive stems sits on one side
        block = ordered[k:k + 10]
        assert all(s in sp.test for s in block) or all(s in sp.train for s in block)
    assert list(sp.train) == sorted(sp.train)


def test_msrs_split_sizes(shared_data, tmp_path):
    data = det.resolve_dataset("MSRS", shared_data, tmp_path)
    assert (len(data.split.train), len(data.split.test)) == (271, 90)
    quick = det.load_profile("quick")
    lim = data.split.limited(quick.n_train, quick.n_test)
    assert len(lim.train) == quick.n_train and set(lim.train) <= set(data.split.train)
    assert "evenly spaced" in lim.rule


def test_evenly_spaced():
    items = [str(i) for i in range(10)]
    assert det.evenly_spaced(items, 5) == ("0", "2", "4", "6", "8")
    assert det.evenly_spaced(items, None) == tuple(items) and det.evenly_spaced(items, 50) == tuple(items)
    assert det.evenly_spaced(items, 0) == ()


def test_read_yolo_labels_filters_person(tmp_path):
    f = tmp_path / "a.txt"
    f.write_text("0  0.5  0.5  0.1  0.2  \n2 0.1 0.1 0.1 0.1\n\n0 0.2 0.3 0.05 0.05\n")
    assert det.read_yolo_labels(f, 0) == ["0 0.500000 0.500000 0.100000 0.200000",
                                          "0 0.200000 0.300000 0.050000 0.050000"]
    assert det.read_yolo_labels(f, 2) == ["0 0.100000 0.100000 0.100000 0.100000"]
    assert det.read_yolo_labels(tmp_path / "missing.txt") == []
    f.write_text("0 0.5 0.5 1.5 0.2\n")
    with pytest.raises(BadInputError, match=r"a\.txt:1"):
        det.read_yolo_labels(f)


def _fake_set(root: Path, n: int = 6, size=(40, 32)) -> tuple[dict[str, Path], Path]:
    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    images = {}
    for i in range(n):
        stem = f"{i:04d}"
        p = root / "img" / f"{stem}.png"
        Image.fromarray(np.full(size[::-1], 20 * i, np.uint8)).save(p)
        images[stem] = p
        (root / "lab" / f"{stem}.txt").write_text("0 0.5 0.5 0.2 0.3\n1 0.1 0.1 0.1 0.1\n")
    return images, root / "lab"


def test_prepare_yolo_dataset(tmp_path):
    import yaml
    images, labels = _fake_set(tmp_path)
    split = det.Split(("0000", "0001", "0002", "0003"), ("0004", "0005"), "test")
    y = det.prepare_yolo_dataset(images, labels, split, tmp_path / "ds")
    cfg = yaml.safe_load(y.read_text())
    assert cfg["names"] == {0: "person"} and Path(cfg["path"]).is_absolute()
    assert sorted(p.name for p in (tmp_path / "ds/images/train").iterdir()) == [f"000{i}.png" for i in range(4)]
    assert (tmp_path / "ds/labels/test/0005.txt").read_text() == "0 0.500000 0.500000 0.200000 0.300000\n"
    with pytest.raises(BadInputError, match="0009"):
        det.prepare_yolo_dataset(images, labels, det.Split(("0009",), (), "x"), tmp_path / "ds2")


def test_profiles():
    for name in ("quick", "cpu", "paper"):
        p = det.load_profile(name)
        assert p.optimizer == "SGD" and p.seed == 0
    assert det.load_profile("cpu").imgsz == 320
    paper = det.load_profile("paper")
    assert (paper.epochs, paper.batch, paper.dataset) == (3, 16, "LLVIP")  # the paper's protocol
    with pytest.raises(MMDRFuseError, match="did you mean 'quick'"):
        det.load_profile("quik")


def test_pretrained_is_the_papers_fine_tuning_over_a_profile():
    p = det.load_profile("cpu", pretrained=True)
    # the paper's protocol: SGD, batch 16, 3 epochs, pretrained; at the paper's (YOLOv5's default) 640 px
    assert (p.optimizer, p.batch, p.epochs, p.imgsz, p.yolo_weights) == ("SGD", 16, 3, 640, "yolov5n-coco")
    assert p.close_mosaic == 0 and p.nbs == 16 and p.all_seeds() == (0, 1, 2)
    # on the profile's data and split, under its own name (its jobs' keys and folder) and report, never over the
    # from-scratch one; where the report goes is not part of a job's key
    cpu = det.load_profile("cpu")
    assert (p.name, p.dataset, p.n_train, p.n_test) == ("cpu-pretrained", cpu.dataset, cpu.n_train, cpu.n_test)
    assert p.table == "detection_pretrained" and cpu.table == "detection" and cpu.yolo_weights is None
    assert "table" not in p.key_settings() and p.key_settings()["name"] == "cpu-pretrained"
    assert det.load_profile("quick", pretrained=True, seeds=[0]).all_seeds() == (0,)  # --seeds still wins
    assert det.load_profile("paper", pretrained=True).model == "yolov5n.yaml"  # the model the COCO file fits


def test_llvip_protocol_missing_data_is_clear(tmp_path):
    with pytest.raises(BadInputError, match="--profile cpu"):
        det.resolve_dataset("LLVIP", tmp_path, tmp_path / "labels")


def test_missing_ultralytics_is_one_clear_error(monkeypatch, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "ultralytics", None)
    with pytest.raises(MMDRFuseError, match="pip install"):
        det.import_ultralytics(tmp_path)


# -------------------------------------------------------------------------------------------- resumable runs
def test_benchmark_writes_json_and_skips_done_methods(tmp_path, monkeypatch):
    images, labels = _fake_set(tmp_path)
    split = det.Split(("0000", "0001", "0002", "0003"), ("0004", "0005"), "test split")
    calls = []

    def fake_train(data_yaml, run_dir, profile, **kw):
        calls.append(Path(run_dir).parent.name)
        return {"mAP50-95": 0.25, "mAP50": 0.5, "precision": 0.6, "recall": 0.4, "train_seconds": 1.0,
                "resumed": False}

    monkeypatch.setattr(det.yolo, "train_and_evaluate", fake_train)
    prof = det.load_profile("quick")
    dirs = {"A": tmp_path / "img", "IR-only": [tmp_path / "img"]}
    df = det.detection_benchmark(dirs, labels, split, prof, tmp_path / "out", work_dir=tmp_path / "w",
                                 progress=False, log=lambda *_: None)
    assert list(df.columns) == det.TIDY_COLUMNS
    assert calls == ["A", "IR-only"]
    assert set(df["metric"]) == {"mAP50-95", "mAP50"} and set(df["source"]) == {"ours"}
    assert df.loc[df["method"] == "IR-only", "weights"].iloc[0] == "none"
    assert (df["n_pairs"] == 2).all()
    res = json.loads((tmp_path / "out/detection/MSRS/quick/A.json").read_text())
    assert res["metrics"]["mAP50"] == 0.5 and res["n_test_boxes"] == 2
    # rerun: nothing retrained, same rows
    df2 = det.detection_benchmark(dirs, labels, split, prof, tmp_path / "out", work_dir=tmp_path / "w",
                                  progress=False, log=lambda *_: None)
    assert calls == ["A", "IR-only"]
    pd.testing.assert_frame_equal(df, df2)
    # a changed input (one image rewritten with another size) invalidates that method only
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "img/0004.png")
    det.detection_benchmark({"A": tmp_path / "img"}, labels, split, prof, tmp_path / "out", work_dir=tmp_path / "w",
                            progress=False, log=lambda *_: None)
    assert calls == ["A", "IR-only", "A"]


def test_profile_seeds():
    p = det.load_profile("quick", seeds=[1, 0, 1])
    assert p.all_seeds() == (1, 0) and p.seed == 1  # duplicates dropped, order kept; the first is the seed
    assert det.load_profile("quick").all_seeds() == (0,)
    one = p.for_seed(0)
    assert one.all_seeds() == (0,) and one.train_args()["seed"] == 0
    # a seed-0 run keys exactly as a profile without seeds (results written before seeds existed stay valid)
    assert one.key_settings() == det.load_profile("quick").key_settings() and "seeds" not in one.key_settings()
    assert det.result_name("MMDRFuse", 0) == "MMDRFuse.json"
    assert det.result_name("MMDRFuse (x)", 2) == "MMDRFuse__x_.seed2.json"


def test_job_keys_unchanged(tmp_path, monkeypatch):
    """The job keys name cached detectors and result JSONs: a refactor must not change them, or every cached result
    (results/detection/...) is silently retrained. The literals were computed once by the code at commit 83e11ff
    (branch main, before benchmarks/detection.py became a package) on exactly these inputs; only the images' sizes
    and suffixes, the label texts, the fused-cache manifest's sha256 and the settings enter the key."""
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(6):
        (tmp_path / "img" / f"{i:04d}.png").write_bytes(b"x" * (100 + 7 * i))
        (tmp_path / "lab" / f"{i:04d}.txt").write_text(f"0 0.5 0.5 0.2 0.{i + 1}\n1 0.1 0.1 0.1 0.1\n")
    (tmp_path / "img" / "manifest.json").write_text(json.dumps({"sha256": "ab12cd34"}))
    split = det.Split(("0000", "0001", "0002", "0003"), ("0004", "0005"), "fixed split")
    prof = det.DetectionProfile(name="quick", imgsz=64, epochs=1, batch=4, n_train=8, n_test=4,
                                fusion_methods="mmdrfuse", seeds=(0, 3))
    assert prof.for_seed(0) == det.load_profile("quick")  # the quick profile of the profiles YAML as it was
    monkeypatch.setattr(det.yolo, "train_and_evaluate", lambda *a, **k: {
        "mAP50-95": 0.25, "mAP50": 0.5, "precision": 0.6, "recall": 0.4, "train_seconds": 1.0, "resumed": False})
    det.detection_benchmark({"A": tmp_path / "img"}, tmp_path / "lab", split, prof, tmp_path / "out",
                            work_dir=tmp_path / "w", progress=False, log=lambda *_: None)
    res = tmp_path / "out/detection/MSRS/quick"
    keys = {f.name: json.loads(f.read_text())["key"] for f in res.glob("*.json")}
    assert keys == {"A.json": "36a3fce1df3493d2", "A.seed3.json": "ecc280fcc1f076be"}


def test_benchmark_several_seeds_mean_std_and_reuse(tmp_path, monkeypatch):
    images, labels = _fake_set(tmp_path)
    split = det.Split(("0000", "0001", "0002", "0003"), ("0004", "0005"), "test split")
    calls = []

    def fake_train(data_yaml, run_dir, profile, **kw):
        calls.append((Path(run_dir).relative_to(tmp_path / "w").as_posix(), profile.seed))
        return {"mAP50-95": 0.2 + 0.1 * profile.seed, "mAP50": 0.5, "precision": 0.6, "recall": 0.4,
                "train_seconds": 1.0, "resumed": False}

    monkeypatch.setattr(det.yolo, "train_and_evaluate", fake_train)
    quiet = dict(work_dir=tmp_path / "w", progress=False, log=lambda *_: None)
    one_seed = det.detection_benchmark({"A": tmp_path / "img"}, labels, split, "quick", tmp_path / "out", **quiet)
    assert calls == [("MSRS/quick/A/run", 0)]
    assert set(one_seed["metric"]) == {"mAP50-95", "mAP50"}  # one seed: no std rows
    per_seed = []
    df = det.detection_benchmark({"A": tmp_path / "img"}, labels, split, det.load_profile("quick", seeds=[0, 1, 2]),
                                 tmp_path / "out", per_seed_out=per_seed, **quiet)
    # seed 0 was reused from the single-seed run; seeds 1 and 2 trained in their own folders
    assert calls == [("MSRS/quick/A/run", 0), ("MSRS/quick/A/seed1/run", 1), ("MSRS/quick/A/seed2/run", 2)]
    value = dict(zip(df["metric"], df["value"]))
    assert value["mAP50-95"] == pytest.approx(0.3)                 # mean of 0.2, 0.3, 0.4
    assert value["mAP50-95_std"] == pytest.approx(0.1)             # sample std (ddof=1) of 0.2, 0.3, 0.4
    assert value["mAP50"] == pytest.approx(0.5) and value["mAP50_std"] == pytest.approx(0.0)
    assert [(r["seed"], round(r["mAP50-95"], 6)) for r in per_seed] == [(0, 0.2), (1, 0.3), (2, 0.4)]
    res = tmp_path / "out/detection/MSRS/quick"
    assert sorted(p.name for p in res.iterdir()) == ["A.json", "A.seed1.json", "A.seed2.json"]
    assert json.loads((res / "A.seed2.json").read_text())["seed"] == 2


def test_benchmark_defers_a_job_another_process_holds(tmp_path, monkeypatch):
    """Two processes sharing one results folder: a (method, seed) whose lock another live process holds is left for
    last, then waited for; here the other process finishes (its lock goes) while this one trains B."""
    import socket
    import subprocess
    import sys
    images, labels = _fake_set(tmp_path)
    split = det.Split(("0000", "0001", "0002", "0003"), ("0004", "0005"), "test split")
    res = tmp_path / "out/detection/MSRS/quick"
    res.mkdir(parents=True)
    lock = res / "A.json.lock"
    calls = []
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        lock.write_text(f"{socket.gethostname()} {other.pid}\n")

        def fake_train(data_yaml, run_dir, profile, **kw):
            name = Path(run_dir).parent.name
            calls.append(name)
            if name == "B":  # meanwhile the other process gives A up (its lock file goes)
                lock.unlink()
            return {"mAP50-95": 0.25, "mAP50": 0.5, "precision": 0.6, "recall": 0.4, "train_seconds": 1.0,
                    "resumed": False}

        monkeypatch.setattr(det.yolo, "train_and_evaluate", fake_train)
        logs = []
        try:
            df = det.detection_benchmark({"A": tmp_path / "img", "B": tmp_path / "img"}, labels, split, "quick",
                                         tmp_path / "out", work_dir=tmp_path / "w", progress=False, log=logs.append)
        finally:
            other.kill()
    assert calls == ["B", "A"]                                   # A deferred, then trained here once free
    assert list(df["method"].unique()) == ["A", "B"]              # rows keep the methods' order
    assert any(f"process {other.pid}" in m for m in logs)
    assert sorted(p.name for p in res.iterdir()) == ["A.json", "B.json"]  # no lock files left


def test_finish_writes_per_seed_csv_and_spread_cells(tmp_path, monkeypatch):
    rows = []
    for m, v, sd in [("A", 0.3, 0.1), ("IR-only", 0.4, 0.02)]:
        base = {"table": "detection", "dataset": "MSRS", "method": m, "weights": "none", "source": "ours",
                "n_pairs": 2, "profile": "quick"}
        rows += [{**base, "metric": "mAP50-95", "value": v}, {**base, "metric": "mAP50-95_std", "value": sd},
                 {**base, "metric": "mAP50", "value": v + 0.2}, {**base, "metric": "mAP50_std", "value": sd}]
    df = pd.DataFrame(rows, columns=det.TIDY_COLUMNS)
    prof = det.load_profile("quick", seeds=[0, 1])
    split = det.Split(("0000",), ("0001", "0002"), "x")
    per_seed = [{"method": "A", "weights": "none", "seed": s, "mAP50-95": 0.3, "mAP50": 0.5} for s in (0, 1)]
    written = det.finish(df, tmp_path, prof, None, split, per_seed=per_seed)
    assert tmp_path / "detection.seeds.csv" in written
    assert list(pd.read_csv(tmp_path / "detection.seeds.csv")["seed"]) == [0, 1]
    md = (tmp_path / "detection.md").read_text()
    assert "0.30 ± 0.10" in md and "seeds [0, 1]" in md
    # a later single-seed run removes the stale per-seed file
    det.finish(df[~df["metric"].str.endswith("_std")], tmp_path, det.load_profile("quick"), None, split)
    assert not (tmp_path / "detection.seeds.csv").exists()


def test_finish_writes_the_profiles_table(tmp_path, monkeypatch):
    """A profile with its own ``table`` (cpu-pretrained) writes <table>.* and leaves detection.* alone."""
    monkeypatch.setattr(det.yolo, "describe_init", lambda *a, **k: None)
    (tmp_path / "detection.csv").write_text("from scratch, kept\n")
    prof = dataclasses.replace(det.load_profile("quick"), table="detection_pretrained")
    base = {"table": "detection_pretrained", "dataset": "MSRS", "method": "A", "weights": "none", "source": "ours",
            "n_pairs": 2, "profile": "quick"}
    df = pd.DataFrame([{**base, "metric": "mAP50-95", "value": 0.3}, {**base, "metric": "mAP50", "value": 0.5}],
                      columns=det.TIDY_COLUMNS)
    written = det.finish(df, tmp_path, prof, None, det.Split(("0000",), ("0001", "0002"), "x"))
    assert {p.name for p in written} == {f"detection_pretrained.{e}" for e in ("csv", "tex", "md", "provenance.json")}
    assert (tmp_path / "detection.csv").read_text() == "from scratch, kept\n"
    assert json.loads((tmp_path / "detection_pretrained.provenance.json").read_text())["target"] == \
        "detection_pretrained"


def test_pretrained_option_reaches_the_detection_target(tmp_path, monkeypatch, capsys):
    """``benchmarks.run detection --profile cpu --pretrained`` and ``python -m benchmarks.detection --pretrained``
    load the cpu profile with the pretrained settings; without the flag, the profile alone."""
    from benchmarks import run as harness
    from benchmarks.detection import cli
    from benchmarks.run import Context
    assert harness.parse_args(["detection", "--profile", "cpu", "--pretrained"]).pretrained is True
    assert harness.parse_args(["detection"]).pretrained is False
    seen = []

    def fake_load(name, **kw):
        seen.append((name, kw.get("pretrained")))
        raise MMDRFuseError("stop here")

    monkeypatch.setattr(det, "load_profile", fake_load)
    for flag in (False, True):
        ctx = Context(profile="cpu", settings={}, data_root=tmp_path, weights_root=tmp_path, out_dir=tmp_path,
                      pretrained=flag)
        with pytest.raises(MMDRFuseError, match="stop here"):
            det.run(ctx)
    monkeypatch.setattr(cli, "load_profile", fake_load)
    assert cli.main(["--profile", "cpu", "--pretrained"]) == 2 and "stop here" in capsys.readouterr().err
    assert seen == [("cpu", False), ("cpu", True), ("cpu", True)]


def test_benchmark_missing_fused_image_is_clear(tmp_path):
    images, labels = _fake_set(tmp_path, n=3)
    split = det.Split(("0000",), ("0007",), "x")
    with pytest.raises(BadInputError, match="0007"):
        det.detection_benchmark({"A": tmp_path / "img"}, labels, split, "quick", tmp_path / "out",
                                work_dir=tmp_path / "w", progress=False, log=lambda *_: None)


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.e2e
def test_quick_profile_end_to_end_offline(shared_data, tmp_path, monkeypatch):
    """Real Ultralytics, 1 epoch on 4 MSRS images at imgsz 64, with every network connection refused."""
    pytest.importorskip("ultralytics")
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ycfg"))
    data = det.resolve_dataset("MSRS", shared_data, tmp_path / "labels")
    prof = det.load_profile("quick")
    prof.n_train, prof.n_test, prof.batch = 4, 2, 4
    split = data.split.limited(prof.n_train, prof.n_test)
    logs = []
    kw = dict(dataset="MSRS", work_dir=tmp_path / "work", progress=False, log=logs.append)
    df = det.detection_benchmark({"visible-only": data.vis}, data.labels_dir, split, prof, tmp_path / "out", **kw)
    assert attempts == []
    assert df["value"].between(0, 1).all() and len(df) == 2
    assert (tmp_path / "work/MSRS/quick/visible-only/run/weights/last.pt").is_file()
    paths = det.finish(df, tmp_path / "out", prof, data, split)
    names = {p.name for p in paths}
    assert {"detection.csv", "detection.tex", "detection.md", "detection.provenance.json"} <= names
    assert not (tmp_path / "out/figures").exists()  # Fig. 8 is the figures target's (benchmarks.figures)
    assert all(p.stat().st_size > 0 for p in paths)
    csv = pd.read_csv(tmp_path / "out/detection.csv")
    assert list(csv.columns) == det.TIDY_COLUMNS and set(csv["source"]) == {"ours"}  # no invented paper rows
    prov = json.loads((tmp_path / "out/detection.provenance.json").read_text())
    assert prov["data"]["test_pairs"] == 2 and any("from scratch" in f for f in prov["flags"])
    # rerun: skipped, nothing trained
    det.detection_benchmark({"visible-only": data.vis}, data.labels_dir, split, prof, tmp_path / "out", **kw)
    assert any("skipped" in m for m in logs)
    # result lost after training finished (e.g. killed during evaluation): the finished run is evaluated, not retrained
    results_csv = tmp_path / "work/MSRS/quick/visible-only/run/results.csv"
    mtime = results_csv.stat().st_mtime_ns
    (tmp_path / "out/detection/MSRS/quick/visible-only.json").unlink()
    df3 = det.detection_benchmark({"visible-only": data.vis}, data.labels_dir, split, prof, tmp_path / "out", **kw)
    assert results_csv.stat().st_mtime_ns == mtime
    pd.testing.assert_frame_equal(df, df3)


# ------------------------------------------------------------------------------------------- harness wiring
def test_llvip_protocol_layout_converts_voc(tmp_path):
    root = tmp_path / "data"
    for mod in ("infrared", "visible"):
        for part, stems in (("train", ("010001", "010002")), ("test", ("190001",))):
            for s in stems:
                p = root / "LLVIP" / mod / part / f"{s}.jpg"
                p.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.zeros((8, 10), np.uint8)).save(p)
    ann = root / "LLVIP/Annotations"
    ann.mkdir(parents=True)
    for s in ("010001", "010002", "190001"):
        _xml(ann / f"{s}.xml", 10, 8, [("person", 1, 1, 5, 7)])
    data = det.resolve_dataset("LLVIP", root, tmp_path / "labels")
    assert (data.split.train, data.split.test) == (("010001", "010002"), ("190001",))
    assert data.fused == {"train": "LLVIP-train", "test": "LLVIP"}  # the harness's data set names
    assert (data.labels_dir / "190001.txt").read_text().startswith("0 0.300000 0.500000 0.400000 0.750000")


class _FakeRun:
    def __init__(self, method, weights, kind):
        self.method, self.weights, self.kind = method, weights, kind
        self.label = method if weights in ("official", "none") else f"{method} ({weights})"


class _FakeCache:
    def __init__(self, root):
        self.root, self.fused = root, []

    def select(self, loc, max_pairs=None):
        from mmdrfuse.images import match_stems
        return match_stems(loc.ir_dir, loc.vis_dir)

    def ensure(self, run, loc, pairs):
        folder = self.root / run.method
        folder.mkdir(parents=True, exist_ok=True)
        for p in pairs:
            self.fused.append((run.method, p.stem))
            Image.open(p.ir).save(folder / f"{p.stem}.png")
        return type("Entry", (), {"folder": folder})()


def test_harness_fuses_only_the_split_and_respects_fusion_methods(shared_data, tmp_path):
    from benchmarks.run import Context
    runs = [_FakeRun("MMDRFuse", "official", "mmdrfuse"), _FakeRun("LRRNet", "lrrnet.model", "learned")]
    ctx = Context(profile="quick", settings={}, data_root=shared_data, weights_root=tmp_path, out_dir=tmp_path / "out",
                  cache=_FakeCache(tmp_path / "fused"))
    ctx._runs = (runs, {"TextFusion": "no text embedding"})
    prof = det.load_profile("quick")
    entries, unavailable = det.method_entries(ctx, prof.name, prof.fusion_methods)
    assert [e.key for e in entries] == ["MMDRFuse"]
    assert "not run in the quick profile" in unavailable["LRRNet (lrrnet.model)"]
    assert unavailable["TextFusion"] == "no text embedding"
    data = det.resolve_dataset("MSRS", shared_data, tmp_path / "labels")
    split = data.split.limited(3, 2)
    folders = det.fused_folders(ctx, entries[0], data, split)
    assert sorted(s for _, s in ctx.cache.fused) == sorted(split.train + split.test)  # 5 pairs, not 361
    assert folders == [tmp_path / "fused/MMDRFuse"]
    ctx.methods = ["MMDRFuse", "LRRNet"]  # --methods names the baselines: they run in any profile
    assert len(det.method_entries(ctx, prof.name, prof.fusion_methods)[0]) == 2


def test_missing_yolo_weights_is_clear(tmp_path):
    images, labels = _fake_set(tmp_path, n=2)
    with pytest.raises(BadInputError, match="YOLO weights not found"):
        det.detection_benchmark({"A": tmp_path / "img"}, labels, det.Split(("0000",), ("0001",), "x"), "quick",
                                tmp_path / "out", yolo_weights=tmp_path / "nope.pt", progress=False)


@pytest.mark.slow
def test_quick_profile_from_given_yolo_weights(shared_data, tmp_path):
    """--yolo-weights: a detector trained by a first run initialises the second; its sha256 is recorded."""
    pytest.importorskip("ultralytics")
    data = det.resolve_dataset("MSRS", shared_data, tmp_path / "labels")
    prof = det.load_profile("quick")
    prof.n_train, prof.n_test = 4, 2
    split = data.split.limited(4, 2)
    kw = dict(work_dir=tmp_path / "work", progress=False, log=lambda *_: None)
    det.detection_benchmark({"IR-only": data.ir}, data.labels_dir, split, prof, tmp_path / "out", **kw)
    first = tmp_path / "work/MSRS/quick/IR-only/run/weights/last.pt"
    init = tmp_path / "init.pt"
    init.write_bytes(first.read_bytes())
    df = det.detection_benchmark({"visible-only": data.vis}, data.labels_dir, split, prof, tmp_path / "out2",
                                 yolo_weights=init, **kw)
    assert df["value"].between(0, 1).all()
    res = json.loads((tmp_path / "out2/detection/MSRS/quick/visible-only.json").read_text())
    from mmdrfuse.download import sha256_file
    assert res["config"]["yolo_weights_sha256"] == sha256_file(init)
    # an Ultralytics checkpoint of the same model: every tensor fits, nothing skipped, nothing fresh
    assert res["yolo_init"]["kind"] == "ultralytics" and res["yolo_init"]["skipped"] == 0
    assert res["yolo_init"]["fresh"] == 0 and res["yolo_init"]["transferred"] > 300
