"""Resumable jobs that several processes can share: a key, a result JSON, a work lock.

A *job* is a piece of work whose outcome is one JSON file (its *result*). It is

- named by a *key*: :func:`key_of` hashes the dict of everything that defines the work (its settings and inputs),
  so a job whose definition changed gets a new key and never reuses a stale result;
- done once: a result that is present (and passes the job's ``check``, e.g. carries the job's key) is reused;
- written atomically (:mod:`mmdrfuse.atomic`), so a result file is either whole or absent, and a killed run resumes;
- shared: the process doing a job holds its lock file ``<result>.lock`` (:class:`mmdrfuse.lock.WorkLock`). A process
  finding a job locked by another live process does its other jobs first, then waits for that result
  (:func:`run_all`).

Users: the ablation rows (:mod:`ablations.rows`), the detection jobs (:mod:`benchmarks.detection.jobs`).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mmdrfuse.atomic import write_json
from mmdrfuse.lock import WorkLock


def key_of(config: Mapping[str, Any], length: int = 16) -> str:
    """The first ``length`` hex digits of the sha256 of ``config`` as canonical JSON (``json.dumps`` with sorted
    keys and the default separators). Changing this formula orphans every cached result (tests/test_jobs.py pins
    the keys)."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:length]


def load(path: Path, check: Callable[[dict], bool] | None = None) -> dict | None:
    """The result JSON at ``path`` if it exists, parses and passes ``check``; else None."""
    if not Path(path).is_file():
        return None
    with contextlib.suppress(Exception):
        result = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(result, dict) and (check is None or check(result)):
            return result
    return None


def has_key(key: str) -> Callable[[dict], bool]:
    """A ``check`` accepting the results made with ``key`` (their ``"key"`` field)."""
    return lambda result: result.get("key") == key


@dataclass
class Job:
    """One piece of work: ``work()`` returns the result dict, which the runner writes to ``path``."""

    path: Path                                   # the result JSON (its lock: ``<path>.lock``)
    work: Callable[[], dict]                     # does the work; returns the result to write
    check: Callable[[dict], bool] | None = None  # a found result is reused only if it passes (None: any result)
    tag: str = ""                                # the job's name in log lines

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")


def run(job: Job, *, wait: bool = True, log: Callable[[str], None] = lambda msg: None,
        poll_s: float = 10.0) -> dict | None:
    """The job's result: reused, done now (and written), or awaited from the process holding its lock. None only
    when another live process holds the lock and ``wait`` is False."""
    lock = WorkLock(job.lock_path)
    while True:
        result = load(job.path, job.check)
        if result is not None:
            log(f"{job.tag}: done earlier ({job.path}), skipped")
            return result
        with lock as got:
            if got:
                result = load(job.path, job.check)  # finished by another process meanwhile?
                if result is None:
                    result = job.work()
                    write_json(job.path, result)
                return result
        owner = lock.owner()
        who = f"process {owner[1]} on {owner[0]}" if owner else "another process"
        if not wait:
            log(f"{job.tag}: {who} is doing it; other jobs first")
            return None
        log(f"{job.tag}: waiting for {who} ({lock.path})")
        lock.wait_released(poll_s)


def run_all(jobs: Sequence[Job], *, log: Callable[[str], None] = lambda msg: None, poll_s: float = 10.0,
            catch: tuple[type[BaseException], ...] = ()) -> list:
    """The results of ``jobs`` (in their order): first every job no other process is doing, then the others,
    waiting for each. A job whose work raises one of ``catch`` gets that exception as its result (nothing is
    written for it) and the other jobs still run; any other exception stops the run."""
    results: list = [None] * len(jobs)
    for wait in (False, True):
        for i, job in enumerate(jobs):
            if results[i] is None:
                try:
                    results[i] = run(job, wait=wait, log=log, poll_s=poll_s)
                except catch as exc:
                    results[i] = exc
    return results
