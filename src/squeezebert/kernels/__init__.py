"""Optional compiled CPU kernels for the int8 path, built once on first use.

``int8_cpu.cpp`` runs a whole int8 projection in one parallel region: quantizing the input per token and span,
the int8 matmul (its own AVX-512 VNNI micro-kernel where the CPU has one, ``torch._int_mm`` elsewhere), folding
each span's int32 sums into float, and what follows the projection (the activation, or the residual add and the
LayerNorm), one pass per row while it is in cache; PyTorch needs about a dozen passes and parallel regions for the
same (see the README's Performance section for the figures). ``attention_cpu.cpp`` computes the int8 model's
self-attention (in fp32, AVX-512 only) from the fused QKV projection's output straight into the context.
``bindings.cpp`` makes them one Python module. The kernels are compiled on the user's machine with
``torch.utils.cpp_extension`` (a C++ compiler and ``ninja``, ``-O3 -march=native``) the first time
:func:`squeezebert.quantize_dynamic` runs, which takes about half a minute, and are cached by torch under
``~/.cache/torch_extensions`` (``TORCH_EXTENSIONS_DIR``). Where they cannot be built, int8 runs on PyTorch
operations alone with the same math, after one warning; ``SQUEEZEBERT_KERNELS=0`` turns them off. A missing
compiler or ``ninja`` is noticed before torch is asked to build; a compilation that fails is remembered in torch's
build folder of that build (keyed by the source, torch and the CPU) together with the compiler it failed with, so
later runs do not compile again until the compiler or the source changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import platform
import shlex
import shutil
import sys
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

from .. import hub

__all__ = ["int8_kernels", "kernels_status"]

_FOLDER = Path(__file__).parent
_SOURCES = ("int8_cpu.cpp", "attention_cpu.cpp", "bindings.cpp")  # compiled; with the headers, what the build hashes
_HEADERS = ("kernels.h", "simd.h")
_LOCK = threading.Lock()
_STATE: dict[str, object] = {}  # "module": the extension or None, "status": a line for humans
# In torch's build folder of a build whose compilation failed: the reason and the compiler it failed with.
_FAILED_MARKER = "squeezebert-build-failed.json"


def _build_name() -> str:
    """Unique per source, torch version and CPU (the build uses -march=native, and the cache may be shared)."""
    digest = hashlib.sha256()
    for name in (*_SOURCES, *_HEADERS):
        digest.update((_FOLDER / name).read_bytes())
    digest.update(torch.__version__.encode())
    digest.update(platform.machine().encode())
    try:
        with open("/proc/cpuinfo") as f:
            digest.update(next((line for line in f if line.startswith("flags")), "").encode())
    except OSError:
        digest.update(platform.processor().encode())
    return f"squeezebert_int8_{digest.hexdigest()[:16]}"


def _compiler() -> str:
    """The C++ compiler command torch builds with (``CXX``, else ``c++``; ``cl`` on Windows)."""
    return os.environ.get("CXX") or ("cl" if sys.platform == "win32" else "c++")


def _compiler_path() -> Path | None:
    """Where the compiler command's program is, or None when it is not installed."""
    command = _compiler()
    words = [command] if sys.platform == "win32" else shlex.split(command)
    found = shutil.which(words[0]) if words else None
    return None if found is None else Path(found)


def _toolchain(compiler: Path) -> str:
    """The compiler's identity: a remembered failure only holds for the compiler it happened with."""
    real = compiler.resolve()
    info = real.stat()
    return f"{_compiler()} -> {real} ({info.st_size} bytes, mtime {info.st_mtime_ns})"


def _build_directory(name: str) -> Path | None:
    """torch's build folder for ``name`` (created by torch on the call), or None when it cannot be told."""
    try:
        from torch.utils.cpp_extension import _get_build_directory

        return Path(_get_build_directory(name, verbose=False))
    except Exception:
        return None


