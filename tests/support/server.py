"""``squeezebert serve`` in tests: the real command in a subprocess on a free loopback port, or the app in-process.

``serve_process(model, *flags)`` starts ``python -m squeezebert serve -m MODEL --port 0 FLAGS`` on 127.0.0.1,
waits for its ready line on stderr (``squeezebert serve: ready on http://127.0.0.1:PORT (...)``) and yields a
:class:`ServerProcess` (``.url``); on leaving it sends SIGTERM and waits, then kills what is left. Everything is
bounded in time.

``served_client(model, **settings)`` builds the app in this process and yields an ``httpx.AsyncClient`` on it
(ASGITransport, no socket), with the batch engine running; ``client.app`` is the app, for monkeypatching.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

READY = re.compile(r"squeezebert serve: ready on (http://\S+) \(")
START_TIMEOUT = 120.0  # seconds: loading a small model takes a few, a busy 2-core machine more
STOP_TIMEOUT = 60.0


class ServerProcess:
    """A running ``squeezebert serve``: ``url``, ``process``, and the stderr lines it wrote so far."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: list[str] = []
        self.url = ""
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            match = READY.match(line)
            if match:
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        if not self._ready.wait(timeout) or not self.url:
            self.kill()
            raise AssertionError(f"squeezebert serve did not get ready in {timeout:.0f} s:\n{self.stderr}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT) -> int:
        """Send ``sig`` and return the exit status (killing the process if it outlives ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"squeezebert serve did not stop in {timeout:.0f} s after {sig!r}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)


@contextlib.contextmanager
def serve_process(model: str | Path, *flags: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Run ``squeezebert serve -m MODEL --host 127.0.0.1 --port 0 --threads 1 FLAGS`` until the block ends."""
    args = [sys.executable, "-m", "squeezebert", "serve", "-m", str(model), "--host", "127.0.0.1", "--port", "0"]
    if "--threads" not in flags:
        args += ["--threads", "1"]  # the test models are tiny; the machine has few cores
    server = ServerProcess([*args, *flags], env={**os.environ, **(env or {})})
    try:
        server.wait_ready()
        yield server
    finally:
        if server.process.poll() is None:
            server.stop()
        server.kill()


@contextlib.asynccontextmanager
async def served_client(model: str | Path, **settings: Any) -> AsyncIterator[Any]:
    """An ``httpx.AsyncClient`` on the app of ``ServeSettings(model=model, **settings)``, run in-process."""
    import httpx

    from squeezebert.serving import ServeSettings, build_app, load_served_model

    config = ServeSettings(model=str(model), **settings)
    app = build_app(load_served_model(config), config)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://serve.test", timeout=60) as client:
            client.app = app
            yield client
