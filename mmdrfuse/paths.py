"""Where the suite finds data and weights.

Resolution order for the data root: explicit argument (``--data-root``) > ``MMDRFUSE_DATA`` > the user cache
directory (``$XDG_CACHE_HOME/mmdrfuse/data`` or ``~/.cache/mmdrfuse/data``). Weights likewise with
``--weights-root`` > ``MMDRFUSE_WEIGHTS`` > ``<cache>/weights``. Nothing here creates directories.

Outputs, for every command: ``--out DIR``, by default ``./results`` in the current working directory (never inside the
installed package); a run on the synthetic demo set defaults to ``./results-demo`` (:func:`results_dir`).
"""
from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "MMDRFUSE_DATA"
WEIGHTS_ENV = "MMDRFUSE_WEIGHTS"


def cache_dir() -> Path:
    """The user cache directory of the suite (not created)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mmdrfuse"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    """The data root: ``explicit`` > ``$MMDRFUSE_DATA`` > ``<cache>/data``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


def weights_root(explicit: str | os.PathLike | None = None) -> Path:
    """The weights root: ``explicit`` > ``$MMDRFUSE_WEIGHTS`` > ``<cache>/weights``."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "weights"


RESULTS = "results"  # real-data results
DEMO_RESULTS = "results-demo"  # results computed on the synthetic demo set


def results_dir(explicit: str | os.PathLike | None = None, *, demo: bool = False) -> Path:
    """Where a command writes: ``explicit`` (``--out``) > ``./results`` (``./results-demo`` for a demo run)."""
    if explicit:
        return Path(explicit).expanduser()
    return Path.cwd() / (DEMO_RESULTS if demo else RESULTS)


def repo_root() -> Path:
    """The repository (or installed tree) root: the folder holding the ``mmdrfuse`` package."""
    return Path(__file__).resolve().parent.parent
