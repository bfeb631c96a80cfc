"""``squeezebert serve``'s errors, each provoked for real: the status, text-embeddings-inference's body
``{"error", "error_type"}`` (OpenAI's ``{"error": {"message", "type", "param", "code"}}`` on /v1/embeddings), and
the command line's one-line errors with exit status 2."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest
from support.server import served_client

from squeezebert.cli import main

pytest.importorskip("uvicorn")


@pytest.fixture(autouse=True)
def _one_thread(single_thread):
    yield


def statuses(folder, requests, **settings) -> list:
    """The responses to ``requests`` (``(method, path, kwargs)``), in order, from one in-process server."""

    async def scenario():
        async with served_client(folder, **settings) as client:
            return [await client.request(method, path, **kwargs) for method, path, kwargs in requests]

    return asyncio.run(scenario())


def assert_error(response, status: int, error_type: str, *words: str) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error", "error_type"} and body["error_type"] == error_type, body
    for word in words:
        assert word in body["error"], (word, body["error"])


def test_malformed_bodies_and_wrong_types(checkpoints) -> None:
    post = lambda body, **kw: ("POST", "/embed", {"content": body, **kw})  # noqa: E731
    responses = statuses(
        checkpoints["sentiment"],
        [
            post(b'{"inputs": '),
            post(b"\xff\xfe not utf-8"),
            post(b""),
            post(b'["a list"]'),
            post(b'{"inputs": 5}'),
            post(b'{"inputs": ["a", 5]}'),
            post(b'{"inputs": "a", "normalize": "yes"}'),
            post(b'{"inputs": "a", "truncation_direction": "middle"}'),
            post(b'{"inputs": []}'),
            ("POST", "/predict", {"json": {"inputs": ["a", "b", "c"]}}),
            ("POST", "/predict", {"json": {"inputs": [["a", "b", "c"]]}}),
            ("POST", "/decode", {"json": {"ids": [1, -2]}}),
            ("POST", "/decode", {"json": {"ids": "abc"}}),
        ],
    )
    assert_error(responses[0], 400, "validation", "not JSON")
    assert_error(responses[1], 400, "validation", "not JSON")
    assert_error(responses[2], 400, "empty", "no body")
    assert_error(responses[3], 422, "validation", "JSON object")
    assert_error(responses[4], 422, "validation", "`inputs`")
    assert_error(responses[5], 422, "validation", "`inputs`")
    assert_error(responses[6], 422, "validation", "`normalize`", "a boolean")
    assert_error(responses[7], 422, "validation", "truncation_direction")
    assert_error(responses[8], 422, "validation", "cannot be empty")
    assert_error(responses[9], 422, "validation", "one text or a pair")
    assert_error(responses[10], 422, "validation", "[text, text_pair]")
    assert_error(responses[11], 422, "validation", "token ids")
    assert_error(responses[12], 422, "validation", "token ids")


def test_pipeline_refusals_are_422(checkpoints) -> None:
    responses = statuses(
        checkpoints["mlm"],
        [
            ("POST", "/fill-mask", {"json": {"inputs": "no mask here"}}),
            ("POST", "/fill-mask", {"json": {"inputs": "a [MASK]", "top_k": 0}}),
            ("POST", "/fill-mask", {"json": {"inputs": "a [MASK]", "temperature": 2}}),
            ("POST", "/fill-mask", {"json": {"top_k": 2}}),
            ("POST", "/fill-mask", {"json": {"inputs": "a [MASK]", "top_k": 10**9}}),  # fails in postprocess
        ],
    )
    assert_error(responses[0], 422, "validation", "[MASK]")
    assert_error(responses[1], 422, "validation", "top_k")
    assert_error(responses[2], 422, "validation", "temperature")
    assert_error(responses[3], 422, "validation", "`inputs` is required")
    assert_error(responses[4], 422, "validation", "fill-mask cannot answer with these parameters")


def test_client_batch_and_input_length_limits(checkpoints) -> None:
    long_text = " ".join(["word"] * 40)
    responses = statuses(
        checkpoints["sentiment"],
        [
            ("POST", "/embed", {"json": {"inputs": ["a"] * 5}}),
            ("POST", "/predict", {"json": {"inputs": [["a"]] * 5}}),
            ("POST", "/rerank", {"json": {"query": "q", "texts": ["a"] * 5}}),
            ("POST", "/embed", {"json": {"inputs": ["a"] * 4}}),
            ("POST", "/embed", {"json": {"inputs": ["short", long_text]}}),
            ("POST", "/predict", {"json": {"inputs": long_text}}),
            ("POST", "/embed", {"json": {"inputs": long_text, "truncate": True}}),
            ("POST", "/tokenize", {"json": {"inputs": ["a"] * 5}}),
        ],
        max_client_batch_size=4,
        max_input_length=16,
    )
    for response in responses[:2]:
        assert_error(response, 422, "validation", "batch size 5 > maximum allowed batch size 4")
    assert_error(responses[2], 404, "not_found", "one output")  # 3 labels: not a reranker
    assert responses[3].status_code == 200
    assert_error(responses[4], 422, "validation", "input 1 is 42 tokens long", "16 tokens", "--max-input-length")
    assert_error(responses[5], 422, "validation", "42 tokens", "16")
    assert responses[6].status_code == 200 and int(responses[6].headers["x-compute-tokens"]) == 16
    assert_error(responses[7], 422, "validation", "batch size 5")


def test_auto_truncate_makes_truncation_the_default(checkpoints) -> None:
    long_text = " ".join(["word"] * 40)
    responses = statuses(
        checkpoints["sentiment"],
        [
            ("POST", "/embed", {"json": {"inputs": long_text}}),
            ("POST", "/embed", {"json": {"inputs": long_text, "truncate": False}}),
        ],
        max_input_length=16,
        auto_truncate=True,
    )
    assert responses[0].status_code == 200
    assert_error(responses[1], 422, "validation", "16 tokens")


def test_the_model_window_is_the_default_limit(checkpoints) -> None:
    responses = statuses(
        checkpoints["sentiment"], [("POST", "/embed", {"json": {"inputs": "word " * 600, "truncate": False}})]
    )
    assert_error(responses[0], 422, "validation", "602 tokens", "max_position_embeddings (512)")


def test_payload_limit_by_content_length_and_by_stream(checkpoints) -> None:
    body = b'{"inputs": "' + b"x" * 300 + b'"}'

    async def chunks():
        for start in range(0, len(body), 64):
            yield body[start : start + 64]

    responses = statuses(
        checkpoints["sentiment"],
        [
            ("POST", "/embed", {"content": body}),
            ("POST", "/embed", {"content": chunks()}),  # no Content-Length: counted as it streams
            ("POST", "/embed", {"content": b'{"inputs": "fits"}'}),
        ],
        payload_limit=200,
    )
    assert_error(responses[0], 413, "payload_too_large", "--payload-limit 200")
    assert_error(responses[1], 413, "payload_too_large", "--payload-limit 200")
    assert responses[2].status_code == 200


def test_api_key(checkpoints) -> None:
    key = {"Authorization": "Bearer k3y"}
    responses = statuses(
        checkpoints["sentiment"],
        [
            ("POST", "/embed", {"json": {"inputs": "a"}}),
            ("POST", "/embed", {"json": {"inputs": "a"}, "headers": {"Authorization": "Bearer wrong"}}),
            ("POST", "/embed", {"json": {"inputs": "a"}, "headers": key}),
            ("GET", "/info", {}),
            ("GET", "/metrics", {}),
            ("POST", "/v1/embeddings", {"json": {"input": "a"}}),
            ("GET", "/health", {}),
            ("GET", "/", {}),
            ("POST", "/", {"json": {"inputs": "a"}}),
        ],
        api_key="k3y",
    )
    assert_error(responses[0], 401, "unauthorized", "Bearer")
    assert responses[0].headers["www-authenticate"] == "Bearer"
    assert_error(responses[1], 401, "unauthorized")
    assert responses[2].status_code == 200
    assert_error(responses[3], 401, "unauthorized")
    assert_error(responses[4], 401, "unauthorized")
    assert responses[5].status_code == 401
    assert responses[5].json()["error"]["type"] == "invalid_request_error"
    assert responses[6].status_code == 200
    assert responses[7].status_code == 200 and "<html" in responses[7].text  # the page; its calls need the key
    assert_error(responses[8], 401, "unauthorized")


def test_routes_the_head_cannot_serve_unknown_routes_and_methods(checkpoints) -> None:
    responses = statuses(
        checkpoints["ner"],
        [
            ("POST", "/predict", {"json": {"inputs": "a"}}),
            ("POST", "/fill-mask", {"json": {"inputs": "a [MASK]"}}),
            ("POST", "/question-answering", {"json": {"inputs": {"question": "q", "context": "c"}}}),
            ("POST", "/nowhere", {"json": {}}),
            ("GET", "/embed", {}),
        ],
    )
    assert_error(responses[0], 404, "not_found", "SqueezeBertForSequenceClassification", "SqueezeBertForTokenClass")
    assert_error(responses[1], 404, "not_found", "SqueezeBertForMaskedLM")
    assert_error(responses[2], 404, "not_found", "SqueezeBertForQuestionAnswering")
    assert_error(responses[3], 404, "not_found", "/nowhere")
    assert_error(responses[4], 405, "validation", "GET /embed")


def test_openai_route_errors_have_openai_shape(checkpoints) -> None:
    responses = statuses(
        checkpoints["sentiment"],
        [
            ("POST", "/v1/embeddings", {"json": {"input": 3}}),
            ("POST", "/v1/embeddings", {"json": {"input": "a", "encoding_format": "int8"}}),
            ("POST", "/v1/embeddings", {"content": b"{"}),
        ],
    )
    for response, status in zip(responses, (422, 422, 400), strict=True):
        assert response.status_code == status
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error" and error["code"] == "validation"
    assert "encoding_format" in responses[1].json()["error"]["message"]


def test_overload_answers_429_at_once(checkpoints, monkeypatch) -> None:
    folder = checkpoints["sentiment"]

    async def scenario():
        async with served_client(folder, max_concurrent_requests=2) as client:
            pipe = client.app.state.serve.served.pipelines["embeddings"]
            forward, entered, opened = pipe.forward, threading.Event(), threading.Event()

            def held(inputs):
                entered.set()
                assert opened.wait(60)
                return forward(inputs)

            monkeypatch.setattr(pipe, "forward", held)
            busy = [asyncio.ensure_future(client.post("/embed", json={"inputs": f"text {n}"})) for n in range(2)]
            await asyncio.to_thread(entered.wait, 60)
            rejected = await client.post("/embed", json={"inputs": "one too many"})
            openai = await client.post("/v1/embeddings", json={"input": "one too many"})
            opened.set()
            accepted = await asyncio.gather(*busy)
            after = await client.post("/embed", json={"inputs": "room again"})
            return rejected, openai, accepted, after

    rejected, openai, accepted, after = asyncio.run(scenario())
    assert_error(rejected, 429, "overloaded")
    assert openai.status_code == 429 and openai.json()["error"]["type"] == "server_error"
    assert [r.status_code for r in accepted] == [200, 200] and after.status_code == 200


# ----------------------------------------------------------------------------------------------------------------
# The command line


def test_missing_serve_extra_is_one_line_and_status_2(checkpoints, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn raises ImportError
    assert main(["serve", "-m", str(checkpoints["sentiment"])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "squeezebert[serve]" in err and "uvicorn" in err


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--port", "eighty"], ["invalid int value"]),
        (["--max-batch-tokens", "0"], ["max_batch_tokens must be an int >= 1"]),
        (["--port", "70000"], ["port must be at most 65535"]),
        (["--backend", "tpu"], ["invalid choice"]),
        (["--max-input-length", "4096"], ["max_length=4096", "max_position_embeddings (512)"]),
    ],
)
def test_bad_flags_are_one_line_and_status_2(checkpoints, capsys, flags, words) -> None:
    assert main(["serve", "-m", str(checkpoints["sentiment"]), *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    for word in words:
        assert word in err[-1], err
    assert err[-1].startswith("squeezebert serve: error:"), err


def test_missing_model_folder_is_one_line_and_status_2(tmp_path, capsys) -> None:
    assert main(["serve", "-m", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "squeezebert serve: error:" in err[0]


def test_a_taken_port_is_one_line_and_status_2(checkpoints, capsys) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "-m", str(checkpoints["sentiment"]), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"squeezebert serve: error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_a_bug_is_a_json_500_and_the_server_goes_on(checkpoints, monkeypatch) -> None:
    import httpx

    from squeezebert.serving import handlers

    def broken(*args):
        raise KeyError("a bug")

    async def scenario():
        async with served_client(checkpoints["sentiment"]) as client:
            monkeypatch.setattr(handlers, "decode", broken)
            transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve.test") as raw:
                failed = await raw.post("/decode", json={"ids": [101]})
                after = await raw.post("/embed", json={"inputs": "still up"})
            return failed, after

    failed, after = asyncio.run(scenario())
    assert_error(failed, 500, "backend", "POST /decode: internal error KeyError")
    assert after.status_code == 200
