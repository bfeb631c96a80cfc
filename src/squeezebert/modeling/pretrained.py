"""SqueezeBertPreTrainedModel: weight initialisation, checkpoint loading and saving, embedding resizing."""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import hub
from ..config import HUB_KWARGS, SqueezeBertConfig
from .layers import GroupedConv1x1, SqueezeBertLMPredictionHead, _positive_int, deferred_init

logger = logging.getLogger("squeezebert")

# Buffers that old checkpoints saved but that are rebuilt from the config.
_REBUILT_KEYS = ("embeddings.position_ids",)


class SqueezeBertPreTrainedModel(nn.Module):
    """Base class of every SqueezeBERT model: ``from_pretrained`` / ``save_pretrained`` in Hugging Face's format.

    Head models keep the encoder under ``transformer`` (``base_model_prefix``), so a base-model checkpoint loads into
    a head model and a head checkpoint into the base model.
    """

    config_class = SqueezeBertConfig
    base_model_prefix = "transformer"
    main_input_name = "input_ids"
    # State-dict keys that alias another parameter (tied weights): saved once, under the key they map to.
    tied_keys: dict[str, str] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Build every model with :func:`~squeezebert.modeling.layers.deferred_init`: ``post_init`` initialises
        each projection, so their own ``reset_parameters`` would only waste time and random numbers."""
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            cls.__init__ = _with_deferred_init(cls.__dict__["__init__"])

    def __init__(self, config: SqueezeBertConfig) -> None:
        if not isinstance(config, SqueezeBertConfig):
            raise TypeError(f"config must be a SqueezeBertConfig, got {type(config).__name__}")
        super().__init__()
        self.config = config
        self.name_or_path = config.name_or_path  # the folder or repo id from_pretrained read ("" otherwise)

    @classmethod
    def _from_config(cls, config: SqueezeBertConfig, **kwargs: Any) -> Any:
        """Build a model from ``config`` with freshly initialised weights, its parameters created in ``dtype``.

        ``dtype`` (or the 4.x ``torch_dtype``; ``dtype`` wins) defaults to ``config.dtype``; ``None`` is torch's
        default dtype. As in ``transformers``, ``config.dtype`` is set to the dtype used (the given config object is
        changed). Other keyword arguments go to the model's constructor.
        """
        torch_dtype = kwargs.pop("torch_dtype", None)
        dtype = kwargs.pop("dtype", None)
        dtype = dtype if dtype is not None else torch_dtype if torch_dtype is not None else config.dtype
        if dtype is None:
            return cls(config, **kwargs)
        dtype = _resolve_dtype(dtype, {})
        config.dtype = dtype
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            return cls(config, **kwargs)
        finally:
            torch.set_default_dtype(previous)

    # ------------------------------------------------------------------------------------------------------------
    # Initialisation and weight tying

    def post_init(self) -> None:
        """Initialise every weight as the reference does, then tie the weights that are shared."""
        self.init_weights()

    def init_weights(self) -> None:
        """Initialise the modules not initialised yet (e.g. a head swapped in after construction), then tie the
        shared weights. Modules initialised before (by construction or an earlier call) keep their weights."""
        for module in self.modules():
            if not getattr(module, "_is_initialized", False):
                self._init_weights(module)
                module._is_initialized = True
        self.tie_weights()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, GroupedConv1x1)):
            module.weight.normal_(0.0, std)
            if module.bias is not None:
                module.bias.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.normal_(0.0, std)
            if module.padding_idx is not None:
                module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.weight.fill_(1.0)
            module.bias.zero_()
        elif isinstance(module, SqueezeBertLMPredictionHead):
            module.bias.zero_()

    def tie_weights(self) -> None:
        """Make shared parameters the same tensors again (after loading or resizing); a no-op without a decoder."""

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix, self)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = embeddings
        self.tie_weights()

    def get_output_embeddings(self) -> nn.Linear | None:
        """The MLM decoder (tied to the input embeddings), or ``None`` for models without one."""
        return None

    def set_output_embeddings(self, new_embeddings: nn.Module) -> None:
        """Put ``new_embeddings`` in place of the MLM decoder; the prediction bias becomes its bias, as in
        ``transformers``. The weights stay untied until :meth:`tie_weights` (called by loading and resizing)."""
        current = self.get_output_embeddings()
        if current is None:
            raise AttributeError(f"{type(self).__name__} has no output embeddings to replace")
        path = next(name for name, module in self.named_modules() if module is current)
        parent_name, _, attribute = path.rpartition(".")
        parent = self.get_submodule(parent_name)
        for name, parameter in parent.named_parameters(recurse=False):
            if parameter is current.bias:  # the bias tied to the decoder's follows the new one
                setattr(parent, name, new_embeddings.bias)
        setattr(parent, attribute, new_embeddings)

    def enable_input_require_grads(self) -> None:
        """Make the input embeddings' output require gradients, so that gradients reach the inputs of frozen
        layers (adapters, gradient checkpointing); :meth:`disable_input_require_grads` undoes it."""
        self.disable_input_require_grads()
        hook = self.get_input_embeddings().register_forward_hook(_make_output_require_grad)
        self._require_grads_hooks = [hook]
        self._require_grads_hook = hook  # the 4.x attribute

    def disable_input_require_grads(self) -> None:
        """Remove the hook :meth:`enable_input_require_grads` added (a no-op without one)."""
        for hook in getattr(self, "_require_grads_hooks", ()):
            hook.remove()
        self._require_grads_hooks = []
        self.__dict__.pop("_require_grads_hook", None)

    def get_memory_footprint(self, return_buffers: bool = True) -> int:
        """Bytes held by the (distinct) parameters, plus the buffers unless ``return_buffers`` is False."""
        tensors = [*self.parameters(), *(self.buffers() if return_buffers else ())]
        return sum(t.nelement() * t.element_size() for t in tensors)

    def warn_if_padding_and_no_attention_mask(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> None:
        """Warn (once per process) when ``input_ids`` may be padded, i.e. the first or last column holds
        ``config.pad_token_id``, and no ``attention_mask`` was given; the padding would then be attended to."""
        pad = self.config.pad_token_id
        if attention_mask is not None or pad is None or torch.jit.is_tracing() or torch.compiler.is_compiling():
            return
        if not bool((input_ids[:, [0, -1]] == pad).any()):
            return
        message = (
            "input_ids may be padded (pad_token_id appears in the first or last column) and no attention_mask was "
            "given: padding tokens are attended to; pass the tokenizer's attention_mask."
        )
        shared = [
            f"{name} ({i})"
            for name in ("bos_token_id", "eos_token_id", "sep_token_id")
            if (i := getattr(self.config, name, None)) == pad
        ]
        if shared:
            message += f" Ignore this if the input is not padded: pad_token_id is also the {', '.join(shared)}."
        _warn_once(message)

    # ------------------------------------------------------------------------------------------------------------
    # Mask helpers of transformers 4.x (gone from 5.x), for code written against them. SqueezeBERT is an encoder:
    # no causal mask is ever added.

    def get_extended_attention_mask(
        self,
        attention_mask: torch.Tensor,
        input_shape: tuple[int, ...],
        device: torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> torch.Tensor:
        """A ``[batch, seq]`` (or ``[batch, from_seq, to_seq]``) mask of 1 (attend) / 0 (ignore) as the additive
        mask attention scores take: ``(1 - mask) * finfo(dtype).min``, shaped ``[batch, 1, 1, seq]`` (or
        ``[batch, 1, from_seq, to_seq]``), in ``dtype`` (the model's by default). ``input_shape`` is only named in
        errors and ``device`` is unused (the 4.x signature)."""
        return _additive_mask(attention_mask, self.dtype if dtype is None else dtype, f"input shape {input_shape}")

    def invert_attention_mask(self, encoder_attention_mask: torch.Tensor) -> torch.Tensor:
        """:meth:`get_extended_attention_mask` of ``encoder_attention_mask`` in the model's dtype."""
        return _additive_mask(encoder_attention_mask, self.dtype, "encoder_attention_mask")

    def get_head_mask(
        self, head_mask: torch.Tensor | None, num_hidden_layers: int, is_attention_chunked: bool = False
    ) -> torch.Tensor | list[None]:
        """A ``(heads,)`` or ``(layers, heads)`` head mask as the 5-d ``[layers, 1, heads, 1, 1]`` tensor of 4.x, in
        the model's dtype (``is_attention_chunked`` adds a last dimension); ``None`` gives ``[None] * layers``."""
        if head_mask is None:
            return [None] * num_hidden_layers
        if head_mask.dim() == 1:
            head_mask = head_mask[None, None, :, None, None].expand(num_hidden_layers, -1, -1, -1, -1)
        elif head_mask.dim() == 2:
            head_mask = head_mask[:, None, :, None, None]
        elif head_mask.dim() != 5:
            raise ValueError(f"head_mask must have 1, 2 or 5 dimensions, got shape {tuple(head_mask.shape)}")
        head_mask = head_mask.to(self.dtype)
        return head_mask.unsqueeze(-1) if is_attention_chunked else head_mask

    @classmethod
    def can_generate(cls) -> bool:
        """Always ``False``: SqueezeBERT models do not generate text."""
        return False

    def resize_token_embeddings(
        self,
        new_num_tokens: int | None = None,
        pad_to_multiple_of: int | None = None,
        mean_resizing: bool = True,
    ) -> nn.Embedding:
        """Grow or shrink the vocabulary to ``new_num_tokens`` rows; returns the input embedding module.

        Args:
            new_num_tokens: the new vocabulary size (``None``: keep it, e.g. to only apply ``pad_to_multiple_of``).
            pad_to_multiple_of: round the size up to a multiple of this (e.g. 64, for faster matmuls on GPUs).
            mean_resizing: draw the new rows from a multivariate normal with the old rows' mean and covariance
                (new tokens then start close to the distribution of the known ones); ``False`` draws them from
                ``N(0, config.initializer_range**2)``.

        Existing rows are kept, a tied MLM decoder follows (its bias keeps the old entries, zeros after), and
        ``config.vocab_size`` is updated. The module stays the same object; its weight is a new parameter.
        """
        embedding = self.get_input_embeddings()
        if new_num_tokens is None and pad_to_multiple_of is None:
            return embedding
        if new_num_tokens is None:
            new_num_tokens = embedding.num_embeddings
        _positive_int("new_num_tokens", new_num_tokens)
        if pad_to_multiple_of is not None:
            _positive_int("pad_to_multiple_of", pad_to_multiple_of)
            new_num_tokens = -(-new_num_tokens // pad_to_multiple_of) * pad_to_multiple_of
        pad = self.config.pad_token_id
        if pad is not None and pad >= new_num_tokens:
            raise ValueError(f"new_num_tokens ({new_num_tokens}) must be greater than pad_token_id ({pad})")
        if new_num_tokens != embedding.num_embeddings:
            old = embedding.weight.detach()
            keep = min(new_num_tokens, old.shape[0])
            added = new_num_tokens - keep
            if mean_resizing:
                new_rows = _sample_like_rows(old, added)
            else:
                new_rows = old.new_empty(added, old.shape[1]).normal_(0.0, self.config.initializer_range)
            weight = torch.cat([old[:keep], new_rows.to(old.dtype)])
            embedding.weight = nn.Parameter(weight, requires_grad=embedding.weight.requires_grad)
            embedding.num_embeddings = new_num_tokens
            self.config.vocab_size = new_num_tokens
            self.set_input_embeddings(embedding)
        return embedding

    def num_parameters(self, only_trainable: bool = False, exclude_embeddings: bool = False) -> int:
        """Number of (distinct) parameters."""
        embeddings = {id(m.weight) for m in self.modules() if isinstance(m, nn.Embedding)}
        return sum(
            p.numel()
            for p in self.parameters()
            if (p.requires_grad or not only_trainable) and not (exclude_embeddings and id(p) in embeddings)
        )

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ------------------------------------------------------------------------------------------------------------
    # Saving

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        safe_serialization: bool = True,
        *,
        is_main_process: bool = True,
        state_dict: dict[str, torch.Tensor] | None = None,
    ) -> None:
        """Write ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``) into ``save_directory``.

        Args:
            save_directory: the folder (created if needed).
            safe_serialization: safetensors (default) or a torch ``.bin``.
            is_main_process: ``False`` writes nothing (in distributed training only the main process saves).
            state_dict: save these tensors instead of the model's own (e.g. gathered from several processes).

        Tied weights are stored once. Each file is written to a temporary name and renamed into place, so an
        interrupted save leaves the previous files intact.
        """
        if os.path.isfile(save_directory):
            raise ValueError(f"save_directory {os.fspath(save_directory)!r} is a file, not a folder")
        if not is_main_process:
            return
        os.makedirs(save_directory, exist_ok=True)
        state = self.state_dict() if state_dict is None else state_dict
        state = {k: v for k, v in state.items() if k not in self.tied_keys}
        name, stale = (
            (hub.SAFE_WEIGHTS_NAME, hub.WEIGHTS_NAME)
            if safe_serialization
            else (
                hub.WEIGHTS_NAME,
                hub.SAFE_WEIGHTS_NAME,
            )
        )
        hub.save_state_dict(state, os.path.join(save_directory, name), safe=safe_serialization)
        for leftover in (stale, hub.SAFE_WEIGHTS_INDEX_NAME, hub.WEIGHTS_INDEX_NAME):
            path = os.path.join(save_directory, leftover)
            if os.path.isfile(path):  # an older save in the other format would otherwise shadow this one
                os.remove(path)
        self.config.architectures = [type(self).__name__]
        self.config.dtype = self.dtype
        self.config.save_pretrained(save_directory)

    # ------------------------------------------------------------------------------------------------------------
    # Loading

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike | None,
        *,
        config: SqueezeBertConfig | None = None,
        state_dict: dict[str, torch.Tensor] | None = None,
        torch_dtype: torch.dtype | str | None = None,
        output_loading_info: bool = False,
        ignore_mismatched_sizes: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Load a model from a folder or a hub repo id (``"squeezebert/squeezebert-uncased"``).

        Args:
            pretrained_model_name_or_path: a folder holding ``config.json`` and weights, or a hub repo id; ``None``
                when both ``config`` and ``state_dict`` are given.
            config: use this config instead of the checkpoint's ``config.json``.
            state_dict: load these tensors instead of the checkpoint's weight files.
            torch_dtype: dtype of the returned model (``torch.float32`` by default whatever the stored dtype;
                ``"auto"`` keeps the stored dtype). ``dtype`` is accepted as the 5.x spelling.
            output_loading_info: also return ``{"missing_keys", "unexpected_keys", "mismatched_keys"}`` (sets;
                a mismatched key is ``(key, stored shape, model shape)``) and ``"error_msgs"`` (a list).
            ignore_mismatched_sizes: re-initialise weights whose stored shape differs (e.g. a new classifier)
                instead of raising.
            **kwargs: hub options (``revision``, ``cache_dir``, ``local_files_only``, ``token``, ``subfolder``),
                ``device_map`` (one device: the model is moved there), ``low_cpu_mem_usage`` (accepted, no effect)
                and config overrides (``num_labels=3``, ``output_hidden_states=True``, ...). Hugging Face's other
                loading options (``variant``, ``quantization_config``, offloading, ...) are a ValueError, not a
                config field.

        The model is returned in eval mode. Inside ``with torch.device("meta"):`` it is still built and loaded on
        the CPU: a model on the meta device holds no weights to load into.
        """
        torch_dtype = kwargs.pop("dtype", torch_dtype)
        device = _device_from_loading_options(kwargs)
        hub_kwargs = {k: kwargs.pop(k) for k in HUB_KWARGS if k in kwargs}
        if pretrained_model_name_or_path is None and (config is None or state_dict is None):
            raise ValueError("pretrained_model_name_or_path may be None only when both config and state_dict are given")
        if config is None:
            config = SqueezeBertConfig.from_pretrained(pretrained_model_name_or_path, **hub_kwargs, **kwargs)
        elif kwargs:
            config = SqueezeBertConfig.from_dict(config.to_dict(), **kwargs)
        else:
            config = copy.deepcopy(config)  # the caller's config is left as it is
        if pretrained_model_name_or_path is not None:
            config.name_or_path = pretrained_model_name_or_path
        if state_dict is None:
            state_dict = hub.load_state_dict(pretrained_model_name_or_path, **hub_kwargs)
        elif not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
            raise TypeError("state_dict must be a dict of parameter names to tensors")
        dtype = _resolve_dtype(torch_dtype, state_dict)

        with _real_device():
            model = cls(config)
            info = model._load_checkpoint(state_dict, ignore_mismatched_sizes)
            model.to(dtype)
        if device is not None:
            model.to(device)
        model.eval()
        return (model, info) if output_loading_info else model

    def _load_checkpoint(self, state: dict[str, torch.Tensor], ignore_mismatched_sizes: bool) -> dict[str, Any]:
        """Copy ``state`` into the model; return the missing, unexpected and mismatched keys (as
        ``from_pretrained``'s ``output_loading_info`` describes)."""
        state = {modern_weight_name(k): v for k, v in state.items()}
        prefix = self.base_model_prefix + "."
        is_head = self.base_model is not self
        if is_head and not any(k.startswith(prefix) for k in state):
            state = {prefix + k: v for k, v in state.items()}  # base-model checkpoint into a head model
        elif not is_head:
            state = {k.removeprefix(prefix): v for k, v in state.items()}  # head checkpoint into the base model
        for alias, source in self.tied_keys.items():
            if alias in state:
                state.setdefault(source, state.pop(alias))
        rebuilt = {(prefix if is_head else "") + k for k in _REBUILT_KEYS}

        own = self.state_dict()
        expected = set(own) - set(self.tied_keys)
        to_load: dict[str, torch.Tensor] = {}
        unexpected: set[str] = set()
        mismatched: set[tuple[str, torch.Size, torch.Size]] = set()
        for key, value in state.items():
            if key in rebuilt:
                continue
            if key not in expected:
                unexpected.add(key)
            elif value.shape != own[key].shape:
                if not ignore_mismatched_sizes:
                    raise ValueError(
                        f"checkpoint weight {key!r} has shape {tuple(value.shape)} but the model expects "
                        f"{tuple(own[key].shape)}; pass ignore_mismatched_sizes=True to re-initialise it"
                    )
                mismatched.add((key, value.shape, own[key].shape))
            else:
                to_load[key] = value
        missing = expected - set(to_load) - {m[0] for m in mismatched}
        self.load_state_dict(to_load, strict=False)
        self.tie_weights()

        name = type(self).__name__
        if missing:
            logger.warning("%s: weights not in the checkpoint, newly initialised: %s", name, ", ".join(sorted(missing)))
        if unexpected:
            logger.warning("%s: checkpoint weights not used: %s", name, ", ".join(sorted(unexpected)))
        for key, stored, wanted in sorted(mismatched):
            logger.warning(
                "%s: %s has shape %s in the checkpoint, %s in the model: re-initialised",
                name,
                key,
                tuple(stored),
                tuple(wanted),
            )
        return {"missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": mismatched, "error_msgs": []}


def _make_output_require_grad(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
    output.requires_grad_(True)


@functools.cache
def _warn_once(message: str) -> None:
    logger.warning(message)


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype, what: str) -> torch.Tensor:
    """``(1 - mask) * finfo(dtype).min`` with a head dimension (and a query one for a 2-d mask) added."""
    if mask.dim() == 2:
        mask = mask[:, None, None, :]
    elif mask.dim() == 3:
        mask = mask[:, None, :, :]
    else:
        raise ValueError(f"attention mask must have 2 or 3 dimensions, got shape {tuple(mask.shape)} ({what})")
    return (1.0 - mask.to(dtype)) * torch.finfo(dtype).min


# Hugging Face loading options that squeezebert does not implement, and why.
_UNSUPPORTED_LOADING_OPTIONS = {
    "variant": "there are no variant weight files (model.<variant>.safetensors)",
    "quantization_config": "quantize after loading with squeezebert.quantize_dynamic",
    "max_memory": "a model is loaded on one device",
    "offload_folder": "a model is loaded on one device",
    "offload_state_dict": "a model is loaded on one device",
    "tp_plan": "tensor parallelism is not supported",
    "attn_implementation": "the engine picks the attention path itself",
}


def _device_from_loading_options(kwargs: dict[str, Any]) -> torch.device | None:
    """Take Hugging Face's loading options out of ``kwargs`` (so they never become config fields); return the
    device ``device_map`` names, if any."""
    from ..devices import resolve_device

    for name, why in _UNSUPPORTED_LOADING_OPTIONS.items():
        if kwargs.get(name) is not None:
            raise ValueError(f"from_pretrained does not support {name}=: {why}")
        kwargs.pop(name, None)
    kwargs.pop("low_cpu_mem_usage", None)  # loading already holds one copy of the weights at a time
    device_map = kwargs.pop("device_map", None)
    if device_map is None:
        return None
    if isinstance(device_map, dict) or device_map in ("auto", "balanced", "balanced_low_0", "sequential"):
        raise ValueError(f"device_map={device_map!r}: a model is loaded on one device; pass that device")
    return resolve_device(device_map)


def _real_device() -> contextlib.AbstractContextManager:
    """A context that builds on the CPU when the ambient default device is ``meta`` (a no-op otherwise)."""
    on_meta = torch.empty(0).device.type == "meta"
    return torch.device("cpu") if on_meta else contextlib.nullcontext()


def _sample_like_rows(rows: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` float32 rows drawn from the multivariate normal with the mean and covariance (``1/N`` normalised) of
    the ``N`` ``rows``.

    ``mean + w @ (rows - mean) / sqrt(N)`` with ``w ~ N(0, I_N)`` has exactly that covariance and needs no
    factorisation, so a singular covariance (fewer rows than columns, a zero padding row) is fine.
    """
    x = rows.float()
    mean = x.mean(dim=0)
    w = torch.randn(n, x.shape[0], device=x.device)
    return mean + (w @ (x - mean)) / math.sqrt(x.shape[0])


def _with_deferred_init(init: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(init)
    def build(self: nn.Module, *args: Any, **kwargs: Any) -> None:
        with deferred_init():
            init(self, *args, **kwargs)

    return build


def modern_weight_name(key: str) -> str:
    """Old TensorFlow-style LayerNorm names (``gamma``/``beta``) as PyTorch's (``weight``/``bias``)."""
    if key.endswith(".gamma"):
        return key[: -len("gamma")] + "weight"
    if key.endswith(".beta"):
        return key[: -len("beta")] + "bias"
    return key


def _resolve_dtype(torch_dtype: torch.dtype | str | None, state: dict[str, torch.Tensor]) -> torch.dtype:
    if torch_dtype is None:
        return torch.float32
    if torch_dtype == "auto":
        stored = [t.dtype for t in state.values() if t.is_floating_point()]
        return stored[0] if stored else torch.float32
    if isinstance(torch_dtype, str):
        dtype = getattr(torch, torch_dtype.removeprefix("torch."), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"torch_dtype {torch_dtype!r} is not a torch dtype")
        torch_dtype = dtype
    if not isinstance(torch_dtype, torch.dtype) or not torch_dtype.is_floating_point:
        raise ValueError(f"torch_dtype must be a floating-point torch dtype, got {torch_dtype!r}")
    return torch_dtype
