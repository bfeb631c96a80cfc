"""The engine benchmark: squeezebert's fast path (fp32 and int8) against Hugging Face and the runtimes a user would
pick instead (ONNX Runtime, OpenVINO), all timed in the same rounds as the machine's fp32 and int8 matmul peaks.

    python benchmarks/bench_engine.py                        # the whole table, about 5 minutes on 2 quiet cores
    python benchmarks/bench_engine.py --quick                # fewer rounds, no training step (about 3 minutes)
    python benchmarks/bench_engine.py --background-load 2    # also under 2 busy processes (see below)

Models (the paper's config, random weights, the same weights everywhere):

- ``squeezebert fp32`` and ``squeezebert int8`` (``quantize_dynamic``): this package in PyTorch;
- ``squeezebert int8 span=None``: ``quantize_dynamic(span=None, outliers=8)``, the fastest setting (on real MiniLM
  less accurate than the default, and far more accurate than the peers' int8: ``bench_int8_accuracy.py``);
- ``HF SqueezeBERT`` (the reference of the ratios) and ``HF BERT-base``: ``transformers`` in PyTorch;
- ``ORT fp32``: the reference exported with ``torch.onnx.export`` (grouped ``Conv``), in ONNX Runtime;
- ``ORT int8``: ``squeezebert.export.to_onnx`` of the same weights (one ``MatMul`` per group) with every projection
  quantized by ONNX Runtime's dynamic quantization (per-channel int8 weights; ORT's int8 does not run the ``Conv``
  form well);
- ``OpenVINO fp32``: the ``ORT fp32`` file read by OpenVINO (precision hint f32);
- ``OpenVINO int8``: that model through NNCF's post-training quantization (transformer preset, calibrated on 16
  random sequences).

The peers are optional: without ``onnxruntime`` / ``openvino`` / ``nncf`` their rows say why they are missing
(``pip install -e '.[bench]'`` installs them). Every runtime gets as many threads as torch.

Per row: ms per batch, sequences/s, achieved GFLOP/s (the analytic encoder FLOPs, the same count for int8), the
share of the fp32 matmul peak and of the int8 matmul peak (2048^3 ``a @ b`` and ``torch._int_mm`` timed in the same
rounds, so that they see the same load), the memory the forward pass adds (peak RSS over the RSS before it), the
speed ratio to HF SqueezeBERT, and the smallest per-token cosine similarity of the last hidden state to HF
SqueezeBERT's. The models run interleaved (A B C ... A B C ...), each figure the median of the rounds. At the end
the issue's goals, each marked met or not.

``--background-load N`` starts N busy processes (a single-threaded matmul loop each, with a hard deadline, killed
at the end) and runs every round twice, quiet and loaded: the second table shows each model's slowdown under load.
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
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch
import torch.nn.functional as F

import squeezebert
from squeezebert.bench import bert_base_config, encoder_flops, time_interleaved

TUNED_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 31),
    "MALLOC_TOP_PAD_": str(256 << 20),
}
OURS_FP32, OURS_INT8, REFERENCE, BERT = "squeezebert fp32", "squeezebert int8", "HF SqueezeBERT", "HF BERT-base"
# the fastest int8 setting: one scale per token and group, 8 outlier channels (bench_int8_accuracy's "span=None" row:
# less accurate than the default on real MiniLM, far more than OpenVINO's and ONNX Runtime's int8)
OURS_INT8_ONE_SPAN, ONE_SPAN = "squeezebert int8 span=None", {"span": None, "outliers": 8}
ORT_FP32, ORT_INT8, OV_FP32, OV_INT8 = "ORT fp32", "ORT int8", "OpenVINO fp32", "OpenVINO int8"
MODELS = (OURS_FP32, OURS_INT8, OURS_INT8_ONE_SPAN, REFERENCE, BERT, ORT_FP32, ORT_INT8, OV_FP32, OV_INT8)
PEAK_FP32, PEAK_INT8 = "fp32 matmul 2048^3", "int8 matmul 2048^3"
PEAK_SIZE = 2048

Inputs = dict[str, torch.Tensor]
Runner = Callable[[Inputs], torch.Tensor]  # named inputs -> last hidden state


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
# Background load: N single-threaded matmul loops, busy while a flag file exists, each with a hard deadline

_BUSY_LOOP = """
import os, sys, time
import torch
torch.set_num_threads(1)
flag, deadline, parent = sys.argv[1], time.monotonic() + float(sys.argv[2]), os.getppid()
a = torch.randn(256, 256)
open(f"{flag}.ready-{os.getpid()}", "w").close()  # torch imported: the parent's quiet rounds may start
while time.monotonic() < deadline and os.getppid() == parent:  # ends with the benchmark, killed or not
    if os.path.exists(flag):
        for _ in range(10):
            a @ a
    else:
        time.sleep(0.002)
