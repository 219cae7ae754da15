"""Tag schemes: round trips between every pair of schemes, agreement with seqeval, detection, validity."""
from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokentune.errors import ConfigError
from tokentune.schemes import (
    SCHEMES,
    detect_scheme,
    find_invalid,
    get_scheme,
    is_valid_transition,
    labels_for,
    spans_to_tags,
    tags_to_spans,
)

TYPES = ("PER", "LOC", "creative-work")
PREFIXED = [name for name, scheme in SCHEMES.items() if scheme.prefixed]


@st.composite
def span_sets(draw, max_len: int = 12):
    """Non-overlapping spans over a sentence, adjacent same-type entities included on purpose."""
    length = draw(st.integers(0, max_len))
    spans, i = [], 0
    while i < length:
        if draw(st.booleans()):
            end = draw(st.integers(i + 1, min(length, i + 4)))
            spans.append((draw(st.sampled_from(TYPES)), i, end))
            i = end
        else:
            i += 1
    return spans, length


def expected_after(spans, scheme_name):
    """What a scheme can represent: IO merges adjacent same-type entities, PLAIN keeps one label per word."""
    if scheme_name == "PLAIN":
        return [(label, i, i + 1) for label, start, end in spans for i in range(start, end)]
    if scheme_name != "IO":
        return list(spans)
    merged = []
    for label, start, end in spans:
        if merged and merged[-1][0] == label and merged[-1][2] == start:
            merged[-1] = (label, merged[-1][1], end)
        else:
            merged.append((label, start, end))
    return merged


@settings(max_examples=200, deadline=None)
@given(span_sets(), st.sampled_from(list(SCHEMES)))
def test_spans_survive_a_round_trip_through_each_scheme(case, scheme):
    spans, length = case
    tags = spans_to_tags(spans, length, scheme)
    assert len(tags) == length
    assert tags_to_spans(tags, scheme) == expected_after(spans, scheme)
    assert find_invalid(tags, scheme) == []  # encoding never produces a sequence its scheme forbids


@settings(max_examples=200, deadline=None)
@given(span_sets(), st.sampled_from(list(SCHEMES)), st.sampled_from(list(SCHEMES)))
def test_spans_survive_conversion_between_any_two_schemes(case, first, second):
    spans, length = case
    via_first = tags_to_spans(spans_to_tags(spans, length, first), first)
    via_both = tags_to_spans(spans_to_tags(via_first, length, second), second)
    assert via_both == expected_after(expected_after(spans, first), second)
    if first not in ("IO", "PLAIN") and second not in ("IO", "PLAIN"):
        assert via_both == spans


def seqeval_entities(tags):
    from seqeval.metrics.sequence_labeling import get_entities

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns on tags it considers odd; we compare the result only
        return sorted((label, start, end + 1) for label, start, end in get_entities(list(tags)))


def random_tags(prefixes):
    tag = st.one_of(st.just("O"), st.builds(lambda p, t: f"{p}-{t}", st.sampled_from(prefixes), st.sampled_from(TYPES)))
    return st.lists(tag, max_size=14)


@pytest.mark.parametrize("scheme,prefixes", [("IOB1", "BI"), ("IOB2", "BI"), ("BIOES", "BIES")])
def test_decoding_matches_seqeval_on_random_and_invalid_sequences(scheme, prefixes):
    @settings(max_examples=300, deadline=None)
    @given(random_tags(list(prefixes)))
    def check(tags):
        assert sorted(tags_to_spans(tags, scheme)) == seqeval_entities(tags)

    check()


@pytest.mark.parametrize("tags,scheme,spans", [
    (["I-PER", "I-PER", "B-PER", "O"], "IOB1", [("PER", 0, 2), ("PER", 2, 3)]),
    (["O", "I-PER", "I-LOC"], "IOB2", [("PER", 1, 2), ("LOC", 2, 3)]),  # lenient: I- after O starts one
    (["B-PER", "E-PER", "S-LOC"], "BIOES", [("PER", 0, 2), ("LOC", 2, 3)]),
    (["B-PER", "L-PER", "U-PER"], "BILOU", [("PER", 0, 2), ("PER", 2, 3)]),
    (["NN", "VB", "O"], "PLAIN", [("NN", 0, 1), ("VB", 1, 2)]),
    (["B-creative-work", "I-creative-work"], "IOB2", [("creative-work", 0, 2)]),
])
def test_known_decodings(tags, scheme, spans):
    assert tags_to_spans(tags, scheme) == spans


