"""Core package: model sizes and MACs, official checkpoints against the authors' reference outputs, checkpoints."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from mmdrfuse import checkpoints as ck
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.models import Student, StudentConfig, Teacher


# ---------------------------------------------------------------------------------------- sizes (SPEC, Table 2/3)
@pytest.mark.parametrize("hidden,params", [(2, 57), (4, 113), (6, 169)])
def test_student_params_match_table2(hidden, params):
    s = Student(StudentConfig(hidden=hidden))
    assert s.num_params() == params
    assert s.size_kb() == pytest.approx(params * 4 / 1024)


def test_sizes_match_paper():
    assert round(Student().size_kb(), 2) == 0.44  # Table 3
    assert Teacher().num_params() == 556_489  # SPEC.md


def _thop_macs(model: nn.Module, x: torch.Tensor) -> float:
    thop = pytest.importorskip("thop")
    macs, _ = thop.profile(model, inputs=(x,), verbose=False)
    return macs


def test_student_macs_analytic_equals_thop_and_table3():
    s = Student()
    assert s.macs(1024, 1280) == 108 * 1024 * 1280
    assert round(s.macs(1024, 1280) / 1e9, 3) == 0.142  # Table 3: 0.142 G
    assert _thop_macs(Student(), torch.zeros(1, 2, 64, 80)) == s.macs(64, 80)


@pytest.mark.parametrize("hidden", [2, 6])
def test_student_variant_macs_equal_thop(hidden):
    s = Student(StudentConfig(hidden=hidden))
    assert _thop_macs(s, torch.zeros(1, 2, 32, 48)) == s.macs(32, 48)


def test_teacher_macs_analytic_equals_thop():
    t = Teacher()
    assert _thop_macs(Teacher(), torch.zeros(1, 2, 32, 48)) == t.macs(32, 48)


def test_teacher_accepts_odd_sizes():
    t = Teacher().eval()
    x = torch.rand(1, 2, 33, 47, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        feat, out = t.features(x)
    assert out.shape == (1, 1, 33, 47) and feat.shape == (1, 4, 33, 47)


# --------------------------------------------------------------------------------- official reference outputs
def _reference_inputs():
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(1, 2, 64, 96, generator=g)
    ramp = torch.stack([torch.linspace(0, 1, 96).expand(64, 96),
                        (torch.linspace(0, 1, 64) ** 2)[:, None].expand(64, 96)])[None]
    return {"rand_seed0_1x2x64x96": rand, "ramp_1x2x64x96": ramp}


@pytest.mark.parametrize("case", ["rand_seed0_1x2x64x96", "ramp_1x2x64x96"])
def test_official_checkpoints_reproduce_reference(case, shared_reference, shared_weights):
    ref = json.loads((shared_reference / "official_outputs.json").read_text())["values"][case]
    x = _reference_inputs()[case]
    student = ck.load_model("official-student", weights_root=shared_weights)
    teacher = ck.load_model("official-teacher", weights_root=shared_weights)
    with torch.no_grad():
        sf, so = student.features(x)
        tf, to = teacher.features(x)
        assert torch.equal(student(x), so) and torch.equal(teacher(x), to)
    got = {
        "student_output_mean": so.mean(), "student_output_std": so.std(),
        "student_output_pixel_0_0": so[0, 0, 0, 0], "student_output_pixel_31_47": so[0, 0, 31, 47],
        "student_relu_conv1_mean": sf.mean(), "teacher_output_mean": to.mean(), "teacher_output_std": to.std(),
        "teacher_relu_conv11_mean": tf.mean(),
    }
    for k, v in got.items():
        assert float(v) == pytest.approx(ref[k], abs=1e-5), k


def test_fused_images_match_authors_outputs(shared_reference, shared_data, shared_weights):
    """The authors' test script's min-max saved outputs (reference/metrics/fused/*_mmdrfuse.png), <= 1 grey level."""
    from mmdrfuse.fusion import fuse_pair

    rows = list(csv.DictReader(open(shared_reference / "metrics" / "reference_values.csv")))
    rows = [r for r in rows if r["fused"].endswith("_mmdrfuse.png")]
    assert len(rows) == 6
    method = None
    for r in rows:
        ref = np.asarray(Image.open(shared_reference / "metrics" / "fused" / r["fused"]).convert("L"), dtype=int)
        a, b = shared_data.parent / r["source_a"], shared_data.parent / r["source_b"]
        if method is None:
            from mmdrfuse.fusion import get_method
            method = get_method("mmdrfuse", weights_root=shared_weights)
        got = fuse_pair(a, b, method=method).astype(int)
        diff = np.abs(got - ref)
        assert diff.max() <= 1, r["fused"]
        assert (diff > 0).mean() < 1e-3, r["fused"]


# ------------------------------------------------------------------------------------------------ checkpoints
def test_project_checkpoint_round_trip(tmp_path):
    s = Student(StudentConfig(hidden=6))
    torch.nn.init.normal_(s.conv1[1].weight, generator=torch.Generator().manual_seed(3))
    p = ck.save_checkpoint(tmp_path / "s.pt", s, {"profile": "test"})
    m, info = ck.load_state(p)
    assert isinstance(m, Student) and m.config.hidden == 6
    assert info["provenance"] == {"profile": "test"}
    for k, v in s.state_dict().items():
        assert torch.equal(m.state_dict()[k], v)
    assert info["weights_sha256"] == ck.sha256_state_dict(s.state_dict())


def test_tampered_checkpoint_is_refused(tmp_path):
    p = ck.save_checkpoint(tmp_path / "s.pt", Student(), {})
    obj = torch.load(p, weights_only=True)
    obj["state_dict"]["conv2.1.bias"] += 1
    torch.save(obj, tmp_path / "bad.pt")
    with pytest.raises(MMDRFuseError, match="sha256"):
        ck.load_state(tmp_path / "bad.pt")


def test_wrong_shapes_give_one_clear_line(tmp_path):
    sd = Student().state_dict()
    sd["conv2.1.weight"] = torch.zeros(1, 5, 3, 3)
    torch.save(sd, tmp_path / "wrong.model")
    with pytest.raises(MMDRFuseError) as e:
        ck.load_state(tmp_path / "wrong.model")
    assert "wrong.model" in str(e.value) and "\n" not in str(e.value)


def test_corrupt_and_foreign_files(tmp_path):
    (tmp_path / "junk.model").write_bytes(b"not a checkpoint")
    with pytest.raises(MMDRFuseError, match="junk.model"):
        ck.load_state(tmp_path / "junk.model")
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.model")
    with pytest.raises(MMDRFuseError, match="neither"):
        ck.load_state(tmp_path / "other.model")


def test_unknown_weights_name_suggests(tmp_path):
    with pytest.raises(MMDRFuseError, match="did you mean 'official-student'"):
        ck.resolve("official-studnet", tmp_path)


def test_missing_named_weights_say_where(tmp_path):
    with pytest.raises(MMDRFuseError, match="MMDRFUSE_WEIGHTS") as e:
        ck.resolve("official-student", tmp_path)
    assert "raw.githubusercontent.com" in str(e.value)


def test_named_weights_sha256_pinned(shared_weights):
    for name in ("official-student", "official-teacher"):
        e = ck.WEIGHTS[name]
        assert ck.sha256_file(e.local_path(shared_weights)) == e.sha256
