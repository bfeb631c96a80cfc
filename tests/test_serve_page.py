"""The page ``GET /`` serves, in a real browser: Debian's chromium, headless, loads it from a real ``squeezebert
serve`` on 127.0.0.1 with ``?text=...`` (the page then runs that text at once), and dumps the DOM after the page's
script ran. What the page shows must be what the API answers to the same request.

The browser cannot resolve any host but 127.0.0.1, so a page that needed the network (a CDN) would fail here.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support.server import serve_process

pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

CHROMIUM = shutil.which("chromium")
NO_CHROMIUM = "Debian's chromium is not installed (apt-get install chromium)"
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=NO_CHROMIUM)

PAGE = Path(__file__).resolve().parents[1] / "src" / "squeezebert" / "serving" / "page.html"
BROWSER_TIMEOUT = 90  # seconds for chromium to load the page and dump it, on a busy machine
# The page's default sentences for the embedding view (its #sentences textarea), one per line.
SENTENCES = [
    "A man is playing a guitar.",
    "The weather is lovely today.",
    "A cat sleeps on the sofa.",
    "The stock market fell sharply.",
    "Someone is cooking pasta in the kitchen.",
]


def chromium_dom(url: str, profile: Path) -> str:
    """The DOM of ``url`` after its script ran (fetches included: virtual time waits for the network)."""
    args = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=30000",
        "--dump-dom",
        url,
    ]
    done = subprocess.run(args, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class Elements(HTMLParser):
    """Every element's attributes and text, in document order: ``[(tag, attrs, text)]``."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str], list[str]]] = []
        self.open: list[list[str]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        text: list[str] = []
        self.found.append((tag, {k: v or "" for k, v in attrs}, text))
        if tag not in ("input", "meta", "br"):
            self.open.append(text)

    def handle_endtag(self, tag: str) -> None:
        if self.open:
            self.open.pop()

    def handle_data(self, data: str) -> None:
        for text in self.open:
            text.append(data)

    def by_id(self, element_id: str) -> tuple[dict[str, str], str]:
        attrs, text = next((a, "".join(t)) for _, a, t in self.found if a.get("id") == element_id)
        return attrs, text

    def items(self) -> list[dict[str, str]]:
        """The ``<li>`` of the answer, with their text as ``"text"``."""
        return [{**a, "text": "".join(t)} for tag, a, t in self.found if tag == "li"]


def show(server_url: str, text: str, profile: Path, state: str = "done", **query: str) -> Elements:
    """Open the page with ``?text=`` (and ``query``): it runs the text at once; its body's ``data-state`` says when
    it is done."""
    url = f"{server_url}/?{urllib.parse.urlencode({'text': text, **query})}"
    dom = Elements(chromium_dom(url, profile))
    body = next(a for tag, a, _ in dom.found if tag == "body")
    assert body.get("data-state") == state, (dom.by_id("meta"), dom.by_id("answer-body"))
    return dom


def test_page_is_self_contained():
    """No external resource: no src/href, no CSS url() or @import, no module imports."""
    html = PAGE.read_text()
    assert not re.search(r"\b(src|href)\s*=|url\(|@import|\bimport\s*\(|https?://", html)


def test_page_embeddings_norm_and_nearest(tmp_path, minilm_dir):
    from squeezebert.convert import convert_bert_checkpoint

    model = convert_bert_checkpoint(minilm_dir, tmp_path / "minilm")
    text = "A man plays the guitar on stage."
    with serve_process(model) as server:
        dom = show(server.url, text, tmp_path / "profile")
        answer = httpx.post(f"{server.url}/embed", json={"inputs": [text, *SENTENCES], "normalize": False}, timeout=60)
    assert answer.status_code == 200
    query, *others = answer.json()

    # The page's formula in double precision, in the same order: it agrees with the API's vectors to rounding.
    def dot(a: list[float], b: list[float]) -> float:
        total = 0.0
        for x, y in zip(a, b, strict=True):
            total += x * y
        return total

    norm = math.sqrt(dot(query, query))
    cosines = [dot(query, o) / (norm * math.sqrt(dot(o, o))) for o in others]
    attrs, shown = dom.by_id("norm")
    assert math.isclose(float(attrs["data-value"]), norm, rel_tol=1e-12)
    assert shown == f"{norm:.4f}"
    items = dom.items()
    expected = sorted(range(len(SENTENCES)), key=lambda i: -cosines[i])
    assert [int(item["data-index"]) for item in items] == expected
    for item, i in zip(items, expected, strict=True):
        assert math.isclose(float(item["data-score"]), cosines[i], rel_tol=1e-12, abs_tol=1e-15)
        assert item["text"] == f"{SENTENCES[i]}{cosines[i]:.4f}"
    assert expected[0] == 0  # real MiniLM weights: the guitar sentence is the nearest


@pytest.mark.parametrize(
    ("kind", "route", "text", "key"),
    [
        ("sentiment", "/predict", "I really enjoyed this film.", "label"),
        ("mlm", "/fill-mask", "The capital of France is [MASK].", "token_str"),
    ],
)
def test_page_labels_and_filled_masks(tmp_path, checkpoints, kind, route, text, key):
    with serve_process(checkpoints[kind]) as server:
        dom = show(server.url, text, tmp_path / "profile")
        answer = httpx.post(server.url + route, json={"inputs": text}, timeout=60)
    assert answer.status_code == 200
    expected = answer.json()
    items = dom.items()
    data_key = "data-label" if key == "label" else "data-token"
    # The page shows the API's floats as they are (JSON numbers round-trip exactly through JavaScript's doubles).
    assert [(item[data_key], float(item["data-score"])) for item in items] == [(e[key], e["score"]) for e in expected]
    shown = [item["text"] for item in items]
    assert shown == [f"{e['label'] if key == 'label' else e['sequence']}{e['score']:.4f}" for e in expected]


def test_page_other_heads_show_the_json(tmp_path, checkpoints):
    """Question answering has no view of its own: the page posts its JSON body and shows the answer's JSON."""
    question = "Where was SqueezeBERT made?"
    with serve_process(checkpoints["qa"]) as server:
        dom = show(server.url, question, tmp_path / "profile")
        body = {"inputs": {"question": question, "context": "SqueezeBERT is a fast encoder from Berkeley."}}
        answer = httpx.post(server.url + "/question-answering", json=body, timeout=60)
    assert answer.status_code == 200
    assert json.loads(dom.by_id("json")[1]) == answer.json()


def test_page_with_an_api_key(tmp_path, checkpoints):
    """Without the key the page says /info is refused and asks for it; with ``?key=`` it answers as the API does."""
    text = "I really enjoyed this film."
    with serve_process(checkpoints["sentiment"], "--api-key", "s3cret") as server:
        refused = show(server.url, text, tmp_path / "refused", state="error")
        dom = show(server.url, text, tmp_path / "profile", key="s3cret")
        headers = {"Authorization": "Bearer s3cret"}
        answer = httpx.post(server.url + "/predict", json={"inputs": text}, headers=headers, timeout=60)
    assert refused.by_id("meta")[1].startswith("Cannot read /info: ")
    assert "hidden" not in refused.by_id("key-box")[0]
    assert [(i["data-label"], float(i["data-score"])) for i in dom.items()] == [
        (e["label"], e["score"]) for e in answer.json()
    ]
