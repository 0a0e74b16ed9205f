"""User-facing errors.

Anything a user can cause (a missing file, a size mismatch, an unknown weights name, a corrupt image)
raises :class:`MMDRFuseError` with a one-line message that names the file and says what to do. The
command-line entry point prints that line and exits with code 2; nothing else prints a traceback.
"""
from __future__ import annotations


class MMDRFuseError(Exception):
    """An error caused by user input, reported as one line by the CLI (exit code 2)."""

    exit_code = 2


class BadInputError(MMDRFuseError):
    """A bad input file or pair (missing partner, corrupt, size mismatch, empty folder)."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message)
        self.path = path


class NonFiniteError(MMDRFuseError):
    """NaN or inf where finite numbers are required (weights, inputs, network outputs)."""


def did_you_mean(name: str, choices, what: str, where: str | None = None) -> MMDRFuseError:
    """The suite's one "unknown name" error (methods, weights, data sets, metrics, targets...): the closest known
    names first, then all of them. Raise what it returns."""
    import difflib

    choices = sorted(str(c) for c in choices)
    close = difflib.get_close_matches(str(name).lower(), choices, n=3, cutoff=0.5) or \
        difflib.get_close_matches(str(name), choices, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    prefix = f"{where}: " if where else ""
    return MMDRFuseError(f"{prefix}unknown {what} {name!r}{hint} (known: {', '.join(choices)})")
