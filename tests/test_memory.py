"""mmdrfuse.memory: the allocator policy of the command-line entry points."""
import platform

import pytest

from mmdrfuse import memory


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setitem(memory._state, "applied", None)


def test_disabled_by_environment(fresh, monkeypatch):
    monkeypatch.setenv(memory.MALLOC_ENV, "default")
    assert "disabled" in memory.keep_freed_memory()
    assert memory.malloc_policy() == memory.keep_freed_memory()  # idempotent, recorded


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_applied_on_glibc(fresh, monkeypatch):
    monkeypatch.delenv(memory.MALLOC_ENV, raising=False)
    desc = memory.keep_freed_memory()
    assert desc.startswith("glibc, freed memory kept (M_MMAP_THRESHOLD")
    assert memory.malloc_policy() == desc


def test_policy_before_any_call(fresh):
    assert "not called" in memory.malloc_policy()
