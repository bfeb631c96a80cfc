"""The engine benchmark: squeezebert's fast path (fp32 and int8) against Hugging Face's SqueezeBERT and BERT-base.

    python benchmarks/bench_engine.py            # full run, 6-9 minutes on 2 cores
    python benchmarks/bench_engine.py --quick    # a smaller, noisier run (about 3 minutes)

For batch 1, 8 and 32 at 128 tokens and batch 1 at 512 tokens it prints, per model: ms per batch, sequences/s,
achieved GFLOP/s (analytic encoder FLOPs, the same count for int8), the share of the fp32 matmul peak (a 2048^3
matmul timed in the same rounds as the models, so that it sees the same load), the memory the forward pass adds
(peak RSS over the RSS before it), and the speed ratios against HF SqueezeBERT and HF BERT-base (random weights,
default configs). Then a training step (forward + backward, batch 8 x 128) against HF SqueezeBERT. The models run
interleaved (A B C D A B C D ...) and each figure is the median of the rounds. Everything runs twice, in fresh
processes: with glibc's default malloc settings and with tuned ones (MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_), which stop glibc from returning and page-faulting large buffers on
every call.

Hugging Face ``transformers`` is needed here (it is the reference), never by the package.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import torch

import squeezebert
from squeezebert.bench import encoder_flops, time_interleaved

TUNED_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 31),
    "MALLOC_TOP_PAD_": str(256 << 20),
}
ROWS = [(1, 128), (8, 128), (32, 128), (1, 512)]  # (batch, seq)
MODELS = ("squeezebert fp32", "squeezebert int8", "HF SqueezeBERT", "HF BERT-base")
PEAK = "fp32 matmul 2048^3"


# ----------------------------------------------------------------------------------------------------------------
# Memory: the peak RSS a call adds


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def forward_memory_mib(fn: Callable[[], object]) -> float:
    """MiB of resident memory ``fn`` adds at its peak, over what the process held before (freed memory trimmed)."""
    gc.collect()
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _rss_bytes()
    if _reset_peak_rss():
        fn()
        return (_peak_rss_bytes() - before) / 2**20
    peak = [before]  # no clear_refs: sample the RSS while fn runs
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    thread = threading.Thread(target=sample)
    thread.start()
    fn()
    done.set()
    thread.join()
    return (peak[0] - before) / 2**20


# ----------------------------------------------------------------------------------------------------------------
# One process: measure everything with the malloc settings it was started with


def build_models() -> tuple[dict[str, torch.nn.Module], squeezebert.SqueezeBertConfig, object]:
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    reference = transformers.SqueezeBertModel(transformers.SqueezeBertConfig()).eval()
    ours = squeezebert.SqueezeBertModel(squeezebert.SqueezeBertConfig()).eval()
    ours.load_state_dict(reference.state_dict(), strict=False)
    bert = transformers.BertModel(transformers.BertConfig()).eval()
    models = {
        "squeezebert fp32": ours,
        "squeezebert int8": squeezebert.quantize_dynamic(ours),
        "HF SqueezeBERT": reference,
        "HF BERT-base": bert,
    }
    return models, ours.config, transformers.BertConfig()


def measure(rounds: dict[str, int]) -> dict:
    models, config, bert_config = build_models()
    bert_flops_config = squeezebert.SqueezeBertConfig(
        q_groups=1, k_groups=1, v_groups=1, post_attention_groups=1, intermediate_groups=1, output_groups=1
    )
    assert bert_config.hidden_size == bert_flops_config.hidden_size
    result: dict = {"rows": []}
    size = 2048  # the matmul peak runs interleaved with the models: each row's "% of peak" is under its own load
    a, b = torch.randn(size, size), torch.randn(size, size)
    with torch.inference_mode():
        ids = torch.randint(0, 30000, (2, 128))
        check = models["squeezebert fp32"](input_ids=ids).last_hidden_state
        result["max_diff"] = (check - models["HF SqueezeBERT"](input_ids=ids).last_hidden_state).abs().max().item()
        for batch, seq in ROWS:
            key = f"{batch}x{seq}"
            if rounds.get(key, 0) <= 0:
                continue
            ids = torch.randint(0, 30000, (batch, seq), generator=torch.Generator().manual_seed(batch))
            calls = {name: (lambda m=m, ids=ids: m(input_ids=ids)) for name, m in models.items()}
            times = time_interleaved({**calls, PEAK: lambda: a @ b}, rounds[key])
            row = {"batch": batch, "seq": seq, "peak": 2 * size**3 / statistics.median(times.pop(PEAK)) / 1e9}
            row["models"] = {}
            for name, samples in times.items():
                flops_config = bert_flops_config if name == "HF BERT-base" else config
                row["models"][name] = {
                    "s": statistics.median(samples),
                    "flops": encoder_flops(flops_config, batch, seq),
                    "mib": forward_memory_mib(calls[name]),
                }
            result["rows"].append(row)
    if rounds.get("train", 0) > 0:
        result["train"] = measure_training(models, rounds["train"])
    return result


def measure_training(models: dict[str, torch.nn.Module], rounds: int) -> dict[str, float]:
    """Seconds per forward + backward of the encoder in train mode (dropout on), batch 8 x 128."""
    ids = torch.randint(0, 30000, (8, 128), generator=torch.Generator().manual_seed(8))
    steps = {}
    for name in ("squeezebert fp32", "HF SqueezeBERT"):
        model = models[name].train()

        def step(model: torch.nn.Module = model) -> None:
            model.zero_grad(set_to_none=True)
            model(input_ids=ids).last_hidden_state.mean().backward()

        steps[name] = step
    times = time_interleaved(steps, rounds)
    for name in steps:
        models[name].eval()
    return {name: statistics.median(samples) for name, samples in times.items()}


# ----------------------------------------------------------------------------------------------------------------
# The parent: run both malloc settings in fresh processes and print the tables


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        flags = ", ".join(flag for flag in ("avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if flag in text)
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores ({flags}); torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{datetime.date.today().isoformat()}"
    )


def print_tables(label: str, result: dict) -> None:
    print(f"\n### malloc: {label}\n")
    print(
        "| batch x seq | model | ms / batch | seq / s | GFLOP/s | % of peak | MiB added | vs HF SqueezeBERT "
        "| vs HF BERT-base |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        models, peak = row["models"], row["peak"]
        print(f"| {row['batch']} x {row['seq']} | {PEAK} | | | {peak:.0f} | 100% | | | |")
        ref, bert = models["HF SqueezeBERT"]["s"], models["HF BERT-base"]["s"]
        for name in MODELS:
            m = models[name]
            gflops = m["flops"] / m["s"] / 1e9
            print(
                f"| {row['batch']} x {row['seq']} | {name} | {m['s'] * 1e3:.1f} | {row['batch'] / m['s']:.1f} | "
                f"{gflops:.0f} | {100 * gflops / peak:.0f}% | {m['mib']:.0f} | {ref / m['s']:.2f}x | "
                f"{bert / m['s']:.2f}x |"
            )
    if "train" in result:
        ours, ref = result["train"]["squeezebert fp32"], result["train"]["HF SqueezeBERT"]
        print(
            f"\nTraining step (forward + backward, batch 8 x 128, fp32): squeezebert {ours * 1e3:.0f} ms, "
            f"HF SqueezeBERT {ref * 1e3:.0f} ms: {ref / ours:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no batch 32 (about a minute)")
    parser.add_argument("--malloc", choices=("both", "default", "tuned"), default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        rounds = {"1x128": 5, "8x128": 3, "32x128": 0, "1x512": 3, "train": 3}
    else:
        rounds = {"1x128": 15, "8x128": 5, "32x128": 3, "1x512": 5, "train": 6}

    if args.child:
        print("RESULT " + json.dumps(measure(rounds)))
        return 0

    print(f"Machine: {machine()}")
    settings = ["default", "tuned"] if args.malloc == "both" else [args.malloc]
    for label in settings:
        env = {k: v for k, v in os.environ.items() if k not in TUNED_MALLOC}
        if label == "tuned":
            env.update(TUNED_MALLOC)
        command = [sys.executable, os.path.abspath(__file__), "--child"] + (["--quick"] if args.quick else [])
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode or not lines:
            print(done.stdout + done.stderr, file=sys.stderr)
            return 1
        result = json.loads(lines[-1].removeprefix("RESULT "))
        tuned = " ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items())
        print_tables("glibc defaults" if label == "default" else f"tuned ({tuned})", result)
        print(f"(fast path vs HF SqueezeBERT, max abs diff of the last hidden state: {result['max_diff']:.1e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
