"""The benchmark harness: fused-image cache, quality tables, Table 3, the runner, the synthetic demo default."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmarks import cache as bc
from benchmarks import paper_values as pv
from benchmarks import run as brun
from benchmarks.report import TIDY_COLUMNS
from mmdrfuse import data, demo

HEADER = "table,dataset,method,weights,metric,value,source,n_pairs,profile"
SIX = ["SD", "SCD", "VIF", "Qabf", "SSIM", "CC"]


# --------------------------------------------------------------------------------------------------- fakes
class _Max:
    """A fake fusion method: the pixel-wise maximum (exact in 8 bit)."""

    def fuse(self, ir, vis):
        return torch.maximum(ir, vis)

    def to_uint8(self, out):
        return torch.round(out[0, 0] * 255).clamp(0, 255).to(torch.uint8).numpy()


def _fake_run(sha="ab" * 32, name="Fake"):
    builds = []

    def factory():
        builds.append(1)
        return _Max()

    run = bc.MethodRun(name, "none", sha, factory, kind="classical")
    return run, builds


def _gray(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("L"), np.float64)


def fake_evaluator(fused_dir, pairs, metrics, progress=True, desc=""):
    """Stand-in metrics: SD of F, mean of F / 255 for the rest (enough to check the plumbing)."""
    fake_evaluator.seen.extend(p.stem for p in pairs)
    rows = []
    for p in pairs:
        f = _gray(Path(fused_dir) / f"{p.stem}.png")
        rows.append({"stem": p.stem, **{m: (f.std() if m == "SD" else f.mean() / 255.0) for m in metrics}})
    return pd.DataFrame(rows)


fake_evaluator.seen = []


@pytest.fixture
def demo_set(tmp_path):
    root = tmp_path / "data"
    demo.write_demo(root, n_pairs=3, height=48, width=64)
    return data.locate("DEMO", root)


def _ctx(tmp_path, **kw) -> brun.Context:
    settings = {"max_pairs": {"mmdrfuse": None, "baselines": None}, "baselines": "none", "demo_pairs": 3,
                "table3": {"size": [64, 80], "warmup": 1, "runs": 2}}
    settings.update(kw.pop("settings", {}))
    return brun.Context(profile="quick", settings=settings, data_root=tmp_path / "data",
                        weights_root=kw.pop("weights_root", tmp_path / "weights"), out_dir=tmp_path / "out",
                        cache=bc.FusedCache(tmp_path / "cache", progress=False), progress=False, **kw)


# ---------------------------------------------------------------------------------------------- the demo set
def test_demo_is_deterministic_and_has_warm_targets():
    ir, vis = demo.make_pair(0, 96, 128)
    ir2, vis2 = demo.make_pair(0, 96, 128)
    assert np.array_equal(ir, ir2) and np.array_equal(vis, vis2)
    assert ir.shape == (96, 128) and vis.shape == (96, 128, 3) and ir.dtype == vis.dtype == np.uint8
    assert not np.array_equal(ir, demo.make_pair(1, 96, 128)[0])
    assert ir[:4].mean() < 64  # cold sky at the top
    assert ir.max() > 180  # warm targets
    gray = vis.astype(float).mean(-1)
    tex = lambda a: np.abs(np.diff(a, axis=1)).mean()  # noqa: E731
    assert tex(gray) > tex(ir.astype(float))  # the visible image carries the texture


def test_write_demo_is_idempotent(tmp_path):
    out = demo.write_demo(tmp_path, n_pairs=2, height=32, width=40)
    files = sorted(out.rglob("*.png"))
    assert [f.relative_to(out).as_posix() for f in files] == ["ir/demo_000.png", "ir/demo_001.png",
                                                             "vi/demo_000.png", "vi/demo_001.png"]
    mtimes = [f.stat().st_mtime_ns for f in files]
    demo.write_demo(tmp_path, n_pairs=2, height=32, width=40)
    assert [f.stat().st_mtime_ns for f in files] == mtimes
    loc = data.locate("DEMO", tmp_path)
    assert loc.n_pairs == 2 and "NOT the paper's data" in loc.flag


# ---------------------------------------------------------------------------------------------------- cache
def test_cache_fuses_once_and_resumes(tmp_path, demo_set):
    cache = bc.FusedCache(tmp_path / "cache", progress=False)
    run, builds = _fake_run()
    e = cache.ensure(run, demo_set)
    assert e.n_new == 3 and e.stems == ["demo_000", "demo_001", "demo_002"]
    for stem in e.stems:  # the cached image is the method's output, computed independently here
        ir = _gray(demo_set.ir_dir / f"{stem}.png")
        vis = np.asarray(Image.open(demo_set.vis_dir / f"{stem}.png").convert("L"), np.float64)
        assert np.array_equal(_gray(e.folder / f"{stem}.png"), np.maximum(ir, vis))
    assert cache.ensure(run, demo_set).n_new == 0 and len(builds) == 1  # nothing rebuilt, nothing fused
    (e.folder / "demo_001.png").unlink()
    assert cache.ensure(run, demo_set).n_new == 1
    man = json.loads((e.folder / "manifest.json").read_text())
    assert man["method"] == "Fake" and man["sha256"] == run.sha256 and man["dataset"] == "DEMO"


def test_cache_pairs_held_by_another_process_are_not_fused_twice(tmp_path, demo_set):
    """Two processes filling one cache folder: a pair whose lock another live process holds is skipped, then
    waited for; here that process writes its image (and drops its lock) while this one fuses the next pair."""
    import socket
    import subprocess
    import sys
    cache = bc.FusedCache(tmp_path / "cache", progress=False)
    run, _ = _fake_run()
    folder = cache.folder(run, "DEMO")
    folder.mkdir(parents=True)
    lock = folder / ".demo_001.lock"
    fused = []

    class _Other(_Max):
        def fuse(self, ir, vis):
            fused.append(len(fused))
            if len(fused) == 2:  # the other process finishes demo_001 meanwhile
                Image.fromarray(np.full((2, 2), 7, np.uint8)).save(folder / "demo_001.png")
                lock.unlink()
            return super().fuse(ir, vis)

    run.factory = _Other
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        lock.write_text(f"{socket.gethostname()} {other.pid}\n")
        try:
            e = cache.ensure(run, demo_set)
        finally:
            other.kill()
    assert e.n_new == 2 and len(fused) == 2                        # demo_000 and demo_002 only
    assert _gray(folder / "demo_001.png").shape == (2, 2)          # the other process's image was kept
    assert not list(folder.glob(".*.lock"))


def test_cache_folder_depends_on_weights_hash(tmp_path):
    cache = bc.FusedCache(tmp_path)
    a, _ = _fake_run("11" * 32)
    b, _ = _fake_run("22" * 32)
    assert cache.folder(a, "MSRS") != cache.folder(b, "MSRS")


def test_cache_metrics_computed_once(tmp_path, demo_set):
    cache = bc.FusedCache(tmp_path / "cache", progress=False)
    run, _ = _fake_run()
    pairs = cache.select(demo_set)
    cache.ensure(run, demo_set, pairs[:2])
    fake_evaluator.seen = []
    df = cache.metrics(run, demo_set, pairs[:2], SIX, fake_evaluator)
    assert list(df.columns) == ["stem", *SIX] and fake_evaluator.seen == ["demo_000", "demo_001"]
    cache.ensure(run, demo_set, pairs)
    df = cache.metrics(run, demo_set, pairs, SIX, fake_evaluator)
    assert fake_evaluator.seen == ["demo_000", "demo_001", "demo_002"]  # only the new stem evaluated
    assert df["stem"].tolist() == ["demo_000", "demo_001", "demo_002"]
    sd = _gray(cache.folder(run, "DEMO") / "demo_002.png").std()
    assert df.loc[2, "SD"] == pytest.approx(sd)


def test_cache_keys_follow_the_code(tmp_path, demo_set):
    cache = bc.FusedCache(tmp_path / "cache", progress=False)
    run, _ = _fake_run()
    run.code = bc.code_fingerprint(["mmdrfuse.demo"])
    assert cache.folder(run, "DEMO").parent.name.endswith("-c" + run.code[:8])
    cache.ensure(run, demo_set)

    def other_evaluator(fused_dir, pairs, metrics, progress=True, desc=""):
        return pd.DataFrame([{"stem": p.stem, **{m: 1.0 for m in metrics}} for p in pairs])

    pairs = cache.select(demo_set)
    a = cache.metrics(run, demo_set, pairs, ["SD"], fake_evaluator)
    b = cache.metrics(run, demo_set, pairs, ["SD"], other_evaluator)
    assert (b["SD"] == 1.0).all() and not (a["SD"] == 1.0).all()  # not served from the other evaluator's file
    assert len(list(cache.folder(run, "DEMO").glob("metrics-*.csv"))) == 2
    assert bc.code_fingerprint(["mmdrfuse.demo"]) != bc.code_fingerprint(["mmdrfuse.data"])


def test_select_is_evenly_spaced(tmp_path):
    root = tmp_path / "d"
    for sub in ("MRI_PET/MRI", "MRI_PET/PET"):
        (root / sub).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / sub / f"{i:02d}.png")
    loc = data.locate("MRI-PET", root)
    assert [p.stem for p in bc.FusedCache.select(loc, 4)] == ["00", "03", "06", "09"]
    assert len(bc.FusedCache.select(loc)) == 10 and len(bc.FusedCache.select(loc, 50)) == 10


# ---------------------------------------------------------------------------------------------- quality tables
def test_quality_table_on_demo(tmp_path):
    from benchmarks.table4 import quality_table

    ctx = _ctx(tmp_path, evaluator=fake_evaluator, synthetic=True)
    run, _ = _fake_run()
    ctx._runs = ([run], {"TarDAL": "weights not found at X"})
    paths = quality_table(ctx, "table5", ("MRI-SPECT", "MRI-PET"))
    csv_path = ctx.out_dir / "table5.csv"
    assert csv_path in paths
    with open(csv_path) as f:
        assert f.readline().strip() == HEADER
    df = pd.read_csv(csv_path)
    assert list(df.columns) == TIDY_COLUMNS
    ours = df[df["source"] == "ours"]
    assert set(ours["dataset"]) == {"DEMO"} and set(ours["metric"]) == set(SIX)
    assert (ours["n_pairs"] == 3).all() and (ours["profile"] == "quick").all()
    folder = ctx.cache.folder(run, "DEMO")
    sd = np.mean([_gray(folder / f"demo_{i:03d}.png").std() for i in range(3)])
    assert ours.loc[ours["metric"] == "SD", "value"].item() == pytest.approx(sd)
    paper = df[df["source"] == "paper"]
    assert len(paper) == 2 * 7 * 6 and set(paper["profile"]) == {"published"}
    prov = json.loads((ctx.out_dir / "table5.provenance.json").read_text())
    assert prov["synthetic"] is True and prov["weights_sha256"]["Fake"] == run.sha256
    assert any("NOT the paper's data" in f for f in prov["flags"])
    md = (ctx.out_dir / "table5.md").read_text()
    assert "SYNTHETIC DATA" in md and "TarDAL: paper values only, none of ours: weights not found at X" in md


def test_quality_table_flags_short_dataset_and_subsets(tmp_path):
    from benchmarks.table4 import quality_table

    root = tmp_path / "data"
    for rel in ("LLVIP/test_samples/ir", "LLVIP/test_samples/vi"):
        (root / rel).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / rel / f"{i}.jpg")
    ctx = _ctx(tmp_path, evaluator=fake_evaluator, settings={"max_pairs": {"mmdrfuse": None, "baselines": 2}})
    run, _ = _fake_run()
    run.kind = "learned"  # counts as a baseline: 2 pairs only
    ctx._runs = ([run], {})
    quality_table(ctx, "table4", ("MSRS", "LLVIP", "RoadScene"))
    df = pd.read_csv(ctx.out_dir / "table4.csv")
    ours = df[df["source"] == "ours"]
    assert set(ours["dataset"]) == {"LLVIP"} and (ours["n_pairs"] == 2).all()
    prov = json.loads((ctx.out_dir / "table4.provenance.json").read_text())
    assert any("only 4 of the paper's 250" in f for f in prov["flags"])
    assert any("MSRS: paper values only" in n for n in prov["notes"])
    assert any("evaluated on 2 evenly spaced pairs" in n for n in prov["notes"])
    assert "FLAG: LLVIP" in (ctx.out_dir / "table4.md").read_text()


def test_quality_table_llvip_samples_and_extra_pairs(tmp_path):
    """LLVIP = the samples + the extra test pairs (flagged 6 of 250 here); LLVIP-4 = the same method on the samples
    alone, each mean over its own pairs (the fake evaluator's SD is the fused image's std)."""
    from benchmarks.table4 import quality_table

    root = tmp_path / "data"
    values = {"LLVIP/test_samples": {f"19000{i}": 40 * i for i in range(4)}, "LLVIP/test_extra": {"1": 7, "2": 250}}
    for folder, stems in values.items():
        for mod in ("ir", "vi"):
            (root / folder / mod).mkdir(parents=True)
            for stem, v in stems.items():
                img = np.full((8, 8), v, np.uint8)
                img[0, 0] = 0  # a non-zero std that differs between images
                Image.fromarray(img).save(root / folder / mod / f"{stem}.png")
    ctx = _ctx(tmp_path, evaluator=fake_evaluator)  # its data root is tmp_path / "data"
    run, _ = _fake_run()
    ctx._runs = ([run], {})
    quality_table(ctx, "table4", ("LLVIP",))
    df = pd.read_csv(ctx.out_dir / "table4.csv")
    ours = df[(df["source"] == "ours") & (df["metric"] == "SD")].set_index("dataset")
    assert ours.loc["LLVIP", "n_pairs"] == 6 and ours.loc["LLVIP-4", "n_pairs"] == 4
    folder = ctx.cache.folder(run, "LLVIP")
    sd = {p.stem: _gray(p).std() for p in folder.glob("*.png")}
    assert ours.loc["LLVIP", "value"] == pytest.approx(np.mean(list(sd.values())))
    assert ours.loc["LLVIP-4", "value"] == pytest.approx(np.mean([sd[s] for s in values["LLVIP/test_samples"]]))
    prov = json.loads((ctx.out_dir / "table4.provenance.json").read_text())
    assert any("only 6 of the paper's 250 test pairs found (LLVIP/test_samples + LLVIP/test_extra)" in f
               for f in prov["flags"])
    assert any(n.startswith("LLVIP-4: the same methods on the 4 pairs of LLVIP/test_samples alone")
               for n in prov["notes"])
    extra = root / "LLVIP/test_extra"
    assert prov["data"]["LLVIP"]["more_dirs"] == [[str(extra / "ir"), str(extra / "vi")]]


def test_qualitative_pair_from_a_supplement_folder(tmp_path):
    """A figure's LLVIP pair may be one of the extra test pairs: its sources come from LLVIP/test_extra."""
    from benchmarks import figures
    from benchmarks.fusion_methods import MethodEntry

    root = tmp_path / "data"
    for folder, stems in (("LLVIP/test_samples", ("190001",)), ("LLVIP/test_extra", ("1", "2"))):
        for mod in ("ir", "vi"):
            (root / folder / mod).mkdir(parents=True)
            for stem in stems:
                Image.fromarray(np.full((8, 8), 9, np.uint8)).save(root / folder / mod / f"{stem}.png")
    ctx = _ctx(tmp_path)
    run, _ = _fake_run()
    loc, stem, sources, fused = figures._qualitative_inputs(ctx, "LLVIP", [MethodEntry("Fake", "Fake", "none", run)],
                                                            lambda *_: None, preferred="2")
    assert stem == "2" and sources == (root / "LLVIP/test_extra/ir/2.png", root / "LLVIP/test_extra/vi/2.png")
    assert fused == {"Fake": ctx.cache.folder(run, "LLVIP") / "2.png"} and fused["Fake"].is_file()


