"""``mmdrfuse`` command line: one sub-command per module, each exposing ``add_arguments(parser)`` and ``run(args)``.

Only the module of the sub-command being run is imported (``mmdrfuse --help`` does not load torch). User errors
(:class:`mmdrfuse.errors.MMDRFuseError`) are printed as one line ``error: ...`` and exit with code 2; Ctrl-C at any
moment, start-up included, prints one line saying what was kept and how to go on (a module's ``RESUME_HINT``) and
exits with 130.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "fuse": ("mmdrfuse.folders", "fuse folders of image pairs with MMDRFuse or a baseline"),
    "evaluate": ("mmdrfuse.evaluate", "compute fusion metrics for a folder of fused images"),
    "train": ("mmdrfuse.train.cli", "train the teacher or the student"),
    "export": ("mmdrfuse.export", "export the student (ONNX)"),
    "data": ("mmdrfuse.data.cli", "list or download the evaluation data sets"),
    "weights": ("mmdrfuse.checkpoints", "list named weights or download them"),
}
DEFAULT_HINT = "nothing more was written"


def _command_of(argv: list[str]) -> str | None:
    """The sub-command named in ``argv`` (its first non-option word), if it is one of :data:`COMMANDS`."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; the options of sub-command ``only`` (None: every sub-command's, which imports them all)."""
    parser = argparse.ArgumentParser(prog="mmdrfuse", description="MMDRFuse reproduction suite: fuse, evaluate, "
                                     "train, export.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        if only in (None, name):
            importlib.import_module(module).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    hint = DEFAULT_HINT
    try:
        command = _command_of(argv)
        if command is None:  # --help, no command or a misspelt one: argparse answers without importing torch
            build_parser(only="").parse_args(argv)
            return 2  # pragma: no cover - parse_args exits first
        from mmdrfuse.errors import MMDRFuseError

        args = build_parser(only=command).parse_args(argv)
        module = importlib.import_module(args._module)
        hint = getattr(module, "RESUME_HINT", DEFAULT_HINT)
        from mmdrfuse.lock import interrupt_on_sigterm
        from mmdrfuse.memory import keep_freed_memory

        keep_freed_memory()  # a command owns its process: keep freed maps warm (see mmdrfuse/memory.py)
        interrupt_on_sigterm()  # kill PID: locks released, no temp files left (mmdrfuse/lock.py)
        try:
            return int(module.run(args) or 0)
        except MMDRFuseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
    except KeyboardInterrupt:
        print(f"interrupted; {hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
