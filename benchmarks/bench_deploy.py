"""The deployment benchmark: SqueezeBERT's encoder in every form it can be shipped in, against Hugging Face's.

    python benchmarks/bench_deploy.py                    # the paper's config, random weights (no download)
    python benchmarks/bench_deploy.py --minilm-dir       # all-MiniLM-L6-v2 converted (real weights)
    python benchmarks/bench_deploy.py --minilm-dir DIR   # a BERT folder of your own, converted

For batch 1 and 8 at 128 tokens it times, interleaved (A B C ... A B C ...; each figure the median of the rounds):

- HF PyTorch fp32: ``transformers.SqueezeBertModel``, the baseline of the ratios;
- ours PyTorch fp32 and int8 (``squeezebert.quantize_dynamic``);
- ours ONNX fp32 and int8 in ONNX Runtime (``squeezebert.export.to_onnx``; int8 leaves the feed-forward pair in
  fp32, its default);
- HF exported to ONNX here with ``torch.onnx.export`` (Optimum is not needed), in ONNX Runtime fp32 and int8
  (ONNX Runtime's ``quantize_dynamic``, which turns HF's grouped ``Conv`` into ``ConvInteger`` with one weight scale
  per tensor; where ONNX Runtime's CPU provider has no kernel for it the row says "does not run": 1.32 has one);
- ours ExecuTorch fp32 and int8 (XNNPACK; ``squeezebert.export.to_executorch``), when executorch is installed. Its
  programs take one sequence at a time: batch 8 is 8 calls.

Each row shows ms per batch, sequences/s, the speed ratio to HF PyTorch fp32, and its accuracy against ours PyTorch
fp32 on the same inputs: the largest absolute difference of the last hidden state and the smallest cosine
similarity of a token's vector. Every ONNX Runtime session gets as many threads as torch.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import squeezebert
from squeezebert.bench import time_interleaved

SHAPES = ((1, 128), (8, 128))  # (batch, seq)
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
BASELINE = "HF PyTorch fp32"

Inputs = dict[str, torch.Tensor]


@dataclass
class Variant:
    """One form of the encoder: ``run(inputs)`` is its last hidden state, or ``None`` with why it does not run."""

    name: str
    run: Callable[[Inputs], torch.Tensor] | None
    note: str = ""


@dataclass
class Row:
    """One variant's figures at one shape (``seconds`` is ``None`` when it does not run)."""

    batch: int
    seq: int
    name: str
    seconds: float | None
    max_abs_diff: float | None = None
    min_cosine: float | None = None
    note: str = ""


# ----------------------------------------------------------------------------------------------------------------
# The variants


def ort_session(path: Path) -> object:
    """An ONNX Runtime CPU session of ``path`` with as many threads as torch."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    # no busy-waiting between runs: spinning threads would steal the cores from the next model of the round
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_variant(name: str, path: Path) -> Variant:
    """The ONNX file at ``path`` in ONNX Runtime, or a variant that does not run (the session's error says why)."""
    try:
        session = ort_session(path)
    except Exception as err:  # e.g. NOT_IMPLEMENTED: no ConvInteger kernel
        return Variant(name, None, f"does not run: {first_line(err)}")

    def run(inputs: Inputs) -> torch.Tensor:
        feeds = {name: value.numpy() for name, value in inputs.items()}
        return torch.from_numpy(session.run(["last_hidden_state"], feeds)[0])

    return Variant(name, run)


class HiddenStates(torch.nn.Module):
    """A Hugging Face encoder as a function of the three named inputs returning its last hidden state."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor):
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state


def export_hf_onnx(model: torch.nn.Module, folder: Path) -> tuple[Path, Path]:
    """HF's encoder exported with ``torch.onnx.export`` (dynamic batch and length) and ONNX Runtime's default
    dynamic int8 quantization of it: the paths of the fp32 and int8 files."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder.mkdir(parents=True, exist_ok=True)
    fp32, int8 = folder / "model.onnx", folder / "model_int8.onnx"
    sample = {name: torch.ones(2, 16, dtype=torch.long) for name in INPUT_NAMES}
    batch, seq = torch.export.Dim("batch_size"), torch.export.Dim("sequence_length")
    shapes = {name: {0: batch, 1: seq} for name in INPUT_NAMES}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            HiddenStates(model).eval(),
            (),
            kwargs=sample,
            dynamic_shapes=shapes,
            input_names=list(INPUT_NAMES),
            output_names=["last_hidden_state"],
            opset_version=18,
            dynamo=True,
            verbose=False,
        )
    program.save(str(fp32), external_data=False)
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    return fp32, int8


