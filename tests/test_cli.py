"""The ``squeezebert`` command end to end (through subprocess): every subcommand on test checkpoints, inputs from
arguments, stdin and files, JSON lines, readable output, and the user errors with their exit status."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from support.checkpoints import Checkpoints

import squeezebert
from squeezebert import cli


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    """An offline environment with an empty hub cache, so that hub ids never touch the network."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "TOKENIZERS_PARALLELISM": "false",
    }


# the installed console script, or the module when the package is not installed
SCRIPT = shutil.which("squeezebert", path=str(Path(sys.executable).parent))
COMMAND = [SCRIPT] if SCRIPT else [sys.executable, "-m", "squeezebert"]


def run(args: list[str | bytes], env: dict[str, str], stdin: str | bytes | None = None) -> subprocess.CompletedProcess:
    """Run the command; arguments and stdin may be bytes (not UTF-8), its output is always decoded text."""
    if isinstance(stdin, str):
        stdin = stdin.encode("utf-8")
    done = subprocess.run([*COMMAND, *args], input=stdin, capture_output=True, env=env, timeout=120)
    done.stdout, done.stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    return done


def json_lines(done: subprocess.CompletedProcess) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return abs(a - b) < 1e-5
    return a == b


# ----------------------------------------------------------------------------------------------------------------
# Each subcommand gives the pipeline's results (piped: JSON lines with the input fields and "result")


def test_fill_mask_arguments_stdin_and_file(checkpoints: Checkpoints, env: dict, tmp_path: Path) -> None:
    folder = checkpoints["mlm"]
    texts = ["Paris is the [MASK] of France.", "A [MASK] and a [MASK]."]
    expected = squeezebert.pipeline("fill-mask", model=folder)(texts, top_k=2)
    from_args = json_lines(run(["fill-mask", "-m", str(folder), "--top-k", "2", *texts], env))
    from_stdin = json_lines(run(["fill-mask", "-m", str(folder), "--top-k", "2"], env, "\n".join(texts) + "\n\n"))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    from_file = json_lines(
        run(["fill-mask", "-m", str(folder), "--top-k", "2", "--json", "-f", str(tmp_path / "in.jsonl")], env)
    )
    for lines in (from_args, from_stdin, from_file):
        assert [line["text"] for line in lines] == texts
        assert close([line["result"] for line in lines], expected)


def test_classify_texts_and_pairs(checkpoints: Checkpoints, env: dict) -> None:
    folder = checkpoints["nli"]
    pipe = squeezebert.pipeline("text-classification", model=folder)
    lines = [{"text": "A man sings.", "text_pair": "Someone makes music."}, {"text": "Just one text."}]
    out = json_lines(run(["classify", "-m", str(folder), "--all"], env, "\n".join(map(json.dumps, lines))))
    assert close(out[0]["result"], pipe(("A man sings.", "Someone makes music."), top_k=None))
    assert close(out[1]["result"], pipe("Just one text.", top_k=None))
    assert out[0]["text_pair"] == "Someone makes music."
    best = json_lines(run(["classify", "-m", str(folder), "Just one text."], env))
    assert close(best[0]["result"], pipe("Just one text.")[0])


def test_zero_shot(checkpoints: Checkpoints, env: dict) -> None:
    folder = checkpoints["nli"]
    args = ["zero-shot", "-m", str(folder), "--labels", "sports, politics,music", "--multi-label", "A great match."]
    out = json_lines(run(args, env))
    expected = squeezebert.pipeline("zero-shot-classification", model=folder)(
        "A great match.", candidate_labels=["sports", "politics", "music"], multi_label=True
    )
    assert close(out[0]["result"], expected)


def test_ner(checkpoints: Checkpoints, env: dict) -> None:
    folder = checkpoints["ner"]
    text = "John Smith flew from Washington to Paris with Mary Jones and then met Acme Corporation people in Berlin."
    out = json_lines(run(["ner", "-m", str(folder), "--aggregation", "first", "--stride", "4", text], env))
    expected = squeezebert.pipeline("ner", model=folder)(text, aggregation_strategy="first", stride=4)
    assert close(out[0]["result"], expected) and expected


def test_qa_question_option_and_json_lines(checkpoints: Checkpoints, env: dict) -> None:
    folder = checkpoints["qa"]
    pipe = squeezebert.pipeline("question-answering", model=folder)
    context = "Gustave Eiffel's company designed the tower, which was completed in 1889 in Paris."
    out = json_lines(run(["qa", "-m", str(folder), "-q", "Who designed it?", "--top-k", "2", context], env))
    assert close(out[0]["result"], pipe(question="Who designed it?", context=context, top_k=2))
    line = json.dumps({"question": "When?", "context": context})
    out = json_lines(run(["qa", "-m", str(folder), "--handle-impossible"], env, line + "\n"))
    assert close(out[0]["result"], pipe(question="When?", context=context, handle_impossible_answer=True))


