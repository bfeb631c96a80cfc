"""``squeezebert serve`` under load and faults: the real command on 127.0.0.1 (``support.server.serve_process``), a
small random checkpoint, and the benchmarks' load generator (benchmarks/loadgen.py).

- load: a constant arrival rate of 50 requests/s for 30 s (TEI's k6 criterion): no failure, every answer right;
- overload: with every slot taken by slow requests, a burst far above capacity is answered 429, every rejection
  before the first accepted request finishes; the accepted ones all succeed with the right answers;
- shutdown: SIGTERM with requests in flight: new connections are refused while they run, all of them complete
  with the right answers, the process exits 0;
- fuzz: 1,000 malformed requests (bodies, types, numbers, encodings, content types, headers, sizes) from a seeded
  generator: every answer 4xx, the server stays up, its resident memory stays flat.

Right answers: ``/embed`` equals the embeddings pipeline on the same checkpoint up to float32 rounding (the server
batches other rows and padding than the pipeline; :func:`support.numerics.assert_rounding_close`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import random
import re
import signal
import time
from pathlib import Path

import pytest
import torch
from support.numerics import assert_rounding_close, path_length
from support.server import serve_process

from squeezebert import SqueezeBertConfig, pipeline

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
loadgen = pytest.importorskip("loadgen")  # benchmarks/loadgen.py (tests/conftest.py puts benchmarks/ on the path)

TEXTS = [
    "The weather is lovely today.",
    "A short one.",
    "Completely different words about the stock market crash.",
    "Servers should answer every request they accept.",
]
# A slow request: a client batch of inputs at the model's 512-token window (32 rows: 16k tokens, one full batch).
LONG_TEXT = " ".join(["word"] * 510)
SLOW_BATCH = 32


@pytest.fixture(scope="module")
def model(checkpoints) -> Path:
    return checkpoints["sentiment"]


@pytest.fixture(scope="module")
def expected(model) -> dict[str, list[float]]:
    """The embeddings pipeline's vector of every text the tests send."""
    pipe = pipeline("embeddings", model)
    texts = [*TEXTS, LONG_TEXT]
    return dict(zip(texts, pipe(texts), strict=True))


def assert_embeddings(answer: loadgen.Result, texts: list[str], expected: dict, model: Path) -> None:
    """A 200 whose vectors are the pipeline's for ``texts`` up to float32 rounding."""
    assert answer.status == 200, (answer.index, answer.status, answer.body, answer.error)
    config = SqueezeBertConfig.from_pretrained(model)
    want = torch.tensor([expected[t] for t in texts])
    assert_rounding_close(torch.tensor(answer.body), want, path_length(config, 512), what=f"request {answer.index}")


def in_flight(url: str) -> int:
    """The server's ``te_requests_in_flight`` gauge (GET /metrics is not a model route: it takes no slot)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return int(float(re.search(r"^te_requests_in_flight (\S+)$", text, re.M).group(1)))


async def wait_in_flight(url: str, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(in_flight, url) < count:
        assert time.monotonic() < deadline, f"fewer than {count} requests in flight after {timeout} s"
        await asyncio.sleep(0.01)


def rss_bytes(pid: int) -> int:
    """The resident set size of process ``pid`` (Linux /proc)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M).group(1)) * 1024


# ----------------------------------------------------------------------------------------------------------------
# Load: constant arrival rate

RATE = 50  # requests per second
SECONDS = 30


def test_constant_arrival_50_per_second_for_30_s_no_failure(model, expected):
    with serve_process(model) as server:

        async def run() -> list[loadgen.Result]:
            async with loadgen.client(server.url) as http:
                make = lambda i: ("/embed", {"inputs": TEXTS[i % len(TEXTS)]})  # noqa: E731
                return await loadgen.open_loop(http, make, rate=RATE, count=RATE * SECONDS)

        results = asyncio.run(run())
        assert server.process.poll() is None
    summary = loadgen.summarize(results)
    print(
        f"\n{RATE}/s for {SECONDS} s: {summary.requests} requests, {summary.failures} failed, p50 {summary.p50_ms:.1f} "
        f"ms, p99 {summary.p99_ms:.1f} ms, the client's latest send {summary.max_send_lag_ms:.1f} ms behind schedule"
    )
    assert summary.requests == RATE * SECONDS and summary.failures == 0
    for result in results:
        assert_embeddings(result, [TEXTS[result.index % len(TEXTS)]], expected, model)