def torch_variant(name: str, model: torch.nn.Module) -> Variant:
    return Variant(name, lambda inputs: model(**inputs).last_hidden_state)


def executorch_variants(model: squeezebert.SqueezeBertModel, folder: Path, max_length: int) -> list[Variant]:
    """Ours as ExecuTorch XNNPACK programs (fp32, int8), run one sequence at a time; a note when unavailable."""
    names = ("ours ExecuTorch fp32", "ours ExecuTorch int8")
    to_executorch = getattr(squeezebert.export, "to_executorch", None)
    if to_executorch is None or importlib.util.find_spec("executorch") is None:
        return [Variant(name, None, "skipped: executorch (squeezebert[executorch]) is not installed") for name in names]
    from executorch.runtime import Runtime

    variants = []
    for name, int8 in zip(names, (False, True), strict=True):
        path = folder / f"model_{'int8' if int8 else 'fp32'}.pte"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                to_executorch(model, path, task="feature-extraction", int8=int8, max_length=max_length)
        except Exception as err:
            variants.append(Variant(name, None, f"does not export: {first_line(err)}"))
            continue
        buffer = path.read_bytes()  # the loaded program reads from it: it must outlive the method
        program = Runtime.get().load_program(buffer)
        method = program.load_method("forward")

        def run(inputs: Inputs, method=method, keep=(buffer, program)) -> torch.Tensor:
            sequences = range(len(inputs["input_ids"]))
            return torch.cat([method.execute([inputs[key][n : n + 1] for key in INPUT_NAMES])[0] for n in sequences])

        variants.append(Variant(name, run, "batch 1 program: one call per sequence"))
    return variants


def build_variants(model_dir: Path, workdir: Path, max_length: int, executorch: bool = True) -> list[Variant]:
    """Every variant of the encoder saved in ``model_dir`` (a SqueezeBERT checkpoint both libraries load)."""
    import transformers

    from squeezebert.export import INT8_FILE, MODEL_FILE, to_onnx

    transformers.logging.set_verbosity_error()
    hf = transformers.SqueezeBertModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    ours = squeezebert.SqueezeBertModel.from_pretrained(model_dir).eval()
    to_onnx(ours, workdir / "ours", task="feature-extraction", int8=True)
    hf_fp32, hf_int8 = export_hf_onnx(hf, workdir / "hf")
    variants = [
        torch_variant(BASELINE, hf),
        torch_variant("ours PyTorch fp32", ours),
        torch_variant("ours PyTorch int8", squeezebert.quantize_dynamic(ours)),
        ort_variant("ours ONNX fp32 (ORT)", workdir / "ours" / MODEL_FILE),
        ort_variant("ours ONNX int8 (ORT)", workdir / "ours" / INT8_FILE),
        ort_variant("HF ONNX fp32 (ORT)", hf_fp32),
        ort_variant("HF ONNX int8 (ORT)", hf_int8),
    ]
    if executorch:
        variants += executorch_variants(ours, workdir / "executorch", max_length)
    return variants


# ----------------------------------------------------------------------------------------------------------------
# Measuring


def random_inputs(vocab_size: int, batch: int, seq: int, seed: int = 0) -> Inputs:
    """Random token ids, the same for the same arguments."""
    generator = torch.Generator().manual_seed(seed * 1_000_000 + batch * 1000 + seq)
    return {
        "input_ids": torch.randint(1, vocab_size, (batch, seq), generator=generator),
        "attention_mask": torch.ones(batch, seq, dtype=torch.long),
        "token_type_ids": torch.zeros(batch, seq, dtype=torch.long),
    }


