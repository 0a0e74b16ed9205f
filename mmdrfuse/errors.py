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

