"""An HTTP load generator: the one client of the serving benchmark and of the server's load tests (tests/conftest.py
puts this folder on the import path).

- :func:`open_loop` fires requests on a fixed schedule (constant arrival rate), whether or not the earlier ones have
  answered, as k6's ``constant-arrival-rate`` does: a slow server meets more concurrent requests instead of fewer.
- :func:`closed_loop` keeps ``concurrency`` requests in flight: each worker sends its next request when its last one
  answered.

Both return one :class:`Result` per request; :func:`summarize` turns them into throughput and latency percentiles.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

# A request: (path, JSON body) POSTed to the server. A factory gets the request's number.
Request = tuple[str, Any]
RequestFactory = Callable[[int], Request]


@dataclass
class Result:
    """One request: when it was due and sent (seconds from the run's start), how long it took, what came back."""

    index: int
    due: float
    sent: float
    latency: float
    status: int  # 0: no HTTP answer (connection refused or reset, timeout)
    body: Any = None  # the decoded JSON answer, when there was one
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


def client(base_url: str, timeout: float = 60.0, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """An HTTP/1.1 client without a connection limit (an open-loop run needs as many connections as requests in
    flight) and without proxies from the environment."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, headers=headers, trust_env=False)


async def send(http: httpx.AsyncClient, index: int, request: Request, due: float, t0: float) -> Result:
    """POST one request and time it."""
    path, body = request
    sent = time.perf_counter() - t0
    try:
        response = await http.post(path, json=body)
    except httpx.HTTPError as err:
        return Result(index, due, sent, time.perf_counter() - t0 - sent, 0, error=f"{type(err).__name__}: {err}")
    latency = time.perf_counter() - t0 - sent
    try:
        decoded = response.json()
    except ValueError:
        decoded = response.text
    return Result(index, due, sent, latency, response.status_code, decoded)


async def open_loop(
    http: httpx.AsyncClient, make: RequestFactory, rate: float, count: int, t0: float | None = None
) -> list[Result]:
    """Send ``count`` requests at ``rate`` per second (request ``i`` due ``i / rate`` s after the call), each in its
    own task, and wait for all of them. Times are counted from ``t0`` (a ``time.perf_counter()``; default: now)."""
    if rate <= 0 or count < 0:
        raise ValueError(f"rate must be > 0 and count >= 0, got rate={rate}, count={count}")
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter() if t0 is None else t0
    begin = time.perf_counter() - t0
    tasks = []
    for i in range(count):
        due = begin + i / rate
        await asyncio.sleep(max(0.0, due - (time.perf_counter() - t0)))
        tasks.append(loop.create_task(send(http, i, make(i), due, t0)))
    return list(await asyncio.gather(*tasks))


async def closed_loop(
    http: httpx.AsyncClient,
    make: RequestFactory,
    concurrency: int,
    count: int | None = None,
    duration: float = math.inf,
) -> list[Result]:
    """``concurrency`` workers each send a request as soon as their previous one answered, until ``count`` requests
    were sent or ``duration`` seconds passed."""
    if concurrency < 1 or (count is None and duration == math.inf):
        raise ValueError(f"concurrency must be >= 1 and count or duration given: {concurrency}, {count}, {duration}")
    t0 = time.perf_counter()
    results: list[Result] = []
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while (count is None or next_index < count) and time.perf_counter() - t0 < duration:
            index, next_index = next_index, next_index + 1
            now = time.perf_counter() - t0
            results.append(await send(http, index, make(index), now, t0))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(results, key=lambda r: r.index)


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation between the closest ranks, as numpy's default."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Summary:
    requests: int
    failures: int
    seconds: float  # from the first send to the last answer
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_send_lag_ms: float  # how late the client sent its most delayed request: an open loop that kept its schedule


def summarize(results: list[Result]) -> Summary:
    """Throughput over the run's span and latency percentiles of the successful requests."""
    if not results:
        return Summary(0, 0, 0.0, 0.0, math.nan, math.nan, 0.0)
    span = max(r.sent + r.latency for r in results) - min(r.sent for r in results)
    latencies = [r.latency for r in results if r.ok]
    return Summary(
        requests=len(results),
        failures=sum(not r.ok for r in results),
        seconds=span,
        requests_per_s=len(results) / span if span > 0 else math.inf,
        p50_ms=1e3 * percentile(latencies, 50),
        p99_ms=1e3 * percentile(latencies, 99),
        max_send_lag_ms=1e3 * max(r.sent - r.due for r in results),
    )
