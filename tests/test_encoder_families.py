"""Encoders other than BERT: a byte-level (RoBERTa-style) tokenizer whose prefix space is off reads every
word as inside a text, in training, prediction and the saved tokenizer; RoBERTa's position embeddings hold
two fewer sub-tokens than their count."""
from __future__ import annotations

import json

import numpy as np
import pytest

WORDS = ["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."]


@pytest.fixture(scope="module")
def byte_level(tmp_path_factory):
    """A RoBERTa tokenizer as roberta-base ships it (add_prefix_space false), trained here on a few lines."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import RobertaTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator([" ".join(WORDS)] * 20 + ["Germany calls the EU a lamb"] * 20, trainer)
    tokenizer = RobertaTokenizerFast(tokenizer_object=backend, add_prefix_space=False, model_max_length=64)
    directory = tmp_path_factory.mktemp("roberta")
    tokenizer.save_pretrained(directory)
    return directory


def test_words_are_encoded_as_inside_a_text_and_saved_that_way(byte_level, tmp_path):
    from transformers import AutoTokenizer

    from tokentune.modeling import save_tokenizer
    from tokentune.windows import WindowEncoder, words_get_a_prefix_space

    tokenizer = AutoTokenizer.from_pretrained(byte_level)
    assert tokenizer(" ".join(WORDS), add_special_tokens=False).tokens()[1:3] != ["re", "j"]  # "Ġre..." in a text
    assert words_get_a_prefix_space(tokenizer)
    encoder = WindowEncoder(tokenizer, max_length=64, stride=16)
    pieces = encoder.pieces([WORDS], np.array([0, len(WORDS)]))
    ours = tokenizer.convert_ids_to_tokens(pieces.ids.tolist())
    assert all(token.startswith("Ġ") for token, first in zip(ours, pieces.first) if first), ours

    save_tokenizer(tokenizer, str(tmp_path))  # what train and export write beside the model
    spec = json.load(open(tmp_path / "tokenizer.json"))
    assert spec["pre_tokenizer"]["add_prefix_space"] and spec["post_processor"]["add_prefix_space"]
    assert json.load(open(tmp_path / "tokenizer_config.json"))["add_prefix_space"] is True
    saved = AutoTokenizer.from_pretrained(tmp_path)
    assert not words_get_a_prefix_space(saved)
    text = " ".join(WORDS)
    encoding = saved(text, add_special_tokens=False, return_offsets_mapping=True)
    assert encoding.tokens() == ours  # plain transformers on running text: the pieces the model was trained on
    assert [text[a:b] for a, b in encoding["offset_mapping"]] == [t.lstrip("Ġ") for t in ours]  # offsets on the text


def test_a_tokenizer_with_its_prefix_space_on_is_left_alone(byte_level, tmp_path):
    from transformers import AutoTokenizer

    from tokentune.modeling import save_tokenizer
    from tokentune.windows import words_get_a_prefix_space

    tokenizer = AutoTokenizer.from_pretrained(byte_level, add_prefix_space=True)
    assert not words_get_a_prefix_space(tokenizer)
    save_tokenizer(tokenizer, str(tmp_path))
    assert json.load(open(tmp_path / "tokenizer.json"))["pre_tokenizer"]["add_prefix_space"] is True


@pytest.mark.parametrize("model_type, pad, limit", [("roberta", 1, 128), ("xlm-roberta", 1, 128), ("bert", 0, 130)])
def test_position_embeddings_after_the_pad_id_hold_two_fewer_sub_tokens(model_type, pad, limit):
    """A RoBERTa-family config of 130 positions numbers them from pad id + 1: 128 sub-tokens at most (a
    tokenizer without model_max_length made windows of 130 that crashed at the end of training)."""
    from types import SimpleNamespace

    from tokentune.modeling import model_max_length

    config = SimpleNamespace(model_type=model_type, max_position_embeddings=130, pad_token_id=pad)
    assert model_max_length(SimpleNamespace(model_max_length=int(1e30)), config) == limit
    assert model_max_length(SimpleNamespace(model_max_length=100), config) == 100
