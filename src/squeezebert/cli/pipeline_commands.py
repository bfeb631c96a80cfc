"""The pipeline subcommands (``fill-mask``, ``classify``, ``zero-shot``, ``ner``, ``qa``, ``choice``, ``embed``).

Inputs come from the arguments, from ``--file`` or from stdin: plain text (one input per line) or JSON lines with
named fields (``text``, ``text_pair``, ``question``, ``context``, ``prompt``, ``choices``). Input must be UTF-8; a
line that is not names its source and line number. Results are readable text on a terminal and JSON lines (one
object per input: its fields plus ``result``) with ``--json`` or when piped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from ..hub import parse_json_object
from .command import Command, UserError

# ----------------------------------------------------------------------------------------------------------------
# Reading inputs


def decode_lines(lines: Iterable[bytes], source: str) -> Iterator[str]:
    """The lines of a byte stream as text; a line that is not UTF-8 is a :class:`UserError` naming its place."""
    for number, raw in enumerate(lines, start=1):
        try:
            yield raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise UserError(
                f"{source}, line {number} is not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
            ) from None


def read_records(lines: Iterable[str], source: str) -> Iterator[dict[str, Any]]:
    """Records from plain-text lines (``{"text": line}``) or JSON lines; the format is set by the first line."""
    is_json = None
    for number, line in enumerate(lines, start=1):
        line = line.rstrip("\r\n")
        if not line.strip():
            continue
        if is_json is None:
            is_json = line.lstrip().startswith("{")
        if not is_json:
            yield {"text": line}
            continue
        yield parse_json_object(line, f"{source}, line {number}")


def argument_texts(texts: list[str]) -> list[str]:
    """The positional inputs, checked to be UTF-8 (Python keeps undecodable bytes of argv as lone surrogates)."""
    for number, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise UserError(f"input argument {number} is not UTF-8 text") from None
    return texts


def input_records(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The records of the positional inputs, of ``--file``, or of stdin."""
    if args.inputs:
        return iter([{"text": text} for text in argument_texts(args.inputs)])
    if args.file and args.file != "-":
        try:
            handle = open(args.file, "rb")  # noqa: SIM115 - closed when the generator ends
        except OSError as err:
            raise UserError(f"cannot read --file {args.file}: {err.strerror}") from None
        return _closing(read_records(decode_lines(handle, args.file), args.file), handle)
    if sys.stdin.isatty() and args.file != "-":
        raise UserError("no input: pass texts as arguments, --file FILE, or pipe lines on stdin")
    return read_records(decode_lines(sys.stdin.buffer, "stdin"), "stdin")


def _closing(records: Iterator[dict[str, Any]], handle: BinaryIO) -> Iterator[dict[str, Any]]:
    with handle:
        yield from records


def field(record: dict[str, Any], name: str, kind: type = str) -> Any:
    """``record[name]``, which must be a ``kind``."""
    value = record.get(name)
    if not isinstance(value, kind):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise UserError(f"input {json.dumps(record)[:80]} needs a {kind.__name__} field {name!r} ({got})")
    return value


# ----------------------------------------------------------------------------------------------------------------
# How a result reads on a terminal (JSON lines carry the full-precision numbers)


def _score(score: float) -> str:
    return f"{score:.4f}"


def show_fill_mask(record: dict, result: Any) -> str:
    per_mask = result if result and isinstance(result[0], list) else [result]
    lines = [record["text"]]
    for n, predictions in enumerate(per_mask):
        if len(per_mask) > 1:
            lines.append(f"  mask {n + 1}:")
        lines += [f"  {_score(p['score'])}  {p['token_str']:<15} {p['sequence']}" for p in predictions]
    return "\n".join(lines)


def show_labels(record: dict, result: Any) -> str:
    result = result if isinstance(result, list) else [result]
    text = record["text"] + (f"  ||  {record['text_pair']}" if record.get("text_pair") else "")
    return "\n".join([text] + [f"  {_score(r['score'])}  {r['label']}" for r in result])


