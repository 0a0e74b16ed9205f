"""An ablation table: run its rows (:mod:`ablations.rows`), then write the tidy CSV, .tex, .md, provenance, the
per-seed CSV and the verdicts CSV, with the paper's values and a verdict per row (:mod:`ablations.stats`); and the
command line ``python -m ablations.<table>``."""
from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path

from ablations import rows as runs
from ablations.config import load_row
from ablations.rows import Env
from ablations.stats import DEGENERATE_SD, collapsed, paired_effect, seed_stats, verdict, verdict_line
from mmdrfuse.atomic import write_text


@dataclass(frozen=True)
class TableSpec:
    """One ablation table: its rows (row key -> the paper's configuration name) and its full row."""

    name: str  # table1 | table2
    rows: tuple[tuple[str, str], ...]  # (row key, paper label) in the paper's order
    full: str = "full"
    title: str = ""
    notes: tuple[str, ...] = ()


def run_table(spec: TableSpec, env: Env) -> list[Path]:
    """Train and evaluate every row and seed (resumable, shared between processes), write the tidy CSV, .tex, .md,
    provenance, the per-seed and the verdicts CSV into ``env.out_dir``; returns the written paths."""
    import pandas as pd

    from benchmarks.report import write_outputs

    labels = dict(spec.rows)
    keys = [k for k, _ in spec.rows if env.rows is None or k in env.rows or k == spec.full]
    t0 = time.perf_counter()
    results, failed = runs.run_rows(env, keys, spec.full)
    not_run = {labels[k]: why for k, why in failed.items()}
    for label, why in not_run.items():
        env.log(f"warning: {label}: not run ({why})")
    keys = [k for k in keys if k in results]
    official = runs.run_official(env)
    tidy, per_seed = _tidy(spec, env, keys, results, official)
    verdicts, lines = _verdicts(spec, env, keys, results)
    prov = _provenance(spec, env, keys, results, official, [*lines, *(
        f"{lab}: paper values only, none of ours: {why}" for lab, why in not_run.items())])
    prov.update(verdict=verdicts, not_run=not_run, work_dir=str(env.work_dir),
                seconds_this_call=round(time.perf_counter() - t0, 1), python=platform.python_version())
    written = write_outputs(tidy, env.out_dir, spec.name, prov)
    extra = []
    for suffix, frame in (("seeds", per_seed), ("verdicts", verdict_rows(spec, env, verdicts))):
        extra.append(env.out_dir / f"{spec.name}.{suffix}.csv")
        write_text(extra[-1], pd.DataFrame(frame).to_csv(index=False, float_format=lambda v: repr(float(v)),
                                                         lineterminator="\n"))
    return [*written, *extra]


def _weights(env: Env) -> str:
    """The tidy ``weights`` of our trained rows."""
    return f"trained-{env.profile.name}"


def _tidy(spec: TableSpec, env: Env, keys: list[str], results: dict[str, list[dict]],
          official: dict | None) -> tuple[list[dict], list[dict]]:
    """(tidy rows: ours (mean, and std with several seeds), the official student's, the paper's; per-seed rows)."""
    from benchmarks import paper_values as pv

    prof, labels, metrics = env.profile, dict(spec.rows), list(env.profile.metrics)
    stats = {k: seed_stats(v, metrics) for k, v in results.items()}
    base = {"table": spec.name, "dataset": prof.dataset, "source": "ours", "profile": prof.name}
    tidy: list[dict] = []
    per_seed: list[dict] = []
    for key in keys:
        row = {**base, "method": labels[key], "weights": _weights(env), "n_pairs": results[key][0]["n_pairs"]}
        tidy += [{**row, "metric": m, "value": stats[key][m][0]} for m in metrics]
        if len(prof.seeds) > 1:
            tidy += [{**row, "metric": f"{m}_std", "value": stats[key][m][1]} for m in metrics]
        for r in results[key]:
            per_seed += [{"table": spec.name, "row": key, "method": labels[key], "seed": r["seed"], "metric": m,
                          "value": r["metrics"][m], "n_pairs": r["n_pairs"], "profile": prof.name,
                          "recipe_hash": r["recipe_hash"], "params": r["params"], "size_kb": r["size_kb"],
                          "run_dir": r["run_dir"]} for m in metrics]
    if official is not None:
        tidy += [{**base, "method": labels[spec.full], "weights": "official", "metric": m,
                  "value": official["metrics"][m], "n_pairs": official["n_pairs"]} for m in metrics]
    return tidy + pv.paper_rows(spec.name), per_seed


