"""The word splitter: raw text -> words with character offsets into that text.

Rules, in order of preference at each position (CoNLL-2003-like tokenisation, so that a model trained
on pre-tokenised corpora sees the same kind of words at prediction time):

1. an abbreviation of single letters with dots: ``U.S.``, ``e.g.``
2. a number with inner ``.`` or ``,``: ``3.5``, ``1,000``
3. a word: letters/digits/underscore, with inner hyphens or apostrophes-less joins: ``German-born``
4. a clitic: ``'s``, ``'t``, ``'re`` ... after a word (``Germany's`` -> ``Germany`` + ``'s``)
5. any other single non-space character (punctuation, symbols, emoji)

Combining marks (Unicode categories Mn, Mc, Me) stay with the character before them, so text in
decomposed form (NFD: ``Zoe\u0301``, Devanagari vowel signs) splits like its composed form.
Offsets are ``(start, end)`` end-exclusive, so ``text[start:end] == word`` always holds.

Those rules are the ``default`` of :data:`SPLITTERS`, the registry of word splitters for raw text
(``--word-splitter``): ``whitespace`` (runs of non-space), ``chars`` (every non-space character a word,
for Chinese/Japanese corpora tagged character by character), ``model`` (the tokenizer's own
pre-tokenizer) and ``thai`` (PyThaiNLP, the optional extra ``tokentune[thai]``). Every one keeps the
offsets exact. :func:`get_splitter` gives ``text -> (words, offsets)`` for a name.
"""
from __future__ import annotations

import re
import unicodedata

# where Unicode puts combining marks: the first two planes and the variation selectors supplement
_MARK_PLANES = (range(0x20000), range(0xE0000, 0xE1000))


def mark_class() -> str:
    """A regex character class body with every combining mark (category M*) of this Python's Unicode."""
    ranges: list[list[int]] = []
    for block in _MARK_PLANES:
        for code in block:
            if unicodedata.category(chr(code))[0] == "M":
                if ranges and ranges[-1][1] == code - 1:
                    ranges[-1][1] = code
                else:
                    ranges.append([code, code])
    return "".join(f"\\U{a:08x}" + (f"-\\U{b:08x}" if b > a else "") for a, b in ranges)


