"""Trainer: profiles, patches, an end-to-end smoke run, resume == uninterrupted, the NaN guard, 2-process DDP."""
from __future__ import annotations

import csv
import math
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
from mmdrfuse.images import match_stems, read_gray
from mmdrfuse.patches import PatchConfig, PatchSet, build_patches, epoch_order, shard_ids
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
    with pytest.raises(MMDRFuseError, match="speed.step must be one of"):
        training.load_config("smoke", "student", {"speed.step": "turbo"})


def test_recipe_hash_ignores_speed_settings():
    a, b = _cfg(), _cfg(**{"speed.feature_cache_mb": 0, "bank.memory_mb": 1, "speed.step": "reference",
                           "speed.tap_cache_mb": 0})
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


def test_patches_refuse_mismatched_and_small_pairs(tmp_path):
    from PIL import Image

    from mmdrfuse.errors import BadInputError

    for sub, size in (("ir", (40, 30)), ("vi", (40, 32))):
        (tmp_path / sub).mkdir()
        Image.new("L", size, 128).save(tmp_path / sub / "a.png")
    with pytest.raises(BadInputError, match="differs from"):
        build_patches(tmp_path / "ir", tmp_path / "vi", PatchConfig(size=16), progress=False)
    with pytest.raises(BadInputError, match="smaller than the 64x64 patch size"):
        build_patches(tmp_path / "ir", tmp_path / "ir", PatchConfig(size=64), progress=False)


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


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_resume_equals_uninterrupted(tmp_path, roots, schedule):
    cfg = _cfg(**{"optim.schedule": schedule})
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
        training.train(_cfg(**{"optim.lr": 1e-3, "optim.schedule": schedule}), tmp_path / "cut", resume=True, **roots)


