"""Job keys name cached work (trained students, detectors, fused images): a refactor must not change them, or every
finished result is silently redone. The literals below were computed once with the code of commit d010d5a (branch
main, before the job runner mmdrfuse/jobs.py existed) by calling the functions named in each test on exactly these
inputs; the committed results under results/ are checked against the same functions."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ablations import common
from benchmarks.cache import FusedCache, MethodRun
from benchmarks.detection.jobs import job_key, plan_jobs

REPO = Path(__file__).resolve().parents[1]

# profile -> (row, seed) -> run folder relative to the ablation work folder: common.run_dir(env, row, seed,
# common.train_config(row, profile, seed)) at d010d5a (its profile `quick` was then named `smoke`, hence the folder)
ABLATION_RUNS = {
    "quick": {("full", 0): "smoke/full/seed0-61a96b039f85a258",
              ("wo_refresh", 0): "smoke/wo_refresh/seed0-983f03d1ed4350fd",
              ("width2", 0): "smoke/width2/seed0-6f46446a5ef2b76a"},
    # the cpu profile itself changed on purpose at 27df342 (issue 17: the calibrated recipe, 1,000 steps), which
    # gave its runs new keys; these literals are its keys from then (the runs of results/table1, table2)
    "cpu": {("full", 0): "cpu/full/seed0-457a873e05708f3f", ("full", 1): "cpu/full/seed1-40aa9c1a06ec7def",
            ("wo_refresh", 0): "cpu/wo_refresh/seed0-022c6d619e278967",
            ("wo_refresh", 1): "cpu/wo_refresh/seed1-b6b4da39965bdf58",
            ("width2", 0): "cpu/width2/seed0-a6d916380464beac", ("width2", 1): "cpu/width2/seed1-dfc364ce928b56b1"},
    "paper": {("full", 0): "paper/full/seed0-bc4b939e74633ec5", ("full", 1): "paper/full/seed1-8dff81613dc5a96a",
              ("wo_refresh", 0): "paper/wo_refresh/seed0-10410874fa9b6331",
              ("wo_refresh", 1): "paper/wo_refresh/seed1-9943ff0b6847b2af",
              ("width2", 0): "paper/width2/seed0-3ded6704de79c74f",
              ("width2", 1): "paper/width2/seed1-28625b83a51fae7a"},
}
# profile -> recipe hash of the full row, seed 0, with the demo's stand-in teacher "/x/random-teacher.pt"
DEMO_TEACHER_HASH = {"quick": "26767507ba293998", "cpu": "a4ebb4d32b061af9", "paper": "ddecd7d205b963f9"}


def _env(profile: common.Profile, work: Path) -> common.Env:
    return common.Env(profile=profile, data_root=Path("/d"), weights_root=Path("/w"), out_dir=Path("/o"),
                      work_dir=work)


@pytest.mark.parametrize("profile", sorted(ABLATION_RUNS))
def test_ablation_run_keys_unchanged(profile):
    prof = common.load_profile(profile)
    env = _env(prof, Path("/work"))
    for (key, seed), want in ABLATION_RUNS[profile].items():
        row = common.load_row(key)
        got = common.run_dir(env, row, seed, common.train_config(row, prof, seed))
        assert got.relative_to("/work").as_posix() == want
    row = common.load_row("full")
    assert common.train_config(row, prof, 0, "/x/random-teacher.pt").recipe_hash() == DEMO_TEACHER_HASH[profile]


@pytest.mark.parametrize("table", ["table1", "table2"])
def test_committed_ablation_runs_are_the_ones_reused(table):
    """Every run folder named in results/<table>.provenance.json is the folder the current code trains into (so a
    rerun with the same profile reuses those runs)."""
    prov = json.loads((REPO / "results" / f"{table}.provenance.json").read_text(encoding="utf-8"))
    prof = common.load_profile(prov["profile"], prov["seeds"])
    for info in prov["rows"].values():
        row = common.load_row(Path(info["config"]).stem)
        for folder in info["runs"]:
            folder = Path(folder)
            env = _env(prof, folder.parents[2])
            seed = int(folder.name.split("-")[0][len("seed"):])
            assert common.run_dir(env, row, seed, common.train_config(row, prof, seed)) == folder


def test_detection_key_formula_unchanged():
    # benchmarks.detection.jobs.job_key(config, inputs) at d010d5a on exactly these dicts
    assert job_key({"profile": {"a": 1, "b": [1, 2]}, "n_train": 3},
                   {"inputs": "abc", "weights": [None, "ff"]}) == "9d88c50924483599"


def test_committed_detection_results_are_the_ones_reused(shared_data, tmp_path):
    """The source rows' jobs (their images are the data set's own, so the key is computable here) key exactly as the
    committed result JSONs under results/detection/; literals as computed at d010d5a."""
    import benchmarks.detection as det

    want = {"cpu": {"IR-only.json": "a3c482a1a6238768", "IR-only.seed1.json": "b215c060a94484f6",
                    "visible-only.json": "a8edd529311cc04c", "visible-only.seed1.json": "5de2f058bdc14898"},
            "quick": {"IR-only.json": "599571ad83308a57", "visible-only.json": "cdbe235f0375e16b"}}
    cfg = det.load_config()
    for name, keys in want.items():
        prof = det.load_profile(name, seeds=[0, 1] if name == "cpu" else None)
        data = det.resolve_dataset("MSRS", shared_data, tmp_path / "labels", cfg)
        split = data.split.limited(prof.n_train, prof.n_test)
        jobs = plan_jobs({"IR-only": list(data.ir), "visible-only": list(data.vis)}, data.labels_dir, split, prof,
                         dataset="MSRS", res_dir=tmp_path / "r", work_dir=tmp_path / "w",
                         keep_class=data.person_class, yolo_sha256=None)
        assert {j.res_path.name: j.key for j in jobs} == keys
        for file, key in keys.items():
            committed = REPO / "results" / "detection" / "MSRS" / name / file
            assert json.loads(committed.read_text(encoding="utf-8"))["key"] == key


def test_fused_cache_folder_unchanged():
    # FusedCache("/c").folder(run, "MSRS") at d010d5a for this MethodRun
    run = MethodRun("MMDRFuse", "official", "0123456789abcdef", lambda: None, code="fedcba9876543210")
    assert FusedCache("/c").folder(run, "MSRS") == Path("/c/MMDRFuse/official-0123456789ab-cfedcba98/MSRS")


# ------------------------------------------------------------------------------------------ the job runner itself
def test_key_of_is_sha256_of_canonical_json():
    import hashlib

    from mmdrfuse import jobs

    cfg = {"b": [1, 2.5, None], "a": {"y": "x", "x": True}}
    want = hashlib.sha256(b'{"a": {"x": true, "y": "x"}, "b": [1, 2.5, null]}').hexdigest()
    assert jobs.key_of(cfg) == want[:16] and jobs.key_of(cfg, 64) == want
    assert jobs.key_of({"a": {"y": "x", "x": True}, "b": [1, 2.5, None]}) == want[:16]  # key order does not matter


def test_run_all_reuses_redoes_and_defers(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from mmdrfuse import jobs
    from mmdrfuse.errors import MMDRFuseError

    done = []

    def job(name, key, fail=False):
        def work():
            done.append(name)
            if fail:
                raise MMDRFuseError(f"{name} cannot run")
            if name == "B":  # meanwhile the other process gives C up
                os.unlink(tmp_path / "C.json.lock")
            return {"key": key, "name": name}
        return jobs.Job(tmp_path / f"{name}.json", work, jobs.has_key(key), tag=name)

    (tmp_path / "A.json").write_text(json.dumps({"key": "k1", "name": "A"}))   # finished earlier: reused
    (tmp_path / "B.json").write_text(json.dumps({"key": "old", "name": "B"}))  # another key: redone
    logs = []
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as other:
        (tmp_path / "C.json.lock").write_text(f"{socket.gethostname()} {other.pid}\n")
        try:
            out = jobs.run_all([job("A", "k1"), job("C", "k3"), job("B", "k2"), job("D", "k4", fail=True)],
                               log=logs.append, poll_s=0.01, catch=(MMDRFuseError,))
        finally:
            other.kill()
    assert done == ["B", "D", "C"]  # C (locked by a live process) last; A not redone
    assert [r["name"] for r in out[:3]] == ["A", "C", "B"] and isinstance(out[3], MMDRFuseError)
    assert json.loads((tmp_path / "B.json").read_text()) == {"key": "k2", "name": "B"}
    assert not (tmp_path / "D.json").exists() and not list(tmp_path.glob("*.lock"))
    assert any(f"process {other.pid}" in m for m in logs) and any("A: done earlier" in m for m in logs)


# ------------------------------------------------------------------------------------------ one profile vocabulary
def test_every_target_uses_the_harness_profile_names():
    """quick | cpu | paper name the profiles of Tables 3-5, Tables 1-2 and detection alike, and every ablation
    profile names an existing training config (the one place mapping a harness profile to one)."""
    from benchmarks import detection
    from benchmarks.run import load_profiles

    names = set(load_profiles())
    assert names == {"quick", "cpu", "paper"}
    assert set(detection.load_config()["profiles"]) == names
    assert set(config_profiles()) == names
    for name in names:  # the training config loads (an unknown one fails)
        prof = common.load_profile(name)
        assert common.train_config(common.load_row("full"), prof, 0).kind == "student", (name, prof.trainer)


def config_profiles() -> dict:
    import yaml

    return yaml.safe_load(common.PROFILES_FILE.read_text(encoding="utf-8"))