@pytest.mark.parametrize("sequences,name", [
    ([["I-ORG", "O", "I-PER", "B-PER"]], "IOB1"),
    ([["B-ORG", "I-ORG", "O", "B-PER"]], "IOB2"),
    ([["S-ORG", "B-PER", "E-PER"]], "BIOES"),
    ([["U-ORG", "B-PER", "L-PER"]], "BILOU"),
    ([["I-ORG", "O", "I-PER"]], "IO"),
    ([["NN", "VBZ", "DT"]], "PLAIN"),
    ([["O", "O"]], "IOB2"),
    # an IOB2 file with one slip (O I-X) stays IOB2: its correct B- tags would all be broken in IOB1
    ([["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC"], ["B-PER", "O", "B-PER"]], "IOB2"),
    # an IOB1 file with one slip (O B-X) stays IOB1
    ([["I-PER", "I-PER", "O", "B-LOC"], ["I-ORG", "O", "I-PER", "B-PER"]], "IOB1"),
    ([["O", "I-PER", "O", "B-LOC"]], "IOB1"),  # a tie: IOB1, as before
])
def test_detect_scheme(sequences, name):
    assert detect_scheme(sequences).name == name


def test_one_slip_in_an_iob2_file_is_reported_where_it_is_and_repair_drops_only_it(tmp_path):
    from tokentune.data import read_conll

    path = tmp_path / "one_slip.conll"
    path.write_text("John\tB-person\nSmith\tI-person\nlikes\tO\nthe\tO\nNew\tI-location\nYork\tI-location\n"
                    "Knicks\tB-location\n\nAnn\tB-person\nand\tO\nBob\tB-person\n")
    corpus = read_conll(str(path), repair="drop-entity")
    assert corpus.scheme == "IOB2" and [item.sentence for item in corpus.invalid] == [0]
    assert [s.spans for s in corpus] == [(("person", 0, 2), ("location", 6, 7)), (("person", 0, 1), ("person", 2, 3))]


@pytest.mark.parametrize("prev,tag,scheme,ok", [
    ("O", "I-PER", "IOB2", False),
    ("B-PER", "I-PER", "IOB2", True),
    ("B-PER", "I-LOC", "IOB2", False),
    ("O", "B-PER", "IOB1", False),
    ("I-PER", "B-PER", "IOB1", True),
    ("B-PER", "O", "BIOES", False),
    ("B-PER", "E-PER", "BIOES", True),
    ("S-PER", "S-PER", "BIOES", True),
    ("B-PER", "O", "BILOU", False),
    ("O", "S-PER", "IOB2", False),  # a prefix the scheme does not have
])
def test_is_valid_transition(prev, tag, scheme, ok):
    assert is_valid_transition(prev, tag, scheme) is ok


def test_find_invalid_reports_positions_including_the_end():
    found = find_invalid(["O", "I-PER", "B-LOC"], "BIOES", sentence=4)
    assert [(i.sentence, i.position, i.previous, i.tag) for i in found] == [
        (4, 1, "O", "I-PER"), (4, 2, "I-PER", "B-LOC"), (4, 3, "B-LOC", "O")]


def test_get_scheme_aliases_and_unknown_names():
    assert get_scheme("bio").name == "IOB2"
    assert get_scheme("IOBES").name == "BIOES"
    with pytest.raises(ConfigError, match="unknown tag scheme 'XYZ'"):
        get_scheme("XYZ")


def test_labels_for_puts_O_first_and_covers_every_prefix():
    assert labels_for(["PER", "LOC"], "BIOES") == ["O", "B-LOC", "I-LOC", "E-LOC", "S-LOC",
                                                   "B-PER", "I-PER", "E-PER", "S-PER"]


@pytest.mark.parametrize("text, message", [
    # keyphrase or chunk tags without types: not one-word entities typed B and I
    ("John B\nSmith I\nsaid O\n", r":1: tag 'B' is a scheme prefix without an entity type.*Fix: give the entities a "
                                  r"type .* or pass --scheme PLAIN"),
    ("John\tb-per\nSmith\ti-per\nsaid\to\n", r":3: tag 'o' is the outside tag in lower case, as are the prefixes "
                                           r"\(e.g. 'b-per'\).*Fix: write O and the prefixes in upper case"),
])
def test_tags_a_scheme_cannot_read_are_refused_with_the_fix(tmp_path, text, message):
    from tokentune.data import read_conll
    from tokentune.errors import DataError

    path = tmp_path / "tags.conll"
    path.write_text(text)
    with pytest.raises(DataError, match="tags.conll" + message):
        read_conll(str(path))
    if text.startswith("John B"):  # with --scheme PLAIN they are labels of their own
        assert [s.spans for s in read_conll(str(path), scheme="PLAIN")] == [(("B", 0, 1), ("I", 1, 2))]