def show_zero_shot(record: dict, result: Any) -> str:
    rows = zip(result["labels"], result["scores"], strict=True)
    return "\n".join([record["text"]] + [f"  {_score(score)}  {label}" for label, score in rows])


def show_entities(record: dict, result: Any) -> str:
    lines = [record["text"]]
    for e in result:
        label = e.get("entity_group", e.get("entity"))
        lines.append(f"  {label:<8} {e['word']:<25} [{e['start']}:{e['end']}]  {_score(e['score'])}")
    return "\n".join(lines if result else lines + ["  (no entities)"])


def show_answers(record: dict, result: Any) -> str:
    answers = result if isinstance(result, list) else [result]
    lines = [f"Q: {record['question']}"]
    lines += [f"  {_score(a['score'])}  {a['answer']!r}  [{a['start']}:{a['end']}]" for a in answers]
    return "\n".join(lines)


def show_choices(record: dict, result: Any) -> str:
    lines = [record["prompt"]]
    for choice, score in zip(result["choices"], result["scores"], strict=True):
        mark = "*" if choice == result["answer"] else " "
        lines.append(f" {mark}{_score(score)}  {choice}")
    return "\n".join(lines)


def show_vector(record: dict, result: Any) -> str:
    vector = result if not result or not isinstance(result[0], list) else result[0]
    head = " ".join(f"{v:+.4f}" for v in vector[:8])
    shape = f"{len(result)}x{len(vector)}" if result and isinstance(result[0], list) else f"{len(vector)}"
    return f"{record['text']}\n  [{shape}] {head}{' ...' if len(vector) > 8 else ''}"


# ----------------------------------------------------------------------------------------------------------------
# The subcommands: how a record becomes a pipeline input, the task's own flags, and its call parameters


@dataclass(frozen=True)
class PipelineCommand:
    """A subcommand that runs one pipeline over its inputs.

    Args:
        name: the subcommand.
        pipeline_task: the :func:`squeezebert.pipeline` task it runs.
        help: one line for ``--help``.
        to_input: ``(record, args) -> pipeline input``.
        show: ``(record, result) -> readable text``.
        call_params: ``args -> keyword arguments of the pipeline call``.
        add_options: adds the task's own flags.
        records: ``args -> records`` when the task reads its inputs in its own way.
    """

    name: str
    pipeline_task: str
    help: str
    to_input: Callable[[dict, argparse.Namespace], Any]
    show: Callable[[dict, Any], str]
    call_params: Callable[[argparse.Namespace], dict[str, Any]]
    add_options: Callable[[argparse.ArgumentParser], None]
    records: Callable[[argparse.Namespace], Iterator[dict[str, Any]]] = input_records


def _top_k(args: argparse.Namespace, **params: Any) -> dict[str, Any]:
    return {**({"top_k": args.top_k} if args.top_k is not None else {}), **params}


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _labels(args: argparse.Namespace) -> list[str]:
    labels = _comma_list(args.labels)
    if not labels:
        raise UserError("--labels needs at least one label (comma-separated)")
    return labels


def _text_input(record: dict, args: argparse.Namespace) -> Any:
    return field(record, "text")


def _classify_input(record: dict, args: argparse.Namespace) -> Any:
    pair = record.get("text_pair")
    if pair is not None and not isinstance(pair, str):
        raise UserError(f"'text_pair' must be a string in {json.dumps(record)[:80]}")
    return field(record, "text") if pair is None else (field(record, "text"), pair)


def _qa_input(record: dict, args: argparse.Namespace) -> Any:
    if "context" not in record and "text" in record:
        if not args.question:
            raise UserError("qa needs a question: pass --question, or JSON lines with 'question' and 'context'")
        record["question"], record["context"] = args.question, record.pop("text")
    return {"question": field(record, "question"), "context": field(record, "context")}


