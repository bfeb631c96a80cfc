"""Exporting SqueezeBERT models: ``torch.export`` programs with dynamic batch and sequence length."""

from .program import INPUT_NAMES, dynamic_shapes, example_inputs, export_program

__all__ = ["INPUT_NAMES", "dynamic_shapes", "example_inputs", "export_program"]