def test_cosine_schedule_sets_the_learning_rate_of_every_step(tmp_path, roots, monkeypatch):
    seen = []
    real = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return real(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    training.train(_cfg(**{"optim.schedule": "cosine", "optim.lr": 1e-3}), tmp_path / "run", **roots)
    assert seen == pytest.approx([1e-3 * 0.5 * (1 + math.cos(math.pi * t / 4)) for t in range(4)])
    # the default recipe hash is unchanged by the new key (older run folders still resume)
    assert training.load_config("official", "student").recipe_hash() == "518f28ee3fd2506f"  # as before optim.schedule
    with pytest.raises(MMDRFuseError, match="did you mean 'cosine'"):
        training.load_config("smoke", "student", {"optim.schedule": "cosin"})


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


# ------------------------------------------------------------------------------ fast step == reference step
class _Float64Patches(PatchSet):
    def batch(self, ids, device="cpu"):
        return tuple(t.double() for t in super().batch(ids, device))


def _three_trainers(shared_data, shared_weights):
    """The reference step (fp32), the fast step (fp32) and the reference step in float64 (the value both round), on
    one network, one set of patches and identical banks; a random VGG-19 in the Caffe convention (so the fast step's
    folded feature gain is exercised)."""
    import copy

    from mmdrfuse.refresh import DynamicRefresh
    from mmdrfuse.train.state import load_teacher
    from mmdrfuse.vgg import VGGFeatures, _build_layers

    folder = shared_data / "LLVIP" / "train_samples"
    patches = build_patches(folder / "ir", folder / "vi", PatchConfig(size=32, max_images=2, max_patches=8),
                            progress=False)
    torch.manual_seed(3)
    vgg = VGGFeatures("caffe", _build_layers().state_dict(), "test")
    teacher = load_teacher("official-teacher", str(shared_weights), torch.device("cpu"))[0]
    made = {}
    for name, step in (("reference", "reference"), ("fast", "fast"), ("float64", "reference")):
        cfg = _cfg(**{"speed.step": step})
        model = training.build_model(cfg, teacher)
        refresh = DynamicRefresh(len(patches), (1, 32, 32), "float16", None, None, cfg.loss.refresh_gain,
                                 cfg.loss.ssim_range, 2**26 if step == "fast" else 0)
        net_vgg, net_teacher, ps = vgg, teacher, patches
        if name == "float64":
            model, net_vgg, net_teacher = model.double(), copy.deepcopy(vgg).double(), copy.deepcopy(teacher).double()
            ps = _Float64Patches(patches.data, patches.origin)
            for bank in (refresh.bank_s, refresh.bank_g):
                bank._decode = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
        tr = training.Trainer(cfg, model, net_vgg, ps, net_teacher, refresh, torch.device("cpu"))
        tr.net = training.FeatureNet(model)
        made[name] = tr
    return made, patches


def _grads(model) -> torch.Tensor:
    return torch.cat([p.grad.double().flatten() for p in model.parameters()])


def test_fast_step_equals_reference_step(shared_data, shared_weights):
    """From the same state, every loss term and refresh scalar of the fast step is within 1e-5 (relative) of the
    reference step's, the refresh decisions agree, and its gradient is as close to the float64 gradient as the
    reference's (at most twice as far): float32 rounding alone puts 1e-6..1e-5 relative error into the reference's
    gradient here, while the two float32 steps differ by ~1e-7. Covers steps with refresh terms, rewritten slots, and
    partial hits of the target, teacher and tap caches."""
    trs, patches = _three_trainers(shared_data, shared_weights)
    ref, fast, f64 = trs["reference"], trs["fast"], trs["float64"]
    for tr in trs.values():  # epoch 0 fills the banks
        for ids in ([0, 1, 2, 3], [4, 5, 6, 7]):
            tr.step(np.array(ids), 0)
    ir, vis = patches.batch(np.arange(8))
    noise = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(7))
    stored = torch.cat([0.5 * (ir[:4] + vis[:4]), noise])  # 0-3 better than the network's outputs, 4-7 worse
    for tr in trs.values():
        st = tr.refresh.state()
        for key in ("s", "g"):
            st[key]["data"][:] = stored.numpy().astype(np.float16)
        tr.refresh.load_state(st)
    schedule = [([0, 1, 2, 3], 1), ([4, 5, 6, 7], 1), ([2, 3, 4, 5], 1), ([0, 1, 2, 3], 2), ([6, 7, 0, 1], 2)]
    threads = torch.get_num_threads()
    active = updated = 0
    for ids, epoch in schedule:
        out = {}
        for name, tr in trs.items():
            tr.model.zero_grad(set_to_none=True)
            res = tr.step(np.array(ids), epoch)
            tr.backward(res)
            out[name] = res
        a, b = out["reference"], out["fast"]
        assert a.terms.keys() == b.terms.keys()
        for k in a.terms:
            assert abs(a.terms[k] - b.terms[k]) <= 1e-5 * abs(a.terms[k]) + 1e-12, (ids, k, a.terms[k], b.terms[k])
        ra, rb, r64 = a.refresh, b.refresh, out["float64"].refresh
        assert (ra.filled, ra.updated_s, ra.updated_g) == (rb.filled, rb.updated_s, rb.updated_g) \
            == (r64.filled, r64.updated_s, r64.updated_g)
        for k in ("s_cur", "s_bs", "g_cur", "g_bg", "loss_s", "loss_g"):
            x, y = getattr(ra, k), getattr(rb, k)
            assert (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-5 * abs(x) + 1e-12, (ids, k, x, y)
        active += int(a.terms["ref"] != 0)
        updated += int(ra.updated_s or ra.updated_g)
        g_ref, g_fast, g64 = _grads(ref.model), _grads(fast.model), _grads(f64.model)
        err_ref, err_fast = (g_ref - g64).norm(), (g_fast - g64).norm()
        assert err_fast <= 2 * err_ref + 1e-6 * g64.norm(), (ids, float(err_fast), float(err_ref), float(g64.norm()))
        with torch.no_grad():  # one SGD step, the same for all three: the next step starts from one state again
            for p_ref, p_fast, p64 in zip(ref.model.parameters(), fast.model.parameters(), f64.model.parameters()):
                p_ref -= 0.05 * p_ref.grad
                p_fast.copy_(p_ref)
                p64.copy_(p_ref)
        f64.refresh.load_state(ref.refresh.state())  # float64 keeps the reference's stored outputs
    assert active >= 3 and updated >= 1
    assert torch.get_num_threads() == threads  # the fast step's one-thread scope is undone after step and backward
    assert fast.refresh.taps_s.hits > 0 and fast.refresh.taps_g.hits > 0  # the tap cache was used
    assert fast.feat_cache.hits > 0 and fast.teacher_cache.hits > 0
