"""ExecuTorch export (:func:`squeezebert.export.to_executorch`): every head lowered to XNNPACK, run here in
ExecuTorch's own runtime against PyTorch; int8; real MiniLM weights; the missing extra, bad tasks, failed checks.

The models have one encoder layer: lowering costs seconds per layer and one layer runs every operator."""

from __future__ import annotations

import sys

import pytest
import torch
import torch.nn.functional as F
from support.configs import tiny_config
from support.inputs import HEAD_IDS, HEADS
from support.numerics import assert_rounding_close, path_length

import squeezebert
from squeezebert.export import INPUT_NAMES, example_inputs, to_executorch
from squeezebert.export.executorch import EXECUTORCH_EXTRA_HINT, ExecuTorchExportError, MissingExecuTorchExtraError
from squeezebert.export.onnx import TASKS
from squeezebert.extras import MissingExtraError

MAX_LENGTH = 24
HEAD_TASKS = {
    "SqueezeBertModel": "feature-extraction",
    "SqueezeBertForMaskedLM": "fill-mask",
    "SqueezeBertForSequenceClassification": "text-classification",
    "SqueezeBertForMultipleChoice": "multiple-choice",
    "SqueezeBertForTokenClassification": "token-classification",
    "SqueezeBertForQuestionAnswering": "question-answering",
}


@pytest.fixture(scope="module")
def runtime():
    return pytest.importorskip("executorch.runtime").Runtime.get()


def _tiny_model(head: str) -> squeezebert.SqueezeBertPreTrainedModel:
    torch.manual_seed(0)
    labels = {"num_labels": 3} if head.endswith("Classification") else {}
    return getattr(squeezebert, head)(tiny_config(num_hidden_layers=1, type_vocab_size=2, **labels)).eval()


def _run_pte(runtime, path, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    method = runtime.load_program(path).load_method("forward")
    return method.execute([inputs[name] for name in INPUT_NAMES])


def _expected(model, task: str, inputs: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model(**inputs)
    return [out[name] for name in TASKS[task][1]]


@pytest.mark.parametrize("head", HEADS, ids=HEAD_IDS)
def test_every_head_exports_fp32_and_matches_pytorch(head, runtime, tmp_path):
    model = _tiny_model(head)
    path = tmp_path / "model.pte"
    report = to_executorch(model, path, max_length=MAX_LENGTH, num_choices=3)
    print(report.summary())
    assert report.task == HEAD_TASKS[head]
    assert report.path == path and path.is_file()
    assert report.output_names == TASKS[report.task][1]
    assert report.dynamic, "the sequence length should stay dynamic"
    seq_axis = (
        (1, "num_choices", "sequence_length") if head == "SqueezeBertForMultipleChoice" else (1, "sequence_length")
    )
    assert report.input_shape == seq_axis
    assert report.tolerance == 1e-4 and report.max_abs_diff <= 1e-4 and report.min_cosine > 0.999999
    assert 0.3 < report.delegated_fraction < 1  # the matmuls, softmax and activations; not embeddings / LayerNorm
    # the written file, on lengths the export did not check (one padded over its second half)
    for seq, num_choices in ((7, 2), (MAX_LENGTH, 3)):
        inputs = example_inputs(model, batch=1, seq=seq, num_choices=num_choices, seed=40 + seq)
        got = _run_pte(runtime, path, inputs)
        for name, actual, expected in zip(report.output_names, got, _expected(model, report.task, inputs), strict=True):
            assert_rounding_close(actual, expected, path_length(model.config, seq), what=f"{name} seq {seq}")


def test_int8_export_stays_close_to_fp32(runtime, tmp_path):
    model = _tiny_model("SqueezeBertForTokenClassification")
    path = tmp_path / "int8.pte"
    report = to_executorch(model, path, int8=True, max_length=MAX_LENGTH)
    print(report.summary())
    assert report.int8 and report.dynamic and report.tolerance == 0.98
    assert report.min_cosine >= 0.98
    inputs = example_inputs(model, batch=1, seq=11, seed=5)
    (logits,) = _run_pte(runtime, path, inputs)
    (expected,) = _expected(model, report.task, inputs)
    cosine = F.cosine_similarity(logits.double(), expected.double(), dim=-1)
    assert cosine.min() >= 0.98
    # quantized: int8 rounding shows, far above fp32's (~1e-7 on these logits, see the fp32 test)
    assert report.max_abs_diff > 1e-4
    assert (logits - expected).abs().max() > 1e-4


def test_minilm_weights_export_fp32(minilm_dir, runtime, tmp_path):
    converted = squeezebert.convert_bert_checkpoint(minilm_dir, tmp_path / "minilm")
    path = tmp_path / "minilm.pte"
    report = to_executorch(converted, path, max_length=64)
    print(report.summary())
    assert report.task == "feature-extraction" and report.dynamic and report.max_abs_diff <= 1e-4
    tokenizer = squeezebert.AutoTokenizer.from_pretrained(converted)
    encoded = tokenizer(["ExecuTorch runs SqueezeBERT on a phone."], return_tensors="pt", return_token_type_ids=True)
    inputs = {name: encoded[name].to(torch.int64) for name in INPUT_NAMES}
    model = squeezebert.SqueezeBertModel.from_pretrained(converted).eval()
    (hidden,) = _run_pte(runtime, path, inputs)
    (expected,) = _expected(model, "feature-extraction", inputs)
    assert_rounding_close(hidden, expected, path_length(model.config, inputs["input_ids"].shape[1]))


def test_missing_extra_names_it(monkeypatch, tmp_path):
    # `import executorch...` raises ImportError (submodules imported by earlier tests too)
    for name in [name for name in sys.modules if name.split(".")[0] == "executorch"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "executorch", None)
    with pytest.raises(ImportError, match=r"^ExecuTorch export needs the executorch extra: pip install 'squeezebert\["):
        to_executorch(_tiny_model("SqueezeBertModel"), tmp_path / "m.pte", max_length=8)
    assert issubclass(MissingExecuTorchExtraError, MissingExtraError)  # the command line prints it as one line
    assert (
        EXECUTORCH_EXTRA_HINT == "ExecuTorch export needs the executorch extra: pip install 'squeezebert[executorch]'"
    )
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ("question-answering", "task 'question-answering' needs a SqueezeBertForQuestionAnswering"),
        ("translation", "task 'translation' is not one of"),
    ],
)
def test_bad_task_is_a_value_error(task, message, runtime, tmp_path):
    with pytest.raises(ValueError, match=message):
        to_executorch(_tiny_model("SqueezeBertForSequenceClassification"), tmp_path / "m.pte", task=task)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("max_length", "limit"), [(1, 64), (65, 64), (True, 64)])
def test_bad_max_length_is_a_value_error(max_length, limit, runtime, tmp_path):
    with pytest.raises(ValueError, match=rf"max_length must be an integer in \[2, max_position_embeddings={limit}\]"):
        to_executorch(_tiny_model("SqueezeBertModel"), tmp_path / "m.pte", max_length=max_length)


def test_failed_check_leaves_nothing(runtime, tmp_path):
    """A check that cannot pass (fp32 agreeing to 1e-30) raises after the lowering; no file, no temporary."""
    with pytest.raises(ExecuTorchExportError, match=r"differs from PyTorch by up to .* \(atol=1e-30\); nothing was"):
        to_executorch(_tiny_model("SqueezeBertModel"), tmp_path / "out" / "m.pte", max_length=8, atol=1e-30)
    assert not any(tmp_path.rglob("*"))