def test_table3_counts_for_mmdrfuse(tmp_path):
    from benchmarks import table3

    ctx = _ctx(tmp_path, methods=["MMDRFuse"])
    table3.run(ctx)
    df = pd.read_csv(ctx.out_dir / "table3.csv")
    ours = df[(df["source"] == "ours") & (df["method"] == "MMDRFuse")].set_index("metric")
    assert ours.loc["Params", "value"] == 113  # SPEC: 2*4*9+4 + 4*9+1
    assert round(ours.loc["Size_KB", "value"], 2) == 0.44  # the paper's size
    assert ours.loc["FLOPs_G", "value"] == pytest.approx(108 * 64 * 80 / 1e9)  # SPEC: 108 MACs per pixel
    assert ours.loc["Time_ms", "n_pairs"] == 2 and ours.loc["Time_ms", "value"] > 0
    assert set(df.loc[df["source"] == "paper", "method"]) == set(pv.TABLE3)
    assert (df["dataset"] == "64x80").sum() == 4 and (df["dataset"] == "1024x1280").sum() == 21


def test_table3_paper_flops_at_paper_size():
    """The analytic MACs of the student at 1024 x 1280 give the paper's 0.142 G."""
    from mmdrfuse.models import Student

    assert round(Student().macs(1024, 1280) / 1e9, 3) == pv.TABLE3["MMDRFuse"][1]


