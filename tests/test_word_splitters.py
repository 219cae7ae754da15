"""Pluggable word splitting of raw text (`--word-splitter default|whitespace|chars|model|thai`): the
registry, exact offsets for every splitter on any Unicode, and Chinese/Japanese character-tagged
models that tag raw text with `--word-splitter chars`."""
from __future__ import annotations

import json
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tokentune.cli.main import main
from tokentune.errors import ConfigError
from tokentune.inference import Tagger
from tokentune.words import SPLITTERS, get_splitter, split_words

try:
    import pythainlp  # noqa: F401

    HAS_THAI = True
except ImportError:
    HAS_THAI = False
NO_THAI = "PyThaiNLP is not installed (pip install 'tokentune[thai]')"


def check_exact(text: str, split) -> list[str]:
    """Offsets exact, in order, not overlapping, no empty word and no word with whitespace at an edge;
    every non-space character of the text is in some word."""
    words, offsets = split
    assert [text[start:end] for start, end in offsets] == words
    last = 0
    for word, (start, end) in zip(words, offsets):
        assert last <= start < end <= len(text)
        assert word.strip() == word
        last = end
    covered = {i for start, end in offsets for i in range(start, end)}
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)
    return words


def bert_tokenizer(vocab_words, directory=None):
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *vocab_words]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab))}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=False, model_max_length=64)
    if directory is not None:
        tokenizer.save_pretrained(directory)
    return tokenizer


def pre_tokenizer_tokenizers():
    """Fast tokenizers with the common pre-tokenizers: BERT's, byte-level (RoBERTa/GPT-2) and
    Metaspace (SentencePiece), the last two keeping a space inside their pieces."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    result = [bert_tokenizer(["a", "b"])]
    for pre in (pre_tokenizers.ByteLevel(add_prefix_space=False), pre_tokenizers.Metaspace()):
        backend = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
        backend.pre_tokenizer = pre
        result.append(PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]"))
    return result


TOKENIZERS = pre_tokenizer_tokenizers()


# -- the registry -----------------------------------------------------------------------------
def test_registry_names_and_unknown_names():
    assert list(SPLITTERS) == ["default", "whitespace", "chars", "model", "thai"]
    with pytest.raises(ConfigError, match="default, whitespace, chars, model, thai") as caught:
        get_splitter("jieba")
    assert "--word-splitter" in str(caught.value)
    with pytest.raises(ConfigError, match="pre-tokenizer"):
        get_splitter("model")  # no tokenizer to take it from


def test_default_is_todays_rules():
    text = "U.S. officials met Germany's team in 3.5 hours."
    assert get_splitter("default")(text) == split_words(text)
    assert get_splitter(None)(text) == split_words(text)


def test_each_splitter_on_mixed_text():
    text = " 東京タワーへ行った。 New-York's  cafe\u0301 ok "
    assert check_exact(text, get_splitter("whitespace")(text)) == ["東京タワーへ行った。", "New-York's", "cafe\u0301", "ok"]
    assert check_exact(text, get_splitter("chars")(text)) == [
        *"東京タワーへ行った。", *"New-York's", "c", "a", "f", "e\u0301", "o", "k"]
    bert, byte_level, metaspace = (get_splitter("model", tokenizer) for tokenizer in TOKENIZERS)
    assert check_exact(text, bert(text)) == ["東京タワーへ行った", "。", "New", "-", "York", "'", "s", "cafe\u0301", "ok"]
    assert check_exact(text, byte_level(text))[4:6] == ["York", "'s"]  # 'ĠYork': the space is trimmed off
    assert check_exact(text, metaspace(text)) == ["東京タワーへ行った。", "New-York's", "cafe\u0301", "ok"]


@pytest.mark.skipif(not HAS_THAI, reason=NO_THAI)
def test_thai_splits_into_words():
    text = "ผมรักประเทศไทย นะครับ (Bangkok)"
    words = check_exact(text, get_splitter("thai")(text))
    assert words[:4] == ["ผม", "รัก", "ประเทศ", "ไทย"]
    assert "Bangkok" in words and "(" in words  # the rest of the text by the default rules


def test_thai_without_pythainlp_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pythainlp", None)
    monkeypatch.setitem(sys.modules, "pythainlp.tokenize", None)
    with pytest.raises(ConfigError, match=r"tokentune\[thai\]"):
        get_splitter("thai")


# -- offsets are exact on any text ----------------------------------------------------------------
UNICODE = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)
MIXED = st.text(alphabet=st.sampled_from(list(" \t\u00a0\u3000a.'-1東京タワーผมรักไทย\u0301\u0e31é😀")), max_size=40)
SPLITTER_CASES = [("default", None), ("whitespace", None), ("chars", None),
                  *(("model", tokenizer) for tokenizer in TOKENIZERS)]
if HAS_THAI:
    SPLITTER_CASES.append(("thai", None))


@pytest.mark.parametrize("name,tokenizer", SPLITTER_CASES,
                         ids=[f"{name}-{type(t).__name__ if t else ''}-{i}" for i, (name, t) in enumerate(SPLITTER_CASES)])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(UNICODE, MIXED))
def test_offsets_are_exact_on_random_unicode(name, tokenizer, text):
    check_exact(text, get_splitter(name, tokenizer)(text))


# -- Chinese and Japanese character-tagged models ---------------------------------------------------
LANGUAGES = {
    "zh": {"PER": ["张伟", "李娜", "王芳"], "LOC": ["北京", "上海", "广州"], "ORG": ["华为", "腾讯"],
           "filler": ["在", "去", "了", "和", "工", "作", "今", "天", "。", "，"],
           "text": "李娜今天去了上海。", "expect": {("PER", "李娜"), ("LOC", "上海")}},
    "ja": {"PER": ["田中", "佐藤", "鈴木"], "LOC": ["東京", "大阪", "京都"], "ORG": ["ソニー", "トヨタ"],
           "filler": ["は", "に", "へ", "行", "っ", "た", "で", "働", "く", "。", "、"],
           "text": "佐藤は大阪へ行った。", "expect": {("PER", "佐藤"), ("LOC", "大阪")}},
}


def char_sentences(language: dict, count: int, seed: int) -> list[list[tuple[str, str]]]:
    """Random sentences, one character per word, tags in IOB2."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words: list[tuple[str, str]] = []
        for _ in range(rng.randint(3, 7)):
            kind = rng.choice(["PER", "LOC", "ORG", "filler", "filler", "filler"])
            entity = rng.choice(language[kind])
            if kind == "filler":
                words.append((entity, "O"))
            else:
                words += [(char, ("B-" if i == 0 else "I-") + kind) for i, char in enumerate(entity)]
        sentences.append(words)
    return sentences


