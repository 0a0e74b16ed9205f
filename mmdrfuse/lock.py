"""Work locks: let several processes share one job list without doing the same item twice.

A lock is a file created with ``O_CREAT | O_EXCL`` (atomic on local file systems) holding ``host pid``. A process
that cannot take a lock does other items first and comes back later (:meth:`WorkLock.wait_released`). A lock left by
a process that died on this host is stale and is taken over; a lock from another host is never broken (delete the
file by hand if that host is gone). Locks are released on exit from the ``with`` block, also on errors.
"""
from __future__ import annotations

import os
import socket
import time
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with ``pid`` runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class WorkLock:
    """``with WorkLock(path) as got:`` -- ``got`` is True when this process now holds ``path``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.held = False

    def owner(self) -> tuple[str, int] | None:
        """(host, pid) written in the lock file, or None if there is no (readable) lock."""
        try:
            host, pid = self.path.read_text(encoding="utf-8").split()
            return host, int(pid)
        except (OSError, ValueError):
            return None

    def stale(self) -> bool:
        """True if the lock file names a process of this host that no longer runs (or cannot be read)."""
        if not self.path.exists():
            return False
        who = self.owner()
        if who is None:  # empty or garbled: a writer died between creating and writing it; old enough to judge
            try:
                return time.time() - self.path.stat().st_mtime > 60
            except OSError:
                return False
        host, pid = who
        return host == socket.gethostname() and pid != os.getpid() and not pid_alive(pid)

    def acquire(self) -> bool:
        """Take the lock if it is free or stale; never blocks."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if self.stale():
                    try:
                        self.path.unlink()
                    except FileNotFoundError:
                        pass
                    continue
                return False
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(f"{socket.gethostname()} {os.getpid()}\n")
            self.held = True
            return True
        return False

    def release(self) -> None:
        if self.held:
            self.held = False
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass

    def wait_released(self, poll_s: float = 10.0, timeout_s: float | None = None) -> bool:
        """Block until nobody (alive) holds the lock; False if ``timeout_s`` passed first."""
        t0 = time.monotonic()
        while self.path.exists() and not self.stale():
            if timeout_s is not None and time.monotonic() - t0 > timeout_s:
                return False
            time.sleep(poll_s)
        return True

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def interrupt_on_sigterm() -> bool:
    """Make SIGTERM (``kill PID``, a job scheduler's stop) unwind like Ctrl-C: ``with`` blocks release their work
    locks and atomic writes remove their temporary files before the process ends. For a command's main thread;
    returns False where a handler cannot be installed (not the main thread)."""
    import signal

    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        signal.signal(signal.SIGTERM, _raise)
    except ValueError:
        return False
    return True
