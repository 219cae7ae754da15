"""brat standoff in and out (data/brat.py).

The fixture tests/data/brat/sony follows brat's published format, https://brat.nlplab.org/standoff.html
(mirrored at https://github.com/nlplab/brat/wiki/Annotation-Data-Format): ``NAME.txt`` + ``NAME.ann``,
``T1<TAB>Organization 0 4<TAB>Sony`` text-bound annotations with character offsets (end exclusive), and
the other kinds (E events, R relations, A/M attributes, N normalisations, # notes, * equivalences,
discontinuous ``START END;START END`` spans), which tokentune skips and counts.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentune.cli.main import main
from tokentune.data import Corpus, Sentence, read_corpus
from tokentune.data.brat import read_brat, write_brat
from tokentune.errors import ConfigError, DataError

from conftest import span_sentences

SONY = Path(__file__).parent / "data" / "brat" / "sony"


def make(folder: Path, text: str, ann: str, name: str = "doc") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.txt").write_bytes(text.encode("utf-8"))
    (folder / f"{name}.ann").write_text(ann, encoding="utf-8")
    return folder


def entities(corpus: Corpus) -> list[list[tuple[str, str]]]:
    return [[(label, " ".join(s.words[a:b])) for label, a, b in s.spans] for s in corpus]


def test_published_example_reads_entities_and_counts_what_it_skips():
    corpus = read_corpus(SONY)  # a folder with .ann files is brat by its contents
    assert len(corpus) == 2 and corpus.path == str(SONY)
    assert entities(corpus) == [
        [("Organization", "Sony"), ("MERGE-ORG", "joint venture"), ("Organization", "Ericsson"), ("Country", "Sweden")],
        [("Organization", "Sony"), ("Organization", "Ericsson")],
    ]
    assert [s.line for s in corpus] == [1, 2]  # the line of the .txt file
    assert {k: v for k, v in corpus.adjustments.items() if k.startswith("brat_")} == {
        "brat_events_skipped": 1, "brat_relations_skipped": 1, "brat_attributes_skipped": 2,
        "brat_normalizations_skipped": 1, "brat_notes_skipped": 1, "brat_equivalences_skipped": 1,
        "brat_discontinuous_skipped": 1}
    assert any("skipped brat annotations" in note and "1 discontinuous" in note and "2 attributes" in note
               for note in corpus.notes)


def test_lines_are_sentences_and_an_entity_across_lines_joins_them(tmp_path):
    text = "Acme hired John\nSmith yesterday.\n\n\nBerlin is big.\n"
    berlin = text.index("Berlin")  # brat writes a line break inside an annotation's text as a space
    folder = make(tmp_path / "c", text, f"T1\tPER 11 21\tJohn Smith\nT2\tLOC {berlin} {berlin + 6}\tBerlin\n")
    corpus = read_brat(folder)
    assert [s.words for s in corpus] == [("Acme", "hired", "John", "Smith", "yesterday", "."), ("Berlin", "is", "big", ".")]
    assert entities(corpus) == [[("PER", "John Smith")], [("LOC", "Berlin")]]
    assert [s.line for s in corpus] == [1, 5]
    assert corpus.adjustments["lines_joined"] == 1 and any("read as one sentence" in n for n in corpus.notes)


def test_crlf_and_bom_count_as_characters_as_brat_counts_them(tmp_path):
    text = "\ufeffOslo is cold.\r\nBergen is wet.\r\n"
    start = text.index("Bergen")
    corpus = read_brat(make(tmp_path / "c", text, f"T1\tLOC 1 5\tOslo\nT2\tLOC {start} {start + 6}\tBergen\n"))
    assert entities(corpus) == [[("LOC", "Oslo")], [("LOC", "Bergen")]]
    assert corpus.sentences[0].words == ("Oslo", "is", "cold", ".")


def test_boundary_inside_a_word_follows_the_alignment_policy(tmp_path):
    folder = make(tmp_path / "c", "New-York-based Acme\n", "T1\tLOC 0 8\tNew-York\n")
    split = read_brat(folder)
    assert split.sentences[0].words == ("New-York", "-based", "Acme") and split.adjustments["spans_split"] == 1
    widened = read_corpus(folder, format="brat", alignment="widen")
    assert entities(widened) == [[("LOC", "New-York-based")]] and widened.adjustments["spans_widened"] == 1


def test_subfolders_are_read_in_name_order_and_lone_txt_files_are_counted(tmp_path):
    make(tmp_path / "c" / "b", "Bonn\n", "T1\tLOC 0 4\tBonn\n")
    make(tmp_path / "c" / "a", "Adam\n", "T1\tPER 0 4\tAdam\n")
    (tmp_path / "c" / "README.txt").write_text("not a document")
    corpus = read_brat(tmp_path / "c")
    assert [s.words for s in corpus] == [("Adam",), ("Bonn",)]
    assert corpus.adjustments["texts_without_ann"] == 1


@pytest.mark.parametrize("ann, message, line", [
    ("T1\tPER 0 4\tJohn\nT2\tLOC 6 10\tRome\n", "does not match the .txt at 6-10", 2),
    ("T1\tPER 0 99\tJohn\n", "is out of range", 1),
    ("T1\tPER 0 4 John\n", "malformed text-bound annotation", 1),
    ("\nX1\tPER 0 4\tJohn\n", "not a brat annotation line", 2),
    ("T1\tPER 0 9\tJohn went\nT2\tLOC 5 9\twent\n", "overlapping entities", 2),
])
def test_errors_name_the_ann_file_and_line(tmp_path, ann, message, line):
    folder = make(tmp_path / "c", "John went to Paris.\n", ann)
    with pytest.raises(DataError) as info:
        read_brat(folder)
    assert message in str(info.value) and info.value.line == line
    assert str(info.value).startswith(f"{folder / 'doc.ann'}:{line}: ")


def test_keep_longest_overlaps_and_folder_errors(tmp_path):
    folder = make(tmp_path / "c", "John went to Paris.\n", "T1\tPER 0 9\tJohn went\nT2\tLOC 5 9\twent\n")
    assert entities(read_brat(folder, overlaps="keep-longest")) == [[("PER", "John went")]]
    (tmp_path / "c" / "doc.txt").unlink()
    with pytest.raises(DataError, match="has no .txt beside it"):
        read_brat(folder)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .ann files found"):
        read_brat(tmp_path / "empty")
    with pytest.raises(ConfigError, match="unknown alignment"):
        read_brat(folder, alignment="stretch")


def test_writer_layout(tmp_path):
    corpus = Corpus([Sentence(("EU", "rejects", "German", "call"), (("ORG", 0, 1), ("MISC", 2, 3))),
                     Sentence(("Peter", "Blackburn"), (("PER", 0, 2),))], "x.conll")
    write_brat(corpus, tmp_path / "out", sentences_per_file=1)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "annotation.conf", "doc-0001.ann", "doc-0001.txt", "doc-0002.ann", "doc-0002.txt"]
    assert (tmp_path / "out" / "doc-0001.txt").read_text() == "EU rejects German call\n"
    assert (tmp_path / "out" / "doc-0001.ann").read_text() == "T1\tORG 0 2\tEU\nT2\tMISC 11 17\tGerman\n"
    assert (tmp_path / "out" / "doc-0002.ann").read_text() == "T1\tPER 0 15\tPeter Blackburn\n"
    assert "[entities]\nMISC\nORG\nPER\n" in (tmp_path / "out" / "annotation.conf").read_text()
    with pytest.raises(DataError, match="holds a line break"):
        write_brat(Corpus([Sentence(("a\nb",))]), tmp_path / "bad")
    with pytest.raises(DataError, match="holds whitespace"):
        write_brat(Corpus([Sentence(("a",), (("NEW TYPE", 0, 1),))]), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # nothing half-written


# words the word splitter keeps whole, so that text written with single spaces splits back into them
WORD = st.one_of(st.text(st.characters(categories=("Lu", "Ll", "Nd")), min_size=1, max_size=6),
                 st.sampled_from([".", ",", "(", ")", "!", "?", "%", "$"]))


def sentences():
    return span_sentences(WORD, ["PER", "LOC", "B-ish"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(sentences(), min_size=1, max_size=6), st.integers(1, 4))
def test_round_trip(tmp_path, corpus_sentences, per_file):
    corpus = Corpus(list(corpus_sentences))
    write_brat(corpus, tmp_path / "rt", sentences_per_file=per_file)
    back = read_brat(tmp_path / "rt")
    assert [(s.words, s.spans) for s in back] == [(s.words, s.spans) for s in corpus]
    assert not back.adjustments


def test_convert_to_brat(tmp_path, capsys):
    src = tmp_path / "train.conll"
    src.write_text("EU\tB-ORG\nrejects\tO\n\nPeter\tB-PER\nBlackburn\tI-PER\n")
    out = tmp_path.parent / f"{tmp_path.name}-brat"
    assert main(["convert", str(src), str(out), "--to", "brat"]) == 0
    assert "train: wrote 2 sentences, 2 entities to" in capsys.readouterr().out
    assert (out / "doc-0001.txt").read_text() == "EU rejects\nPeter Blackburn\n"
    assert entities(read_corpus(out)) == [[("ORG", "EU")], [("PER", "Peter Blackburn")]]
    assert main(["convert", str(src), str(out), "--to", "brat"]) == 2  # an existing OUT: only with --overwrite
    assert main(["convert", str(src), str(out), "--to", "brat", "--overwrite"]) == 0


def test_convert_from_brat(tmp_path):
    out = tmp_path / "sony.conll"
    assert main(["convert", str(SONY), str(out)]) == 0
    assert out.read_text().startswith("Sony\tB-Organization\n")


def test_brat_folders_as_splits_of_a_data_directory(tmp_path):
    """DATA/train/ and DATA/dev/ holding .txt/.ann pairs are the splits, as train.conll/dev.conll would be."""
    from tokentune.data import load_splits
    from tokentune.data.formats import write_corpus

    corpus = read_corpus(SONY)
    write_corpus(corpus, tmp_path / "data" / "train", format="brat")
    write_corpus(corpus, tmp_path / "data" / "dev", format="brat")
    splits = load_splits(tmp_path / "data")
    assert [name for name, _ in splits.items()] == ["train", "dev"]
    assert entities(splits.dev) == entities(corpus)
    assert main(["inspect", str(tmp_path / "data" / "train")]) == 0  # one folder: one split