def per_image(result: dict, metrics: list[str]):
    """The run's per-image metrics (its ``metrics.csv``), indexed by stem."""
    import pandas as pd

    df = pd.read_csv(Path(result["run_dir"]) / "metrics.csv", dtype={"stem": str})
    return df.set_index("stem")[metrics]


def _effects(full: list[dict], row: list[dict], metrics: list[str]) -> dict[str, dict]:
    """metric -> :func:`ablations.stats.paired_effect` of full - row over the seeds both have, on shared images."""
    import numpy as np

    by_seed = {r["seed"]: r for r in row}
    pairs = [(f, by_seed[f["seed"]]) for f in sorted(full, key=lambda r: r["seed"]) if f["seed"] in by_seed]
    frames = [(per_image(f, metrics), per_image(r, metrics)) for f, r in pairs]
    stems = sorted(set.intersection(*(set(a.index) & set(b.index) for a, b in frames)))
    return {m: paired_effect(np.stack([a.loc[stems, m].to_numpy(float) for a, _ in frames]),
                             np.stack([b.loc[stems, m].to_numpy(float) for _, b in frames])) for m in metrics}


def _verdicts(spec: TableSpec, env: Env, keys: list[str], results: dict[str, list[dict]]) -> tuple[dict, list[str]]:
    """({row label: verdict}, note lines: a DEGENERATE line per collapsed run, then a VERDICT line per row)."""
    from benchmarks import paper_values as pv

    prof, labels, metrics = env.profile, dict(spec.rows), list(env.profile.metrics)
    paper = {lab: dict(zip(pv.ABLATION_METRICS, vals)) for lab, vals in {**pv.TABLE1, **pv.TABLE2}.items()}
    full_label = labels[spec.full]
    verdicts, lines = {}, []
    down = {k: [f"{labels[k]} seed {r['seed']}" for r in results[k] if collapsed(r)] for k in keys}
    for key in keys:  # a collapsed student would otherwise be read as a capacity or component effect
        for r in results[key]:
            if collapsed(r):
                lines.append(f"DEGENERATE {labels[key]} seed {r['seed']}: its fused images are constant or nearly "
                             f"(mean SD {r['metrics']['SD']:.3g} < {DEGENERATE_SD:g}): training collapsed at the "
                             f"'{prof.name}' profile (see {r['run_dir']}/train/log.csv); no verdict uses this row.")
    for key in keys:
        if key == spec.full:
            continue
        v = verdict(_effects(results[spec.full], results[key], metrics), paper.get(full_label),
                    paper.get(labels[key]), down[key] + down[spec.full])
        verdicts[labels[key]] = v
        lines.append(verdict_line(labels[key], v, full_label))
    return verdicts, lines


def verdict_rows(spec: TableSpec, env: Env, verdicts: dict) -> list[dict]:
    """The verdicts as rows of ``<table>.verdicts.csv`` (one per row and metric)."""
    out = []
    for label, v in verdicts.items():
        for m, d in v["metrics"].items():
            out.append({"table": spec.name, "row": label, "metric": m, "full_minus_row": d["diff"],
                        "seed_ci_low": d["seed_ci"][0], "seed_ci_high": d["seed_ci"][1],
                        "image_ci_low": d["image_ci"][0], "image_ci_high": d["image_ci"][1],
                        "n_seeds": len(d["seed_diffs"]), "paper_full_minus_row": d["paper_diff"],
                        "verdict": d["verdict"], "profile": env.profile.name})
    return out


