"""``mmdrfuse`` command line: one sub-command per module, each exposing ``add_arguments(parser)`` and ``run(args)``.

User errors (:class:`mmdrfuse.errors.MMDRFuseError`) are printed as one line ``error: ...`` and exit with code 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS: dict[str, tuple[str, str]] = {
    "fuse": ("mmdrfuse.fusion", "fuse folders of image pairs with MMDRFuse or a baseline"),
    "evaluate": ("mmdrfuse.evaluate", "compute fusion metrics for a folder of fused images"),
    "train": ("mmdrfuse.training", "train the teacher or the student"),
    "export": ("mmdrfuse.export", "export the student (ONNX)"),
    "data": ("mmdrfuse.data", "list or download the evaluation data sets"),
    "weights": ("mmdrfuse.checkpoints", "list named weights or download them"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mmdrfuse", description="MMDRFuse reproduction suite: fuse, evaluate, train, export.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=module)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as exc:  # a sub-command whose module is not built yet
            if exc.name != module:
                raise
            p.set_defaults(_missing=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    from mmdrfuse.errors import MMDRFuseError

    args = build_parser().parse_args(argv)
    from mmdrfuse.lock import interrupt_on_sigterm
    from mmdrfuse.memory import keep_freed_memory

    keep_freed_memory()  # a command owns its process: keep freed maps warm (see mmdrfuse/memory.py)
    interrupt_on_sigterm()  # kill PID: locks released, no temp files left (mmdrfuse/lock.py)
    if getattr(args, "_missing", False):
        print(f"error: 'mmdrfuse {args.command}' is not implemented yet", file=sys.stderr)
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except MMDRFuseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
