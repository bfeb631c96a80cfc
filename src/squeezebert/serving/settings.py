"""The settings of ``squeezebert serve``: the flags of Hugging Face's text-embeddings-inference, with its defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class ServeSettings:
    """What to serve and the limits of the server; the command line's flags are generated from these fields.

    ``max_input_length`` defaults to the model's window (``max_position_embeddings``, capped by the tokenizer's
    ``model_max_length``); ``max_batch_requests`` to no limit but ``max_batch_tokens``.
    """

    model: str = field(
        metadata={
            "help": "model folder (or hub id); with --backend onnx a to_onnx folder",
            "flag": "--model",
            "aliases": ("-m",),
        }
    )
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8080, metadata={"help": "port to listen on (0: any free port, printed when ready)"})
    int8: bool = field(
        default=False,
        metadata={"help": "run a dynamically int8-quantised model (the ONNX int8 graph with --backend onnx)"},
    )
    backend: Literal["torch", "onnx"] = field(
        default="torch", metadata={"help": "torch (PyTorch) or onnx (ONNX Runtime on a to_onnx folder)"}
    )
    api_key: str | None = field(
        default=None,
        metadata={"help": "require 'Authorization: Bearer KEY' on every route but GET /health and the page at GET /"},
    )
    max_batch_tokens: int = field(
        default=16384, metadata={"help": "most tokens (padded length x rows) in one forward pass"}
    )
    max_batch_requests: int | None = field(
        default=None, metadata={"help": "most requests in one forward pass (default: no limit)"}
    )
    max_client_batch_size: int = field(default=32, metadata={"help": "most inputs in one request"})
    max_concurrent_requests: int = field(
        default=512, metadata={"help": "most requests in flight; more get 429 at once"}
    )
    max_input_length: int | None = field(
        default=None, metadata={"help": "most tokens of one input (default: the model's window)"}
    )
    auto_truncate: bool = field(default=False, metadata={"help": "truncate long inputs when the request does not say"})
    payload_limit: int = field(default=2_000_000, metadata={"help": "largest request body in bytes; larger gets 413"})
    threads: int | None = field(
        default=None, metadata={"help": "torch intra-op threads for the model (default: torch's)"}
    )

    def __post_init__(self) -> None:
        positive = ("port", "max_batch_tokens", "max_client_batch_size", "max_concurrent_requests", "payload_limit")
        for name in positive:
            value = getattr(self, name)
            lowest = 0 if name == "port" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ValueError(f"{name} must be an int >= {lowest}, got {value!r}")
        for name in ("max_batch_requests", "max_input_length", "threads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        if self.port > 65535:
            raise ValueError(f"port must be at most 65535, got {self.port}")
        if self.backend not in ("torch", "onnx"):
            raise ValueError(f"backend must be torch or onnx, got {self.backend!r}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty")