def _provenance(spec: TableSpec, env: Env, keys: list[str], results: dict[str, list[dict]], official: dict | None,
                lines: list[str]) -> dict:
    """The table's provenance record; its notes say how the rows were trained and evaluated, then ``lines``."""
    from benchmarks import paper_values as pv
    from benchmarks.report import provenance

    prof, labels = env.profile, dict(spec.rows)
    any_r = next(iter(results.values()))[0]
    n_pairs = results[keys[0]][0]["n_pairs"]
    n_seeds = len(prof.seeds)
    notes = [
        f"Rows '{_weights(env)}': students trained by this suite with the '{prof.name}' ablation profile "
        f"(ablations/configs/profiles.yaml; trainer config '{prof.trainer}' + {json.dumps(prof.train)}), "
        f"{any_r['train_patches']} patches, {any_r['train_steps']} steps, teacher "
        f"{any_r['config']['teacher']}, perceptual backbone {any_r['perceptual_backbone']}; "
        + (f"mean over {n_seeds} seeds {list(prof.seeds)}, shown as mean ± sample std (ddof=1) across seeds "
           "(the CSV keeps the std as metric <name>_std)."
           if n_seeds > 1 else f"one seed {list(prof.seeds)} (no std)."),
        f"Evaluated on {n_pairs} {prof.dataset} test pairs"
        + (f" (evenly spaced subset, max_pairs={prof.max_pairs}; the paper used "
           f"{pv.PAPER_PAIRS.get(prof.dataset, 'all')})" if prof.max_pairs else "")
        + ": mean of per-image SD, VIF, Qabf, SSIM with the paper's conventions (mmdrfuse.metrics).",
        f"Row '{labels[spec.full]}' with weights 'official': the authors' published student on the same pairs "
        "(reference for the paper's row).",
        *env.demo_notes,
        *spec.notes,
        *lines,
    ]
    if prof.name == "quick":
        notes.insert(0, "QUICK PROFILE: a few training steps on tiny patches; these numbers say nothing about the "
                        "paper's claims")
    return provenance(
        spec.name, profile=prof.name, command=env.command or None,
        data={"train": any_r["config"]["data"], "eval": {"dataset": prof.dataset, "n_pairs": n_pairs,
                                                          "max_pairs": prof.max_pairs}},
        weights={"official-student": official.get("weights_sha256") if official else None,
                 **{f"{k}/seed{r['seed']}": r["weights_sha256"] for k, rs in results.items() for r in rs}},
        notes=notes, rows={labels[k]: {"config": f"ablations/configs/{k}.yaml", "ablates": list(load_row(k).ablates),
                                       "params": results[k][0]["params"], "size_kb": results[k][0]["size_kb"],
                                       "runs": [r["run_dir"] for r in results[k]]} for k in keys},
        seeds=list(prof.seeds))


# ------------------------------------------------------------------------------------------------------- CLI
def main(spec: TableSpec, argv: list[str] | None = None) -> int:
    """``python -m ablations.<table> --profile cpu [--seeds 0 1] ...``"""
    from ablations.cli import add_common, env_from_args, run_command

    ap = argparse.ArgumentParser(prog=f"python -m ablations.{spec.name}", description=spec.title)
    add_common(ap)
    ap.add_argument("--rows", nargs="+", default=None, choices=[k for k, _ in spec.rows],
                    help="only these rows (the full row is always included; a row the profile skips runs if named)")
    args = ap.parse_args(argv)
    return run_command(lambda: run_table(spec, env_from_args(args, f"python -m ablations.{spec.name}", argv,
                                                             rows=tuple(args.rows) if args.rows else None)))
