"""The Starlette app: the routes, the limits a request meets before the model (API key, requests in flight, body
size, JSON), the timing headers and the error bodies.

The event loop only reads, checks and answers requests: tokenization and postprocessing run in one worker thread,
the forward passes in the :class:`~squeezebert.serving.batching.BatchEngine`'s threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from .. import __version__
from . import handlers
from .batching import BatchEngine, Timing
from .errors import ServeError, validation
from .handlers import Work
from .metrics import ServeMetrics
from .model import ROUTE_TASKS, ServedModel
from .settings import ServeSettings

PAGE = Path(__file__).with_name("page.html")
# Answered without the API key: the health probe, and the page (it holds no model data; its calls need the key)
OPEN_ROUTES = {("GET", "/health"), ("GET", "/")}
HEAD_ROUTES = ("/fill-mask", "/token-classification", "/question-answering", "/multiple-choice")  # beyond TEI


class ServeState:
    """What the routes share: the model, the settings, the engine, the metrics, the tokenization thread."""

    def __init__(self, served: ServedModel, settings: ServeSettings) -> None:
        self.served = served
        self.settings = settings
        self.metrics = ServeMetrics()
        self.engine = BatchEngine(settings.max_batch_tokens, settings.max_batch_requests, self.metrics)
        self.tokenization = ThreadPoolExecutor(max_workers=1, thread_name_prefix="squeezebert-tokenizer")
        self.in_flight = 0

    async def in_thread(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.tokenization, function, *args)

    # ------------------------------------------------------------------------------------------------------------
    # Running a pipeline

    def preprocess(self, work: Work) -> list[list[dict[str, Any]]]:
        """The rows of each input (in the tokenization thread); 422 for an input the pipeline refuses or one longer
        than ``max_input_length`` when truncation is off."""
        tokenizer = work.pipeline.tokenizer
        side = tokenizer.truncation_side
        tokenizer.truncation_side = work.truncation_side  # one tokenization thread: no one else sees it
        try:
            rows_per_item = []
            for n, item in enumerate(work.items):
                try:
                    rows = work.pipeline.preprocess(item, work.params)
                except (ValueError, TypeError) as err:
                    where = f"input {n}: " if len(work.items) > 1 else ""
                    raise validation(f"{where}{err}", reason="tokenizer") from None
                limit = self.served.max_input_length
                longest = max(len(row["input_ids"]) for row in rows)
                if longest > limit:
                    raise validation(
                        f"input {n} is {longest} tokens long, more than the limit of {limit} tokens "
                        "(--max-input-length): send truncate=true or shorten it",
                        reason="validation",
                    )
                rows_per_item.append(rows)
            return rows_per_item
        finally:
            tokenizer.truncation_side = side

    async def run(self, work: Work) -> tuple[list[Any], Timing, int]:
        """The results of ``work`` (one per item), where the time went, and the tokens it ran."""
        start = time.perf_counter()
        rows_per_item = await self.in_thread(self.preprocess, work)
        timing = Timing(tokenization=time.perf_counter() - start)
        rows = [row for item_rows in rows_per_item for row in item_rows]
        outputs, job = await self.engine.run(work.pipeline, rows)
        timing.queue = (job.started or job.enqueued) - job.enqueued
        timing.inference = job.inference
        results = await self.in_thread(self.postprocess, work, rows_per_item, outputs)
        return results, timing, sum(len(row["input_ids"]) for row in rows)

    @staticmethod
    def postprocess(work: Work, rows_per_item: list[list[dict]], outputs: list[dict]) -> list[Any]:
        """The result of each input (in the tokenization thread); 422 when the call parameters cannot give one
        (e.g. a ``top_k`` larger than the vocabulary)."""
        results, offset = [], 0
        for item, rows in zip(work.items, rows_per_item, strict=True):
            item_outputs = outputs[offset : offset + len(rows)]
            try:
                results.append(work.pipeline.postprocess(item, rows, item_outputs, work.params))
            except (ValueError, TypeError, IndexError, RuntimeError) as err:
                raise validation(f"{work.pipeline.task} cannot answer with these parameters: {err}") from None
            offset += len(rows)
        return results

    async def healthy(self) -> bool:
        """Whether the model runs: after a failed forward pass, one forward pass of one token decides."""
        if self.engine.healthy:
            return True
        pipeline = next(iter(self.served.pipelines.values()))
        token = pipeline.tokenizer.cls_token_id
        try:
            await self.engine.run(pipeline, [{"input_ids": [token], "token_type_ids": [0]}])
        except ServeError:
            return False
        return True


# ----------------------------------------------------------------------------------------------------------------
# Reading requests


async def read_json(request: Request, limit: int) -> Any:
    """The JSON body: 413 past ``limit`` bytes (by Content-Length, then as it streams), 400 for bytes that are not
    JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServeError("payload_too_large", f"the body is {declared} bytes, more than --payload-limit {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ServeError("payload_too_large", f"the body is more than --payload-limit {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise ServeError("empty", "the request has no body: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise ServeError("validation", f"the body is not JSON: {err}", reason="json", status=400) from None


async def until_disconnect(request: Request) -> None:
    """Returns when the client goes away (the body has been read: the next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def unless_disconnected(request: Request, work: Awaitable[Any]) -> Any:
    """``await work``, cancelled when the client goes away first (its rows are then dropped before inference)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(until_disconnect(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the server cancelled this request: so is its work
        task.cancel()
        raise
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise ServeError("validation", "the client went away", reason="disconnected")
    return task.result()


def timing_headers(start: float, timing: Timing, tokens: int, characters: int) -> dict[str, str]:
    """Text-embeddings-inference's timing headers, in whole milliseconds (``start``: when the request came in)."""
    total = time.perf_counter() - start
    ms = lambda seconds: str(int(seconds * 1000))  # noqa: E731
    return {
        "x-compute-type": "cpu",
        "x-compute-time": ms(total),
        "x-compute-characters": str(characters),
        "x-compute-tokens": str(tokens),
        "x-total-time": ms(total),
        "x-tokenization-time": ms(timing.tokenization),
        "x-queue-time": ms(timing.queue),
        "x-inference-time": ms(timing.inference),
    }


def characters(items: list[Any]) -> int:
    count = 0
    for item in items:
        if isinstance(item, str):
            count += len(item)
        elif isinstance(item, (tuple, list)):
            count += characters(list(item))
        elif isinstance(item, dict):
            count += characters(list(item.values()))
    return count


# ----------------------------------------------------------------------------------------------------------------
# The routes


Handler = Callable[[ServeState, Request, Any], Awaitable[Response]]


def model_route(path: str, handler: Handler, openai: bool = False) -> Route:
    """A POST route that runs the model: counted, limited, timed, its errors written as the route writes them."""

    async def endpoint(request: Request) -> Response:
        state: ServeState = request.app.state.serve
        metrics = state.metrics
        request.state.start = start = time.perf_counter()
        metrics.request_count.labels(path).inc()
        if state.in_flight >= state.settings.max_concurrent_requests:
            metrics.request_failure.labels(path, "overloaded").inc()
            return error_response(ServeError("overloaded", "Model is overloaded"), openai)
        state.in_flight += 1
        metrics.in_flight.inc()
        try:
            body = await read_json(request, state.settings.payload_limit)
            response = await handler(state, request, handlers.require_object(body))
        except ServeError as err:
            metrics.request_failure.labels(path, err.reason).inc()
            return error_response(err, openai)
        finally:
            state.in_flight -= 1
            metrics.in_flight.dec()
        metrics.request_success.labels(path).inc()
        metrics.request_duration.observe(time.perf_counter() - start)
        return response

    return Route(path, endpoint, methods=["POST"])


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``content`` as JSON, numpy arrays included (orjson: fast enough to keep large embeddings off the critical
    path; NaN is written as null)."""
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status_code, headers=headers, media_type="application/json")


def error_response(err: ServeError, openai: bool = False) -> Response:
    headers = {"www-authenticate": "Bearer"} if err.status == 401 else None
    return json_response(err.openai_body() if openai else err.body(), status_code=err.status, headers=headers)


async def answer(state: ServeState, request: Request, work: Work, shape: Callable[[list[Any], int], Any]) -> Response:
    """Run ``work`` and answer ``shape(results, tokens)`` with the timing headers."""
    results, timing, tokens = await unless_disconnected(request, state.run(work))
    metrics = state.metrics
    metrics.tokenization_duration.observe(timing.tokenization)
    metrics.queue_duration.observe(timing.queue)
    metrics.inference_duration.observe(timing.inference)
    headers = timing_headers(request.state.start, timing, tokens, characters(work.items))
    return json_response(shape(results, tokens), headers=headers)


def pipeline_for(state: ServeState, path: str) -> Any:
    try:
        return state.served.pipeline_for(path)
    except LookupError as err:
        raise ServeError("not_found", str(err), reason="model_type") from None


async def embed(state: ServeState, request: Request, body: dict[str, Any]) -> Response:
    s = state.settings
    work = handlers.embed_work(pipeline_for(state, "/embed"), body, s.max_client_batch_size, s.auto_truncate)
    return await answer(state, request, work, lambda results, tokens: handlers.embeddings(results))


async def openai_embeddings(state: ServeState, request: Request, body: dict[str, Any]) -> Response:
    s = state.settings
    work = handlers.openai_work(pipeline_for(state, "/v1/embeddings"), body, s.max_client_batch_size, s.auto_truncate)
    model_id = state.served.model_id
    return await answer(state, request, work, lambda r, tokens: handlers.openai_response(work, r, tokens, model_id))


async def predict(state: ServeState, request: Request, body: dict[str, Any]) -> Response:
    s = state.settings
    work = handlers.predict_work(pipeline_for(state, "/predict"), body, s.max_client_batch_size, s.auto_truncate)
    return await answer(state, request, work, lambda results, tokens: results[0] if work.single else results)


async def rerank(state: ServeState, request: Request, body: dict[str, Any]) -> Response:
    s = state.settings
    work = handlers.rerank_work(pipeline_for(state, "/rerank"), body, s.max_client_batch_size, s.auto_truncate)
    return await answer(state, request, work, lambda results, tokens: handlers.rerank_response(work, results))


def task_handler(path: str) -> Handler:
    """The handler of a head TEI lacks: the pipeline's inputs and parameters in, its results out."""

    async def handler(state: ServeState, request: Request, body: dict[str, Any]) -> Response:
        s = state.settings
        work = handlers.task_work(pipeline_for(state, path), body, s.max_client_batch_size, s.auto_truncate)
        return await answer(state, request, work, lambda results, tokens: results[0] if work.single else results)

    return handler


async def tokenize(state: ServeState, request: Request, body: dict[str, Any]) -> Response:
    limit = state.settings.max_client_batch_size
    return json_response(await state.in_thread(handlers.tokenize, state.served.tokenizer, body, limit))


async def decode(state: ServeState, request: Request, body: dict[str, Any]) -> Response:
    limit = state.settings.max_client_batch_size
    return json_response(await state.in_thread(handlers.decode, state.served.tokenizer, body, limit))


async def info(request: Request) -> Response:
    state: ServeState = request.app.state.serve
    served, s = state.served, state.settings
    config = served.config
    if "embeddings" in served.pipelines and len(served.pipelines) == 1:
        model_type: dict[str, Any] = {"embedding": {"pooling": "mean"}}
    else:
        labels = getattr(config, "id2label", None) or {}
        model_type = {"classifier": {"id2label": {str(k): v for k, v in labels.items()}}}
    return json_response(
        {
            "model_id": served.model_id,
            "model_sha": None,
            "model_dtype": "int8" if served.int8 else "float32",
            "model_type": model_type,
            "head": served.head,
            "tasks": list(served.pipelines),
            "routes": [route for route, task in ROUTE_TASKS.items() if task in served.pipelines],
            "backend": served.backend,
            "max_concurrent_requests": s.max_concurrent_requests,
            "max_input_length": served.max_input_length,
            "max_batch_tokens": s.max_batch_tokens,
            "max_batch_requests": s.max_batch_requests,
            "max_client_batch_size": s.max_client_batch_size,
            "auto_truncate": s.auto_truncate,
            "payload_limit": s.payload_limit,
            "tokenization_workers": 1,
            "version": __version__,
        }
    )


async def health(request: Request) -> Response:
    state: ServeState = request.app.state.serve
    if await state.healthy():
        return Response(status_code=200)
    return error_response(ServeError("unhealthy", "unhealthy: the last forward pass failed, and so did a new one"))


async def metrics(request: Request) -> Response:
    state: ServeState = request.app.state.serve
    return Response(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def page(request: Request) -> Response:
    try:
        return HTMLResponse(PAGE.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return error_response(ServeError("not_found", "the page (serving/page.html) is not installed"))


# ----------------------------------------------------------------------------------------------------------------
# The app


def build_app(served: ServedModel, settings: ServeSettings) -> Starlette:
    """The ASGI app serving ``served`` within the limits of ``settings``; its lifespan starts and stops the batch
    engine (run it under uvicorn, or enter ``app.router.lifespan_context(app)`` in-process)."""
    state = ServeState(served, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.engine.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, state.engine.stop)
            state.tokenization.shutdown()

    model_handlers: dict[str, Handler] = {
        "/embed": embed,
        "/v1/embeddings": openai_embeddings,
        "/predict": predict,
        "/rerank": rerank,
        **{path: task_handler(path) for path in HEAD_ROUTES},
        "/tokenize": tokenize,
        "/decode": decode,
    }
    routes = [
        Route("/", page, methods=["GET"]),
        model_route("/", model_handlers[served.default_route]),  # as TEI: POST / is the head's own route
        Route("/info", info, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *(model_route(path, handler, openai=path == "/v1/embeddings") for path, handler in model_handlers.items()),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        kind = {404: "not_found", 405: "validation"}.get(status, "validation")
        message = f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'error')}"
        return json_response({"error": message, "error_type": kind}, status_code=status)

    async def server_error(request: Request, exc: Exception) -> Response:  # a bug: uvicorn logs its traceback
        message = f"{request.method} {request.url.path}: internal error {type(exc).__name__}"
        return json_response({"error": message, "error_type": "backend"}, status_code=500)

    handlers_by_error = {HTTPException: http_error, Exception: server_error}
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers=handlers_by_error)
    app.state.serve = state
    if settings.api_key is not None:
        app.add_middleware(BearerAuth, api_key=settings.api_key)
    return app


class BearerAuth:
    """ASGI middleware: ``Authorization: Bearer <key>`` on every HTTP route but GET /health and GET /, else 401."""

    def __init__(self, app: Any, api_key: str) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] == "http" and (scope["method"], scope["path"]) not in OPEN_ROUTES:
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                openai = scope["path"] == "/v1/embeddings"
                err = ServeError("unauthorized", "a valid 'Authorization: Bearer <api key>' header is required")
                await error_response(err, openai)(scope, receive, send)
                return
        await self.app(scope, receive, send)
