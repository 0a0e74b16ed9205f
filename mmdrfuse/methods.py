"""Fusion methods by name: the core's own MMDRFuse, and the methods other packages register.

The core never imports the packages built on it (no import cycle): a package offers its methods through the
entry-point group ``mmdrfuse.methods``, whose entries name a mapping ``{name: spec}`` with
``spec.build(device=..., weights_root=...) -> method`` (this repository's ``baselines`` registers
``baselines:REGISTRY`` in pyproject.toml). A *method* has ``fuse(ir, vis) -> Tensor`` and ``to_uint8(out)``.
"""
from __future__ import annotations

from importlib import metadata
from typing import Mapping

from mmdrfuse.errors import MMDRFuseError
from mmdrfuse.names import unknown

GROUP = "mmdrfuse.methods"
CORE = "mmdrfuse"  # the name of the core's own method (its weights are chosen separately)


def registries() -> dict[str, Mapping]:
    """Every registered package's ``{name: spec}`` mapping, by entry-point name (loaded on each call: cheap, and a
    package installed meanwhile is seen)."""
    out = {}
    for ep in metadata.entry_points(group=GROUP):
        try:
            out[ep.name] = ep.load()
        except ImportError as exc:  # a registered package that cannot be imported here
            out[ep.name] = {}
            out.setdefault("_errors", {})[ep.name] = str(exc)
    return out


def names() -> list[str]:
    """Every known method name: ``mmdrfuse`` and the registered ones."""
    regs = registries()
    return [CORE, *sorted(n for k, r in regs.items() if k != "_errors" for n in r)]


def spec(name: str):
    """The registered spec of a non-core method (case-insensitive), or a did-you-mean error."""
    key = name.strip().lower()
    regs = registries()
    for k, reg in regs.items():
        if k != "_errors" and key in reg:
            return reg[key]
    if not any(r for k, r in regs.items() if k != "_errors"):
        raise MMDRFuseError(f"method {name!r}: no method package is installed besides MMDRFuse (pip install -e . "
                            "in the repository registers the baselines)")
    raise unknown("method", name, names())
