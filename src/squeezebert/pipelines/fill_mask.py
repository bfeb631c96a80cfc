"""``fill-mask``: the most likely tokens for each ``[MASK]`` of a text."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..modeling import SqueezeBertForMaskedLM
from .base import Pipeline, Row, check_text, check_tokenizer_kwargs, check_top_k

logger = logging.getLogger("squeezebert")


class FillMaskPipeline(Pipeline):
    """Predict the tokens hidden behind ``[MASK]``.

    Call parameters:
        top_k: how many candidates per mask (default 5).
        targets: only score these words (a string or a list); a word that is not one token is replaced by its
            first token.
        tokenizer_kwargs: more keyword arguments for the tokenizer (``truncation``, ``max_length``...); texts are
            truncated to the model window unless they say otherwise.

    Each result is a list of ``{"score", "token", "token_str", "sequence"}`` (best first), ``sequence`` being the
    text with that candidate in place of the mask; a text with several masks gives one such list per mask (and
    the other masks are kept, as ``[MASK]``, in each ``sequence``).
    """

    task = "fill-mask"
    model_class = SqueezeBertForMaskedLM
    params = ("top_k", "targets", "tokenizer_kwargs")

    def prepare(self, params: dict[str, Any]) -> dict[str, Any]:
        top_k = check_top_k(params.get("top_k", 5))
        target_ids = None
        if params.get("targets") is not None:
            target_ids = self._target_ids(params["targets"])
            top_k = min(top_k, len(target_ids))
        tokenizer_kwargs = check_tokenizer_kwargs(params.get("tokenizer_kwargs"), "tokenizer_kwargs")
        return {"top_k": top_k, "target_ids": target_ids, "tokenizer_kwargs": tokenizer_kwargs}

    def _target_ids(self, targets: str | list[str]) -> torch.Tensor:
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(targets, (list, tuple)) or not all(isinstance(t, str) for t in targets):
            raise TypeError("targets must be a string or a list of strings")
        vocab = self.tokenizer.get_vocab()
        ids = []
        for target in targets:
            if target in vocab:
                ids.append(vocab[target])
                continue
            pieces = self.tokenizer(target, add_special_tokens=False)["input_ids"]
            if not pieces:
                logger.warning("fill-mask: target %r has no token in the vocabulary; it is ignored", target)
                continue
            logger.warning(
                "fill-mask: target %r is not one token of the vocabulary; using its first token %r",
                target,
                self.tokenizer.convert_ids_to_tokens(pieces[0]),
            )
            ids.append(pieces[0])
        if not ids:
            raise ValueError(f"none of the targets {targets!r} maps to a token of the vocabulary")
        return torch.tensor(ids)

    def preprocess(self, item: Any, params: dict[str, Any]) -> list[Row]:
        text = check_text(item, "fill-mask input")
        row = self.encode_row(text, **params["tokenizer_kwargs"])
        if self.tokenizer.mask_token_id not in row["input_ids"]:
            where = "" if self.tokenizer.mask_token in text else " (put it where a word should be predicted)"
            raise ValueError(f"fill-mask input has no {self.tokenizer.mask_token} token{where}: {text!r}")
        return [row]

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        logits = self.runner(inputs)["logits"]
        is_mask = inputs["input_ids"] == self.tokenizer.mask_token_id
        most = int(is_mask.sum(1).max())
        # the probabilities at each row's mask positions, in order; rows with fewer masks are padded
        probs = logits.new_zeros(logits.shape[0], most, logits.shape[-1])
        for n in range(logits.shape[0]):
            at = is_mask[n].nonzero().squeeze(-1)
            probs[n, : len(at)] = logits[n, at].softmax(-1)
        return {"probs": probs}

    def postprocess(self, item: Any, rows: list[Row], outputs: list[dict], params: dict[str, Any]) -> Any:
        ids = rows[0]["input_ids"]
        mask_id = self.tokenizer.mask_token_id
        positions = [i for i, token in enumerate(ids) if token == mask_id]
        probs = outputs[0]["probs"][: len(positions)]
        target_ids = params["target_ids"]
        if target_ids is not None:
            probs = probs[:, target_ids]
        scores, candidates = probs.topk(params["top_k"], dim=-1)
        single = len(positions) == 1
        per_mask = []
        for position, mask_scores, mask_candidates in zip(positions, scores.tolist(), candidates.tolist(), strict=True):
            predictions = []
            for score, candidate in zip(mask_scores, mask_candidates, strict=True):
                token = int(target_ids[candidate]) if target_ids is not None else candidate
                filled = list(ids)
                filled[position] = token
                predictions.append(
                    {
                        "score": score,
                        "token": token,
                        "token_str": self.tokenizer.decode([token]),
                        "sequence": self.tokenizer.decode(filled, skip_special_tokens=single),
                    }
                )
            per_mask.append(predictions)
        return per_mask[0] if single else per_mask
