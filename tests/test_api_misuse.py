"""Mistakes a Python user makes with the library's entry points: each a typed error that says what was
expected and found, never a silent wrong result or a traceback from inside torch or transformers."""
from __future__ import annotations

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

import tokentune
from tokentune.config import TrainConfig
from tokentune.errors import ConfigError, DataError, ModelError
from tokentune.modeling import resolve_model
from tokentune.trainer_args import SCHEDULERS


@pytest.fixture(scope="module")
def tagger(tiny_model):
    return tokentune.Tagger.from_pretrained(tiny_model.output_dir)


def test_train_takes_a_config_or_its_fields_never_both(tiny_data, tmp_path):
    config = TrainConfig(data=tiny_data, output=str(tmp_path / "a"), epochs=1)
    with pytest.raises(ConfigError, match="a TrainConfig and also epochs, output, which would be ignored"):
        tokentune.train(config, output=str(tmp_path / "b"), epochs=2)
    with pytest.raises(ConfigError, match="takes a TrainConfig or its fields as keywords, found a str"):
        tokentune.train(tiny_data)
    with pytest.raises(ConfigError, match="did you mean 'learning_rate'"):
        tokentune.train(data=tiny_data, output=str(tmp_path / "c"), learnign_rate=1e-4)
    assert not os.listdir(tmp_path)


def test_settings_checked_when_built():
    with pytest.raises(ConfigError, match="unknown lr_scheduler 'linnear'"):
        TrainConfig(data="d", lr_scheduler="linnear")
    with pytest.raises(ConfigError, match="the linear schedule takes no power"):
        TrainConfig(data="d", trainer=['lr_scheduler_kwargs={"power": 2.0}'])
    with pytest.raises(ConfigError, match="lr_scheduler_kwargs=notjson: expected a JSON object"):
        TrainConfig(data="d", trainer=["lr_scheduler_kwargs=notjson"])
    assert TrainConfig(data="d", trainer=["lr_scheduler_kwargs=null"]).trainer == {"lr_scheduler_kwargs": None}
    polynomial = TrainConfig(data="d", lr_scheduler="polynomial", trainer=['lr_scheduler_kwargs={"power": 2.0}'])
    assert polynomial.trainer == {"lr_scheduler_kwargs": {"power": 2.0}}
    with pytest.raises(ConfigError, match="seed must be at least 0, got -1"):
        TrainConfig(data="d", seed=-1)
    embedded = TrainConfig(data="d", model=None, train_scheme="bioes")
    assert (embedded.model, embedded.learning_rate, embedded.train_scheme) == ("minilm", 1e-4, "BIOES")
    assert TrainConfig(data="d", model="default").learning_rate == 1e-4
    paths = TrainConfig(data=Path("d"), output=Path("out"))
    assert (paths.data, paths.output) == ("d", "out")


def test_the_schedules_are_transformers_own():
    from transformers.trainer_utils import SchedulerType

    assert SCHEDULERS == tuple(member.value for member in SchedulerType)


def test_sentences_and_words_are_checked(tagger):
    with pytest.raises(DataError, match="word 0 of sentence 0 is not a str .a list inside a sentence"):
        tagger.predict_tokens([["Alice", "met"], ["Paris"]])
    with pytest.raises(DataError, match="word 1 of sentence 1 is not a str"):
        tagger.predict_token_batches([["Alice"], ["Bob", 3]])
    sentences = [["Alice", "met", "Bob"], ["Paris"]]
    assert tagger.predict_token_batches(iter(sentences)) == tagger.predict_token_batches(sentences)
    for wrong in (None, 5, {"Alice met Bob": 1}):
        with pytest.raises(DataError, match="predict_texts: expected a list of texts"):
            tagger.predict_texts(wrong)
        with pytest.raises(DataError, match="predict_token_batches: expected a list of sentences"):
            tagger.predict_token_batches(wrong)
    assert tagger.predict_texts(text for text in ["Alice met Bob"]) == tagger.predict_texts(["Alice met Bob"])


