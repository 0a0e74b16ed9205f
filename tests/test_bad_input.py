"""The bad-input matrix through the real CLI (``python -m mmdrfuse`` in a subprocess), on tiny generated files.

Every case checks the promise of the commands: the exit code, a single ``error:``/``skipped:`` line on stderr that
names the culprit, no traceback, the input files byte-identical afterwards and no temp file left behind. The
subprocesses of all cases are started together (a few at a time) once per module, so the matrix costs about one
interpreter start-up per case spread over the cores.
"""
from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from mmdrfuse.checkpoints import save_checkpoint
from mmdrfuse.models import Student, StudentConfig, Teacher

REPO = Path(__file__).resolve().parent.parent
STEMS = ("a", "b", "c")


# ------------------------------------------------------------------------------------------------- inputs
def _pairs(root: Path, h: int = 24, w: int = 32) -> None:
    rng = np.random.default_rng(0)
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for s in STEMS:
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(root / "ir" / f"{s}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / "vi" / f"{s}.png")


def _student(path: Path, **cfg) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(path, Student(StudentConfig(**cfg)))


def _plain(path: Path, model: torch.nn.Module, nan: bool = False) -> Path:
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    if nan:
        next(iter(sd.values())).view(-1)[0] = float("nan")
    torch.save(sd, path)
    return path


def _bomb_bmp(path: Path, w: int = 14000, h: int = 14000) -> None:
    """A 58-byte BMP whose header claims w x h x 24 bit (PIL refuses it at open; nothing is decoded)."""
    header = b"BM" + struct.pack("<IHHI", 54 + 4, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 4, 2835, 2835, 0, 0)
    path.write_bytes(header + info + b"\0\0\0\0")


@dataclass
class Case:
    name: str
    argv: Callable[[Path], list[str]]  # root -> arguments after "python -m mmdrfuse"
    rc: int
    says: str  # a piece of the one stderr line
    setup: Callable[[Path], None] = lambda root: None
    env: dict = field(default_factory=dict)
    lines: int = 1  # expected stderr lines


def _fuse(root: Path, *extra: str, out: str = "out", weights: str | None = None) -> list[str]:
    return ["fuse", "--ir", str(root / "ir"), "--vis", str(root / "vi"), "--out", str(root / out), "--quiet",
            "--weights", weights or str(root / "s.pt"), *extra]


def _mkfile(rel: str):
    def setup(root: Path) -> None:
        (root / rel).write_text("x")
    return setup


def _tiny_image(root: Path) -> None:
    for sub in ("ir", "vi"):
        Image.fromarray(np.zeros((1, 1), np.uint8)).save(root / sub / "a.png")


def _named_root(student_as: str | None = None, teacher_as: str | None = None):
    """A weights root whose official/*.model files hold the wrong network."""
    def setup(root: Path) -> None:
        (root / "w" / "official").mkdir(parents=True)
        if teacher_as:
            _plain(root / "w" / "official" / teacher_as, Student())
        if student_as:
            _plain(root / "w" / "official" / student_as, Teacher())
    return setup


def _train_state(content: bytes, banks: bytes | None = None):
    def setup(root: Path) -> None:
        (root / "run").mkdir()
        (root / "run" / "state.pt").write_bytes(content)
        if banks is not None:
            (root / "run" / "banks-rank0.npz").write_bytes(banks)
    return setup


def _valid_state(root: Path) -> None:
    (root / "run").mkdir()
    torch.save({"recipe": "x", "world": 1, "model": {}, "optimizer": {}, "epoch": 0}, root / "run" / "state.pt")
    (root / "run" / "banks-rank0.npz").write_bytes(b"PK\x03\x04 truncated")


def _stale_temp(root: Path) -> None:
    (root / "out").mkdir()
    (root / "out" / ".a.png.tmp-999999-deadbeef.png").write_bytes(b"half")


TRAIN = ["train", "student", "--config", "smoke", "--no-progress", "--teacher", "official-teacher"]
CASES = [
    # data loss: outputs never land on the sources
    Case("fuse out == ir, --overwrite", lambda r: _fuse(r, "--overwrite", out="ir"), 2, "output folder is the input"),
    Case("fuse out == ir", lambda r: _fuse(r, out="ir"), 2, "output folder is the input"),
    Case("fuse out inside vis", lambda r: _fuse(r, out="vi/fused"), 2, "lies inside the input folder"),
    Case("fuse out contains ir", lambda r: _fuse(r, out="."), 2, "contains the input folder"),
    Case("fuse --ir == --vis", lambda r: ["fuse", "--ir", str(r / "ir"), "--vis", str(r / "ir"), "--out",
                                          str(r / "out"), "--weights", str(r / "s.pt")], 2, "same folder"),
    # silent wrong results: non-finite or misplaced weights
    Case("fuse NaN checkpoint", lambda r: _fuse(r, weights=str(r / "nan.model")), 2, "NaN",
         setup=lambda r: _plain(r / "nan.model", Student(), nan=True)),
    Case("named teacher holds a student", lambda r: _fuse(r, "--weights-root", str(r / "w"),
                                                          weights="official-teacher"), 2, "official-teacher",
         setup=_named_root(teacher_as="teacher.model")),
    Case("named student holds a teacher", lambda r: _fuse(r, "--weights-root", str(r / "w"),
                                                          weights="official-student"), 2, "official-student",
         setup=_named_root(student_as="student.model")),
    Case("student with 1 input channel", lambda r: _fuse(r, weights=str(r / "one.model")), 2, "input channel",
         setup=lambda r: _plain(r / "one.model", Student(StudentConfig(in_channels=1)))),
    Case("fuse --device cuda", lambda r: _fuse(r, "--device", "cuda"), 2, "CUDA is not available"),
    # tracebacks: tiny, huge, unwritable
    Case("fuse 1x1 pair", lambda r: _fuse(r), 2, "a.png: 1x1 is too small", setup=_tiny_image),
    Case("fuse 1x1 pair --skip-bad", lambda r: _fuse(r, "--skip-bad"), 0, "skipped:", setup=_tiny_image),
    Case("fuse decompression bomb", lambda r: _fuse(r, "--skip-bad"), 0, "c.bmp",
         setup=lambda r: (os.remove(r / "ir" / "c.png"), _bomb_bmp(r / "ir" / "c.bmp"))),
    Case("fuse over the pixel budget", lambda r: _fuse(r), 2, "Mpx fit in the memory",
         env={"MMDRFUSE_MAX_PIXELS": "100"}),
    Case("evaluate over the pixel budget", lambda r: ["evaluate", "--fused", str(r / "ir"), "--ir", str(r / "ir"),
                                                      "--vis", str(r / "vi"), "--quiet", "--metrics", "SD"], 2,
         "Mpx fit in the memory", env={"MMDRFUSE_MAX_PIXELS": "100"}),
    Case("fuse out is a file", lambda r: _fuse(r, out="f"), 2, "is an existing file", setup=_mkfile("f")),
    Case("fuse out under a file", lambda r: _fuse(r, out="f/x"), 2, "which is a file", setup=_mkfile("f")),
    Case("fuse out unwritable", lambda r: ["fuse", "--ir", str(r / "ir"), "--vis", str(r / "vi"), "--out",
                                           "/proc/mmdrfuse-test", "--weights", str(r / "s.pt")], 2, "not writable"),
    Case("evaluate out under a file", lambda r: ["evaluate", "--fused", str(r / "ir"), "--ir", str(r / "ir"),
                                                 "--vis", str(r / "vi"), "--out", str(r / "f" / "m.csv"),
                                                 "--quiet"], 2, "which is a file", setup=_mkfile("f")),
    Case("export out under a file", lambda r: ["export", "--weights", str(r / "s.pt"), "--out",
                                               str(r / "f" / "s.onnx")], 2, "which is a file", setup=_mkfile("f")),
    Case("export opset 99", lambda r: ["export", "--weights", str(r / "s.pt"), "--out", str(r / "s.onnx"),
                                       "--opset", "99"], 2, "--opset 99"),
    Case("export 1-channel student", lambda r: ["export", "--weights", str(r / "one.model"), "--out",
                                                str(r / "s.onnx")], 2, "input channel",
         setup=lambda r: _plain(r / "one.model", Student(StudentConfig(in_channels=1)))),
    Case("export NaN student", lambda r: ["export", "--weights", str(r / "nan.model"), "--out", str(r / "s.onnx")],
         2, "NaN", setup=lambda r: _plain(r / "nan.model", Student(), nan=True)),
    Case("data demo root under a file", lambda r: ["data", "demo", "--data-root", str(r / "f" / "d")], 2,
         "which is a file", setup=_mkfile("f")),
    Case("data demo root unwritable", lambda r: ["data", "demo", "--data-root", "/proc/mmdrfuse-test"], 2,
         "not writable"),
    Case("data demo --pairs 0", lambda r: ["data", "demo", "--pairs", "0", "--data-root", str(r / "d")], 2,
         "--pairs 0"),
    Case("weights download root under a file", lambda r: ["weights", "download", "official-student",
                                                          "--weights-root", str(r / "f" / "w")], 2,
         "which is a file", setup=_mkfile("f")),
    Case("train out-dir under a file", lambda r: [*TRAIN, "--out-dir", str(r / "f" / "run")], 2, "which is a file",
         setup=_mkfile("f")),
    Case("train batch_size 0", lambda r: [*TRAIN, "--out-dir", str(r / "run"), "--set", "optim.batch_size=0"], 2,
         "optim.batch_size must be >= 1"),
    Case("train epochs 0", lambda r: [*TRAIN, "--out-dir", str(r / "run"), "--set", "optim.epochs=0"], 2,
         "optim.epochs must be >= 1"),
    Case("train --device cuda", lambda r: [*TRAIN, "--out-dir", str(r / "run"), "--device", "cuda"], 2,
         "CUDA is not available"),
    Case("train --resume truncated state", lambda r: [*TRAIN, "--out-dir", str(r / "run"), "--resume"], 2,
         "state.pt: cannot read", setup=_train_state(b"PK\x03\x04 truncated")),
    Case("train --resume corrupt banks", lambda r: [*TRAIN, "--out-dir", str(r / "run"), "--resume"], 2,
         "banks-rank0.npz", setup=_valid_state),
]


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every input file (everything but the output folders the case may create)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.parts[len(root.parts)] in ("ir", "vi")}


