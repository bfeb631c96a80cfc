"""Exporting SqueezeBERT models: ``torch.export`` programs with dynamic batch and sequence length, and ONNX
(:func:`to_onnx`; needs the ``onnx`` extra, imported only when called)."""

from .executorch import to_executorch
from .onnx import (
    INT8_FILE,
    MODEL_FILE,
    TASKS,
    MissingOnnxExtraError,
    OnnxExportError,
    OnnxExportReport,
    load_onnx_session,
    to_onnx,
)
from .program import INPUT_NAMES, dynamic_shapes, example_inputs, export_program

__all__ = [
    "INPUT_NAMES",
    "INT8_FILE",
    "MODEL_FILE",
    "TASKS",
    "MissingOnnxExtraError",
    "OnnxExportError",
    "OnnxExportReport",
    "dynamic_shapes",
    "example_inputs",
    "export_program",
    "load_onnx_session",
    "to_executorch",
    "to_onnx",
]
