"""Checking names a user typed (targets, methods, data sets, profiles...) with a "did you mean" on a miss."""
from __future__ import annotations

import difflib
from typing import Iterable

from mmdrfuse.errors import MMDRFuseError


def _key(s: str) -> str:
    return s.lower().replace("_", "-")


def unknown(kind: str, name: str, known: Iterable[str], where: str | None = None) -> MMDRFuseError:
    """The suite's one-line error for an unknown ``name`` of ``kind`` (methods, weights, data sets, targets, config
    keys...): the closest known names, then all of them; ``where`` (a file, say) prefixes the message."""
    known = sorted(dict.fromkeys(known), key=str.lower)
    by_key = {_key(k): k for k in known}
    close = [by_key[c] for c in difflib.get_close_matches(_key(name), list(by_key), n=2, cutoff=0.5)]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    prefix = f"{where}: " if where else ""
    return MMDRFuseError(f"{prefix}unknown {kind} {name!r}{hint} (known: {', '.join(known)})")


def check(kind: str, name: str, known: Iterable[str]) -> str:
    """The known name matching ``name`` (case, ``_`` / ``-`` ignored); raises :func:`unknown`'s error otherwise."""
    known = list(known)
    for k in known:
        if _key(k) == _key(name):
            return k
    raise unknown(kind, name, known)
