"""tokentune.metrics against seqeval 1.2.2, the oracle: same numbers on random valid and invalid tag
sequences in default and strict mode, the worked examples of seqeval's README and conlleval's
documentation, and the cases where we answer and seqeval warns, returns NaN or crashes."""
from __future__ import annotations

import json
import math
import random
import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score
from seqeval.scheme import BILOU, IOB2, IOBES, IOE2

from tokentune.errors import ConfigError, DataError
from tokentune.metrics import InvalidTagError, partial_match_report, score_spans, score_tags
from tokentune.schemes import spans_to_tags, tags_to_spans

SEQEVAL_SCHEMES = {"IOB2": IOB2, "IOE2": IOE2, "BIOES": IOBES, "BILOU": BILOU}
# prefixes each strict scheme accepts besides O (seqeval raises on any other)
STRICT_PREFIXES = {"IOB2": "BI", "IOE2": "IE", "BIOES": "BIES", "BILOU": "BILU"}
TYPES = ["PER", "LOC", "ORG"]
# tags that are not well formed in any scheme: seqeval still reads them in its default mode
ODD_TAGS = ["B", "I", "E", "S", "X-PER", ".", ".-PER", "O-PER", "B-PER-X", "BPER", "I--LOC", "U-PER",
            "L-LOC", "B-_", "I-", "-"]


def seqeval_report(gold, pred, **kwargs) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return classification_report(gold, pred, output_dict=True, **kwargs)


def assert_same(ours: dict, ref: dict) -> None:
    """Every number of seqeval's classification_report, per type and averaged, equals ours."""
    names = [k for k in ref if k not in ("micro avg", "macro avg", "weighted avg")]
    assert list(ours["per_type"]) == names
    pairs = (("precision", "precision"), ("recall", "recall"), ("f1", "f1-score"))
    for name in names:
        for key, ref_key in (*pairs, ("support", "support")):
            assert ours["per_type"][name][key] == pytest.approx(ref[name][ref_key], abs=1e-12), (name, key)
    for key, ref_key in pairs:
        assert ours[key] == pytest.approx(ref["micro avg"][ref_key], abs=1e-12), key
        assert ours["weighted"][key] == pytest.approx(ref["weighted avg"][ref_key], abs=1e-12), key
        if names:
            assert ours["macro"][key] == pytest.approx(ref["macro avg"][ref_key], abs=1e-12), key
        else:  # seqeval: mean of nothing is NaN; we say 0.0
            assert math.isnan(ref["macro avg"][ref_key]) and ours["macro"][key] == 0.0
    assert ours["counts"]["gold"] == ref["micro avg"]["support"]


def check_against_seqeval(gold, pred, mode="default", scheme=None) -> dict:
    ours = score_tags(gold, pred, mode=mode, scheme=scheme)
    kwargs = {"mode": "strict", "scheme": SEQEVAL_SCHEMES[scheme]} if mode == "strict" else {}
    assert_same(ours, seqeval_report(gold, pred, **kwargs))
    if sum(map(len, gold)):
        assert ours["accuracy"] == pytest.approx(accuracy_score(gold, pred), abs=1e-12)
    return ours


# ---------------------------------------------------------------------------------------------------
# Random tag sequences: well-formed ones in a scheme, then noise
# ---------------------------------------------------------------------------------------------------
def ioe2_tags(spans, length):
    tags = ["O"] * length
    for label, start, end in spans:
        for i in range(start, end - 1):
            tags[i] = f"I-{label}"
        tags[end - 1] = f"E-{label}"
    return tags


def random_spans(rng: random.Random, length: int):
    spans, i = [], 0
    while i < length:
        if rng.random() < 0.4:
            end = min(length, i + rng.randint(1, 3))
            spans.append((rng.choice(TYPES), i, end))
            i = end + (rng.random() < 0.6)  # sometimes adjacent entities
        else:
            i += 1
    return spans


def well_formed(rng: random.Random, length: int, scheme: str) -> list[str]:
    spans = random_spans(rng, length)
    return ioe2_tags(spans, length) if scheme == "IOE2" else spans_to_tags(spans, length, scheme)