"""


class BackgroundLoad:
    """``count`` busy processes, started idle; :meth:`busy` switches them on for a block. They end by themselves
    after ``deadline_s`` and are killed when the ``with`` block ends. The constructor returns once each has
    imported torch (seconds of CPU each, which would otherwise fall into the first quiet rounds)."""

    def __init__(self, count: int, deadline_s: float, folder: Path, ready_timeout_s: float = 120.0) -> None:
        self.flag = folder / "busy"
        self.processes = [
            subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(self.flag), str(deadline_s)]) for _ in range(count)
        ]
        deadline = time.monotonic() + ready_timeout_s
        ready = [Path(f"{self.flag}.ready-{process.pid}") for process in self.processes]  # what each writes
        while not all(path.exists() for path in ready):
            if any(process.poll() is not None for process in self.processes) or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"a background-load process ended or was not ready within {ready_timeout_s:.0f} s")
            time.sleep(0.05)

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        self.flag.touch()
        try:
            yield
        finally:
            self.flag.unlink(missing_ok=True)

    def __enter__(self) -> BackgroundLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flag.unlink(missing_ok=True)
        for process in self.processes:
            process.kill()
            process.wait()


# ----------------------------------------------------------------------------------------------------------------
# The models and the peers


def torch_runner(model: torch.nn.Module, with_mask: bool = False) -> Runner:
    if with_mask:
        return lambda inputs: model(**inputs).last_hidden_state
    return lambda inputs: model(input_ids=inputs["input_ids"]).last_hidden_state


def numpy_feeds(inputs: Inputs) -> dict[str, object]:
    return {name: value.numpy() for name, value in inputs.items()}


def ort_runner(path: Path) -> Runner:
    from bench_deploy import ort_session

    session = ort_session(path)
    return lambda inputs: torch.from_numpy(session.run(["last_hidden_state"], numpy_feeds(inputs))[0])


def openvino_runner(core: object, model: object, f32: bool = False) -> Runner:
    """``model`` compiled by OpenVINO for the CPU with as many threads as torch: the precision hint f32 with
    ``f32``, else the plugin's own choice (a quantized model's int8 where NNCF put it)."""
    settings = {"INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY"}
    if f32:
        settings["INFERENCE_PRECISION_HINT"] = "f32"
    request = core.compile_model(model, "CPU", settings).create_infer_request()
    return lambda inputs: torch.from_numpy(request.infer(numpy_feeds(inputs))[0].copy())


def nncf_quantize(model: object, samples: list[dict[str, object]]) -> object:
    """NNCF's post-training int8 quantization of an OpenVINO model (transformer preset), calibrated on every one of
    ``samples`` (feeds: input name -> numpy array). Its progress bars go to stderr, not into the tables."""
    import nncf

    with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("ignore")
        return nncf.quantize(
            model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples)
        )


def openvino_runners(fp32_path: Path, samples: list[dict[str, object]]) -> dict[str, Runner | str]:
    """OpenVINO fp32 of the ONNX file and its NNCF post-training int8 quantization calibrated on ``samples`` (see
    :func:`nncf_quantize`), or a reason string for each that is missing."""
    try:
        import openvino
    except ImportError:
        return {OV_FP32: "openvino is not installed", OV_INT8: "openvino is not installed"}
    core = openvino.Core()
    model = core.read_model(str(fp32_path))
    runners: dict[str, Runner | str] = {OV_FP32: openvino_runner(core, model, f32=True)}
    try:
        import nncf  # noqa: F401
    except ImportError:
        runners[OV_INT8] = "nncf is not installed"
        return runners
    runners[OV_INT8] = openvino_runner(core, nncf_quantize(model, samples))
    return runners


def peer_runners(reference: torch.nn.Module, ours: torch.nn.Module, folder: Path) -> dict[str, Runner | str]:
    """ONNX Runtime and OpenVINO runners of the reference's weights (or why each is missing)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        reason = "onnxruntime is not installed"
        return {ORT_FP32: reason, ORT_INT8: reason, OV_FP32: reason, OV_INT8: reason}
    from bench_deploy import export_hf_onnx, random_inputs

    from squeezebert.export import INT8_FILE, to_onnx

    hf_fp32, _ = export_hf_onnx(reference, folder / "hf")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        to_onnx(ours, folder / "matmul", task="feature-extraction", int8=True, keep_float=())
    runners: dict[str, Runner | str] = {
        ORT_FP32: ort_runner(hf_fp32),
        ORT_INT8: ort_runner(folder / "matmul" / INT8_FILE),
    }
    try:
        vocab = ours.config.vocab_size  # the random 1 x 64 and 1 x 128 inputs, 8 times each
        samples = [numpy_feeds(random_inputs(vocab, 1, 128 if n % 2 else 64, seed=n)) for n in range(16)]
        runners.update(openvino_runners(hf_fp32, samples))
    except Exception as err:  # an OpenVINO or NNCF that cannot read or quantize this graph: say why, go on
        runners.update({OV_FP32: f"failed: {err}"[:200], OV_INT8: f"failed: {err}"[:200]})
    return runners


