"""The VIFB convention (mmdrfuse.metrics.vifb) against VIFB's own MATLAB values, and its MATLAB building blocks.

Calibration: ../shared/reference/vifb/values.csv holds the 3,549 per-image values (273 fused images x 13 metrics)
that VIFB's MATLAB code (github.com/xingchenzhang/VIFB @ 22b2ea9) wrote with ``dlmwrite`` (5 significant digits).
Each is compared with ours rounded to 5 significant digits: they must agree within one unit in the 5th digit.
No value needs a wider tolerance: the images are JPEG files, and PIL's decoder (libjpeg-turbo) gives exactly the
pixels OpenCV's does on all 315 files (checked below); every one of the 3,549 values agrees to the last printed digit,
which a decoding difference would upset (docs/metrics.md, "VIFB convention", gives the measurement).

The fast suite checks one fused image per input pair (21 images, each of the 13 methods at least once, 273 values);
``-m slow`` adds the other 252 images.
"""
from __future__ import annotations

import csv
import math
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from mmdrfuse import metrics as M
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.metrics import _native
from mmdrfuse.metrics import matlab as ML
from mmdrfuse.metrics import vifb

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _vifb_dir() -> Path | None:
    from tests.conftest import SHARED

    path = SHARED / "reference" / "vifb" if SHARED else None
    return path if path is not None and (path / "values.csv").is_file() else None


def _values() -> dict[tuple[str, str], dict[str, str]]:
    root = _vifb_dir()
    out: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    if root is not None:
        with open(root / "values.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                out[(r["image"], r["method"])][r["metric"]] = r["value"]
    return dict(out)


VALUES = _values()
IMAGES = sorted({i for i, _ in VALUES})
METHODS = sorted({m for _, m in VALUES})
FAST = {(img, METHODS[k % len(METHODS)]) for k, img in enumerate(IMAGES)}  # one fused image per pair


def _cases():
    if not VALUES:
        return [pytest.param("-", "-", "-", "0", marks=pytest.mark.skip(reason="no ../shared/reference/vifb"))]
    return [pytest.param(img, meth, metric, ref, id=f"{img}_{meth}-{metric}",
                         marks=() if (img, meth) in FAST else pytest.mark.slow)
            for (img, meth), vals in sorted(VALUES.items()) for metric, ref in vals.items()]


@lru_cache(maxsize=2)
def _ours(image: str, method: str) -> dict[str, float]:
    root = _vifb_dir()
    f = vifb.read_vifb(root / "fused" / f"{image}_{method}.jpg")
    ir = vifb.read_vifb(root / "input" / "IR" / f"{image}.jpg")
    vis = vifb.read_vifb(root / "input" / "VI" / f"{image}.jpg")
    return {k: v.item() for k, v in M.compute_all(f[None], ir[None], vis[None], convention="vifb").items()}


def units_apart(got: float, ref: str) -> float:
    """|got rounded to 5 significant digits - ref| in units of ref's 5th significant digit."""
    unit = 10.0 ** (math.floor(math.log10(abs(float(ref)))) - 4)
    return abs(float(f"{got:.5g}") - float(ref)) / unit


def test_reference_present(shared_reference):
    if not VALUES:
        pytest.skip("../shared/reference/vifb/values.csv not found")
    assert len(VALUES) == 273 and sum(len(v) for v in VALUES.values()) == 3549
    assert set(next(iter(VALUES.values()))) == set(vifb.NAMES)
    assert {m for _, m in FAST} == set(METHODS) and {i for i, _ in FAST} == set(IMAGES)


@pytest.mark.parametrize("image, method, metric, ref", _cases())
def test_matches_vifb_matlab(image, method, metric, ref):
    got = _ours(image, method)[metric]
    assert units_apart(got, ref) <= 1.0 + 1e-9, f"{image}_{method} {metric}: ours {got:.7g}, VIFB {ref}"


def test_pil_decodes_the_vifb_jpegs_as_opencv():
    """The decoding measurement behind the calibration's tolerance: PIL and OpenCV (two libjpeg-turbo builds, the
    IJG integer IDCT and fancy upsampling that MATLAB's libjpeg also uses by default) agree on every sample."""
    cv2 = pytest.importorskip("cv2")
    root = _vifb_dir()
    if root is None:
        pytest.skip("no ../shared/reference/vifb")
    files = sorted(root.glob("input/*/*.jpg")) + sorted(root.glob("fused/*.jpg"))
    assert len(files) == 315
    for p in files:
        ours = vifb.read_vifb(p).permute(1, 2, 0).numpy()
        theirs = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        theirs = theirs[..., None] if theirs.ndim == 2 else theirs[..., ::-1]
        assert np.array_equal(ours, theirs), p.name


def test_read_vifb_png_fast_path_equals_pil(tmp_path):
    from PIL import Image

    from mmdrfuse.errors import BadInputError
    from mmdrfuse.images import read_pil

    g = np.random.default_rng(4)
    for name, arr in (("gray.png", g.integers(0, 256, (31, 45), dtype=np.uint8)),
                      ("rgb.png", g.integers(0, 256, (31, 45, 3), dtype=np.uint8)),
                      ("rgba.png", g.integers(0, 256, (31, 45, 4), dtype=np.uint8)),  # PIL's path (alpha dropped)
                      ("rgb.jpg", g.integers(0, 256, (31, 45, 3), dtype=np.uint8))):
        Image.fromarray(arr).save(tmp_path / name)
        want = torch.from_numpy(np.array(read_pil(tmp_path / name), dtype=np.uint8))
        want = want[None] if want.dim() == 2 else want.permute(2, 0, 1)
        got = vifb.read_vifb(tmp_path / name)
        assert got.dtype == torch.uint8 and got.is_contiguous() and torch.equal(got, want), name
    with pytest.raises(BadInputError, match="not found"):
        vifb.read_vifb(tmp_path / "missing.png")


# --------------------------------------------------------------------------------------- MATLAB building blocks
def test_rgb2gray_weights_and_rounding():
    assert ML.RGB2GRAY == pytest.approx((0.298936021293775, 0.587043074451121, 0.114020904255103), abs=1e-15)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 40, 50)).astype(np.float64)
    exact = np.tensordot(np.array(ML.RGB2GRAY), rgb, axes=1)
    got = ML.rgb2gray(torch.from_numpy(rgb), integer=True).numpy()
    assert np.array_equal(got, np.floor(exact + 0.5))  # positive values: half away = floor(x + 0.5)
    np.testing.assert_allclose(ML.rgb2gray(torch.from_numpy(rgb), integer=False).numpy(), exact, rtol=1e-15)