def write_chars(path, sentences) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join("".join(f"{c}\t{t}\n" for c, t in sentence) + "\n" for sentence in sentences))
    return str(path)


@pytest.fixture(scope="module", params=sorted(LANGUAGES))
def char_model(request, tmp_path_factory):
    """A tiny BERT whose vocabulary has the language's characters, trained with --word-splitter chars."""
    import torch
    from transformers import BertConfig, BertModel

    language = LANGUAGES[request.param]
    root = tmp_path_factory.mktemp(f"chars_{request.param}")
    chars = sorted({c for kind in ("PER", "LOC", "ORG", "filler") for word in language[kind] for c in word})
    base = root / "base"
    tokenizer = bert_tokenizer(chars, base)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(base)
    train = write_chars(root / "train.conll", char_sentences(language, 160, seed=1))
    dev = write_chars(root / "dev.conll", char_sentences(language, 30, seed=2))
    out = str(root / "model")
    assert main(["train", "--train", train, "--dev", dev, "--model", str(base), "--output", out,
                 "--word-splitter", "chars", "--epochs", "4", "--learning-rate", "5e-3", "--batch-size", "8",
                 "--seed", "7", "--quiet"]) == 0
    return out, language


def test_predict_chars_on_raw_text(char_model, capsys):
    out, language = char_model
    capsys.readouterr()
    text = language["text"]
    assert main(["predict", out, text, "--word-splitter", "chars", "--quiet"]) == 0
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    found = record["entities"]
    for entity in found:
        assert text[entity["start"]:entity["end"]] == entity["text"]
    assert {(e["label"], e["text"]) for e in found} >= language["expect"]


