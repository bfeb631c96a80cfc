"""``AutoTokenizer``: the fast tokenizer when one can be built from the files, the slow one otherwise."""

from __future__ import annotations

import os
from typing import Any

from .base import TokenizerBase, find_tokenizer_files
from .fast import SqueezeBertTokenizerFast
from .slow import SqueezeBertTokenizer


class AutoTokenizer:
    """Loads the right SqueezeBERT tokenizer for a folder or hub repo id."""

    def __init__(self) -> None:
        raise TypeError("use AutoTokenizer.from_pretrained(name_or_path)")

    @staticmethod
    def from_pretrained(
        name_or_path: str | os.PathLike,
        *,
        use_fast: bool = True,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **kwargs: Any,
    ) -> TokenizerBase:
        """:class:`SqueezeBertTokenizerFast` when it can be built, else :class:`SqueezeBertTokenizer`.

        The fast tokenizer needs tokenizer.json, or vocab.txt and options its pipeline can express (the slow
        tokenizer's ``do_basic_tokenize=False`` and ``never_split`` cannot be). ``use_fast=False`` asks for the slow
        one. ``kwargs`` override the options of tokenizer_config.json.
        """
        files = find_tokenizer_files(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        options = {**files["config"], **kwargs}
        slow_only = options.get("do_basic_tokenize") is False or bool(options.get("never_split"))
        if use_fast and (files["tokenizer_file"] is not None or (files["vocab_file"] is not None and not slow_only)):
            kwargs = {key: value for key, value in kwargs.items() if key not in ("do_basic_tokenize", "never_split")}
            return SqueezeBertTokenizerFast._from_files(name_or_path, files, kwargs)
        return SqueezeBertTokenizer._from_files(name_or_path, files, kwargs)
