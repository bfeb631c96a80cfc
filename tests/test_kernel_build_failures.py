"""Without a working C++ compiler the int8 kernels give one short warning, and a failed compilation is remembered."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch.utils.cpp_extension

from squeezebert import kernels as kernels_module

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell compiler stand-in")

RUN = textwrap.dedent(
    """
    import squeezebert.kernels as k
    assert k.int8_kernels() is None and k.int8_kernels() is None
    print(k.kernels_status())
    """
)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "SQUEEZEBERT_KERNELS"} | env
    return subprocess.run(
        [sys.executable, "-c", RUN], env=full, capture_output=True, text=True, timeout=120, check=True
    )


def _assert_one_short_warning(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "RuntimeWarning: squeezebert's int8 CPU kernels could not be built (" in lines[0]
    assert "Traceback" not in stderr and "WARNING" not in stderr and len(lines[0]) < 600


def test_missing_compiler_warns_once_and_never_starts_a_build(tmp_path: Path) -> None:
    extensions = tmp_path / "torch_extensions"
    env = {"CXX": str(tmp_path / "no-such-compiler"), "TORCH_EXTENSIONS_DIR": str(extensions)}
    for _ in range(2):
        result = _run(env)
        _assert_one_short_warning(result.stderr)
        assert "no C++ compiler" in result.stderr
        assert result.stdout.startswith("unavailable (no C++ compiler:")
        assert not extensions.exists()  # torch was never asked: no build folder, no build.ninja


@pytest.mark.skipif(not torch.utils.cpp_extension.is_ninja_available(), reason="needs ninja")
def test_failed_compilation_is_remembered_across_runs(tmp_path: Path) -> None:
    calls = tmp_path / "compiler-calls.log"
    compiler = tmp_path / "fake-c++"
    compiler.write_text(
        textwrap.dedent(
            f"""\
            #!/bin/sh
            echo "$*" >> '{calls}'
            case "$1" in
              -v|--version) echo "gcc version 12.2.0 (fake)" >&2; echo "fake-c++ (GCC) 12.2.0"; exit 0;;
              -dumpfullversion|-dumpversion) echo "12.2.0"; exit 0;;
            esac
            echo "fake-c++: fatal error: cannot compile here" >&2
            exit 1
            """
        )
    )
    compiler.chmod(0o755)
    extensions = tmp_path / "torch_extensions"
    env = {"CXX": str(compiler), "TORCH_EXTENSIONS_DIR": str(extensions)}

    first = _run(env)
    assert first.stdout.strip() == "unavailable (compiling failed: fake-c++: fatal error: cannot compile here)"
    assert "compiling the int8 CPU kernels" in first.stderr and "Traceback" not in first.stderr
    compiled = calls.read_text().splitlines()
    assert any("int8_cpu.cpp" in line for line in compiled)
    (marker,) = extensions.glob(f"*/{kernels_module._FAILED_MARKER}")
    (build_file,) = extensions.glob("*/build.ninja")
    build_state = build_file.stat().st_mtime_ns

    second = _run(env)
    _assert_one_short_warning(second.stderr)
    assert f"remembered in {marker}: delete it to retry" in second.stdout
    assert calls.read_text().splitlines() == compiled  # the compiler was not run again, not even for --version
    assert build_file.stat().st_mtime_ns == build_state


@pytest.fixture
def fresh_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch extension cache and no decision taken yet in this process."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.delenv("SQUEEZEBERT_KERNELS", raising=False)
    monkeypatch.setattr(kernels_module, "_STATE", {})
    return tmp_path


def test_a_new_compiler_or_a_success_clears_the_memory(fresh_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = kernels_module._build_name()
    attempts: list[str] = []

    def failing_load(**kwargs: object) -> object:
        attempts.append(str(kwargs["name"]))
        raise RuntimeError(f"Error building extension '{name}': [1/2] c++ -c x.cpp\nx.cpp:1:1: error: boom\n")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", failing_load)
    monkeypatch.setattr(kernels_module, "_toolchain", lambda compiler: "compiler A")
    with pytest.warns(RuntimeWarning, match=r"compiling failed: x.cpp:1:1: error: boom\)"):
        assert kernels_module._build()[0] is None
    with pytest.warns(RuntimeWarning, match="remembered in"):
        assert kernels_module._build()[0] is None
    assert attempts == [name]

    monkeypatch.setattr(kernels_module, "_toolchain", lambda compiler: "compiler B")  # an upgraded compiler
    with pytest.warns(RuntimeWarning, match="compiling failed"):
        kernels_module._build()
    assert attempts == [name, name]

    monkeypatch.setattr(kernels_module, "_toolchain", lambda compiler: "compiler C")
    monkeypatch.setattr(torch.utils.cpp_extension, "load", lambda **kwargs: kernels_module)
    assert kernels_module._build()[1].startswith("compiled")
    assert not (fresh_state / name / kernels_module._FAILED_MARKER).exists()


def test_other_failures_are_not_remembered(fresh_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts = []

    def flaky_load(**kwargs: object) -> object:
        attempts.append(kwargs)
        raise TimeoutError("the build lock is held by another process")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", flaky_load)
    for _ in range(2):
        with pytest.warns(RuntimeWarning, match="TimeoutError: the build lock"):
            kernels_module._build()
    assert len(attempts) == 2


def test_missing_ninja_is_noticed_before_torch_builds(fresh_state: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.utils.cpp_extension, "is_ninja_available", lambda: False)
    monkeypatch.setattr(torch.utils.cpp_extension, "load", lambda **kwargs: pytest.fail("load was called"))
    monkeypatch.setattr(kernels_module, "_compiler_path", lambda: Path("/usr/bin/c++"))
    with pytest.warns(RuntimeWarning, match=r"could not be built \(ninja not found"):
        assert kernels_module.int8_kernels() is None
    assert kernels_module.kernels_status().startswith("unavailable (ninja not found")
    assert list(fresh_state.iterdir()) == []