def test_choice(checkpoints: Checkpoints, env: dict) -> None:
    folder = checkpoints["choice"]
    pipe = squeezebert.pipeline("multiple-choice", model=folder)
    out = json_lines(run(["choice", "-m", str(folder), "-p", "The chef", "cooks.", "sings.", "flies."], env))
    assert close(out[0]["result"], pipe(("The chef", ["cooks.", "sings.", "flies."])))
    line = json.dumps({"prompt": "It rained, so", "choices": ["we stayed in.", "the sun shone."]})
    out = json_lines(run(["choice", "-m", str(folder)], env, line))
    assert close(out[0]["result"], pipe({"prompt": "It rained, so", "choices": ["we stayed in.", "the sun shone."]}))


def test_embed(checkpoints: Checkpoints, env: dict) -> None:
    folder = checkpoints["mlm"]
    out = json_lines(run(["embed", "-m", str(folder), "--pooling", "cls", "one", "two words"], env))
    expected = squeezebert.pipeline("embeddings", model=folder)(["one", "two words"], pooling="cls")
    assert close([line["result"] for line in out], expected)
    raw = json_lines(run(["embed", "-m", str(folder), "--no-normalize", "one"], env))
    assert close(raw[0]["result"], squeezebert.pipeline("embeddings", model=folder)("one", normalize=False))


def test_info(checkpoints: Checkpoints, env: dict) -> None:
    folder = checkpoints["mlm"]
    report = json_lines(run(["info", "-m", str(folder), "--seq-lens", "8,128"], env))[0]
    model = squeezebert.SqueezeBertModel.from_pretrained(folder)
    assert report["parameters"] == model.num_parameters()
    assert sum(row["params"] * (2 if row["name"].startswith("encoder") else 1) for row in report["table"]) == (
        model.num_parameters()
    )
    # hand count for hidden 32, intermediate 64, groups 4 (q, k, v, intermediate, output) and 1 (post-attention)
    per_token = 3 * 32 * 32 // 4 + 32 * 32 + 2 * 32 * 64 // 4
    for n in (8, 128):
        expected = 2 * 2 * (n * per_token + 2 * n * n * 32) / 1e9  # 2 layers; no pooler, as bench counts
        assert abs(report["gflops"][str(n)] - expected) < 1e-6
    same = json_lines(run(["info", "--config", str(folder / "config.json"), "--seq-lens", "8,128"], env))[0]
    assert same["parameters"] == report["parameters"] and same["gflops"] == report["gflops"]


