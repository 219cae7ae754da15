"""Error analysis: the taxonomy on small cases, and errors that add up to the scores on random ones."""
from __future__ import annotations

import random

import pytest

from tokentune.data import Corpus, Sentence
from tokentune.inference import TokenPrediction
from tokentune.metrics import score_spans
from tokentune.reporting.error_analysis import classify_sentence, confusion_counts, error_records, pick_examples, summarize
from tokentune.schemes import spans_to_tags, tags_to_spans


def kinds(gold, pred):
    return [(r["kind"], r["gold"], r["predicted"], r["fp"], r["fn"]) for r in classify_sentence(gold, pred)]


def test_exact_matches_are_not_errors():
    assert classify_sentence([("PER", 0, 2), ("LOC", 3, 4)], [("LOC", 3, 4), ("PER", 0, 2)]) == []


@pytest.mark.parametrize("gold, pred, kind", [
    (("ORG", 0, 2), ("LOC", 0, 2), "wrong_type"),
    (("ORG", 0, 3), ("ORG", 1, 3), "wrong_boundary"),
    (("ORG", 0, 1), ("ORG", 0, 2), "wrong_boundary"),
    (("ORG", 0, 3), ("LOC", 2, 4), "wrong_type_and_boundary"),
])
def test_overlapping_errors_are_one_false_positive_and_one_false_negative(gold, pred, kind):
    assert kinds([gold], [pred]) == [(kind, gold, pred, True, True)]


def test_no_overlap_is_spurious_or_missed():
    assert kinds([("PER", 0, 1)], [("PER", 2, 3)]) == [
        ("missed", ("PER", 0, 1), None, False, True), ("spurious", None, ("PER", 2, 3), True, False)]


def test_a_split_entity_counts_its_gold_once():
    # gold "New York City" predicted as "New York" + "City": two false positives, one false negative
    records = kinds([("LOC", 0, 3)], [("LOC", 0, 2), ("LOC", 2, 3)])
    assert [r[0] for r in records] == ["wrong_boundary", "wrong_boundary"]
    assert sum(r[3] for r in records) == 2 and sum(r[4] for r in records) == 1


def test_a_merged_entity_counts_each_gold():
    records = kinds([("PER", 0, 1), ("PER", 1, 2)], [("PER", 0, 2)])
    assert [r[0] for r in records] == ["wrong_boundary", "wrong_boundary"]
    assert sum(r[3] for r in records) == 1 and sum(r[4] for r in records) == 2


def test_the_best_overlap_is_chosen():
    # the prediction overlaps ORG by one word and PER by two: it is about the PER entity
    records = classify_sentence([("ORG", 0, 1), ("PER", 1, 3)], [("PER", 0, 3)])
    assert records[0]["gold"] == ("PER", 1, 3) and records[0]["kind"] == "wrong_boundary"
    assert records[1]["kind"] == "wrong_type_and_boundary" and not records[1]["fp"]


def random_sentences(count: int, seed: int):
    rng = random.Random(seed)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG"]
    out = []
    for _ in range(count):
        n = rng.randint(1, 12)
        gold = tags_to_spans([rng.choice(tags) for _ in range(n)])
        pred = tags_to_spans([rng.choice(tags) for _ in range(n)])
        out.append((n, gold, pred))
    return out


def test_errors_add_up_to_the_scores():
    sentences = random_sentences(400, seed=3)
    scores = score_spans([g for _, g, _ in sentences], [p for _, _, p in sentences])
    records = [r for _, g, p in sentences for r in classify_sentence(g, p)]
    counts = scores["counts"]
    assert sum(r["fp"] for r in records) == counts["predicted"] - counts["correct"]
    assert sum(r["fn"] for r in records) == counts["gold"] - counts["correct"]
    # every non-exact predicted entity is in exactly one record; every non-exact gold in one at least
    for _, gold, pred in sentences:
        records = classify_sentence(gold, pred)
        wrong_pred = set(pred) - set(gold)
        assert sorted(r["predicted"] for r in records if r["fp"]) == sorted(wrong_pred)
        assert {r["gold"] for r in records if r["gold"]} == set(gold) - set(pred)
        assert all(r["kind"] in ("spurious", "missed") or r["gold"] and r["predicted"] for r in records)


def test_confusion_rows_sum_to_support():
    sentences = random_sentences(300, seed=5)
    labels, rows = confusion_counts([g for _, g, _ in sentences], [p for _, _, p in sentences])
    assert labels == ["LOC", "ORG", "PER"]
    support = score_spans([g for _, g, _ in sentences], [p for _, _, p in sentences])["per_type"]
    for label in labels:
        assert sum(rows[label].values()) == support[label]["support"]
    assert rows["spurious"]["missed"] == 0 and sum(rows["spurious"].values()) > 0
    labels, rows = confusion_counts([[("ORG", 0, 2)]], [[("LOC", 0, 1), ("PER", 3, 4)]])
    assert rows["ORG"]["LOC"] == 1 and rows["spurious"]["PER"] == 1 and rows["ORG"]["missed"] == 0


