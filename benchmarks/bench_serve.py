"""The serving benchmark: all-MiniLM-L6-v2 behind HTTP, ``squeezebert serve`` against infinity-emb.

    python benchmarks/bench_serve.py                  # 5 s per cell, 2 rounds
    python benchmarks/bench_serve.py --seconds 2 --rounds 1
    python benchmarks/bench_serve.py --soak 10        # not CI: 10 minutes at half capacity, RSS and p99 per minute

The servers, started here on 127.0.0.1 one after the other and then left running side by side:

- ``infinity-emb`` 0.0.78 (torch engine, CPU) on the original BERT folder, from its own virtual environment under
  ``<repo>/.cache/infinity-venv`` (built on first use: torch 2.13.0 first, then ``infinity-emb[server,torch]``), so
  that its pins never touch ours;
- ``squeezebert serve`` on the same weights converted (``squeezebert convert-bert``), fp32 and ``--int8``.

Every server gets the same OpenAI embeddings request (``POST /v1/embeddings``, infinity with ``--url-prefix /v1``)
from the same client (benchmarks/loadgen.py: closed loop, ``concurrency`` requests in flight) for payloads of 1
and 32 sentences. The rounds interleave the servers (A B C A B C ...) so that a busy machine slows all alike; each
cell is the median throughput of its rounds (sentences/s) and the p50/p99 latency of all its requests. Before
timing, the embeddings of each server are compared with infinity's (cosine similarity).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import loadgen
from bench_deploy import machine
from minilm import REPO_ROOT, find_minilm_model_dir

INFINITY_VENV = REPO_ROOT / ".cache" / "infinity-venv"
INFINITY_REQUIREMENTS = ("torch==2.13.0", "infinity-emb[server,torch]==0.0.78")  # torch first: its CPU wheel
START_TIMEOUT = 600.0  # seconds for a server to load its model (infinity imports a lot)
READY = re.compile(r"squeezebert serve: ready on (http://\S+) \(")
SENTENCES = [
    "A man is playing a guitar on the street corner.",
    "The quarterly report shows a sharp rise in revenue.",
    "Children are building a sandcastle at the beach.",
    "Please restart the server after installing the update.",
    "The recipe calls for two cups of flour and an egg.",
    "Scientists discovered a new species of frog in the rainforest.",
    "The train to Boston was delayed by forty minutes this morning.",
    "She finished the marathon in under four hours.",
]


@dataclass
class Server:
    """A running server: its name, process, base URL and output so far."""

    name: str
    process: subprocess.Popen
    url: str
    log: list[str] = field(default_factory=list)

    def rss_mib(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M).group(1)) / 1024

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def infinity_python() -> Path:
    """The Python of infinity-emb's own environment, built once (RuntimeError when it cannot be)."""
    python = INFINITY_VENV / "bin" / "python"
    marker = INFINITY_VENV / "squeezebert-requirements.txt"
    wanted = "\n".join(INFINITY_REQUIREMENTS) + "\n"
    if not (marker.is_file() and marker.read_text() == wanted and python.is_file()):
        print(f"building {INFINITY_VENV} ({', '.join(INFINITY_REQUIREMENTS)}): a few minutes, once", flush=True)
        steps = [[sys.executable, "-m", "venv", "--clear", str(INFINITY_VENV)]]
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        steps += [[*pip, requirement] for requirement in INFINITY_REQUIREMENTS]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(step[-2:])} failed: {done.stderr.strip()[-300:]}")
        marker.write_text(wanted)
    return python


def drain(process: subprocess.Popen, lines: list[str], ready: threading.Event, url: list[str]) -> None:
    """Keep the server's output (so its pipe never fills) and spot squeezebert's ready line."""
    for line in process.stdout:
        lines.append(line)
        match = READY.match(line)
        if match:
            url.append(match.group(1))
            ready.set()
    ready.set()


