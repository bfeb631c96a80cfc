"""SqueezeBertConfig: the hyper-parameters of a SqueezeBERT model, in Hugging Face's ``config.json`` format."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import hub

if TYPE_CHECKING:  # torch is imported only when a dtype is read
    import torch

# Activation names a config may hold (the model maps each to its function).
ACTIVATION_NAMES = (
    "gelu",
    "gelu_new",
    "gelu_pytorch_tanh",
    "gelu_fast",
    "quick_gelu",
    "relu",
    "silu",
    "swish",
    "tanh",
)

_GROUP_FIELDS = (
    "q_groups",
    "k_groups",
    "v_groups",
    "post_attention_groups",
    "intermediate_groups",
    "output_groups",
)
_SIZE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
    "embedding_size",
    *_GROUP_FIELDS,
)
_PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")
CLASSIFIER_POOLINGS = ("cls", "mean")
# Fields written to config.json only when they differ from these defaults, so that the files of models that keep
# Hugging Face's behaviour stay as they were.
_WRITTEN_WHEN_SET: dict[str, Any] = {"classifier_pooling": "cls", "classifier_normalize": False}


class SqueezeBertConfig:
    """Configuration of a SqueezeBERT model; the defaults are those of ``squeezebert/squeezebert-uncased``.

    Args:
        vocab_size: number of tokens in the vocabulary.
        hidden_size: channels of the encoder (must equal ``embedding_size``).
        num_hidden_layers: number of encoder layers.
        num_attention_heads: attention heads per layer; must divide ``hidden_size``.
        intermediate_size: channels of the feed-forward block.
        hidden_act: ``"gelu"``, ``"relu"``, ``"silu"``, ``"gelu_new"`` (and a few more, see ``ACTIVATION_NAMES``)
            or a callable.
        hidden_dropout_prob: dropout after embeddings and after each projection.
        attention_probs_dropout_prob: dropout on the attention weights.
        max_position_embeddings: longest sequence the model accepts.
        type_vocab_size: number of token types (segments).
        initializer_range: standard deviation of the normal weight initialisation.
        layer_norm_eps: epsilon of every LayerNorm.
        pad_token_id: id of the padding token (its embedding row is zero and gets no gradient).
        embedding_size: width of the word embeddings.
        q_groups, k_groups, v_groups: groups of the query, key and value 1x1 convolutions.
        post_attention_groups: groups of the convolution after attention.
        intermediate_groups, output_groups: groups of the two feed-forward convolutions.
        bos_token_id, eos_token_id: ids of the begin / end of sequence tokens (``None``: BERT vocabularies have
            none); only read by ``warn_if_padding_and_no_attention_mask``.
        classifier_pooling: what the sequence-classification head reads: ``"cls"`` (the pooler's ``[CLS]``
            output, Hugging Face's behaviour) or ``"mean"`` (the mean of the attended token vectors, the pooling of
            the embeddings pipeline; the head of ``squeezebert train --strategy linear-probe|setfit``).
        classifier_normalize: scale the mean-pooled vector to unit L2 norm before the classifier (``"mean"`` only).
        **kwargs: the common fields (``num_labels``, ``id2label``, ``label2id``, ``problem_type``,
            ``output_attentions``, ``output_hidden_states``, ``return_dict``, ``architectures``, ``dtype`` or its 4.x
            spelling ``torch_dtype``, ``chunk_size_feed_forward``, ``name_or_path``); any other key is kept and
            written back by :meth:`to_dict`.

    ``chunk_size_feed_forward`` (default 0) is accepted, validated and saved, and changes nothing: the engine
    already runs the feed-forward block in cache-sized chunks at inference (as in ``transformers``, whose
    SqueezeBERT does not read it either).
    """

    model_type = "squeezebert"
    sub_configs: dict[str, type] = {}  # SqueezeBERT has no nested configs (text, vision, ...)

    def __init__(
        self,
        vocab_size: int = 30522,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str | Callable = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.1,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        pad_token_id: int = 0,
        embedding_size: int = 768,
        q_groups: int = 4,
        k_groups: int = 4,
        v_groups: int = 4,
        post_attention_groups: int = 1,
        intermediate_groups: int = 4,
        output_groups: int = 4,
        bos_token_id: int | None = None,
        eos_token_id: int | None = None,
        classifier_pooling: str = "cls",
        classifier_normalize: bool = False,
        **kwargs: Any,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.pad_token_id = pad_token_id
        self.embedding_size = embedding_size
        self.q_groups = q_groups
        self.k_groups = k_groups
        self.v_groups = v_groups
        self.post_attention_groups = post_attention_groups
        self.intermediate_groups = intermediate_groups
        self.output_groups = output_groups
        self.bos_token_id = bos_token_id
        self.eos_token_id = eos_token_id
        self.classifier_pooling = classifier_pooling
        self.classifier_normalize = classifier_normalize

        # Common fields shared by every Hugging Face config.
        self.output_attentions: bool = kwargs.pop("output_attentions", False)
        self.output_hidden_states: bool = kwargs.pop("output_hidden_states", False)
        self.return_dict: bool = kwargs.pop("return_dict", True)
        self.problem_type: str | None = kwargs.pop("problem_type", None)
        self.architectures: list[str] | None = kwargs.pop("architectures", None)
        self.tie_word_embeddings: bool = kwargs.pop("tie_word_embeddings", True)
        self.chunk_size_feed_forward: int = kwargs.pop("chunk_size_feed_forward", 0)
        # Where the config came from (set by the models' from_pretrained); "_name_or_path" is the 4.x file key.
        self.name_or_path = kwargs.pop("name_or_path", kwargs.pop("_name_or_path", ""))
        torch_dtype = kwargs.pop("torch_dtype", None)
        dtype = kwargs.pop("dtype", None)
        self._dtype: str | None = _dtype_name(dtype if dtype is not None else torch_dtype)
        if kwargs.pop("is_encoder_decoder", False):
            raise ValueError("is_encoder_decoder must be False: SqueezeBERT is an encoder-only model")
        self._set_labels(kwargs.pop("num_labels", None), kwargs.pop("id2label", None), kwargs.pop("label2id", None))
        kwargs.pop("model_type", None)
        kwargs.pop("transformers_version", None)
        self._extra: dict[str, Any] = {}
        for key, value in kwargs.items():  # unknown keys survive a round trip
            setattr(self, key, value)
            self._extra[key] = value
        self.validate()

    # ------------------------------------------------------------------------------------------------------------
    # Labels: num_labels, id2label and label2id always agree.

    def _set_labels(self, num_labels: int | None, id2label: dict | None, label2id: dict | None) -> None:
        if id2label is None and label2id is not None:
            id2label = {int(i): label for label, i in label2id.items()}
        if id2label is not None:
            id2label = {int(i): label for i, label in id2label.items()}
            if num_labels is not None and num_labels != len(id2label):
                raise ValueError(f"num_labels={num_labels} does not match the {len(id2label)} labels of id2label")
        else:
            n = 2 if num_labels is None else num_labels
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"num_labels must be a positive integer, got {n!r}")
            id2label = {i: f"LABEL_{i}" for i in range(n)}
        self.id2label: dict[int, str] = id2label
        self.label2id: dict[str, int] = (
            {str(k): int(v) for k, v in label2id.items()}
            if label2id is not None
            else {label: i for i, label in id2label.items()}
        )

    @property
    def num_labels(self) -> int:
        """Number of output labels of the classification heads."""
        return len(self.id2label)

    @num_labels.setter
    def num_labels(self, n: int) -> None:
        if n != self.num_labels:
            self._set_labels(n, None, None)

    # ------------------------------------------------------------------------------------------------------------
    # Fields of Hugging Face's common config API

    @property
    def dtype(self) -> torch.dtype | None:
        """The dtype the weights were saved in (``torch.float16``, ...), or ``None`` when not set."""
        if self._dtype is None:
            return None
        import torch

        dtype = getattr(torch, self._dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"dtype {self._dtype!r} is not a torch dtype")
        return dtype

    @dtype.setter
    def dtype(self, value: torch.dtype | str | None) -> None:
        self._dtype = _dtype_name(value)

    @property
    def torch_dtype(self) -> str | None:
        """The 4.x spelling of :attr:`dtype`, as its name (``"float16"``)."""
        return self._dtype

    @torch_dtype.setter
    def torch_dtype(self, value: torch.dtype | str | None) -> None:
        self._dtype = _dtype_name(value)

    @property
    def name_or_path(self) -> str:
        """The folder or hub repo id the model was loaded from (``""`` when built from a config); not saved."""
        return self._name_or_path

    @name_or_path.setter
    def name_or_path(self, value: str | os.PathLike) -> None:
        self._name_or_path = os.fspath(value)

    @property
    def is_encoder_decoder(self) -> bool:
        """Always ``False``: SqueezeBERT is an encoder."""
        return False

    def get_text_config(self, decoder: bool | None = None, encoder: bool | None = None) -> SqueezeBertConfig:
        """The config of the text model: this config itself (``decoder`` / ``encoder`` matter only to composite
        configs, which SqueezeBERT's is not)."""
        return self

    # ------------------------------------------------------------------------------------------------------------

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that makes the architecture impossible."""
        for name in _SIZE_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value!r}")
        chunk = self.chunk_size_feed_forward
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0:
            raise ValueError(f"chunk_size_feed_forward must be a non-negative integer, got {chunk!r}")
        if self.layer_norm_eps <= 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.embedding_size != self.hidden_size:
            raise ValueError(
                f"embedding_size ({self.embedding_size}) must equal hidden_size ({self.hidden_size}): the encoder "
                "has no projection between them"
            )
        for name in _GROUP_FIELDS:
            groups = getattr(self, name)
            channels = {"hidden_size": self.hidden_size}
            if name in ("intermediate_groups", "output_groups"):
                channels["intermediate_size"] = self.intermediate_size
            for channel_name, size in channels.items():
                if size % groups:
                    raise ValueError(f"{channel_name} ({size}) must be divisible by {name} ({groups})")
        if not callable(self.hidden_act) and self.hidden_act not in ACTIVATION_NAMES:
            raise ValueError(f"hidden_act {self.hidden_act!r} is not one of {', '.join(ACTIVATION_NAMES)}")
        if self.pad_token_id is not None and not 0 <= self.pad_token_id < self.vocab_size:
            raise ValueError(f"pad_token_id ({self.pad_token_id}) must be in [0, vocab_size={self.vocab_size})")
        if self.problem_type is not None and self.problem_type not in _PROBLEM_TYPES:
            raise ValueError(f"problem_type must be None or one of {', '.join(_PROBLEM_TYPES)}")
        if self.classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(
                f"classifier_pooling must be one of {', '.join(CLASSIFIER_POOLINGS)}, got {self.classifier_pooling!r}"
            )
        if not isinstance(self.classifier_normalize, bool):
            raise ValueError(f"classifier_normalize must be true or false, got {self.classifier_normalize!r}")
        if self.classifier_normalize and self.classifier_pooling != "mean":
            raise ValueError("classifier_normalize needs classifier_pooling 'mean', got 'cls'")

    # ------------------------------------------------------------------------------------------------------------
    # Serialisation

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-ready dict (``model_type`` included, unknown keys kept; ``classifier_pooling`` and
        ``classifier_normalize`` only when not at their defaults)."""
        out = {key: copy.deepcopy(value) for key, value in vars(self).items() if not key.startswith("_")}
        for key, default in _WRITTEN_WHEN_SET.items():
            if out[key] == default:
                del out[key]
        out.update(copy.deepcopy(self._extra))
        out["dtype"] = self._dtype
        out["id2label"] = {str(i): label for i, label in self.id2label.items()}
        if callable(self.hidden_act):
            out["hidden_act"] = getattr(self.hidden_act, "__name__", "custom")
        out["model_type"] = self.model_type
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the common fields (``output_attentions``, ``dtype``, the labels, ...) that hold
        their defaults; the SqueezeBERT fields, ``model_type`` and unknown keys are always kept."""
        return {k: v for k, v in self.to_dict().items() if k not in _COMMON_DEFAULTS or v != _COMMON_DEFAULTS[k]}

    def to_json_string(self, use_diff: bool = False) -> str:
        """The config as indented, key-sorted JSON: every field, or with ``use_diff`` only :meth:`to_diff_dict`.

        (Hugging Face's default is ``use_diff=True``; this one writes every field unless asked.)
        """
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike, use_diff: bool = True) -> None:
        """Write the config to ``json_file_path``, atomically; ``use_diff`` leaves out common fields at their
        defaults (see :meth:`to_diff_dict`), as Hugging Face does."""
        hub.write_json(json_file_path, self.to_diff_dict() if use_diff else self.to_dict())

    @classmethod
    def _read_json_file(cls, json_file: str | os.PathLike) -> dict[str, Any]:
        """The fields stored in a config JSON file, checked to be a SqueezeBERT config."""
        data = hub.read_json(json_file)
        model_type = data.get("model_type")
        if model_type not in (None, cls.model_type):
            raise ValueError(
                f"{os.fspath(json_file)} is a config for model_type {model_type!r}, not {cls.model_type!r}"
            )
        return data

    @classmethod
    def from_json_file(cls, json_file: str | os.PathLike) -> SqueezeBertConfig:
        """Load a config from a JSON file (a ``config.json`` or what :meth:`to_json_file` wrote)."""
        return cls.from_dict(cls._read_json_file(json_file))

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> SqueezeBertConfig:
        """Build a config from a dict; ``kwargs`` override its entries.

        Overriding one of ``num_labels`` / ``id2label`` / ``label2id`` replaces the stored label set.
        """
        label_fields = ("num_labels", "id2label", "label2id")
        if any(k in kwargs for k in label_fields):
            config_dict = {k: v for k, v in config_dict.items() if k not in label_fields}
        return cls(**{**config_dict, **kwargs})

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write ``config.json`` into ``save_directory`` (created if needed), atomically."""
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {os.fspath(save_directory)!r} is a file, not a folder")
        os.makedirs(save_directory, exist_ok=True)
        hub.write_json(os.path.join(save_directory, hub.CONFIG_NAME), self.to_dict())

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, **kwargs: Any) -> SqueezeBertConfig:
        """Load a config from a folder or hub repo id (its ``config.json``), or from the path of a JSON file.

        Hub options (``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``subfolder``) are taken from
        ``kwargs`` (a JSON file path needs none); the remaining kwargs override config fields.
        """
        hub_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in HUB_KWARGS}
        if os.path.isfile(name_or_path):
            path: str | None = os.fspath(name_or_path)
        else:
            path = hub.resolve_file(name_or_path, hub.CONFIG_NAME, **hub_kwargs)
        if path is None:
            raise hub.CheckpointNotFoundError(f"{os.fspath(name_or_path)!r} has no {hub.CONFIG_NAME}")
        return cls.from_dict(cls._read_json_file(path), **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SqueezeBertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


HUB_KWARGS = ("revision", "cache_dir", "local_files_only", "token", "subfolder")

# The common fields that to_diff_dict leaves out when they hold these defaults.
_COMMON_DEFAULTS: dict[str, Any] = {
    "output_attentions": False,
    "output_hidden_states": False,
    "return_dict": True,
    "problem_type": None,
    "architectures": None,
    "dtype": None,
    "chunk_size_feed_forward": 0,
    "bos_token_id": None,
    "eos_token_id": None,
    "id2label": {"0": "LABEL_0", "1": "LABEL_1"},
    "label2id": {"LABEL_0": 0, "LABEL_1": 1},
}


def _dtype_name(dtype: Any) -> str | None:
    """'float16' for torch.float16 or 'float16'; None stays None."""
    if dtype is None:
        return None
    return str(dtype).removeprefix("torch.")
