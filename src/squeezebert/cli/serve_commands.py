"""The ``serve`` subcommand: an HTTP server for a model (``pip install 'squeezebert[serve]'``)."""

from __future__ import annotations

import argparse

from .arguments import add_dataclass_arguments, dataclass_from_args
from .command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..serving.settings import ServeSettings

    add_dataclass_arguments(parser, ServeSettings)


def _run(args: argparse.Namespace) -> int:
    from ..serving import ServeSettings, serve

    serve(dataclass_from_args(ServeSettings, args))
    return 0


COMMANDS = (
    Command(
        "serve",
        "serve a model over HTTP (text-embeddings-inference's API, dynamic batching)",
        _add_arguments,
        _run,
        description=(
            "Serve a model folder over HTTP: /embed, /v1/embeddings, /predict, /rerank, /fill-mask, "
            "/token-classification, /question-answering, /multiple-choice, /tokenize, /decode, /info, /health, "
            "/metrics. Logs one line when ready; SIGTERM or SIGINT finishes the accepted requests and exits 0. "
            "Needs pip install 'squeezebert[serve]'."
        ),
    ),
)
