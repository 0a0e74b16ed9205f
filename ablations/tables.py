"""An ablation table: run its rows (:mod:`ablations.rows`), then write the tidy CSV, .tex, .md, provenance and the
per-seed CSV, with the paper's values and a verdict per row (:mod:`ablations.stats`); and the command line
``python -m ablations.<table>``."""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ablations import rows as runs
from ablations.config import load_profile, load_row
from ablations.rows import Env
from ablations.stats import DEGENERATE_SD, seed_stats, verdict, verdict_line
from mmdrfuse import paths
from mmdrfuse.atomic import write_text
from mmdrfuse.errors import MMDRFuseError


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
    provenance and the per-seed CSV into ``env.out_dir``; returns the written paths."""
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
    seeds_csv = env.out_dir / f"{spec.name}.seeds.csv"
    write_text(seeds_csv, pd.DataFrame(per_seed).to_csv(index=False, float_format=lambda v: repr(float(v)),
                                                         lineterminator="\n"))
    return [*written, seeds_csv]


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


def _verdicts(spec: TableSpec, env: Env, keys: list[str], results: dict[str, list[dict]]) -> tuple[dict, list[str]]:
    """({row label: verdict}, note lines: a DEGENERATE line per collapsed row, then a VERDICT line per row)."""
    from benchmarks import paper_values as pv

    prof, labels, metrics = env.profile, dict(spec.rows), list(env.profile.metrics)
    paper = {lab: dict(zip(pv.ABLATION_METRICS, vals)) for lab, vals in {**pv.TABLE1, **pv.TABLE2}.items()}
    stats = {k: seed_stats(v, metrics) for k, v in results.items()}
    full_label = labels[spec.full]
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
    return verdicts, lines


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
    import logging
    import shlex

    ap = argparse.ArgumentParser(prog=f"python -m ablations.{spec.name}", description=spec.title)
    ap.add_argument("--profile", default="cpu", help="quick | cpu | paper (ablations/configs/profiles.yaml)")
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
