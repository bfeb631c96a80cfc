"""Command-line flags generated from the fields of a dataclass, as ``transformers.HfArgumentParser`` does.

A library dataclass describes each option once: its name, type, default and help. The help and the spelling of the
flag live in the field's ``metadata``, so the library needs nothing from this module::

    @dataclass
    class Options:
        rounds: int = field(default=10, metadata={"help": "timed rounds"})
        progress: bool = field(default=True, metadata={"help": "show a progress bar"})

gives ``--rounds N`` (``help="timed rounds (default 10)"``) and ``--no-progress``. Metadata keys:

- ``help``: the help text; the default is appended to it.
- ``flag``: the flag, when it is not ``--`` plus the field name with dashes (e.g. ``"--epochs"`` for ``num_epochs``).
- ``aliases``: more spellings of the flag (e.g. ``("--lr",)``).
- ``choices``: the allowed values (``Literal[...]`` annotations give them too).
- ``cli``: ``False`` leaves the field off the command line (it keeps its default).

Types: ``bool`` becomes a switch (``--name`` when the default is False; ``--no-name``, with a help saying so, when
it is True); ``int``, ``float``, ``str``, their ``| None`` forms and ``Literal`` take one value; ``list[...]`` and
``tuple[..., ...]`` take one or more. A field without a default is a required flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def _value_type(annotation: Any) -> tuple[Any, type | None]:
    """``(the type of one value, list or tuple when the flag takes several values)`` of a field annotation, with
    ``| None`` removed."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) != 1:
            raise TypeError(f"cannot make a flag of the union {annotation}")
        return _value_type(members[0])
    if origin in (list, tuple):
        return typing.get_args(annotation)[0], origin
    return annotation, None


def _flag_name(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _help(f: dataclasses.Field, default: Any) -> str:
    text = f.metadata.get("help", "")
    if default is None or isinstance(default, bool) or default == ():
        return text
    shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else default
    return f"{text} (default {shown})" if text else f"default {shown}"


def add_dataclass_arguments(
    parser: argparse.ArgumentParser, cls: type, title: str | None = None, defaults: dict[str, Any] | None = None
) -> argparse.ArgumentParser:
    """Add one flag per field of the dataclass ``cls`` to ``parser`` (in an argument group named ``title``).

    Args:
        parser: the parser (or subparser) to extend.
        cls: a dataclass whose fields carry the ``metadata`` described in this module's docstring.
        title: the heading of the flags in ``--help``; none puts them with the parser's own options.
        defaults: field defaults that differ for this command (e.g. another learning rate); the dataclass's own
            default otherwise.

    Returns:
        ``parser``, for chaining.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"cls must be a dataclass, got {cls!r}")
    group = parser.add_argument_group(title) if title else parser
    hints = typing.get_type_hints(cls)
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("cli", True) is False:
            continue
        if f.name in defaults:
            default = defaults[f.name]
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        required = default is dataclasses.MISSING
        value_type, container = _value_type(hints[f.name])
        options: dict[str, Any] = {"dest": f.name, "help": _help(f, None if required else default)}
        if value_type is bool:
            flag = f.metadata.get("flag") or ("--no-" if default is True else "--") + f.name.replace("_", "-")
            options.update(action="store_false" if default is True else "store_true", default=bool(default))
            if default is True:
                options["help"] += " (on by default; this flag turns it off)"
            group.add_argument(flag, *f.metadata.get("aliases", ()), **options)
            continue
        choices = f.metadata.get("choices")
        if typing.get_origin(value_type) is Literal:
            choices = choices or typing.get_args(value_type)
            value_type = type(choices[0])
        if choices is not None:
            options["choices"] = tuple(choices)
        else:  # named after the flag the user types, not the field (``--epochs EPOCHS``, not ``NUM_EPOCHS``)
            options["metavar"] = _flag_name(f).lstrip("-").replace("-", "_").upper()
        if container is not None:
            options["nargs"] = "+"
        options["type"] = value_type
        if required:
            options["required"] = True
        else:
            options["default"] = default
        group.add_argument(_flag_name(f), *f.metadata.get("aliases", ()), **options)
    return parser


def dataclass_from_args(cls: type[T], namespace: argparse.Namespace, **overrides: Any) -> T:
    """An instance of ``cls`` from the parsed flags of :func:`add_dataclass_arguments` (and ``overrides``)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.init and hasattr(namespace, f.name):
            value = getattr(namespace, f.name)
            container = _value_type(hints[f.name])[1]
            values[f.name] = container(value) if container is not None and isinstance(value, list) else value
    return cls(**{**values, **overrides})