def test_round_half_away():
    x = torch.tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999999999, 0.49999999999999994, 127.5], dtype=torch.float64)
    assert ML.round_half_away(x).tolist() == [-3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 2.0, 0.0, 128.0]
    y = torch.tensor([0.0, 0.25, 0.49999999999999994, 0.5, 0.75, 1.5, 2.5, 2.4999999999999996, 254.5, 255.0],
                     dtype=torch.float64)
    assert ML.round_half_away_nonneg_(y.clone()).tolist() == ML.round_half_away(y).tolist() == [
        0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 3.0, 2.0, 255.0, 255.0]
    assert torch.isnan(ML.round_half_away_nonneg_(torch.tensor([float("nan")], dtype=torch.float64))).all()


@pytest.mark.parametrize("n", [1, 2, 7, 8, 480, 481])
def test_freqspace_in_dft_order(n):
    centred = (np.arange(n) - n // 2) * (2.0 / n)  # MATLAB freqspace(n), fftshift order
    want = np.fft.ifftshift(centred)  # the same frequencies in DFT bin order
    np.testing.assert_allclose(ML.freqspace_axis(n, 1.0).numpy(), want, atol=1e-15)
    np.testing.assert_allclose(ML.freqspace_axis(n, 3.0, half=True).numpy(), 3.0 * want[: n // 2 + 1],
                               atol=1e-14)


def test_block_sums_pad_edge_blocks_with_zeros():
    x = torch.arange(35 * 20, dtype=torch.float64).reshape(35, 20)
    got = ML.block_sums(x, 16)
    assert got.shape == (3, 2)
    for i in range(3):
        for j in range(2):
            assert got[i, j].item() == x[16 * i: 16 * i + 16, 16 * j: 16 * j + 16].sum().item()


def test_normalize1():
    x = torch.tensor([[[10.0, 20.0], [30.0, 137.0]]])
    assert ML.normalize1(x).tolist() == [[[0.0, 20.0], [40.0, 255.0]]]  # 127 * 20 / 127 = 20.0...; 40.157 -> 40
    zero = torch.zeros(1, 4, 4)
    assert torch.equal(ML.normalize1(zero), zero)
    assert torch.isnan(ML.normalize1(torch.full((1, 4, 4), 9.0))).all()  # MATLAB's 0/0


# ------------------------------------------------------------------------------------------- colour rules
def _colour(h=48, w=52, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 1, h, w, generator=g, dtype=torch.float64) * 200
    return (base + torch.rand(1, 3, h, w, generator=g, dtype=torch.float64) * 55).round()


def test_equal_channels_give_the_gray_values():
    f, a, b = (_colour(seed=s)[:, :1].expand(1, 3, -1, -1) for s in range(3))
    colour = vifb.compute_all(f, a, b)
    gray = vifb.compute_all(f[:, :1], a[:, :1], b[:, :1])
    for k in vifb.NAMES:
        if k != "Spatial_frequency":
            torch.testing.assert_close(colour[k], gray[k], rtol=1e-12, atol=1e-12)
    # a gray IR image is the same as three equal channels (VIFB's b1 == 1 branch)
    torch.testing.assert_close(vifb.compute_all(_colour(seed=5), a[:, :1], _colour(seed=6))["Qcb"],
                               vifb.compute_all(_colour(seed=5), a, _colour(seed=6))["Qcb"], rtol=1e-12, atol=0)


def test_spatial_frequency_walks_the_channels_side_by_side():
    f = _colour(seed=3)
    arr = f[0].permute(1, 2, 0).numpy()  # H x W x 3, as MATLAB holds it
    h, w, _ = arr.shape
    x = arr.reshape(h, 3 * w, order="F")  # MATLAB's column-major H x 3W view: [R G B]
    want = np.sqrt((np.sum(np.diff(x, axis=1) ** 2) + np.sum(np.diff(x, axis=0) ** 2)) / (h * 3 * w))
    assert vifb.compute_all(f, f, f, ["Spatial_frequency"])["Spatial_frequency"].item() == pytest.approx(want,
                                                                                                         rel=1e-13)


def test_gray_fused_converts_colour_sources_per_metric():
    f = _colour(seed=1)[:, :1]
    a, b = _colour(seed=2), _colour(seed=4)
    got = vifb.compute_all(f, a, b, ["Ssim", "Psnr", "Rmse"])
    rounded = [ML.rgb2gray(x, integer=True)[:, None] for x in (a, b)]
    exact = [ML.rgb2gray(x, integer=False)[:, None] for x in (a, b)]
    assert not torch.equal(rounded[0], exact[0])
    torch.testing.assert_close(got["Ssim"], 2 * M.SSIM_gauss255(f, *rounded), rtol=1e-12, atol=0)
    mes = M.RMSE(f, *exact) / math.sqrt(f.shape[-2] * f.shape[-1])
    torch.testing.assert_close(got["Rmse"], mes, rtol=1e-12, atol=0)
    torch.testing.assert_close(got["Psnr"], 20 * torch.log10(255 / mes.sqrt()), rtol=1e-12, atol=0)


def test_relations_to_the_registry():
    f, a, b = (_colour(seed=s)[:, :1] for s in (7, 8, 9))
    v = vifb.compute_all(f, a, b)
    h, w = f.shape[-2:]
    torch.testing.assert_close(v["Variance"], M.SD(f))
    torch.testing.assert_close(v["Entropy"], M.EN(f))
    torch.testing.assert_close(v["Cross_entropy"], M.CE(f, a, b))
    torch.testing.assert_close(v["Edge_intensity"], M.EI(f))
    torch.testing.assert_close(v["Avg_gradient"], M.AG(f) * h * w / ((h - 1) * (w - 1)))
    torch.testing.assert_close(v["Qabf"], M.Qabf(f, a, b))
    torch.testing.assert_close(v["Qcb"], M.Qcb(f, a, b))
    torch.testing.assert_close(v["Qcv"], M.Qcv(f, a, b))


def test_batches_and_reduction():
    f, a, b = (torch.cat([_colour(seed=s), _colour(seed=s + 10)]) for s in range(3))
    both = vifb.compute_all(f, a, b)
    for i in range(2):
        one = vifb.compute_all(f[i:i + 1], a[i:i + 1], b[i:i + 1])
        for k in vifb.NAMES:
            torch.testing.assert_close(both[k][i:i + 1], one[k], rtol=1e-12, atol=1e-12)
    mean = vifb.compute_all(f, a, b, ["Qcv", "Ssim"], reduction="mean")
    assert list(mean) == ["Qcv", "Ssim"] and mean["Qcv"].dim() == 0


# ------------------------------------------------------------------------------------------------- C kernels
needs_kernel = pytest.mark.skipif(not _native.available(), reason="metric kernel not built (no C compiler?)")


def _torch_path(monkeypatch, fn, *args, **kwargs):
    """fn(*args) with the kernels switched off (the torch path), then switched back on."""
    monkeypatch.setitem(_native._state, "lib", None)
    monkeypatch.setitem(_native._state, "error", "off for this test")
    try:
        return fn(*args, **kwargs)
    finally:
        monkeypatch.undo()


def _kernel_case(name):
    c = [_colour(h=37, w=45, seed=s) for s in range(6)]
    if name == "colour, gray IR":
        return c[0], c[1][:, :1], c[2]
    if name == "colour, equal-channel IR and VI, batch":
        ir = torch.cat([c[1][:, :1].expand(1, 3, -1, -1), c[3]])
        vi = torch.cat([c[2], c[4][:, 1:2].expand(1, 3, -1, -1)])
        return torch.cat([c[0], c[5]]), ir, vi
    if name == "gray fused, colour sources":
        return c[0][:, :1], c[1], c[2]
    if name == "gray fused, colour VI, uint8":
        return (c[0][:, :1].to(torch.uint8), c[1][:, 2:].to(torch.uint8), c[2].to(torch.uint8))
    if name == "all gray":
        return c[0][:, :1], c[1][:, 1:2], c[2][:, 2:]
    if name == "non-integer":
        return c[0] * 0.993 + 0.3, c[1][:, :1] * 0.5 + 0.25, c[2] * 0.9
    if name == "flat images":  # a black source (normalize1 keeps it), a constant fused image (normalize1's NaN)
        return torch.full((1, 1, 23, 29), 9.0), torch.zeros(1, 1, 23, 29), c[2][..., :23, :29]
    raise KeyError(name)


KERNEL_CASES = ["colour, gray IR", "colour, equal-channel IR and VI, batch", "gray fused, colour sources",
                "gray fused, colour VI, uint8", "all gray", "non-integer", "flat images"]


@needs_kernel
@pytest.mark.parametrize("case", KERNEL_CASES)
def test_kernels_equal_torch_path(monkeypatch, case):
    f, a, b = _kernel_case(case)
    ours = vifb.compute_all(f, a, b)
    ref = _torch_path(monkeypatch, vifb.compute_all, f, a, b)
    for k in vifb.NAMES:
        assert torch.allclose(ours[k], ref[k], rtol=1e-10, atol=0, equal_nan=True), (k, ours[k], ref[k])
    if case == "flat images":
        assert torch.isnan(ours["Qcb"]).all() and not torch.isnan(ours["Ssim"]).any()


@needs_kernel
@pytest.mark.parametrize("shape", [(2, 3), (5, 4), (11, 11), (12, 40)])
def test_kernels_equal_torch_path_on_small_images(monkeypatch, shape):
    f, a, b = (_colour(*shape, seed=s) for s in range(3))
    names = [k for k in vifb.NAMES if vifb.get(k).min_size <= min(shape)]
    ours = vifb.compute_all(f, a[:, :1], b, names)
    ref = _torch_path(monkeypatch, vifb.compute_all, f, a[:, :1], b, names)
    for k in names:
        assert torch.allclose(ours[k], ref[k], rtol=1e-10, atol=0, equal_nan=True), (k, ours[k], ref[k])


@needs_kernel
def test_matlab_building_blocks_in_c_are_bit_exact():
    g = torch.Generator().manual_seed(3)
    images = [torch.randint(0, 256, (4, 31, 17), generator=g).double(),
              torch.randint(0, 3, (4, 31, 17), generator=g).double(),  # lo 0, hi 2: 127.5 ties everywhere
              torch.rand(4, 31, 17, generator=g, dtype=torch.float64) * 255,
              torch.zeros(1, 5, 5, dtype=torch.float64), torch.full((1, 5, 5), 4.0, dtype=torch.float64)]
    for x in images:
        assert torch.equal(_native.normalize1(x).nan_to_num(-1.0), ML.normalize1(x).nan_to_num(-1.0))
    assert torch.equal(_native.normalize1(list(images[0])), ML.normalize1(images[0]))
    rgb = torch.randint(0, 256, (3, 3, 40, 41), generator=g).double()
    for integer in (True, False):
        assert torch.equal(_native.rgb2gray(rgb, integer), ML.rgb2gray(rgb, integer=integer))
    rgb = torch.rand(2, 3, 40, 41, generator=g, dtype=torch.float64) * 255
    assert torch.equal(_native.rgb2gray(rgb, False), ML.rgb2gray(rgb, integer=False))


@needs_kernel
def test_qabf_alone_equals_the_combined_gradient_kernel():
    f, a, b = (_colour(h=50, w=61, seed=s)[0] for s in range(3))
    both = _native.gradients(f, a, b)
    alone = _native.gradients(f, a, b, nabf=False)
    assert torch.equal(alone[0], both[0]) and torch.isnan(alone[1]).all() and not torch.isnan(both[1]).any()


@needs_kernel
def test_shared_source_maps_give_the_per_channel_values():
    """A gray source serving three channels has its perceptual maps computed once (Batch.labels): the same values
    as without the labels."""
    from mmdrfuse.metrics._context import Batch

    f, a, b = _colour(seed=1), _colour(seed=2)[:, :1], _colour(seed=3)
    fk, ak, bk = f[0], a[0].expand(3, -1, -1).contiguous(), b[0]
    plain, shared = Batch.trusted(fk, ak, bk), Batch.trusted(fk, ak, bk)
    shared.labels = vifb._channel_labels(f, a, b)
    assert shared.labels.tolist() == [[0, 1, 2], [3, 3, 3], [6, 7, 8]]
    for k in ("Mutinf", "Qcb", "Qcv"):
        torch.testing.assert_close(vifb.get(k).fn(shared), vifb.get(k).fn(plain), rtol=1e-13, atol=0)


@needs_kernel
def test_kernels_independent_of_threads_and_builds(monkeypatch):
    f, a, b = _kernel_case("colour, equal-channel IR and VI, batch")
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = vifb.compute_all(f, a, b)
        torch.set_num_threads(2)
        two = vifb.compute_all(f, a, b)
    finally:
        torch.set_num_threads(old)
    builds = {}
    for isa in range(_native._state["isa"] + 1):
        monkeypatch.setitem(_native._state, "isa", isa)
        builds[isa] = vifb.compute_all(f, a, b)
    for k in vifb.NAMES:
        torch.testing.assert_close(two[k], one[k], rtol=1e-13, atol=0)
        for v in builds.values():
            torch.testing.assert_close(v[k], one[k], rtol=1e-12, atol=0)


# ------------------------------------------------------------------------------------------- API and errors
def test_compute_all_convention_dispatch():
    f, a, b = (_colour(seed=s) for s in range(3))
    via_registry = M.compute_all(f, a, b, convention="vifb")
    assert list(via_registry) == vifb.NAMES == ["Cross_entropy", "Entropy", "Mutinf", "Psnr", "Avg_gradient",
                                                "Edge_intensity", "Qabf", "Variance", "Spatial_frequency", "Rmse",
                                                "Ssim", "Qcb", "Qcv"]
    direct = vifb.compute_all(f, a, b)
    for k in vifb.NAMES:
        torch.testing.assert_close(via_registry[k], direct[k], rtol=0, atol=0)
    with pytest.raises(M.UnknownConventionError) as exc:
        M.compute_all(f, a, b, convention="VIFB ")
    assert isinstance(exc.value, MMDRFuseError) and "vifb" in str(exc.value) and "\n" not in str(exc.value)
    assert set(M.CONVENTIONS) == {"mmdrfuse", "vifb"}


def test_vifb_names_and_bad_inputs():
    with pytest.raises(M.UnknownMetricError, match="did you mean 'Ssim'"):
        vifb.resolve(["SSIM"])
    assert vifb.resolve(["Qcv", "Ssim", "Qcv"]) == ["Qcv", "Ssim"]
    ok = _colour()
    with pytest.raises(ValueError, match="C = 1 or 3"):
        vifb.compute_all(ok[:, :2], ok, ok)
    with pytest.raises(ValueError, match="does not match"):
        vifb.compute_all(ok, ok[..., :40], ok)
    with pytest.raises(ValueError, match="too small"):
        vifb.compute_all(ok[..., :10, :10], ok[..., :10, :10], ok[..., :10, :10], ["Ssim"])
    with pytest.raises(ValueError, match="0..255"):
        vifb.compute_all(ok + 300, ok, ok, ["Qabf"])


def test_speed_benchmark_smoke(tmp_path, capsys):
    from PIL import Image

    from benchmarks import speed_conventions

    paths = []
    for name, seed in (("f.png", 0), ("i.png", 1), ("v.png", 2)):
        Image.fromarray(_colour(seed=seed)[0].permute(1, 2, 0).numpy().astype(np.uint8)).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    argv = ["--fused", paths[0], "--ir", paths[1], "--vis", paths[2], "--runs", "1", "--warmup", "0", "--threads", "1"]
    assert speed_conventions.main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("read+compute") == 2 and out.count("vifb") >= 2


def test_speed_benchmark_finds_its_pairs_or_says_which_is_missing(tmp_path, monkeypatch, capsys):
    from benchmarks import speed_conventions as sc

    monkeypatch.delenv(sc.REFERENCE_ENV, raising=False)
    data = tmp_path / "data"
    assert sc.reference_root(None, data) == tmp_path / "reference"
    monkeypatch.setenv(sc.REFERENCE_ENV, str(tmp_path / "ref"))
    assert sc.reference_root(None, data) == tmp_path / "ref"
    assert sc.reference_root(tmp_path / "x", data) == tmp_path / "x"
    pairs = sc.default_pairs(data, tmp_path / "ref")
    assert pairs["msrs_gray_fused"][1] == data / "MSRS" / "test" / "ir" / "00004N.png"
    assert pairs["vifb_colour_fused"][0] == tmp_path / "ref" / "vifb" / "fused" / "labMan_CBF.jpg"
    assert sc.main(["--data-root", str(data), "--runs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing" in err and "00004N" in err and "--reference-root" in err
    assert sc.main(["--fused", str(data / "f.png")]) == 2


def test_whole_process_mode_says_which_folder_is_missing(tmp_path, capsys):
    from benchmarks import speed_conventions as sc

    data = tmp_path / "data"
    (data / "MSRS" / "test" / "ir").mkdir(parents=True)
    assert sc.main(["--whole-process", "--data-root", str(data), "--reference-root", str(tmp_path / "ref")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "missing" in err and str(data / "MSRS" / "test" / "vi") in err


def test_whole_process_timer_runs_each_label_with_its_own_arguments_interleaved(tmp_path, monkeypatch):
    """Two commands of one checkout (e.g. the two conventions): each label's runs get that label's arguments, one
    untimed run each first, then the labels alternate (a, b, b, a)."""
    from benchmarks import whole_process as wp

    calls = []

    def fake_run(argv, cwd, env):
        calls.append(argv[1:])
        return (0.2 if argv[-1] == "--list-metrics" else 1.0), 0.5

    monkeypatch.setattr(wp, "_run", fake_run)
    argv = {"a": lambda out: ["evaluate", "--out", str(out), "A"], "b": lambda out: ["evaluate", "--out", str(out), "B"]}
    timings = wp.compare({"a": tmp_path, "b": tmp_path}, argv, 4, ["-m", "mmdrfuse", "evaluate", "--list-metrics"],
                         repeats=2, warmup=1, progress=False, alternate=True, out_dir=tmp_path)
    commands = [c[-1] for c in calls if c[-1] != "--list-metrics"]
    assert commands == ["A", "B", "A", "B", "B", "A"]
    assert [len(t.seconds) for t in timings] == [2, 2]
    row = timings[0].row()
    assert row["ms_per_pair_median"] == 250.0 and row["startup_s"] == 0.2 and row["ms_per_pair_excl_startup"] == pytest.approx(200.0)