def small_corpus():
    words = [["Alice", "met", "Bob", "in", "New", "York", "."], ["Acme", "said", "."], ["Nothing", "here"]]
    gold = [[("PER", 0, 1), ("PER", 2, 3), ("LOC", 4, 6)], [("ORG", 0, 1)], []]
    pred = [[("PER", 0, 1), ("LOC", 2, 3), ("LOC", 5, 6)], [], [("MISC", 1, 2)]]
    corpus = Corpus([Sentence(tuple(w), tuple(g), line=1 + 10 * i) for i, (w, g) in enumerate(zip(words, gold))],
                    path="test.txt")
    predictions = [TokenPrediction(w, spans_to_tags(p, len(w)), p, [0.9] * len(p)) for w, p in zip(words, pred)]
    return corpus, predictions


def test_error_records_carry_the_sentence_and_both_sides():
    corpus, predictions = small_corpus()
    records = error_records(corpus, predictions, split="test")
    assert [r["kind"] for r in records] == ["wrong_type", "wrong_boundary", "missed", "spurious"]
    first = records[0]
    assert first["gold"] == {"label": "PER", "start": 2, "end": 3, "text": "Bob"}
    assert first["predicted"] == {"label": "LOC", "start": 2, "end": 3, "text": "Bob", "score": 0.9}
    assert first["text"] == "Alice met Bob in New York ." and first["line"] == 1 and first["file"] == "test.txt"
    assert [s["text"] for s in first["gold_spans"]] == ["Alice", "Bob", "New York"]
    assert [s["label"] for s in first["predicted_spans"]] == ["PER", "LOC", "LOC"]
    assert records[2]["predicted"] is None and records[3]["gold"] is None and records[3]["split"] == "test"
    summary = summarize(records)
    assert summary["total"] == 4 and summary["by_kind"]["missed"] == 1
    assert {"kind": "wrong_type", "gold": "PER", "predicted": "LOC", "count": 1} in summary["by_pair"]


def test_examples_cover_several_label_pairs_and_prefer_short_sentences():
    records = [{"kind": "wrong_type", "gold": {"label": g}, "predicted": {"label": p}, "words": ["w"] * n,
                "sentence": i, "text": t} for i, (g, p, n, t) in enumerate(
        [("ORG", "LOC", 5, "a"), ("ORG", "LOC", 5, "b"), ("ORG", "LOC", 100, "c"), ("PER", "ORG", 5, "d"),
         ("ORG", "LOC", 5, "e"), ("PER", "ORG", 5, "a")])]
    picked = pick_examples(records, "wrong_type", 3)
    assert [r["sentence"] for r in picked] == [0, 3, 1]
    assert [r["sentence"] for r in pick_examples(records, "wrong_type", 9)] == [0, 3, 1, 4, 2]
    assert pick_examples(records, "missed") == []


def random_spans(rng: random.Random, length: int, valid: bool) -> list[tuple]:
    """Spans over ``length`` words: in order and apart, or (``valid=False``) also overlapping, out of
    order, empty or with an empty label."""
    spans, at = [], 0
    while at < length and rng.random() < 0.7:
        start = rng.randrange(at, length)
        end = rng.randrange(start + 1, length + 1)
        spans.append((rng.choice(["PER", "LOC", "B", "X-Y"]), start, end))
        at = end if rng.random() < 0.8 else end + 1
    if not valid and length:
        spans.append(rng.choice([("PER", 0, length), ("LOC", 0, 0), ("", 0, 1), ("ORG", length - 1, length)]))
        rng.shuffle(spans)
    return spans


@pytest.mark.parametrize("valid", [True, False])
def test_spans_as_the_scorer_reads_them_equal_the_tag_round_trip(valid):
    """decoded_spans skips writing IOB2 tags and reading them back where that gives the spans again; the
    round trip is the oracle, on valid spans and on the overlapping, unordered or empty ones it repairs."""
    from tokentune.reporting.error_analysis import decoded_spans

    rng = random.Random(5)
    for _ in range(2000):
        length = rng.randrange(0, 9)
        spans = random_spans(rng, length, valid)
        for scheme in ("IOB2", "PLAIN"):
            if valid or scheme == "IOB2":
                assert decoded_spans(spans, length, scheme) == tags_to_spans(spans_to_tags(spans, length, scheme),
                                                                            scheme), (spans, length, scheme)
