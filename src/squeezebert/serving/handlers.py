"""The JSON of each route: a request body read into a :class:`Work` (which pipeline, which inputs, which call
parameters), and the pipeline's results written in the route's response shape.

The shapes are text-embeddings-inference's (``/embed``, ``/predict``, ``/rerank``, ``/tokenize``, ``/decode``),
OpenAI's (``/v1/embeddings``) and, for the heads TEI lacks, the pipelines' own.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..pipelines import Pipeline
from .errors import ServeError, validation


@dataclass
class Work:
    """What one request asks the model.

    Attributes:
        pipeline: the pipeline that runs it.
        items: the pipeline inputs, one per result.
        params: call parameters, already checked by ``pipeline.prepare``.
        single: the request sent one input (some routes then answer with one result, not a list).
        truncation_side: ``right`` (keep the start) or ``left`` (keep the end).
        extra: what the response needs besides the results (the texts of ``/rerank``...).
    """

    pipeline: Pipeline
    items: list[Any]
    params: dict[str, Any]
    single: bool = False
    truncation_side: str = "right"
    extra: dict[str, Any] = field(default_factory=dict)


def get(body: dict[str, Any], name: str, kinds: type | tuple[type, ...], default: Any = None) -> Any:
    """``body[name]`` if it has one of the JSON ``kinds`` (``null`` gives ``default``), else a 422 naming it."""
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) and bool not in (kinds if isinstance(kinds, tuple) else (kinds,)):
        raise validation(f"`{name}` must be {_kind_names(kinds)}, not a boolean")
    if not isinstance(value, kinds):
        raise validation(f"`{name}` must be {_kind_names(kinds)}, not {_json_type(value)}")
    return value


def _kind_names(kinds: type | tuple[type, ...]) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        list: "a list",
        dict: "an object",
    }
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(names[kind] for kind in kinds)


def _json_type(value: Any) -> str:
    for kind, name in ((bool, "a boolean"), (str, "a string"), (int, "an integer"), (float, "a number")):
        if isinstance(value, kind):
            return name
    return {list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def texts(value: Any, name: str, max_batch: int) -> tuple[list[str], bool]:
    """A string or a non-empty list of strings as ``(list, sent as one string)``; 422 otherwise."""
    if isinstance(value, str):
        return [value], True
    if not isinstance(value, list) or not all(isinstance(text, str) for text in value):
        raise validation(f"`{name}` must be a string or a list of strings")
    check_batch(len(value), name, max_batch)
    return value, False


def check_batch(size: int, name: str, max_batch: int) -> None:
    if size == 0:
        raise validation(f"`{name}` cannot be empty", reason="empty")
    if size > max_batch:
        raise validation(
            f"batch size {size} > maximum allowed batch size {max_batch} (--max-client-batch-size)", reason="batch_size"
        )


def require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise validation(f"the request body must be a JSON object, not {_json_type(body)}")
    return body


def prepare(pipeline: Pipeline, params: dict[str, Any]) -> dict[str, Any]:
    """``pipeline.prepare`` with its ValueError / TypeError as a 422."""
    try:
        return pipeline.prepare(pipeline.check_params(params))
    except (ValueError, TypeError) as err:
        raise validation(str(err)) from None


def truncation(body: dict[str, Any], auto_truncate: bool) -> tuple[bool, str]:
    """``truncate`` (default ``--auto-truncate``) and ``truncation_direction`` (``right`` / ``left``)."""
    truncate = get(body, "truncate", bool, auto_truncate)
    direction = get(body, "truncation_direction", str, "right").lower()
    if direction not in ("right", "left"):
        raise validation(f"`truncation_direction` must be right or left, got {direction!r}")
    return truncate, direction


# ----------------------------------------------------------------------------------------------------------------
# Embeddings: /embed (TEI) and /v1/embeddings (OpenAI)


def embed_work(pipeline: Pipeline, body: dict[str, Any], max_batch: int, auto_truncate: bool) -> Work:
    items, single = texts(body.get("inputs"), "inputs", max_batch)
    normalize = get(body, "normalize", bool, True)
    truncate, side = truncation(body, auto_truncate)
    params = {"pooling": "mean", "normalize": normalize, "truncation": truncate, "return_tensors": True}
    return Work(pipeline, items, prepare(pipeline, params), single, side)


def embeddings(results: list[Any]) -> np.ndarray:
    """The pipeline's vectors (tensors, with ``return_tensors``) as one float32 array ``[inputs, hidden]``: the JSON
    writer gives each number as its shortest float32 form."""
    return np.stack([vector.numpy() for vector in results])


def openai_work(pipeline: Pipeline, body: dict[str, Any], max_batch: int, auto_truncate: bool) -> Work:
    items, single = texts(body.get("input"), "input", max_batch)
    encoding = get(body, "encoding_format", str, "float")
    if encoding not in ("float", "base64"):
        raise validation(f"`encoding_format` must be float or base64, got {encoding!r}")
    get(body, "model", str)
    params = {"pooling": "mean", "normalize": True, "truncation": auto_truncate, "return_tensors": True}
    return Work(pipeline, items, prepare(pipeline, params), single, extra={"encoding_format": encoding})


def openai_response(work: Work, results: list[Any], tokens: int, model_id: str) -> dict[str, Any]:
    data = []
    for index, vector in enumerate(embeddings(results)):
        if work.extra["encoding_format"] == "base64":  # little-endian float32 bytes, as OpenAI sends them
            vector = base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        data.append({"object": "embedding", "embedding": vector, "index": index})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model_id, "usage": usage}


# ----------------------------------------------------------------------------------------------------------------
# Sequence classification: /predict and /rerank


def _sequence(value: Any) -> tuple[str, str] | str:
    if isinstance(value, list) and 1 <= len(value) <= 2 and all(isinstance(text, str) for text in value):
        return value[0] if len(value) == 1 else (value[0], value[1])
    raise validation("each input of a batch must be [text] or [text, text_pair]")


def predict_work(pipeline: Pipeline, body: dict[str, Any], max_batch: int, auto_truncate: bool) -> Work:
    """``inputs``: a text, a pair ``[text, text_pair]``, or a batch ``[[text], [text, text_pair], ...]``."""
    inputs = body.get("inputs")
    if isinstance(inputs, str):
        items, single = [inputs], True
    elif isinstance(inputs, list) and inputs and all(isinstance(text, str) for text in inputs):
        if len(inputs) > 2:
            raise validation("`inputs` as a list of strings is one text or a pair: use [[text], ...] for a batch")
        items, single = [_sequence(inputs)], True
    elif isinstance(inputs, list) and all(isinstance(entry, list) for entry in inputs):
        check_batch(len(inputs), "inputs", max_batch)
        items, single = [_sequence(entry) for entry in inputs], False
    else:
        raise validation("`inputs` must be a text, a pair [text, text_pair] or a batch [[text], [text, pair], ...]")
    truncate, side = truncation(body, auto_truncate)
    raw = get(body, "raw_scores", bool, False)
    params = prepare(pipeline, {"top_k": None, "function_to_apply": "none" if raw else None, "truncation": truncate})
    return Work(pipeline, items, params, single, side)


def rerank_work(pipeline: Pipeline, body: dict[str, Any], max_batch: int, auto_truncate: bool) -> Work:
    if pipeline.config.num_labels != 1:
        raise ServeError(
            "not_found",
            f"/rerank needs a sequence-classification model with one output (a cross-encoder); this one has "
            f"{pipeline.config.num_labels} labels: use /predict",
            reason="model_type",
        )
    query = get(body, "query", str)
    if query is None:
        raise validation("`query` is required")
    items, _ = texts(body.get("texts"), "texts", max_batch)
    truncate, side = truncation(body, auto_truncate)
    raw = get(body, "raw_scores", bool, False)
    params = prepare(
        pipeline, {"top_k": None, "function_to_apply": "none" if raw else "sigmoid", "truncation": truncate}
    )
    extra = {"texts": items, "return_text": get(body, "return_text", bool, False)}
    return Work(pipeline, [(query, text) for text in items], params, False, side, extra)


def rerank_response(work: Work, results: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    ranks = []
    for index, labels in enumerate(results):
        rank = {"index": index, "score": labels[0]["score"]}
        if work.extra["return_text"]:
            rank["text"] = work.extra["texts"][index]
        ranks.append(rank)
    return sorted(ranks, key=lambda rank: -rank["score"])


# ----------------------------------------------------------------------------------------------------------------
# The heads TEI lacks: the pipelines' inputs and parameters as JSON, their results as they are


def _item(pipeline: Pipeline, value: Any) -> Any:
    """A JSON input as the pipeline's input (a ``[prompt, choices]`` or ``[question, context]`` list: a tuple)."""
    if isinstance(value, list) and pipeline.task in ("question-answering", "multiple-choice"):
        return tuple(value)
    return value


