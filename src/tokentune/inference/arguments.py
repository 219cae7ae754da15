"""The Tagger's entry points check the shape of what they are given, so that a wrong call is one
:class:`~tokentune.errors.DataError` naming the argument and the item, not a tokenizer's TypeError or a
string tagged one character at a time (``predict_tokens("Angela Merkel")``)."""
from __future__ import annotations

from numbers import Integral
from typing import Iterable, Mapping, Sequence

from ..errors import DataError


def _shown(value) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def check_text(text, where: str = "predict_text") -> None:
    if not isinstance(text, str):
        raise DataError(f"{where}: a text must be a str", found=_shown(text),
                        fix="pass the raw text as one string (pre-tokenised words go to predict_tokens)")


def _as_list(items, where: str, what: str, fix: str) -> list:
    """``items`` (a list, tuple or any iterable, a generator included) as a list; a mapping or a thing
    that is not iterable is refused (a dict would be read as its keys)."""
    if isinstance(items, Mapping) or not isinstance(items, Iterable):
        raise DataError(f"{where}: expected a list of {what}", found=_shown(items), fix=fix)
    return list(items)


def check_texts(texts) -> list:
    """``texts`` as a list, each a str; a lone str is refused (it would be read as one text a character)."""
    if isinstance(texts, (str, bytes)):
        raise DataError("predict_texts: expected a list of texts, found a single string",
                        fix="pass [text], or call predict_text(text)")
    texts = _as_list(texts, "predict_texts", "texts", "pass [text, ...], or call predict_text(text)")
    for number, text in enumerate(texts):
        check_text(text, where=f"predict_texts: item {number}")
    return texts


def check_sentences(sentences, where: str = "predict_token_batches") -> list:
    """``sentences`` as a list (a generator is read once, here), each a list of words, each word a str.
    The tokenizer takes a list where a word should be (a sentence inside a sentence) and tags it as one
    word, so every word is looked at: 6 ms for CoNLL-2003 test's 46,435 words (its tagging takes 10 s)."""
    if isinstance(sentences, (str, bytes)):
        raise DataError(f"{where}: expected a list of sentences (lists of words), found a single string",
                        fix="split the sentence into words, or pass raw text to predict_text")
    sentences = _as_list(sentences, where, "sentences (lists of words)", "pass [[word, ...], ...]")
    for number, words in enumerate(sentences):
        if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
            raise DataError(f"{where}: sentence {number} must be a list of words", found=_shown(words),
                            fix="pass [[word, ...], ...] (raw text goes to predict_text)")
        if not all(isinstance(word, str) for word in words):
            raise bad_word([words], where, number)
    return sentences


def check_words(words, where: str = "predict_tokens") -> None:
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise DataError(f"{where}: expected a list of words", found=_shown(words),
                        fix='pass ["Angela", "Merkel"], or the raw text to predict_text')
    if not all(isinstance(word, str) for word in words):
        raise bad_word([words], where)


def bad_word(sentences: Sequence[Sequence], where: str = "predict_token_batches", first: int = 0) -> DataError | None:
    """The error for the first word that is not a str, if any (``first``: the number of ``sentences[0]``)."""
    for number, words in enumerate(sentences, start=first):
        for index, word in enumerate(words):
            if not isinstance(word, str):
                hint = " (a list inside a sentence: pass several sentences to predict_token_batches)" \
                    if isinstance(word, (list, tuple)) else ""
                return DataError(f"{where}: word {index} of sentence {number} is not a str{hint}",
                                 found=_shown(word), fix="pass every word as a string")
    return None


def checked_splitter(splitter):
    """A user's word splitter (``text -> (words, offsets)``) whose every answer is checked: two lists of
    one length, each offset a ``(start, end)`` pair inside the text, in order and not overlapping (a word
    may be normalised, so it need not equal ``text[start:end]``). A wrong answer would otherwise fail deep
    inside, or give entities whose offsets point at other characters."""
    name = getattr(splitter, "__name__", "the word splitter")

    def split(text: str):
        result = splitter(text)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise DataError(f"{name}: expected (words, offsets) for a text", found=_shown(result),
                            fix="return two lists: the words and their (start, end) character offsets")
        words, offsets = result
        if len(words) != len(offsets):
            raise DataError(f"{name}: {len(words)} words but {len(offsets)} offsets for the text {text[:40]!r}",
                            fix="return one (start, end) pair per word")
        previous = 0
        for index, (word, span) in enumerate(zip(words, offsets)):
            if not isinstance(word, str):
                raise DataError(f"{name}: word {index} is not a str", found=_shown(word),
                                fix="return the words as strings (spaCy: token.text)")
            start, end = span if isinstance(span, (tuple, list)) and len(span) == 2 else (None, None)
            whole = all(isinstance(n, Integral) and not isinstance(n, bool) for n in (start, end))
            if not (whole and previous <= start < end <= len(text)):
                raise DataError(f"{name}: word {index} {word!r} has the offsets {span!r}, not a (start, end) pair "
                                f"inside the text after the previous word's end ({previous})",
                                fix="return offsets with text[start:end] the word's characters, end exclusive, in order")
            previous = end
        return list(words), [(int(start), int(end)) for start, end in offsets]

    split.__name__ = name
    return split
