"""``BatchEncoding``: what the tokenizers return, a dict of model inputs with attribute access."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

TENSOR_TYPES = ("pt", "np")


class TokenSpan(NamedTuple):
    """Tokens ``start`` (included) to ``end`` (excluded) of a row."""

    start: int
    end: int


class BatchEncoding(dict):
    """A dict of model inputs (``input_ids``, ``attention_mask``, ...) that also allows ``inputs.input_ids``.

    Values are Python lists, or numpy arrays / torch tensors when the tokenizer was called with
    ``return_tensors="np"`` / ``"pt"``. The output of a tokenizer call also maps tokens back to their input:
    :meth:`sequence_ids` (both tokenizers) and :meth:`word_ids` (the fast tokenizer, and the slow one with
    ``is_split_into_words=True``).
    """

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        word_ids: Callable[[int], list[int | None]] | None = None,
        sequence_ids: Callable[[int], list[int | None]] | None = None,
    ):
        super().__init__(data or {})
        self._word_ids = word_ids
        self._sequence_ids = sequence_ids

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getstate__(self) -> dict[str, Any]:
        return {}  # the token maps need the tokenizer's encodings; they do not survive pickling

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._word_ids = self._sequence_ids = None

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of row ``batch_index``, the index of its word in its sequence, or ``None`` (special and
        padding tokens)."""
        if self._word_ids is None:
            raise ValueError(
                "word_ids() needs the output of a tokenizer call: of SqueezeBertTokenizerFast, or of "
                "SqueezeBertTokenizer with is_split_into_words=True"
            )
        return self._word_ids(batch_index)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of row ``batch_index``: 0 (first sequence), 1 (second sequence of a pair) or ``None``
        (special and padding tokens)."""
        if self._sequence_ids is None:
            raise ValueError("sequence_ids() needs the output of a tokenizer call")
        return self._sequence_ids(batch_index)

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The sequence (0 or 1) of a token: ``token_to_sequence(token)`` or ``token_to_sequence(row, token)``."""
        batch_index, token_index = (
            (0, batch_or_token_index) if token_index is None else (batch_or_token_index, token_index)
        )
        return _item(self.sequence_ids(batch_index), token_index)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int | None:
        """The word of a token: ``token_to_word(token)`` or ``token_to_word(row, token)``; ``None`` for special and
        padding tokens."""
        batch_index, token_index = (
            (0, batch_or_token_index) if token_index is None else (batch_or_token_index, token_index)
        )
        return _item(self.word_ids(batch_index), token_index)

    def word_to_tokens(
        self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0
    ) -> TokenSpan | None:
        """The tokens of word ``word_index`` of sequence ``sequence_index`` (0, or 1 for the second of a pair):
        ``word_to_tokens(word)`` or ``word_to_tokens(row, word)``; ``None`` when the row has none of its tokens.

        A row without that sequence (``sequence_index=1`` on a single text) is searched whole, as ``tokenizers``
        does."""
        batch_index, word_index = (0, batch_or_word_index) if word_index is None else (batch_or_word_index, word_index)
        sequence_ids = self.sequence_ids(batch_index)
        if sequence_index not in sequence_ids:
            sequence_ids = [sequence_index] * len(sequence_ids)
        positions = [
            position
            for position, (word, sequence) in enumerate(zip(self.word_ids(batch_index), sequence_ids, strict=True))
            if word == word_index and sequence == sequence_index
        ]
        return TokenSpan(positions[0], positions[-1] + 1) if positions else None

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
        # Ids, masks and offsets become int64; other values (labels of a data collator) keep their type.
        if tensor_type == "np":
            import numpy as np

            for key, value in self.items():
                array = np.asarray(value)
                self[key] = array.astype(np.int64) if array.size == 0 or array.dtype.kind in "iu" else array
        else:
            import torch

            for key, value in self.items():
                tensor = torch.tensor(value)
                self[key] = tensor.long() if tensor.numel() == 0 else tensor
        return self


def _item(values: list[int | None], index: int) -> int | None:
    """``values[index]``, or ``None`` when ``index`` is out of range."""
    return values[index] if -len(values) <= index < len(values) else None
