"""Argument types shared by the commands: a bad number is an argparse error naming the option, not a
traceback from deep inside (a ThreadPoolExecutor refusing ``max_workers=-1``, say)."""

from __future__ import annotations

import argparse


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """An int of at least 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An int of at least 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


THREADS_HELP = (
    "CPU threads torch uses (torch.set_num_threads; default: torch's, one per core). On a machine other "
    "work shares, fewer threads (even 1) is often several times faster"
)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (see :data:`THREADS_HELP`); apply it with :func:`apply_threads_argument`."""
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N", help=THREADS_HELP)


def apply_threads_argument(args: argparse.Namespace) -> None:
    """Set torch's thread count from ``--threads`` (nothing when it was not given)."""
    if getattr(args, "threads", None) is not None:
        import torch

        torch.set_num_threads(args.threads)
