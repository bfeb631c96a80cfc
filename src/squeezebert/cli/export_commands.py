"""The ``export`` subcommand: a model as an ONNX folder (``export onnx``) or an ExecuTorch program for phones
(``export executorch``). Each export checks itself in its runtime before anything is written; the numbers of that
check are printed."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator

from .command import Command, add_debug_flag

TASK_HELP = (
    "what the exported graph computes: feature-extraction (default), sentence-embedding, fill-mask (masked-lm), "
    "text-classification (sequence-classification), token-classification, multiple-choice, question-answering; "
    "by default the task of the model's head"
)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    formats = p.add_subparsers(dest="export_format", required=True, metavar="format")

    onnx = formats.add_parser("onnx", help="an ONNX folder for ONNX Runtime (and Optimum / sentence-transformers)")
    add_debug_flag(onnx)
    onnx.add_argument("model", help="model folder or hub id")
    onnx.add_argument("out_dir", help="output folder: config.json, the tokenizer files, onnx/model.onnx")
    onnx.add_argument("--task", help=TASK_HELP)
    onnx.add_argument("--opset", type=int, default=18, help="ONNX opset, at least 17 (default 18)")
    onnx.add_argument("--int8", action="store_true", help="also write onnx/model_qint8_avx512_vnni.onnx")
    onnx.add_argument("--atol", type=float, default=1e-4, help="largest |ONNX - PyTorch| allowed (default 1e-4)")
    onnx.add_argument("--overwrite", action="store_true", help="write into a non-empty output folder")

    executorch = formats.add_parser("executorch", help="an ExecuTorch program lowered to XNNPACK (phones)")
    add_debug_flag(executorch)
    executorch.add_argument("model", help="model folder or hub id")
    executorch.add_argument("out_path", help="the .pte file to write")
    executorch.add_argument("--task", help=TASK_HELP)
    executorch.add_argument("--int8", action="store_true", help="int8 projections (XNNPACK dynamic quantization)")
    executorch.add_argument("--max-length", type=int, default=128, help="longest sequence in tokens (default 128)")


def _run_onnx(args: argparse.Namespace) -> int:
    from ..export.onnx import to_onnx

    report = to_onnx(
        args.model,
        args.out_dir,
        task=args.task,
        opset=args.opset,
        int8=args.int8,
        atol=args.atol,
        overwrite=args.overwrite,
    )
    print(f"{report.out_dir}: {report.task}, opset {report.opset}, outputs {', '.join(report.outputs)}")
    print(f"  ONNX Runtime vs PyTorch (fp32): max abs diff {report.max_abs_diff:.3g} <= {args.atol:g}")
    if report.int8_min_cosine is not None:
        print(
            f"  int8 ({report.int8_quantized} projections int8, {report.int8_float} fp32): min cosine "
            f"{report.int8_min_cosine:.6f}, max abs diff {report.int8_max_abs_diff:.3g}"
        )
    print("  wrote " + ", ".join(report.files))
    return 0


def _run_executorch(args: argparse.Namespace) -> int:
    from ..export.executorch import to_executorch

    report = to_executorch(args.model, args.out_path, task=args.task, int8=args.int8, max_length=args.max_length)
    print(report.summary())
    return 0


def _run(args: argparse.Namespace) -> int:
    print(f"export {args.export_format}: exporting and checking {args.model} ...", file=sys.stderr)
    with _quiet_toolchain():
        return _run_onnx(args) if args.export_format == "onnx" else _run_executorch(args)


@contextlib.contextmanager
def _quiet_toolchain() -> Iterator[None]:
    """Keep the exporters' own chatter (deprecation notices, torchao's optional kernels that do not load on this
    CPU) off the terminal: the export's result and its check are what the command reports."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch", "onnxscript")]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", module="torch.*")
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


COMMANDS: tuple[Command, ...] = (
    Command(
        name="export",
        help="export a model to ONNX or ExecuTorch, checked in the runtime before it is written",
        add_arguments=_add_arguments,
        run=_run,
    ),
)
