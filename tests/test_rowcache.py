"""Per-patch row caches (mmdrfuse.rowcache): partial hits, the all-or-nothing mode, byte budgets, layouts, drops."""
from __future__ import annotations

import numpy as np
import torch

from mmdrfuse.rowcache import Budget, RowCache


def _source(n=10):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 4, 5, generator=g), torch.rand(n, 1, 4, 5, generator=g)


class _Counting:
    """compute(positions) over a fixed id order, recording which ids it was asked for."""

    def __init__(self, data, ids, channels_last=False):
        self.data, self.ids, self.cl, self.asked = data, list(ids), channels_last, []

    def __call__(self, pos):
        sel = [self.ids[j] for j in pos]
        self.asked.append(sel)
        out = [d[sel] for d in self.data]
        return [o.contiguous(memory_format=torch.channels_last) for o in out] if self.cl else out


def test_partial_hits_compute_only_the_misses():
    data = _source()
    c = RowCache(10**6)
    first = _Counting(data, [1, 3, 5])
    got = c.fetch([1, 3, 5], first)
    assert first.asked == [[1, 3, 5]] and all(torch.equal(g, d[[1, 3, 5]]) for g, d in zip(got, data))
    second = _Counting(data, [5, 2, 1, 7])
    got = c.fetch([5, 2, 1, 7], second)
    assert second.asked == [[2, 7]]
    assert all(torch.equal(g, d[[5, 2, 1, 7]]) for g, d in zip(got, data))
    third = _Counting(data, [7, 1])
    got = c.fetch([7, 1], third)
    assert third.asked == [] and all(torch.equal(g, d[[7, 1]]) for g, d in zip(got, data))
    assert (c.hits, c.misses) == (4, 5) and len(c) == 5


def test_all_or_nothing_mode_recomputes_the_whole_batch():
    data = _source()
    c = RowCache(10**6, partial=False)
    c.fetch([1, 3], _Counting(data, [1, 3]))
    again = _Counting(data, [3, 4])
    got = c.fetch([3, 4], again)
    assert again.asked == [[3, 4]] and all(torch.equal(g, d[[3, 4]]) for g, d in zip(got, data))
    hit = _Counting(data, [4, 1])
    c.fetch([4, 1], hit)
    assert hit.asked == []


def test_budget_is_shared_and_drop_returns_bytes():
    data = _source()
    per = sum(d[0].numel() * d.element_size() for d in data)
    budget = Budget(3 * per)
    a, b = RowCache(budget), RowCache(budget)
    a.fetch([0, 1], _Counting(data, [0, 1]))
    b.fetch([2, 3], _Counting(data, [2, 3]))  # only one of these fits
    assert len(a) == 2 and len(b) == 1 and budget.used == 3 * per
    a.drop([1, 9])
    assert len(a) == 1 and budget.used == 2 * per and 1 not in a
    b.clear()
    assert budget.used == per
    off = RowCache(0)
    off.fetch([0], _Counting(data, [0]))
    assert len(off) == 0


def test_channels_last_rows_keep_their_layout():
    data = _source()
    c = RowCache(10**6)
    c.fetch([0, 2], _Counting(data, [0, 2], channels_last=True))
    got = c.fetch([2, 0, 4], _Counting(data, [2, 0, 4], channels_last=True))
    assert got[0].is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(g, d[[2, 0, 4]]) for g, d in zip(got, data))
    full = c.fetch(np.array([4, 2]), _Counting(data, [4, 2], channels_last=True))
    assert full[0].is_contiguous(memory_format=torch.channels_last) and torch.equal(full[0], data[0][[4, 2]])
