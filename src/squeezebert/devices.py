"""Devices by name: what ``device=`` (pipelines) and ``device_map=`` (``from_pretrained``) accept."""

from __future__ import annotations

import torch


def resolve_device(device: str | int | torch.device) -> torch.device:
    """``device`` as a ``torch.device`` this process can use; a ValueError says why not (an unknown name, no CUDA
    in this torch build, no such GPU)."""
    if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
        raise TypeError(f"device must be a string, a GPU index or a torch.device, not {type(device).__name__}")
    try:
        resolved = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    except RuntimeError:
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N' or a GPU index, got {device!r}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"device {str(resolved)!r} is not available: {why}; use device='cpu'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(resolved)!r}: there are only {torch.cuda.device_count()} GPU(s)")
    else:  # mps, xpu, ...: the backends that can say whether they are there
        backend = getattr(torch.backends, resolved.type, None) or getattr(torch, resolved.type, None)
        is_available = getattr(backend, "is_available", None)
        if callable(is_available) and not is_available():
            raise ValueError(f"device {str(resolved)!r} is not available on this machine; use device='cpu'")
    return resolved
