"""Exporting the models: ``torch.export`` with dynamic batch and sequence length (every head, strict and not),
and ONNX export through :func:`squeezebert.export.to_onnx` validated in ONNX Runtime."""

from __future__ import annotations

import pytest
import torch
from support.configs import tiny_config
from support.inputs import HEAD_IDS, HEADS
from support.numerics import assert_rounding_close, path_length

import squeezebert
from squeezebert.export import example_inputs, export_program


def _tiny_model(head: str, **overrides) -> squeezebert.SqueezeBertPreTrainedModel:
    torch.manual_seed(0)
    labels = {"num_labels": 3} if head.endswith("Classification") else {}
    return getattr(squeezebert, head)(tiny_config(type_vocab_size=2, **labels, **overrides)).eval()


def _output_tensors(out) -> dict[str, torch.Tensor]:
    return {name: value for name, value in out.items() if isinstance(value, torch.Tensor)}


# ------------------------------------------------------------------------------------------------------------------
# torch.export


@pytest.mark.parametrize("strict", [False, True], ids=["non-strict", "strict"])
@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_torch_export_is_dynamic_and_matches_eager(head, strict):
    model = _tiny_model(head)
    program = export_program(model, strict=strict).module()
    # other batch sizes and lengths than the traced example (2 x 16, 4 choices), padded and not, 3 choices
    for batch, seq, num_choices in ((1, 5, 3), (3, 11, 4), (2, 64, 2)):
        inputs = example_inputs(model, batch=batch, seq=seq, num_choices=num_choices, seed=seq)
        with torch.no_grad():
            expected = _output_tensors(model(**inputs))
            got = _output_tensors(program(**inputs))
        assert got.keys() == expected.keys()
        for name, value in expected.items():
            assert_rounding_close(got[name], value, path_length(model.config, seq), what=f"{name} {batch}x{seq}")


def test_torch_export_keeps_eager_checks_and_fast_paths():
    """Exporting leaves the eager model as it was: range checks still raise, the QKV cache still works."""
    model = _tiny_model("SqueezeBertModel")
    export_program(model)
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, vocab_size=100\)"):
        model(input_ids=torch.tensor([[1, 100]]))
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 2]]))
    assert all(layer.attention._qkv_cache is not None for layer in model.encoder.layers)


def test_export_program_rejects_other_objects():
    with pytest.raises(TypeError, match="model must be a SqueezeBERT model"):
        export_program(torch.nn.Linear(2, 2))


# ------------------------------------------------------------------------------------------------------------------
# ONNX

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from squeezebert.export import INT8_FILE, MODEL_FILE, OnnxExportError, load_onnx_session, to_onnx  # noqa: E402
from squeezebert.export.onnx import MissingOnnxExtraError, canonical_task  # noqa: E402

HEAD_TASKS = {
    "SqueezeBertModel": ("feature-extraction", ["last_hidden_state"]),
    "SqueezeBertForMaskedLM": ("fill-mask", ["logits"]),
    "SqueezeBertForSequenceClassification": ("text-classification", ["logits"]),
    "SqueezeBertForMultipleChoice": ("multiple-choice", ["logits"]),
    "SqueezeBertForTokenClassification": ("token-classification", ["logits"]),
    "SqueezeBertForQuestionAnswering": ("question-answering", ["start_logits", "end_logits"]),
}


def _run(session, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    names = [out.name for out in session.get_outputs()]
    values = session.run(names, {name: value.numpy() for name, value in inputs.items()})
    return {name: torch.from_numpy(value) for name, value in zip(names, values, strict=True)}


def _op_types(path) -> set[str]:
    return {node.op_type for node in onnx.load(path).graph.node}


@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_every_head_exports_fp32_and_int8_that_run_in_onnx_runtime(head, tmp_path):
    model = _tiny_model(head)
    task, outputs = HEAD_TASKS[head]
    report = to_onnx(model, tmp_path / "out", int8=True)  # the task defaults to the head's
    assert report.task == task and list(report.outputs) == outputs
    assert report.files == ["config.json", MODEL_FILE, INT8_FILE]
    assert report.max_abs_diff <= 1e-4 and report.int8_min_cosine >= 0.99
    assert report.int8_quantized > 0 and report.int8_float > 0

    session = load_onnx_session(tmp_path / "out")
    axes = ["batch_size", "num_choices", "sequence_length"] if head.endswith("MultipleChoice") else None
    for graph_input in session.get_inputs():
        assert graph_input.type == "tensor(int64)"
        assert graph_input.shape == (axes or ["batch_size", "sequence_length"])
    assert [out.name for out in session.get_outputs()] == outputs
    # another shape than the validation batch: batch 3, 9 tokens (3 choices)
    inputs = example_inputs(model, batch=3, seq=9, num_choices=3, seed=5)
    with torch.no_grad():
        expected = model(**inputs)
    got = _run(session, inputs)
    for name in outputs:
        torch.testing.assert_close(got[name], expected[name], atol=1e-4, rtol=0)

    int8_path = tmp_path / "out" / INT8_FILE
    ops = _op_types(int8_path)
    assert "ConvInteger" not in ops and "Conv" not in ops
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}
    got8 = _run(load_onnx_session(tmp_path / "out", int8=True), inputs)
    for name in outputs:
        cosine = torch.nn.functional.cosine_similarity(got8[name].double(), expected[name].double(), dim=-1)
        assert cosine.min() >= 0.99, name


