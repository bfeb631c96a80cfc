"""SqueezeBertForPreTraining: the paper's pretraining objective, masked-LM plus sentence-order prediction (SOP).

The reference library has no pretraining class for SqueezeBERT. This one keeps the shared parameter names
checkpoint-compatible: the encoder lives under ``transformer.*`` and the MLM head under ``cls.predictions.*`` exactly
as in :class:`SqueezeBertForMaskedLM`, so a pretraining checkpoint loads into every head model (and a masked-LM
checkpoint loads into this one, with a fresh SOP classifier). The SOP classifier is ``cls.seq_relationship``, a
2-way linear layer on the pooled output, named like BERT's next-sentence head.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import SqueezeBertConfig
from .layers import SqueezeBertLMPredictionHead
from .model import SqueezeBertForMaskedLM, _SqueezeBertWithHead, encoder_inputs, token_cross_entropy
from .outputs import BaseModelOutputWithPooling, ModelOutput

Tensor = torch.Tensor


@dataclass
class SqueezeBertForPreTrainingOutput(ModelOutput):
    """Output of :class:`SqueezeBertForPreTraining`.

    Attributes:
        loss: with labels, the masked-LM loss plus the sentence-order loss (whichever labels were given).
        prediction_logits: ``[batch, seq, vocab]`` masked-LM scores.
        sop_logits: ``[batch, 2]`` sentence-order scores (0: segments in order, 1: swapped).
        hidden_states, attentions: as in :class:`BaseModelOutputWithPooling`.
    """

    loss: Tensor | None = None
    prediction_logits: Tensor | None = None
    sop_logits: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    attentions: tuple[Tensor, ...] | None = None


class SqueezeBertPreTrainingHeads(nn.Module):
    """The MLM prediction head (``predictions``) and the 2-way SOP classifier (``seq_relationship``)."""

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__()
        self.predictions = SqueezeBertLMPredictionHead(config)
        self.seq_relationship = nn.Linear(config.hidden_size, 2)

    def forward(self, sequence_output: Tensor, pooled_output: Tensor) -> tuple[Tensor, Tensor]:
        return self.predictions(sequence_output), self.seq_relationship(pooled_output)


class SqueezeBertForPreTraining(_SqueezeBertWithHead):
    """SqueezeBERT with the masked-LM head (tied to the word embeddings) and a sentence-order-prediction head."""

    output_class = SqueezeBertForPreTrainingOutput
    tied_keys = SqueezeBertForMaskedLM.tied_keys
    get_output_embeddings = SqueezeBertForMaskedLM.get_output_embeddings
    tie_weights = SqueezeBertForMaskedLM.tie_weights

    def __init__(self, config: SqueezeBertConfig) -> None:
        super().__init__(config)
        self.cls = SqueezeBertPreTrainingHeads(config)
        self.post_init()

    def forward(
        self,
        input_ids: Tensor | None = None,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        position_ids: Tensor | None = None,
        head_mask: Tensor | None = None,
        inputs_embeds: Tensor | None = None,
        labels: Tensor | None = None,
        sentence_order_label: Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SqueezeBertForPreTrainingOutput | tuple:
        """MLM and SOP logits; the loss sums the MLM cross-entropy over ``labels`` (``-100`` ignored) and the SOP
        cross-entropy over ``sentence_order_label`` (``[batch]``, 1 where the two segments were swapped).

        Other arguments as :meth:`SqueezeBertModel.forward`.
        """
        return self._run(encoder_inputs(locals()), (labels, sentence_order_label), return_dict)

    def head(self, encoded: BaseModelOutputWithPooling, labels: Any) -> dict[str, Tensor | None]:
        mlm_labels, sop_labels = labels
        prediction_logits, sop_logits = self.cls(encoded.last_hidden_state, encoded.pooler_output)
        losses = []
        if mlm_labels is not None:
            losses.append(token_cross_entropy(prediction_logits, mlm_labels))
        if sop_labels is not None:
            losses.append(F.cross_entropy(sop_logits.view(-1, 2), sop_labels.view(-1).long()))
        loss = sum(losses[1:], losses[0]) if losses else None
        return {"loss": loss, "prediction_logits": prediction_logits, "sop_logits": sop_logits}
