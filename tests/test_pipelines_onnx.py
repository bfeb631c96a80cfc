"""Pipelines on the ONNX backend: a folder exported with ``squeezebert.export.to_onnx`` gives the same results as the
PyTorch backend on every task (fp32, within the export's 1e-4), close ones in int8, through the API and the
command line; and the errors of a missing extra, a missing graph and an export for another task."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from support.checkpoints import Checkpoints
from test_cli import COMMAND, env, json_lines  # noqa: F401  (env is a fixture)
from test_pipelines_behaviour import CASES, TEXTS, assert_close_results, make

import squeezebert

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from squeezebert.export import INT8_FILE, MODEL_FILE, MissingOnnxExtraError, to_onnx  # noqa: E402

ATOL = 1e-4  # to_onnx's check of the fp32 graph against PyTorch
EXPORTS = {  # (checkpoint kind, export task) -> whether the int8 graph is written too
    ("mlm", "fill-mask"): True,
    ("sentiment", "text-classification"): True,
    ("nli", "text-classification"): False,
    ("ner", "token-classification"): False,
    ("qa", "question-answering"): False,
    ("choice", "multiple-choice"): False,
    ("mlm", "feature-extraction"): False,
    ("mlm", "sentence-embedding"): True,
}


@pytest.fixture(scope="module")
def exports(checkpoints: Checkpoints, tmp_path_factory: pytest.TempPathFactory):
    """``exports(kind, task)``: the folder of the checkpoint exported for ``task``, built on first use."""
    root = tmp_path_factory.mktemp("onnx-exports")

    def folder(kind: str, task: str) -> Path:
        out = root / f"{kind}-{task}"
        if not out.is_dir():
            to_onnx(checkpoints[kind], out, task=task, int8=EXPORTS[kind, task])
        return out

    return folder


# (pipeline task, export task): every pipeline task, and the encoder tasks on both encoder exports
PAIRS = [
    ("fill-mask", "fill-mask"),
    ("text-classification", "text-classification"),
    ("zero-shot-classification", "text-classification"),
    ("token-classification", "token-classification"),
    ("question-answering", "question-answering"),
    ("multiple-choice", "multiple-choice"),
    ("feature-extraction", "feature-extraction"),
    ("feature-extraction", "sentence-embedding"),
    ("embeddings", "feature-extraction"),
    ("embeddings", "sentence-embedding"),
]


@pytest.mark.parametrize(("task", "export_task"), PAIRS)
def test_onnx_backend_equals_torch_backend(checkpoints, exports, task, export_task):
    kind, inputs, params = CASES[task]
    expected = make(task, checkpoints[kind], batch_size=8)(inputs, **params)
    pipe = squeezebert.pipeline(task, model=exports(kind, export_task), backend="onnx", batch_size=3)
    assert type(pipe.model).__name__ == "InferenceSession"
    assert_close_results(pipe(inputs, **params), expected, atol=ATOL)


@pytest.mark.parametrize("params", [{"normalize": False}, {"pooling": "cls"}, {"pooling": "none"}])
def test_sentence_embedding_export_serves_the_other_poolings(checkpoints, exports, params):
    """Its ``sentence_embedding`` output is the normalised mean; the other poolings come from its token vectors."""
    expected = make("embeddings", checkpoints["mlm"])(TEXTS, **params)
    pipe = squeezebert.pipeline("embeddings", model=exports("mlm", "sentence-embedding"), backend="onnx")
    assert_close_results(pipe(TEXTS, **params), expected, atol=ATOL)


def test_int8_graphs_stay_close_to_fp32(checkpoints, exports):
    """The int8 graph (projections quantized, the feed-forward pair in fp32): every sentence embedding within a
    cosine of 0.99 of PyTorch fp32's, the same best label for every text, the same best fill-mask token."""
    reference = torch.tensor(make("embeddings", checkpoints["mlm"])(TEXTS))
    folder = exports("mlm", "sentence-embedding")
    got = torch.tensor(squeezebert.pipeline("embeddings", model=folder, backend="onnx", int8=True)(TEXTS))
    assert F.cosine_similarity(got, reference).min() >= 0.99

    params = {"top_k": None, "function_to_apply": "none"}
    expected = make("text-classification", checkpoints["sentiment"])(TEXTS, **params)
    folder = exports("sentiment", "text-classification")
    got = squeezebert.pipeline("text-classification", model=folder, backend="onnx", int8=True)(TEXTS, **params)
    assert [r[0]["label"] for r in got] == [r[0]["label"] for r in expected]
    assert not torch.equal(torch.tensor([r[0]["score"] for r in got]), torch.tensor([r[0]["score"] for r in expected]))

    masked = [text for text in TEXTS if "[MASK]" in text]
    expected = make("fill-mask", checkpoints["mlm"])(masked, top_k=1)
    got = squeezebert.pipeline("fill-mask", model=exports("mlm", "fill-mask"), backend="onnx", int8=True)(
        masked, top_k=1
    )
    assert [r[0]["token"] for r in got] == [r[0]["token"] for r in expected]


