"""Label Studio JSON: read an NER project's export, write tasks with pre-annotations (``predictions``).

The export (Label Studio's "JSON" export, https://labelstud.io/guide/export.html, task format
https://labelstud.io/guide/task_format.html) is one JSON array of tasks::

    [{"id": 1, "data": {"text": "EU rejects German call"},
      "annotations": [{"was_cancelled": false, "updated_at": "2024-05-01T10:00:00Z",
                       "result": [{"type": "labels", "from_name": "label", "to_name": "text",
                                   "value": {"start": 0, "end": 2, "text": "EU", "labels": ["ORG"]}}]}],
      "predictions": [...]}]

Reading:

- the text is ``data.text`` (``text_key``), or else the only string in ``data``;
- which labels: when any task of the file has an annotation that was not cancelled, the file is read
  as annotations: each task's LATEST such annotation (by ``updated_at``, else ``created_at``, else the
  last one listed), and tasks without one are skipped (unlabelled, not "no entities"). A file with no
  annotation at all (pre-annotations, e.g. ``tokentune predict --output-format label-studio``) is read
  from each task's latest prediction instead. Model predictions are never mixed into annotated data;
- results of ``type`` ``labels`` are entities (``value.start``/``end``, code-point offsets, end
  exclusive; one entity per label in ``value.labels``); other result types are skipped and counted.
  When ``value.text`` does not match ``text[start:end]`` but does in UTF-16 code units (what older
  Label Studio versions stored after an emoji), the offsets are converted and counted;
- words and entity boundaries come from :func:`tokentune.data.charspans.align`, as for JSON text
  records (``alignment``, ``overlaps``); a task whose ``data.tokens`` joined by single spaces is its
  text (what :func:`write_label_studio` writes) keeps those words wherever no entity cuts one.

Writing (:func:`write_label_studio`, ``tokentune predict --output-format label-studio``): tasks with
``data.text`` and ``predictions: [{"model_version", "score", "result": [...]}]``, the shape Label
Studio imports as pre-annotations (https://labelstud.io/guide/predictions.html).
"""
from __future__ import annotations

import functools
import json
import os
import sys
from bisect import bisect_left
from collections import Counter
from datetime import datetime, timezone
from typing import IO, Any

from ..errors import DataError
from .charspans import CharSpan, Overlap, alignment_of
from .corpus import Corpus, Sentence
from .jsonl import iter_records

FROM_NAME, TO_NAME, RESULT_TYPE = "label", "text", "labels"
_FIX_EXPORT = "export the project again from Label Studio as JSON (Export -> JSON)"
_NOTES = {
    "spans_split": "entity boundaries fell inside words: those words were split at the boundary",
    "spans_widened": "entity boundaries fell inside words: those entities were widened to whole words",
    "spans_dropped_blank": "entities covered only whitespace and were dropped",
    "duplicate_spans": "duplicate entities were merged",
    "overlaps_dropped": "overlapping entities were dropped, keeping the longest (overlaps=keep-longest)",
    "offsets_utf16": "entities had UTF-16 offsets (older Label Studio, text with emoji) and were converted",
    "tokens_mismatch": "tasks had data.tokens that do not spell data.text; their words come from the text",
    "empty_records": "tasks had empty text and were skipped",
}


def read_label_studio(path: str | os.PathLike, *, alignment: str | None = "split", overlaps: str | None = "error",
                      text_key: str = "text", word_splitter=None) -> Corpus:
    """Read a Label Studio JSON export (or a file of pre-annotated tasks) as a :class:`Corpus`."""
    path = os.fspath(path)
    how = alignment_of(alignment, overlaps, word_splitter)
    tasks = _tasks(path)
    source = "annotations" if any(_usable(task.get("annotations")) for _, _, task in tasks) else "predictions"
    counts: Counter = Counter()
    sentences = []
    for line, index, task in tasks:
        where = _where(index, task)
        chosen = _choose(task, source, counts)
        if chosen is None:
            continue
        text, tokens = _text(task, text_key, path, line, where)
        entities = _entities(chosen, text, counts, path, line, where)
        sentence = _sentence(text, tokens, entities, how, counts, path, line, where)
        if sentence is not None:
            sentences.append(sentence)
    if not sentences:
        raise DataError(f"no labelled tasks found ({len(tasks)} tasks)", path=path,
                        expected="tasks with text and an annotation or a prediction",
                        found=f"{counts['tasks_without_' + source]} tasks without {source}, "
                              f"{counts['empty_records']} with empty text", fix=_FIX_EXPORT)
    corpus = Corpus(sentences, path, "IOB2", line_per_word=False)
    corpus.adjustments.update({k: v for k, v in counts.items() if v})
    _add_notes(corpus, len(tasks), source)
    return corpus


