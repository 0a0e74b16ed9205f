"""``mmdrfuse export``: the student as an ONNX model (dynamic batch, height and width).

The student is six ONNX operators, so the graph is written directly with ``onnx.helper`` instead of going through
``torch.onnx.export``: Pad(reflect, 1) -> Conv(3x3) -> Relu -> Pad(reflect, 1) -> Conv(3x3) -> Tanh. That gives a
clean graph with symbolic ``batch``/``height``/``width`` dimensions, no dependency on a particular exporter
(the TorchScript one is deprecated, the dynamo one needs onnxscript) and any hidden width. Input ``ir_vis`` is
``cat([ir, vis], 1)`` (N x 2 x H x W, float32 in [0, 1], IR/MRI first); output ``fused`` is the tanh output
(N x 1 x H x W), exactly ``Student.forward``; save it with the same min-max rescale as ``mmdrfuse fuse``.

    mmdrfuse export --format onnx [--weights NAME|PATH] --out FILE.onnx [--opset 17] [--no-verify]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn

from mmdrfuse.atomic import atomic_path
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.models import Student, config_dict

INPUT_NAME = "ir_vis"
OUTPUT_NAME = "fused"
MIN_OPSET = 11  # Pad with mode="reflect" and pads as an input
PARITY_TOL = 1e-5  # max |onnxruntime - PyTorch| accepted by the export check


def build_onnx(student: Student, opset: int = 17, doc: str = ""):
    """The student as an ``onnx.ModelProto`` (checked), with its weights as float32 initializers."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from mmdrfuse.fast import implements

    if not implements(student):  # the graph below is written for exactly this structure, as the C kernel is
        raise TypeError(f"only the paper's two-layer student can be exported to ONNX, got {type(student).__name__} "
                        "of another structure")
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is too old: reflection padding needs opset >= {MIN_OPSET}")
    cin = student.config.in_channels
    c1, c2 = student.conv1[1], student.conv2[1]

    def init(name: str, t: torch.Tensor):
        return numpy_helper.from_array(t.detach().to("cpu", torch.float32).contiguous().numpy(), name)

    inits = [
        init("conv1.weight", c1.weight), init("conv1.bias", c1.bias),
        init("conv2.weight", c2.weight), init("conv2.bias", c2.bias),
        numpy_helper.from_array(torch.tensor([0, 0, 1, 1, 0, 0, 1, 1], dtype=torch.int64).numpy(), "pads"),
    ]
    conv = dict(kernel_shape=[3, 3], pads=[0, 0, 0, 0], strides=[1, 1], dilations=[1, 1], group=1)
    nodes = [
        helper.make_node("Pad", [INPUT_NAME, "pads"], ["x_pad"], mode="reflect", name="conv1.pad"),
        helper.make_node("Conv", ["x_pad", "conv1.weight", "conv1.bias"], ["h_pre"], name="conv1", **conv),
        helper.make_node("Relu", ["h_pre"], ["hidden"], name="conv1.relu"),
        helper.make_node("Pad", ["hidden", "pads"], ["h_pad"], mode="reflect", name="conv2.pad"),
        helper.make_node("Conv", ["h_pad", "conv2.weight", "conv2.bias"], ["o_pre"], name="conv2", **conv),
        helper.make_node("Tanh", ["o_pre"], [OUTPUT_NAME], name="conv2.tanh"),
    ]
    graph = helper.make_graph(
        nodes, "mmdrfuse_student",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", cin, "height", "width"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, "height", "width"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="mmdrfuse",
                              doc_string=doc or "MMDRFuse student (ACM MM 2024): ir_vis = cat([ir, vis], 1) in [0, 1]")
    model.ir_version = min(model.ir_version, _max_ir_version(opset))
    helper.set_model_props(model, {"mmdrfuse.config": json.dumps(config_dict(student)),
                                   "mmdrfuse.input": "cat([ir, vis], 1), gray in [0, 1], IR/MRI first",
                                   "mmdrfuse.output": "tanh output; save with per-image min-max rescale"})
    onnx.checker.check_model(model)
    return model


def _max_ir_version(opset: int) -> int:
    """The newest IR version this opset is released with (keeps older onnxruntime builds able to load the file)."""
    from onnx import helper

    try:
        table = helper.VERSION_TABLE  # rows: (release, ir_version, ai.onnx opset, ...)
        return max(row[1] for row in table if row[2] <= opset)
    except (AttributeError, ValueError, IndexError):  # pragma: no cover - very old/new onnx
        from onnx import IR_VERSION

        return IR_VERSION


