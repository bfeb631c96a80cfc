"""``BatchEncoding``: what the tokenizers return, a dict of model inputs with attribute access."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

TENSOR_TYPES = ("pt", "np")


class BatchEncoding(dict):
    """A dict of model inputs (``input_ids``, ``attention_mask``, ...) that also allows ``inputs.input_ids``.

    Values are Python lists, or numpy arrays / torch tensors when the tokenizer was called with
    ``return_tensors="np"`` / ``"pt"``. ``word_ids(i)`` (fast tokenizer only) maps each token of row ``i`` to the
    index of the word it came from in its sequence (``None`` for special and padding tokens).
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        word_ids: Callable[[int], list[int | None]] | None = None,
    ):
        super().__init__(data or {})
        self._word_ids = word_ids

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # word ids need the tokenizer's encodings; they do not survive pickling

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._word_ids = None

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of row ``batch_index``, the index of its word in its sequence, or ``None``."""
        if self._word_ids is None:
            raise ValueError("word_ids() is only available on the output of SqueezeBertTokenizerFast")
        return self._word_ids(batch_index)

    def to(self, device: Any) -> BatchEncoding:
        """Move every tensor to ``device`` (in place) and return ``self``."""
        import torch

        for key, value in self.items():
            if isinstance(value, torch.Tensor):
                self[key] = value.to(device)
        return self

    def convert_to_tensors(self, tensor_type: str | None) -> BatchEncoding:
        """Turn every list-of-rows value into a ``tensor_type`` ("pt" or "np") array, in place."""
        if tensor_type is None:
            return self
        if tensor_type not in TENSOR_TYPES:
            raise ValueError(f"return_tensors must be one of {TENSOR_TYPES} or None, not {tensor_type!r}")
        for key, value in self.items():
            lengths = {len(row) for row in value} if value and isinstance(value[0], (list, tuple)) else set()
            if len(lengths) > 1:
                raise ValueError(
                    f"cannot make {tensor_type!r} tensors from rows of different lengths ({key!r} has rows of "
                    f"{min(lengths)} to {max(lengths)} tokens): pass padding=True or padding='max_length'"
                )
        if tensor_type == "np":
            import numpy as np

            for key, value in self.items():
                self[key] = np.asarray(value, dtype=np.int64)
        else:
            import torch

            for key, value in self.items():
                self[key] = torch.tensor(value, dtype=torch.long)
        return self
