"""Shared fixtures: a tiny randomly initialised BERT and tiny CoNLL data, built inside the tests."""
from __future__ import annotations

import os
import random

import pytest

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")

PEOPLE = ["Alice", "Bob", "Carol", "Dieter", "Erika"]
PLACES = ["Paris", "Berlin", "Madrid", "Oslo", "Rome"]
ORGS = ["Acme", "Globex", "Initech", "Umbrella"]
FILLER = ["met", "in", "visited", "works", "for", "the", "and", "today", "said", "with", "from", "."]


def make_sentences(count: int, seed: int = 0) -> list[list[tuple[str, str]]]:
    """Random sentences in IOB1 tags (as CoNLL-2003 writes them) with PER, LOC and ORG."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        words: list[tuple[str, str]] = []
        for _ in range(rng.randint(2, 6)):
            kind = rng.random()
            if kind < 0.2:
                words.append((rng.choice(PEOPLE), "I-PER"))
                if rng.random() < 0.3:
                    words.append(("Smith", "I-PER"))
            elif kind < 0.35:
                words.append((rng.choice(PLACES), "I-LOC"))
            elif kind < 0.45:
                words.append((rng.choice(ORGS), "I-ORG"))
            else:
                words.append((rng.choice(FILLER), "O"))
        sentences.append(words)
    return sentences


def write_conll(path, sentences, docstart: bool = True) -> None:
    lines = ["-DOCSTART- -X- -X- O", ""] if docstart else []
    for sentence in sentences:
        lines += [f"{w} NNP I-NP {t}" for w, t in sentence] + [""]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_conll")
    write_conll(root / "train.txt", make_sentences(160, seed=1))
    write_conll(root / "dev.txt", make_sentences(40, seed=2))
    write_conll(root / "test.txt", make_sentences(40, seed=3))
    return str(root)


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory):
    """A randomly initialised 2-layer BERT with a word-level vocabulary: a 'pretrained' encoder dir."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(PEOPLE + PLACES + ORGS + FILLER + ["Smith"]))
    vocab += [c for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789,;:!?'\"()-"]
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab))}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=False, model_max_length=64)
    tokenizer.save_pretrained(root)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(root)
    return str(root)


@pytest.fixture(scope="session")
def tiny_model(tiny_data, tiny_base_model, tmp_path_factory):
    """A tiny model trained by tokentune on tiny_data (learns the fixture's entities in a few seconds)."""
    import tokentune

    output = tmp_path_factory.mktemp("trained") / "model"
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(output), epochs=4,
                             learning_rate=5e-3, batch_size=8, quiet=True, seed=7)
    return result


def span_sentences(words, labels):
    """A hypothesis strategy: a Sentence of 1-8 words from ``words`` with non-overlapping spans of ``labels``."""
    from hypothesis import strategies as st

    from tokentune.data import Sentence

    @st.composite
    def build(draw):
        drawn = draw(st.lists(words, min_size=1, max_size=8))
        spans, position = [], 0
        while position < len(drawn):
            length = draw(st.integers(0, len(drawn) - position))
            if length and draw(st.booleans()):
                spans.append((draw(st.sampled_from(labels)), position, position + length))
            position += max(length, 1)
        return Sentence(tuple(drawn), tuple(spans))

    return build()


def write_documents(path, sentences, per_document=10):
    """CoNLL-2003 columns with a -DOCSTART- before every ``per_document`` sentences."""
    lines = []
    for i, sentence in enumerate(sentences):
        if i % per_document == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        lines += [f"{w} NNP I-NP {t}" for w, t in sentence] + [""]
    path.write_text("\n".join(lines) + "\n")


def document_splits(directory, train=120, dev=30, test=30):
    """train/dev/test.txt in ``directory`` (made), CoNLL-2003 columns, ten sentences per document."""
    directory.mkdir()
    for name, count, seed in (("train", train, 1), ("dev", dev, 2), ("test", test, 3)):
        write_documents(directory / f"{name}.txt", make_sentences(count, seed=seed))
    return directory


def assert_same_entities(ours, theirs, score_tolerance: float = 1e-4) -> None:
    """Entities (``Entity`` or their dicts), per text, equal in label, offsets and text, and in score up to
    ``score_tolerance``: in bf16 (``precision auto`` on an AMX CPU) a text's scores depend a little on what
    else is in its batch (packed rows, inference/packed.py), as they do on the batch size."""
    def fields(entity):
        entity = entity if isinstance(entity, dict) else entity.to_dict()
        return (entity["label"], entity["start"], entity["end"], entity["text"]), entity["score"]

    ours, theirs = [[fields(e) for e in found] for found in ours], [[fields(e) for e in found] for found in theirs]
    assert [[key for key, _ in found] for found in ours] == [[key for key, _ in found] for found in theirs]
    for mine, other in zip(ours, theirs):
        assert all(abs(a - b) <= score_tolerance for (_, a), (_, b) in zip(mine, other)), (mine, other)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs for a module's tests (left alone if the process already has one)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def out_dir(tmp_path):
    """Outputs go next to tmp_path, never among the inputs."""
    path = tmp_path.parent / f"{tmp_path.name}-o"
    path.mkdir()
    return path


@pytest.fixture
def one_thread():
    """Whatever thread count a test sets, torch's is restored after it."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
