"""ONNX export of the student (mmdrfuse.export, ``mmdrfuse export``): onnxruntime output equals PyTorch's to 1e-5."""
from __future__ import annotations

import json

import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from mmdrfuse import cli  # noqa: E402
from mmdrfuse.export import INPUT_NAME, OUTPUT_NAME, build_onnx, export_onnx, onnx_session  # noqa: E402
from mmdrfuse.models import Student, StudentConfig, Teacher  # noqa: E402


def _student(hidden: int = 4, seed: int = 0) -> Student:
    torch.manual_seed(seed)
    m = Student(StudentConfig(hidden=hidden)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(3.0)  # negative pre-activations and saturated tanh too
    return m


def _ort(path, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(onnx_session(path).run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])


@pytest.mark.parametrize("hidden", [2, 4, 6])
def test_onnxruntime_matches_pytorch_dynamic_shapes(tmp_path, hidden):
    m = _student(hidden, seed=hidden)
    path = export_onnx(m, tmp_path / "s.onnx")
    sess = onnx_session(path)
    g = torch.Generator().manual_seed(0)
    for shape in [(1, 2, 64, 96), (3, 2, 17, 5), (1, 2, 2, 2), (2, 2, 131, 70)]:  # one file, any N, H, W
        x = torch.rand(*shape, generator=g)
        got = torch.from_numpy(sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        with torch.no_grad():
            ref = m(x)
        assert got.shape == ref.shape
        assert (got - ref).abs().max().item() <= 1e-5


def test_graph_is_valid_with_symbolic_dims_and_metadata(tmp_path):
    m = _student(4)
    model = onnx.load(str(export_onnx(m, tmp_path / "s.onnx", opset=17)))
    onnx.checker.check_model(model)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (model.graph.input[0], model.graph.output[0])]
    assert dims == [["batch", 2, "height", "width"], ["batch", 1, "height", "width"]]
    assert [n.op_type for n in model.graph.node] == ["Pad", "Conv", "Relu", "Pad", "Conv", "Tanh"]
    assert all(a.s == b"reflect" for n in model.graph.node if n.op_type == "Pad" for a in n.attribute
               if a.name == "mode")
    assert model.opset_import[0].version == 17
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["mmdrfuse.config"]) == {"kind": "student", "hidden": 4, "in_channels": 2}
    n_params = sum(int(torch.tensor(t.dims).prod()) for t in model.graph.initializer if t.name != "pads")
    assert n_params == 113  # SPEC: the paper's student


@pytest.mark.parametrize("opset", [11, 13, 17])
def test_opsets(tmp_path, opset):
    m = _student(4, seed=1)
    x = torch.rand(1, 2, 33, 47)
    with torch.no_grad():
        ref = m(x)
    assert (_ort(export_onnx(m, tmp_path / f"s{opset}.onnx", opset=opset), x) - ref).abs().max().item() <= 1e-5


def test_rejects_teacher_and_old_opset():
    with pytest.raises(TypeError):
        build_onnx(Teacher())
    with pytest.raises(ValueError, match="opset"):
        build_onnx(_student(), opset=10)


def test_official_student_on_real_pair(tmp_path, shared_data, shared_weights):
    from mmdrfuse import images

    m = Student().eval()
    m.load_state_dict(torch.load(shared_weights / "official" / "student.model", map_location="cpu"))
    ir_dir = shared_data / "LLVIP" / "test_samples" / "ir"
    ir_path = sorted(ir_dir.iterdir())[0]
    ir, vis = images.read_pair(ir_path, ir_dir.parent / "vi" / ir_path.name)
    x = torch.cat([ir, vis], 1)
    with torch.no_grad():
        ref = m(x)
    assert (_ort(export_onnx(m, tmp_path / "s.onnx"), x) - ref).abs().max().item() <= 1e-5


# ------------------------------------------------------------------------------------------------------- CLI
def test_cli_export(tmp_path, shared_weights, capsys):
    out = tmp_path / "sub" / "student.onnx"
    ckpt = shared_weights / "official" / "student.model"
    assert cli.main(["export", "--format", "onnx", "--weights", str(ckpt), "--out", str(out)]) == 0
    assert out.is_file()
    msg = capsys.readouterr().out
    assert "113 params" in msg and "onnxruntime vs PyTorch" in msg
    m = Student().eval()
    m.load_state_dict(torch.load(ckpt, map_location="cpu"))
    x = torch.rand(2, 2, 40, 30)
    with torch.no_grad():
        assert (_ort(out, x) - m(x)).abs().max().item() <= 1e-5
    assert [p.name for p in out.parent.iterdir()] == ["student.onnx"]  # atomic: no temporary left behind


def test_cli_named_weights(tmp_path, shared_weights):
    out = tmp_path / "s.onnx"
    rc = cli.main(["export", "--weights", "official-student", "--weights-root", str(shared_weights), "--out",
                   str(out), "--no-verify"])
    assert rc == 0 and out.is_file()


@pytest.mark.parametrize("case", ["teacher", "unknown", "folder", "opset", "missing"])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, shared_weights, capsys, case):
    official = shared_weights / "official"
    argv = {
        "teacher": ["--weights", str(official / "teacher.model"), "--out", str(tmp_path / "t.onnx")],
        "unknown": ["--weights", "official-studnet", "--out", str(tmp_path / "u.onnx")],
        "folder": ["--weights", str(official / "student.model"), "--out", str(tmp_path)],
        "opset": ["--weights", str(official / "student.model"), "--out", str(tmp_path / "o.onnx"), "--opset", "9"],
        "missing": ["--weights", str(tmp_path / "nope.model"), "--out", str(tmp_path / "m.onnx")],
    }[case]
    assert cli.main(["export", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert not list(tmp_path.glob("*.onnx"))


def test_hand_built_graph_matches_torch_exporter():
    """The hand-written graph has the node sequence torch.onnx.export (dynamo) produces for the same student."""
    pytest.importorskip("onnxscript")
    from torch.export import Dim

    m = Student().eval()
    dims = {0: Dim("batch"), 2: Dim("height", min=2), 3: Dim("width", min=2)}
    prog = torch.onnx.export(m, (torch.rand(1, 2, 16, 20),), dynamo=True, dynamic_shapes=(dims,), verbose=False)
    ours = build_onnx(m, opset=18)
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in prog.model_proto.graph.node]


def test_unsupported_structure_is_refused():
    m = Student()
    m.conv2[2] = torch.nn.Sigmoid()
    with pytest.raises(TypeError, match="two-layer student"):
        build_onnx(m)