def test_devices_are_checked_before_the_model_loads(tiny_model):
    import torch

    with pytest.raises(ConfigError, match="unknown device 'gpu'"):
        tokentune.Tagger.from_pretrained(tiny_model.output_dir, device="gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="torch sees no CUDA GPU on this machine"):
            tokentune.Tagger.from_pretrained(tiny_model.output_dir, device="cuda")


def test_damaged_side_files_are_refused(tiny_model, tmp_path):
    without_crf = tmp_path / "no-crf"
    shutil.copytree(tiny_model.output_dir, without_crf)
    os.remove(without_crf / "crf.safetensors")
    with pytest.raises(ModelError, match="crf.safetensors is missing, but tokentune_config.json says"):
        tokentune.Tagger.from_pretrained(str(without_crf))
    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_model.output_dir, truncated)
    (truncated / "tokentune_config.json").write_text('{"word_splitter": ')
    with pytest.raises(ModelError, match="cannot read .*tokentune_config.json"):
        tokentune.Tagger.from_pretrained(str(truncated))


def test_paths_may_be_pathlib(tiny_model, tiny_data, tagger):
    from_path = tokentune.Tagger.from_pretrained(Path(tiny_model.output_dir))
    assert from_path.predict_text("Alice met Bob in Paris .") == tagger.predict_text("Alice met Bob in Paris .")
    assert tokentune.evaluate(Path(tiny_model.output_dir), Path(tiny_data))["f1"] == \
        tokentune.evaluate(tiny_model.output_dir, tiny_data)["f1"]


def test_an_unreachable_hub_is_said_at_once(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def unresolvable(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unresolvable)
    started = time.perf_counter()
    with pytest.raises(ModelError, match="could not be fetched from the Hugging Face Hub .offline.*cannot be resolved"):
        resolve_model("someone/no-such-model-here", flag="MODEL_DIR")
    assert time.perf_counter() - started < 5
    import huggingface_hub

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # the proxy resolves names, not this machine
    assert resolve_model("someone/behind-a-proxy") == "someone/behind-a-proxy"
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *args, **kwargs: "/cache/config.json")
    assert resolve_model("someone/cached-model") == "someone/cached-model"  # the cache serves it offline



def test_a_word_splitter_of_ones_own_is_checked(tiny_model):
    def same_offsets(text):
        words = text.split()
        return words, [(0, 3)] * len(words)

    def too_few(text):
        return text.split(), [(0, 1)]

    def bare_list(text):
        return text.split()

    for splitter, message in ((same_offsets, "word 1 'met' has the offsets \\(0, 3\\)"),
                              (too_few, "5 words but 1 offsets"), (bare_list, "expected \\(words, offsets\\)")):
        tagger = tokentune.Tagger.from_pretrained(tiny_model.output_dir, word_splitter=splitter)
        with pytest.raises(DataError, match=f"{splitter.__name__}: {message}"):
            tagger.predict_text("Alice met Bob in Paris")

    def lowercased(text):
        words, offsets = [], []
        for word in text.split():
            start = text.index(word, offsets[-1][1] if offsets else 0)
            words.append(word.lower())
            offsets.append((start, start + len(word)))
        return words, offsets

    tagger = tokentune.Tagger.from_pretrained(tiny_model.output_dir, word_splitter=lowercased)
    assert all(e.text == "Alice met Bob in Paris"[e.start:e.end] for e in tagger.predict_text("Alice met Bob in Paris"))

    def numpy_offsets(text):
        import numpy as np

        words, offsets = lowercased(text)
        return words, [(np.int64(start), np.int64(end)) for start, end in offsets]

    numpy_tagger = tokentune.Tagger.from_pretrained(tiny_model.output_dir, word_splitter=numpy_offsets)
    assert numpy_tagger.predict_text("Alice met Bob in Paris") == tagger.predict_text("Alice met Bob in Paris")

    class Token:
        text = "Alice"

    def objects(text):
        return [Token()], [(0, 5)]

    with pytest.raises(DataError, match="objects: word 0 is not a str"):
        tokentune.Tagger.from_pretrained(tiny_model.output_dir, word_splitter=objects).predict_text("Alice")


def test_tune_takes_its_two_dataclasses(tiny_data, tmp_path):
    from tokentune.tuning import tune

    config = TrainConfig(data=tiny_data, output=str(tmp_path / "t"), epochs=1)
    with pytest.raises(ConfigError, match="tune\\(\\) takes a TuneOptions as options, found a dict"):
        tune(config, {"trials": 2})
    with pytest.raises(ConfigError, match="tune\\(\\) takes a TrainConfig as config, found a dict"):
        tune({"data": tiny_data})
    assert not os.listdir(tmp_path)
