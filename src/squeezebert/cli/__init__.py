"""The ``squeezebert`` command: a thin layer over the library's typed calls.

Each subcommand is a :class:`~squeezebert.cli.command.Command` from one of five modules: the pipelines
(``fill-mask`` ... ``embed``), the tools (``info``, ``bench``, ``convert-bert``), training (``train``,
``pretrain``), ``export`` and ``serve``. :func:`main` builds the parser from that table and runs the command.
Mistakes of the user (a :class:`UserError`, a ``ValueError`` / ``OSError`` raised by the library on bad arguments,
files or model names, a missing optional extra) print one line and exit with status 2; ``--debug`` shows their
traceback instead.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import PackageNotFoundError, version

from ..extras import MissingExtraError
from .command import Command, UserError, add_debug_flag

__all__ = ["Command", "UserError", "build_parser", "main"]

USER_ERROR = 2


def commands() -> tuple[Command, ...]:
    """Every subcommand, in the order ``squeezebert --help`` lists them."""
    from .export_commands import COMMANDS as EXPORT_COMMANDS
    from .pipeline_commands import COMMANDS as PIPELINE_COMMANDS
    from .serve_commands import COMMANDS as SERVE_COMMANDS
    from .tool_commands import COMMANDS as TOOL_COMMANDS
    from .training_commands import COMMANDS as TRAINING_COMMANDS

    return (*PIPELINE_COMMANDS, *TOOL_COMMANDS, *TRAINING_COMMANDS, *EXPORT_COMMANDS, *SERVE_COMMANDS)


def package_version() -> str:
    try:
        return version("squeezebert")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    """The ``squeezebert`` parser with every subcommand of :func:`commands`."""
    parser = argparse.ArgumentParser(prog="squeezebert", description="SqueezeBERT pipelines, tools and training.")
    parser.add_argument("--version", action="version", version=f"squeezebert {package_version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of errors")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")
    for command in commands():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.description or command.help)
        add_debug_flag(sub)
        command.add_arguments(sub)
        sub.set_defaults(run=command.run)
    return parser


def _one_line(err: BaseException) -> str:
    message = str(err).strip()
    return message.splitlines()[0] if message else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    """Run the ``squeezebert`` command on ``argv`` (default: the process's arguments); return the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse: usage errors (status 2), --help and --version (status 0)
        return exit_.code if isinstance(exit_.code, int) else USER_ERROR
    try:
        return args.run(args)
    except BrokenPipeError:  # the reader of stdout went away (``| head``): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 0
    except KeyboardInterrupt:
        return 130
    except (UserError, ValueError, OSError, MissingExtraError) as err:
        if args.debug:
            raise
        print(f"squeezebert {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return USER_ERROR