# ----------------------------------------------------------------------------------------------------------------
# Overload: a burst far above capacity

SLOTS = 2  # --max-concurrent-requests
BURST = 100  # quick requests at BURST_RATE per second while the slots are held
BURST_RATE = 200
HEAVY_BATCH = 128  # rows of a request that holds a slot: four full batches of the model


def test_overload_rejects_at_once_and_serves_the_accepted(model, expected):
    """Two heavy requests (four full batches each, one request per batch: --max-batch-requests 1) hold every slot;
    quick requests then arriving at 200/s all get 429, each answered before the first heavy one finishes: a
    rejection waits for no model work. Once the slots free, requests are served again."""
    flags = ("--max-concurrent-requests", str(SLOTS), "--max-batch-requests", "1")
    flags += ("--max-client-batch-size", str(HEAVY_BATCH))
    with serve_process(model, *flags) as server:

        async def run() -> tuple[list[loadgen.Result], list[loadgen.Result], loadgen.Result]:
            async with loadgen.client(server.url) as http:
                slow_request = ("/embed", {"inputs": [LONG_TEXT] * HEAVY_BATCH})
                t0 = time.perf_counter()
                slow = [asyncio.create_task(loadgen.send(http, i, slow_request, 0.0, t0)) for i in range(SLOTS)]
                await wait_in_flight(server.url, SLOTS)
                quick = lambda i: ("/embed", {"inputs": TEXTS[i % len(TEXTS)]})  # noqa: E731
                rejected = await loadgen.open_loop(http, quick, rate=BURST_RATE, count=BURST, t0=t0)
                accepted = await asyncio.gather(*slow)
                after = await loadgen.send(http, 0, quick(0), 0.0, t0)
                return accepted, rejected, after

        accepted, rejected, after = asyncio.run(run())
    assert [r.status for r in rejected] == [429] * BURST
    assert all(r.body["error_type"] == "overloaded" for r in rejected)
    first_done = min(r.sent + r.latency for r in accepted)
    assert max(r.sent + r.latency for r in rejected) < first_done
    for result in accepted:
        assert_embeddings(result, [LONG_TEXT] * HEAVY_BATCH, expected, model)
    assert_embeddings(after, [TEXTS[0]], expected, model)
    latencies = [1e3 * r.latency for r in rejected]
    p50, p99 = loadgen.percentile(latencies, 50), loadgen.percentile(latencies, 99)
    print(f"\n429: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms; first accepted: {first_done:.2f} s")


# ----------------------------------------------------------------------------------------------------------------
# Shutdown: SIGTERM with requests in flight

IN_FLIGHT = 6


def test_sigterm_finishes_the_accepted_requests_refuses_new_ones_and_exits_0(model, expected):
    with serve_process(model, "--max-batch-requests", "1") as server:

        async def refused() -> float:
            """Open new connections until one is refused; the time of the refusal. The tries before it may still be
            answered (the server notices the signal within a fraction of a second) or reset unanswered (caught in
            the listening socket's backlog as it closes)."""
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    async with httpx.AsyncClient(base_url=server.url, timeout=30, trust_env=False) as fresh:
                        await fresh.get("/health")
                except httpx.ConnectError:
                    return time.perf_counter()
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    pass
                await asyncio.sleep(0.01)
            raise AssertionError("new connections were still accepted 30 s after SIGTERM")

        async def run() -> tuple[list[loadgen.Result], float]:
            async with loadgen.client(server.url) as http:
                t0 = time.perf_counter()
                request = ("/embed", {"inputs": [LONG_TEXT] * SLOW_BATCH})
                tasks = [asyncio.create_task(loadgen.send(http, i, request, 0.0, t0)) for i in range(IN_FLIGHT)]
                await wait_in_flight(server.url, IN_FLIGHT)
                server.process.send_signal(signal.SIGTERM)
                refused_at = await refused() - t0
                return list(await asyncio.gather(*tasks)), refused_at

        results, refused_at = asyncio.run(run())
        status = server.process.wait(60)
    assert status == 0, server.stderr
    for result in results:
        assert_embeddings(result, [LONG_TEXT] * SLOW_BATCH, expected, model)
    # The refusal came while the server was still working on what it had accepted.
    assert refused_at < max(r.sent + r.latency for r in results)


