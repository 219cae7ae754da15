"""report.html and the plots: self-contained, escaped, well formed, and rendered by headless Chromium.

The screenshots go to test-artifacts/ (gitignored) for a person to look at.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser

import pytest

from tokentune.data import Corpus, Sentence
from tokentune.inference import TokenPrediction
from tokentune.reporting import Report, SplitReport, write_report_files
from tokentune.schemes import spans_to_tags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ARTIFACTS = os.path.join(ROOT, "test-artifacts")
VOID = {"meta", "img", "br", "hr", "link", "input"}


def fake_report(words_extra=()) -> Report:
    words = [["Alice", "met", "Bob", "in", "New", "York", "."], ["<script>alert(1)</script>", "said", "&", "."],
             ["Acme", "hired", "Carol", "Smith", *words_extra], ["Dieter", "left", "today"]]
    gold = [[("PER", 0, 1), ("PER", 2, 3), ("LOC", 4, 6)], [("ORG", 0, 1)], [("ORG", 0, 1), ("PER", 2, 4)],
            [("PER", 0, 1)]]
    pred = [[("PER", 0, 1), ("LOC", 2, 3), ("ORG", 3, 4), ("LOC", 5, 6)], [("PER", 0, 1)],
            [("ORG", 0, 1), ("PER", 2, 3)], []]
    corpus = Corpus([Sentence(tuple(w), tuple(g), line=1 + 10 * i) for i, (w, g) in enumerate(zip(words, gold))],
                    path="test.txt")
    predictions = [TokenPrediction(w, spans_to_tags(p, len(w)), p, [0.8] * len(p)) for w, p in zip(words, pred)]
    from tokentune.metrics import score_tags

    metrics = score_tags([s.tags() for s in corpus], [p.tags for p in predictions])
    log = [{"step": s, "loss": 2.0 / s} for s in range(1, 30)] + [
        {"step": s, "eval_f1": 0.5 + s / 100, "eval_loss": 1.0 / s, "eval_precision": 0.6, "eval_recall": 0.5}
        for s in (10, 20, 29)]
    part = SplitReport.build("test", metrics, corpus, predictions)
    return Report("tiny <model>: evaluation report", {"model": "runs/tiny", "data": "test.txt"}, [part], log)


class Checker(HTMLParser):
    """Collects what a self-contained page must not have, and checks that tags are balanced."""

    def __init__(self):
        super().__init__()
        self.stack, self.problems, self.images = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "link", "iframe"):
            self.problems.append(f"<{tag}>")
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            if value and not value.startswith(("data:image/png;base64,", "#")):
                self.problems.append(f"{tag} {key}={value[:40]}")
        if tag == "img":
            self.images.append(attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"unbalanced </{tag}> (open: {self.stack[-3:]})")
        else:
            self.stack.pop()


def test_page_is_self_contained_well_formed_and_escaped(tmp_path):
    pytest.importorskip("matplotlib")
    written = write_report_files(str(tmp_path), fake_report())
    html = open(tmp_path / "report.html", encoding="utf-8").read()
    checker = Checker()
    checker.feed(html)
    assert checker.problems == [] and checker.stack == []
    assert len(checker.images) == 3 and all(img.get("alt") for img in checker.images)
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "tiny &lt;model&gt;" in html and "http" not in html.replace("http-equiv", "")
    # every type gets one colour, in the legend and on the marks
    assert html.count('class="swatch"') == 3 and 'data-label="PER"' in html
    for kind in ("wrong_type", "wrong_boundary", "spurious", "missed"):
        assert f'id="kind-{kind}"' in html
    assert "Partial matches" in html and sorted(os.path.basename(p) for p in written) == [
        "confusion_matrix.png", "errors.jsonl", "learning_curves.png", "per_type_f1.png", "report.html"]


def test_long_sentences_are_cut_around_the_error():
    from tokentune.reporting.html import example_html

    report = fake_report(words_extra=[f"w{i}" for i in range(80)])
    record = next(r for r in report.main.errors if r["kind"] == "wrong_boundary" and r["sentence"] == 2)
    html = example_html(record, {"PER": "#fff", "ORG": "#eee"})
    assert "…" in html and "w70" not in html and "w10" in html


def test_plots_never_touch_pyplot_or_the_backend():
    pytest.importorskip("matplotlib")
    code = ("import sys, tokentune.reporting; assert 'matplotlib' not in sys.modules\n"
            "import matplotlib; before = matplotlib.get_backend()\n"
            "from tokentune.reporting.plots import learning_curves_png\n"
            "png = learning_curves_png([{'step': 1, 'loss': 1.0}, {'step': 2, 'loss': 0.5}])\n"
            "assert png[:4] == b'\\x89PNG' and 'matplotlib.pyplot' not in sys.modules\n"
            "assert matplotlib.get_backend() == before\n")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "MPLBACKEND": "svg"})


def test_nothing_to_draw_gives_no_plot():
    pytest.importorskip("matplotlib")
    from tokentune.reporting import plots

    assert plots.learning_curves_png([]) is None
    assert plots.per_type_f1_png({"f1": 0.0, "per_type": {}}, "test") is None
    assert plots.confusion_png([], {"spurious": {"missed": 0}}, "test") is None


def find_chromium() -> str | None:
    return next((path for name in ("chromium", "chromium-browser", "google-chrome")
                 if (path := shutil.which(name))), None)


def screenshot(page: str, name: str, tmp_path) -> str:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)")
    os.makedirs(ARTIFACTS, exist_ok=True)
    target = os.path.join(ARTIFACTS, name)
    if os.path.exists(target):
        os.remove(target)
    command = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={target}",
               "--window-size=1200,2000", "file://" + os.path.abspath(page)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert os.path.exists(target), f"no screenshot (exit {done.returncode}): {done.stderr[-2000:]}"
    return target


def assert_non_trivial_png(path: str) -> None:
    from PIL import Image

    assert os.path.getsize(path) > 30_000, os.path.getsize(path)
    with Image.open(path) as image:
        assert image.size == (1200, 2000), image.size
        colours = image.convert("RGB").resize((300, 500)).getcolors(maxcolors=1_000_000)
    assert len(colours) > 200, "a blank or nearly blank page"
    white = max(count for count, rgb in colours if rgb == (255, 255, 255)) if any(
        rgb == (255, 255, 255) for _, rgb in colours) else 0
    assert white < 0.9 * 300 * 500, "mostly white: the page did not render"


def test_training_report_renders_in_chromium(tiny_model, tmp_path):
    pytest.importorskip("PIL")
    path = screenshot(os.path.join(tiny_model.output_dir, "report.html"), "report-training.png", tmp_path)
    assert_non_trivial_png(path)


def test_example_report_renders_in_chromium(tmp_path):
    pytest.importorskip("PIL")
    pytest.importorskip("matplotlib")
    write_report_files(str(tmp_path / "r"), fake_report())
    path = screenshot(str(tmp_path / "r" / "report.html"), "report-example.png", tmp_path)
    assert_non_trivial_png(path)