def noisy(rng: random.Random, tags: list[str], prefixes: str, rate: float, odd: bool) -> list[str]:
    """Replace some tags by random ones: random prefixes make invalid transitions."""
    out = []
    for tag in tags:
        if rng.random() >= rate:
            out.append(tag)
        elif odd and rng.random() < 0.3:
            out.append(rng.choice(ODD_TAGS))
        else:
            prefix = rng.choice("O" + prefixes)
            out.append("O" if prefix == "O" else f"{prefix}-{rng.choice(TYPES)}")
    return out


def random_case(rng: random.Random, strict_scheme: str | None):
    """(gold, pred): scheme mixes and odd tags for default mode; only the scheme's prefixes for strict."""
    gold, pred = [], []
    for _ in range(rng.randint(1, 4)):
        length = rng.randint(0, 9)
        if strict_scheme:
            scheme, prefixes, odd = strict_scheme, STRICT_PREFIXES[strict_scheme], False
        else:
            scheme = rng.choice(["IOB1", "IOB2", "BIOES", "BILOU", "IOE2"])
            prefixes, odd = rng.choice(["BI", "BIES", "BILU", "BIESLU"]), True
        g = noisy(rng, well_formed(rng, length, scheme), prefixes, rng.choice([0.0, 0.1, 0.3]), odd)
        p = noisy(rng, g if rng.random() < 0.7 else well_formed(rng, length, scheme), prefixes,
                  rng.choice([0.05, 0.2, 0.5]), odd)
        gold.append(g)
        pred.append(p)
    return gold, pred


@st.composite
def cases(draw, strict_scheme=None):
    return random_case(random.Random(draw(st.integers(0, 2 ** 32 - 1))), strict_scheme)


def token_pairs(tags):
    """Hypothesis-shrinkable corpora: each token is (gold, predicted or None = same as gold)."""
    sentence = st.lists(st.tuples(tags, st.one_of(st.none(), tags)), max_size=8)
    return st.lists(sentence, min_size=1, max_size=5).map(
        lambda sents: ([[g for g, _ in s] for s in sents], [[g if p is None else p for g, p in s] for s in sents]))


def prefixed(prefixes: str):
    return st.one_of(st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from(prefixes),
                                             st.sampled_from(TYPES[:2])))


FAST = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------------
# Properties: identical to seqeval
# ---------------------------------------------------------------------------------------------------
@FAST
@given(cases())
def test_default_mode_matches_seqeval_on_scheme_mixes(case):
    check_against_seqeval(*case)


