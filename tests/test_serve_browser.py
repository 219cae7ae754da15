"""The page at / in headless Chromium: type a sentence, press Tag, read the highlights from the DOM.

Chromium is driven over its DevTools protocol (tests/serving/cdp.py). A screenshot of each run is
saved to test-artifacts/ (gitignored) for a person to look at.
"""
from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("websocket", reason="websocket-client (the test extra) drives Chromium")

from tokentune.serving import create_app  # noqa: E402

from serving.cdp import Chromium, find_chromium  # noqa: E402
from serving.helpers import ROOT, ThreadServer, trained_model  # noqa: E402

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")

SENTENCE = "Alice Smith visited Paris with Acme today ."
ARTIFACTS = os.path.join(ROOT, "test-artifacts")

MARKS_JS = """JSON.stringify(Array.from(document.querySelectorAll('#highlighted mark')).map(m => ({
  label: m.dataset.label, text: m.firstChild.textContent, title: m.title,
  colour: getComputedStyle(m).backgroundColor})))"""
LEGEND_JS = """JSON.stringify(Array.from(document.querySelectorAll('#legend .swatch')).map(s => ({
  label: s.dataset.label, colour: getComputedStyle(s).backgroundColor})))"""
# the highlighted box without the small type tags inside each mark: must be the text itself
PLAIN_JS = """(() => { const c = document.getElementById('highlighted').cloneNode(true);
  c.querySelectorAll('.tag').forEach(t => t.remove()); return c.textContent; })()"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_data, tiny_base_model):
    return trained_model(tmp_path_factory, tiny_data, tiny_base_model)


@pytest.fixture(scope="module")
def tagger(model_dir):
    from tokentune import Tagger

    return Tagger.from_pretrained(model_dir)


@pytest.fixture()
def browser(tmp_path):
    with Chromium(CHROMIUM, str(tmp_path / "chromium-profile")) as chromium:
        yield chromium


def screenshot(browser: Chromium, name: str) -> str:
    os.makedirs(ARTIFACTS, exist_ok=True)
    path = os.path.join(ARTIFACTS, name)
    browser.screenshot(path)
    with open(path, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.path.getsize(path) > 10_000, "a blank page compresses to almost nothing"
    return path


def test_type_a_sentence_press_tag_and_see_highlights(browser, tagger, model_dir):
    expected = tagger.predict_text(SENTENCE)
    assert expected, "the trained tiny model should find entities in the sentence"
    with ThreadServer(create_app(tagger, model_dir=model_dir)) as server:
        browser.navigate(server.url + "/")
        assert browser.wait_for("document.querySelectorAll('#legend .swatch').length === 3"), "legend missing"
        assert "LOC, ORG, PER" in browser.evaluate("document.getElementById('model-line').textContent")
        browser.type_into("#text", SENTENCE)
        browser.click("#tag")
        assert browser.wait_for("document.body.dataset.state === 'done'"), browser.evaluate(
            "document.getElementById('status').textContent")
        marks = json.loads(browser.evaluate(MARKS_JS))
        legend = {s["label"]: s["colour"] for s in json.loads(browser.evaluate(LEGEND_JS))}
        plain = browser.evaluate(PLAIN_JS)
        shown_json = json.loads(browser.evaluate("document.getElementById('json').textContent"))
        status = browser.evaluate("document.getElementById('status').textContent")
        screenshot(browser, "serve-page.png")
    assert [(m["label"], m["text"]) for m in marks] == [(e.label, e.text) for e in expected]
    assert [m["title"] for m in marks] == [f"{e.label} · score {e.score:.3f}" for e in expected]
    assert plain == SENTENCE, "highlighting must not change the text"
    assert set(legend) == {"LOC", "ORG", "PER"} and len(set(legend.values())) == 3, "one colour per type"
    for mark in marks:
        assert mark["colour"] == legend[mark["label"]]
    assert shown_json["results"][0]["text"] == SENTENCE
    assert [e["label"] for e in shown_json["results"][0]["entities"]] == [e.label for e in expected]
    assert status.startswith(f"{len(expected)} entit")


def test_page_asks_for_the_api_key_and_uses_it(browser, tagger, model_dir):
    with ThreadServer(create_app(tagger, model_dir=model_dir, api_key="page-key")) as server:
        browser.navigate(server.url + "/?text=Bob+visited+Berlin+.&auto=1")  # auto-submits: refused first
        assert browser.wait_for("document.body.dataset.state === 'error'")
        assert "401" in browser.evaluate("document.getElementById('status').textContent")
        assert browser.evaluate("document.getElementById('key-row').hidden") is False
        browser.type_into("#api-key", "page-key")
        tag_button = "JSON.stringify(document.getElementById('tag').getBoundingClientRect())"
        where = browser.evaluate(tag_button)
        # a click's mouse-down takes the focus from the key: its change event fetches the model line, whose new
        # text must not move the button before the mouse-up (the click would be lost, as it was under load)
        browser.evaluate("document.getElementById('api-key').dispatchEvent(new Event('change'))")
        assert browser.wait_for("!document.getElementById('model-line').textContent.includes('unavailable')")
        assert browser.evaluate(tag_button) == where
        browser.click("#tag")
        assert browser.wait_for("document.body.dataset.state === 'done'"), browser.evaluate(  # what the page said
            "document.body.dataset.state + ': ' + document.getElementById('status').textContent")
        marks = json.loads(browser.evaluate(MARKS_JS))
        screenshot(browser, "serve-page-api-key.png")
    assert [(m["label"], m["text"]) for m in marks] == [
        (e.label, e.text) for e in tagger.predict_text("Bob visited Berlin .")]


def test_docs_page_renders_offline(browser, tagger):
    with ThreadServer(create_app(tagger)) as server:
        browser.navigate(server.url + "/docs")
        assert browser.wait_for("document.querySelectorAll('.op').length >= 3")
        headings = browser.evaluate("Array.from(document.querySelectorAll('.op h3')).map(h => h.textContent)")
        screenshot(browser, "serve-docs.png")
    assert "post/predict" in headings and "get/health" in headings and "get/model" in headings
