"""The errors a request can get, with text-embeddings-inference's ``error_type`` names and the status of each."""

from __future__ import annotations

from typing import Any

# error_type -> HTTP status (validation errors of a request's content are 422; a body too large is 413)
STATUS = {
    "validation": 422,
    "tokenizer": 422,
    "empty": 400,
    "unauthorized": 401,
    "not_found": 404,
    "payload_too_large": 413,
    "overloaded": 429,
    "backend": 424,
    "unhealthy": 503,
}


class ServeError(Exception):
    """A request that cannot be answered: ``error_type`` (a key of :data:`STATUS`) sets the HTTP status.

    Args:
        error_type: ``validation``, ``tokenizer``, ``empty``, ``overloaded``, ``backend``, ``unhealthy``...
        message: what went wrong, for the client.
        reason: the ``reason`` label of the failure metric (default: ``error_type``).
        status: the HTTP status, when not that of ``error_type`` (400 for a body that is not JSON).
    """

    def __init__(self, error_type: str, message: str, reason: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        if error_type not in STATUS:
            raise ValueError(f"unknown error_type {error_type!r}")
        self.error_type = error_type
        self.message = message
        self.reason = reason or error_type
        self.status = status or STATUS[error_type]

    def body(self) -> dict[str, Any]:
        """Text-embeddings-inference's error body."""
        return {"error": self.message, "error_type": self.error_type}

    def openai_body(self) -> dict[str, Any]:
        """OpenAI's error body, for ``/v1/embeddings``: ``type`` is ``invalid_request_error`` for a bad request and
        ``server_error`` for a busy or failing server (424, 429, 503); ``code`` is the ``error_type``."""
        kind = "server_error" if self.status >= 424 else "invalid_request_error"
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.error_type}}


def validation(message: str, reason: str = "validation") -> ServeError:
    return ServeError("validation", message, reason)
