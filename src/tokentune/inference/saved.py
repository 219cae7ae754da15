"""The settings a model directory remembers from training (``tokentune_config.json``): its word splitter,
context, window size and precision, so that prediction reads text as the model was trained to."""
from __future__ import annotations

import json
import os

from ..errors import ConfigError, ModelError
from ..words import SPLITTERS


def _saved_value(model_dir: str, name: str):
    """``name`` from the directory's tokentune_config.json: None where the file is absent (a model not
    trained by tokentune) or lacks it; a file there that is not a JSON object is a damaged model."""
    path = os.path.join(model_dir, "tokentune_config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            saved = json.load(handle)
    except (FileNotFoundError, NotADirectoryError):  # no such file, or model_dir is not a directory
        return None
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {path}: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
                         fix="copy tokentune_config.json again from the directory tokentune train wrote, or remove "
                             "it (the defaults are then used to read text)") from None
    if not isinstance(saved, dict):
        raise ModelError(f"{path} should hold a JSON object of settings, found {type(saved).__name__}",
                         fix="copy tokentune_config.json again from the directory tokentune train wrote")
    return saved.get(name)


def saved_setting(model_dir: str, name: str, choices) -> str | None:
    """A setting the model was trained with, from its ``tokentune_config.json`` (None: not saved)."""
    saved = _saved_value(model_dir, name)
    if saved is not None and saved not in choices:
        raise ConfigError(f"{os.path.join(model_dir, 'tokentune_config.json')}: unknown {name} {saved!r}; "
                          f"expected one of {', '.join(choices)}",
                          fix=f"pass --{name.replace('_', '-')} with one of those values, or correct the file")
    return saved


def saved_number(model_dir: str, name: str, least: int) -> int | None:
    """A whole-number setting the model was trained with (None: not saved)."""
    saved = _saved_value(model_dir, name)
    if saved is not None and (isinstance(saved, bool) or not isinstance(saved, int) or saved < least):
        raise ConfigError(f"{os.path.join(model_dir, 'tokentune_config.json')}: {name} must be a whole number of at "
                          f"least {least}, found {saved!r}", fix=f"correct {name} in the file, or remove it")
    return saved


def saved_word_splitter(model_dir: str) -> str | None:
    """The ``word_splitter`` saved in a model directory's ``tokentune_config.json`` (None: not saved)."""
    return saved_setting(model_dir, "word_splitter", SPLITTERS)


CONTEXTS = ("sentence", "document")


def saved_context(model_dir: str) -> tuple[str, int]:
    """``("document", context_size)`` for a model trained with document context, else ``("sentence", 0)``."""
    context = saved_setting(model_dir, "context", CONTEXTS) or "sentence"
    size = saved_number(model_dir, "context_size", 0) if context == "document" else None
    return context, size or 0


def saved_context_marker(model_dir: str) -> bool:
    """Whether the model was trained with its sentences set off from their context (``context_marker``)."""
    saved = _saved_value(model_dir, "context_marker")
    if saved is not None and not isinstance(saved, bool):
        raise ConfigError(f"{os.path.join(model_dir, 'tokentune_config.json')}: context_marker must be true or false, "
                          f"found {saved!r}", fix="correct context_marker in the file, or remove it")
    return bool(saved)


def saved_precision(model_dir: str) -> str | None:
    """The ``precision`` the model was trained with (auto, fp32, bf16, fp16; None: not saved)."""
    return saved_setting(model_dir, "precision", ("auto", "fp32", "bf16", "fp16"))


def saved_document_key(model_dir: str) -> str | None:
    """The ``document_key`` the model's training data was read with (None: not saved, or the default)."""
    saved = _saved_value(model_dir, "document_key")
    return saved if isinstance(saved, str) and saved else None


def reading_splitter(model_dir: str):
    """What raw-text data is split with for this model (its saved word splitter; see
    :func:`tokentune.words.splitter_for_reading`): None for the default rules."""
    from ..modeling import load_tokenizer
    from ..words import splitter_for_reading

    return splitter_for_reading(saved_word_splitter(model_dir), lambda: load_tokenizer(model_dir))
