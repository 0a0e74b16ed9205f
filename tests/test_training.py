"""Trainer: profiles, patches, an end-to-end smoke run, resume == uninterrupted, the NaN guard, 2-process DDP."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mmdrfuse.train as training
from mmdrfuse import losses
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.io import match_stems, read_gray
from mmdrfuse.patches import PatchConfig, build_patches, epoch_order, shard_ids
from mmdrfuse.train import loop

REPO = Path(__file__).resolve().parent.parent

# tiny and fast: random VGG, 8 patches of 32x32 from 2 pairs, batch 4 -> 2 steps per epoch, 2 epochs
TINY = {"vgg.random_init": True, "data.patch_size": 32, "data.max_patches": 8, "data.max_images": 2,
        "optim.batch_size": 4, "optim.epochs": 2}


def _cfg(kind="student", **extra):
    return training.load_config("smoke", kind, {**TINY, **extra})


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------------------------ profiles
def test_paper_profiles_follow_the_paper():
    s = training.load_config("paper", "student")
    assert (s.optim.epochs, s.optim.batch_size, s.optim.lr) == (10, 26, 1e-4)
    assert (s.loss.intensity, s.loss.gradient, s.loss.perceptual, s.loss.distill) == (0.5, 0.05, 1.0, 5.0)
    assert s.loss.refresh_gain == 1.0 and s.loss.distill_mode == "attention" and s.data.patch_size == 128
    t = training.load_config("paper", "teacher")
    assert (t.optim.epochs, t.optim.batch_size) == (8, 36)
    assert (t.loss.intensity, t.loss.gradient, t.loss.perceptual) == (2.0, 0.1, 1.0)


def test_official_profiles_follow_the_code():
    s = training.load_config("official", "student")
    assert (s.optim.epochs, s.optim.batch_size) == (10, 25)
    assert (s.loss.intensity, s.loss.gradient, s.loss.perceptual, s.loss.distill) == (1.0, 0.1, 2.0, 5.0)
    assert s.loss.refresh_gain == 10.0 and s.model.init_from_teacher and s.data.mode == "grid"
    t = training.load_config("official", "teacher")
    assert (t.optim.epochs, t.optim.batch_size, t.loss.refresh_gain) == (10, 25, 10.0)


@pytest.mark.parametrize("profile", training.PROFILES)
@pytest.mark.parametrize("kind", training.KINDS)
def test_every_profile_loads(profile, kind):
    cfg = training.load_config(profile, kind)
    assert cfg.kind == kind and cfg.profile == profile


def test_config_errors():
    with pytest.raises(MMDRFuseError, match="did you mean 'epochs'"):
        training.load_config("smoke", "student", {"optim.epoch": 3})
    with pytest.raises(MMDRFuseError, match="not found"):
        training.load_config("no-such.yaml", "student")
    with pytest.raises(MMDRFuseError, match="trains a teacher"):
        training.load_config(str(training.config_path("smoke", "teacher")), "student")


def test_recipe_hash_ignores_speed_settings():
    a, b = _cfg(), _cfg(**{"speed.feature_cache_mb": 0, "bank.memory_mb": 1})
    assert a.recipe_hash() == b.recipe_hash()
    assert a.recipe_hash() != _cfg(**{"optim.lr": 2e-4}).recipe_hash()


# ------------------------------------------------------------------------------------------------- patches
def test_grid_patches_are_exact_crops(shared_data):
    folder = shared_data / "LLVIP" / "train_samples"
    ps = build_patches(folder / "ir", folder / "vi", PatchConfig(size=128, max_images=1), progress=False)
    assert len(ps) == 80  # 8 x 10 on a 1280 x 1024 pair (the authors' grid)
    pair = match_stems(folder / "ir", folder / "vi")[0]
    ir, vi = read_gray(pair.ir), read_gray(pair.vis)
    stem, top, left = ps.origin[13]
    assert (stem, top, left) == (pair.stem, 128, 384)
    b_ir, b_vi = ps.batch([13])
    assert torch.equal(b_ir[0, 0], ir[0, 0, top:top + 128, left:left + 128])
    assert torch.equal(b_vi[0, 0], vi[0, 0, top:top + 128, left:left + 128])


def test_random_patches_and_subset(shared_data):
    folder = shared_data / "LLVIP" / "train_samples"
    cfg = PatchConfig(size=64, mode="random", per_image=5, max_images=2, max_patches=7, seed=3)
    a = build_patches(folder / "ir", folder / "vi", cfg, progress=False)
    b = build_patches(folder / "ir", folder / "vi", cfg, progress=False)
    assert len(a) == 7 and a.origin == b.origin and torch.equal(a.data, b.data)
    assert all(0 <= t <= 1024 - 64 and 0 <= l <= 1280 - 64 for _, t, l in a.origin)


def test_shards_and_epoch_orders():
    s0, s1 = shard_ids(11, 0, 2), shard_ids(11, 1, 2)
    assert len(s0) == len(s1) == 5 and not set(s0) & set(s1)
    o = epoch_order(s0, seed=1, epoch=3)
    assert sorted(o) == sorted(s0) and np.array_equal(o, epoch_order(s0, 1, 3))
    assert not np.array_equal(o, epoch_order(s0, 1, 4)) or len(s0) < 3


# ------------------------------------------------------------------------------------------- training runs
@pytest.fixture(scope="module")
def _one_vgg():
    from mmdrfuse.vgg import load_vgg

    return load_vgg(random_init=True)


@pytest.fixture()
def roots(shared_data, shared_weights, _one_vgg, monkeypatch):
    """Data/weights roots; every run in a test reuses one random VGG (built once per module, it is frozen)."""
    monkeypatch.setattr(loop, "load_vgg", lambda *a, **k: _one_vgg)
    return {"data_root": str(shared_data), "weights_root": str(shared_weights), "progress": False}


def test_smoke_student_end_to_end(tmp_path, roots):
    res = training.train(_cfg(), tmp_path / "run", **roots)
    assert res.epochs_done == 2 and res.steps == 4 and res.backbone == "random"
    rows = _rows(tmp_path / "run" / "log.csv")
    assert len(rows) == 4
    for r in rows:
        for k in ("int", "grad", "per", "dis", "ref", "total"):
            assert np.isfinite(float(r[k]))
    assert [int(r["filled"]) for r in rows] == [1, 1, 0, 0]  # epoch 0 fills, epoch 1 refreshes
    from mmdrfuse.checkpoints import load_model

    m = load_model(str(tmp_path / "run" / "model.pt"))
    assert m.num_params() == 113
    # the official recipe starts the student's conv2 from the teacher's conv00 (then trains it)
    with pytest.raises(MMDRFuseError, match="--resume"):
        training.train(_cfg(), tmp_path / "run", **roots)


def test_smoke_teacher_runs(tmp_path, roots):
    cfg = _cfg("teacher", **{"optim.epochs": 1, "data.max_patches": 4, "data.patch_size": 16})
    res = training.train(cfg, tmp_path / "t", **roots)
    assert res.steps == 1 and (tmp_path / "t" / "model.pt").is_file()


def test_resume_equals_uninterrupted(tmp_path, roots):
    cfg = _cfg()
    full = training.train(cfg, tmp_path / "full", **roots)

    def stop_in_epoch_1(step, terms):
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training.train(cfg, tmp_path / "cut", on_step=stop_in_epoch_1, **roots)
    st = torch.load(tmp_path / "cut" / "state.pt", weights_only=False)
    assert st["epoch"] == 0
    resumed = training.train(cfg, tmp_path / "cut", resume=True, **roots)
    assert resumed.resumed_from == 1
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-7), k
    ra, rb = _rows(tmp_path / "full" / "log.csv"), _rows(tmp_path / "cut" / "log.csv")
    assert len(ra) == len(rb) == 4
    for x, y in zip(ra, rb):
        assert float(x["total"]) == pytest.approx(float(y["total"]), rel=1e-5)
    with pytest.raises(MMDRFuseError, match="different recipe"):
        training.train(_cfg(**{"optim.lr": 1e-3}), tmp_path / "cut", resume=True, **roots)


def test_nan_guard_keeps_last_good_checkpoint(tmp_path, roots, monkeypatch):
    real = losses.intensity_loss
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        v = real(*a, **k)
        return v * float("nan") if calls["n"] == 3 else v  # first step of epoch 1

    cfg = _cfg()
    monkeypatch.setattr(losses, "intensity_loss", flaky)
    with pytest.raises(training.TrainingDivergedError, match="non-finite at epoch 1 step 3.*kept"):
        training.train(cfg, tmp_path / "run", **roots)
    state = tmp_path / "run" / "state.pt"
    st = torch.load(state, weights_only=False)
    assert st["epoch"] == 0
    for v in st["model"].values():
        assert torch.isfinite(v).all()
    assert not (tmp_path / "run" / "model.pt").exists()
    assert len(_rows(tmp_path / "run" / "log.diverged.csv")) == 2


def test_ddp_two_processes(tmp_path, shared_data, shared_weights):
    env = {**os.environ, "MMDRFUSE_DATA": str(shared_data), "MMDRFUSE_WEIGHTS": str(shared_weights),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "mmdrfuse", "train", "student", "--config", "smoke", "--no-progress",
           "--out-dir", str(tmp_path / "ddp"), *sets]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tmp_path / "ddp"
    rows = _rows(run / "log.csv")
    assert len(rows) == 4  # 8 patches -> 4 per rank -> 2 local batches of 2 per epoch, 2 epochs
    b0 = np.load(run / "banks-rank0.npz")["s_filled"]
    b1 = np.load(run / "banks-rank1.npz")["s_filled"]
    assert b0[0::2].all() and not b0[1::2].any() and b1[1::2].all() and not b1[0::2].any()  # sharded by id
    from mmdrfuse.checkpoints import load_model

    assert load_model(str(run / "model.pt")).num_params() == 113
