"""SqueezeBERT models: the encoder, its task heads, and their outputs."""

from .model import (
    SqueezeBertForMaskedLM,
    SqueezeBertForMultipleChoice,
    SqueezeBertForQuestionAnswering,
    SqueezeBertForSequenceClassification,
    SqueezeBertForTokenClassification,
    SqueezeBertModel,
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
from .pretraining import SqueezeBertForPreTraining, SqueezeBertForPreTrainingOutput

__all__ = [
    "BaseModelOutputWithPooling",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "SqueezeBertForMaskedLM",
    "SqueezeBertForMultipleChoice",
    "SqueezeBertForPreTraining",
    "SqueezeBertForPreTrainingOutput",
    "SqueezeBertForQuestionAnswering",
    "SqueezeBertForSequenceClassification",
    "SqueezeBertForTokenClassification",
    "SqueezeBertModel",
    "SqueezeBertPreTrainedModel",
    "TokenClassifierOutput",
]