_MARKS = mark_class()
_M = f"[{_MARKS}]"  # a combining mark: it belongs to the character before it
WORD_PATTERN = re.compile(
    rf"(?:[^\W\d_]{_M}*\.){{2,}}"  # U.S. e.g.
    rf"|\d+(?:{_M}+\d*)*(?:[.,]\d+(?:{_M}+\d*)*)+"  # 3.5 1,000
    rf"|\w+(?:{_M}+\w*)*(?:-\w+(?:{_M}+\w*)*)*"  # words, German-born
    rf"|['’](?:s|S|t|re|ve|ll|d|m)(?![\w{_MARKS}])"  # clitics
    rf"|\S{_M}*",  # anything else, one character (and its marks) at a time
)


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split ``text`` into words and their ``(start, end)`` character offsets."""
    words: list[str] = []
    offsets: list[tuple[int, int]] = []
    for match in WORD_PATTERN.finditer(text):
        words.append(match.group())
        offsets.append(match.span())
    return words, offsets


# -- the registry of word splitters: name -> function(text, tokenizer) -> (words, offsets) -------------
Split = tuple[list[str], list[tuple[int, int]]]
_CHAR_PATTERN = re.compile(rf"\S{_M}*")  # one non-space character with its combining marks
_RUN_PATTERN = re.compile(r"\S+")


def _matches(pattern: re.Pattern, text: str) -> Split:
    words, offsets = [], []
    for match in pattern.finditer(text):
        words.append(match.group())
        offsets.append(match.span())
    return words, offsets


def split_whitespace(text: str, tokenizer=None) -> Split:
    """Runs of non-space characters (the text's own spaces are the only word boundaries)."""
    return _matches(_RUN_PATTERN, text)


def split_chars(text: str, tokenizer=None) -> Split:
    """Every non-space character a word (with the combining marks that follow it): for corpora tagged
    character by character, as Chinese and Japanese NER sets usually are."""
    return _matches(_CHAR_PATTERN, text)


def split_model(text: str, tokenizer=None) -> Split:
    """The pieces of the tokenizer's own pre-tokenizer (``backend_tokenizer.pre_tokenizer``), with the
    whitespace that some pre-tokenizers keep in a piece (``▁word``, ``Ġword``) trimmed off."""
    pre_tokenizer = model_pre_tokenizer(tokenizer)
    words, offsets = [], []
    last = 0
    for _, (start, end) in pre_tokenizer.pre_tokenize_str(text):
        start, end = max(start, last), min(end, len(text))
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start < end:
            words.append(text[start:end])
            offsets.append((start, end))
            last = end
    return words, offsets


def model_pre_tokenizer(tokenizer):
    """The pre-tokenizer of a fast tokenizer, or a ConfigError saying why the model splitter cannot work."""
    from .errors import ConfigError

    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre_tokenizer = getattr(backend, "pre_tokenizer", None)
    if pre_tokenizer is None:
        kind = "no tokenizer" if tokenizer is None else f"the tokenizer {type(tokenizer).__name__}"
        raise ConfigError(f"the 'model' word splitter needs a fast tokenizer with a pre-tokenizer; {kind} has none",
                          fix="pass --word-splitter default, whitespace or chars")
    return pre_tokenizer


_THAI_PATTERN = re.compile(r"[\u0e00-\u0e7f]+")  # a run of the Thai block: letters, vowels and tone marks


def split_thai(text: str, tokenizer=None) -> Split:
    """Thai runs through PyThaiNLP's ``word_tokenize`` (dictionary-based newmm, offline), the rest of the
    text by the default rules. Offsets are found by walking each run; characters the tokenizer did not
    return as written become a word of their own, so no text is lost and offsets stay exact."""
    word_tokenize = thai_tokenizer()
    words, offsets = [], []
    cursor = 0
    for run in _THAI_PATTERN.finditer(text):
        _extend(words, offsets, split_words(text[cursor:run.start()]), cursor)
        _extend(words, offsets, _walk(run.group(), word_tokenize(run.group(), keep_whitespace=False)), run.start())
        cursor = run.end()
    _extend(words, offsets, split_words(text[cursor:]), cursor)
    return words, offsets


def _extend(words: list[str], offsets: list[tuple[int, int]], split: Split, base: int) -> None:
    words.extend(split[0])
    offsets.extend((base + start, base + end) for start, end in split[1])


def _walk(chunk: str, pieces: list[str]) -> Split:
    """Offsets of ``pieces`` in ``chunk`` (a run without spaces), found left to right."""
    words, offsets, cursor = [], [], 0
    for piece in pieces:
        found = chunk.find(piece, cursor) if piece else -1
        if found < 0:
            continue
        if found > cursor:  # characters the tokenizer changed or left out: keep them as one word
            words.append(chunk[cursor:found])
            offsets.append((cursor, found))
        words.append(piece)
        offsets.append((found, found + len(piece)))
        cursor = found + len(piece)
    if cursor < len(chunk):
        words.append(chunk[cursor:])
        offsets.append((cursor, len(chunk)))
    return words, offsets


def thai_tokenizer():
    """``pythainlp.tokenize.word_tokenize``, or a ConfigError naming the extra to install."""
    from .errors import ConfigError

    try:
        from pythainlp.tokenize import word_tokenize
    except ImportError as err:
        raise ConfigError(f"the 'thai' word splitter needs PyThaiNLP ({err})",
                          fix="pip install 'tokentune[thai]' (or pythainlp>=5)") from None
    except (ValueError, OSError) as err:  # e.g. both PYTHAINLP_DATA and PYTHAINLP_DATA_DIR set
        raise ConfigError(f"PyThaiNLP failed to load: {err}",
                          fix="check its PYTHAINLP_DATA setting, or pass another --word-splitter") from None
    return word_tokenize


SPLITTERS = {
    "default": lambda text, tokenizer=None: split_words(text),  # the CoNLL-like rules above
    "whitespace": split_whitespace,
    "chars": split_chars,
    "model": split_model,
    "thai": split_thai,
}


def check_splitter(name: str | None) -> str:
    """The registered name (``None`` -> ``default``); unknown names and a missing optional package are
    ConfigErrors, raised before any model is loaded."""
    from .settings import check_choice

    name = check_choice(name, tuple(SPLITTERS), "word splitter", "--word-splitter")
    if name == "thai":
        thai_tokenizer()
    return name


def get_splitter(name: str | None, tokenizer=None):
    """``text -> (words, offsets)`` for a registered splitter; ``model`` reads ``tokenizer``'s pre-tokenizer."""
    name = check_splitter(name)
    if name == "model":
        model_pre_tokenizer(tokenizer)
    function = SPLITTERS[name]
    return lambda text: function(text, tokenizer)


def splitter_for_reading(name: str | None, load_tokenizer):
    """What raw-text data (character-span formats) is split with for a model whose word splitter is
    ``name``, so that training and evaluation read words as prediction will: None for the default rules
    (the readers' own), else ``text -> (words, offsets)``, made on first use, so that data without raw text
    (CoNLL, Hugging Face) needs neither the splitter's package nor, for ``model``, ``load_tokenizer()``."""
    from .settings import check_choice

    name = check_choice(name, tuple(SPLITTERS), "word splitter", "--word-splitter")
    if name == "default":
        return None
    made: list = []

    def split(text: str) -> Split:
        if not made:
            made.append(get_splitter(name, load_tokenizer() if name == "model" else None))
        return made[0](text)

    return split
