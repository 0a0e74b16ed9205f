"""Sweeps that set the ablation profile's free choices (``python -m ablations.sweep``): one row trained with each
value of one training key, every seed, evaluated like the tables' runs.

The two sweeps behind ``configs/profiles.yaml`` (docs/ablations.md "How the cpu profile was chosen"):

- the **pilot** (training length): the full row at several ``optim.epochs``, each with its own cosine decay, to see
  how the full recipe's seed-to-seed spread falls with steps; the tables' full row is the pilot's run at the chosen
  length (same recipe hash, trained once)::

      python -m ablations.sweep --name ablations_pilot --row full --key optim.epochs --values 5 10 25

- the **huge student's learning rate**: Adam moves each of the 84,015 weights feeding its output pixel by about
  ``lr`` per step, so the shared rate saturates its tanh at once; a short sweep finds the rate at which it trains::

      python -m ablations.sweep --name ablations_huge_lr --row huge --key optim.lr --values 3e-3 3e-5 3e-6 1e-6 \\
          --set data.patch_size=32 --set optim.epochs=2 --seeds 0 --max-pairs 8

A value and ``--set`` apply to the swept row only (as the profile's ``row_train`` would). Runs are the tables' jobs
(:func:`ablations.rows.row_job`): resumable, shared between processes, cached by recipe hash in the work folder.
Outputs (``--out``, default ``./results``): ``<name>.csv`` (tidy: method ``<row>, <key>=<value>``, each metric's
mean and, with several seeds, its ``_std`` over seeds), ``.md``, ``.tex``, ``.provenance.json`` and
``<name>.seeds.csv``.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import time
from pathlib import Path
from typing import Any

from ablations.config import load_row
from ablations.rows import Env, row_job
from ablations.stats import collapsed, seed_stats
from mmdrfuse import jobs
from mmdrfuse.atomic import write_text
from mmdrfuse.errors import MMDRFuseError


def with_settings(env: Env, row: str, settings: dict[str, Any], max_pairs: int | None = None) -> Env:
    """``env`` whose profile trains ``row`` with ``settings`` on top of its own (and evaluates ``max_pairs``)."""
    prof = env.profile
    row_train = {**prof.row_train, row: {**prof.row_train.get(row, {}), **settings}}
    prof = dataclasses.replace(prof, row_train=row_train, max_pairs=prof.max_pairs if max_pairs is None else max_pairs)
    return dataclasses.replace(env, profile=prof)


def run_sweep(env: Env, row: str, key: str, values: list, sets: dict, max_pairs: int | None) -> dict[Any, list[dict]]:
    """{value: [result per seed]} (jobs in the order given, every seed of a value before the next value)."""
    r = load_row(row)
    todo = [(v, s) for v in values for s in env.profile.seeds]
    out = jobs.run_all([row_job(with_settings(env, row, {**sets, key: v}, max_pairs), r, s) for v, s in todo],
                       log=env.log)
    res: dict[Any, list[dict]] = {}
    for (v, _), result in zip(todo, out):
        res.setdefault(v, []).append(result)
    return res


def tidy_rows(env: Env, name: str, row: str, key: str, results: dict) -> tuple[list[dict], list[dict]]:
    """(tidy rows: per value the seed mean, and with several seeds the std, of each metric; per-seed rows)."""
    metrics = list(env.profile.metrics)
    tidy, per_seed = [], []
    for v, rs in results.items():
        base = {"table": name, "dataset": env.profile.dataset, "method": f"{row}, {key}={v}",
                "weights": f"trained-{env.profile.name}", "source": "ours", "n_pairs": rs[0]["n_pairs"],
                "profile": env.profile.name}
        stats = seed_stats(rs, metrics)
        for m in metrics:
            tidy.append({**base, "metric": m, "value": stats[m][0]})
            if len(rs) > 1:
                tidy.append({**base, "metric": f"{m}_std", "value": stats[m][1]})
        per_seed += [{"row": row, "key": key, "value_of_key": v, "steps": r["train_steps"], "seed": r["seed"],
                      "collapsed": collapsed(r), **r["metrics"], "last_epoch_loss": (r.get("last_epoch_losses") or {})
                      .get("total"), "train_seconds": r["train_seconds_this_call"], "run_dir": r["run_dir"]}
                     for r in rs]
    return tidy, per_seed


def write(env: Env, name: str, row: str, key: str, sets: dict, results: dict, seconds: float) -> list[Path]:
    """The sweep's tidy CSV, tables, provenance and per-seed CSV in ``env.out_dir``."""
    import pandas as pd

    from benchmarks.report import provenance, write_outputs

    tidy, per_seed = tidy_rows(env, name, row, key, results)
    any_r = next(iter(results.values()))[0]
    prof = env.profile
    notes = [
        f"Row '{row}' (ablations/configs/{row}.yaml) trained with the '{prof.name}' ablation profile (trainer config "
        f"'{prof.trainer}' + {prof.train}) and, for this row only, {sets or 'nothing more'} and {key} = each value "
        f"shown; seeds {list(prof.seeds)}; {any_r['train_patches']} patches; one run per value and seed.",
        f"Evaluated on {any_r['n_pairs']} {prof.dataset} test pairs (mean of per-image values); with several seeds, "
        "<metric>_std is the sample std (ddof=1) over seeds (every seed's value: <name>.seeds.csv).",
        *(f"COLLAPSED {row}, {key}={r['value_of_key']}, seed {r['seed']}: mean SD {r['SD']:.3g}, a constant image"
          for r in per_seed if r["collapsed"] and r.get("SD") is not None),
    ]
    prov = provenance(name, profile=prof.name, command=env.command or None,
                      data={"train": any_r["config"]["data"], "eval": {"dataset": prof.dataset,
                                                                       "n_pairs": any_r["n_pairs"]}},
                      weights={f"{row}/{key}={v}/seed{r['seed']}": r["weights_sha256"]
                               for v, rs in results.items() for r in rs},
                      notes=notes, seeds=list(prof.seeds))
    prov.update(seconds_this_call=round(seconds, 1), python=platform.python_version(), work_dir=str(env.work_dir),
                sweep={"row": row, "key": key, "values": list(results), "set": sets})
    written = write_outputs(tidy, env.out_dir, name, prov)
    seeds_csv = env.out_dir / f"{name}.seeds.csv"
    write_text(seeds_csv, pd.DataFrame(per_seed).to_csv(index=False, float_format=lambda v: repr(float(v)),
                                                         lineterminator="\n"))
    return [*written, seeds_csv]


