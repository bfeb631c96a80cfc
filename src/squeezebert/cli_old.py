"""The ``squeezebert`` command: the pipelines from a shell, plus ``info``, ``bench`` and ``convert-bert``.

Inputs come from the arguments, from ``--file`` or from stdin: plain text (one input per line) or JSON lines with
named fields (``text``, ``text_pair``, ``question``, ``context``, ``prompt``, ``choices``). Results are readable
text on a terminal and JSON lines (one object per input: its fields plus ``result``) with ``--json`` or when
piped. User errors print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .hub import parse_json_object

USER_ERROR = 2


class UserError(Exception):
    """Bad input from the command line user: printed as one line, exit status 2."""


# ----------------------------------------------------------------------------------------------------------------
# Reading inputs


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


def input_records(args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    """The records of the positional inputs, of ``--file``, or of stdin."""
    if args.inputs:
        return iter([{"text": text} for text in args.inputs])
    if args.file and args.file != "-":
        try:
            handle = open(args.file, encoding="utf-8")  # noqa: SIM115 - closed when the generator ends
        except OSError as err:
            raise UserError(f"cannot read --file {args.file}: {err.strerror}") from None
        return _closing(read_records(handle, args.file), handle)
    if sys.stdin.isatty() and args.file != "-":
        raise UserError("no input: pass texts as arguments, --file FILE, or pipe lines on stdin")
    return read_records(sys.stdin, "stdin")


def _closing(records: Iterator[dict[str, Any]], handle: Any) -> Iterator[dict[str, Any]]:
    with handle:
        yield from records


def field(record: dict[str, Any], name: str, kind: type = str) -> Any:
    value = record.get(name)
    if not isinstance(value, kind):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise UserError(f"input {json.dumps(record)[:80]} needs a {kind.__name__} field {name!r} ({got})")
    return value


# ----------------------------------------------------------------------------------------------------------------
# The task subcommands: how a record becomes a pipeline input, and how a result reads on a terminal


def _pct(score: float) -> str:
    return f"{score:.4f}"


def show_fill_mask(record: dict, result: Any) -> str:
    per_mask = result if result and isinstance(result[0], list) else [result]
    lines = [record["text"]]
    for n, predictions in enumerate(per_mask):
        if len(per_mask) > 1:
            lines.append(f"  mask {n + 1}:")
        lines += [f"  {_pct(p['score'])}  {p['token_str']:<15} {p['sequence']}" for p in predictions]
    return "\n".join(lines)


def show_labels(record: dict, result: Any) -> str:
    result = result if isinstance(result, list) else [result]
    text = record["text"] + (f"  ||  {record['text_pair']}" if record.get("text_pair") else "")
    return "\n".join([text] + [f"  {_pct(r['score'])}  {r['label']}" for r in result])


def show_zero_shot(record: dict, result: Any) -> str:
    rows = zip(result["labels"], result["scores"], strict=True)
    return "\n".join([record["text"]] + [f"  {_pct(score)}  {label}" for label, score in rows])


def show_entities(record: dict, result: Any) -> str:
    lines = [record["text"]]
    for e in result:
        label = e.get("entity_group", e.get("entity"))
        lines.append(f"  {label:<8} {e['word']:<25} [{e['start']}:{e['end']}]  {_pct(e['score'])}")
    return "\n".join(lines if result else lines + ["  (no entities)"])


def show_answers(record: dict, result: Any) -> str:
    answers = result if isinstance(result, list) else [result]
    lines = [f"Q: {record['question']}"]
    lines += [f"  {_pct(a['score'])}  {a['answer']!r}  [{a['start']}:{a['end']}]" for a in answers]
    return "\n".join(lines)


def show_choices(record: dict, result: Any) -> str:
    lines = [record["prompt"]]
    for choice, score in zip(result["choices"], result["scores"], strict=True):
        mark = "*" if choice == result["answer"] else " "
        lines.append(f" {mark}{_pct(score)}  {choice}")
    return "\n".join(lines)


def show_vector(record: dict, result: Any) -> str:
    vector = result if not result or not isinstance(result[0], list) else result[0]
    head = " ".join(f"{v:+.4f}" for v in vector[:8])
    shape = f"{len(result)}x{len(vector)}" if result and isinstance(result[0], list) else f"{len(vector)}"
    return f"{record['text']}\n  [{shape}] {head}{' ...' if len(vector) > 8 else ''}"


class Task:
    """A pipeline subcommand: its pipeline task, its options, and how records and results are handled."""

    def __init__(
        self,
        name: str,
        task: str,
        help: str,
        to_input: Callable[[dict, argparse.Namespace], Any],
        show: Callable[[dict, Any], str],
        call_params: Callable[[argparse.Namespace], dict[str, Any]],
        add_options: Callable[[argparse.ArgumentParser], None] = lambda p: None,
    ) -> None:
        self.name, self.task, self.help = name, task, help
        self.to_input, self.show, self.call_params, self.add_options = to_input, show, call_params, add_options


def _top_k(args: argparse.Namespace, **params: Any) -> dict[str, Any]:
    return {**({"top_k": args.top_k} if args.top_k is not None else {}), **params}


def _labels(args: argparse.Namespace) -> list[str]:
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    if not labels:
        raise UserError("--labels needs at least one label (comma-separated)")
    return labels


def _qa_input(record: dict, args: argparse.Namespace) -> Any:
    if "context" not in record and "text" in record:
        if not args.question:
            raise UserError("qa needs a question: pass --question, or JSON lines with 'question' and 'context'")
        record["question"], record["context"] = args.question, record.pop("text")
    return {"question": field(record, "question"), "context": field(record, "context")}


def _choice_input(record: dict, args: argparse.Namespace) -> Any:
    choices = field(record, "choices", list)
    if not all(isinstance(c, str) for c in choices):
        raise UserError(f"'choices' must be a list of strings in {json.dumps(record)[:80]}")
    return {"prompt": field(record, "prompt"), "choices": choices}


def _classify_input(record: dict, args: argparse.Namespace) -> Any:
    pair = record.get("text_pair")
    if pair is not None and not isinstance(pair, str):
        raise UserError(f"'text_pair' must be a string in {json.dumps(record)[:80]}")
    return field(record, "text") if pair is None else (field(record, "text"), pair)


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
    p.add_argument("--prompt", "-p", help="the prompt; the inputs are then its choices")


def _add_embed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pooling", default="mean", choices=("mean", "cls", "none"), help="none = token vectors")
    p.add_argument("--no-normalize", action="store_true", help="do not L2-normalise the vectors")


TASKS = [
    Task(
        "fill-mask",
        "fill-mask",
        "predict the [MASK] tokens of texts",
        lambda r, a: field(r, "text"),
        show_fill_mask,
        lambda a: _top_k(a, **({"targets": [t.strip() for t in a.targets.split(",")]} if a.targets else {})),
        _add_fill_mask,
    ),
    Task(
        "classify",
        "text-classification",
        "classify texts or (text, text_pair) pairs",
        _classify_input,
        show_labels,
        lambda a: {
            **({"top_k": None} if a.all else _top_k(a)),
            **({"function_to_apply": a.function} if a.function else {}),
        },
        _add_classify,
    ),
    Task(
        "zero-shot",
        "zero-shot-classification",
        "classify texts into any labels with an NLI model",
        lambda r, a: field(r, "text"),
        show_zero_shot,
        lambda a: {"candidate_labels": _labels(a), "hypothesis_template": a.template, "multi_label": a.multi_label},
        _add_zero_shot,
    ),
    Task(
        "ner",
        "token-classification",
        "label the entities of texts",
        lambda r, a: field(r, "text"),
        show_entities,
        lambda a: {
            "aggregation_strategy": a.aggregation,
            "stride": a.stride,
            "ignore_labels": [x.strip() for x in a.ignore_labels.split(",") if x.strip()],
        },
        _add_ner,
    ),
    Task(
        "qa",
        "question-answering",
        "answer questions from contexts",
        _qa_input,
        show_answers,
        lambda a: _top_k(
            a, doc_stride=a.doc_stride, max_answer_len=a.max_answer_len, handle_impossible_answer=a.handle_impossible
        ),
        _add_qa,
    ),
    Task(
        "choice",
        "multiple-choice",
        "score the choices of prompts",
        _choice_input,
        show_choices,
        lambda a: {},
        _add_choice,
    ),
    Task(
        "embed",
        "embeddings",
        "sentence (or token) vectors of texts",
        lambda r, a: field(r, "text"),
        show_vector,
        lambda a: {"pooling": a.pooling, "normalize": not a.no_normalize},
        _add_embed,
    ),
]


def _records_for(task: Task, args: argparse.Namespace) -> Iterator[dict[str, Any]]:
    if task.name == "choice" and args.prompt is not None:
        if args.inputs:
            return iter([{"prompt": args.prompt, "choices": list(args.inputs)}])
        choices = [r.get("text") for r in input_records(args)]
        return iter([{"prompt": args.prompt, "choices": choices}])
    return input_records(args)


def run_task(task: Task, args: argparse.Namespace) -> int:
    from . import pipeline
    from .pipelines import DEFAULT_MODELS

    model = args.model or DEFAULT_MODELS.get(task.task)
    if model is None:
        raise UserError(f"there is no default SqueezeBERT checkpoint for {task.name}: pass --model <folder or hub id>")
    params = {k: v for k, v in task.call_params(args).items() if v is not None or k == "top_k"}
    records = _records_for(task, args)
    as_json = args.json or not sys.stdout.isatty()
    pipe = pipeline(
        task.task,
        model=model,
        device=args.device,
        batch_size=args.batch_size,
        int8=args.int8,
        progress=False if args.no_progress else None,
        max_length=args.max_length,
    )
    pending: deque[dict[str, Any]] = deque()  # records read by the pipeline whose results are not printed yet

    def inputs() -> Iterator[Any]:
        for record in records:
            pending.append(record)
            yield task.to_input(record, args)

    for result in pipe(inputs(), **params):
        record = pending.popleft()
        if as_json:
            print(json.dumps({**record, "result": result}, ensure_ascii=False), flush=True)
        else:
            print(task.show(record, result), flush=True)
    return 0


# ----------------------------------------------------------------------------------------------------------------
# info


def model_stats(config: Any, seq_lens: list[int]) -> tuple[list[tuple[str, str, int, int, float]], int]:
    """The layer table and parameter count of the encoder described by ``config``.

    Each row is ``(name, shape, groups, params, MACs per token at seq_lens[0])``; the MACs of the attention
    products grow with the sequence length, the others do not. Embedding look-ups, LayerNorm, softmax and
    activations are not counted.
    """
    h, i, e = config.hidden_size, config.intermediate_size, config.embedding_size
    rows = [
        ("embeddings.word_embeddings", f"{config.vocab_size}x{e}", 1, config.vocab_size * e, 0),
        (
            "embeddings.position_embeddings",
            f"{config.max_position_embeddings}x{e}",
            1,
            config.max_position_embeddings * e,
            0,
        ),
        ("embeddings.token_type_embeddings", f"{config.type_vocab_size}x{e}", 1, config.type_vocab_size * e, 0),
        ("embeddings.LayerNorm", f"{e}", 1, 2 * e, 0),
    ]
    layer = [
        ("attention.query", h, h, config.q_groups),
        ("attention.key", h, h, config.k_groups),
        ("attention.value", h, h, config.v_groups),
        ("post_attention.conv1d", h, h, config.post_attention_groups),
        ("intermediate.conv1d", h, i, config.intermediate_groups),
        ("output.conv1d", i, h, config.output_groups),
    ]
    per_layer = []
    for name, c_in, c_out, groups in layer:
        per_layer.append((name, f"{c_in}->{c_out}", groups, c_in * c_out // groups + c_out, c_in * c_out // groups))
    per_layer.insert(3, ("attention (QK^T, PV)", f"{config.num_attention_heads} heads", 1, 0, 2 * h * seq_lens[0]))
    per_layer.insert(5, ("post_attention.layernorm", f"{h}", 1, 2 * h, 0))
    per_layer.append(("output.layernorm", f"{h}", 1, 2 * h, 0))
    n = config.num_hidden_layers
    rows += [(f"encoder.layers.[0-{n - 1}].{name}", shape, g, p, m) for name, shape, g, p, m in per_layer]
    rows.append(("pooler.dense", f"{h}->{h}", 1, h * h + h, 0))
    total = sum(p for *_, p, _ in rows[:4]) + n * sum(p for *_, p, _ in per_layer) + h * h + h
    return rows, total


def gflops(config: Any, seq_len: int) -> float:
    """Forward GFLOPs (2 x multiply-adds) of the encoder on one sequence of ``seq_len`` tokens (pooler included)."""
    h, i = config.hidden_size, config.intermediate_size
    groups = (config.q_groups, config.k_groups, config.v_groups, config.post_attention_groups)
    per_token = sum(h * h // g for g in groups) + h * i // config.intermediate_groups + i * h // config.output_groups
    per_layer = seq_len * per_token + 2 * seq_len * seq_len * h
    return 2 * (config.num_hidden_layers * per_layer + h * h) / 1e9


def run_info(args: argparse.Namespace) -> int:
    from .config import SqueezeBertConfig

    if args.config:
        try:
            config = SqueezeBertConfig.from_dict(json.loads(Path(args.config).read_text(encoding="utf-8")))
        except OSError as err:
            raise UserError(f"cannot read --config {args.config}: {err.strerror}") from None
        except json.JSONDecodeError as err:
            raise UserError(f"--config {args.config} is not valid JSON: {err.msg} (line {err.lineno})") from None
        source = args.config
    else:
        source = args.model or "squeezebert/squeezebert-uncased"
        config = SqueezeBertConfig.from_pretrained(source)
    seq_lens = args.seq_lens
    rows, total = model_stats(config, seq_lens)
    report = {
        "source": str(source),
        "parameters": total,
        "layers": config.num_hidden_layers,
        "hidden_size": config.hidden_size,
        "heads": config.num_attention_heads,
        "max_position_embeddings": config.max_position_embeddings,
        "gflops": {str(n): round(gflops(config, n), 6) for n in seq_lens},
        "table": [dict(zip(("name", "shape", "groups", "params", "macs_per_token"), r, strict=True)) for r in rows],
    }
    if args.json or not sys.stdout.isatty():
        print(json.dumps(report))
        return 0
    print(
        f"{source}: {total:,} parameters (encoder and pooler), {config.num_hidden_layers} layers, hidden "
        f"{config.hidden_size}, {config.num_attention_heads} heads"
    )
    print("GFLOPs per sequence: " + ", ".join(f"{n} tokens: {v:.3f}" for n, v in report["gflops"].items()))
    print(f"\n{'layer':<48} {'shape':<14} {'groups':>6} {'params':>12} {f'MACs/token@{seq_lens[0]}':>18}")
    for name, shape, groups, params, macs in rows:
        print(f"{name:<48} {shape:<14} {groups:>6} {params:>12,} {macs:>18,}")
    return 0


# ----------------------------------------------------------------------------------------------------------------
# The engine's commands


def run_convert(args: argparse.Namespace) -> int:
    from .convert import convert_bert_checkpoint

    convert_bert_checkpoint(args.src, args.dst)
    print(f"converted {args.src} -> {args.dst}", file=sys.stderr)
    return 0


def run_bench(argv: list[str]) -> int:
    from .bench import main as bench_main

    return bench_main(argv)


# ----------------------------------------------------------------------------------------------------------------
# The parser


def _seq_lens(value: str) -> list[int]:
    try:
        lens = [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None
    if not lens or min(lens) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sequence lengths, got {value!r}")
    return lens


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="squeezebert", description="SqueezeBERT pipelines and tools.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for task in TASKS:
        p = commands.add_parser(task.name, help=task.help, description=task.help)
        p.add_argument("inputs", nargs="*", help="inputs (default: --file, or lines on stdin)")
        p.add_argument("--file", "-f", help="read inputs from FILE: text lines, or JSON lines with named fields")
        p.add_argument("--model", "-m", help="model folder or hub id")
        p.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default 8)")
        p.add_argument("--int8", action="store_true", help="run the int8 dynamically-quantised model (CPU)")
        p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
        p.add_argument("--max-length", type=int, help="tokens per sequence (default: the model's window)")
        p.add_argument("--top-k", type=int, help="how many results per input")
        p.add_argument("--json", action="store_true", help="JSON lines output (the default when piped)")
        p.add_argument("--no-progress", action="store_true", help="never show a progress bar")
        task.add_options(p)
        p.set_defaults(run=lambda args, task=task: run_task(task, args))

    p = commands.add_parser("info", help="parameters, GFLOPs and layer table of a config or checkpoint")
    p.add_argument("--model", "-m", help="model folder or hub id (reads its config.json)")
    p.add_argument("--config", help="a config.json file")
    p.add_argument("--seq-lens", type=_seq_lens, default=[128, 512], help="sequence lengths (default 128,512)")
    p.add_argument("--json", action="store_true", help="JSON output (the default when piped)")
    p.set_defaults(run=run_info)

    commands.add_parser("bench", help="benchmark the engine (squeezebert bench --help for its options)")

    from .training import add_pretrain_arguments, add_train_arguments, run_pretrain, run_train

    p = commands.add_parser("train", help="fine-tune on your data (works under torchrun)")
    add_train_arguments(p).set_defaults(run=run_train)
    p = commands.add_parser("pretrain", help="pretrain with MLM + sentence-order prediction (works under torchrun)")
    add_pretrain_arguments(p).set_defaults(run=run_pretrain)

    p = commands.add_parser("convert-bert", help="convert a BERT checkpoint folder to SqueezeBERT")
    p.add_argument("src", help="BERT checkpoint folder")
    p.add_argument("dst", help="output folder")
    p.set_defaults(run=run_convert)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``squeezebert`` command; returns its exit status."""
    from .hub import CheckpointNotFoundError

    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv else None
    try:
        if command == "bench":
            return run_bench(argv[1:])
        args = build_parser().parse_args(argv)
        return args.run(args)
    except SystemExit as exit_:  # argparse: usage errors (status 2) and --help (status 0)
        return exit_.code if isinstance(exit_.code, int) else USER_ERROR
    except (UserError, CheckpointNotFoundError, ValueError, OSError) as err:
        if isinstance(err, BrokenPipeError):
            return 0
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"squeezebert {command}: error: {message}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