@dataclass
class Setup:
    runners: dict[str, Runner]  # the models that run
    missing: dict[str, str]  # the others: why they are missing
    config: squeezebert.SqueezeBertConfig
    trainable: dict[str, torch.nn.Module]  # ours and the reference in floating point, for the training step


def build(folder: Path, sizes: dict[str, int] | None = None) -> Setup:
    """Every model's runner (the peers' files written under ``folder``), or why it is missing. ``sizes`` overrides
    the default configs' sizes (``hidden_size`` and co., for a small smoke run)."""
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    reference = transformers.SqueezeBertModel(transformers.SqueezeBertConfig(**(sizes or {}))).eval()
    ours = squeezebert.SqueezeBertModel(squeezebert.SqueezeBertConfig(**reference.config.to_dict())).eval()
    ours.load_state_dict(reference.state_dict(), strict=False)
    bert = transformers.BertModel(transformers.BertConfig(**(sizes or {}))).eval()
    runners: dict[str, Runner | str] = {
        OURS_FP32: torch_runner(ours),
        OURS_INT8: torch_runner(squeezebert.quantize_dynamic(ours)),
        OURS_INT8_ONE_SPAN: torch_runner(squeezebert.quantize_dynamic(ours, **ONE_SPAN)),
        REFERENCE: torch_runner(reference),
        BERT: torch_runner(bert),
    }
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_deploy's exporters and sessions
    with torch.no_grad():
        runners.update(peer_runners(reference, ours, folder))
    return Setup(
        runners={name: run for name, run in runners.items() if not isinstance(run, str)},
        missing={name: reason for name, reason in runners.items() if isinstance(reason, str)},
        config=ours.config,
        trainable={OURS_FP32: ours, REFERENCE: reference},
    )


# ----------------------------------------------------------------------------------------------------------------
# One process: measure everything with the malloc settings it was started with