def _choice_input(record: dict, args: argparse.Namespace) -> Any:
    if "choices" not in record and "text" in record:
        raise UserError("choice needs --prompt PROMPT for plain-text choices, or JSON lines with prompt and choices")
    choices = field(record, "choices", list)
    if not all(isinstance(c, str) for c in choices):
        raise UserError(f"'choices' must be a list of strings in {json.dumps(record)[:80]}")
    return {"prompt": field(record, "prompt"), "choices": choices}


def _choice_records(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """With ``--prompt`` the inputs are the choices of one prompt; without, JSON lines with prompt and choices."""
    if args.prompt is None:
        if args.inputs:
            raise UserError("choice needs --prompt PROMPT when the choices are given as arguments")
        return input_records(args)
    choices = [field(record, "text") for record in input_records(args)]
    return iter([{"prompt": args.prompt, "choices": choices}])


def _add_fill_mask(p: argparse.ArgumentParser) -> None:
    p.add_argument("--targets", help="only score these words (comma-separated)")


def _add_classify(p: argparse.ArgumentParser) -> None:
    p.add_argument("--function", choices=("softmax", "sigmoid", "none"), help="score function (default: config's)")
    p.add_argument("--all", action="store_true", help="show every label (same as --top-k <number of labels>)")


def _add_zero_shot(p: argparse.ArgumentParser) -> None:
    p.add_argument("--labels", required=True, help="candidate labels, comma-separated")
    p.add_argument("--template", default="This example is {}.", help="hypothesis template ({} = the label)")
    p.add_argument("--multi-label", action="store_true", help="score each label on its own")


def _add_ner(p: argparse.ArgumentParser) -> None:
    p.add_argument("--aggregation", default="simple", choices=("none", "simple", "first", "average", "max"))
    p.add_argument("--stride", type=int, help="tokens shared by the windows of a long text")
    p.add_argument("--ignore-labels", default="O", help="labels to leave out, comma-separated (default: O)")


def _add_qa(p: argparse.ArgumentParser) -> None:
    p.add_argument("--question", "-q", help="the question about each context (plain-text inputs)")
    p.add_argument("--doc-stride", type=int, help="context tokens shared by the windows of a long context")
    p.add_argument("--max-answer-len", type=int, default=15, help="longest answer in tokens")
    p.add_argument("--handle-impossible", action="store_true", help="allow the empty answer")


def _add_choice(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", "-p", help="the prompt; the inputs are then its choices (needed for plain text)")


def _add_embed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pooling", default="mean", choices=("mean", "cls", "none"), help="none = token vectors")
    p.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the vectors")


PIPELINE_COMMANDS = (
    PipelineCommand(
        name="fill-mask",
        pipeline_task="fill-mask",
        help="predict the [MASK] tokens of texts",
        to_input=_text_input,
        show=show_fill_mask,
        call_params=lambda a: _top_k(a, **({"targets": _comma_list(a.targets)} if a.targets else {})),
        add_options=_add_fill_mask,
    ),
    PipelineCommand(
        name="classify",
        pipeline_task="text-classification",
        help="classify texts or (text, text_pair) pairs",
        to_input=_classify_input,
        show=show_labels,
        call_params=lambda a: {
            **({"top_k": None} if a.all else _top_k(a)),
            **({"function_to_apply": a.function} if a.function else {}),
        },
        add_options=_add_classify,
    ),
    PipelineCommand(
        name="zero-shot",
        pipeline_task="zero-shot-classification",
        help="classify texts into any labels with an NLI model",
        to_input=_text_input,
        show=show_zero_shot,
        call_params=lambda a: {
            "candidate_labels": _labels(a),
            "hypothesis_template": a.template,
            "multi_label": a.multi_label,
        },
        add_options=_add_zero_shot,
    ),
    PipelineCommand(
        name="ner",
        pipeline_task="token-classification",
        help="label the entities of texts",
        to_input=_text_input,
        show=show_entities,
        call_params=lambda a: {
            "aggregation_strategy": a.aggregation,
            "stride": a.stride,
            "ignore_labels": _comma_list(a.ignore_labels),
        },
        add_options=_add_ner,
    ),
    PipelineCommand(
        name="qa",
        pipeline_task="question-answering",
        help="answer questions from contexts",
        to_input=_qa_input,
        show=show_answers,
        call_params=lambda a: _top_k(
            a, doc_stride=a.doc_stride, max_answer_len=a.max_answer_len, handle_impossible_answer=a.handle_impossible
        ),
        add_options=_add_qa,
    ),
    PipelineCommand(
        name="choice",
        pipeline_task="multiple-choice",
        help="score the choices of prompts",
        to_input=_choice_input,
        show=show_choices,
        call_params=lambda a: {},
        add_options=_add_choice,
        records=_choice_records,
    ),
    PipelineCommand(
        name="embed",
        pipeline_task="embeddings",
        help="sentence (or token) vectors of texts",
        to_input=_text_input,
        show=show_vector,
        call_params=lambda a: {"pooling": a.pooling, "normalize": not a.no_normalize},
        add_options=_add_embed,
    ),
)


# ----------------------------------------------------------------------------------------------------------------
# Running one


def add_common_options(p: argparse.ArgumentParser) -> None:
    """The flags every pipeline subcommand has."""
    p.add_argument("inputs", nargs="*", help="inputs (default: --file, or lines on stdin)")
    p.add_argument("--file", "-f", help="read inputs from FILE: text lines, or JSON lines with named fields")
    p.add_argument("--model", "-m", help="model folder or hub id")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default 8)")
    p.add_argument("--int8", action="store_true", help="run the int8 dynamically-quantised model (CPU)")
    p.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnx"),
        help="torch (default), or onnx: run a folder written by `squeezebert export` in ONNX Runtime (CPU)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--max-length", type=int, help="tokens per sequence (default: the model's window)")
    p.add_argument("--top-k", type=int, help="how many results per input")
    p.add_argument("--json", action="store_true", help="JSON lines output (the default when piped)")
    p.add_argument("--no-progress", action="store_true", help="never show a progress bar")


