"""The Tagger's entry points check the shape of what they are given, so that a wrong call is one
:class:`~tokentune.errors.DataError` naming the argument and the item, not a tokenizer's TypeError or a
string tagged one character at a time (``predict_tokens("Angela Merkel")``)."""
from __future__ import annotations

from typing import Sequence

from ..errors import DataError


def _shown(value) -> str:
    return f"{type(value).__name__} {value!r}"[:80]


def check_text(text, where: str = "predict_text") -> None:
    if not isinstance(text, str):
        raise DataError(f"{where}: a text must be a str", found=_shown(text),
                        fix="pass the raw text as one string (pre-tokenised words go to predict_tokens)")


def check_texts(texts) -> list:
    """``texts`` as a list, each a str; a lone str is refused (it would be read as one text a character)."""
    if isinstance(texts, (str, bytes)):
        raise DataError("predict_texts: expected a list of texts, found a single string",
                        fix="pass [text], or call predict_text(text)")
    texts = list(texts)
    for number, text in enumerate(texts):
        check_text(text, where=f"predict_texts: item {number}")
    return texts


def check_sentences(sentences: Sequence, where: str = "predict_token_batches") -> None:
    """Each sentence a list of words, not a string (per sentence here: words are checked where the
    tokenizer refuses one, :func:`bad_word`, so the hot path has no Python loop per word)."""
    if isinstance(sentences, (str, bytes)):
        raise DataError(f"{where}: expected a list of sentences (lists of words), found a single string",
                        fix="split the sentence into words, or pass raw text to predict_text")
    for number, words in enumerate(sentences):
        if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
            raise DataError(f"{where}: sentence {number} must be a list of words", found=_shown(words),
                            fix="pass [[word, ...], ...] (raw text goes to predict_text)")


def check_words(words, where: str = "predict_tokens") -> None:
    if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
        raise DataError(f"{where}: expected a list of words", found=_shown(words),
                        fix='pass ["Angela", "Merkel"], or the raw text to predict_text')


def bad_word(sentences: Sequence[Sequence], where: str = "predict_token_batches") -> DataError | None:
    """The error for the first word that is not a str, if any (called when the tokenizer refused one)."""
    for number, words in enumerate(sentences):
        for index, word in enumerate(words):
            if not isinstance(word, str):
                return DataError(f"{where}: word {index} of sentence {number} is not a str", found=_shown(word),
                                 fix="pass every word as a string")
    return None
