"""What the ONNX backend needs of a model directory, read without transformers (and so without torch).

Importing transformers imports torch: about 3 s of a `tokentune predict --backend onnx` process that
then tags a file in a few seconds. The Tagger needs little of them: the labels and the position limit
of ``config.json``, and a fast tokenizer's Rust backend (``tokenizer.json``) with its special tokens.
:func:`light_tokenizer` builds that from the files alone; where a directory has no ``tokenizer.json`` or
its special tokens cannot be resolved, it returns None and the caller loads transformers' tokenizer as
before. ``tests/test_light_loading.py`` checks that both give the same predictions.
"""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

from ..errors import ModelError

SPECIAL_TOKENS = ("cls_token", "sep_token", "pad_token", "unk_token")
NO_LIMIT = 1e30  # what transformers writes as model_max_length when a tokenizer has no limit


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {path}: {str(err).splitlines()[0]}",
                         fix="re-export the model with `tokentune export`, or restore the file") from None
    return value if isinstance(value, dict) else {}


def read_model_config(model_dir: str) -> SimpleNamespace:
    """``config.json`` as attributes (``id2label`` with int keys, ``num_labels``, ``max_position_embeddings``)."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise ModelError(f"no config.json in {model_dir}",
                         fix="re-export it with `tokentune export`; the directory needs config.json")
    config = _read_json(path)
    id2label = config.get("id2label") or {}
    try:
        config["id2label"] = {int(key): value for key, value in id2label.items()}
    except (TypeError, ValueError, AttributeError):
        raise ModelError(f"{path}: id2label keys must be label ids 0..n-1, found {list(id2label)[:5]}",
                         fix="write id2label as {\"0\": \"O\", \"1\": \"B-PER\", ...}") from None
    config.setdefault("num_labels", len(config["id2label"]))
    return SimpleNamespace(**config)


def _token_name(value) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):  # an AddedToken written out: {"content": "[CLS]", ...}
        return value.get("content")
    return None


class LightTokenizer:
    """The part of a transformers fast tokenizer the Tagger uses, over ``tokenizers.Tokenizer``."""

    is_fast = True

    def __init__(self, backend, special_ids: dict[str, int | None], model_max_length: int | None) -> None:
        backend.no_truncation()  # as transformers leaves it after loading: a file may carry its own settings
        backend.no_padding()
        self.backend_tokenizer = backend
        for name, value in special_ids.items():
            setattr(self, f"{name}_id", value)
        self.model_max_length = model_max_length
        self.all_special_ids = sorted({v for v in special_ids.values() if v is not None})

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        processor = self.backend_tokenizer.post_processor
        return processor.num_special_tokens_to_add(pair) if processor is not None else 0

    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)


def light_tokenizer(model_dir: str) -> LightTokenizer | None:
    """The directory's tokenizer without transformers, or None where that cannot be done exactly."""
    path = os.path.join(model_dir, "tokenizer.json")
    if not os.path.isfile(path):
        return None
    settings = {**_read_json(os.path.join(model_dir, "special_tokens_map.json")),
                **_read_json(os.path.join(model_dir, "tokenizer_config.json"))}
    if settings.get("tokenizer_class") not in (None, "BertTokenizer", "BertTokenizerFast", "TokenizersBackend"):
        return None  # other families may adjust the backend when transformers loads them
    from tokenizers import Tokenizer

    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()  # read once: the normalizer is checked and the backend built from it
        if not _same_normalizer(json.loads(text).get("normalizer"), settings):
            return None
        backend = Tokenizer.from_str(text)
    except Exception:  # noqa: BLE001 - a file tokenizers cannot read: transformers' loader says why
        return None
    special = {}
    for name in SPECIAL_TOKENS:
        token = _token_name(settings.get(name))
        special[name] = backend.token_to_id(token) if token is not None else None
        if token is not None and special[name] is None:
            return None
    if special["cls_token"] is None or special["sep_token"] is None:
        return None
    limit = settings.get("model_max_length")
    limit = int(limit) if isinstance(limit, (int, float)) and 0 < limit < NO_LIMIT else None
    tokenizer = LightTokenizer(backend, special, limit)
    if len(tokenizer) <= len(tokenizer.all_special_ids):  # an empty vocabulary: transformers' loader says so
        return None
    return tokenizer


def _same_normalizer(normalizer, settings: dict) -> bool:
    """transformers rebuilds a BERT normalizer from tokenizer_config.json's casing settings where they
    differ from tokenizer.json's: only where they agree is tokenizer.json alone the same tokenizer."""
    if not isinstance(normalizer, dict) or normalizer.get("type") != "BertNormalizer":
        return normalizer is None or "do_lower_case" not in settings
    pairs = (("lowercase", "do_lower_case"), ("strip_accents", "strip_accents"),
             ("handle_chinese_chars", "tokenize_chinese_chars"))
    return all(normalizer.get(ours) == settings[theirs] for ours, theirs in pairs if theirs in settings)