def export_onnx(student: Student, path: str | Path, opset: int = 17, doc: str = "", verify: bool = False) -> Path:
    """Write ``student`` as ONNX to ``path`` with dynamic batch, height and width; return the path.

    With ``verify`` the graph is first run by onnxruntime against PyTorch (:func:`verify_onnx`) and nothing is written
    unless they agree within 1e-5; the file appears atomically either way (never half-written).
    """
    return _export(student, Path(path), opset, doc, verify)[0]


def _export(student: Student, path: Path, opset: int, doc: str, verify: bool) -> tuple[Path, float | None]:
    """:func:`export_onnx`, also returning the parity error (None when not verified)."""
    data = build_onnx(student, opset=opset, doc=doc).SerializeToString()
    err = None
    if verify:
        err = verify_onnx(student, data)
        if not err <= PARITY_TOL:  # NaN fails too
            raise MMDRFuseError(f"{path}: onnxruntime output differs from PyTorch by {err:.2e} (> {PARITY_TOL:g}); "
                                "nothing was written")
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path, err


def onnx_session(path: str | Path | bytes, threads: int | None = None):
    """An onnxruntime CPU session for an exported file or serialised model (``threads``: default torch's)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def verify_onnx(model: nn.Module, path: str | Path | bytes, shapes=((1, 2, 67, 93), (2, 2, 32, 48)),
                seed: int = 0) -> float:
    """Max |onnxruntime - PyTorch| over random inputs of ``shapes`` (needs onnxruntime); NaN if either side gives a
    non-finite value, so that ``err <= tol`` fails for it."""
    sess = onnx_session(path)
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for shape in shapes:
        x = torch.rand(*shape, generator=g)
        with torch.no_grad():
            ref = model(x)
        got = torch.from_numpy(sess.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
        if not (torch.isfinite(got).all() and torch.isfinite(ref).all()):
            return float("nan")
        worst = max(worst, float((got - ref).abs().max()))
    return worst


# ---------------------------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=["onnx"], default="onnx", help="export format (default: onnx)")
    parser.add_argument("--weights", default="official-student",
                        help="named weights or a checkpoint path (default: official-student)")
    parser.add_argument("--weights-root", default=None, help="where named weights live (default: $MMDRFUSE_WEIGHTS)")
    parser.add_argument("--out", required=True, help="output file, e.g. student.onnx")
    parser.add_argument("--opset", type=int, default=17, help=f"ONNX opset (>= {MIN_OPSET}, default 17)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime-vs-PyTorch check (done by default when onnxruntime is installed)")


def _load_student(weights: str, weights_root: str | None) -> nn.Module:
    from mmdrfuse.checkpoints import load_model

    return load_model(weights, weights_root=weights_root)


def run(args: argparse.Namespace) -> int:
    from mmdrfuse.atomic import check_out_file

    out = Path(args.out)
    try:
        import onnx
    except ImportError:
        raise MMDRFuseError("ONNX export needs the onnx package: pip install onnx (or pip install 'mmdrfuse[bench]')")
    newest = onnx.defs.onnx_opset_version()
    if not MIN_OPSET <= args.opset <= newest:
        raise MMDRFuseError(f"--opset {args.opset}: this onnx ({onnx.__version__}) writes opsets {MIN_OPSET}..{newest} "
                            "(reflection padding needs >= 11)")
    check_out_file(out, "--out file")
    model = _load_student(args.weights, getattr(args, "weights_root", None)).eval()
    if not isinstance(model, Student):
        raise MMDRFuseError(f"{args.weights}: only the student can be exported to ONNX; pass student weights "
                            "(e.g. --weights official-student)")
    verify = not args.no_verify
    note = ""
    if verify:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            verify, note = False, "; not verified: onnxruntime is not installed"
    try:
        _, err = _export(model, out, args.opset, f"MMDRFuse student, weights: {args.weights}", verify)
    except (ValueError, onnx.checker.ValidationError) as exc:
        raise MMDRFuseError(f"{out}: the ONNX graph did not validate at opset {args.opset} "
                            f"({str(exc).splitlines()[0][:160]}); nothing was written") from None
    msg = f"wrote {out} (student, hidden={model.config.hidden}, {model.num_params()} params, opset {args.opset}"
    msg += f"; onnxruntime vs PyTorch max |diff| = {err:.1e}" if verify else note
    print(msg + ")")
    return 0
