"""Finding checkpoint files (local folders or Hugging Face hub ids), loading them safely, saving atomically.

Everything that touches the file system for configs, tokenizers and weights goes through here:

- :func:`resolve_file` turns ``(name_or_path, filename)`` into a local path. A folder is read directly; any other
  name is a hub repo id resolved with ``huggingface_hub`` (standard cache, ``HF_HOME`` / ``HF_HUB_CACHE`` /
  ``HF_HUB_OFFLINE`` read at call time, so they can be changed after import).
- :func:`load_state_dict` reads ``model.safetensors`` first, then ``pytorch_model.bin`` with
  ``torch.load(weights_only=True)`` (never unpickling arbitrary objects), and sharded checkpoints via their index;
  a file that cannot be parsed is a :class:`DamagedCheckpointError` (an ``OSError``) naming it.
- :func:`atomic_write` writes a file next to its destination and renames it into place, so an interrupted save
  never leaves a half-written file where a good one was.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported lazily so the tokenizers can use this module without it
    import torch

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"

_TRUE_VALUES = {"1", "on", "yes", "true"}


class DamagedCheckpointError(OSError):
    """A weight file exists but cannot be parsed (truncated download, interrupted copy, not a checkpoint).

    The message names the file, says what the reader reported and how to fix it.
    """


class CheckpointNotFoundError(OSError):
    """A model or tokenizer could not be found locally, in the cache, or on the hub.

    The message always says what was looked for and how to fix it.
    """


def _hub_cache_dir() -> str:
    """The hub cache folder, honouring HF_HUB_CACHE and HF_HOME as they are set right now."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return os.path.join(os.path.expanduser("~"), ".cache", "huggingface", "hub")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE_VALUES


_reachability: dict[str, tuple[float, bool]] = {}


def _hub_reachable(timeout: float = 2.0) -> bool:
    """Whether the hub's host accepts a TCP connection (remembered for a minute).

    Without this probe, huggingface_hub retries an unreachable hub for about 25 seconds on every file, even when
    the file is in the cache.
    """
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    url = urllib.parse.urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)
    seen = _reachability.get(endpoint)
    if seen is not None and time.monotonic() - seen[0] < 60:
        return seen[1]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            reachable = True
    except OSError:
        reachable = False
    _reachability[endpoint] = (time.monotonic(), reachable)
    return reachable


def _repo_in_cache(repo_id: str, cache_dir: str) -> bool:
    folder = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    return (folder / "snapshots").is_dir()


def _looks_like_local_path(name: str) -> bool:
    return name.startswith((".", "/", "~", "\\")) or name.count("/") > 1


def resolve_file(
    name_or_path: str | os.PathLike,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    subfolder: str = "",
) -> str | None:
    """Return the local path of ``filename`` in a folder or hub repo, or ``None`` if the repo lacks that file.

    Raises :class:`CheckpointNotFoundError` when the folder or repo itself cannot be found (not a folder, not in
    the cache, and the hub is unreachable or offline), with a message that says how to fix it.
    """
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        path = os.path.join(name, subfolder, filename)
        return path if os.path.isfile(path) else None
    if _looks_like_local_path(name) or not name:
        raise CheckpointNotFoundError(f"{name!r} is not an existing folder (and not a hub repo id like 'org/name')")

    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    cache = os.fspath(cache_dir) if cache_dir is not None else _hub_cache_dir()
    offline = local_files_only or _offline() or not _hub_reachable()
    try:
        return hf_hub_download(
            name,
            filename,
            subfolder=subfolder or None,
            revision=revision,
            cache_dir=cache,
            token=token,
            local_files_only=offline,
        )
    except LocalEntryNotFoundError as err:
        if _repo_in_cache(name, cache):
            return None  # the repo is cached, only this (optional) file is not
        how = "HF_HUB_OFFLINE=1 is set" if _offline() else "the hub could not be reached"
        if local_files_only:
            how = "local_files_only=True"
        raise CheckpointNotFoundError(
            f"{name!r} is not a local folder and is not in the Hugging Face cache ({cache}), and {how}. "
            f"Download it once with network access (e.g. `hf download {name}`), or pass the path of a folder "
            "that holds its files."
        ) from err
    except EntryNotFoundError:
        return None
    except GatedRepoError as err:
        raise CheckpointNotFoundError(f"{name!r} is gated on the hub: log in or pass token=...") from err
    except RevisionNotFoundError as err:
        raise CheckpointNotFoundError(f"revision {revision!r} of {name!r} does not exist on the hub") from err
    except RepositoryNotFoundError as err:
        raise CheckpointNotFoundError(
            f"{name!r} is neither a local folder nor a repo on the Hugging Face hub (or it is private: pass token=...)"
        ) from err
    except HFValidationError as err:
        raise CheckpointNotFoundError(f"{name!r} is neither a local folder nor a valid hub repo id") from err