def run_pipeline(spec: PipelineCommand, args: argparse.Namespace) -> int:
    """Run ``spec``'s pipeline over the inputs of ``args`` and print one result per input."""
    from ..pipelines import DEFAULT_MODELS, pipeline

    model = args.model or DEFAULT_MODELS.get(spec.pipeline_task)
    if model is None:
        raise UserError(f"there is no default SqueezeBERT checkpoint for {spec.name}: pass --model <folder or hub id>")
    params = {k: v for k, v in spec.call_params(args).items() if v is not None or k == "top_k"}
    records = spec.records(args)
    as_json = args.json or not sys.stdout.isatty()
    pipe = pipeline(
        spec.pipeline_task,
        model=model,
        device=args.device,
        batch_size=args.batch_size,
        int8=args.int8,
        backend=args.backend,
        progress=False if args.no_progress else None,
        max_length=args.max_length,
    )
    pending: deque[dict[str, Any]] = deque()  # records read by the pipeline whose results are not printed yet

    def inputs() -> Iterator[Any]:
        for record in records:
            pending.append(record)
            yield spec.to_input(record, args)

    for result in pipe(inputs(), **params):
        record = pending.popleft()
        if as_json:
            print(json.dumps({**record, "result": result}, ensure_ascii=False), flush=True)
        else:
            print(spec.show(record, result), flush=True)
    return 0


def _command(spec: PipelineCommand) -> Command:
    def add_arguments(p: argparse.ArgumentParser) -> None:
        add_common_options(p)
        spec.add_options(p)

    return Command(
        name=spec.name, help=spec.help, add_arguments=add_arguments, run=lambda args: run_pipeline(spec, args)
    )


COMMANDS: tuple[Command, ...] = tuple(_command(spec) for spec in PIPELINE_COMMANDS)
