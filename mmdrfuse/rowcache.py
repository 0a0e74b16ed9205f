"""Per-patch caches of fixed-shape tensors for training: one row (a list of tensors) per patch id, kept on the CPU
until a byte budget (which several caches may share) is used up.

:meth:`RowCache.fetch` returns the rows of a batch in order: cached rows are copied out, the missing ones are computed
by the caller's function and stored for next time. A cache is exact by construction (it returns the values computed
before); :meth:`RowCache.drop` forgets rows whose source changed (the refresh banks' taps when a slot is rewritten).
Channels-last batches keep their memory layout: their rows are stored H x W x C and returned as channels-last views.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

Compute = Callable[[np.ndarray], Sequence[torch.Tensor]]  # positions in ids -> one batch tensor per row field


class Budget:
    """A byte budget shared by caches (``total <= 0``: nothing is cached)."""

    def __init__(self, total: int):
        self.total = int(total)
        self.used = 0


def _channels_last(t: torch.Tensor) -> bool:
    return t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last)


class RowCache:
    """One row (a list of tensors) per integer id, up to ``budget`` bytes; rows keep the first value stored.

    ``partial=False`` reproduces the all-or-nothing use of the first trainer: a batch is served from the cache only
    when every id of it is cached, otherwise it is computed whole (and its uncached rows stored).
    """

    def __init__(self, budget: Budget | int, partial: bool = True):
        self.budget = budget if isinstance(budget, Budget) else Budget(budget)
        self.partial = partial
        self.rows: dict[int, list[torch.Tensor]] = {}
        self.layout: list[bool] | None = None  # per field: stored H x W x C (channels-last source)
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.rows)

    def __contains__(self, i) -> bool:
        return int(i) in self.rows

    def fetch(self, ids: Sequence[int] | np.ndarray, compute: Compute,
              device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """The rows of ``ids`` as batch tensors on ``device``; ``compute(positions)`` makes the missing ones."""
        ids = [int(i) for i in ids]
        miss = np.array([j for j, i in enumerate(ids) if i not in self.rows], dtype=np.int64)
        self.misses += len(miss)
        self.hits += len(ids) - len(miss)
        if len(miss) == 0:
            return [t.to(device) for t in self._gather(ids)]
        if len(miss) < len(ids) and not self.partial:
            miss = np.arange(len(ids))
        fresh = list(compute(miss))
        self._add([ids[j] for j in miss], fresh)
        if len(miss) == len(ids):
            return fresh
        got = dict(zip(miss.tolist(), range(len(miss))))
        out = []
        for f, t in enumerate(fresh):
            parts = [self._row_view(t, got[j], f) if j in got else self.rows[i][f].to(t.device)
                     for j, i in enumerate(ids)]
            out.append(self._unrow(torch.stack(parts), f).to(device))
        return out

    def drop(self, ids: Sequence[int] | np.ndarray) -> None:
        """Forget the rows of ``ids`` (their source changed); their bytes go back to the budget."""
        for i in ids:
            row = self.rows.pop(int(i), None)
            if row is not None:
                self.budget.used -= sum(t.numel() * t.element_size() for t in row)

    def clear(self) -> None:
        self.drop(list(self.rows))

    # -- internals
    def _row_view(self, t: torch.Tensor, j: int, f: int) -> torch.Tensor:
        return t[j].permute(1, 2, 0) if self.layout[f] else t[j]

    def _unrow(self, t: torch.Tensor, f: int) -> torch.Tensor:
        return t.permute(0, 3, 1, 2) if self.layout[f] else t

    def _gather(self, ids: list[int]) -> list[torch.Tensor]:
        fields = len(self.rows[ids[0]])
        return [self._unrow(torch.stack([self.rows[i][f] for i in ids]), f) for f in range(fields)]

    def _add(self, ids: list[int], batch: list[torch.Tensor]) -> None:
        if self.budget.total <= 0:
            return
        if self.layout is None:
            self.layout = [_channels_last(t) for t in batch]
        per = sum(t[0].numel() * t.element_size() for t in batch)
        for j, i in enumerate(ids):
            if i in self.rows:
                continue
            if self.budget.used + per > self.budget.total:
                return
            self.rows[i] = [self._row_view(t, j, f).detach().to("cpu", copy=True).contiguous()
                            for f, t in enumerate(batch)]
            self.budget.used += per
