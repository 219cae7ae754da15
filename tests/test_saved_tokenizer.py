"""tokenizer.json as tokentune writes it (train, export): without the truncation and padding that a base
model may bake into it (the embedded MiniLM's: 128), so whatever reads the file itself (the tokenizers
library beside onnxruntime, Rust, JavaScript) sees every sub-token of a long text."""
from __future__ import annotations

import os
import shutil

import pytest
from tokenizers import Tokenizer

import tokentune
from tokentune.cli.main import main

LONG = " ".join(["Smith"] * 30)  # 30 sub-tokens of the tiny vocabulary, 32 with [CLS] and [SEP]


def sub_tokens(directory: str, text: str) -> list[int]:
    return Tokenizer.from_file(os.path.join(directory, "tokenizer.json")).encode(text).ids


@pytest.fixture(scope="module")
def capped_base(tiny_base_model, tmp_path_factory):
    """The tiny base model with its tokenizer.json capped as the embedded MiniLM's is."""
    root = tmp_path_factory.mktemp("capped") / "base"
    shutil.copytree(tiny_base_model, root)
    backend = Tokenizer.from_file(str(root / "tokenizer.json"))
    backend.enable_truncation(12)
    backend.enable_padding(length=12)
    backend.save(str(root / "tokenizer.json"))
    return str(root)


def test_the_capped_base_cuts_and_pads(capped_base):
    assert len(sub_tokens(capped_base, LONG)) == 12
    assert len(sub_tokens(capped_base, "Smith")) == 12


def test_train_and_export_write_tokenizer_json_that_neither_cuts_nor_pads(capped_base, tiny_data, tmp_path):
    from transformers import AutoTokenizer

    model = tokentune.train(data=tiny_data, model=capped_base, output=str(tmp_path / "model"), epochs=1,
                            batch_size=8, max_train_samples=16, quiet=True).output_dir
    assert len(sub_tokens(model, LONG)) == 32
    assert len(sub_tokens(model, "Smith")) == 3
    assert AutoTokenizer.from_pretrained(model)(LONG)["input_ids"] == sub_tokens(model, LONG)
    assert main(["export", model, "--output", str(tmp_path / "onnx")]) == 0
    assert sub_tokens(str(tmp_path / "onnx"), LONG) == sub_tokens(model, LONG)
    assert len(sub_tokens(str(tmp_path / "onnx"), "Smith")) == 3