def test_the_saved_splitter_is_the_default(char_model, capsys):
    out, language = char_model
    with open(os.path.join(out, "tokentune_config.json"), encoding="utf-8") as handle:
        assert json.load(handle)["word_splitter"] == "chars"
    tagger = Tagger.from_pretrained(out)
    assert tagger.word_splitter == "chars"
    text = language["text"]
    assert tagger.predict_text(text) == Tagger.from_pretrained(out, word_splitter="chars").predict_text(text)
    assert Tagger.from_pretrained(out, word_splitter="whitespace").split_text(text) == ([text], [(0, len(text))])
    capsys.readouterr()
    assert main(["predict", out, text, "--quiet"]) == 0  # no flag: the model's own splitter
    (record,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["entities"] == [e.to_dict() for e in tagger.predict_text(text)]


def test_tagger_takes_a_function_and_refuses_unknown_names(char_model):
    out, language = char_model
    tagger = Tagger.from_pretrained(out)
    custom = Tagger(tagger.runner, tagger.tokenizer, tagger.labels, max_length=tagger.max_length,
                    word_splitter=get_splitter("chars"), crf=tagger.crf)
    assert custom.predict_text(language["text"]) == tagger.predict_text(language["text"])
    with pytest.raises(ConfigError, match="unknown word splitter 'jieba'"):
        Tagger(tagger.runner, tagger.tokenizer, tagger.labels, max_length=tagger.max_length, word_splitter="jieba")
    with pytest.raises(ConfigError, match="unknown word splitter"):
        Tagger.from_pretrained(out, word_splitter="jieba")


def test_serve_uses_the_splitter(char_model):
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from tokentune.serving import create_app

    from serving.helpers import ThreadServer, client

    out, language = char_model
    text = language["text"]
    expected = [e.to_dict() for e in Tagger.from_pretrained(out, word_splitter="chars").predict_text(text)]
    app = create_app(out, tagger_options={"word_splitter": "chars"})
    with ThreadServer(app) as running, client(running.url) as http:
        assert http.get("/model").json()["word_splitter"] == "chars"
        response = http.post("/predict", json={"text": text})
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["entities"] == expected


def test_raw_text_data_is_read_with_the_models_splitter(char_model, tmp_path):
    """Character-span data (JSON text records) is split into words as the model splits text when it
    predicts: evaluating the chars model on them equals evaluating it on the same sentences as columns."""
    from tokentune.data import read_corpus
    from tokentune.evaluation import evaluate

    out, language = char_model
    sentences = char_sentences(language, 20, seed=5)
    records = []
    for sentence in sentences:
        text = "".join(c for c, _ in sentence)
        spans, start = [], None
        for i, (_, tag) in enumerate([*sentence, ("", "O")]):
            if start is not None and not tag.startswith("I-"):
                spans.append([start, i, sentence[start][1][2:]])
                start = None
            if tag.startswith("B-"):
                start = i
        records.append({"text": text, "entities": spans})
    jsonl = tmp_path / "dev.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    columns = write_chars(tmp_path / "dev.conll", sentences)
    assert [s.words for s in read_corpus(jsonl, word_splitter="chars")] == [tuple(c for c, _ in s) for s in sentences]
    scores = [evaluate(out, str(path)) for path in (jsonl, columns)]
    assert [{k: s[k] for k in ("precision", "recall", "f1", "accuracy")} for s in scores].count(
        {k: scores[1][k] for k in ("precision", "recall", "f1", "accuracy")}) == 2
    with pytest.raises(ConfigError, match="needs the model's tokenizer"):
        read_corpus(jsonl, word_splitter="model")
    tokenizer = Tagger.from_pretrained(out).tokenizer
    assert read_corpus(jsonl, word_splitter=get_splitter("model", tokenizer)).num_tokens > 0


def test_training_reads_raw_text_data_with_its_word_splitter(tmp_path):
    from tokentune.config import TrainConfig
    from tokentune.training.run import prepare_splits

    data = tmp_path / "data"
    data.mkdir()
    record = {"text": "東京で山田が", "entities": [[0, 2, "LOC"], [3, 5, "PER"]]}
    for name in ("train", "dev"):
        (data / f"{name}.jsonl").write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    chars = prepare_splits(TrainConfig(data=str(data), output=str(tmp_path / "o"), word_splitter="chars"))
    assert [s.words for s in chars.train] == [tuple("東京で山田が")]
    default = prepare_splits(TrainConfig(data=str(data), output=str(tmp_path / "o")))
    assert [s.words for s in default.train] == [("東京", "で", "山田", "が")]  # runs split at entity edges only


def test_the_reading_splitter_is_made_on_first_use(monkeypatch):
    import sys

    from tokentune.words import splitter_for_reading

    loads = []
    split = splitter_for_reading("model", lambda: loads.append(1) or bert_tokenizer(["a", "b"]))
    assert loads == [] and split("a b")[0] == ["a", "b"] and split("b")[0] == ["b"] and loads == [1]
    monkeypatch.setitem(sys.modules, "pythainlp", None)  # not installed: CoNLL data must still train
    monkeypatch.setitem(sys.modules, "pythainlp.tokenize", None)
    thai = splitter_for_reading("thai", lambda: None)
    with pytest.raises(ConfigError, match="PyThaiNLP"):
        thai("สวัสดี")
    assert splitter_for_reading("default", lambda: None) is None
    with pytest.raises(ConfigError, match="word splitter"):
        splitter_for_reading("nope", lambda: None)


def test_inspect_with_a_model_reads_raw_text_as_the_model_does(char_model, tmp_path):
    from tokentune.data.stats import inspect_data

    out, language = char_model
    text = language["text"]
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps({"text": text, "entities": []}, ensure_ascii=False) + "\n", encoding="utf-8")
    chars = len([c for c in text if not c.isspace()])
    report = inspect_data(str(path), {}, model=out)
    assert report["splits"]["t.jsonl"]["length_words"]["max"] == chars
    assert inspect_data(str(path), {})["splits"]["t.jsonl"]["length_words"]["max"] < chars  # the default rules
