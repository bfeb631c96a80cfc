"""SqueezeBERT: efficient BERT-like encoders with grouped convolutions, Hugging Face compatible."""

from .config import SqueezeBertConfig
from .convert import convert_bert_checkpoint
from .modeling import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    SqueezeBertForMaskedLM,
    SqueezeBertForMultipleChoice,
    SqueezeBertForPreTraining,
    SqueezeBertForPreTrainingOutput,
    SqueezeBertForQuestionAnswering,
    SqueezeBertForSequenceClassification,
    SqueezeBertForTokenClassification,
    SqueezeBertModel,
    SqueezeBertPreTrainedModel,
    TokenClassifierOutput,
)
from .pipelines import pipeline
from .quantization import quantize_dynamic
from .tokenization import AddedToken, AutoTokenizer, BatchEncoding, SqueezeBertTokenizer, SqueezeBertTokenizerFast

__version__ = "0.1.0"

__all__ = [
    "AddedToken",
    "AutoTokenizer",
    "BaseModelOutputWithPooling",
    "BatchEncoding",
    "MaskedLMOutput",
    "ModelOutput",
    "MultipleChoiceModelOutput",
    "QuestionAnsweringModelOutput",
    "SequenceClassifierOutput",
    "SqueezeBertConfig",
    "SqueezeBertForMaskedLM",
    "SqueezeBertForMultipleChoice",
    "SqueezeBertForPreTraining",
    "SqueezeBertForPreTrainingOutput",
    "SqueezeBertForQuestionAnswering",
    "SqueezeBertForSequenceClassification",
    "SqueezeBertForTokenClassification",
    "SqueezeBertModel",
    "SqueezeBertPreTrainedModel",
    "SqueezeBertTokenizer",
    "SqueezeBertTokenizerFast",
    "TokenClassifierOutput",
    "convert_bert_checkpoint",
    "pipeline",
    "quantize_dynamic",
]