# ----------------------------------------------------------------------------------------------------- runner
def test_a_target_whose_module_does_not_import_fails_loudly(tmp_path, monkeypatch, capsys):
    """No "not implemented yet" status any more: every target's module exists, so an import error is a failure, with
    its traceback."""
    monkeypatch.setitem(brun.TARGETS, "tableZ", ("benchmarks.no_such_module_xyz", "nothing"))
    out = brun.run_target("tableZ", _ctx(tmp_path))
    assert out.status == "failed" and "ModuleNotFoundError" in out.message
    assert "Traceback" in capsys.readouterr().err


def test_failing_target_does_not_stop_the_others(tmp_path, monkeypatch):
    import types
    import sys

    mod = types.ModuleType("benchmarks._broken_for_test")
    mod.run = lambda ctx: (_ for _ in ()).throw(ValueError("boom"))
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    monkeypatch.setitem(brun.TARGETS, "broken", (mod.__name__, "broken"))
    out = brun.run_target("broken", _ctx(tmp_path))
    assert out.status == "failed" and "boom" in out.message


def test_unknown_profile_and_dataset_fail_with_one_line(tmp_path, capsys):
    assert brun.main(["table5", "--profile", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    assert brun.main(["table5", "--datasets", "MSRZ", "--out", str(tmp_path)]) == 2
    assert "did you mean 'MSRS'" in capsys.readouterr().err


@pytest.mark.parametrize("argv, hint", [
    (["table5", "--methods", "MMDRFuze"], "unknown method 'MMDRFuze'; did you mean 'MMDRFuse'"),
    (["tabel5"], "unknown target 'tabel5'; did you mean 'table5'"),
    (["table5", "--baselines", "learnd"], "unknown baselines selection 'learnd'; did you mean 'learned'"),
    (["table5", "--datasets", "MRI_PTE"], "did you mean 'MRI-PET'"),
    (["table5", "--profile", "quik"], "did you mean 'quick'"),
])
def test_unknown_names_fail_with_did_you_mean(tmp_path, capsys, argv, hint):
    assert brun.main([*argv, "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and hint in err[0]
    assert not (tmp_path / "out").exists()


def test_method_names_are_case_insensitive_and_canonical():
    args = brun.parse_args(["table5", "--methods", "mmdrfuse", "tardal", "MMDRFuse (mmdrfuse-cpu)"])
    brun.check_names(args, brun.load_profiles())
    assert args.methods == ["MMDRFuse", "TarDAL", "MMDRFuse (mmdrfuse-cpu)"]


def test_results_go_to_the_working_directory(tmp_path, monkeypatch):
    """Real data: ./results; a demo run: ./results-demo; never the installed package's folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "data"
    for mod in ("MRI", "PET"):  # one "real" pair
        (root / "MRI_PET" / mod).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "MRI_PET" / mod / "1.png")
    ctx = brun.build_context(brun.parse_args(["table5", "--data-root", str(root), "--cache", str(tmp_path / "c")]))
    assert not ctx.synthetic and ctx.out_dir == tmp_path / "results"
    ctx = brun.build_context(brun.parse_args(["table5", "--data-root", str(tmp_path / "none"),
                                              "--cache", str(tmp_path / "c")]))
    assert ctx.synthetic and ctx.out_dir == tmp_path / "results-demo"
    assert data.find("DEMO", ctx.data_root) is not None and ctx.searched_data_root == tmp_path / "none"


def test_demo_never_writes_into_real_results(tmp_path, capsys):
    real = tmp_path / "results"
    real.mkdir()
    (real / "table4.provenance.json").write_text(json.dumps({"target": "table4", "profile": "cpu"}))
    code = brun.main(["table5", "--synthetic", "--out", str(real), "--cache", str(tmp_path / "c"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "holds results computed on real data (table4.provenance.json" in err[0]
    assert sorted(p.name for p in real.iterdir()) == ["table4.provenance.json"]
    (real / "table4.provenance.json").write_text(json.dumps({"target": "table4", "demo": True}))
    from benchmarks.report import real_results_in

    assert real_results_in(real) is None  # a folder of demo results may take more demo results


def test_demo_places_labelled_pedestrians(tmp_path):
    out = demo.write_demo(tmp_path, n_pairs=3)
    for i in range(3):
        ir, _, boxes = demo.make_pair_with_boxes(i)
        lines = (out / "labels" / f"demo_{i:03d}.txt").read_text().splitlines()
        assert len(lines) == len(boxes) >= 2 and all(ln.startswith("0 ") for ln in lines)
        for cx, cy, w, h in boxes:  # each box sits on a warm blob of the infrared image
            y, x = int(cy * ir.shape[0]), int(cx * ir.shape[1])
            assert ir[y, x] > 150, (i, cx, cy)
            assert 0 < w < 0.2 and 0 < h < 0.5


def test_profiles_are_complete():
    profiles = brun.load_profiles()
    assert {"quick", "cpu", "paper"} <= set(profiles)
    for name, p in profiles.items():
        assert set(p["datasets"]) == set(data.PAPER_DATASETS), name
        assert {"mmdrfuse", "baselines"} <= set(p["max_pairs"]) and p["max_pairs"]["mmdrfuse"] is None
        assert {"size", "warmup", "runs", "baseline_runs"} <= set(p["table3"])


def test_synthetic_default_when_no_data(tmp_path, monkeypatch, capsys, shared_weights):
    """No data anywhere: table5 runs on the demo set and says loudly that these are not the paper's data."""
    monkeypatch.delenv("MMDRFUSE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(bc, "default_evaluator", fake_evaluator)
    out = tmp_path / "out"
    code = brun.main(["table5", "--weights-root", str(shared_weights), "--out", str(out), "--cache",
                      str(tmp_path / "cache"), "--methods", "MMDRFuse", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "SYNTHETIC" in captured.err and "NOT the paper's data" in captured.err
    df = pd.read_csv(out / "table5.csv")
    ours = df[df["source"] == "ours"]
    assert set(ours["dataset"]) == {"DEMO"} and "official" in set(ours["weights"])
    assert "SYNTHETIC" in (out / "REPORT.md").read_text()
    assert "summary" in captured.out and "table5" in captured.out


# --------------------------------------------------------------------------------------------------- e2e smoke
@pytest.mark.e2e
def test_e2e_table5_two_pairs_per_dataset(tmp_path, shared_data, shared_weights, shared_reference):
    """table5 end to end on two real pairs per data set with the official checkpoint and the suite's metrics.

    Pair ``11`` of each set is one of ../shared/reference's calibration images: the cached fused image and its
    metrics must match the values computed with the authors' code.
    """
    pytest.importorskip("mmdrfuse.metrics.reading", reason="metrics not available yet")
    root = tmp_path / "data"
    for folder, (a, b) in (("MRI_SPECT", ("MRI", "SPECT")), ("MRI_PET", ("MRI", "PET"))):
        for mod in (a, b):
            (root / folder / mod).mkdir(parents=True)
            for stem in ("11", "12"):
                os.symlink(shared_data / folder / mod / f"{stem}.png", root / folder / mod / f"{stem}.png")
    out, cache = tmp_path / "out", tmp_path / "cache"
    code = brun.main(["table5", "--data-root", str(root), "--weights-root", str(shared_weights), "--out", str(out),
                      "--cache", str(cache), "--methods", "MMDRFuse", "--quiet"])
    assert code == 0
    with open(out / "table5.csv") as f:
        assert f.readline().strip() == HEADER
    df = pd.read_csv(out / "table5.csv")
    ours = df[df["source"] == "ours"]
    assert set(ours["dataset"]) == {"MRI-SPECT", "MRI-PET"} and set(ours["method"]) == {"MMDRFuse"}
    assert (ours["n_pairs"] == 2).all()
    ours = ours[ours["weights"] == "official"]  # (the project's trained weights add rows when present)
    assert len(ours) == 2 * 6
    prov = json.loads((out / "table5.provenance.json").read_text())
    assert prov["weights_sha256"]["MMDRFuse"] == "e5ad5bab796f4480dbbc35a8f6f63e69ba3ccd1842476d2c2453ca1aca6eb17c"

    with open(shared_reference / "metrics" / "reference_values.csv") as f:
        ref = {r["fused"]: r for r in csv.DictReader(f)}
    for ds, folder in (("MRI-SPECT", "MRI_SPECT"), ("MRI-PET", "MRI_PET")):
        [fused_dir] = [p for p in cache.glob(f"MMDRFuse/official-*/{ds}")]
        mine = _gray(fused_dir / "11.png")
        theirs = _gray(shared_reference / "metrics" / "fused" / f"{folder}_11_mmdrfuse.png")
        assert np.abs(mine - theirs).max() <= 1
        [metrics_csv] = fused_dir.glob("metrics-*.csv")
        per = pd.read_csv(metrics_csv, dtype={"stem": str}).set_index("stem")
        r = ref[f"{folder}_11_mmdrfuse.png"]
        if np.array_equal(mine, theirs):
            for m in SIX:
                assert per.loc["11", m] == pytest.approx(float(r[m]), rel=3e-4), (ds, m)
        for m in SIX:  # the table value is the mean of the per-image values
            row = ours[(ours["dataset"] == ds) & (ours["metric"] == m)]
            assert row["value"].item() == pytest.approx(per.loc[["11", "12"], m].mean())


def test_seeds_and_pretrained_options_reach_the_context(tmp_path):
    args = brun.parse_args(["detection", "--profile", "cpu", "--seeds", "0", "1", "--pretrained", "--data-root",
                            str(tmp_path), "--weights-root", str(tmp_path), "--out", str(tmp_path / "res"),
                            "--cache", str(tmp_path / "cache")])
    ctx = brun.build_context(args)
    assert ctx.seeds == [0, 1] and "--seeds 0 1" in ctx.command and ctx.pretrained
    plain = brun.build_context(brun.parse_args(["detection", "--data-root", str(tmp_path)]))
    assert plain.seeds is None and not plain.pretrained


def test_baselines_option_overrides_the_profile(tmp_path, shared_weights):
    base = ["table5", "--profile", "quick", "--data-root", str(tmp_path), "--weights-root", str(shared_weights)]
    ctx = brun.build_context(brun.parse_args(base + ["--baselines", "learned", "--methods", "TarDAL"]))
    assert ctx.settings["baselines"] == "learned"
    assert sorted(r.weights for r in ctx.method_runs()[0]) == ["tardal++.pt", "tardal+.pt", "tardal.pt"]
    ctx = brun.build_context(brun.parse_args(base + ["--methods", "TarDAL"]))
    assert [r.weights for r in ctx.method_runs()[0]] == ["tardal.pt"]  # the profile's "default": one entry
    assert brun.load_profiles()["quick"]["baselines"] == "default"      # the profile itself is not modified