def _tasks(path: str) -> list[tuple[int, int, dict]]:
    """``(line, 1-based index, task)`` for every task of the file; each must be an object with ``data``."""
    tasks = []
    for index, (line, task) in enumerate(iter_records(path), 1):
        if not isinstance(task, dict):
            raise DataError(f"task {index} is not a JSON object", path=path, line=line,
                            expected='a task such as {"data": {"text": ...}, "annotations": [...]}',
                            found=type(task).__name__, fix=_FIX_EXPORT)
        if not isinstance(task.get("data"), dict):
            raise DataError(f"{_where(index, task)} has no \"data\" object", path=path, line=line,
                            expected='{"data": {"text": "..."}, ...} (Label Studio\'s JSON export)',
                            found=f"keys {sorted(task)[:8]}",
                            fix="pass a Label Studio JSON export (not JSON-MIN or CSV), or another --format")
        for key in ("annotations", "predictions"):
            items = task.get(key) or []
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise DataError(f"{_where(index, task)}: {key!r} is not a list of objects", path=path, line=line,
                                expected=f'"{key}": [{{"result": [...]}}, ...]', found=json.dumps(items)[:60],
                                fix=_FIX_EXPORT)
        tasks.append((line, index, task))
    if not tasks:
        raise DataError("no tasks found", path=path, expected="a JSON array of Label Studio tasks",
                        found="an empty array", fix=_FIX_EXPORT)
    return tasks


def _where(index: int, task: Any) -> str:
    task_id = task.get("id") if isinstance(task, dict) else None
    return f"task {index}" + (f" (id {task_id})" if isinstance(task_id, (int, str)) else "")


def _usable(items: Any) -> list[tuple[int, dict]]:
    """The annotations (or predictions) of a task that count: objects not ``was_cancelled``."""
    if not isinstance(items, list):
        return []
    return [(i, item) for i, item in enumerate(items) if isinstance(item, dict) and not item.get("was_cancelled")]


def _choose(task: dict, source: str, counts: Counter) -> dict | None:
    """The latest usable annotation (or prediction) of ``task``; None (counted) when it has none."""
    items = task.get(source) or []
    if source == "annotations":
        counts["cancelled_annotations"] += sum(bool(item.get("was_cancelled")) for item in items)
    usable = _usable(items)
    if not usable:
        counts[f"tasks_without_{source}"] += 1
        return None
    counts[f"several_{source}"] += len(usable) > 1
    stamps = [_timestamp(item.get("updated_at")) or _timestamp(item.get("created_at")) for _, item in usable]
    if all(stamps):
        return max(zip(stamps, usable), key=lambda pair: (pair[0], pair[1][0]))[1][1]
    return usable[-1][1]


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _text(task: dict, text_key: str, path: str, line: int, where: str) -> tuple[str, list[str] | str | None]:
    """The task's text, and its words when ``data.tokens`` spells that text (else None)."""
    data = task["data"]
    text = data.get(text_key)
    if text_key not in data:
        strings = [value for value in data.values() if isinstance(value, str)]
        text = strings[0] if len(strings) == 1 else None
    if not isinstance(text, str):
        raise DataError(f"{where}: data has no text under {text_key!r}", path=path, line=line,
                        expected=f'"data": {{"{text_key}": "..."}}', found=f"data keys {sorted(data)[:8]}",
                        fix="label text tasks whose text field is $text (<Text name=\"text\" value=\"$text\"/>)")
    tokens = data.get("tokens")
    if tokens is None:
        return text, None
    ok = isinstance(tokens, list) and all(isinstance(t, str) and t.strip() for t in tokens)
    return text, (tokens if ok and " ".join(tokens) == text else "mismatch")