@FAST
@given(token_pairs(st.one_of(prefixed("BIESUL"), st.sampled_from(ODD_TAGS))))
def test_default_mode_matches_seqeval_on_any_tags(case):
    gold, pred = case
    ours = check_against_seqeval(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours["precision"] == pytest.approx(precision_score(gold, pred), abs=1e-12)
        assert ours["recall"] == pytest.approx(recall_score(gold, pred), abs=1e-12)
        assert ours["f1"] == pytest.approx(f1_score(gold, pred), abs=1e-12)


@pytest.mark.parametrize("scheme", list(SEQEVAL_SCHEMES))
@FAST
@given(data=st.data())
def test_strict_mode_matches_seqeval(scheme, data):
    if data.draw(st.booleans()):
        gold, pred = data.draw(cases(scheme))
    else:
        gold, pred = data.draw(token_pairs(prefixed(STRICT_PREFIXES[scheme])))
    ours = check_against_seqeval(gold, pred, mode="strict", scheme=scheme)
    seq = SEQEVAL_SCHEMES[scheme]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
            assert ours[name] == pytest.approx(fn(gold, pred, mode="strict", scheme=seq), abs=1e-12)


def test_ten_thousand_seeded_cases_match_seqeval():
    """A fixed, fast sweep: 10,000 random corpora, 60% in default mode, 40% strict in each scheme."""
    rng = random.Random(20240611)
    strict = list(SEQEVAL_SCHEMES)
    for i in range(10_000):
        scheme = strict[i % 4] if i % 5 >= 3 else None
        gold, pred = random_case(rng, scheme)
        try:
            check_against_seqeval(gold, pred, mode="strict" if scheme else "default", scheme=scheme)
        except AssertionError as err:
            raise AssertionError(f"case {i} ({scheme or 'default'}): gold={gold} pred={pred}") from err


def test_a_larger_corpus_matches_seqeval():
    """Thousands of sentences in one call: offsets across sentence boundaries stay right."""
    rng = random.Random(7)
    gold, pred = [], []
    for _ in range(300):
        g, p = random_case(rng, None)
        gold += g
        pred += p
    check_against_seqeval(gold, pred)
    gold, pred = [], []
    for _ in range(300):
        g, p = random_case(rng, "BIOES")
        gold += g
        pred += p
    check_against_seqeval(gold, pred, mode="strict", scheme="BIOES")


# ---------------------------------------------------------------------------------------------------
# Worked examples
# ---------------------------------------------------------------------------------------------------
def test_seqeval_readme_example():
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    result = check_against_seqeval(y_true, y_pred)
    assert result["f1"] == 0.5 and result["accuracy"] == 0.8
    assert result["per_type"] == {
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1},
    }
    assert result["macro"] == result["weighted"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    assert result["counts"] == {"gold": 2, "predicted": 2, "correct": 1}


def test_seqeval_readme_strict_example():
    y_true, y_pred = [["B-NP", "I-NP", "O"]], [["I-NP", "I-NP", "O"]]
    assert check_against_seqeval(y_true, y_pred)["per_type"]["NP"]["f1"] == 1.0  # lenient: I-NP starts one
    strict = check_against_seqeval(y_true, y_pred, mode="strict", scheme="IOB2")
    assert strict["per_type"]["NP"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_seqeval_docstring_averages():
    y_true = [["O", "O", "B-MISC", "I-MISC", "B-MISC", "O", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "B-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    result = check_against_seqeval(y_true, y_pred)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["macro"]["f1"] == 0.75
    assert result["weighted"]["f1"] == pytest.approx(2 / 3)
    assert [row["f1"] for row in result["per_type"].values()] == [0.5, 1.0]


# conlleval's documentation (CoNLL-2000 "output example"): word, POS, gold chunk, predicted chunk;
# the predicted column opens two chunks with I-NP, which conlleval reads as the start of a chunk.
CONLLEVAL_EXAMPLE = [
    [("Boeing", "B-NP", "I-NP"), ("'s", "B-NP", "B-NP"), ("747", "I-NP", "I-NP"), ("jetliners", "I-NP", "I-NP"),
     (".", "O", "O")],
    [("Rockwell", "B-NP", "I-NP"), ("said", "B-VP", "B-VP"), ("the", "B-NP", "B-NP"), ("agreement", "I-NP", "I-NP")],
]


def test_conlleval_documentation_example():
    gold = [[g for _, g, _ in s] for s in CONLLEVAL_EXAMPLE]
    pred = [[p for _, _, p in s] for s in CONLLEVAL_EXAMPLE]
    lenient = check_against_seqeval(gold, pred)
    assert (lenient["precision"], lenient["recall"], lenient["f1"]) == (1.0, 1.0, 1.0)
    assert lenient["counts"] == {"gold": 5, "predicted": 5, "correct": 5}
    assert lenient["accuracy"] == pytest.approx(7 / 9)  # conlleval's accuracy counts equal tags
    strict = check_against_seqeval(gold, pred, mode="strict", scheme="IOB2")
    assert strict["counts"] == {"gold": 5, "predicted": 3, "correct": 3}
    assert (strict["precision"], strict["recall"]) == (1.0, 0.6)


# ---------------------------------------------------------------------------------------------------
# Our own readings, checked through an equivalent input to seqeval
# ---------------------------------------------------------------------------------------------------
@FAST
@given(token_pairs(st.sampled_from(["O", "NN", "VB", "DT", "B-NP", "ADJ-X"])))
def test_plain_scores_each_tag_as_a_one_word_entity(case):
    gold, pred = case
    ours = score_tags(gold, pred, scheme="PLAIN")
    as_single = [[t if t == "O" else f"S-{t}" for t in s] for s in gold], \
        [[t if t == "O" else f"S-{t}" for t in s] for s in pred]
    assert_same(ours, seqeval_report(*as_single))
    assert ours["scheme"] == "PLAIN" and set(ours["per_type"]) <= {"NN", "VB", "DT", "B-NP", "ADJ-X"}


@FAST
@given(token_pairs(prefixed("BILU")))
def test_bilou_in_default_mode_reads_u_and_l_as_s_and_e(case):
    gold, pred = case
    as_bioes = [[{"U": "S", "L": "E"}.get(t[0], t[0]) + t[1:] for t in s] for s in gold], \
        [[{"U": "S", "L": "E"}.get(t[0], t[0]) + t[1:] for t in s] for s in pred]
    assert_same(score_tags(gold, pred, scheme="BILOU"), seqeval_report(*as_bioes))


def test_bilou_adjacent_units_stay_two_entities():
    gold = [["U-PER", "U-PER"]]
    assert score_tags(gold, gold, scheme="BILOU")["counts"]["gold"] == 2
    assert score_tags(gold, gold)["counts"]["gold"] == 1  # seqeval's default mode merges them


@FAST
@given(token_pairs(prefixed("BI")))
def test_score_spans_equals_score_tags_on_decoded_spans(case):
    gold, pred = case
    from_tags = score_tags(gold, pred)
    from_spans = score_spans([tags_to_spans(s, "IOB2") for s in gold], [tags_to_spans(s, "IOB2") for s in pred])
    assert from_spans["accuracy"] is None and from_spans["mode"] == "spans"
    for key in ("precision", "recall", "f1", "macro", "weighted", "per_type", "counts"):
        assert from_spans[key] == from_tags[key]


def test_score_spans_counts_duplicates_once_and_keeps_sentences_apart():
    gold = [[("PER", 0, 2), ("PER", 0, 2)], [("LOC", 0, 1)]]
    pred = [[("PER", 0, 2)], [("PER", 0, 2), ("LOC", 1, 2)]]
    result = score_spans(gold, pred)
    assert result["counts"] == {"gold": 2, "predicted": 3, "correct": 1}
    assert result["per_type"]["PER"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}


def test_score_spans_rejects_bad_spans():
    with pytest.raises(DataError, match="sentence 1"):
        score_spans([[], [("PER", 2, 2)]], [[], []])
    with pytest.raises(DataError, match="numbers of sentences"):
        score_spans([[]], [])


# ---------------------------------------------------------------------------------------------------
# Zero division, output types, errors
# ---------------------------------------------------------------------------------------------------
def test_zero_division_gives_zero_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nothing = score_tags([["O", "O"]], [["O", "O"]])
        missed = score_tags([["B-PER", "O"]], [["O", "O"]])
        spurious = score_tags([["O", "O"]], [["B-PER", "O"]])
        empty = score_tags([[]], [[]])
    assert nothing["per_type"] == {} and nothing["f1"] == 0.0 and nothing["macro"]["f1"] == 0.0
    assert nothing["accuracy"] == 1.0 and empty["accuracy"] == 0.0
    assert missed["per_type"]["PER"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert spurious["weighted"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert_same(missed, seqeval_report([["B-PER", "O"]], [["O", "O"]]))
    assert_same(spurious, seqeval_report([["O", "O"]], [["B-PER", "O"]]))


def test_result_is_plain_json():
    result = score_tags([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]], mode="strict", scheme="BIO")
    assert json.loads(json.dumps(result)) == result
    assert set(result) == {"precision", "recall", "f1", "accuracy", "macro", "weighted", "per_type", "mode",
                           "scheme", "counts"}
    assert result["mode"] == "strict" and result["scheme"] == "IOB2"
    for value in (result["precision"], result["macro"]["f1"], result["per_type"]["PER"]["f1"]):
        assert type(value) is float
    assert type(result["per_type"]["PER"]["support"]) is int and type(result["counts"]["gold"]) is int


def test_length_mismatch_names_the_sentence_and_both_lengths():
    with pytest.raises(DataError) as err:
        score_tags([["O"], ["O", "B-PER", "O"]], [["O"], ["O", "B-PER"]])
    message = str(err.value)
    assert "sentence 1" in message and "expected 3" in message and "found 2" in message
    with pytest.raises(DataError, match="numbers of sentences"):
        score_tags([["O"]], [["O"], ["O"]])


@pytest.mark.parametrize("scheme", [None, "IOB1", "IO"])
def test_strict_needs_a_supported_scheme(scheme):
    with pytest.raises(ConfigError, match="strict mode needs"):
        score_tags([["O"]], [["O"]], mode="strict", scheme=scheme)


def test_unknown_mode_and_scheme_are_config_errors():
    with pytest.raises(ConfigError, match="mode"):
        score_tags([["O"]], [["O"]], mode="lenient")
    with pytest.raises(ConfigError, match="IOE2"):
        score_tags([["O"]], [["O"]], scheme="XYZ")


def test_strict_rejects_tags_outside_the_scheme_where_seqeval_raises():
    gold, pred = [["O"], ["B-PER", "E-PER"]], [["O"], ["B-PER", "I-PER"]]
    with pytest.raises(ValueError):
        seqeval_report(gold, pred, mode="strict", scheme=IOB2)
    with pytest.raises(InvalidTagError) as err:
        score_tags(gold, pred, mode="strict", scheme="IOB2")
    assert (err.value.sentence, err.value.position, err.value.tag, err.value.side) == (1, 1, "E-PER", "gold")
    assert "IOB2" in str(err.value) and "Fix:" in str(err.value)


def test_empty_tag_is_a_data_error():
    with pytest.raises(DataError, match="sentence 0, word 1"):
        score_tags([["O", "O"]], [["O", ""]])


# ---------------------------------------------------------------------------------------------------
# Partial matches (SemEval-2013 task 9.1 scenarios, as nervaluate's README tabulates them)
# ---------------------------------------------------------------------------------------------------
SCENARIOS = {  # name: (gold, pred, {kind: outcome})
    "I exact": (["B-DRUG"], ["B-DRUG"], dict(strict="correct", exact="correct", partial="correct", type="correct")),
    "II spurious": (["O"], ["B-BRAND"], dict(strict="spurious", exact="spurious", partial="spurious", type="spurious")),
    "III missed": (["B-BRAND"], ["O"], dict(strict="missed", exact="missed", partial="missed", type="missed")),
    "IV wrong type": (["B-DRUG"], ["B-BRAND"],
                      dict(strict="incorrect", exact="correct", partial="correct", type="incorrect")),
    "V wrong boundaries": (["O", "B-DRUG"], ["B-DRUG", "I-DRUG"],
                           dict(strict="incorrect", exact="incorrect", partial="partial", type="correct")),
    "VI both wrong": (["O", "B-GROUP"], ["B-DRUG", "I-DRUG"],
                      dict(strict="incorrect", exact="incorrect", partial="partial", type="incorrect")),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_partial_match_scenarios(name):
    gold, pred, expected = SCENARIOS[name]
    overall = partial_match_report([gold], [pred])["overall"]
    for kind, outcome in expected.items():
        counts = {k: overall[kind][k] for k in ("correct", "incorrect", "partial", "missed", "spurious")}
        assert counts == {k: int(k == outcome) for k in counts}, kind


def test_partial_match_totals_and_scores():
    gold = [s[0] for s in SCENARIOS.values()]
    pred = [s[1] for s in SCENARIOS.values()]
    report = partial_match_report(gold, pred)
    partial = report["overall"]["partial"]
    assert (partial["correct"], partial["partial"], partial["missed"], partial["spurious"]) == (2, 2, 1, 1)
    assert partial["possible"] == 5 and partial["actual"] == 5
    assert partial["precision"] == partial["recall"] == pytest.approx(3 / 5)  # (COR + PAR/2) / 5
    assert report["overall"]["strict"]["precision"] == pytest.approx(1 / 5)
    assert report["per_type"]["DRUG"]["type"]["correct"] == 2  # I and V, charged to the gold type
    assert report["per_type"]["BRAND"]["strict"]["spurious"] == 1
