"""Image I/O conventions, the `mmdrfuse fuse` command, bad inputs, resume, and the weights download."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from mmdrfuse import images
from mmdrfuse.checkpoints import download, save_checkpoint
from mmdrfuse.cli import main
from mmdrfuse.errors import BadInputError, MMDRFuseError
from mmdrfuse.models import Student


def _rgb(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# -------------------------------------------------------------------------------------------------- reading
def test_gray_is_pil_L_over_255(tmp_path):
    arr = _rgb()
    Image.fromarray(arr).save(tmp_path / "a.png")
    expect = np.asarray(Image.fromarray(arr).convert("L"), np.float32) / 255.0
    got = images.read_gray(tmp_path / "a.png")
    assert got.shape == (1, 1, 20, 30) and got.dtype == torch.float32
    assert np.array_equal(got[0, 0].numpy(), expect)


def test_rgba_drops_alpha(tmp_path):
    arr = _rgb()
    rgba = np.dstack([arr, np.full(arr.shape[:2], 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    Image.fromarray(arr).save(tmp_path / "b.png")
    assert torch.equal(images.read_gray(tmp_path / "a.png"), images.read_gray(tmp_path / "b.png"))


def test_16bit_matches_8bit_twin(tmp_path):
    g8 = np.random.default_rng(1).integers(0, 256, (17, 23), dtype=np.uint8)
    g16 = g8.astype(np.uint16) * 257  # exact 16-bit image of the same values
    Image.fromarray(g8).save(tmp_path / "a8.png")
    Image.fromarray(g16).save(tmp_path / "a16.png")
    assert Image.open(tmp_path / "a16.png").mode.startswith("I")
    assert torch.equal(images.read_gray(tmp_path / "a16.png"), images.read_gray(tmp_path / "a8.png"))


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif"])
def test_lossless_round_trip(tmp_path, ext):
    g = np.random.default_rng(2).integers(0, 256, (13, 19), dtype=np.uint8)
    images.save_image(tmp_path / f"x{ext}", g)
    assert np.array_equal((images.read_gray(tmp_path / f"x{ext}")[0, 0].numpy() * 255).round().astype(np.uint8), g)


def test_minmax_and_clamp_saving():
    out = torch.tensor([[-0.5, 0.0], [0.25, 0.5]])
    # minmax: (x - min) * 255 / (max - min), half up
    assert images.to_uint8(out, "minmax").tolist() == [[0, 128], [191, 255]]
    assert images.to_uint8(out, "clamp").tolist() == [[0, 0], [64, 128]]
    assert images.to_uint8(torch.full((3, 3), 0.3), "minmax").max() == 0  # constant image, no division by zero


def test_color_recombination_keeps_chroma(tmp_path):
    arr = _rgb(16, 16, 3)
    ycc = np.asarray(Image.fromarray(arr).convert("YCbCr"))
    rgb = images.recombine_color(ycc[..., 0], ycc[..., 1:])
    # Y unchanged -> back to (nearly) the original colours (PIL's integer YCbCr round trip)
    assert np.abs(np.asarray(rgb, int) - arr.astype(int)).max() <= 3


def test_match_stems_pairs_across_extensions(tmp_path):
    (tmp_path / "ir").mkdir(), (tmp_path / "vi").mkdir()
    for s in ("b", "a"):
        images.save_image(tmp_path / "ir" / f"{s}.png", np.zeros((4, 4), np.uint8))
        images.save_image(tmp_path / "vi" / f"{s}.jpg", np.zeros((4, 4), np.uint8))
    pairs = images.match_stems(tmp_path / "ir", tmp_path / "vi")
    assert [p.stem for p in pairs] == ["a", "b"] and pairs[0].vis.suffix == ".jpg"


# ------------------------------------------------------------------------------------------------- the CLI
@pytest.fixture
def pair_dirs(tmp_path):
    ir, vi = tmp_path / "ir", tmp_path / "vi"
    ir.mkdir(), vi.mkdir()
    for i, (h, w) in enumerate([(24, 32), (24, 32), (15, 21)]):  # odd sizes too
        rng = np.random.default_rng(i)
        Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8)).save(ir / f"p{i}.png")
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(vi / f"p{i}.png")
    return ir, vi


@pytest.fixture
def weights_file(tmp_path):
    s = Student()
    with torch.no_grad():
        for p in s.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())) * 0.3)
    return save_checkpoint(tmp_path / "w.pt", s, {"test": True}), s


def _fuse(ir, vi, out, weights, *extra):
    return main(["fuse", "--ir", str(ir), "--vis", str(vi), "--out", str(out), "--weights", str(weights),
                 "--quiet", *extra])


def test_fuse_cli_matches_model(pair_dirs, weights_file, tmp_path, capsys):
    ir, vi = pair_dirs
    path, s = weights_file
    assert _fuse(ir, vi, tmp_path / "out", path, "--batch-size", "2") == 0
    assert "3 pairs: 3 fused" in capsys.readouterr().out
    for i in range(3):
        a, b = images.read_gray(ir / f"p{i}.png"), images.read_gray(vi / f"p{i}.png")
        with torch.no_grad():
            expect = images.to_uint8(s(torch.cat([a, b], 1)))
        got = np.asarray(Image.open(tmp_path / "out" / f"p{i}.png"))
        assert np.abs(got.astype(int) - expect.astype(int)).max() <= 1


def test_fuse_color_output(pair_dirs, weights_file, tmp_path):
    ir, vi = pair_dirs
    assert _fuse(ir, vi, tmp_path / "out", weights_file[0], "--color") == 0
    assert Image.open(tmp_path / "out" / "p0.png").mode == "RGB"


def test_rerun_skips_finished_and_resumes(pair_dirs, weights_file, tmp_path, capsys):
    ir, vi = pair_dirs
    out = tmp_path / "out"
    assert _fuse(ir, vi, out, weights_file[0]) == 0
    (out / "p1.png").unlink()  # as if interrupted before p1 was written
    before = (out / "p0.png").stat().st_mtime_ns
    capsys.readouterr()
    assert _fuse(ir, vi, out, weights_file[0]) == 0
    assert "1 fused, 2 already done" in capsys.readouterr().out
    assert (out / "p1.png").exists() and (out / "p0.png").stat().st_mtime_ns == before
    assert _fuse(ir, vi, out, weights_file[0], "--overwrite") == 0
    assert not list(out.glob("*.tmp*")) and not list(out.glob(".*"))


def _err(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_missing_partner(pair_dirs, weights_file, tmp_path, capsys):
    ir, vi = pair_dirs
    (vi / "p2.png").unlink()
    assert _fuse(ir, vi, tmp_path / "o", weights_file[0]) == 2
    assert "p2.png" in _err(capsys)
    assert _fuse(ir, vi, tmp_path / "o", weights_file[0], "--skip-bad") == 0
    assert "skipped" in capsys.readouterr().err


def test_size_mismatch(pair_dirs, weights_file, tmp_path, capsys):
    ir, vi = pair_dirs
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(vi / "p0.png")
    assert _fuse(ir, vi, tmp_path / "o", weights_file[0]) == 2
    msg = _err(capsys)
    assert "p0.png" in msg and "size" in msg
    assert _fuse(ir, vi, tmp_path / "o", weights_file[0], "--skip-bad") == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["p1.png", "p2.png"]


def test_corrupt_file(pair_dirs, weights_file, tmp_path, capsys):
    ir, vi = pair_dirs
    (ir / "p1.png").write_bytes(b"\x89PNG garbage")
    assert _fuse(ir, vi, tmp_path / "o", weights_file[0]) == 2
    assert "p1.png" in _err(capsys)


def test_empty_folder(tmp_path, weights_file, capsys):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    assert _fuse(tmp_path / "a", tmp_path / "b", tmp_path / "o", weights_file[0]) == 2
    assert "no image pairs" in _err(capsys)


def test_unknown_weights_and_wrong_shapes(pair_dirs, tmp_path, capsys):
    ir, vi = pair_dirs
    assert _fuse(ir, vi, tmp_path / "o", "official-studnet") == 2
    assert "did you mean" in _err(capsys)
    sd = Student().state_dict()
    sd["conv1.1.bias"] = torch.zeros(7)
    torch.save(sd, tmp_path / "bad.model")
    assert _fuse(ir, vi, tmp_path / "o", tmp_path / "bad.model") == 2
    assert "bad.model" in _err(capsys)


def test_fuse_pair_python_api(pair_dirs, weights_file):
    from mmdrfuse import fuse_pair

    ir, vi = pair_dirs
    out = fuse_pair(ir / "p0.png", vi / "p0.png", weights=weights_file[0])
    assert out.shape == (24, 32) and out.dtype == np.uint8
    with pytest.raises(BadInputError):
        fuse_pair(ir / "p0.png", vi / "p2.png", weights=weights_file[0])


# ---------------------------------------------------------------------------------- download (local server)
@pytest.fixture
def local_server(tmp_path):
    root = tmp_path / "srv"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_download_verifies_sha256(local_server, tmp_path):
    root, url = local_server
    payload = b"weights" * 1000
    (root / "w.model").write_bytes(payload)
    good = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "dl" / "w.model"
    assert download(f"{url}/w.model", dest, good, progress=False).read_bytes() == payload
    bad_dest = tmp_path / "dl2" / "w.model"
    with pytest.raises(MMDRFuseError, match="sha256"):
        download(f"{url}/w.model", bad_dest, "0" * 64, progress=False)
    assert not bad_dest.exists() and not list(bad_dest.parent.iterdir())
    with pytest.raises(MMDRFuseError, match="download failed"):
        download(f"{url}/missing.model", tmp_path / "dl3" / "x", None, progress=False)