# ----------------------------------------------------------------------------------------------------------------
# The command line


def test_cli_backend_onnx(checkpoints, exports, env):  # noqa: F811  (env is the fixture of test_cli)
    texts = ["A short one.", "premise and a longer text"]
    torch_run = json_lines(
        subprocess.run(
            [*COMMAND, "classify", "--all", "--json", "-m", str(checkpoints["sentiment"]), *texts],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    )
    folder = str(exports("sentiment", "text-classification"))
    for extra in ([], ["--int8"]):
        onnx_run = json_lines(
            subprocess.run(
                [*COMMAND, "classify", "--backend", "onnx", *extra, "--all", "--json", "-m", folder, *texts],
                capture_output=True,
                text=True,
                env=env,
                timeout=120,
            )
        )
        assert [r["text"] for r in onnx_run] == texts
        if not extra:
            assert_close_results(onnx_run, torch_run, atol=ATOL)
        else:
            assert [r["result"][0]["label"] for r in onnx_run] == [r["result"][0]["label"] for r in torch_run]


def test_cli_backend_onnx_on_a_pytorch_checkpoint_is_a_user_error(checkpoints, env):  # noqa: F811
    done = subprocess.run(
        [*COMMAND, "classify", "--backend", "onnx", "-m", str(checkpoints["sentiment"]), "text"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert MODEL_FILE in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


# ----------------------------------------------------------------------------------------------------------------
# Errors


def test_an_export_for_another_task_is_refused(exports):
    with pytest.raises(ValueError, match=r"exported for 'feature-extraction'; the text-classification pipeline needs"):
        squeezebert.pipeline("text-classification", model=exports("mlm", "feature-extraction"), backend="onnx")
    with pytest.raises(ValueError, match=r"'feature-extraction' or 'sentence-embedding'"):
        squeezebert.pipeline("embeddings", model=exports("sentiment", "text-classification"), backend="onnx")
    with pytest.raises(ValueError, match=r"exported for 'fill-mask'; the token-classification pipeline"):
        squeezebert.pipeline("ner", model=exports("mlm", "fill-mask"), backend="onnx")


def test_missing_graphs_name_the_file(checkpoints, exports):
    with pytest.raises(FileNotFoundError, match=INT8_FILE):
        squeezebert.pipeline(
            "zero-shot-classification", model=exports("nli", "text-classification"), backend="onnx", int8=True
        )
    with pytest.raises(FileNotFoundError, match=MODEL_FILE):
        squeezebert.pipeline("text-classification", model=checkpoints["sentiment"], backend="onnx")


def test_bad_backend_arguments(checkpoints, exports, monkeypatch):
    with pytest.raises(ValueError, match=r"backend must be one of torch, onnx, got 'tensorrt'"):
        squeezebert.pipeline("fill-mask", model=checkpoints["mlm"], backend="tensorrt")
    model = squeezebert.SqueezeBertForMaskedLM.from_pretrained(checkpoints["mlm"])
    with pytest.raises(TypeError, match=r"backend='onnx', model must be a folder written by .*to_onnx"):
        squeezebert.pipeline("fill-mask", model=model, tokenizer=checkpoints["mlm"], backend="onnx")
    monkeypatch.setattr("squeezebert.pipelines.base.resolve_device", lambda device: torch.device("cuda"))
    with pytest.raises(ValueError, match=r"backend='onnx' runs on the CPU only, not on device='cuda'"):
        squeezebert.pipeline("fill-mask", model=exports("mlm", "fill-mask"), backend="onnx", device="cuda")


def test_missing_extra_names_it(exports, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    with pytest.raises(MissingOnnxExtraError, match=r"squeezebert\[onnx\]"):
        squeezebert.pipeline("fill-mask", model=exports("mlm", "fill-mask"), backend="onnx")


def test_the_torch_backend_never_imports_onnxruntime(checkpoints):
    code = (
        "import sys, squeezebert\n"
        f"pipe = squeezebert.pipeline('text-classification', model={str(checkpoints['sentiment'])!r})\n"
        "pipe('a text')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('onnx'))))\n"
    )
    done = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def test_a_graph_that_is_no_to_onnx_export_is_refused(checkpoints, tmp_path):
    from onnx import TensorProto, helper, save

    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "sequence_length"])
    scores = helper.make_tensor_value_info("scores", TensorProto.INT64, ["batch_size", "sequence_length"])
    graph = helper.make_graph([helper.make_node("Identity", ["input_ids"], ["scores"])], "other", [ids], [scores])
    (tmp_path / "onnx").mkdir()
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / MODEL_FILE)
    squeezebert.SqueezeBertConfig.from_pretrained(checkpoints["sentiment"]).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"outputs \['scores'\] are not those of a to_onnx export"):
        squeezebert.pipeline("text-classification", model=tmp_path, tokenizer=checkpoints["sentiment"], backend="onnx")