def test_fp32_only_export_and_task_synonyms(tmp_path):
    model = _tiny_model("SqueezeBertForSequenceClassification")
    report = to_onnx(model, tmp_path / "out", task="sequence-classification")
    assert report.task == "text-classification" and report.int8_min_cosine is None
    assert not (tmp_path / "out" / INT8_FILE).exists()
    assert canonical_task("masked-lm") == "fill-mask"
    assert canonical_task("default") == "feature-extraction"
    assert canonical_task("sentence-similarity") == "sentence-embedding"


def test_a_head_model_exports_its_encoder_for_feature_extraction(tmp_path):
    model = _tiny_model("SqueezeBertForMaskedLM")
    report = to_onnx(model, tmp_path / "out", task="default")
    inputs = example_inputs(model, batch=2, seq=5)
    got = _run(load_onnx_session(tmp_path / "out"), inputs)
    with torch.no_grad():
        expected = model.transformer(**inputs).last_hidden_state
    assert report.outputs == ("last_hidden_state",)
    torch.testing.assert_close(got["last_hidden_state"], expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"task": "summarization"}, ValueError, "task 'summarization' is not one of"),
        (
            {"task": "question-answering"},
            ValueError,
            "needs a SqueezeBertForQuestionAnswering",
        ),
        ({"opset": 9}, ValueError, r"opset must be an integer in \[17, "),
        ({"atol": 0}, ValueError, "atol must be a positive number"),
        ({"int8": True, "keep_float": ("ffn",)}, ValueError, "keep_float must list kinds among"),
        ({"atol": 1e-30}, OnnxExportError, r"the ONNX graph differs from PyTorch by up to .* \(atol=1e-30\)"),
        ({"int8": True, "min_cosine": 1.5}, OnnxExportError, r"cosine similarity of only .* \(min_cosine=1.5\)"),
    ],
    ids=["unknown-task", "wrong-head", "opset-9", "atol-0", "keep-float", "validation-fp32", "validation-int8"],
)
def test_bad_input_raises_and_leaves_nothing_behind(tmp_path, kwargs, error, match):
    model = _tiny_model("SqueezeBertForSequenceClassification")
    with pytest.raises(error, match=match):
        to_onnx(model, tmp_path / "out", **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_out_dir_is_refused_unless_overwrite(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    model = _tiny_model("SqueezeBertModel")
    with pytest.raises(ValueError, match="is not empty; pass overwrite=True"):
        to_onnx(model, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    with pytest.raises(OnnxExportError):  # a failed export into it leaves it as it was
        to_onnx(model, out, atol=1e-30, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and [p.name for p in out.iterdir()] == ["notes.txt"]
    to_onnx(model, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and (out / MODEL_FILE).is_file()


def test_missing_extra_names_it(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.raises(ImportError, match=r"ONNX export needs the onnx extra: pip install 'squeezebert\[onnx\]'"):
        to_onnx(_tiny_model("SqueezeBertModel"), tmp_path / "out")
    assert issubclass(MissingOnnxExtraError, ImportError) and list(tmp_path.iterdir()) == []


def test_real_minilm_sentence_embedding_fp32_and_int8(minilm_dir, tmp_path):
    """all-MiniLM-L6-v2 converted to SqueezeBERT: the int8 graph keeps every attended token's vector within
    cosine 0.99 of PyTorch's, and ``sentence_embedding`` is what the embeddings pipeline returns."""
    checkpoint = squeezebert.convert_bert_checkpoint(minilm_dir, tmp_path / "minilm")
    report = to_onnx(checkpoint, tmp_path / "out", task="sentence-similarity", int8=True)
    print(f"MiniLM: fp32 max abs diff {report.max_abs_diff:.3g}, int8 min cosine {report.int8_min_cosine:.4f}")
    assert report.task == "sentence-embedding" and report.outputs == ("last_hidden_state", "sentence_embedding")
    assert report.max_abs_diff <= 1e-4 and report.int8_min_cosine >= 0.99
    assert {"config.json", "tokenizer.json", "vocab.txt", MODEL_FILE, INT8_FILE} <= set(report.files)

    texts = ["The quick brown fox jumps over the lazy dog.", "ONNX Runtime runs it.", "Short"]
    tokenizer = squeezebert.AutoTokenizer.from_pretrained(tmp_path / "out")
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    inputs = {name: batch[name].long() for name in ("input_ids", "attention_mask", "token_type_ids")}
    expected = squeezebert.pipeline("embeddings", model=checkpoint)(texts, return_tensors=True)
    expected = torch.stack(list(expected))
    for int8, atol in ((False, 1e-5), (True, None)):
        got = _run(load_onnx_session(tmp_path / "out", int8=int8), inputs)["sentence_embedding"]
        if atol is not None:
            torch.testing.assert_close(got, expected, atol=atol, rtol=0)
        else:
            assert torch.nn.functional.cosine_similarity(got, expected, dim=-1).min() >= 0.99
