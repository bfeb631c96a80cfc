"""A subcommand of ``squeezebert``, and the error its code raises for bad input."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


class UserError(Exception):
    """Bad input from the person at the command line: printed as one line, exit status 2."""


@dataclass(frozen=True)
class Command:
    """One ``squeezebert`` subcommand.

    Args:
        name: what the user types (``fill-mask``, ``train``, ...).
        help: one line for ``squeezebert --help`` (and the subcommand's description unless ``description``).
        add_arguments: adds the subcommand's flags to its parser.
        run: runs it on the parsed flags; returns the exit status.
        description: a longer text for ``squeezebert NAME --help``.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug`` on a (sub)command parser; it leaves the value alone unless given, so it can appear at any level."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of errors")
