"""SqueezeBertModel, the encoder, and the five task heads on top of it."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SqueezeBertConfig
from .inputs import additive_mask, head_mask_per_layer, validate_inputs
from .layers import (
    Dropout,
    SqueezeBertEmbeddings,
    SqueezeBertLayer,
    SqueezeBertOnlyMLMHead,
    SqueezeBertPooler,
    masked_mean,
)
from .outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from .pretrained import SqueezeBertPreTrainedModel

Tensor = torch.Tensor

# The forward arguments every head passes straight to the encoder.
ENCODER_INPUTS = (
    "input_ids",
    "attention_mask",
    "token_type_ids",
    "position_ids",
    "head_mask",
    "inputs_embeds",
    "output_attentions",
    "output_hidden_states",
)


def encoder_inputs(arguments: dict[str, Any]) -> dict[str, Any]:
    """The encoder's arguments picked out of a head's ``forward`` arguments (``locals()``)."""
    return {name: arguments[name] for name in ENCODER_INPUTS}


def token_cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of every token over the last dimension of ``logits``, ignoring labels of -100."""
    return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1).long(), ignore_index=-100)


class SqueezeBertEncoder(nn.Module):
    """The stack of :class:`SqueezeBertLayer` (parameters ``layers.N.*``)."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SqueezeBertLayer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self,
        embeddings: Tensor,
        mask: Tensor | None,
        head_mask: Tensor | None,
        output_attentions: bool,
        output_hidden_states: bool,
    ) -> tuple[Tensor, tuple[Tensor, ...] | None, tuple[Tensor, ...] | None]:
        """``embeddings`` ``[batch, seq, C]`` -> last hidden state, all hidden states, all attention weights."""
        batch, seq, channels = embeddings.shape
        x = embeddings.reshape(batch * seq, channels)
        hidden_states = [embeddings] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for i, layer in enumerate(self.layers):
            x, probs = layer(x, batch, seq, mask, None if head_mask is None else head_mask[i], output_attentions)
            if hidden_states is not None:
                hidden_states.append(x.view(batch, seq, channels))
            if attentions is not None:
                attentions.append(probs)
        return (
            x.view(batch, seq, channels),
            None if hidden_states is None else tuple(hidden_states),
            None if attentions is None else tuple(attentions),
        )


class SqueezeBertModel(SqueezeBertPreTrainedModel):
    """The bare SqueezeBERT encoder: embeddings, encoder layers and pooler.

    Parameters are named as in the reference (``embeddings.*``, ``encoder.layers.N.*``, ``pooler.*``).
    """

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config)
        self.embeddings = SqueezeBertEmbeddings(config)
        self.encoder = SqueezeBertEncoder(config)
        self.pooler = SqueezeBertPooler(config)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Encode a batch.

        Args:
            input_ids: ``[batch, seq]`` token ids (or pass ``inputs_embeds`` ``[batch, seq, embedding_size]``).
            attention_mask: ``[batch, seq]``, 1 for tokens to attend to, 0 for padding.
            token_type_ids: ``[batch, seq]`` segment ids (0 when omitted).
            position_ids: ``[batch, seq]`` positions (0..seq-1 when omitted).
            head_mask: ``(heads,)`` or ``(layers, heads)``, multiplies each head's attention weights (0 drops it).
            output_attentions: return the attention weights (after softmax) of every layer.
            output_hidden_states: return the embeddings and every layer's output.
            return_dict: return a :class:`BaseModelOutputWithPooling` (default) rather than a tuple.
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        validate_inputs(config, input_ids, inputs_embeds, attention_mask, token_type_ids, position_ids)
        if input_ids is not None:
            self.warn_if_padding_and_no_attention_mask(input_ids, attention_mask)
        head_mask = head_mask_per_layer(head_mask, config)

        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        mask = additive_mask(attention_mask, embeddings.dtype)
        last, hidden_states, attentions = self.encoder(
            embeddings, mask, head_mask, output_attentions, output_hidden_states
        )
        out = BaseModelOutputWithPooling(last, self.pooler(last), hidden_states, attentions)
        return out if return_dict else out.to_tuple()


# ----------------------------------------------------------------------------------------------------------------
# Heads


class _SqueezeBertWithHead(SqueezeBertPreTrainedModel):
    """Shared plumbing of the task heads: run the encoder, apply the head, package the output.

    A head defines ``output_class`` and ``head(encoded, labels) -> dict`` (its output fields, loss included).
    """

    output_class: type[ModelOutput]

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config)
        self.transformer = SqueezeBertModel(config)

    def head(self, encoded: BaseModelOutputWithPooling, labels: Any) -> dict[str, Tensor | None]:
        raise NotImplementedError

    def encode(self, **inputs: Any) -> BaseModelOutputWithPooling:
        return self.transformer(**inputs, return_dict=True)

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ModelOutput | tuple:
        """Encode the batch, apply the head; with ``labels`` also return the loss (first in a tuple).

        Arguments as :meth:`SqueezeBertModel.forward`, plus ``labels``.
        """
        return self._run(encoder_inputs(locals()), labels, return_dict)

    def _run(self, inputs: dict[str, Any], labels: Any, return_dict: bool | None) -> ModelOutput | tuple:
        encoded = self.encode(**inputs)
        out = self.output_class(
            **self.head(encoded, labels), hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        return out if return_dict else out.to_tuple()


class _SqueezeBertWithClassifier(_SqueezeBertWithHead):
    """A head that is dropout plus one linear layer (``classifier``) with ``num_outputs`` outputs."""

    def __init__(self, config: SqueezeBertConfig, num_outputs: int) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, num_outputs)
        self.post_init()

    def classify(self, features: Tensor) -> Tensor:
        return self.classifier(self.dropout(features))


class SqueezeBertForMaskedLM(_SqueezeBertWithHead):
    """SqueezeBERT with the masked-language-model head; the decoder is tied to the word embeddings."""

    output_class = MaskedLMOutput
    tied_keys = {
        "cls.predictions.decoder.weight": "transformer.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config)
        self.cls = SqueezeBertOnlyMLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def tie_weights(self) -> None:
        predictions = self.cls.predictions
        embedding = self.get_input_embeddings()
        vocab = embedding.num_embeddings
        if predictions.bias.shape[0] != vocab:  # the vocabulary was resized: keep the old biases, zeros after
            bias = predictions.bias.new_zeros(vocab)
            keep = min(vocab, predictions.bias.shape[0])
            bias[:keep] = predictions.bias.detach()[:keep]
            predictions.bias = nn.Parameter(bias)
        predictions.decoder.weight = embedding.weight
        predictions.decoder.bias = predictions.bias
        predictions.decoder.out_features = vocab

    def head(self, encoded: BaseModelOutputWithPooling, labels: Tensor | None) -> dict[str, Tensor | None]:
        logits = self.cls(encoded.last_hidden_state)
        return {"loss": None if labels is None else token_cross_entropy(logits, labels), "logits": logits}


class SqueezeBertForSequenceClassification(_SqueezeBertWithClassifier):
    """SqueezeBERT with a linear classifier (or regressor) on the pooled output, e.g. for GLUE.

    The classifier reads the pooler's ``[CLS]`` output (``config.classifier_pooling="cls"``, as in Hugging Face) or
    the mean of the attended token vectors (``"mean"``), L2-normalised with ``config.classifier_normalize``.
    """

    output_class = SequenceClassifierOutput

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config, config.num_labels)

    def _run(self, inputs: dict[str, Any], labels: Any, return_dict: bool | None) -> ModelOutput | tuple:
        """The head gets the attention mask with the labels (mean pooling needs it)."""
        return super()._run(inputs, (labels, inputs["attention_mask"]), return_dict)

    def pool(self, encoded: BaseModelOutputWithPooling, attention_mask: Tensor | None) -> Tensor:
        """The ``[batch, hidden]`` vector of each sequence that the classifier reads."""
        if self.config.classifier_pooling == "cls":
            return encoded.pooler_output
        hidden = encoded.last_hidden_state  # [batch, seq, hidden]
        pooled = hidden.mean(1) if attention_mask is None else masked_mean(hidden, attention_mask)  # [batch, hidden]
        return F.normalize(pooled, dim=-1) if self.config.classifier_normalize else pooled

    def head(self, encoded: BaseModelOutputWithPooling, labels: tuple[Tensor | None, Tensor | None]) -> dict:
        targets, attention_mask = labels
        logits = self.classify(self.pool(encoded, attention_mask))
        loss = None if targets is None else self._loss(logits, targets)
        return {"loss": loss, "logits": logits}

    def _loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """MSE for regression, cross-entropy for single-label, BCE-with-logits for multi-label.

        Without ``config.problem_type`` the kind is inferred (regression for one label, single-label for integer
        labels, multi-label otherwise) and stored in the config.
        """
        config = self.config
        if config.problem_type is None:
            if self.num_labels == 1:
                config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                config.problem_type = "single_label_classification"
            else:
                config.problem_type = "multi_label_classification"
        if config.problem_type == "regression":
            if self.num_labels == 1:
                return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
            return F.mse_loss(logits, labels.to(logits.dtype))
        if config.problem_type == "single_label_classification":
            return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1).long())
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class SqueezeBertForMultipleChoice(_SqueezeBertWithClassifier):
    """SqueezeBERT scoring each of ``num_choices`` sequences; inputs are ``[batch, num_choices, seq]``."""

    output_class = MultipleChoiceModelOutput

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config, 1)

    def _run(self, inputs: dict[str, Any], labels: Any, return_dict: bool | None) -> ModelOutput | tuple:
        """Flatten ``[batch, num_choices, ...]`` inputs to ``[batch * num_choices, ...]``; the head gets
        ``num_choices`` with the labels (nothing is kept on the module between calls)."""
        ids, embeds = inputs["input_ids"], inputs["inputs_embeds"]
        reference = ids if ids is not None else embeds
        if reference is None:
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        wanted = 3 if ids is not None else 4
        if reference.dim() != wanted:
            name = "input_ids" if ids is not None else "inputs_embeds"
            raise ValueError(
                f"{name} must be [batch, num_choices, seq{'' if ids is not None else ', hidden'}] for multiple "
                f"choice, got shape {tuple(reference.shape)}"
            )
        flat = dict(inputs)
        for name in ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds"):
            value = inputs[name]
            if value is not None:
                keep = 2 if name == "inputs_embeds" else 1
                if value.dim() != keep + 2:
                    raise ValueError(f"{name} must have {keep + 2} dims for multiple choice, got {value.dim()}")
                flat[name] = value.reshape(-1, *value.shape[-keep:])
        return super()._run(flat, (labels, reference.shape[1]), return_dict)

    def head(self, encoded: BaseModelOutputWithPooling, labels: tuple[Tensor | None, int]) -> dict[str, Tensor | None]:
        targets, num_choices = labels
        logits = self.classify(encoded.pooler_output).view(-1, num_choices)
        loss = None if targets is None else F.cross_entropy(logits, targets.view(-1).long())
        return {"loss": loss, "logits": logits}


class SqueezeBertForTokenClassification(_SqueezeBertWithClassifier):
    """SqueezeBERT with a linear classifier on every token, e.g. for named-entity recognition."""

    output_class = TokenClassifierOutput

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config, config.num_labels)

    def head(self, encoded: BaseModelOutputWithPooling, labels: Tensor | None) -> dict[str, Tensor | None]:
        logits = self.classify(encoded.last_hidden_state)
        loss = None
        if labels is not None:
            loss = token_cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


class SqueezeBertForQuestionAnswering(_SqueezeBertWithHead):
    """SqueezeBERT predicting the start and end of an answer span in the input (e.g. SQuAD)."""

    output_class = QuestionAnsweringModelOutput

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        start_positions: Tensor | None = None,
        end_positions: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> QuestionAnsweringModelOutput | tuple:
        """Span logits; with ``start_positions`` and ``end_positions`` also the loss.

        Positions beyond the sequence are clamped to its length and ignored by the loss; the loss is the mean
        of the start and end cross-entropies.
        """
        return self._run(encoder_inputs(locals()), (start_positions, end_positions), return_dict)

    def head(self, encoded: BaseModelOutputWithPooling, labels: tuple) -> dict[str, Tensor | None]:
        logits = self.qa_outputs(encoded.last_hidden_state)
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        start_positions, end_positions = labels
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]
            start = start_positions.view(-1).long().clamp(0, ignored)
            end = end_positions.view(-1).long().clamp(0, ignored)
            loss = (
                F.cross_entropy(start_logits, start, ignore_index=ignored)
                + F.cross_entropy(end_logits, end, ignore_index=ignored)
            ) / 2
        return {"loss": loss, "start_logits": start_logits, "end_logits": end_logits}