def measure(rounds: dict[tuple[int, int] | str, int], background: int, sizes: dict[str, int] | None = None) -> dict:
    """Every row of ``rounds`` (``(batch, seq)``: rounds; ``"train"``: training steps) measured, ``background``
    busy processes, the configs' ``sizes`` overridden (see :func:`build`): the figures the tables print."""
    from bench_deploy import random_inputs

    with tempfile.TemporaryDirectory() as tmp:
        setup = build(Path(tmp), sizes)
        runners, config = setup.runners, setup.config
        flops_configs = {name: config for name in runners}
        flops_configs[BERT] = bert_base_config(**(sizes or {}))
        a, b = torch.randn(PEAK_SIZE, PEAK_SIZE), torch.randn(PEAK_SIZE, PEAK_SIZE)
        a8 = torch.randint(-128, 128, (PEAK_SIZE, PEAK_SIZE), dtype=torch.int8)
        b8 = torch.randint(-128, 128, (PEAK_SIZE, PEAK_SIZE), dtype=torch.int8)
        peaks = {PEAK_FP32: lambda: a @ b, PEAK_INT8: lambda: torch._int_mm(a8, b8)}
        result: dict = {"rows": [], "missing": setup.missing, "load": [os.getloadavg()[0]]}
        load = BackgroundLoad(background, deadline_s=1800, folder=Path(tmp)) if background else None
        with load or contextlib.nullcontext(), torch.inference_mode():
            for batch, seq in (key for key in rounds if key != "train"):
                inputs = random_inputs(config.vocab_size, batch, seq)
                calls = {name: (lambda run=run, inputs=inputs: run(inputs)) for name, run in runners.items()}
                calls.update(peaks)
                expected = runners[REFERENCE](inputs).double()
                for fn in calls.values():  # warm-up
                    fn()
                phases: dict[str, dict[str, list[float]]] = {"quiet": {}, "loaded": {}}
                for _ in range(rounds[batch, seq]):
                    for phase, times in phases.items():
                        if phase == "loaded" and load is None:
                            continue
                        with load.busy() if phase == "loaded" else contextlib.nullcontext():
                            for name, samples in time_interleaved(calls, 1, warmup=0).items():
                                times.setdefault(name, []).extend(samples)
                row: dict = {"batch": batch, "seq": seq, "models": {}}
                for phase, times in phases.items():
                    if not times:
                        continue
                    row[phase] = {name: statistics.median(times[name]) for name in times}
                for name, run in runners.items():
                    got = run(inputs).double()
                    row["models"][name] = {
                        "flops": encoder_flops(flops_configs[name], batch, seq),
                        "mib": forward_memory_mib(calls[name]),
                        "cosine": F.cosine_similarity(got, expected, dim=-1).min().item() if name != BERT else None,
                        "max_diff": (got - expected).abs().max().item() if name != BERT else None,
                    }
                result["rows"].append(row)
        if rounds.get("train", 0) > 0:
            result["train"] = measure_training(setup.trainable, rounds["train"])
        result["load"].append(os.getloadavg()[0])
    return result


def measure_training(models: dict[str, torch.nn.Module], rounds: int) -> dict[str, float]:
    """Seconds per forward + backward of the encoder in train mode (dropout on), batch 8 x 128."""
    ids = torch.randint(0, 30000, (8, 128), generator=torch.Generator().manual_seed(8))
    steps = {}
    for name, model in models.items():
        model.train()

        def step(model: torch.nn.Module = model) -> None:
            model.zero_grad(set_to_none=True)
            model(input_ids=ids).last_hidden_state.mean().backward()

        steps[name] = step
    times = time_interleaved(steps, rounds)
    for model in models.values():
        model.eval()
    return {name: statistics.median(samples) for name, samples in times.items()}


# ----------------------------------------------------------------------------------------------------------------
# The parent: run the measuring process, print the tables and the goals


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        cpu = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        words = set(next(line for line in text.splitlines() if line.startswith("flags")).split())
        flags = ", ".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8") if f in words)
    except (OSError, StopIteration):
        pass
    versions = [f"torch {torch.__version__}"]
    for package in ("onnxruntime", "openvino", "nncf", "transformers"):
        with contextlib.suppress(PackageNotFoundError):
            versions.append(f"{package} {version(package)}")
    return (
        f"{cpu}, {os.cpu_count()} cores ({flags}); {torch.get_num_threads()} threads; {', '.join(versions)}; "
        f"{datetime.date.today().isoformat()}"
    )


