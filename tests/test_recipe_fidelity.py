"""The recipe diagnosis (benchmarks.recipe_fidelity): per-term gradients agree with the training step's, the
stationarity fit recovers known weights, distances ignore hidden-channel order, one factor run end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import mmdrfuse.train as training
from mmdrfuse.models import Student
from mmdrfuse.train import Trainer, patch_set
from mmdrfuse.train.state import load_teacher
from mmdrfuse.vgg import load_vgg

from benchmarks.recipe_fidelity import gradients, report, runs

TINY = {"vgg.random_init": True, "data.patch_size": 32, "data.max_patches": 8, "data.max_images": 2,
        "optim.batch_size": 4, "optim.epochs": 2, "loss.refresh": False}


def _student(seed: int) -> Student:
    torch.manual_seed(seed)
    return Student()


@pytest.fixture(scope="module")
def trainer(shared_data, shared_weights):
    cfg = training.load_config("smoke", "student", TINY)
    _, patches = patch_set(cfg, str(shared_data), progress=False)
    teacher, _ = load_teacher(cfg.teacher, str(shared_weights), torch.device("cpu"))
    return Trainer(cfg, _student(0), load_vgg(random_init=True), patches, teacher, None, torch.device("cpu"))


def test_term_gradients_add_up_to_the_training_gradient(trainer):
    """sum_k w_k g_k over the patches == the gradient the training step backpropagates, batch by batch."""
    model = _student(3)
    st = gradients.term_stats(trainer, model, batch_size=4)
    assert set(st.grads) == {"int", "grad", "per", "dis"} and st.weights["dis"] == 5.0
    expected = 0
    for start in (0, 4):
        model.zero_grad()
        out = trainer.step(np.arange(start, start + 4), epoch=0)
        out.total.backward()
        expected = expected + torch.cat([p.grad.reshape(-1) for p in model.parameters()]).double().numpy() / 2
    np.testing.assert_allclose(st.weighted_grad(), expected, rtol=1e-4, atol=1e-7)
    assert st.weighted_grad().shape == (113,)


def test_stationarity_fit_recovers_weights_and_reports_residual():
    rng = np.random.default_rng(0)
    g_int, g_per = rng.normal(size=113), rng.normal(size=113)
    balanced = gradients.TermStats({}, {"int": g_int, "grad": rng.normal(size=113) * 0, "per": g_per,
                                        "dis": -(0.3 * g_int + 2.0 * g_per) / 5.0}, {"dis": 5.0, "int": 1, "per": 2,
                                                                                    "grad": 0.1})
    fit = gradients.stationarity_fit(balanced)
    assert fit["fit_residual"] < 1e-9
    assert fit["fit_weights"]["int"] == pytest.approx(0.3) and fit["fit_weights"]["per"] == pytest.approx(2.0)
    # a distillation gradient orthogonal to every other term: nothing cancels it
    d = np.zeros(113)
    d[0] = 1.0
    g = np.zeros(113)
    g[1] = 1.0
    lone = gradients.TermStats({}, {"int": g, "grad": g, "per": g, "dis": d}, {"dis": 5.0, "int": 1, "per": 2, "grad": 0})
    assert gradients.stationarity_fit(lone)["fit_residual"] == pytest.approx(1.0)


def test_param_distance_ignores_the_order_of_hidden_channels():
    a, b = _student(0), _student(1)
    c = _student(0)
    perm = torch.tensor([2, 0, 3, 1])
    with torch.no_grad():
        c.conv1[1].weight.copy_(a.conv1[1].weight[perm])
        c.conv1[1].bias.copy_(a.conv1[1].bias[perm])
        c.conv2[1].weight.copy_(a.conv2[1].weight[:, perm])
    x = torch.rand(1, 2, 16, 16)
    torch.testing.assert_close(a(x), c(x))  # the same function
    assert runs.param_distance(a, c) == pytest.approx(0.0, abs=1e-12)
    plain = float(torch.cat([(p - q).detach().reshape(-1) for p, q in zip(a.parameters(), b.parameters())]).norm())
    assert 0 < runs.param_distance(a, b) <= plain + 1e-9


def test_one_factor_run_end_to_end(tmp_path, shared_data, shared_weights, monkeypatch):
    """A tiny base run: trained, fused and scored on two MSRS pairs, measured against a reference, reported."""
    import shutil

    small = tmp_path / "data"
    for sub in ("ir", "vi"):
        (small / "test" / sub).mkdir(parents=True)
        for stem in ("00004N", "00008N"):
            shutil.copy(shared_data / "MSRS" / "test" / sub / f"{stem}.png", small / "test" / sub)
    monkeypatch.setattr(runs, "DATASETS", {"MSRS": (small / "test" / "ir", small / "test" / "vi")})
    base = dict(TINY, **{"data.root": str(shared_data / "LLVIP" / "train_samples")})
    reference = _student(7).eval()
    ref_scores = runs.fuse_and_score(reference, tmp_path / "ref", shared_data, str(shared_weights))
    job, = runs.factor_jobs("smoke", base, ["base"], tmp_path / "work", reference, tmp_path / "ref", shared_data,
                            str(shared_weights))
    from mmdrfuse import jobs

    result = jobs.run(job)
    assert result["steps"] == 4 and result["param_distance"] > 0 and result["patch_distance"] > 0
    assert 0 < result["image_distance_MSRS"] < 255 and set(result["MSRS"]) == set(runs.PAPER_METRICS)
    assert jobs.run(job) == result  # reused, not retrained
    report.write_factors([result], ref_scores, tmp_path / "out", base="smoke", budget=base)
    page = (tmp_path / "out" / report.PAGE).read_text()
    assert "| base |" in page and "| reference |" in page


def test_target_rules_follow_the_issue(tmp_path):
    """VIF/Qabf/SSIM: at least 97% of the authors' student's; SD/CC: within 3% either way."""
    from benchmarks.recipe_fidelity import target

    ref = {"MSRS": {"SD": 40.0, "SCD": 1.6, "VIF": 0.9, "Qabf": 0.6, "SSIM": 1.0, "CC": 0.6}}
    ours = {"MSRS": {"SD": 41.3, "SCD": 1.0, "VIF": 0.873, "Qabf": 0.581, "SSIM": 1.2, "CC": 0.58}}
    rows = {r["metric"]: r for r in target.target_rows(ours, ref, "mine")}
    assert set(rows) == {"SD", "VIF", "Qabf", "SSIM", "CC"}  # SCD has no target
    assert rows["VIF"]["pass"] and rows["VIF"]["ratio"] == pytest.approx(0.97)
    assert not rows["Qabf"]["pass"]  # 96.8%
    assert rows["SSIM"]["pass"]  # more is fine
    assert not rows["SD"]["pass"]  # +3.25%
    assert not rows["CC"]["pass"]  # -3.3%
    target.write_target(list(rows.values()), tmp_path, "mine")
    md = (tmp_path / "mine_target.md").read_text()
    assert "| MSRS | VIF | 0.8730 | 0.9000 | 0.970 | at least 97% | yes |" in md and "2 of 5 met." in md
