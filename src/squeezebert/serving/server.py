"""``squeezebert serve``: load the model, then run the app under uvicorn until SIGTERM / SIGINT.

On a signal the server stops accepting connections, answers every request it has accepted, stops the batch
engine and returns (the command exits 0).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from .settings import ServeSettings


def serve(settings: ServeSettings, log: Any = None) -> None:
    """Serve ``settings.model`` until a SIGTERM or SIGINT; one line on ``log`` (default stderr) says when it is ready:
    ``squeezebert serve: ready on http://HOST:PORT (model ..., head ..., backend ...)``."""
    import prometheus_client
    import torch
    import uvicorn

    from .app import build_app
    from .model import load_served_model

    log = log or sys.stderr
    prometheus_client.disable_created_metrics()  # no ``*_created`` timestamp series beside each counter
    sock = bind(settings.host, settings.port)  # before the model loads: a taken port fails at once
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    served = load_served_model(settings)
    app = build_app(served, settings)
    tasks = ", ".join(served.pipelines)
    what = f"model {served.model_id}, head {served.head} ({tasks}), backend {served.backend}"
    what += " int8" if served.int8 else " fp32"

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # handled here (a graceful exit, status 0): uvicorn must not re-raise it

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets)
            if not self.should_exit:
                host, port = sock.getsockname()[:2]
                host = f"[{host}]" if ":" in host else host
                print(f"squeezebert serve: ready on http://{host}:{port} ({what})", file=log, flush=True)

    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=None,  # finish every accepted request
    )
    with sock:
        Server(config).run(sockets=[sock])


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (listening starts with the server); an OSError naming the address."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, protocol)
    except OSError as err:
        raise OSError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock
