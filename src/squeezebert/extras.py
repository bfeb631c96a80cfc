"""The optional parts of squeezebert (``pip install 'squeezebert[onnx]'``, ``[executorch]``, ...): the error a
missing one raises, which the command line prints as one line."""

from __future__ import annotations


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""