def task_work(pipeline: Pipeline, body: dict[str, Any], max_batch: int, auto_truncate: bool) -> Work:
    """``{"inputs": one input or a list, "parameters": {...}}``, or the parameters beside ``inputs``."""
    if "inputs" not in body:
        raise validation("`inputs` is required")
    inputs = body["inputs"]
    params = get(body, "parameters", dict, None)
    if params is None:
        params = {key: value for key, value in body.items() if key != "inputs"}
    is_list = isinstance(inputs, list) and not (
        pipeline.task in ("question-answering", "multiple-choice") and inputs and isinstance(inputs[0], str)
    )
    if is_list:
        check_batch(len(inputs), "inputs", max_batch)
        items = [_item(pipeline, value) for value in inputs]
    else:
        items = [_item(pipeline, inputs)]
    return Work(pipeline, items, prepare(pipeline, params), not is_list)


# ----------------------------------------------------------------------------------------------------------------
# The tokenizer: /tokenize and /decode


def tokenize(tokenizer: Any, body: dict[str, Any], max_batch: int) -> list[list[dict[str, Any]]]:
    """TEI's tokens: ``{"id", "text", "special", "start", "stop"}`` per token (character offsets; a special token
    has its own text and no offsets)."""
    items, _ = texts(body.get("inputs"), "inputs", max_batch)
    add_special = get(body, "add_special_tokens", bool, True)
    if not tokenizer.is_fast:
        raise ServeError("tokenizer", "/tokenize needs a fast tokenizer (tokenizer.json) for the offsets")
    results = []
    for text in items:
        encoding = tokenizer(
            text, add_special_tokens=add_special, return_offsets_mapping=True, return_special_tokens_mask=True
        )
        tokens = tokenizer.convert_ids_to_tokens(encoding["input_ids"])
        simple = []
        for token_id, token, special, (start, stop) in zip(
            encoding["input_ids"], tokens, encoding["special_tokens_mask"], encoding["offset_mapping"], strict=True
        ):
            if special:
                simple.append({"id": token_id, "text": token, "special": True, "start": None, "stop": None})
            else:
                simple.append(
                    {"id": token_id, "text": text[start:stop], "special": False, "start": start, "stop": stop}
                )
        results.append(simple)
    return results


def decode(tokenizer: Any, body: dict[str, Any], max_batch: int) -> list[str]:
    ids = body.get("ids")
    skip = get(body, "skip_special_tokens", bool, True)
    if isinstance(ids, list) and ids and all(isinstance(entry, list) for entry in ids):
        check_batch(len(ids), "ids", max_batch)
        batch = ids
    else:
        batch = [ids]
    vocab = tokenizer.vocab_size
    for entry in batch:
        if (
            not isinstance(entry, list)
            or not entry
            or not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab for i in entry)
        ):
            raise validation(f"`ids` must be a non-empty list of token ids in [0, {vocab}), or a list of such lists")
    return [tokenizer.decode(entry, skip_special_tokens=skip) for entry in batch]
