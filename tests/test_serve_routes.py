"""``squeezebert serve``: every route against the library's pipelines on the same checkpoint, the batching, the
dropping of requests whose client went away, a failing forward pass, and the real command in a subprocess.

Most tests run the app in-process (``support.server.served_client``: httpx over ASGI, the batch engine's threads
running); a few start ``python -m squeezebert serve`` on a loopback port (``support.server.serve_process``).

Tolerances: the server runs the same float32 model on batches of another shape (other rows, other padding) than
the pipeline does, so the two differ by float32 rounding alone: :func:`support.numerics.assert_rounding_close` with
the forward pass's accumulation length, both sides charged with float32's unit roundoff.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import threading

import httpx
import numpy as np
import pytest
import torch
from support.numerics import assert_rounding_close, path_length
from support.server import serve_process, served_client

from squeezebert import AutoTokenizer, SqueezeBertConfig, pipeline

pytest.importorskip("uvicorn")

TEXTS = ["The weather is lovely today.", "A short one.", "Completely different words about the stock market crash."]


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    yield


def close(actual, expected, folder, what: str) -> None:
    """``actual`` equals ``expected`` up to the float32 rounding of two forward passes (see the module docstring)."""
    config = SqueezeBertConfig.from_pretrained(folder)
    actual, expected = torch.tensor(actual, dtype=torch.float32), torch.tensor(expected, dtype=torch.float32)
    assert_rounding_close(actual, expected, path_length(config, 512), magnitude=expected.abs().max().item(), what=what)


def labels_close(actual: list[dict], expected: list[dict], folder, what: str) -> None:
    assert [d["label"] for d in actual] == [d["label"] for d in expected], what
    close([d["score"] for d in actual], [d["score"] for d in expected], folder, what)


# ----------------------------------------------------------------------------------------------------------------
# Embeddings


def test_embed_matches_the_embeddings_pipeline(checkpoints) -> None:
    folder = checkpoints["sentiment"]
    pipe = pipeline("embeddings", folder)
    expected = pipe(TEXTS)
    raw = pipe(TEXTS, normalize=False)

    async def scenario():
        async with served_client(folder) as client:
            batch = await client.post("/embed", json={"inputs": TEXTS})
            one = await client.post("/embed", json={"inputs": TEXTS[0]})
            plain = await client.post("/embed", json={"inputs": TEXTS, "normalize": False})
            return batch, one, plain

    batch, one, plain = asyncio.run(scenario())
    assert batch.status_code == one.status_code == plain.status_code == 200
    close(batch.json(), expected, folder, "/embed batch")
    close(one.json(), expected[:1], folder, "/embed one text: a list of one vector, as TEI")
    close(plain.json(), raw, folder, "/embed normalize=false")
    norms = np.linalg.norm(np.array(batch.json()), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-6)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokens = sum(len(ids) for ids in tokenizer(TEXTS)["input_ids"])
    assert int(batch.headers["x-compute-tokens"]) == tokens
    assert int(batch.headers["x-compute-characters"]) == sum(map(len, TEXTS))
    for name in ("x-compute-time", "x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time"):
        assert int(batch.headers[name]) >= 0, name
    assert int(batch.headers["x-inference-time"]) <= int(batch.headers["x-total-time"])


def test_openai_embeddings_float_and_base64(checkpoints) -> None:
    folder = checkpoints["mlm"]
    expected = pipeline("embeddings", folder)(TEXTS[:2])

    async def scenario():
        async with served_client(folder) as client:
            floats = await client.post("/v1/embeddings", json={"input": TEXTS[:2], "model": "mine"})
            packed = await client.post("/v1/embeddings", json={"input": TEXTS[:2], "encoding_format": "base64"})
            return floats, packed

    floats, packed = asyncio.run(scenario())
    body = floats.json()
    assert body["object"] == "list" and body["model"] == str(folder)
    assert [d["object"] for d in body["data"]] == ["embedding", "embedding"]
    assert [d["index"] for d in body["data"]] == [0, 1]
    close([d["embedding"] for d in body["data"]], expected, folder, "/v1/embeddings float")
    tokens = sum(len(ids) for ids in AutoTokenizer.from_pretrained(folder)(TEXTS[:2])["input_ids"])
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    decoded = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") for d in packed.json()["data"]]
    np.testing.assert_array_equal(np.stack(decoded), np.array([d["embedding"] for d in body["data"]], dtype="<f4"))


def test_embed_truncation_left_keeps_the_end(checkpoints) -> None:
    folder = checkpoints["mlm"]
    text = "one two three four five six seven eight nine ten"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.truncation_side = "left"
    pipe = pipeline("embeddings", folder, tokenizer=tokenizer, max_length=6)
    expected = pipe([text])

    async def scenario():
        async with served_client(folder, max_input_length=6) as client:
            body = {"inputs": [text], "truncate": True, "truncation_direction": "Left"}
            return await client.post("/embed", json=body)

    response = asyncio.run(scenario())
    assert response.status_code == 200, response.text
    close(response.json(), expected, folder, "/embed truncation_direction=left")
    assert int(response.headers["x-compute-tokens"]) == 6


# ----------------------------------------------------------------------------------------------------------------
# Sequence classification: /predict, /rerank


def test_predict_single_pair_batch_and_raw_scores(checkpoints) -> None:
    folder = checkpoints["nli"]
    pipe = pipeline("text-classification", folder, top_k=None)
    pair = ("A man plays a guitar.", "Someone makes music.")

    async def scenario():
        async with served_client(folder) as client:
            return [
                await client.post("/predict", json={"inputs": TEXTS[0]}),
                await client.post("/predict", json={"inputs": list(pair)}),
                await client.post("/predict", json={"inputs": [[TEXTS[0]], list(pair)]}),
                await client.post("/predict", json={"inputs": TEXTS[1], "raw_scores": True}),
            ]

    single, paired, batch, raw = asyncio.run(scenario())
    labels_close(single.json(), pipe(TEXTS[0]), folder, "/predict single")
    labels_close(paired.json(), pipe({"text": pair[0], "text_pair": pair[1]}), folder, "/predict pair")
    expected = pipe([TEXTS[0], {"text": pair[0], "text_pair": pair[1]}])
    for got, want in zip(batch.json(), expected, strict=True):
        labels_close(got, want, folder, "/predict batch")
    labels_close(raw.json(), pipe(TEXTS[1], function_to_apply="none"), folder, "/predict raw_scores")
    scores = [d["score"] for d in single.json()]
    assert scores == sorted(scores, reverse=True) and abs(sum(scores) - 1) < 1e-5


def test_rerank_scores_query_text_pairs_sorted(checkpoints) -> None:
    folder = checkpoints["regression"]  # one output: a cross-encoder
    pipe = pipeline("text-classification", folder, top_k=None)
    query = "what is the weather like"
    expected = [pipe({"text": query, "text_pair": text}, function_to_apply="sigmoid")[0]["score"] for text in TEXTS]
    raw = [pipe({"text": query, "text_pair": text}, function_to_apply="none")[0]["score"] for text in TEXTS]

    async def scenario():
        async with served_client(folder) as client:
            ranked = await client.post("/rerank", json={"query": query, "texts": TEXTS, "return_text": True})
            unscaled = await client.post("/rerank", json={"query": query, "texts": TEXTS, "raw_scores": True})
            return ranked, unscaled

    ranked, unscaled = asyncio.run(scenario())
    order = sorted(range(len(TEXTS)), key=lambda i: -expected[i])
    assert [r["index"] for r in ranked.json()] == order
    assert [r["text"] for r in ranked.json()] == [TEXTS[i] for i in order]
    close([r["score"] for r in ranked.json()], [expected[i] for i in order], folder, "/rerank")
    by_index = {r["index"]: r["score"] for r in unscaled.json()}
    assert all("text" not in r for r in unscaled.json())
    close([by_index[i] for i in range(len(TEXTS))], raw, folder, "/rerank raw_scores")


# ----------------------------------------------------------------------------------------------------------------
# int8 and ONNX Runtime: the same numbers as the pipelines on those backends


def test_int8_serves_the_int8_pipelines(checkpoints) -> None:
    folder = checkpoints["sentiment"]
    classify = pipeline("text-classification", folder, int8=True, top_k=None)
    embed = pipeline("embeddings", folder, int8=True)

    async def scenario():
        async with served_client(folder, int8=True) as client:
            predicted = await client.post("/predict", json={"inputs": [[text] for text in TEXTS]})
            embedded = await client.post("/embed", json={"inputs": TEXTS})
            return predicted, embedded, await client.get("/info")

    predicted, embedded, info = asyncio.run(scenario())
    for got, want in zip(predicted.json(), classify(TEXTS), strict=True):
        labels_close(got, want, folder, "/predict int8")
    close(embedded.json(), embed(TEXTS), folder, "/embed int8")
    assert info.json()["model_dtype"] == "int8"


def test_onnx_backend_serves_the_onnx_pipeline(checkpoints, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    from squeezebert.export import to_onnx

    folder = tmp_path / "onnx"
    to_onnx(checkpoints["sentiment"], folder, task="text-classification")
    expected = pipeline("text-classification", folder, backend="onnx", top_k=None)(TEXTS)

    async def scenario():
        async with served_client(folder, backend="onnx") as client:
            predicted = await client.post("/predict", json={"inputs": [[text] for text in TEXTS]})
            return predicted, await client.post("/embed", json={"inputs": "a"}), await client.get("/info")

    predicted, embedded, info = asyncio.run(scenario())
    for got, want in zip(predicted.json(), expected, strict=True):
        labels_close(got, want, folder, "/predict onnx")
    assert (
        embedded.status_code == 404 and "feature-extraction" in embedded.json()["error"]
    )  # the graph has no encoder output
    assert (info.json()["backend"], info.json()["routes"]) == ("onnx", ["/predict", "/rerank"])


# ----------------------------------------------------------------------------------------------------------------
# The other heads: the pipelines' output shapes


def _assert_same_tree(actual, expected, folder, what: str) -> None:
    """The same JSON tree: equal strings / ints, floats within rounding."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), what
        for key in expected:
            _assert_same_tree(actual[key], expected[key], folder, f"{what}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), what
        for n, (a, e) in enumerate(zip(actual, expected, strict=True)):
            _assert_same_tree(a, e, folder, f"{what}[{n}]")
    elif isinstance(expected, float):
        close([actual], [expected], folder, what)
    else:
        assert actual == expected, what


@pytest.mark.parametrize(
    ("kind", "route", "task", "inputs", "params"),
    [
        ("mlm", "/fill-mask", "fill-mask", ["Paris is the [MASK] of France.", "I [MASK] you."], {"top_k": 3}),
        (
            "ner",
            "/token-classification",
            "token-classification",
            ["John Smith visited Washington for Acme Corporation in 2020, and then Paris and Berlin as well."],
            {"aggregation_strategy": "simple"},
        ),
        (
            "qa",
            "/question-answering",
            "question-answering",
            [{"question": "Who went home?", "context": "John went home after the long meeting in Paris."}],
            {"top_k": 2},
        ),
        (
            "choice",
            "/multiple-choice",
            "multiple-choice",
            [{"prompt": "She opened the door", "choices": ["and walked in.", "of the sky.", "with a key."]}],
            {},
        ),
    ],
)
def test_head_routes_match_their_pipelines(checkpoints, kind, route, task, inputs, params) -> None:
    folder = checkpoints[kind]
    pipe = pipeline(task, folder)
    expected_list = pipe(inputs, **params)
    expected_one = pipe(inputs[0], **params)

    async def scenario():
        async with served_client(folder) as client:
            listed = await client.post(route, json={"inputs": inputs, **params})
            one = await client.post(route, json={"inputs": inputs[0], "parameters": params})
            return listed, one

    listed, one = asyncio.run(scenario())
    assert listed.status_code == one.status_code == 200, (listed.text, one.text)
    _assert_same_tree(listed.json(), expected_list, folder, f"{route} list")
    _assert_same_tree(one.json(), expected_one, folder, f"{route} one input")


# ----------------------------------------------------------------------------------------------------------------
# The tokenizer, /info, /health, /metrics


def test_tokenize_and_decode(checkpoints) -> None:
    folder = checkpoints["mlm"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = "Héllo, wörld!"

    async def scenario():
        async with served_client(folder) as client:
            tokens = await client.post("/tokenize", json={"inputs": [text, "a b"]})
            bare = await client.post("/tokenize", json={"inputs": text, "add_special_tokens": False})
            ids = tokenizer(text)["input_ids"]
            decoded = await client.post("/decode", json={"ids": ids})
            kept = await client.post("/decode", json={"ids": [ids, ids[:2]], "skip_special_tokens": False})
            return tokens, bare, decoded, kept

    tokens, bare, decoded, kept = asyncio.run(scenario())
    encoding = tokenizer(text, return_offsets_mapping=True)
    first = tokens.json()[0]
    assert [t["id"] for t in first] == encoding["input_ids"]
    assert first[0] == {"id": tokenizer.cls_token_id, "text": "[CLS]", "special": True, "start": None, "stop": None}
    assert first[-1]["text"] == "[SEP]" and first[-1]["special"]
    for token, (start, stop) in zip(first[1:-1], encoding["offset_mapping"][1:-1], strict=True):
        assert (token["start"], token["stop"], token["text"], token["special"]) == (
            start,
            stop,
            text[start:stop],
            False,
        )
    assert len(tokens.json()) == 2
    assert [t["id"] for t in bare.json()[0]] == encoding["input_ids"][1:-1]
    ids = encoding["input_ids"]
    assert decoded.json() == [tokenizer.decode(ids, skip_special_tokens=True)]
    assert kept.json() == [tokenizer.decode(ids), tokenizer.decode(ids[:2])]


def test_info_health_metrics_and_page(checkpoints) -> None:
    folder = checkpoints["sentiment"]

    async def scenario():
        async with served_client(folder, max_client_batch_size=8, max_batch_tokens=4096) as client:
            predicted = await client.post("/predict", json={"inputs": "fine"})
            await client.post("/predict", json={"inputs": 3})
            default = await client.post("/", json={"inputs": "fine"})  # TEI: POST / is the head's route
            assert default.json() == predicted.json()
            return (
                await client.get("/info"),
                await client.get("/health"),
                await client.get("/metrics"),
                await client.get("/"),
            )

    info, health, metrics, page = asyncio.run(scenario())
    body = info.json()
    assert body["model_id"] == str(folder)
    assert body["head"] == "SqueezeBertForSequenceClassification"
    assert body["model_type"] == {"classifier": {"id2label": {"0": "negative", "1": "neutral", "2": "positive"}}}
    assert body["routes"] == ["/embed", "/v1/embeddings", "/predict", "/rerank"]
    assert (body["max_client_batch_size"], body["max_batch_tokens"], body["max_input_length"]) == (8, 4096, 512)
    assert (body["backend"], body["model_dtype"]) == ("torch", "float32")
    assert health.status_code == 200
    text = metrics.text
    assert 'te_request_count_total{route="/predict"} 2.0' in text
    assert 'te_request_success_total{route="/predict"} 1.0' in text
    assert 'te_request_failure_total{err="validation",route="/predict"} 1.0' in text
    assert 'te_request_success_total{route="/"} 1.0' in text
    for name in ("te_request_duration", "te_request_queue_duration", "te_request_inference_duration"):
        assert f"{name}_count 2.0" in text, name
    assert "te_batch_next_size_count 2.0" in text and "te_queue_size 0.0" in text
    assert page.status_code in (200, 404)  # serving/page.html ships with the package once it is written
    if page.status_code == 200:
        assert page.headers["content-type"].startswith("text/html")


# ----------------------------------------------------------------------------------------------------------------
# Batching, dropped clients, a failing forward pass


class Gate:
    """Wraps a pipeline's forward: records each batch's row count; the first call waits until :meth:`open`."""

    def __init__(self, pipe, monkeypatch, fail: Exception | None = None) -> None:
        self.forward = pipe.forward
        self.rows: list[int] = []
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.fail = fail
        monkeypatch.setattr(pipe, "forward", self)

    def __call__(self, inputs):
        self.rows.append(inputs["input_ids"].shape[0])
        self.entered.set()
        assert self.opened.wait(60), "the test never opened the gate"
        if self.fail is not None:
            error, self.fail = self.fail, None
            raise error
        return self.forward(inputs)

    def open(self) -> None:
        self.opened.set()


def serve_state(client):
    return client.app.state.serve


async def wait_queued(client, rows: int) -> None:
    """Return once ``rows`` rows wait in the engine's queue (bounded: a minute)."""
    engine = serve_state(client).engine
    for _ in range(6000):
        if len(engine._pending) >= rows:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{len(engine._pending)} rows queued, expected {rows}")


def test_requests_waiting_for_the_model_run_together(checkpoints, monkeypatch) -> None:
    folder = checkpoints["sentiment"]
    texts = [f"request number {n} says hello" for n in range(12)]
    expected = pipeline("embeddings", folder)(texts)

    async def scenario():
        async with served_client(folder) as client:
            gate = Gate(serve_state(client).served.pipelines["embeddings"], monkeypatch)
            first = asyncio.ensure_future(client.post("/embed", json={"inputs": texts[0]}))
            await asyncio.to_thread(gate.entered.wait, 60)
            rest = [asyncio.ensure_future(client.post("/embed", json={"inputs": text})) for text in texts[1:]]
            await wait_queued(client, len(rest))
            gate.open()
            return gate.rows, await asyncio.gather(first, *rest)

    rows, responses = asyncio.run(scenario())
    close([r.json()[0] for r in responses], expected, folder, "batched /embed")
    # the first request ran alone; the 11 that arrived while it ran waited and ran as one batch (11 short rows are
    # far below max_batch_tokens)
    assert rows == [1, 11], rows


def test_batches_respect_the_token_and_request_limits(checkpoints) -> None:
    from squeezebert.serving.batching import BatchEngine, Job
    from squeezebert.serving.metrics import ServeMetrics

    pipe = pipeline("embeddings", checkpoints["mlm"])
    other = pipeline("embeddings", checkpoints["sentiment"])
    loop = asyncio.new_event_loop()
    try:
        engine = BatchEngine(max_batch_tokens=40, max_batch_requests=2, metrics=ServeMetrics())

        def job(p, *lengths):
            rows = [{"input_ids": [0] * n, "token_type_ids": [0] * n} for n in lengths]
            new = Job(p, rows, loop, loop.create_future())
            engine._pending.extend((new, i) for i in range(len(rows)))
            return new

        a, b, c = job(pipe, 10, 10), job(pipe, 5), job(pipe, 3)
        d = job(other, 4)
        gone = job(pipe, 8)
        gone.gone = True
        e = job(pipe, 30, 4)
        taken = []
        while engine._pending:
            taken.append([(engine_job, i) for engine_job, i in engine._take().entries])
    finally:
        loop.close()
    assert taken == [
        [(a, 0), (a, 1), (b, 0)],  # 3 rows x 10 = 30 tokens; c would make a third request
        [(c, 0)],  # d runs another pipeline: a batch never mixes two
        [(d, 0)],
        [(e, 0)],  # the dropped request's row is skipped; 2 x 30 = 60 > 40: e's second row waits
        [(e, 1)],
    ]


def test_a_request_whose_client_went_away_is_dropped_before_inference(checkpoints, monkeypatch) -> None:
    folder = checkpoints["sentiment"]

    async def call(app, body: bytes, gone: asyncio.Event) -> list[dict]:
        """One POST /embed straight through ASGI; the client disconnects when ``gone`` is set."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/embed",
            "raw_path": b"/embed",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
        }
        messages, sent = [], False

        async def receive():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message):
            messages.append(message)

        await app(scope, receive, send)
        return messages

    async def scenario():
        async with served_client(folder) as client:
            state = serve_state(client)
            gate = Gate(state.served.pipelines["embeddings"], monkeypatch)
            first = asyncio.ensure_future(client.post("/embed", json={"inputs": "the first, running"}))
            await asyncio.to_thread(gate.entered.wait, 60)
            gone = asyncio.Event()
            dropped = asyncio.ensure_future(call(client.app, b'{"inputs": ["never run", "nor this"]}', gone))
            await wait_queued(client, 2)
            gone.set()
            await dropped
            gate.open()
            answered = await first
            after = await client.post("/embed", json={"inputs": "after"})
            return gate.rows, answered, after, state.metrics.render().decode()

    rows, answered, after, metrics = asyncio.run(scenario())
    assert answered.status_code == after.status_code == 200
    assert rows == [1, 1], rows  # the first request, then "after": the two dropped rows never ran
    assert "te_request_dropped_total 1.0" in metrics
    assert 'te_request_failure_total{err="disconnected",route="/embed"} 1.0' in metrics


def test_a_failing_forward_pass_answers_424_and_the_server_goes_on(checkpoints, monkeypatch, caplog) -> None:
    folder = checkpoints["sentiment"]

    async def scenario():
        async with served_client(folder) as client:
            pipe = serve_state(client).served.pipelines["text-classification"]
            gate = Gate(pipe, monkeypatch, fail=RuntimeError("CPU out of memory (tried to allocate 12 GiB)"))
            gate.open()
            failed = await client.post("/predict", json={"inputs": "boom"})
            health = await client.get("/health")  # after a failure: one forward pass decides, and it works
            again = await client.post("/predict", json={"inputs": "fine again"})
            return failed, health, again, gate.rows

    failed, health, again, rows = asyncio.run(scenario())
    assert failed.status_code == 424
    assert failed.json()["error_type"] == "backend"
    assert "CPU out of memory" in failed.json()["error"]
    assert health.status_code == 200 and again.status_code == 200
    assert rows == [1, 1, 1]  # the failed batch, the health check's one token, the next request
    assert any("a forward pass of 1 x 3 tokens failed" in record.getMessage() for record in caplog.records)


def test_health_is_503_while_the_model_keeps_failing(checkpoints, monkeypatch) -> None:
    folder = checkpoints["mlm"]

    def broken(inputs):
        raise MemoryError("no memory left")

    async def scenario():
        async with served_client(folder) as client:
            for pipe in serve_state(client).served.pipelines.values():
                monkeypatch.setattr(pipe, "forward", broken)
            failed = await client.post("/fill-mask", json={"inputs": "a [MASK] b"})
            return failed, await client.get("/health")

    failed, health = asyncio.run(scenario())
    assert failed.status_code == 424 and "MemoryError" in failed.json()["error"]
    assert health.status_code == 503
    assert health.json()["error_type"] == "unhealthy"


# ----------------------------------------------------------------------------------------------------------------
# The real command


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_serves_and_stops_cleanly(checkpoints, sig) -> None:
    folder = checkpoints["sentiment"]
    expected = pipeline("text-classification", folder, top_k=None)(TEXTS[0])
    with serve_process(folder, "--api-key", "s3cret") as server:
        auth = {"Authorization": "Bearer s3cret"}
        response = httpx.post(f"{server.url}/predict", json={"inputs": TEXTS[0]}, headers=auth, timeout=60)
        denied = httpx.post(f"{server.url}/predict", json={"inputs": TEXTS[0]}, timeout=60)
        health = httpx.get(f"{server.url}/health", timeout=60)
        status = server.stop(sig)
    assert response.status_code == 200
    labels_close(response.json(), expected, folder, "/predict over HTTP")
    assert denied.status_code == 401 and health.status_code == 200
    assert status == 0, server.stderr
    ready = [line for line in server.stderr.splitlines() if "ready on" in line]
    assert len(ready) == 1
    assert f"model {folder}" in ready[0] and "head SqueezeBertForSequenceClassification" in ready[0]
    assert "backend torch fp32" in ready[0] and server.url.startswith("http://127.0.0.1:")
