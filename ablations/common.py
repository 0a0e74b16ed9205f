"""Shared runner of the ablation tables: train every (row, seed), evaluate it on MSRS, report mean and std.

A *row* is a small YAML file in ``ablations/configs/`` (``full.yaml`` and one file per ablation) holding the recipe
keys of :class:`mmdrfuse.train.TrainConfig` (teacher, loss.*, model.*) and the list of keys it ``ablates``; a
*profile* (``configs/profiles.yaml``: smoke | cpu | paper) says how every row is trained (a trainer profile plus
data/optim/speed overrides, never a recipe key) and evaluated (data set, number of pairs, seeds).

Work folder (``--work``, default ``<user cache>/mmdrfuse/ablations``), one folder per run::

    <work>/<profile>/<row>/seed<k>-<recipe hash>/
        train/        the trainer's run folder (config.yaml, state.pt, log.csv, model.pt, summary.json)
        fused/        the fused evaluation images (<stem>.png, per-image min-max to 8 bit)
        metrics.csv   per-image metrics
        result.json   the means: written last, so its presence marks a finished run (never retrained)
    <work>/<profile>/_official/   the authors' student on the same pairs (reference row)

The folder name carries the recipe hash, so Table 1's ``full`` row and Table 2's 0.44 KB row are one run, and
editing a row's YAML starts a new run instead of reusing a stale one. An interrupted training resumes from its last
finished epoch (the trainer's ``--resume``), an interrupted evaluation from the last fused image.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import yaml

from mmdrfuse import paths
from mmdrfuse.atomic import write_json, write_text
from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.names import unknown

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PROFILES_FILE = CONFIG_DIR / "profiles.yaml"
RECIPE_SECTIONS = ("teacher", "loss", "model")  # the TrainConfig keys a row may set (and a profile may not)
HARNESS_PROFILES = {"quick": "smoke"}  # benchmarks.run profile -> ablation profile
METRICS = ("SD", "VIF", "Qabf", "SSIM")  # the columns of Tables 1 and 2


# --------------------------------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class Row:
    """One configuration of an ablation table."""

    key: str  # file stem in configs/, e.g. "wo_intensity"
    ablates: tuple[str, ...]  # dotted recipe keys that differ from full.yaml
    recipe: dict  # nested TrainConfig overrides (teacher, loss, model)
    description: str  # the YAML's leading comment
    path: Path


@dataclass(frozen=True)
class Profile:
    """How every row is trained and evaluated."""

    name: str
    base: str  # trainer profile (mmdrfuse/configs/train_<base>_student.yaml)
    train: dict  # dotted overrides of data/optim/bank/speed/vgg
    seeds: tuple[int, ...]
    dataset: str = "MSRS"
    max_pairs: int | None = None
    metrics: tuple[str, ...] = METRICS


def _yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise MMDRFuseError(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None


def row_keys() -> list[str]:
    """Every row file in configs/ (all YAML files but profiles.yaml)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.name != PROFILES_FILE.name)


def load_row(key: str) -> Row:
    """The row ``configs/<key>.yaml``; unknown keys fail with a did-you-mean."""
    path = CONFIG_DIR / f"{key}.yaml"
    if not path.is_file():
        raise unknown("ablation row", key, row_keys())
    raw = _yaml(path)
    bad = sorted(set(raw) - {"ablates", "recipe"})
    if bad:
        raise MMDRFuseError(f"{path}: unknown key(s) {bad}; a row has only 'ablates' and 'recipe'")
    recipe = raw.get("recipe") or {}
    extra = sorted(set(recipe) - set(RECIPE_SECTIONS))
    if extra:
        raise MMDRFuseError(f"{path}: recipe key(s) {extra} are not recipe keys ({', '.join(RECIPE_SECTIONS)}); "
                            "data/optim/speed settings belong in profiles.yaml")
    lines = path.read_text(encoding="utf-8").splitlines()
    desc = []
    for ln in lines:
        if not ln.startswith("#"):
            break
        desc.append(ln.lstrip("# ").rstrip())
    return Row(key, tuple(raw.get("ablates") or ()), recipe, " ".join(d for d in desc if d), path)


