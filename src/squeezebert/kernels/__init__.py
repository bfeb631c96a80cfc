"""Optional compiled CPU kernels for the int8 path, built once on first use.

``int8_cpu.cpp`` fuses the element-wise work around each int8 matmul (quantizing the input, dequantizing the
output) into one pass per row; PyTorch needs about nine. At batch 1 x 128 that makes the int8 model about 1.3x
faster (see the README's Performance section). The kernels are compiled on the user's machine with
``torch.utils.cpp_extension`` (a C++ compiler and ``ninja``, ``-O3 -march=native``) the first time
:func:`squeezebert.quantize_dynamic` runs, which takes about half a minute, and are cached by torch under
``~/.cache/torch_extensions`` (``TORCH_EXTENSIONS_DIR``). Where they cannot be built, int8 runs on PyTorch
operations alone with the same math, after one warning; ``SQUEEZEBERT_KERNELS=0`` turns them off.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["int8_kernels", "kernels_status"]

_SOURCE = Path(__file__).with_name("int8_cpu.cpp")
_LOCK = threading.Lock()
_STATE: dict[str, object] = {}  # "module": the extension or None, "status": a line for humans


def _build_name() -> str:
    """Unique per source, torch version and CPU (the build uses -march=native, and the cache may be shared)."""
    digest = hashlib.sha256(_SOURCE.read_bytes())
    digest.update(torch.__version__.encode())
    digest.update(platform.machine().encode())
    try:
        with open("/proc/cpuinfo") as f:
            digest.update(next((line for line in f if line.startswith("flags")), "").encode())
    except OSError:
        digest.update(platform.processor().encode())
    return f"squeezebert_int8_{digest.hexdigest()[:16]}"


def _is_cached(name: str) -> bool:
    """Whether torch's extension cache already holds this build (True when that cannot be told: say nothing)."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return any(Path(_get_build_directory(name, verbose=False)).glob(f"{name}.*"))
    except Exception:
        return True


def _build() -> tuple[ModuleType | None, str]:
    if os.environ.get("SQUEEZEBERT_KERNELS", "1").strip() == "0":
        return None, "off (SQUEEZEBERT_KERNELS=0)"
    name = _build_name()
    try:
        from torch.utils.cpp_extension import load

        if not _is_cached(name):
            print("squeezebert: compiling the int8 CPU kernels (once per machine, about 30 s)", file=sys.stderr)
        module = load(
            name=name,
            sources=[str(_SOURCE)],
            extra_cflags=["-O3", "-march=native", "-fopenmp"],
            extra_ldflags=["-fopenmp"],
            verbose=False,
        )
    except Exception as err:  # no compiler, no ninja, an unsupported platform: all mean "use PyTorch ops"
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:300]
        warnings.warn(
            f"squeezebert's int8 CPU kernels could not be built ({reason}); int8 uses PyTorch operations "
            "(same results, slower). Set SQUEEZEBERT_KERNELS=0 to skip the attempt.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None, f"unavailable ({reason})"
    return module, f"compiled ({module.__file__})"


def int8_kernels(build: bool = True) -> ModuleType | None:
    """The compiled kernel module, or None where it is off or cannot be built.

    With ``build=False`` nothing is compiled: None unless an earlier call built (or loaded) the module.
    """
    if "module" not in _STATE and build:
        with _LOCK:
            if "module" not in _STATE:
                _STATE["module"], _STATE["status"] = _build()
    return _STATE.get("module")  # type: ignore[return-value]


def kernels_status() -> str:
    """A line saying whether the int8 kernels are compiled, off, unavailable (and why) or not built yet."""
    return str(_STATE.get("status", "not built yet (built by the first quantize_dynamic)"))