def _is_cached(name: str) -> bool:
    """Whether torch's extension cache already holds this build (True when that cannot be told: say nothing)."""
    directory = _build_directory(name)
    return directory is None or any(directory.glob(f"{name}.*"))


def _remembered_failure(marker: Path, toolchain: str) -> str | None:
    """The reason an earlier build with this toolchain failed, as recorded in ``marker``, or None."""
    try:
        record = hub.read_json(marker)
    except (OSError, ValueError):
        return None
    reason = record.get("reason")
    return reason if record.get("toolchain") == toolchain and isinstance(reason, str) else None


def _compile_error(message: str) -> str:
    """The first error line of a compiler's output (the whole output holds every command line)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    errors = [line for line in lines[1:] if "error" in line.lower() and not line.startswith("ninja:")]
    return " ".join((errors or lines or ["unknown error"])[0].split())[:200]


def _unavailable(reason: str) -> tuple[None, str]:
    warnings.warn(
        f"squeezebert's int8 CPU kernels could not be built ({reason}); int8 uses PyTorch operations "
        "(same results, slower). SQUEEZEBERT_KERNELS=0 turns them off and silences this warning.",
        RuntimeWarning,
        stacklevel=4,
    )
    return None, f"unavailable ({reason})"


def _build() -> tuple[ModuleType | None, str]:
    if os.environ.get("SQUEEZEBERT_KERNELS", "1").strip() == "0":
        return None, "off (SQUEEZEBERT_KERNELS=0)"
    try:
        from torch.utils.cpp_extension import is_ninja_available
    except Exception as err:  # a torch build without it
        return _unavailable(f"torch.utils.cpp_extension is unusable: {err}")
    compiler = _compiler_path()  # checked before torch gets to print anything
    if compiler is None:
        return _unavailable(f"no C++ compiler: {_compiler()!r} not found (install one or set CXX)")
    if not is_ninja_available():
        return _unavailable("ninja not found (pip install ninja)")
    name = _build_name()
    directory = _build_directory(name)
    marker = None if directory is None else directory / _FAILED_MARKER
    toolchain = _toolchain(compiler)
    remembered = None if marker is None else _remembered_failure(marker, toolchain)
    if remembered is not None:  # retried once the compiler or the source changes
        return _unavailable(f"{remembered}; remembered in {marker}: delete it to retry")
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    try:
        if not _is_cached(name):
            print("squeezebert: compiling the int8 CPU kernels (once per machine, about 30 s)", file=sys.stderr)
        cpp_logger.setLevel(logging.ERROR)  # its ABI banners: the one warning below says what went wrong
        module = _compile(name)
    except Exception as err:  # a failed compilation, an unsupported platform: all mean "use PyTorch ops"
        if f"Error building extension '{name}'" not in str(err):
            return _unavailable(" ".join(f"{type(err).__name__}: {err}".split())[:300])
        reason = f"compiling failed: {_compile_error(str(err))}"
        if marker is not None:  # the compiler ran and failed: remember it, so later runs do not compile again
            with contextlib.suppress(OSError):
                hub.write_json(marker, {"toolchain": toolchain, "reason": reason})
        return _unavailable(reason)
    finally:
        cpp_logger.setLevel(level)
    if marker is not None:  # a failure with an earlier compiler no longer applies
        with contextlib.suppress(OSError):
            marker.unlink(missing_ok=True)
    return module, f"compiled ({module.__file__})"


def _compile(name: str, flags: tuple[str, ...] = ()) -> ModuleType:
    """The kernels compiled (or loaded from torch's cache) as extension ``name``, for this CPU (``-march=native``)
    and the compiler ``flags`` after it (the tests build one with ``-mno-avx512f``: the code paths of CPUs without
    AVX-512)."""
    from torch.utils.cpp_extension import load

    return load(
        name=name,
        sources=[str(_FOLDER / source) for source in _SOURCES],
        extra_cflags=["-O3", "-march=native", *flags, "-fopenmp"],
        extra_ldflags=["-fopenmp"],
        verbose=False,
    )


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
