"""Initial detector weights (--yolo-weights): named files, a plain YOLOv5 v6 state dict transferred into Ultralytics'
v5u model by name and shape (backbone + neck; the head starts fresh), one-line errors for wrong files, and the
transfer counts in the provenance."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from benchmarks import detection as det
from benchmarks.detection import yolo
from mmdrfuse.download import sha256_file
from mmdrfuse.errors import MMDRFuseError

if importlib.util.find_spec("ultralytics") is None:  # not imported here: benchmarks.detection imports it offline
    pytest.skip("Ultralytics is not installed", allow_module_level=True)
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # small models: one thread is faster beside other jobs

COCO_SHA = "b9610358a5bf931c1934a68916e2a11bcf82f2681a8006a1a0461b0969adabec"  # $MMDRFUSE_WEIGHTS/README.md
# The file holds 349 tensors: model.0 ... model.23 (backbone + neck, 342 tensors, BatchNorm statistics and
# num_batches_tracked included) and the anchor-based v5 head model.24 (anchors + three 1x1 convs, 7 tensors).
N_FILE, N_MOVED = 349, 342


@pytest.fixture(scope="module")
def coco_file(shared_weights) -> Path:
    p = det.resolve_yolo_weights("yolov5n-coco", shared_weights)
    if p is None or not p.is_file():
        pytest.skip("detection/yolov5n_v6.1_coco_state_dict.pt not under the weights root")
    return p


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


# ----------------------------------------------------------------------------------------------- the transfer
def test_real_state_dict_moves_backbone_and_neck(coco_file):
    sd = torch.load(coco_file, map_location="cpu", weights_only=True)["state_dict"]
    assert len(sd) == N_FILE
    model = yolo.build_model("yolov5n.yaml")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    moved = yolo.transfer_state_dict(model, det.read_state_dict(coco_file))
    assert len(moved) == N_MOVED
    assert max(int(k.split(".")[1]) for k in moved) == 23  # model.0 ... model.23 (layers with tensors), no head
    assert sorted(set(sd) - set(moved)) == ["model.24.anchors"] + [f"model.24.m.{i}.{p}" for i in range(3)
                                                                   for p in ("bias", "weight")]
    after = model.state_dict()
    for k in moved:
        assert torch.equal(after[k], sd[k]), k  # the transferred tensors are the file's
    head = [k for k in after if k.startswith("model.24.")]
    assert len(head) == len(after) - N_MOVED == 85
    assert all(torch.equal(after[k], before[k]) for k in head)  # the v5u head is untouched (fresh)


def test_initial_weights_counts_and_init_file(coco_file, tmp_path):
    init, info = yolo.initial_weights(coco_file, "yolov5n.yaml", write_to=tmp_path / "init.pt")
    assert (info.kind, info.transferred, info.skipped, info.fresh) == ("state_dict", N_MOVED, N_FILE - N_MOVED, 85)
    assert info.sha256 == COCO_SHA and info.file == coco_file.name
    # the file handed to Ultralytics (pretrained=) holds exactly the moved tensors, loadable by Ultralytics itself
    from ultralytics.nn.tasks import load_checkpoint
    src, _ = load_checkpoint(str(init))
    assert len(src.state_dict()) == N_MOVED
    fresh = yolo.build_model("yolov5n.yaml")
    fresh.load(src, verbose=False)
    sd = det.read_state_dict(coco_file)
    assert all(torch.equal(fresh.state_dict()[k], sd[k]) for k in src.state_dict())
    assert yolo.describe_init(coco_file, "yolov5n.yaml") == info


# ------------------------------------------------------------------------------------------------ wrong files
def test_wrong_files_fail_in_one_line(coco_file, tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint\n")
    with pytest.raises(MMDRFuseError) as e:
        yolo.initial_weights(text, "yolov5n.yaml")
    assert "neither a state dict" in _one_line(e) or "not a readable torch file" in _one_line(e)
    a_list = tmp_path / "list.pt"
    torch.save([torch.zeros(3)], a_list)
    with pytest.raises(MMDRFuseError) as e:
        yolo.initial_weights(a_list, "yolov5n.yaml")
    assert "neither a state dict" in _one_line(e)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv1.weight": torch.zeros(4, 2, 3, 3), "model.0.conv.weight": torch.zeros(8, 3, 3, 3)}, foreign)
    with pytest.raises(MMDRFuseError) as e:
        yolo.initial_weights(foreign, "yolov5n.yaml")
    assert "none of its 2 tensors fits yolov5n.yaml" in _one_line(e)
    # the right file for another model size: every shape differs (the BatchNorms' scalar counters do not count)
    with pytest.raises(MMDRFuseError) as e:
        yolo.initial_weights(coco_file, "yolov5s.yaml")
    assert f"none of its {N_FILE} tensors fits yolov5s.yaml" in _one_line(e)


def test_named_weights_resolution(coco_file, shared_weights, tmp_path):
    assert det.resolve_yolo_weights(None) is None
    assert det.resolve_yolo_weights("yolov5n-coco", shared_weights) == coco_file
    # a relative path is tried under the weights root too
    assert det.resolve_yolo_weights(det.YOLO_WEIGHTS["yolov5n-coco"].relpath, shared_weights) == coco_file.resolve()
    with pytest.raises(MMDRFuseError, match="did you mean 'yolov5n-coco'") as e:
        det.resolve_yolo_weights("yolov5n-coc", shared_weights)
    _one_line(e)
    with pytest.raises(MMDRFuseError, match="not found at") as e:
        det.resolve_yolo_weights("yolov5n-coco", tmp_path / "empty")
    _one_line(e)
    bad = tmp_path / "w" / det.YOLO_WEIGHTS["yolov5n-coco"].relpath
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"x")
    with pytest.raises(MMDRFuseError, match="sha256 differs") as e:
        det.resolve_yolo_weights("yolov5n-coco", tmp_path / "w")
    _one_line(e)


# ------------------------------------------------------------------------------------- profile key, provenance
def _fake_set(root: Path, n: int = 4) -> tuple[Path, Path]:
    (root / "img").mkdir(parents=True)
    (root / "lab").mkdir()
    for i in range(n):
        Image.fromarray(np.full((32, 40), 30 * i, np.uint8)).save(root / "img" / f"{i:04d}.png")
        (root / "lab" / f"{i:04d}.txt").write_text("0 0.5 0.5 0.2 0.3\n")
    return root / "img", root / "lab"


def test_profile_key_and_provenance_record_the_transfer(coco_file, shared_weights, tmp_path, monkeypatch):
    cfg = yaml.safe_load(det.CONFIG_PATH.read_text())
    cfg["profiles"]["quick-coco"] = {**cfg["profiles"]["quick"], "yolo_weights": "yolov5n-coco"}
    custom = tmp_path / "profiles.yaml"
    custom.write_text(yaml.safe_dump(cfg))
    prof = det.load_profile("quick-coco", custom)
    assert prof.yolo_weights == "yolov5n-coco"
    quick = det.load_profile("quick")
    # the key covers the file's sha256 (job config), never the name that pointed at it
    assert {**prof.key_settings(), "name": "quick"} == quick.key_settings()
    img, lab = _fake_set(tmp_path)
    split = det.Split(("0000", "0001"), ("0002", "0003"), "x")
    seen = []

    def fake_train(data_yaml, run_dir, profile, **kw):
        seen.append(kw["yolo_weights"])
        return {"mAP50-95": 0.1, "mAP50": 0.2, "precision": 0.3, "recall": 0.4, "train_seconds": 1.0,
                "resumed": False}

    monkeypatch.setattr(det.yolo, "train_and_evaluate", fake_train)
    init = det.resolve_yolo_weights(prof.yolo_weights, shared_weights)
    df = det.detection_benchmark({"A": img}, lab, split, prof, tmp_path / "out", work_dir=tmp_path / "w",
                                 yolo_weights=prof.yolo_weights, weights_root=shared_weights, progress=False,
                                 log=lambda *_: None)
    assert seen == [init]
    res = json.loads((tmp_path / "out/detection/MSRS/quick-coco/A.json").read_text())
    assert res["config"]["yolo_weights_sha256"] == COCO_SHA == sha256_file(init)
    assert (res["yolo_init"]["transferred"], res["yolo_init"]["skipped"]) == (N_MOVED, N_FILE - N_MOVED)
    det.finish(df, tmp_path / "out", prof, None, split, init)
    prov = json.loads((tmp_path / "out/detection.provenance.json").read_text())
    assert prov["weights_sha256"]["yolo_init"] == COCO_SHA
    assert prov["yolo_init"]["transferred"] == N_MOVED and prov["yolo_init"]["kind"] == "state_dict"
    assert not any("from scratch (the paper" in f for f in prov["flags"])
    assert any("partly pretrained" in f for f in prov["flags"])
    assert "342 tensors transferred" in (tmp_path / "out/detection.md").read_text()


# ------------------------------------------------------------------------------------------------ real training
@pytest.mark.e2e
def test_training_starts_from_the_file_and_a_fresh_head(coco_file, shared_data, tmp_path, monkeypatch):
    """Real Ultralytics, 1 epoch on 2 MSRS images at 64 px, twice: from scratch and from the state dict. Before the
    first step the detector holds the file's 342 tensors, and its head equals the from-scratch run's (same seed)."""
    from ultralytics.utils.callbacks import base

    states: list[dict] = []
    monkeypatch.setitem(base.default_callbacks, "on_pretrain_routine_end",
                        [*base.default_callbacks["on_pretrain_routine_end"],
                         lambda tr: states.append({k: v.detach().clone() for k, v in tr.model.state_dict().items()})])
    data = det.resolve_dataset("MSRS", shared_data, tmp_path / "labels")
    prof = det.load_profile("quick")
    prof.n_train, prof.n_test, prof.batch = 2, 1, 2
    split = data.split.limited(2, 1)
    kw = dict(work_dir=tmp_path / "work", progress=False, log=lambda *_: None)
    det.detection_benchmark({"IR-only": data.ir}, data.labels_dir, split, prof, tmp_path / "scratch", **kw)
    det.detection_benchmark({"IR-only": data.ir}, data.labels_dir, split, prof, tmp_path / "coco",
                            yolo_weights=coco_file, **kw)
    scratch, coco = states
    sd = det.read_state_dict(coco_file)
    same = [k for k in coco if k in sd and torch.equal(coco[k], sd[k])]
    assert len(same) == N_MOVED
    head = [k for k in coco if k.startswith("model.24.")]
    assert head and all(torch.equal(coco[k], scratch[k]) for k in head)
    assert (tmp_path / "work/MSRS/quick/IR-only/run" / yolo.INIT_FILE).is_file()
