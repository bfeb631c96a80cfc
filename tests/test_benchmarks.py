"""The benchmark scripts stay runnable: their measuring functions on tiny models (no timings are asserted)."""

from __future__ import annotations

import bench_int8_accuracy  # benchmarks/ is on sys.path (tests/conftest.py)
import pytest
import torch
from support.configs import PAPER_GROUPS, tiny_config

import squeezebert


def _tiny_grouped_model(vocab_size: int) -> squeezebert.SqueezeBertModel:
    torch.manual_seed(0)
    config = tiny_config(
        hidden_size=64,
        embedding_size=64,
        num_attention_heads=8,
        intermediate_size=128,
        max_position_embeddings=64,
        vocab_size=vocab_size,
        **PAPER_GROUPS,
    )
    return squeezebert.SqueezeBertModel(config).eval()


def test_int8_accuracy_measures_every_technique(fast):
    """Each technique of the table quantizes a tiny grouped model, calibrated through the real tokenizer, and its
    cosines to fp32 come out of the same measuring function as fp32 against itself (1 up to float rounding)."""
    from bench_engine import torch_runner

    model = _tiny_grouped_model(fast.vocab_size)
    inputs = bench_int8_accuracy.batches(fast, bench_int8_accuracy.SENTENCES, size=5)  # 3 padded batches
    with torch.inference_mode():
        expected = [model(**batch).last_hidden_state for batch in inputs]
    assert min(bench_int8_accuracy.cosines(torch_runner(model, with_mask=True), inputs, expected)) > 1 - 1e-6
    calibration = bench_int8_accuracy.SENTENCES[:3]
    for label, options in bench_int8_accuracy.TECHNIQUES.items():
        quantized = bench_int8_accuracy.quantize(model, fast, calibration, options)
        token, pooled = bench_int8_accuracy.cosines(torch_runner(quantized, with_mask=True), inputs, expected)
        assert 0.99 < token <= 1 + 1e-6 and 0.99 < pooled <= 1 + 1e-6, label


def test_int8_accuracy_runtime_rows(fast, tmp_path):
    """The runtimes' rows on a tiny grouped model: ONNX Runtime's int8 of to_onnx's graph, that graph in OpenVINO
    fp32 (about 1) and NNCF's int8 of it calibrated on 4 unpadded sentences, each fed the tokenizer's padded batches
    and measured by the same cosine function as the techniques; a runtime not installed gives its reason instead."""
    b = bench_int8_accuracy
    model = _tiny_grouped_model(fast.vocab_size)
    inputs = b.batches(fast, b.SENTENCES, size=5)
    with torch.inference_mode():
        expected = [model(**batch).last_hidden_state for batch in inputs]
    runners = b.runtime_runners(model, fast, b.SENTENCES, tmp_path, sentences=4)
    assert list(runners) == [b.ORT_INT8_ROW, b.OV_FP32_ROW, b.OV_INT8_ROW.format(4)]
    for (label, run), floor in zip(runners.items(), (0.95, 1 - 1e-4, 0.9), strict=True):
        if isinstance(run, str):
            assert "not installed" in run, (label, run)
            continue
        token, pooled = b.cosines(run, inputs, expected)
        assert floor < token <= 1 + 1e-5 and floor < pooled <= 1 + 1e-5, (label, token, pooled)
    ids = inputs[0]["input_ids"]
    fed = b.graph_inputs({"input_ids": ids, "attention_mask": torch.ones_like(ids)})  # no token_type_ids
    assert list(fed) == ["input_ids", "attention_mask", "token_type_ids"] and not fed["token_type_ids"].any()
    assert b.peer_accuracy([1.0, 0.99, 1.0, 0.99], [1.0, 0.99, 1.0, 0.99]).endswith("ours equal or better")
    assert b.peer_accuracy([1.0, 0.98, 1.0, 0.99], [1.0, 0.99, 0.9, 0.99]).endswith("ours lower (mean-pooled)")
    assert "not measured (nncf is not installed)" in b.peer_accuracy([1.0] * 4, "nncf is not installed")


