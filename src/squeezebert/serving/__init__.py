"""``squeezebert serve``: an HTTP inference server with text-embeddings-inference's API (``pip install
'squeezebert[serve]'``: uvicorn, Starlette, prometheus-client, orjson).

>>> from squeezebert.serving import ServeSettings, serve
>>> serve(ServeSettings(model="my-model/", port=8080))  # until SIGTERM / SIGINT

In-process (tests, embedding the app in another ASGI server): ``build_app(load_served_model(settings), settings)``.
"""

from __future__ import annotations

from typing import Any

from ..extras import MissingExtraError
from .settings import ServeSettings

__all__ = ["MissingServeExtraError", "ServeSettings", "build_app", "load_served_model", "require_serve_extra", "serve"]


class MissingServeExtraError(MissingExtraError):
    """uvicorn, Starlette, prometheus-client or orjson is missing."""


def require_serve_extra() -> None:
    """A :class:`MissingServeExtraError` naming ``squeezebert[serve]`` unless its packages import."""
    try:
        import orjson  # noqa: F401
        import prometheus_client  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise MissingServeExtraError(
            f"squeezebert serve needs the serve extra: pip install 'squeezebert[serve]' ({err.name} is missing)"
        ) from None


def serve(settings: ServeSettings, log: Any = None) -> None:
    """Serve a model until SIGTERM / SIGINT (see :func:`squeezebert.serving.server.serve`)."""
    require_serve_extra()
    from .server import serve as run

    run(settings, log)


def build_app(served: Any, settings: ServeSettings) -> Any:
    """The Starlette app (see :func:`squeezebert.serving.app.build_app`)."""
    require_serve_extra()
    from .app import build_app as build

    return build(served, settings)


def load_served_model(settings: ServeSettings) -> Any:
    """The pipelines ``settings.model`` serves (see :func:`squeezebert.serving.model.load_served_model`)."""
    from .model import load_served_model as load

    return load(settings)
