"""``squeezebert serve``: load the model, then run the app under uvicorn until SIGTERM / SIGINT.

On a signal the server stops accepting connections, answers every request it has accepted, stops the batch
engine and returns (the command exits 0).
"""

from __future__ import annotations

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
                host, port = self.servers[0].sockets[0].getsockname()[:2]
                print(f"squeezebert serve: ready on http://{host}:{port} ({what})", file=log, flush=True)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=None,  # finish every accepted request
        limit_concurrency=None,
    )
    Server(config).run()