def test_deploy_benchmark_runs_every_variant(tmp_path):
    """bench_deploy on a tiny config, one round: every variant runs or says why not (ExecuTorch not installed, an
    ONNX Runtime without a CPU ConvInteger for HF's int8 graph), the fp32 ones agree with ours PyTorch fp32, the int8
    ones stay close."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("transformers")
    import bench_deploy

    torch.manual_seed(0)
    squeezebert.SqueezeBertModel(tiny_config(**PAPER_GROUPS)).save_pretrained(tmp_path / "model")
    variants = bench_deploy.build_variants(tmp_path / "model", tmp_path, max_length=16)
    rows = bench_deploy.measure(variants, vocab_size=100, shapes=((1, 16), (2, 16)), rounds=1)
    assert [(row.batch, row.name) for row in rows] == [(b, v.name) for b in (1, 2) for v in variants]
    assert [v.name for v in variants][:7] == [
        "HF PyTorch fp32",
        "ours PyTorch fp32",
        "ours PyTorch int8",
        "ours ONNX fp32 (ORT)",
        "ours ONNX int8 (ORT)",
        "HF ONNX fp32 (ORT)",
        "HF ONNX int8 (ORT)",
    ]
    for row in rows:
        if row.seconds is None:
            skipped = row.name.startswith("ours ExecuTorch") and row.note.startswith("skipped")
            assert skipped or (row.name == "HF ONNX int8 (ORT)" and row.note.startswith("does not run")), row
            continue
        assert row.seconds > 0
        if "int8" in row.name:
            assert row.min_cosine > 0.99, row
        else:
            assert row.max_abs_diff < 1e-5, row
    baseline = [line for line in bench_deploy.format_table(rows).splitlines() if "| HF PyTorch fp32 |" in line]
    assert len(baseline) == 2 and all("| 1.00x |" in line for line in baseline)


def test_engine_benchmark_measures_every_model(capsys):
    """bench_engine on small configs, one round, with one busy process: every model runs or says why it is
    missing (an optional peer not installed), fp32 agrees with the reference, int8 stays close, and the tables and
    goals print."""
    pytest.importorskip("transformers")
    import bench_engine

    sizes = {"hidden_size": 64, "embedding_size": 64, "num_attention_heads": 4, "intermediate_size": 128}
    result = bench_engine.measure(
        {(1, 16): 1, (2, 16): 1, "train": 1}, background=1, sizes=sizes | {"num_hidden_layers": 2}
    )
    assert [(row["batch"], row["seq"]) for row in result["rows"]] == [(1, 16), (2, 16)]
    for row in result["rows"]:
        assert set(row["models"]) | set(result["missing"]) == set(bench_engine.MODELS)
        assert (
            set(row["quiet"]) == set(row["loaded"]) == set(row["models"]) | {"fp32 matmul 2048^3", "int8 matmul 2048^3"}
        )
        for name, figures in row["models"].items():
            if name == bench_engine.BERT:
                continue
            assert figures["cosine"] > (0.999 if "int8" in name else 0.99999), name
            if "fp32" in name:
                assert figures["max_diff"] < 1e-5, name
    assert result["train"].keys() == {bench_engine.OURS_FP32, bench_engine.REFERENCE}
    bench_engine.print_table(result, "quiet")
    bench_engine.print_load_table(result)
    table = capsys.readouterr().out
    assert "| 2 x 16 | squeezebert int8 |" in table and "| 1.00 |" in table  # the reference's own slowdown ratio
    goals = bench_engine.goals(result)
    assert len(goals) == 10 and all(met is None for _, _, met in goals[:-2])  # no 128 / 512-token rows here


def test_background_load_is_ready_before_the_rounds(tmp_path):
    """BackgroundLoad returns once its process has imported torch (idle until busy() switches it on), and its
    process is gone after the with block."""
    import bench_engine

    with bench_engine.BackgroundLoad(1, deadline_s=60, folder=tmp_path) as load:
        (process,) = load.processes
        assert (tmp_path / f"busy.ready-{process.pid}").exists() and process.poll() is None
        with load.busy():
            assert (tmp_path / "busy").exists()
        assert not (tmp_path / "busy").exists()
    assert process.poll() is not None


def test_serve_benchmark_table(minilm_dir, monkeypatch, capsys):
    """bench_serve without infinity-emb (its environment is built only by the benchmark itself), short cells: both
    squeezebert servers answer like each other and fill every cell of the table without a failure."""
    pytest.importorskip("uvicorn")
    import bench_serve

    argv = ["bench_serve.py", "--no-infinity", "--seconds", "0.3", "--rounds", "1", "--concurrency", "1", "2"]
    monkeypatch.setattr("sys.argv", [*argv, "--payloads", "1", "2", "--minilm-dir", str(minilm_dir)])
    bench_serve.main()
    out = capsys.readouterr().out
    cosines = [float(line.rsplit(" ", 1)[1]) for line in out.splitlines() if "lowest cosine" in line]
    assert len(cosines) == 2 and cosines[0] == 1.0 and cosines[1] > 0.999  # fp32 against itself, then int8
    rows = [line.split() for line in out.splitlines() if line[:9].strip().isdigit()]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert all(len(r) == 2 + 2 * 3 for r in rows) and "failed" not in out
