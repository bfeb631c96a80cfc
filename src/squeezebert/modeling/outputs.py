"""Model outputs: dataclasses that read by attribute, by key, and by position (``None`` fields skipped)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.utils._pytree as pytree


class ModelOutput(Mapping):
    """Base of the output dataclasses.

    ``out.logits``, ``out["logits"]`` and ``out[0]`` all work; only the fields that are not ``None`` count, in
    declaration order, exactly like the tuple returned with ``return_dict=False`` (``out.to_tuple()``).
    Every subclass is a pytree node (its fields are the children), so ``torch.export`` can return it.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        pytree.register_pytree_node(
            cls,
            _flatten_output,
            lambda values, names: cls(**dict(zip(names, values, strict=True))),
            serialized_type_name=f"{cls.__module__}.{cls.__qualname__}",
        )

    def _present(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(value for _, value in self._present())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            present = dict(self._present())
            if key not in present:
                raise KeyError(key)
            return present[key]
        return self.to_tuple()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(name for name, _ in self._present())

    def __len__(self) -> int:
        return len(self._present())


def _flatten_output(output: ModelOutput) -> tuple[list[Any], list[str]]:
    names = [f.name for f in fields(output)]
    return [getattr(output, name) for name in names], names


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    """Output of :class:`SqueezeBertModel`.

    Attributes:
        last_hidden_state: ``[batch, seq, hidden]`` output of the last layer.
        pooler_output: ``[batch, hidden]``, tanh(dense(first token)).
        hidden_states: with ``output_hidden_states``, ``num_layers + 1`` tensors ``[batch, seq, hidden]`` (the
            embeddings, then each layer's output).
        attentions: with ``output_attentions``, one ``[batch, heads, seq, seq]`` tensor per layer holding the
            attention weights after the softmax (and after ``head_mask``), as Hugging Face documents them. (The
            Hugging Face implementation returns the scores before the softmax instead.)
    """

    last_hidden_state: torch.Tensor | None = None
    pooler_output: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class _LogitsOutput(ModelOutput):
    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class MaskedLMOutput(_LogitsOutput):
    """Output of :class:`SqueezeBertForMaskedLM`: ``logits`` are ``[batch, seq, vocab]``."""


class SequenceClassifierOutput(_LogitsOutput):
    """Output of :class:`SqueezeBertForSequenceClassification`: ``logits`` are ``[batch, num_labels]``."""


class MultipleChoiceModelOutput(_LogitsOutput):
    """Output of :class:`SqueezeBertForMultipleChoice`: ``logits`` are ``[batch, num_choices]``."""


class TokenClassifierOutput(_LogitsOutput):
    """Output of :class:`SqueezeBertForTokenClassification`: ``logits`` are ``[batch, seq, num_labels]``."""


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """Output of :class:`SqueezeBertForQuestionAnswering`: span ``start_logits`` / ``end_logits``, ``[batch, seq]``."""

    loss: torch.Tensor | None = None
    start_logits: torch.Tensor | None = None
    end_logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