def _ratio(times: dict[str, float], faster: str, slower: str) -> float | None:
    return times[slower] / times[faster] if faster in times and slower in times else None


def print_table(result: dict, phase: str) -> None:
    print(
        "| batch x seq | model | ms / batch | seq / s | GFLOP/s | % fp32 peak | % int8 peak | MiB added "
        "| vs HF SqueezeBERT | min cosine to HF SqueezeBERT |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in result["rows"]:
        times, shape = row[phase], f"{row['batch']} x {row['seq']}"
        peaks = {name: 2 * PEAK_SIZE**3 / times[name] / 1e9 for name in (PEAK_FP32, PEAK_INT8)}
        for name, peak in peaks.items():
            print(
                f"| {shape} | {name} | {times[name] * 1e3:.1f} | | {peak:.0f} | "
                f"{100 * peak / peaks[PEAK_FP32]:.0f}% | {100 * peak / peaks[PEAK_INT8]:.0f}% | | | |"
            )
        for name in MODELS:
            if name not in row["models"]:
                print(f"| {shape} | {name} | | | | | | | | {result['missing'][name]} |")
                continue
            m, seconds = row["models"][name], times[name]
            gflops = m["flops"] / seconds / 1e9
            cosine = "" if m["cosine"] is None else f"{m['cosine']:.5f}"
            print(
                f"| {shape} | {name} | {seconds * 1e3:.1f} | {row['batch'] / seconds:.1f} | {gflops:.0f} | "
                f"{100 * gflops / peaks[PEAK_FP32]:.0f}% | {100 * gflops / peaks[PEAK_INT8]:.1f}% | {m['mib']:.0f} | "
                f"{times[REFERENCE] / seconds:.2f}x | {cosine} |"
            )


def print_load_table(result: dict) -> None:
    """Each model's slowdown under the background load (loaded / quiet time, the same rounds)."""
    print("| batch x seq | model | ms quiet | ms loaded | slowdown | slowdown / HF SqueezeBERT's |")
    print("|---|---|---:|---:|---:|---:|")
    for row in result["rows"]:
        quiet, loaded = row["quiet"], row["loaded"]
        ref = loaded[REFERENCE] / quiet[REFERENCE]
        for name in (*MODELS, PEAK_FP32, PEAK_INT8):
            if name in quiet:
                slowdown = loaded[name] / quiet[name]
                print(
                    f"| {row['batch']} x {row['seq']} | {name} | {quiet[name] * 1e3:.1f} | {loaded[name] * 1e3:.1f} "
                    f"| {slowdown:.2f}x | {slowdown / ref:.2f} |"
                )


def goals(result: dict) -> list[tuple[str, str, bool | None]]:
    """The issue's speed goals: (goal, the figures, met / not met / None when not measured)."""
    rows = {(row["batch"], row["seq"]): row for row in result["rows"]}
    out: list[tuple[str, str, bool | None]] = []

    def add(goal: str, values: list[float | None], target: float, fmt: str, at_most: bool = False) -> None:
        if any(v is None for v in values) or not values:
            out.append((goal, "not measured", None))
            return
        met = all(v <= target if at_most else v >= target for v in values)
        out.append((goal, ", ".join(fmt.format(v) for v in values), met))

    def int8_share(row: dict) -> float:
        seconds, peak = row["quiet"][OURS_INT8], 2 * PEAK_SIZE**3 / row["quiet"][PEAK_INT8]
        return row["models"][OURS_INT8]["flops"] / seconds / peak

    batch_rows = [rows[key] for key in ((1, 128), (8, 128)) if key in rows]
    add(
        "int8 >= 40% of the int8 matmul peak at 1 x 128 and 8 x 128", [int8_share(r) for r in batch_rows], 0.4, "{:.0%}"
    )
    add(
        "int8 >= 3.5x HF SqueezeBERT fp32 at 1 x 128",
        [_ratio(rows.get((1, 128), {}).get("quiet", {}), OURS_INT8, REFERENCE)],
        3.5,
        "{:.2f}x",
    )
    add(
        "fp32 >= 1.5x HF SqueezeBERT at 1 x 512",
        [_ratio(rows.get((1, 512), {}).get("quiet", {}), OURS_FP32, REFERENCE)],
        1.5,
        "{:.2f}x",
    )
    for ours, peer, target in (
        (OURS_FP32, OV_FP32, 1.0),
        (OURS_FP32, ORT_FP32, 1.0),
        (OURS_INT8, OV_INT8, 1.2),
        (OURS_INT8_ONE_SPAN, OV_INT8, 1.2),
        (OURS_INT8, ORT_INT8, 1.0),
    ):
        add(
            f"{ours} >= {target:.1f}x {peer} at 1 x 128 and 8 x 128",
            [_ratio(r["quiet"], ours, peer) for r in batch_rows],
            target,
            "{:.2f}x",
        )
    if all("loaded" in row for row in result["rows"]):
        for ours in (OURS_FP32, OURS_INT8):
            slowdowns = [
                (r["loaded"][ours] / r["quiet"][ours]) / (r["loaded"][REFERENCE] / r["quiet"][REFERENCE])
                for r in result["rows"]
            ]
            goal = f"under load, {ours}'s slowdown over HF SqueezeBERT's <= 1.0 (each row)"
            add(goal, slowdowns, 1.0, "{:.2f}", at_most=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, no training step")
    parser.add_argument(
        "--background-load",
        type=int,
        default=0,
        metavar="N",
        help="also measure under N busy single-threaded processes (each round quiet, then loaded)",
    )
    parser.add_argument(
        "--malloc",
        choices=("default", "tuned"),
        default="default",
        help="glibc's malloc settings, or tuned ones (MALLOC_MMAP_THRESHOLD_ and co.)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not 0 <= args.background_load <= 64:
        parser.error(f"--background-load must be between 0 and 64, got {args.background_load}")
    if args.quick:
        rounds = {(1, 128): 5, (8, 128): 3, (1, 512): 3, "train": 0}
    else:
        rounds = {(1, 128): 15, (8, 128): 5, (1, 512): 5, "train": 6}

    if args.child:
        print("RESULT " + json.dumps(measure(rounds, args.background_load)))
        return 0

    print(f"Machine: {machine()}")
    env = {k: v for k, v in os.environ.items() if k not in TUNED_MALLOC}
    if args.malloc == "tuned":
        env.update(TUNED_MALLOC)
    command = [sys.executable, os.path.abspath(__file__), "--child", "--background-load", str(args.background_load)]
    done = subprocess.run(
        command + (["--quick"] if args.quick else []), env=env, capture_output=True, text=True, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        print(done.stdout + done.stderr, file=sys.stderr)
        return 1
    result = json.loads(lines[-1].removeprefix("RESULT "))
    before, after = result["load"]
    print(f"malloc: {args.malloc}; load average (1 min) before and after the run: {before:.2f}, {after:.2f}\n")
    print_table(result, "quiet")
    if "train" in result:
        ours, ref = result["train"][OURS_FP32], result["train"][REFERENCE]
        print(
            f"\nTraining step (forward + backward, batch 8 x 128, fp32): squeezebert {ours * 1e3:.0f} ms, "
            f"HF SqueezeBERT {ref * 1e3:.0f} ms: {ref / ours:.2f}x"
        )
    if args.background_load:
        print(f"\nUnder {args.background_load} busy processes (the same rounds):\n")
        print_table(result, "loaded")
        print()
        print_load_table(result)
    diff = max(row["models"][OURS_FP32]["max_diff"] for row in result["rows"])
    print(f"\n(squeezebert fp32 vs HF SqueezeBERT, max abs diff of the last hidden state: {diff:.1e})\n")
    print("Goals:")
    for goal, figures, met in goals(result):
        print(f"- {goal}: {figures}: {'met' if met else 'not measured' if met is None else 'not met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
