"""The ablation commands' shared command line (``python -m ablations.table1|table2|sweep``): their common options,
the :class:`~ablations.rows.Env` they build, and one way to run them (errors in one line, resumable interrupts)."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Callable

from ablations.config import load_profile
from ablations.rows import Env
from mmdrfuse import paths
from mmdrfuse.errors import MMDRFuseError


def add_common(ap: argparse.ArgumentParser) -> None:
    """The options every ablation command has."""
    ap.add_argument("--profile", default="cpu", help="quick | cpu | paper (ablations/configs/profiles.yaml)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="seeds (default: the profile's)")
    ap.add_argument("--data-root", default=None, help=f"data (default: ${paths.DATA_ENV}, else the cache)")
    ap.add_argument("--weights-root", default=None, help=f"weights (default: ${paths.WEIGHTS_ENV}, else the cache)")
    ap.add_argument("--out", default=None, help="results folder (default: ./results)")
    ap.add_argument("--work", default=None, help="training/evaluation runs (default: <user cache>/mmdrfuse/ablations)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N] for training")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")


def env_from_args(args: argparse.Namespace, prog: str, argv: list[str] | None, **extra) -> Env:
    """The :class:`Env` of a parsed command line (``extra``: more Env fields, e.g. ``rows``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return Env(profile=load_profile(args.profile, args.seeds), data_root=paths.data_root(args.data_root),
               weights_root=paths.weights_root(args.weights_root), out_dir=paths.results_dir(args.out),
               work_dir=Path(args.work) if args.work else paths.cache_dir() / "ablations", device=args.device,
               progress=not args.no_progress, command=" ".join([prog, *map(shlex.quote, argv)]), **extra)


def run_command(work: Callable[[], list[Path]]) -> int:
    """Run ``work`` (which returns the written paths) as a command: allocator and SIGTERM set up, the paths printed,
    an error in one line, an interrupt with the hint that rerunning resumes."""
    import logging

    from mmdrfuse.lock import interrupt_on_sigterm
    from mmdrfuse.memory import keep_freed_memory

    keep_freed_memory()  # mmdrfuse/memory.py
    interrupt_on_sigterm()  # kill PID: locks released, no temp files left (mmdrfuse/lock.py)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        written = work()
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume (finished runs are not retrained)", file=sys.stderr)
        return 130
    for p in written:
        print(p)
    return 0
