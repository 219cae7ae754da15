"""Label Studio JSON: reading NER exports, writing pre-annotations, round trips, train -> predict -> read.

The shapes follow Label Studio's documentation:

- the JSON export of a project, one array of tasks with ``data``, ``annotations[]`` (``result[]``,
  ``was_cancelled``, ``created_at``/``updated_at``) and ``predictions[]``:
  https://labelstud.io/guide/export.html and https://labelstud.io/guide/task_format.html
- a text span result, ``value.start``/``value.end`` (character offsets), ``value.text``, ``value.labels``,
  with ``from_name``/``to_name`` of the NER template's ``<Labels name="label" toName="text">``:
  https://labelstud.io/tags/text and https://labelstud.io/templates/named_entity
- pre-annotations: tasks with ``data`` and ``predictions: [{"model_version", "score", "result"}]``:
  https://labelstud.io/guide/predictions.html
- offsets in UTF-16 code units after an emoji, as older versions stored them:
  https://github.com/HumanSignal/label-studio/issues/1347 (fixed by storing code points, #1559)

The fixtures in tests/data/labelstudio/ are written in those published shapes (every field of a task of
a recent export, several annotations, a cancelled one, a task without annotations, choices and relation
results next to the spans).
"""
from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentune.cli.main import main
from tokentune.data import read_corpus, write_corpus
from tokentune.data.corpus import Corpus, Sentence
from tokentune.data.labelstudio import TaskArray, read_label_studio, write_label_studio
from tokentune.errors import DataError
from tokentune.schemes import tags_to_spans

from conftest import make_sentences

FIXTURES = os.path.join(os.path.dirname(__file__), "data", "labelstudio")
EXPORT = os.path.join(FIXTURES, "ner_export.json")
SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def rows(corpus):
    return [(list(s.words), list(s.spans)) for s in corpus]


