"""The metrics registry: each metric is registered in the module that defines it, with :func:`register`.

    @register("SD", higher_is_better=True, paper=True, needs_sources=False, impl=_sd,
              description="standard deviation of F (population)")
    def SD(fused, a=None, b=None, *, dtype=torch.float64, reduction="none"):
        return measure("SD", fused, a, b, dtype=dtype, reduction=reduction)

The decorator records a :class:`MetricSpec` under the name in :data:`METRICS` and returns the function unchanged;
:func:`measure` runs a registered metric on one batch with the size and sources its spec states, so that each fact
(direction, paper flag, smallest side, sources needed) is written once. :mod:`mmdrfuse.metrics` imports the defining
modules and puts the paper's six first, in its column order; the other metrics keep their registration order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from torch import Tensor

from mmdrfuse.metrics._context import Batch
from mmdrfuse.metrics._primitives import reduce


@dataclass(frozen=True)
class MetricSpec:
    """One registered metric."""

    fn: Callable[..., Tensor]  # fn(fused, a, b, *, dtype, reduction) -> Tensor
    higher_is_better: bool
    in_paper: bool  # one of the paper's six (Tables 1, 2, 4, 5)
    description: str  # one line
    needs_sources: bool = True  # False for the fused-only metrics (SD, EN, SF, AG, EI)
    min_size: int = 1  # smallest image side the metric accepts
    impl: Callable[[Batch], Tensor] | None = None  # the same metric on a shared Batch (used by compute_all)


METRICS: dict[str, MetricSpec] = {}  # name -> spec; re-exported (and ordered) by mmdrfuse.metrics


def register(name: str, *, higher_is_better: bool, description: str, impl: Callable[[Batch], Tensor],
             paper: bool = False, needs_sources: bool = True, min_size: int = 1) -> Callable:
    """Decorator registering the public metric function it decorates as ``name`` (returned unchanged).

    ``impl(batch) -> Tensor`` is the same metric on a shared :class:`Batch`; ``paper``: one of the paper's six;
    ``needs_sources``: False for metrics of the fused image only; ``min_size``: the smallest image side accepted.
    A name registered twice raises ValueError.
    """
    if not isinstance(higher_is_better, bool):
        raise TypeError(f"metric {name!r}: higher_is_better must be True or False")
    if not description or "\n" in description:
        raise ValueError(f"metric {name!r}: give a one-line description")
    if not isinstance(min_size, int) or min_size < 1:
        raise ValueError(f"metric {name!r}: min_size must be a positive integer, got {min_size!r}")

    def decorate(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice ({METRICS[name].fn.__module__} and "
                             f"{fn.__module__})")
        METRICS[name] = MetricSpec(fn=fn, higher_is_better=higher_is_better, in_paper=paper,
                                   description=description, needs_sources=needs_sources, min_size=min_size,
                                   impl=impl)
        return fn

    return decorate


def measure(name: str, fused: Tensor, a: Tensor | None, b: Tensor | None, *, dtype: torch.dtype,
            reduction: str) -> Tensor:
    """Registered metric ``name`` on one batch: the inputs validated for its smallest side (the sources ignored
    when it does not need them), its ``impl``, then ``reduction``."""
    spec = METRICS[name]
    batch = Batch(fused, a, b, dtype=dtype, min_size=spec.min_size, need_sources=spec.needs_sources)
    return reduce(spec.impl(batch), reduction)


def lead_with(names: Iterable[str]) -> None:
    """Reorder :data:`METRICS` in place: ``names`` first, in that order, then the others in registration order."""
    names = list(names)
    first = {n: METRICS[n] for n in names}
    rest = {n: s for n, s in METRICS.items() if n not in first}
    METRICS.clear()
    METRICS.update(first)
    METRICS.update(rest)