# ----------------------------------------------------------------------------------------------------------------
# Fuzz: malformed requests over raw sockets (bytes an HTTP client library would refuse to send)

FUZZ_COUNT = 1000
FUZZ_PAYLOAD_LIMIT = 65536  # --payload-limit: oversized bodies stay cheap
RSS_GROWTH_LIMIT = 4 << 20  # bytes: a leak of more than about 5 KiB per request over the last 750 requests
# The field each route reads its input from; the fuzz makes that field wrong, so no request is valid.
MAIN_FIELD = {
    "/embed": "inputs",
    "/v1/embeddings": "input",
    "/predict": "inputs",
    "/rerank": "texts",
    "/tokenize": "inputs",
    "/decode": "ids",
    "/fill-mask": "inputs",  # not the sentiment checkpoint's head: 404 whatever the body
}
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=latin-1",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    None,
]


def wrong_value(rng: random.Random, field: str, depth: int = 0) -> object:
    """A value of the wrong type or range for ``field`` (text for most routes, token ids for /decode)."""
    choices: list[object] = [
        rng.randint(-(2**70), 2**70),
        rng.uniform(-1e308, 1e308),
        None,
        {"text": "a"},
        [],
        [1, 2, 3] if field != "ids" else ["a", "b"],
        ["ok", 7] if field != "ids" else [1.5, 2],
        [[["deep"]]] if field != "ids" else [[[101]]],
        True if field != "ids" else [-1],
        "\ud800 lone surrogate" if field != "ids" else [2**64],
    ]
    if field == "ids":
        choices += ["101 102", [10**400], {"ids": [101]}]
    value = rng.choice(choices)
    return [value, wrong_value(rng, field, depth + 1)] if depth < 2 and rng.random() < 0.1 else value