def load_profile(name: str, seeds: Sequence[int] | None = None) -> Profile:
    """A profile of profiles.yaml (``quick`` means ``smoke``), optionally with other seeds."""
    name = HARNESS_PROFILES.get(name, name)
    raw = _yaml(PROFILES_FILE)
    if name not in raw:
        raise MMDRFuseError(f"unknown ablation profile {name!r}; known: {', '.join(raw)} (and quick = smoke)")
    p = dict(raw[name])
    train = dict(p.get("train") or {})
    touched = sorted(k for k in train if k.split(".")[0] in RECIPE_SECTIONS)
    if touched:
        raise MMDRFuseError(f"{PROFILES_FILE}: profile {name!r} sets recipe key(s) {touched}; only rows may")
    return Profile(name=name, base=str(p["base"]), train=train,
                   seeds=tuple(int(s) for s in (seeds if seeds else p.get("seeds", [0]))),
                   dataset=str(p.get("dataset", "MSRS")), max_pairs=p.get("max_pairs"),
                   metrics=tuple(p.get("metrics") or METRICS))


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """{"loss": {"intensity": 0}} -> {"loss.intensity": 0}."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def train_config(row: Row, profile: Profile, seed: int, teacher: str | None = None):
    """The :class:`~mmdrfuse.train.TrainConfig` of one run: trainer profile < profile overrides < row recipe
    (< ``teacher``: the demo's stand-in teacher, see :func:`env_from_ctx`)."""
    import mmdrfuse.train as training

    overrides = {**profile.train, **flatten(row.recipe), "seed": int(seed), "profile": f"ablation-{profile.name}"}
    if teacher:
        overrides["teacher"] = str(teacher)
    return training.load_config(profile.base, "student", overrides)


# ------------------------------------------------------------------------------------------------ environment
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


def env_from_ctx(ctx) -> Env:
    """The harness's Context (benchmarks.run) -> Env; the work folder sits beside the fused-image cache.

    On the synthetic demo set (``ctx.synthetic``; ``ctx.data_root`` then holds ``DEMO/``) the students train on the
    demo pairs and are evaluated on them, in a work folder of their own; without the official teacher, a randomly
    initialised teacher (seed 0) stands in, and the notes say so."""
    cache = getattr(ctx, "cache", None)
    work = getattr(ctx, "work_dir", None) or (Path(cache.root).parent / "ablations" if cache is not None
                                              else paths.cache_dir() / "ablations")
    say = getattr(ctx, "say", None)
    profile = load_profile(ctx.profile, getattr(ctx, "seeds", None))
    teacher, notes = None, ()
    if getattr(ctx, "synthetic", False):
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
               out_dir=Path(ctx.out_dir), work_dir=Path(work), device=getattr(ctx, "device", "cpu"),
               progress=getattr(ctx, "progress", True), command=getattr(ctx, "command", "") or "",
               evaluator=getattr(ctx, "evaluator", None), log=say or (lambda m: print(m, file=sys.stderr)),
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
    return env.work_dir / env.profile.name / row.key / f"seed{seed}-{cfg.recipe_hash()}"


def _pairs(env: Env):
    from benchmarks.cache import FusedCache
    from mmdrfuse import data

    loc = data.locate(env.profile.dataset, env.data_root)
    return loc, FusedCache.select(loc, env.profile.max_pairs)


def _fuse(model, pairs, folder: Path, progress: bool, desc: str) -> float:
    """Fuse ``pairs`` with ``model`` into ``folder/<stem>.png`` (per-image min-max to 8 bit); skips done images."""
    from mmdrfuse.fusion import MMDRFuseMethod, fuse_pairs

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


def run_one(env: Env, row: Row, seed: int) -> dict:
    """Train (or resume) and evaluate one (row, seed); returns its result dict (read back if already finished)."""
    import mmdrfuse.train as training
    from mmdrfuse.checkpoints import load_model, sha256_state_dict

    cfg = train_config(row, env.profile, seed, env.teacher)
    folder = run_dir(env, row, seed, cfg)
    result_path = folder / "result.json"
    if result_path.is_file():
        res = json.loads(result_path.read_text(encoding="utf-8"))
        env.log(f"{row.key} seed {seed}: finished earlier, not retrained ({result_path})")
        return res
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
    res = {
        "row": row.key, "seed": seed, "profile": env.profile.name, "recipe_hash": cfg.recipe_hash(),
        "ablates": list(row.ablates), "config": cfg.to_dict(), "dataset": loc.name, "n_pairs": len(df),
        "pairs_sha": _stems_hash(pairs), "metrics": _means(df, env.profile.metrics),
        "params": int(sum(p.numel() for p in model.parameters())), "size_kb": model.size_kb(),
        "weights_sha256": sha256_state_dict(model.state_dict()), "perceptual_backbone": summary.get("perceptual_backbone"),
        "train_patches": summary.get("patches"), "train_steps": summary.get("steps"),
        "train_seconds_this_call": round(train_s, 1), "eval_seconds": round(time.perf_counter() - t1, 1),
        "last_epoch_losses": summary.get("last_epoch_mean"), "run_dir": str(folder),
    }
    write_json(result_path, res)
    return res


def run_official(env: Env) -> dict | None:
    """The authors' published student on the same pairs (reference row; None when the weights are missing)."""
    from mmdrfuse.checkpoints import load_model

    folder = env.work_dir / env.profile.name / "_official"
    loc, pairs = _pairs(env)
    sha = _stems_hash(pairs)
    result_path = folder / "result.json"
    if result_path.is_file():
        res = json.loads(result_path.read_text(encoding="utf-8"))
        if res.get("pairs_sha") == sha and set(env.profile.metrics) <= set(res.get("metrics", {})):
            return res
    try:
        model, info = load_model("official-student", weights_root=env.weights_root, with_info=True)
    except MMDRFuseError as exc:
        env.log(f"official student unavailable, no reference row: {exc}")
        return None
    _fuse(model, pairs, folder / "fused", env.progress, "fuse official")
    df = _evaluate(env, folder / "fused", pairs, folder / "metrics.csv", "metrics official")
    res = {"row": "_official", "dataset": loc.name, "n_pairs": len(df), "pairs_sha": sha,
           "metrics": _means(df, env.profile.metrics), "weights_sha256": info.get("weights_sha256")}
    write_json(result_path, res)
    return res


# ------------------------------------------------------------------------------------------------ statistics
def seed_stats(results: Sequence[dict], metrics: Sequence[str]) -> dict[str, tuple[float, float]]:
    """metric -> (mean, sample std with ddof=1; NaN for a single seed) over the seeds' mean values."""
    out = {}
    for m in metrics:
        v = np.array([r["metrics"][m] for r in results], dtype=float)
        out[m] = (float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan"))
    return out


def verdict(full: dict[str, tuple[float, float]], other: dict[str, tuple[float, float]],
            paper_full: dict[str, float] | None, paper_other: dict[str, float] | None, metrics: Sequence[str],
            paired: dict[str, list[float]] | None = None) -> dict:
    """Does the paper's ordering (full vs this row, per metric) hold in our run?

    Per metric: ``ours_full_better`` (mean of full > mean of the row), ``paper_full_better`` (the same on the
    paper's printed values, ties count as not better), ``agrees`` and ``clear`` (|difference| larger than the sum
    of the two seed stds, so not within seed noise; None with one seed). ``paired`` (metric -> full - row per seed;
    the same seed gives both runs the same initialisation and patches) adds ``seed_diffs`` and ``paired_full_better``
    (full > row on every seed) / ``paired_row_better`` (row > full on every seed): with few seeds whose students differ
    widely, the paired comparison separates the ablated term's effect from the seed's.
    """
    per = {}
    for m in metrics:
        (mf, sf), (mo, so) = full[m], other[m]
        ours = mf > mo
        known = paper_full is not None and paper_other is not None and m in paper_full and m in paper_other
        paper = bool(paper_full[m] > paper_other[m]) if known else None
        noise = sf + so
        per[m] = {"full": mf, "row": mo, "diff": mf - mo, "ours_full_better": bool(ours), "paper_full_better": paper,
                  "agrees": None if paper is None else bool(ours == paper),
                  "clear": None if math.isnan(noise) else bool(abs(mf - mo) > noise)}
        if paired and len(paired.get(m, [])) > 1:
            d = paired[m]
            per[m].update(seed_diffs=list(d), paired_full_better=all(x > 0 for x in d),
                          paired_row_better=all(x < 0 for x in d))
    n_ours = sum(v["ours_full_better"] for v in per.values())
    holds = "holds" if n_ours == len(metrics) else "does not hold" if n_ours == 0 else "holds partly"
    return {"metrics": per, "full_better_ours": n_ours, "n_metrics": len(metrics), "ordering": holds,
            "full_better_paper": (sum(bool(v["paper_full_better"]) for v in per.values())
                                  if any(v["paper_full_better"] is not None for v in per.values()) else None),
            "agree": (sum(bool(v["agrees"]) for v in per.values())
                      if any(v["agrees"] is not None for v in per.values()) else None)}


def verdict_line(label: str, v: dict, full_label: str) -> str:
    """One sentence for the notes under the table."""
    better = [m for m, d in v["metrics"].items() if d["ours_full_better"]]
    worse = [m for m, d in v["metrics"].items() if not d["ours_full_better"]]
    clear = [m for m, d in v["metrics"].items() if d["clear"]]
    s = (f"VERDICT {label}: {full_label} > this row on {v['full_better_ours']}/{v['n_metrics']} metrics in our run "
         f"({', '.join(better) or 'none'}; not on {', '.join(worse) or 'none'}), so '{full_label} > this row' "
         f"{v['ordering']} here")
    if v.get("full_better_paper") is not None:
        s += f"; the paper has {full_label} > this row on {v['full_better_paper']}/{v['n_metrics']}, ours agrees " \
             f"with the paper's direction on {v['agree']}/{v['n_metrics']}"
    if any(d["clear"] is not None for d in v["metrics"].values()):
        s += f"; differences beyond seed noise (|diff| > std_full + std_row): {', '.join(clear) or 'none'}"
    if any("seed_diffs" in d for d in v["metrics"].values()):
        pf = [m for m, d in v["metrics"].items() if d.get("paired_full_better")]
        pr = [m for m, d in v["metrics"].items() if d.get("paired_row_better")]
        s += (f"; paired by seed (same initialisation and patches), {full_label} is better on every seed for "
              f"{', '.join(pf) or 'no metric'} and worse on every seed for {', '.join(pr) or 'no metric'}")
    return s + "."


DEGENERATE_SD = 1.0  # mean SD (0..255 scale) below which a row's fused images count as constant (collapsed training)


# ----------------------------------------------------------------------------------------------------- a table
@dataclass(frozen=True)
class TableSpec:
    """One ablation table: its rows (row key -> the paper's configuration name) and its full row."""

    name: str  # table1 | table2
    rows: tuple[tuple[str, str], ...]  # (row key, paper label) in the paper's order
    full: str = "full"
    title: str = ""
    notes: tuple[str, ...] = ()


def run_table(spec: TableSpec, env: Env) -> list[Path]:
    """Train and evaluate every row and seed (resumable), write the tidy CSV, .tex, .md, provenance and the
    per-seed CSV into ``env.out_dir``; returns the written paths."""
    import pandas as pd

    from benchmarks import paper_values as pv
    from benchmarks.report import provenance, write_outputs

    prof = env.profile
    metrics = list(prof.metrics)
    labels = dict(spec.rows)
    keys = [k for k, _ in spec.rows if env.rows is None or k in env.rows or k == spec.full]
    weights = f"trained-{prof.name}"
    paper = {lab: dict(zip(pv.ABLATION_METRICS, vals)) for lab, vals in {**pv.TABLE1, **pv.TABLE2}.items()}
    t0 = time.perf_counter()
    results: dict[str, list[dict]] = {}
    not_run: dict[str, str] = {}
    for key in keys:  # every run is independent: a failing row is reported and the others still run
        row = load_row(key)
        try:
            results[key] = [run_one(env, row, s) for s in prof.seeds]
        except MMDRFuseError as exc:
            if key == spec.full:
                raise
            not_run[labels[key]] = str(exc)
            env.log(f"warning: {labels[key]}: not run ({exc})")
    keys = [k for k in keys if k in results]
    official = run_official(env)

    tidy: list[dict] = []
    per_seed: list[dict] = []
    stats = {k: seed_stats(v, metrics) for k, v in results.items()}
    n_pairs = {k: v[0]["n_pairs"] for k, v in results.items()}
    for key in keys:
        for m in metrics:
            mean, std = stats[key][m]
            tidy.append({"table": spec.name, "dataset": prof.dataset, "method": labels[key], "weights": weights,
                         "metric": m, "value": mean, "source": "ours", "n_pairs": n_pairs[key], "profile": prof.name})
        if len(prof.seeds) > 1:
            for m in metrics:
                tidy.append({"table": spec.name, "dataset": prof.dataset, "method": labels[key], "weights": weights,
                             "metric": f"{m}_std", "value": stats[key][m][1], "source": "ours",
                             "n_pairs": n_pairs[key], "profile": prof.name})
        for r in results[key]:
            for m in metrics:
                per_seed.append({"table": spec.name, "row": key, "method": labels[key], "seed": r["seed"],
                                 "metric": m, "value": r["metrics"][m], "n_pairs": r["n_pairs"],
                                 "profile": prof.name, "recipe_hash": r["recipe_hash"], "params": r["params"],
                                 "size_kb": r["size_kb"], "run_dir": r["run_dir"]})
    full_label = labels[spec.full]
    if official is not None:
        for m in metrics:
            tidy.append({"table": spec.name, "dataset": prof.dataset, "method": full_label, "weights": "official",
                         "metric": m, "value": official["metrics"][m], "source": "ours",
                         "n_pairs": official["n_pairs"], "profile": prof.name})
    tidy += pv.paper_rows(spec.name)

    verdicts, lines = {}, []
    degenerate = [k for k in keys if "SD" in metrics and stats[k]["SD"][0] < DEGENERATE_SD]
    for key in degenerate:  # a collapsed student would otherwise be read as a capacity or component effect
        lines.append(f"DEGENERATE {labels[key]}: its students' fused images are constant or nearly (mean SD "
                     f"{stats[key]['SD'][0]:.3g} < {DEGENERATE_SD:g}): training collapsed at the '{prof.name}' "
                     f"profile (see train/log.csv in {', '.join(r['run_dir'] for r in results[key])}), so this row "
                     "says nothing about what it ablates and its verdict compares a broken student.")
    for key in keys:
        if key == spec.full:
            continue
        by_seed = {r["seed"]: r["metrics"] for r in results[key]}
        paired = {m: [f["metrics"][m] - by_seed[f["seed"]][m] for f in results[spec.full] if f["seed"] in by_seed]
                  for m in metrics}
        v = verdict(stats[spec.full], stats[key], paper.get(full_label), paper.get(labels[key]), metrics, paired)
        verdicts[labels[key]] = v
        lines.append(verdict_line(labels[key], v, full_label))

    any_r = next(iter(results.values()))[0]
    n_seeds = len(prof.seeds)
    notes = [
        f"Rows '{weights}': students trained by this suite with the '{prof.name}' ablation profile "
        f"(ablations/configs/profiles.yaml; trainer profile '{prof.base}' + {json.dumps(prof.train)}), "
        f"{any_r['train_patches']} patches, {any_r['train_steps']} steps, teacher "
        f"{any_r['config']['teacher']}, perceptual backbone {any_r['perceptual_backbone']}; "
        + (f"mean over {n_seeds} seeds {list(prof.seeds)}, shown as mean ± sample std (ddof=1) across seeds "
           "(the CSV keeps the std as metric <name>_std)."
           if n_seeds > 1 else f"one seed {list(prof.seeds)} (no std)."),
        f"Evaluated on {n_pairs[keys[0]]} {prof.dataset} test pairs"
        + (f" (evenly spaced subset, max_pairs={prof.max_pairs}; the paper used "
           f"{pv.PAPER_PAIRS.get(prof.dataset, 'all')})" if prof.max_pairs else "")
        + ": mean of per-image SD, VIF, Qabf, SSIM with the paper's conventions (mmdrfuse.metrics).",
        f"Row '{full_label}' with weights 'official': the authors' published student on the same pairs "
        "(reference for the paper's row).",
        *env.demo_notes,
        *spec.notes,
        *lines,
        *(f"{lab}: paper values only, none of ours: {why}" for lab, why in not_run.items()),
    ]
    if prof.name == "smoke":
        notes.insert(0, "SMOKE PROFILE: a few training steps on tiny patches; these numbers say nothing about the "
                        "paper's claims")
    prov = provenance(
        spec.name, profile=prof.name, command=env.command or None,
        data={"train": any_r["config"]["data"], "eval": {"dataset": prof.dataset, "n_pairs": n_pairs[keys[0]],
                                                          "max_pairs": prof.max_pairs}},
        weights={"official-student": official.get("weights_sha256") if official else None,
                 **{f"{k}/seed{r['seed']}": r["weights_sha256"] for k, rs in results.items() for r in rs}},
        notes=notes, rows={labels[k]: {"config": f"ablations/configs/{k}.yaml", "ablates": list(load_row(k).ablates),
                                       "params": results[k][0]["params"], "size_kb": results[k][0]["size_kb"],
                                       "runs": [r["run_dir"] for r in results[k]]} for k in keys},
        seeds=list(prof.seeds), verdict=verdicts, not_run=not_run, work_dir=str(env.work_dir),
        seconds_this_call=round(time.perf_counter() - t0, 1), python=platform.python_version())
    written = write_outputs(tidy, env.out_dir, spec.name, prov)
    seeds_csv = env.out_dir / f"{spec.name}.seeds.csv"
    write_text(seeds_csv, pd.DataFrame(per_seed).to_csv(index=False, float_format=lambda v: repr(float(v)),
                                                         lineterminator="\n"))
    return [*written, seeds_csv]


# ------------------------------------------------------------------------------------------------------- CLI
def main(spec: TableSpec, argv: list[str] | None = None) -> int:
    """``python -m ablations.<table> --profile cpu [--seeds 0 1] ...``"""
    import logging
    import shlex

    ap = argparse.ArgumentParser(prog=f"python -m ablations.{spec.name}", description=spec.title)
    ap.add_argument("--profile", default="cpu", help="smoke | cpu | paper (ablations/configs/profiles.yaml)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the profile's)")
    ap.add_argument("--rows", nargs="+", default=None, choices=[k for k, _ in spec.rows],
                    help="only these rows (the full row is always included)")
    ap.add_argument("--data-root", default=None, help=f"data (default: ${paths.DATA_ENV}, else the cache)")
    ap.add_argument("--weights-root", default=None, help=f"weights (default: ${paths.WEIGHTS_ENV}, else the cache)")
    ap.add_argument("--out", default=None, help="results folder (default: ./results)")
    ap.add_argument("--work", default=None, help="training/evaluation runs (default: <user cache>/mmdrfuse/ablations)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] for training")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    from mmdrfuse.lock import interrupt_on_sigterm
    from mmdrfuse.memory import keep_freed_memory

    keep_freed_memory()  # mmdrfuse/memory.py
    interrupt_on_sigterm()  # kill PID: locks released, no temp files left (mmdrfuse/lock.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        env = Env(profile=load_profile(args.profile, args.seeds), data_root=paths.data_root(args.data_root),
                  weights_root=paths.weights_root(args.weights_root),
                  out_dir=paths.results_dir(args.out),
                  work_dir=Path(args.work) if args.work else paths.cache_dir() / "ablations", device=args.device,
                  progress=not args.no_progress, rows=tuple(args.rows) if args.rows else None,
                  command=" ".join([f"python -m ablations.{spec.name}", *map(shlex.quote, argv)]))
        written = run_table(spec, env)
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (finished rows are not retrained)", file=sys.stderr)
        return 130
    for p in written:
        print(p)
    return 0