def measure(variants: list[Variant], vocab_size: int, shapes: tuple[tuple[int, int], ...], rounds: int) -> list[Row]:
    """Time the runnable variants interleaved at each shape and compare their outputs to ours PyTorch fp32."""
    rows = []
    runnable = [v for v in variants if v.run is not None]
    with torch.inference_mode():
        for batch, seq in shapes:
            inputs = random_inputs(vocab_size, batch, seq)
            reference = next(v for v in runnable if v.name == "ours PyTorch fp32").run(inputs).double()
            times = time_interleaved(
                {v.name: (lambda v=v, inputs=inputs: v.run(inputs)) for v in runnable}, rounds, warmup=2
            )
            for variant in variants:
                if variant.run is None:
                    rows.append(Row(batch, seq, variant.name, None, note=variant.note))
                    continue
                got = variant.run(inputs).double()
                rows.append(
                    Row(
                        batch,
                        seq,
                        variant.name,
                        statistics.median(times[variant.name]),
                        max_abs_diff=(got - reference).abs().max().item(),
                        min_cosine=F.cosine_similarity(got, reference, dim=-1).min().item(),
                        note=variant.note,
                    )
                )
    return rows


def format_table(rows: list[Row]) -> str:
    """A Markdown table: ms, sequences/s, ratio to HF PyTorch fp32, accuracy against ours PyTorch fp32."""
    lines = [
        "| batch x seq | model | ms / batch | seq / s | vs HF PyTorch fp32 | max abs diff | min cosine | note |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        shape = f"{row.batch} x {row.seq}"
        if row.seconds is None:
            lines.append(f"| {shape} | {row.name} | | | | | | {row.note} |")
            continue
        base = next(r.seconds for r in rows if (r.batch, r.seq, r.name) == (row.batch, row.seq, BASELINE))
        lines.append(
            f"| {shape} | {row.name} | {row.seconds * 1e3:.1f} | {row.batch / row.seconds:.1f} | "
            f"{base / row.seconds:.2f}x | {row.max_abs_diff:.1e} | {row.min_cosine:.5f} | {row.note} |"
        )
    return "\n".join(lines)


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"[:160]


def machine() -> str:
    """The CPU (from lscpu), cores and threads, and the versions of the runtimes."""
    cpu = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    versions = [f"torch {torch.__version__}"]
    for package in ("onnxruntime", "executorch", "transformers"):
        try:
            from importlib.metadata import version

            versions.append(f"{package} {version(package)}")
        except Exception:
            continue
    return (
        f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} threads; {', '.join(versions)}; "
        f"{datetime.date.today().isoformat()}"
    )


# ----------------------------------------------------------------------------------------------------------------
# The command


def model_folder(minilm_dir: str | None, workdir: Path) -> tuple[Path, str]:
    """The checkpoint to benchmark and what it is: the paper's config with random weights, or a BERT folder
    (``"auto"``: all-MiniLM-L6-v2 from benchmarks/minilm.py) converted to SqueezeBERT."""
    folder = workdir / "model"
    if minilm_dir is None:
        import transformers

        torch.manual_seed(0)
        transformers.SqueezeBertModel(transformers.SqueezeBertConfig()).save_pretrained(folder)
        return folder, "the paper's SqueezeBERT config (squeezebert-uncased shapes), random weights"
    if minilm_dir == "auto":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from minilm import find_minilm_model_dir

        source = find_minilm_model_dir()
    else:
        source = Path(minilm_dir)
    squeezebert.convert_bert_checkpoint(source, folder)
    return folder, f"{source} converted to SqueezeBERT (real weights, BERT's dense layers)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds per shape (default 10)")
    parser.add_argument(
        "--minilm-dir",
        nargs="?",
        const="auto",
        help="benchmark real weights: a BERT folder, or none to use all-MiniLM-L6-v2 (benchmarks/minilm.py)",
    )
    parser.add_argument("--no-executorch", action="store_true", help="leave the ExecuTorch programs out")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be a positive integer, got {args.rounds}")
    print(f"Machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-deploy-") as tmp:
        folder, what = model_folder(args.minilm_dir, Path(tmp))
        print(f"Model: {what}\n", flush=True)
        max_length = max(seq for _, seq in SHAPES)
        variants = build_variants(folder, Path(tmp), max_length, executorch=not args.no_executorch)
        vocab_size = squeezebert.SqueezeBertConfig.from_pretrained(folder).vocab_size
        print(format_table(measure(variants, vocab_size, SHAPES, args.rounds)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