def _entities(chosen: dict, text: str, counts: Counter, path: str, line: int, where: str) -> list[CharSpan]:
    results = chosen.get("result", [])
    if not isinstance(results, list):
        raise DataError(f"{where}: \"result\" is not a list", path=path, line=line,
                        expected='"result": [{"type": "labels", "value": {...}}, ...]',
                        found=type(results).__name__, fix=_FIX_EXPORT)
    entities: list[CharSpan] = []
    for number, item in enumerate(results, 1):
        if not isinstance(item, dict) or item.get("type") != RESULT_TYPE:
            counts["other_results"] += 1
            continue
        value = item.get("value")
        start, end, labels = (value.get(k) for k in ("start", "end", "labels")) if isinstance(value, dict) else (
            None, None, None)
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
        if not ints or not isinstance(labels, list) or not labels or not all(
                isinstance(label, str) and label.strip() for label in labels):
            raise DataError(f"{where}: result {number} is not a labelled span", path=path, line=line,
                            expected='{"type": "labels", "value": {"start": INT, "end": INT, "labels": ["TYPE"]}}',
                            found=json.dumps(item, ensure_ascii=False)[:80], fix=_FIX_EXPORT)
        start, end = _offsets(text, start, end, value.get("text"), counts)
        if not 0 <= start < end <= len(text):
            raise DataError(f"{where}: result {number} ({labels[0]}) is out of range", path=path, line=line,
                            expected=f"0 <= start < end <= {len(text)} (the text's length in characters)",
                            found=f"start {start}, end {end}", fix="check that data.text is the text that was labelled")
        if isinstance(value.get("text"), str) and text[start:end] != value["text"]:
            raise DataError(f"{where}: result {number} ({labels[0]}) does not match the text", path=path, line=line,
                            expected=f"text[{start}:{end}] == value.text {value['text'][:40]!r}",
                            found=repr(text[start:end][:40]), fix="check that data.text is the text that was labelled")
        entities += [CharSpan(label, start, end, len(entities) + i) for i, label in enumerate(labels)]
    return entities


def _offsets(text: str, start: int, end: int, quoted: Any, counts: Counter) -> tuple[int, int]:
    """``(start, end)`` in code points; UTF-16 offsets are converted when that is what makes ``quoted`` match."""
    if not isinstance(quoted, str) or text[start:end] == quoted and 0 <= start < end <= len(text):
        return start, end
    points = _utf16_points(text)
    if start in points and end in points and text[points[start]:points[end]] == quoted:
        counts["offsets_utf16"] += 1
        return points[start], points[end]
    return start, end


@functools.lru_cache(maxsize=4)
def _utf16_points(text: str) -> dict[int, int]:
    """UTF-16 code-unit offset -> code-point offset, at every character boundary of ``text``."""
    points, units = {}, 0
    for index, char in enumerate(text):
        points[units] = index
        units += 2 if ord(char) > 0xFFFF else 1
    points[units] = len(text)
    return points


def _sentence(text, tokens, entities, how, counts, path, line, where) -> Sentence | None:
    try:
        words, spans = how.align(text, entities, counts)
    except Overlap as err:
        raise err.located(text, path, line, where=f"{where}: ",
                          fix="remove one of them in Label Studio, or pass --overlaps keep-longest") from None
    if not words:
        counts["empty_records"] += 1
        return None
    if tokens == "mismatch":
        counts["tokens_mismatch"] += 1
    elif tokens:
        words, spans = regroup(text, tokens, words, spans)
    return Sentence(tuple(words), tuple(spans), line)


def regroup(text: str, tokens: list[str], words: list[str], spans: list) -> tuple[list[str], list]:
    """Join the words of :func:`align` back into ``tokens`` (which, joined by single spaces, are
    ``text``) wherever no entity starts or ends inside a token; the spans follow."""
    token_ends, position = [], 0
    for token in tokens:
        position += len(token)
        token_ends.append(position)
        position += 1
    bounds, position = [], 0
    for word in words:
        start = text.find(word, position)
        position = start + len(word)
        bounds.append((start, position))
    owner = [bisect_left(token_ends, end) for _, end in bounds]
    if any(start < token_ends[o] - len(tokens[o]) for (start, _), o in zip(bounds, owner)):
        return words, spans  # a word across two tokens: keep the words of the text
    cuts = {s for _, s, _ in spans} | {e for _, _, e in spans}
    new_index, groups = [], []
    for i, (start, end) in enumerate(bounds):
        if not groups or owner[i] != owner[i - 1] or i in cuts:
            groups.append([start, end])
        groups[-1][1] = end
        new_index.append(len(groups) - 1)
    merged = [text[start:end] for start, end in groups]
    return merged, [(label, new_index[s], new_index[e - 1] + 1) for label, s, e in spans]


def _add_notes(corpus: Corpus, tasks: int, source: str) -> None:
    counts, name = corpus.adjustments, corpus.path
    if source == "annotations":
        corpus.notes.append(
            f"{name}: Label Studio export of {tasks} tasks: read the latest non-cancelled annotation of each (by "
            f"updated_at, else created_at, else the last listed; {counts['several_annotations']} tasks had several); "
            f"skipped {counts['tasks_without_annotations']} tasks without annotations, "
            f"{counts['cancelled_annotations']} cancelled annotations and "
            f"{counts['other_results']} results of other types than labels")
    else:
        corpus.notes.append(
            f"{name}: Label Studio file of {tasks} tasks without annotations: read the latest prediction of each "
            f"(pre-annotations, not human labels); skipped {counts['tasks_without_predictions']} tasks without "
            f"predictions and {counts['other_results']} results of other types than labels")
    for key, message in _NOTES.items():
        if counts.get(key):
            corpus.notes.append(f"{name}: {counts[key]} {message}")