def parse_json_object(text: str, where: str) -> dict[str, Any]:
    """Parse ``text`` as one JSON object; anything else is a ValueError that starts with ``where``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        position = f"line {err.lineno}, column {err.colno}" if "\n" in text.strip() else f"column {err.colno}"
        raise ValueError(f"{where}: malformed JSON ({err.msg} at {position})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def read_json(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON object from ``path``; a malformed (or not UTF-8) file is a ValueError naming it."""
    with open(path, encoding="utf-8") as f:
        try:
            text = f.read()
        except UnicodeDecodeError as err:
            raise ValueError(f"{os.fspath(path)}: not a JSON file (not UTF-8 text: {err.reason})") from None
    return parse_json_object(text, os.fspath(path))


# ----------------------------------------------------------------------------------------------------------------
# Loading weights


# Errors about reaching a file rather than parsing it: the OS's message says it best.
_NOT_DAMAGE = (FileNotFoundError, PermissionError, IsADirectoryError)


def _damaged(path: str, reader: str, err: Exception) -> DamagedCheckpointError:
    """The error for ``path``, with the first sentence of what ``reader`` reported."""
    text = str(err)
    text = text.partition("WeightsUnpickler error:")[2] or text  # past torch's note on weights_only
    first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    reason = first_line.split(". ")[0].removesuffix(".")[:300] or type(err).__name__
    return DamagedCheckpointError(f"{path} is damaged or truncated ({reader}: {reason}): re-download or re-save it")


def _load_weight_file(path: str) -> dict[str, torch.Tensor]:
    """The tensors of one weight file; a file that cannot be parsed is a :class:`DamagedCheckpointError`."""
    import torch

    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            return load_file(path, device="cpu")
        except _NOT_DAMAGE:
            raise
        except Exception as err:  # safetensors raises its own SafetensorError for a bad header or size
            raise _damaged(path, "safetensors", err) from err
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except _NOT_DAMAGE:
        raise
    except Exception as err:  # a truncated zip can also be an OSError (EINVAL)
        if isinstance(err, pickle.UnpicklingError) and ("GLOBAL" in str(err) or "add_safe_globals" in str(err)):
            # the weights-only unpickler refuses anything but tensors and plain containers
            raise ValueError(
                f"{path} could not be loaded with torch.load(weights_only=True) (it may hold arbitrary pickled "
                f"objects, which squeezebert never unpickles): {err}"
            ) from err
        raise _damaged(path, "torch.load", err) from err
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    return state


def load_state_dict(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> dict[str, torch.Tensor]:
    """Load every tensor of a checkpoint: safetensors first, then a legacy ``.bin``, single file or sharded."""
    for single, index in ((SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME), (WEIGHTS_NAME, WEIGHTS_INDEX_NAME)):
        path = resolve_file(name_or_path, single, **hub_kwargs)
        if path is not None:
            return _load_weight_file(path)
        index_path = resolve_file(name_or_path, index, **hub_kwargs)
        if index_path is not None:
            weight_map = read_json(index_path).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{index_path} has no 'weight_map'")
            state: dict[str, torch.Tensor] = {}
            for shard in sorted(set(weight_map.values())):
                shard_path = resolve_file(name_or_path, shard, **hub_kwargs)
                if shard_path is None:
                    raise CheckpointNotFoundError(f"shard {shard!r} listed in {index_path} is missing")
                state.update(_load_weight_file(shard_path))
            return state
    raise CheckpointNotFoundError(
        f"{os.fspath(name_or_path)!r} has no weights: looked for {SAFE_WEIGHTS_NAME}, {SAFE_WEIGHTS_INDEX_NAME}, "
        f"{WEIGHTS_NAME} and {WEIGHTS_INDEX_NAME}"
    )


# ----------------------------------------------------------------------------------------------------------------
# Saving


def current_umask() -> int:
    """The process's umask, read without changing it where the OS allows (``Umask:`` in /proc/self/status).

    The fallback sets and restores it, which another thread creating a file at that instant could notice.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def staging_dir(target: str | os.PathLike) -> Path:
    """A new hidden folder beside ``target`` in which to assemble files before renaming them into place.

    Its mode is ``0o777 & ~umask``, as ``os.mkdir`` would give (``tempfile.mkdtemp`` gives 0700, which would hide
    the renamed folder from the other users of a shared one). The caller removes it on failure.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
    except OSError as err:
        raise OSError(
            f"cannot write {os.fspath(target)}: {os.fspath(target.parent)} is not a writable folder ({err.strerror})"
        ) from None
    os.chmod(staging, 0o777 & ~current_umask())
    return staging


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    The file gets the permissions a plain ``open()`` would create it with (``0o666 & ~umask``), not the owner-only
    ones of :func:`tempfile.mkstemp`. If the block raises (or the process dies), ``path`` keeps its previous content
    and the temporary is removed.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            permissions = 0o666 & ~current_umask()
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), permissions)
            else:  # Windows before Python 3.13
                os.chmod(tmp, permissions)
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, data: dict[str, Any] | list[Any]) -> None:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    with atomic_write(path) as f:
        f.write(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def save_state_dict(state: dict[str, torch.Tensor], path: str | os.PathLike, *, safe: bool = True) -> None:
    """Write a state dict as safetensors (``safe=True``) or a torch ``.bin``, atomically."""
    import torch

    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    if safe:
        from safetensors.torch import save

        data = save(state, metadata={"format": "pt"})
        with atomic_write(path, "wb") as f:
            f.write(data)
    else:
        with atomic_write(path, "wb") as f:
            torch.save(state, f)