def test_readable_output_on_a_terminal(checkpoints: Checkpoints, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert cli.main(["fill-mask", "-m", str(checkpoints["mlm"]), "--top-k", "2", "Paris is [MASK]."]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Paris is [MASK].\n") and text.count("\n") == 3 and "{" not in text
    assert cli.main(["zero-shot", "-m", str(checkpoints["nli"]), "--labels", "a,b", "Hi."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Hi." and len(lines) == 3
    assert cli.main(["fill-mask", "-m", str(checkpoints["mlm"]), "--json", "Paris is [MASK]."]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "Paris is [MASK]."


# ----------------------------------------------------------------------------------------------------------------
# User errors: one line on stderr, exit status 2, no traceback


def assert_user_error(done: subprocess.CompletedProcess, *fragments: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    message = done.stderr.strip()
    assert len(message.splitlines()) == 1, message
    for fragment in fragments:
        assert fragment in message, message


def test_errors(checkpoints: Checkpoints, env: dict, tmp_path: Path) -> None:
    mlm = str(checkpoints["mlm"])
    assert_user_error(run(["fill-mask", "-m", str(tmp_path / "missing"), "a [MASK]"], env), "not an existing folder")
    assert_user_error(
        run(["classify", "-m", "someone/not-cached", "text"], env), "not in the Hugging Face cache", "hf download"
    )
    assert_user_error(run(["zero-shot", "--labels", "a,b", "text"], env), "squeezebert/squeezebert-mnli", "download")
    assert_user_error(run(["fill-mask", "-m", mlm, "no mask here"], env), "no [MASK]")
    bad = json.dumps({"text": "a [MASK]"}) + "\n" + '{"text": "broken\n'
    assert_user_error(run(["fill-mask", "-m", mlm], env, bad), "line 2", "malformed JSON")
    assert_user_error(run(["qa", "-m", str(checkpoints["qa"]), "a context"], env), "--question")
    assert_user_error(run(["ner", "-m", mlm, "--file", str(tmp_path / "nope.txt")], env), "cannot read --file")
    assert_user_error(run(["ner", "text"], env), "no default", "--model")
    usage = run(["fill-mask", "--top-k", "many"], env)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_device_errors(checkpoints: Checkpoints, env: dict) -> None:
    mlm = str(checkpoints["mlm"])
    assert_user_error(run(["fill-mask", "-m", mlm, "--device", "banana", "a [MASK]"], env), "device", "'banana'")
    if not torch.cuda.is_available():
        assert_user_error(run(["fill-mask", "-m", mlm, "--device", "cuda", "a [MASK]"], env), "'cuda'", "no", "cpu")


def test_input_that_is_not_utf8(checkpoints: Checkpoints, env: dict, tmp_path: Path) -> None:
    mlm = str(checkpoints["mlm"])
    assert_user_error(run(["fill-mask", "-m", mlm], env, b"a [MASK]\ncaf\xe9 [MASK]\n"), "stdin, line 2", "UTF-8")
    bad = tmp_path / "latin1.txt"
    bad.write_bytes(b"ok [MASK]\nok [MASK]\n\xff [MASK]\n")
    assert_user_error(run(["fill-mask", "-m", mlm, "--file", str(bad)], env), f"{bad}, line 3", "0xff")
    assert_user_error(run(["fill-mask", "-m", mlm, "ok [MASK]", b"caf\xe9 [MASK]"], env), "argument 2", "UTF-8")


def test_convert_bert_errors(env: dict, tmp_path: Path) -> None:
    assert_user_error(run(["convert-bert", "bert-base-uncased", str(tmp_path / "out")], env), "local folder")
    a_file = tmp_path / "config.json"
    a_file.write_text("{}")
    assert_user_error(run(["convert-bert", str(a_file), str(tmp_path / "out")], env), "local folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(run(["convert-bert", str(empty), str(tmp_path / "out")], env), "has no config.json")


def test_convert_bert_unwritable_destination(minilm_dir: Path, env: dict, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_user_error(run(["convert-bert", str(minilm_dir), str(blocker / "out")], env), "cannot create dst_dir")
    assert not (blocker.parent / "out").exists()


def test_bench_errors(env: dict) -> None:
    assert_user_error(run(["bench", "--seq", "513", "--rounds", "1"], env), "squeezebert bench: error:", "512")
    assert_user_error(run(["bench", "--rounds", "0"], env), "squeezebert bench: error:", "rounds", "positive")


def test_choice_needs_a_prompt_for_plain_text(checkpoints: Checkpoints, env: dict) -> None:
    done = run(["choice", "-m", str(checkpoints["choice"]), "cooks.", "sings."], env)
    assert_user_error(done, "--prompt")


def test_damaged_weights_name_the_file(checkpoints: Checkpoints, env: dict, tmp_path: Path) -> None:
    folder = tmp_path / "damaged"
    shutil.copytree(checkpoints["mlm"], folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    assert_user_error(run(["fill-mask", "-m", str(folder), "a [MASK]"], env), str(weights), "damaged")


def test_version_and_debug(checkpoints: Checkpoints, env: dict) -> None:
    from importlib.metadata import version

    done = run(["--version"], env)
    assert done.returncode == 0 and done.stdout.strip() == f"squeezebert {version('squeezebert')}"
    debug = run(["fill-mask", "--debug", "-m", str(checkpoints["mlm"]), "no mask here"], env)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "no [MASK]" in debug.stderr


def test_help_lists_every_subcommand(env: dict) -> None:
    done = run(["--help"], env)
    assert done.returncode == 0
    for command in (
        "fill-mask",
        "classify",
        "zero-shot",
        "ner",
        "qa",
        "choice",
        "embed",
        "info",
        "bench",
        "train",
        "pretrain",
        "convert-bert",
    ):
        assert command in done.stdout


def test_train_then_classify_with_the_result(checkpoints: Checkpoints, env: dict, tmp_path: Path) -> None:
    """``squeezebert train`` fine-tunes a classifier whose output folder ``squeezebert classify`` loads directly."""
    rows = ["text,label"] + [f"good day number {i},pos" if i % 2 else f"bad day number {i},neg" for i in range(24)]
    data = tmp_path / "train.csv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    done = run(
        ["train", "--train-file", str(data), "--model", str(checkpoints["mlm"]), "--output-dir", str(out)]
        + ["--epochs", "1", "--batch-size", "8", "--max-length", "16", "--no-progress", "--strategy", "finetune"],
        env,
    )
    assert done.returncode == 0, done.stderr
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["neg", "pos"]
    assert (out / "best").is_dir() and not (out / "checkpoints").exists()  # checkpoints only with --save-steps
    result = json_lines(run(["classify", "-m", str(out), "--top-k", "2", "a good day"], env))[0]["result"]
    assert sorted(r["label"] for r in result) == ["neg", "pos"]
    assert abs(sum(r["score"] for r in result) - 1) < 1e-5
    missing = run(
        ["train", "--train-file", str(tmp_path / "none.csv"), "--model", str(checkpoints["mlm"])]
        + ["--output-dir", str(tmp_path / "another-run")],
        env,
    )
    assert_user_error(missing, "none.csv")