def _run_case(case: Case, root: Path) -> dict:
    _pairs(root)
    _student(root / "s.pt")
    case.setup(root)
    before = _snapshot(root)
    env = {k: v for k, v in os.environ.items() if k not in ("MMDRFUSE_WEIGHTS",)}
    env.update({"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MMDRFUSE_WEIGHTS": str(root / "w"), **case.env})
    proc = subprocess.run([sys.executable, "-m", "mmdrfuse", *case.argv(root)], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    return {"rc": proc.returncode, "stderr": proc.stderr, "before": before, "after": _snapshot(root),
            "temps": [str(p) for p in root.rglob("*.tmp-*")]}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, dict]:
    base = tmp_path_factory.mktemp("bad")
    roots = {c.name: base / f"case{i}" for i, c in enumerate(CASES)}
    for r in roots.values():
        r.mkdir()
    with ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 2))) as pool:
        futs = {c.name: pool.submit(_run_case, c, roots[c.name]) for c in CASES}
        return {name: f.result() for name, f in futs.items()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_matrix(case: Case, outcomes):
    got = outcomes[case.name]
    err = got["stderr"]
    assert "Traceback" not in err, err
    assert got["rc"] == case.rc, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == case.lines, err
    assert case.says in lines[0], err
    if case.rc == 2:
        assert lines[0].startswith("error: ")
    assert got["before"] == got["after"], "an input file changed"
    assert not got["temps"], got["temps"]


def test_stale_temp_files_of_a_killed_run_are_removed(tmp_path):
    _pairs(tmp_path)
    _student(tmp_path / "s.pt")
    _stale_temp(tmp_path)
    from mmdrfuse.folders import fuse_folder

    s = fuse_folder(tmp_path / "ir", tmp_path / "vi", tmp_path / "out", weights=str(tmp_path / "s.pt"),
                    progress=False)
    assert s.n_fused == 3
    assert not list((tmp_path / "out").glob(".*tmp-*"))


def test_live_process_temp_files_are_kept(tmp_path):
    from mmdrfuse.atomic import remove_stale_temps

    mine = tmp_path / f".x.png.tmp-{os.getppid()}-abc.png"  # the parent (pytest's launcher) is alive
    dead = tmp_path / ".y.png.tmp-999999-abc.png"
    mine.write_bytes(b"1")
    dead.write_bytes(b"1")
    assert remove_stale_temps(tmp_path) == [dead]
    assert mine.exists()


def test_ctrl_c_during_startup_is_one_line():
    """SIGINT while the interpreter is still importing (torch): one line, exit 130, no traceback."""
    import signal
    import time

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for delay in (0.15, 0.3, 0.05, 0.6):  # the first that lands inside the imports decides
        proc = subprocess.Popen([sys.executable, "-m", "mmdrfuse", "fuse", "--help"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        if proc.returncode != 0:
            break
    else:
        pytest.skip("the command always finished before the signal arrived (a very fast machine)")
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["interrupted; nothing more was written"], err


def test_no_argument_help_is_fast_and_needs_no_torch():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    code = ("import sys; from mmdrfuse.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60).stdout
    assert out.strip().splitlines()[-1] == "False"


def test_bomb_bmp_claims_a_huge_size(tmp_path):
    """The crafted BMP really claims 14000 x 14000 (so the matrix case tests PIL's bomb check, not a corrupt file)."""
    _bomb_bmp(tmp_path / "x.bmp")
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "x.bmp")


def test_folder_check_sees_through_relative_paths(tmp_path):
    """``ir/../ir`` is the input folder; a sibling output folder is fine."""
    from mmdrfuse.errors import MMDRFuseError
    from mmdrfuse.folders import check_folders

    _pairs(tmp_path)
    with pytest.raises(MMDRFuseError, match="is the input folder"):
        check_folders(tmp_path / "ir" / ".." / "ir", tmp_path / "ir", tmp_path / "vi")
    check_folders(tmp_path / "out", tmp_path / "ir", tmp_path / "vi")