# -- writing -------------------------------------------------------------------------------------------

def span_result(label: str, start: int, end: int, text: str, score: float | None = None) -> dict:
    """One Label Studio ``labels`` region: ``text[start:end]`` with code-point offsets."""
    result = {"from_name": FROM_NAME, "to_name": TO_NAME, "type": RESULT_TYPE,
              "value": {"start": start, "end": end, "text": text[start:end], "labels": [label]}}
    if score is not None:
        result["score"] = round(float(score), 6)
    return result


def prediction(results: list[dict], model_version: str, scored: bool = True) -> dict:
    """A ``predictions`` entry; its score is the lowest entity score (1.0 when nothing was found), so
    Label Studio's Data Manager, sorting by score, shows the most doubtful tasks first."""
    entry: dict[str, Any] = {"model_version": model_version}
    if scored:
        entry["score"] = min((r["score"] for r in results), default=1.0)
    entry["result"] = results
    return entry


def sentence_task(words, spans, model_version: str, scores=None, data: dict | None = None) -> dict:
    """A task for pre-split words: text = the words joined by single spaces, ``data.tokens`` = the words."""
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    text = " ".join(words)
    results = [span_result(label, starts[s], starts[e - 1] + len(words[e - 1]), text,
                           None if scores is None else scores[i]) for i, (label, s, e) in enumerate(spans)]
    data = {**(data or {}), "text": text}
    data.setdefault("tokens", list(words))
    return {"data": data, "predictions": [prediction(results, model_version, scored=scores is not None)]}


def write_label_studio(corpus: Corpus, path: str | os.PathLike, *, model_version: str | None = None) -> None:
    """Write ``corpus`` as Label Studio tasks whose gold spans are pre-annotations (atomically)."""
    from ..io import atomic_write_text

    version = model_version or os.path.basename(corpus.path or "") or "tokentune"
    parts = []
    for number, sentence in enumerate(corpus, 1):
        blank = next((i for i, w in enumerate(sentence.words) if not w.strip()), None)
        if blank is not None:
            raise DataError(f"word {blank + 1} of sentence {number} is blank and cannot be written to Label Studio",
                            path=corpus.path, line=sentence.line, fix="fix that word in the source")
        part = json.dumps(sentence_task(sentence.words, sentence.spans, version), ensure_ascii=False)
        try:
            part.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"sentence {number} holds a lone surrogate, which no UTF-8 file can hold",
                            path=corpus.path, line=sentence.line, fix="fix that text in the source") from None
        parts.append(part)
    atomic_write_text(path, "[\n" + ",\n".join(parts) + "\n]\n")


def record_task(record: dict, model_version: str) -> dict:
    """A task from one output record of ``tokentune predict``: ``{"text", "entities": [...]}`` (raw
    text, offsets kept) or ``{"tokens"|"words", "tags", "spans": [...]}``; other fields go to ``data``."""
    if "entities" in record and isinstance(record.get("text"), str):
        data = {k: v for k, v in record.items() if k != "entities"}
        results = [span_result(e["label"], e["start"], e["end"], record["text"], e["score"])
                   for e in record["entities"]]
        return {"data": data, "predictions": [prediction(results, model_version)]}
    words = record.get("tokens", record.get("words"))
    spans = [(s["label"], s["start"], s["end"]) for s in record["spans"]]
    data = {k: v for k, v in record.items() if k not in ("tags", "spans")}
    return sentence_task(words, spans, model_version, [s["score"] for s in record["spans"]], data)


class TaskArray:
    """A text handle that takes ``tokentune predict``'s JSON lines and writes one JSON array of Label
    Studio tasks instead: ``[``, one task per line separated by commas, ``]`` on :meth:`close`."""

    def __init__(self, handle: IO[str], model_version: str) -> None:
        self.handle, self.model_version, self.count = handle, model_version, 0

    def write(self, lines: str) -> int:
        for line in lines.split("\n"):
            if line.strip():
                task = json.dumps(record_task(json.loads(line), self.model_version), ensure_ascii=False)
                self.handle.write(("[\n" if not self.count else ",\n") + task)
                self.count += 1
        if self.handle is sys.stdout:
            self.handle.flush()
        return len(lines)

    def flush(self) -> None:
        self.handle.flush()

    def close(self) -> None:
        self.handle.write(("[" if not self.count else "") + "\n]\n")