def span(text, start, end, label, **extra):
    return {"type": "labels", "from_name": "label", "to_name": "text",
            "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}, **extra}


def write_tasks(tmp_path, tasks, name="export.json"):
    path = tmp_path / name
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def annotated(text, *results, **annotation):
    return {"data": {"text": text}, "annotations": [{"was_cancelled": False, "result": list(results), **annotation}]}


# -- reading the published export shape ----------------------------------------------------------------

def test_export_fixture_reads_the_latest_non_cancelled_annotation():
    corpus = read_corpus(EXPORT, format="label-studio")
    assert rows(corpus) == [
        (["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
         [("ORG", 0, 1), ("MISC", 2, 3), ("MISC", 6, 7)]),
        # annotation 22 is listed first but updated last; 23 is newer still but cancelled
        (["Peter", "Blackburn", "met", "Acme", "Corp", ".", "in", "New-York", "-based", "offices", "."],
         [("PER", 0, 2), ("ORG", 3, 6), ("LOC", 7, 8)]),
        # task 3 has no annotation (its prediction is not a label in an annotated export): skipped
        (["Great", "service", "from", "Globex", "in", "Paris", "!"], [("ORG", 3, 4), ("LOC", 5, 6)]),
        (["Loved", "Oslo", "😀", "and", "Rome", "."], [("LOC", 1, 2), ("LOC", 4, 5)]),
    ]
    assert [s.line for s in corpus][0] == 2 and corpus.line_per_word is False


def test_export_notes_and_adjustments_count_what_was_chosen_and_skipped():
    corpus = read_label_studio(EXPORT)
    assert dict(corpus.adjustments) == {"several_annotations": 1, "cancelled_annotations": 1,
                                        "tasks_without_annotations": 1, "other_results": 2, "spans_split": 1}
    note = corpus.notes[0]
    assert "5 tasks" in note and "latest non-cancelled annotation" in note and "1 tasks had several" in note
    assert "skipped 1 tasks without annotations, 1 cancelled annotations and 2 results of other types" in note
    assert any("1 entity boundaries fell inside words" in n for n in corpus.notes)


def test_alignment_and_overlap_policies_apply_as_for_json_text(tmp_path):
    text = "Acme's New-York-based unit"
    path = write_tasks(tmp_path, [annotated(text, span(text, 7, 15, "LOC"), span(text, 0, 4, "ORG"),
                                            span(text, 0, 6, "PER"))])
    with pytest.raises(DataError, match=r"export\.json:\d+: task 1: overlapping entities.*'Acme'.*keep-longest"):
        read_label_studio(path)
    split = read_label_studio(path, overlaps="keep-longest")
    assert rows(split) == [(["Acme", "'s", "New-York", "-based", "unit"], [("PER", 0, 2), ("LOC", 2, 3)])]
    assert split.adjustments["overlaps_dropped"] == 1 and split.adjustments["spans_split"] == 1
    widened = read_corpus(path, format="label-studio", alignment="widen", overlaps="keep-longest")
    assert rows(widened) == [(["Acme", "'s", "New-York-based", "unit"], [("PER", 0, 2), ("LOC", 2, 3)])]
    assert widened.adjustments["spans_widened"] == 1


def test_latest_by_created_at_else_the_last_listed(tmp_path):
    text = "Alice in Paris"
    first = {"result": [span(text, 0, 5, "PER")], "created_at": "2024-01-02T00:00:00Z"}
    second = {"result": [span(text, 9, 14, "LOC")], "created_at": "2024-01-01T00:00:00+00:00"}
    by_time = write_tasks(tmp_path, [{"data": {"text": text}, "annotations": [first, second]}], "a.json")
    assert rows(read_label_studio(by_time))[0][1] == [("PER", 0, 1)]
    undated = write_tasks(tmp_path, [{"data": {"text": text}, "annotations": [
        {"result": [span(text, 0, 5, "PER")]}, {"result": [span(text, 9, 14, "LOC")]}]}], "b.json")
    assert rows(read_label_studio(undated))[0][1] == [("LOC", 2, 3)]


def test_several_labels_on_one_region_are_overlapping_entities(tmp_path):
    text = "Paris Hilton"
    item = span(text, 0, 12, "PER")
    item["value"]["labels"] = ["PER", "ORG"]
    path = write_tasks(tmp_path, [annotated(text, item)])
    with pytest.raises(DataError, match="overlapping entities"):
        read_label_studio(path)
    assert rows(read_label_studio(path, overlaps="keep-longest")) == [(["Paris", "Hilton"], [("PER", 0, 2)])]


def test_utf16_offsets_of_older_exports_are_converted_when_value_text_says_so():
    corpus = read_label_studio(os.path.join(FIXTURES, "utf16_offsets.json"))
    assert rows(corpus) == [(["Loved", "Oslo", "😀", "and", "Rome", "."], [("LOC", 1, 2), ("LOC", 4, 5)])]
    assert corpus.adjustments["offsets_utf16"] == 1 and any("UTF-16" in n for n in corpus.notes)


def test_preannotations_are_read_from_the_latest_prediction_when_no_task_has_an_annotation():
    corpus = read_corpus(os.path.join(FIXTURES, "preannotated.json"), format="label-studio")
    assert rows(corpus) == [(["Alice", "flew", "to", "Paris", "."], [("PER", 0, 1), ("LOC", 3, 4)]),
                            (["Nothing", "here", "."], [])]
    assert "latest prediction" in corpus.notes[0] and "not human labels" in corpus.notes[0]


def test_text_under_another_key_and_tasks_without_text(tmp_path):
    text = "Bob works for Initech"
    path = write_tasks(tmp_path, [{"data": {"content": text}, "annotations": [{"result": [span(text, 14, 21, "ORG")]}]},
                                  annotated("", )])
    corpus = read_label_studio(path)
    assert rows(corpus) == [(["Bob", "works", "for", "Initech"], [("ORG", 3, 4)])]
    assert corpus.adjustments["empty_records"] == 1


BAD = [
    ('{"data": {"text": "x"}}', "x", None),  # one object, no array: read as one task without labels
    ('[1]', r"task 1 is not a JSON object", 1),
    ('[{"id": 9, "text": "x", "annotations": []}]', r'task 1 \(id 9\) has no "data" object', 1),
    ('[{"data": {"a": "x", "b": "y"}, "annotations": [{"result": []}]}]', r"task 1: data has no text under 'text'", 1),
    ('[{"data": {"text": "x"}, "annotations": {"result": []}}]', r"'annotations' is not a list of objects", 1),
    ('[{"data": {"text": "x"}, "annotations": [{"result": {}}]}]', r'task 1: "result" is not a list', 1),
    ('[{"data": {"text": "xy"}},\n {"id": "t2", "data": {"text": "xy"}, "annotations": [{"result": '
     '[{"type": "labels", "value": {"start": 0, "end": 1}}]}]}]', r"task 2 \(id t2\): result 1 is not a labelled span", 2),
    ('[{"data": {"text": "xy"}, "annotations": [{"result": [{"type": "labels", "value": '
     '{"start": 1, "end": 5, "labels": ["A"]}}]}]}]', r"result 1 \(A\) is out of range.*0 <= start < end <= 2", 1),
    ('[{"data": {"text": "xy"}, "annotations": [{"result": [{"type": "labels", "value": '
     '{"start": 0, "end": 1, "text": "y", "labels": ["A"]}}]}]}]', r"does not match the text.*'y'.*found 'x'", 1),
    ('[]', "no tasks found", None),
    ('[{"data": {"text": "xy"}, "annotations": [{"was_cancelled": true, "result": []}]}]', "no labelled tasks", None),
]


@pytest.mark.parametrize("raw,message,line", BAD)
def test_malformed_shapes_are_located_errors(tmp_path, raw, message, line):
    path = tmp_path / "export.json"
    path.write_text(raw, encoding="utf-8")
    if message == "x":
        with pytest.raises(DataError, match="no labelled tasks found"):
            read_label_studio(path)
        return
    with pytest.raises(DataError, match=message) as caught:
        read_label_studio(path)
    assert caught.value.path == str(path) and caught.value.line == line


def test_jsonl_reader_points_at_the_label_studio_format():
    with pytest.raises(DataError, match="looks like a Label Studio export.*--format label-studio"):
        read_corpus(EXPORT)


# -- writing -------------------------------------------------------------------------------------------

def test_written_tasks_are_preannotations_whose_offsets_match_the_text(tmp_path):
    corpus = Corpus([Sentence(("EU", "rejects", "New York", "lamb"), (("ORG", 0, 1), ("LOC", 2, 4)))], "train.conll")
    path = tmp_path / "out.json"
    assert write_corpus(corpus, path, format="label-studio") == "label-studio"
    [task] = json.loads(path.read_text(encoding="utf-8"))
    assert task["data"] == {"text": "EU rejects New York lamb", "tokens": ["EU", "rejects", "New York", "lamb"]}
    [pred] = task["predictions"]
    assert pred["model_version"] == "train.conll" and "score" not in pred  # gold spans carry no score
    assert [(r["from_name"], r["to_name"], r["type"]) for r in pred["result"]] == [("label", "text", "labels")] * 2
    assert [r["value"] for r in pred["result"]] == [
        {"start": 0, "end": 2, "text": "EU", "labels": ["ORG"]},
        {"start": 11, "end": 24, "text": "New York lamb", "labels": ["LOC"]}]


def test_writer_refuses_what_would_not_read_back(tmp_path):
    with pytest.raises(DataError, match="word 2 of sentence 1 is blank"):
        write_label_studio(Corpus([Sentence(("a", " "))], "x.conll"), tmp_path / "a.json")
    with pytest.raises(DataError, match="lone surrogate"):
        write_label_studio(Corpus([Sentence(("a\ud800",))], "x.conll"), tmp_path / "b.json")
    assert not os.listdir(tmp_path)


def test_task_array_streams_predict_records_into_one_json_array(tmp_path):
    import io

    out = io.StringIO()
    tasks = TaskArray(out, "m1")
    tasks.write(json.dumps({"id": 4, "text": "  Alice  in Paris", "entities": [
        {"label": "PER", "start": 2, "end": 7, "text": "Alice", "score": 0.9},
        {"label": "LOC", "start": 12, "end": 17, "text": "Paris", "score": 0.7}]}) + "\n")
    tasks.write(json.dumps({"words": ["Bob", "Smith"], "tags": ["B-PER", "I-PER"],
                            "spans": [{"label": "PER", "start": 0, "end": 2, "score": 0.8}]}) + "\n")
    tasks.close()
    first, second = json.loads(out.getvalue())
    assert first["data"] == {"id": 4, "text": "  Alice  in Paris"}  # raw text and its offsets kept
    assert first["predictions"][0]["score"] == 0.7 and first["predictions"][0]["model_version"] == "m1"
    assert [(r["value"]["text"], r["score"]) for r in first["predictions"][0]["result"]] == [("Alice", 0.9), ("Paris", 0.7)]
    assert second["data"]["text"] == "Bob Smith" and second["predictions"][0]["result"][0]["value"]["end"] == 9
    empty = io.StringIO()
    TaskArray(empty, "m1").close()
    assert json.loads(empty.getvalue()) == []


# -- round trips (properties) --------------------------------------------------------------------------

PART = st.text(st.characters(categories=("L", "N", "P", "S")), min_size=1, max_size=7)
WORD = st.one_of(PART, st.builds(lambda a, b: f"{a} {b}", PART, PART))  # CoNLL words may hold a space


@st.composite
def sentences(draw):
    words = draw(st.lists(WORD, min_size=1, max_size=7))
    cuts = sorted(draw(st.sets(st.integers(0, len(words)), max_size=6)))
    spans = [(draw(st.sampled_from(["PER", "LOC", "ORG", "MISC"])), a, b) for a, b in zip(cuts, cuts[1:])
             if draw(st.booleans())]
    return Sentence(tuple(words), tuple(spans))


@SETTINGS
@given(st.lists(sentences(), min_size=1, max_size=5))
def test_a_written_corpus_reads_back_unchanged(tmp_path, sents):
    path = tmp_path / "round.json"
    write_label_studio(Corpus(sents, "gold.conll"), path)
    assert rows(read_corpus(path, format="label-studio")) == rows(Corpus(sents))


TEXT = st.text(st.sampled_from(list("ab-.' \n") + ["😀", "é", "Ж"]), min_size=1, max_size=30)


@SETTINGS
@given(TEXT, st.lists(st.tuples(st.integers(0, 30), st.integers(1, 30), st.sampled_from(["A", "B"])), max_size=4))
def test_character_offsets_read_exactly_as_json_text_records(tmp_path, text, raw_spans):
    entities = [(s, e, label) for s, e, label in raw_spans if s < e <= len(text)]
    tasks = [annotated(text, *(span(text, s, e, label) for s, e, label in entities))]
    ls_path = write_tasks(tmp_path, tasks)
    jsonl_path = tmp_path / "same.jsonl"
    jsonl_path.write_text(json.dumps({"text": text, "entities": [[s, e, label] for s, e, label in entities]}) + "\n",
                          encoding="utf-8")
    try:
        expected = rows(read_corpus(jsonl_path, overlaps="keep-longest"))
    except DataError:  # text of only whitespace: both refuse
        with pytest.raises(DataError, match="no labelled tasks"):
            read_label_studio(ls_path, overlaps="keep-longest")
        return
    assert rows(read_label_studio(ls_path, overlaps="keep-longest")) == expected


def test_convert_cli_to_label_studio_and_back(tmp_path, capsys):
    conll = tmp_path / "train.conll"
    conll.write_text("EU\tB-ORG\nrejects\tO\nGerman\tB-MISC\n\nNew York\tB-LOC\nis\tO\n", encoding="utf-8")
    out = tmp_path / "tasks.json"
    assert main(["convert", str(conll), str(out), "--to", "label-studio"]) == 0
    back = tmp_path / "back.conll"
    assert main(["convert", str(out), str(back), "--input-format", "label-studio"]) == 0
    assert rows(read_corpus(back)) == rows(read_corpus(conll))
    assert "latest prediction" in capsys.readouterr().err


# -- end to end: train from an export, predict into Label Studio, read that as data -------------------

def export_of(sentences_with_tags, path):
    tasks = []
    for number, pairs in enumerate(sentences_with_tags, 1):
        words = [w for w, _ in pairs]
        starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
        text = " ".join(words)
        results = [span(text, starts[s], starts[e - 1] + len(words[e - 1]), label, id=f"r{number}-{s}")
                   for label, s, e in tags_to_spans([t for _, t in pairs], "IOB1")]
        tasks.append({"id": number, "data": {"text": text}, "annotations": [
            {"id": 1000 + number, "result": results, "was_cancelled": False,
             "created_at": "2024-05-01T10:00:00Z", "updated_at": "2024-05-01T10:00:00Z"}], "predictions": []})
    path.write_text(json.dumps(tasks), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_base_model):
    root = tmp_path_factory.mktemp("labelstudio")
    export = export_of(make_sentences(200, seed=1), root / "export.json")
    model = root / "ls-model"
    assert main(["train", "--train", str(export), "--format", "label-studio", "--dev-split", "0.3",
                 "--model", tiny_base_model, "--output", str(model), "--epochs", "4", "--batch-size", "8",
                 "--learning-rate", "5e-3", "--seed", "7", "--quiet"]) == 0
    return model


def test_train_predict_into_label_studio_and_read_it_back(trained, tmp_path, capsys):
    from tokentune.inference import Tagger

    lines = ["Alice met Bob in Paris .", "  Globex  said  today", "", "Carol visited Oslo 😀 ."]
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "pre.json"
    assert main(["predict", str(trained), "--input", str(texts), "--output-format", "label-studio",
                 "--output", str(out), "--quiet"]) == 0
    tasks = json.loads(out.read_text(encoding="utf-8"))
    assert [t["data"]["text"] for t in tasks] == lines  # the original text, spaces and all
    expected = Tagger.from_pretrained(str(trained)).predict_texts(lines)
    for task, entities in zip(tasks, expected):
        [pred] = task["predictions"]
        assert pred["model_version"] == "ls-model"
        assert pred["score"] == min([round(e.score, 6) for e in entities], default=1.0)
        assert [(r["value"]["start"], r["value"]["end"], r["value"]["labels"], r["value"]["text"]) for r in pred["result"]] \
            == [(e.start, e.end, [e.label], task["data"]["text"][e.start:e.end]) for e in entities]
    assert sum(len(e) for e in expected) > 0  # the tiny model learnt something to check
    corpus = read_corpus(out, format="label-studio")
    assert len(corpus) == 3 and corpus.adjustments["empty_records"] == 1
    # the empty line is skipped; the others read back with the predicted entities, on the same words
    assert [[label for label, _, _ in s.spans] for s in corpus] == [[e.label for e in expected[i]] for i in (0, 1, 3)]


def test_predict_label_studio_to_stdout_with_a_model_version_and_token_input(trained, tmp_path, capsys):
    assert main(["predict", str(trained), "Alice met Bob", "--output-format", "label-studio",
                 "--model-version", "v7", "--quiet"]) == 0
    [task] = json.loads(capsys.readouterr().out)
    assert task["data"] == {"text": "Alice met Bob"} and task["predictions"][0]["model_version"] == "v7"
    tokens = tmp_path / "in.jsonl"
    tokens.write_text(json.dumps({"id": "s1", "tokens": ["Carol", "visited", "Rome"]}) + "\n", encoding="utf-8")
    assert main(["predict", str(trained), "--input", str(tokens), "--output-format", "label-studio", "--quiet"]) == 0
    [task] = json.loads(capsys.readouterr().out)
    assert task["data"] == {"id": "s1", "tokens": ["Carol", "visited", "Rome"], "text": "Carol visited Rome"}
    for result in task["predictions"][0]["result"]:
        assert task["data"]["text"][result["value"]["start"]:result["value"]["end"]] == result["value"]["text"]


def test_predict_label_studio_refuses_conll_input_and_a_stray_model_version(trained, tmp_path, capsys):
    conll = tmp_path / "in.conll"
    conll.write_text("Alice\tO\n", encoding="utf-8")
    assert main(["predict", str(trained), "--input", str(conll), "--output-format", "label-studio"]) == 2
    assert "takes text or JSON lines input" in capsys.readouterr().err
    assert main(["predict", str(trained), "Alice", "--model-version", "v1"]) == 2
    assert "needs --output-format label-studio" in capsys.readouterr().err