def main(argv: list[str] | None = None) -> int:
    """``python -m ablations.sweep --name N --row R --key K --values V1 V2 ... [--set K=V ...]``"""
    from ablations.cli import add_common, env_from_args, run_command
    from mmdrfuse.train.cli import parse_overrides

    ap = argparse.ArgumentParser(prog="python -m ablations.sweep", description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True, help="output name (results/<name>.csv ...)")
    ap.add_argument("--row", default="full", help="the row trained (ablations/configs/<row>.yaml)")
    ap.add_argument("--key", required=True, help="the swept training key, e.g. optim.epochs or optim.lr")
    ap.add_argument("--values", nargs="+", required=True, help="its values (parsed as YAML)")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                    help="another training setting for this row (repeatable)")
    ap.add_argument("--max-pairs", type=int, default=None, help="evaluate on this many pairs (default: the profile's)")
    add_common(ap)
    args = ap.parse_args(argv)

    def work() -> list[Path]:
        values = [parse_overrides([f"v={v}"])["v"] for v in args.values]
        if len({str(v) for v in values}) != len(values):
            raise MMDRFuseError(f"--values: a value is repeated in {args.values}")
        sets = parse_overrides(args.sets)
        load_row(args.row)
        env = env_from_args(args, "python -m ablations.sweep", argv)
        t0 = time.perf_counter()
        results = run_sweep(env, args.row, args.key, values, sets, args.max_pairs)
        return write(env, args.name, args.row, args.key, sets, results, time.perf_counter() - t0)

    return run_command(work)


if __name__ == "__main__":
    sys.exit(main())
