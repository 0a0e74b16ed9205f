"""One ablation run (a row trained with one seed, then evaluated): the job of the ablation tables.

Work folder (``--work``, default ``<user cache>/mmdrfuse/ablations``), one folder per run::

    <work>/<profile>/<row>/seed<k>-<recipe hash>/
        train/        the trainer's run folder (config.yaml, state.pt, log.csv, model.pt, summary.json)
        fused/        the fused evaluation images (<stem>.png, per-image min-max to 8 bit)
        metrics.csv   per-image metrics
        result.json   the means: written last (atomically), so its presence marks a finished run (never retrained)
    <work>/<profile>/_official/   the authors' student on the same pairs (reference row)

``<profile>`` is the profile's stored name (:attr:`ablations.config.Profile.store`). The folder name carries the
recipe hash, so Table 1's ``full`` row and Table 2's 0.44 KB row are one run, and editing a row's YAML starts a new
run instead of reusing a stale one. Each run is a :class:`mmdrfuse.jobs.Job` (result ``result.json``, lock
``result.json.lock``): several processes can share one work folder, each run trained by one of them. An interrupted
training resumes from its last finished epoch (the trainer's ``--resume``), an interrupted evaluation from the last
fused image.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from ablations.config import Profile, Row, load_profile, load_row, train_config
from mmdrfuse import jobs, paths
from mmdrfuse.atomic import write_text
from mmdrfuse.errors import MMDRFuseError

if TYPE_CHECKING:
    from benchmarks.run import Context


@dataclass
class Env:
    """What a table run needs (built from the harness's ctx or from the command line)."""

    profile: Profile
    data_root: Path
    weights_root: Path
    out_dir: Path
    work_dir: Path
    device: str = "cpu"
    progress: bool = True
    command: str = ""
    evaluator: Callable | None = None  # evaluator(folder, pairs, metrics, progress=, desc=) -> DataFrame
    rows: tuple[str, ...] | None = None  # restrict to these row keys (None = the table's)
    log: Callable[[str], None] = field(default=lambda msg: print(msg, file=sys.stderr))
    teacher: str | None = None  # overrides every row's teacher (the demo's stand-in when the official one is missing)
    demo_notes: tuple[str, ...] = ()


def env_from_ctx(ctx: Context) -> Env:
    """The harness's Context (benchmarks.run) -> Env; the work folder sits beside the fused-image cache.

    On the synthetic demo set (``ctx.synthetic``; ``ctx.data_root`` then holds ``DEMO/``) the students train on the
    demo pairs and are evaluated on them, in a work folder of their own; without the official teacher, a randomly
    initialised teacher (seed 0) stands in, and the notes say so."""
    cache = ctx.cache
    work = ctx.work_dir or (Path(cache.root).parent / "ablations" if cache is not None
                            else paths.cache_dir() / "ablations")
    profile = load_profile(ctx.profile, ctx.seeds)
    teacher, notes = None, ()
    if ctx.synthetic:
        import dataclasses

        from mmdrfuse import demo

        profile = dataclasses.replace(profile, dataset="DEMO", train={
            **profile.train, "data.root": demo.FOLDER, "data.ir": "ir", "data.vis": "vi"})
        work = Path(work) / "demo"
        notes = (f"DEMO: the students were trained on the synthetic demo pairs ({demo.FOLDER}/) and evaluated on them",)
        teacher = demo_teacher(Path(work), Path(ctx.weights_root))
        if teacher:
            notes += (f"DEMO: official-teacher not found under {ctx.weights_root}: a randomly initialised teacher "
                      "(seed 0) stood in for it",)
    return Env(profile=profile, data_root=Path(ctx.data_root),
               weights_root=Path(ctx.weights_root),
               out_dir=Path(ctx.out_dir), work_dir=Path(work), device=ctx.device,
               progress=ctx.progress, command=ctx.command, evaluator=ctx.evaluator, log=ctx.say,
               teacher=teacher, demo_notes=notes)


def demo_teacher(work: Path, weights_root: Path) -> str | None:
    """None when the official teacher is here; else the path of a seeded random teacher (written once)."""
    from mmdrfuse.checkpoints import resolve

    try:
        resolve("official-teacher", weights_root)
        return None
    except MMDRFuseError:
        pass
    path = work / "random-teacher.pt"
    if not path.is_file():
        import torch

        from mmdrfuse.checkpoints import save_checkpoint
        from mmdrfuse.models import Teacher

        with torch.random.fork_rng():
            torch.manual_seed(0)
            save_checkpoint(path, Teacher(), {"note": "random initialisation (seed 0): demo stand-in teacher"})
    return str(path)


# --------------------------------------------------------------------------------------------------- one run
def run_dir(env: Env, row: Row, seed: int, cfg) -> Path:
    """The run's folder, named by its key: the profile's stored name, the row, the seed and the recipe hash of its
    TrainConfig (tests/test_jobs.py pins them)."""
    return env.work_dir / env.profile.store / row.key / f"seed{seed}-{cfg.recipe_hash()}"


def _pairs(env: Env):
    from benchmarks.cache import FusedCache
    from mmdrfuse import data

    loc = data.locate(env.profile.dataset, env.data_root)
    return loc, FusedCache.select(loc, env.profile.max_pairs)


def _fuse(model, pairs, folder: Path, progress: bool, desc: str) -> float:
    """Fuse ``pairs`` with ``model`` into ``folder/<stem>.png`` (per-image min-max to 8 bit); skips done images."""
    from mmdrfuse.folders import fuse_pairs
    from mmdrfuse.fusion import MMDRFuseMethod

    return fuse_pairs(list(pairs), folder, MMDRFuseMethod(model, save="minmax"), progress=progress, desc=desc).seconds


def _evaluate(env: Env, folder: Path, pairs, out_csv: Path, desc: str):
    """Per-image metrics of the fused images in ``folder`` (cached in ``out_csv``); returns the DataFrame."""
    import pandas as pd

    metrics = list(env.profile.metrics)
    stems = [p.stem for p in pairs]
    if out_csv.is_file():
        have = pd.read_csv(out_csv, dtype={"stem": str})
        if all(m in have.columns for m in metrics) and set(stems) <= set(have["stem"]):
            return have.set_index("stem").loc[stems].reset_index()[["stem", *metrics]]
    if env.evaluator is not None:
        ev = env.evaluator
    else:
        from benchmarks.cache import default_evaluator as ev
    df = ev(folder, list(pairs), metrics, progress=env.progress, desc=desc)
    df["stem"] = df["stem"].astype(str)
    write_text(out_csv, df.to_csv(index=False, float_format=lambda v: repr(float(v)), lineterminator="\n"))
    return df[["stem", *metrics]]


def _means(df, metrics) -> dict[str, float]:
    return {m: float(np.mean(df[m].to_numpy(dtype=float))) for m in metrics}


def _stems_hash(pairs) -> str:
    return hashlib.sha256("\n".join(p.stem for p in pairs).encode()).hexdigest()[:16]


def check_trainable(row: Row, cfg) -> None:
    """Fail early, in one line, when the trainer cannot train this row's student (before any data is loaded).

    The trainer computes the distillation term for every student (even at weight 0), so the loss must accept the
    student's hidden width next to the teacher's 4-channel map.
    """
    import torch

    from mmdrfuse import losses

    h = int(cfg.model.hidden)
    feat, out = torch.rand(1, h, 4, 4), torch.rand(1, 1, 4, 4)
    try:
        losses.distillation_loss(feat, torch.rand(1, 4, 4, 4), out, torch.rand(1, 1, 4, 4), mode=cfg.loss.distill_mode)
    except ValueError as exc:
        raise MMDRFuseError(f"row {row.key}: the trainer cannot distill a student of hidden width {h} from the 4-channel "
                            f"teacher yet (mmdrfuse.losses.distillation_loss: {exc}); see docs/ablations.md") from None


def row_job(env: Env, row: Row, seed: int) -> jobs.Job:
    """The job of one (row, seed): its result is ``<run folder>/result.json``, reused whenever present."""
    cfg = train_config(row, env.profile, seed, env.teacher)
    folder = run_dir(env, row, seed, cfg)
    return jobs.Job(folder / "result.json", lambda: train_and_evaluate(env, row, seed, cfg, folder),
                    tag=f"{row.key} seed {seed}")


def run_one(env: Env, row: Row, seed: int) -> dict:
    """Train (or resume) and evaluate one (row, seed); returns its result dict (read back if already finished)."""
    return jobs.run(row_job(env, row, seed), log=env.log)


def run_rows(env: Env, keys: Sequence[str], full: str) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """({row: [result per seed]}, {row: why not run}) for the rows ``keys`` and the profile's seeds. Every run is
    independent: a row that cannot run is reported and the others still run (first those no other process is
    doing, then the rest, :func:`mmdrfuse.jobs.run_all`); the ``full`` row must run. A row the profile skips
    (``skip:`` in profiles.yaml) is reported with the profile's reason, unless ``env.rows`` names it."""
    not_run = {k: f"not run by the '{env.profile.name}' profile: {env.profile.skip[k]}" for k in keys
               if k in env.profile.skip and k != full and not (env.rows and k in env.rows)}
    todo = [(key, seed) for key in keys if key not in not_run for seed in env.profile.seeds]
    loaded = {key: load_row(key) for key, _ in todo}
    out = jobs.run_all([row_job(env, loaded[k], s) for k, s in todo], log=env.log, catch=(MMDRFuseError,))
    results: dict[str, list[dict]] = {}
    for (key, _), res in zip(todo, out):
        if isinstance(res, MMDRFuseError):
            if key == full:
                raise res
            not_run.setdefault(key, str(res))
        else:
            results.setdefault(key, []).append(res)
    return {k: v for k, v in results.items() if k not in not_run}, not_run


def train_and_evaluate(env: Env, row: Row, seed: int, cfg, folder: Path) -> dict:
    """The work of a row job: train (or resume) the student into ``folder/train``, fuse and evaluate; returns the
    result (written by the job runner)."""
    import mmdrfuse.train as training
    from mmdrfuse.checkpoints import load_model, sha256_state_dict

    check_trainable(row, cfg)
    loc, pairs = _pairs(env)
    tdir = folder / "train"
    t0 = time.perf_counter()
    if (tdir / "summary.json").is_file() and (tdir / "model.pt").is_file():
        model = load_model(tdir / "model.pt")
        env.log(f"{row.key} seed {seed}: trained earlier, evaluating")
    else:
        env.log(f"{row.key} seed {seed}: training ({env.profile.name} profile) in {tdir}")
        model = training.train(cfg, tdir, resume=True, data_root=str(env.data_root),
                               weights_root=str(env.weights_root), device=env.device, progress=env.progress).model
    train_s = time.perf_counter() - t0
    model = model.to("cpu").eval()
    t1 = time.perf_counter()
    _fuse(model, pairs, folder / "fused", env.progress, f"fuse {row.key} s{seed}")
    df = _evaluate(env, folder / "fused", pairs, folder / "metrics.csv", f"metrics {row.key} s{seed}")
    summary = json.loads((tdir / "summary.json").read_text(encoding="utf-8"))
    return {
        "row": row.key, "seed": seed, "profile": env.profile.store, "recipe_hash": cfg.recipe_hash(),
        "ablates": list(row.ablates), "config": cfg.to_dict(), "dataset": loc.name, "n_pairs": len(df),
        "pairs_sha": _stems_hash(pairs), "metrics": _means(df, env.profile.metrics),
        "params": int(sum(p.numel() for p in model.parameters())), "size_kb": model.size_kb(),
        "weights_sha256": sha256_state_dict(model.state_dict()), "perceptual_backbone": summary.get("perceptual_backbone"),
        "train_patches": summary.get("patches"), "train_steps": summary.get("steps"),
        "train_seconds_this_call": round(train_s, 1), "eval_seconds": round(time.perf_counter() - t1, 1),
        "last_epoch_losses": summary.get("last_epoch_mean"), "run_dir": str(folder),
    }


class OfficialMissing(MMDRFuseError):
    """The authors' student is not under the weights root: no reference row."""


def run_official(env: Env) -> dict | None:
    """The authors' published student on the same pairs (reference row; None when the weights are missing)."""
    folder = env.work_dir / env.profile.store / "_official"
    loc, pairs = _pairs(env)
    sha = _stems_hash(pairs)

    def work() -> dict:
        from mmdrfuse.checkpoints import load_model

        try:
            model, info = load_model("official-student", weights_root=env.weights_root, with_info=True)
        except MMDRFuseError as exc:
            raise OfficialMissing(str(exc)) from None
        _fuse(model, pairs, folder / "fused", env.progress, "fuse official")
        df = _evaluate(env, folder / "fused", pairs, folder / "metrics.csv", "metrics official")
        return {"row": "_official", "dataset": loc.name, "n_pairs": len(df), "pairs_sha": sha,
                "metrics": _means(df, env.profile.metrics), "weights_sha256": info.get("weights_sha256")}

    def check(res: dict) -> bool:  # made on these pairs, with every metric of the profile
        return res.get("pairs_sha") == sha and set(env.profile.metrics) <= set(res.get("metrics", {}))

    try:
        return jobs.run(jobs.Job(folder / "result.json", work, check, tag="official student"), log=env.log)
    except OfficialMissing as exc:
        env.log(f"official student unavailable, no reference row: {exc}")
        return None
