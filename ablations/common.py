"""The ablation runner's public names, gathered for callers (``ablations.table1``, ``ablations.table2``, tests).

Where they live: :mod:`ablations.config` (rows and profiles, the TrainConfig of a run), :mod:`ablations.rows` (one
run: train a row with one seed and evaluate it, a :class:`mmdrfuse.jobs.Job`), :mod:`ablations.stats` (seed
statistics and verdicts), :mod:`ablations.tables` (a table: run its rows, write its files; the command line).
"""
from __future__ import annotations

from ablations.config import (CONFIG_DIR, METRICS, PROFILES_FILE, RECIPE_SECTIONS, Profile, Row, flatten,
                              load_profile, load_row, row_keys, train_config)
from ablations.rows import (Env, check_trainable, demo_teacher, env_from_ctx, row_job, run_dir, run_official,
                            run_one, run_rows)
from ablations.stats import (DEGENERATE_SD, collapsed, decide, image_interval, paired_effect, seed_interval,
                             seed_stats, verdict, verdict_line)
from ablations.tables import TableSpec, main, run_table

__all__ = ["CONFIG_DIR", "DEGENERATE_SD", "METRICS", "PROFILES_FILE", "RECIPE_SECTIONS", "Env", "Profile", "Row",
           "TableSpec", "check_trainable", "demo_teacher", "env_from_ctx", "flatten", "load_profile", "load_row",
           "main", "row_job", "row_keys", "run_dir", "run_official", "run_one", "run_rows", "run_table",
           "seed_stats", "train_config", "verdict", "verdict_line", "collapsed", "decide", "image_interval",
           "paired_effect", "seed_interval"]
