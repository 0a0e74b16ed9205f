"""Work locks (mmdrfuse.lock): exclusive, released on exit, stale ones taken over, foreign ones respected."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

from mmdrfuse.lock import WorkLock


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has this pid now (pids are not reused this fast)


def test_lock_is_exclusive_and_released(tmp_path):
    path = tmp_path / "sub" / "job.lock"
    a, b = WorkLock(path), WorkLock(path)
    with a as got:
        assert got and path.read_text().split() == [socket.gethostname(), str(os.getpid())]
        assert a.owner() == (socket.gethostname(), os.getpid())
        assert not b.acquire()          # held by a (same process, alive): not stale
    assert not path.exists()
    assert b.acquire() and path.exists()
    b.release()
    assert not path.exists()


def test_lock_released_on_error(tmp_path):
    path = tmp_path / "job.lock"
    try:
        with WorkLock(path):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert not path.exists()


def test_stale_lock_of_dead_process_is_taken_over(tmp_path):
    path = tmp_path / "job.lock"
    path.write_text(f"{socket.gethostname()} {_dead_pid()}\n")
    lock = WorkLock(path)
    assert lock.stale() and lock.acquire()
    assert lock.owner() == (socket.gethostname(), os.getpid())
    lock.release()


def test_live_or_foreign_lock_is_respected(tmp_path):
    path = tmp_path / "job.lock"
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as child:
        try:
            path.write_text(f"{socket.gethostname()} {child.pid}\n")
            lock = WorkLock(path)
            assert not lock.stale() and not lock.acquire()
            assert not lock.wait_released(poll_s=0.01, timeout_s=0.05)
        finally:
            child.kill()
    child.wait()
    assert WorkLock(path).wait_released(poll_s=0.01, timeout_s=5)  # the holder died: stale, not waited for
    path.write_text(f"some-other-host {_dead_pid()}\n")  # another host's pid cannot be checked from here
    assert not WorkLock(path).stale() and not WorkLock(path).acquire()


def test_sigterm_unwinds_and_releases_the_lock(tmp_path):
    """A command killed with SIGTERM leaves no lock behind (interrupt_on_sigterm turns it into KeyboardInterrupt)."""
    path = tmp_path / "job.lock"
    code = (f"import os, signal\nfrom mmdrfuse.lock import WorkLock, interrupt_on_sigterm\n"
            f"assert interrupt_on_sigterm()\n"
            f"with WorkLock({str(path)!r}) as got:\n"
            f"    assert got and os.path.exists({str(path)!r})\n"
            f"    os.kill(os.getpid(), signal.SIGTERM)\n"
            f"    import time; time.sleep(30)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    assert not path.exists()