def start(name: str, args: list[str], env: dict[str, str], url: str | None = None) -> Server:
    """Start ``args`` and wait until it answers: squeezebert's ready line, or infinity's ``GET /health``."""
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines: list[str] = []
    ready, found = threading.Event(), []
    threading.Thread(target=drain, args=(process, lines, ready, found), daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        if url is None and ready.wait(1.0) and found:
            return Server(name, process, found[0], log=lines)
        if url is not None:
            try:
                if httpx.get(f"{url}/health", timeout=5, trust_env=False).status_code == 200:
                    return Server(name, process, url, log=lines)
            except httpx.HTTPError:
                pass
            time.sleep(1.0)
    process.kill()
    raise RuntimeError(f"{name} did not start:\n{''.join(lines)[-3000:]}")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_servers(
    bert_dir: Path, converted: Path, soaking: bool, with_infinity: bool
) -> tuple[list[Server], list[str]]:
    """infinity-emb (when it can be installed and started), squeezebert fp32 and int8 (a soak: fp32 alone); notes
    on what is missing."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0", "DO_NOT_TRACK": "1"}
    servers, notes = [], []
    if with_infinity and not soaking:
        try:
            port = free_port()
            python = infinity_python()
            cli = [str(python.parent / "infinity_emb"), "v2", "--model-id", str(bert_dir), "--engine", "torch"]
            cli += ["--device", "cpu", "--host", "127.0.0.1", "--port", str(port), "--url-prefix", "/v1"]
            servers.append(start("infinity-emb torch fp32", cli, env, url=f"http://127.0.0.1:{port}"))
        except (RuntimeError, OSError) as err:
            notes.append(f"infinity-emb: not run ({str(err).strip().splitlines()[0][:200]})")
    ours = [sys.executable, "-m", "squeezebert", "serve", "-m", str(converted), "--host", "127.0.0.1", "--port", "0"]
    servers.append(start("squeezebert serve fp32", ours, env))
    if not soaking:
        servers.append(start("squeezebert serve int8", [*ours, "--int8"], env))
    return servers, notes


def request_for(server: Server, payload: int) -> loadgen.RequestFactory:
    """Request ``i``: ``payload`` sentences starting at a different one each time (all servers send the same)."""

    def make(i: int) -> loadgen.Request:
        texts = [SENTENCES[(i + k) % len(SENTENCES)] + f" ({i}, {k})" for k in range(payload)]
        return "/v1/embeddings", {"input": texts, "model": "minilm"}

    return make


async def embed(server: Server, texts: list[str]) -> list[list[float]]:
    async with loadgen.client(server.url) as http:
        response = await http.post("/v1/embeddings", json={"input": texts, "model": "minilm"})
        response.raise_for_status()
        return [row["embedding"] for row in response.json()["data"]]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


async def measure(server: Server, concurrency: int, payload: int, seconds: float) -> list[loadgen.Result]:
    async with loadgen.client(server.url) as http:
        return await loadgen.closed_loop(http, request_for(server, payload), concurrency, duration=seconds)


def sentences_per_s(results: list[loadgen.Result], payload: int) -> float:
    summary = loadgen.summarize(results)
    return (summary.requests - summary.failures) * payload / summary.seconds


# ----------------------------------------------------------------------------------------------------------------
# The command


def benchmark(servers: list[Server], args: argparse.Namespace) -> None:
    cells = [(p, c) for p in args.payloads for c in args.concurrency]
    results: dict[tuple[str, int, int], list[list[loadgen.Result]]] = {}
    for server in servers:  # warm-up: every shape once
        for payload, concurrency in cells:
            asyncio.run(measure(server, concurrency, payload, 0.5))
    for _ in range(args.rounds):
        for payload, concurrency in cells:
            for server in servers:
                run = asyncio.run(measure(server, concurrency, payload, args.seconds))
                results.setdefault((server.name, payload, concurrency), []).append(run)

    names = [s.name for s in servers]
    print(f"\n{'sentences':>9} {'conc':>4}  " + "  ".join(f"{n:>34}" for n in names))
    print(f"{'':>9} {'':>4}  " + "  ".join(f"{'sent/s':>10} {'p50 ms':>11} {'p99 ms':>11}" for _ in names))
    for payload, concurrency in cells:
        row = []
        for name in names:
            runs = results[(name, payload, concurrency)]
            pooled = [r for run in runs for r in run]
            summary = loadgen.summarize(pooled)
            rate = statistics.median(sentences_per_s(run, payload) for run in runs)
            failed = f" ({summary.failures} failed)" if summary.failures else ""
            row.append(f"{rate:>10.1f} {summary.p50_ms:>11.1f} {summary.p99_ms:>11.1f}{failed}")
        print(f"{payload:>9} {concurrency:>4}  " + "  ".join(row))


def soak(server: Server, minutes: int) -> None:
    """Half the measured capacity (payload 1, concurrency 8), open loop, one line per minute."""
    capacity = loadgen.summarize(asyncio.run(measure(server, 8, 1, 10.0))).requests_per_s
    rate = capacity / 2
    print(f"\nsoak: {server.name}, capacity {capacity:.1f} requests/s, sending {rate:.1f}/s for {minutes} min")
    print(f"{'minute':>6} {'RSS MiB':>8} {'p50 ms':>8} {'p99 ms':>8} {'failed':>6}")
    for minute in range(1, minutes + 1):

        async def one_minute() -> list[loadgen.Result]:
            async with loadgen.client(server.url) as http:
                return await loadgen.open_loop(http, request_for(server, 1), rate, count=round(rate * 60))

        summary = loadgen.summarize(asyncio.run(one_minute()))
        rss = server.rss_mib()
        print(
            f"{minute:>6} {rss:>8.1f} {summary.p50_ms:>8.1f} {summary.p99_ms:>8.1f} {summary.failures:>6}", flush=True
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm-dir", type=Path, default=None, help="a BERT folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per cell and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--payloads", type=int, nargs="+", default=[1, 32], help="sentences per request")
    parser.add_argument("--no-infinity", action="store_true", help="only squeezebert serve")
    parser.add_argument("--soak", type=int, metavar="MINUTES", help="soak squeezebert serve fp32 instead")
    args = parser.parse_args()

    bert_dir = args.minilm_dir or find_minilm_model_dir()
    print(f"machine: {machine()}")
    print(f"model: {bert_dir} (all-MiniLM-L6-v2 unless --minilm-dir)")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work:
        from squeezebert.convert import convert_bert_checkpoint

        converted = convert_bert_checkpoint(bert_dir, Path(work) / "squeezebert")
        servers, notes = start_servers(bert_dir, converted, bool(args.soak), with_infinity=not args.no_infinity)
        try:
            for note in notes:
                print(note)
            if args.soak:
                soak(servers[0], args.soak)
                return
            reference = asyncio.run(embed(servers[0], SENTENCES))
            for server in servers:
                got = asyncio.run(embed(server, SENTENCES))
                low = min(cosine(a, b) for a, b in zip(got, reference, strict=True))
                print(f"{server.name}: RSS {server.rss_mib():.0f} MiB, lowest cosine to {servers[0].name} {low:.6f}")
            benchmark(servers, args)
        finally:
            for server in servers:
                server.stop()


if __name__ == "__main__":
    main()
