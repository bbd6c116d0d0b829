"""The ``skinattn`` command line.

Each feature area registers its own subcommands from a module in this package, so that adding a command
never touches the others. Heavy imports (torch, timm) happen inside the command handlers, which keeps
``skinattn --help`` fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from skinattn import __version__
from skinattn.errors import SkinattnError

# Modules with a ``register(subparsers)`` function, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "skinattn.cli.models",
    "skinattn.cli.ingest",
    "skinattn.cli.prepare",
    "skinattn.cli.train",
    "skinattn.cli.evaluate",
    "skinattn.cli.compare",
    "skinattn.cli.registry",
    "skinattn.cli.pipeline",
    "skinattn.cli.score",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skinattn",
        description="Train, evaluate, register and score Soft-Attention CNN classifiers of dermoscopy images "
        "(serving: `python -m serving`, see docs/serving.md).",
    )
    parser.add_argument("--version", action="version", version=f"skinattn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except SkinattnError as exc:
        print(f"skinattn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # A path the file system refuses (an output under an existing file, no permission, a full disk):
        # the path and the reason, not a traceback. Errors without a path are bugs and keep their traceback.
        if exc.filename is None:
            raise
        where = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
        print(f"skinattn {args.command}: error: {where}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"skinattn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