def fuzz_body(rng: random.Random, field: str) -> bytes:
    """A body that is not a valid request: broken JSON, bad bytes, huge numbers, wrong types or missing fields."""
    good = {field: "A short one." if field != "ids" else [101, 102], "query": "q"}
    text = json.dumps(good)
    kind = rng.randrange(9)
    if kind == 0:  # JSON cut short or broken by hand
        broken = [text[: rng.randrange(1, len(text))], text.replace('"', "'"), text + ",}", "{" * 3, "nul"]
        return rng.choice(broken).encode()
    if kind == 1:  # random bytes
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
    if kind == 2:  # invalid UTF-8 inside a JSON string
        return b'{"' + field.encode() + b'": "caf\xc3\x28 \xff\xfe", "query": "q"}'
    if kind == 3:  # numbers JSON allows and Python cannot hold, or nesting too deep for any parser
        return rng.choice(
            [
                f'{{"{field}": {"9" * 5000}}}'.encode(),
                f'{{"{field}": 1e999999}}'.encode(),
                f'{{"{field}": -0.0e-99999, "normalize": NaN}}'.encode(),
                b"[" * 100_000 + b"]" * 100_000,
            ]
        )
    if kind == 4:  # the field missing or misspelt
        return json.dumps(rng.choice([{}, {field + "s": good[field]}, {field.upper(): good[field]}])).encode()
    if kind == 5:  # the body not an object
        return json.dumps(rng.choice([[good], "text", 42, None, [[field]]])).encode()
    if kind == 6:  # a wrong type or range, with valid-looking extras
        body = {field: wrong_value(rng, field), "normalize": True, "truncate": False, "query": "q"}
        return json.dumps(body).encode()
    if kind == 7:  # oversized: a valid shape far past --payload-limit
        return json.dumps({field: ["x" * 1000] * (FUZZ_PAYLOAD_LIMIT // 1000 + rng.randrange(1, 200))}).encode()
    return b""  # empty


def fuzz_request(rng: random.Random, host: str) -> bytes:
    """One malformed HTTP/1.1 request: a malformed body under odd content types, or malformed headers."""
    path = rng.choice(list(MAIN_FIELD))
    body = fuzz_body(rng, MAIN_FIELD[path])
    headers = [f"Host: {host}", "Connection: close"]
    content_type = rng.choice(CONTENT_TYPES)
    if content_type:
        headers.append(f"Content-Type: {content_type}")
    framing = rng.randrange(8)
    if framing == 0:  # chunked: the size is known only as the body streams
        headers.append("Transfer-Encoding: chunked")
        chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    elif framing == 1:  # a Content-Length that is not a number, negative, or twice with two values
        headers += rng.choice(
            [["Content-Length: abc"], ["Content-Length: -5"], [f"Content-Length: {len(body)}", "Content-Length: 3"]]
        )
    elif framing == 2:  # headers a server must refuse: no colon, a space in the name, a huge value, a bad encoding
        headers += [f"Content-Length: {len(body)}"]
        headers += rng.choice(
            [["no colon here"], ["Bad Name: x"], ["X-Big: " + "a" * 70_000], ["Transfer-Encoding: gzip"]]
        )
    elif framing == 3:  # a Content-Length shorter than the body: the body is cut, the rest is garbage
        headers.append(f"Content-Length: {len(body) // 2}")
    else:
        headers.append(f"Content-Length: {len(body)}")
    head = f"POST {path} HTTP/1.1\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    return head.encode("latin-1") + body


async def raw_exchange(host: str, port: int, data: bytes) -> int:
    """Send ``data`` on a fresh connection and return the status of the first answer (0 if closed unanswered)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
        return 0
    finally:
        writer.close()
    return int(head.split(b" ", 2)[1])


def test_fuzz_1000_malformed_requests_all_4xx_server_up_memory_flat(model, expected):
    rng = random.Random(13)
    with serve_process(model, "--payload-limit", str(FUZZ_PAYLOAD_LIMIT)) as server:
        host, port = server.url.removeprefix("http://").split(":")
        statuses: list[tuple[int, bytes]] = []
        rss: list[int] = []

        async def run() -> None:
            for i in range(FUZZ_COUNT):
                data = fuzz_request(rng, server.url.removeprefix("http://"))
                status = await asyncio.wait_for(raw_exchange(host, int(port), data), 60)
                statuses.append((status, data[:300]))
                if (i + 1) % (FUZZ_COUNT // 4) == 0:
                    rss.append(rss_bytes(server.process.pid))

        asyncio.run(run())
        assert server.process.poll() is None
        after = httpx.post(f"{server.url}/embed", json={"inputs": TEXTS[0]}, timeout=60)
        health = httpx.get(f"{server.url}/health", timeout=60)
    bad = [(status, data) for status, data in statuses if not 400 <= status < 500]
    assert not bad, f"{len(bad)} answers not 4xx:\n" + "\n".join(f"{s}: {d[:160]!r} ... {d[-80:]!r}" for s, d in bad)
    assert "Traceback" not in server.stderr, server.stderr[-3000:]
    assert after.status_code == 200 and health.status_code == 200
    assert_embeddings(loadgen.Result(0, 0, 0, 0, 200, after.json()), [TEXTS[0]], expected, model)
    growth = rss[-1] - rss[0]
    counts = ", ".join(f"{s}: {n}" for s, n in sorted(collections.Counter(s for s, _ in statuses).items()))
    print(f"\nfuzz: answers {counts}; RSS after each quarter {', '.join(f'{r / 2**20:.1f}' for r in rss)} MiB")
    assert growth <= RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB between the first and the last quarter"
