"""The sentence-embedding ONNX export loads in sentence-transformers' ONNX backend as it is and gives the embeddings
pipeline's vectors. sentence-transformers' ONNX backend needs optimum-onnx, which pins transformers 4.x, so it runs
in its own environment (``.cache/st-onnx-venv``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from support.venvs import oracle_python

import squeezebert

pytest.importorskip("onnxruntime")

SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The new movie is awesome."]

ENCODE = """
import json, sys
from sentence_transformers import SentenceTransformer
job = json.load(sys.stdin)
model = SentenceTransformer(job["folder"], backend="onnx", model_kwargs={"file_name": job["file"]})
json.dump(model.encode(job["sentences"]).tolist(), sys.stdout)
"""


@pytest.fixture(scope="module")
def st_python() -> Path:
    return oracle_python("st-onnx-venv", ("sentence-transformers[onnx]==5.7.0",))


def encode(python: Path, folder: Path, file: str) -> list[list[float]]:
    job = json.dumps({"folder": str(folder), "file": file, "sentences": SENTENCES})
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run([str(python), "-c", ENCODE], input=job, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_sentence_transformers_loads_the_export(minilm_dir: Path, tmp_path: Path, st_python: Path) -> None:
    from squeezebert.export.onnx import INT8_FILE, MODEL_FILE, to_onnx

    model_dir = squeezebert.convert_bert_checkpoint(minilm_dir, tmp_path / "minilm")
    out = tmp_path / "minilm-onnx"
    to_onnx(model_dir, out, task="sentence-embedding", int8=True)
    expected = squeezebert.pipeline("embeddings", model=model_dir)(SENTENCES)

    fp32 = encode(st_python, out, MODEL_FILE)
    for got, want in zip(fp32, expected, strict=True):  # unit vectors: ONNX Runtime's fp32 rounding only
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) < 1e-5
    int8 = encode(st_python, out, INT8_FILE)
    for got, want in zip(int8, expected, strict=True):
        assert sum(a * b for a, b in zip(got, want, strict=True)) > 0.99  # cosine of unit vectors
