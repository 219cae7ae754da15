"""tokentune: fine-tune, evaluate and serve transformer token-classification models.

Nothing runs on import; the heavy parts (torch, transformers) load on first use.
"""
from __future__ import annotations

__version__ = "0.1.0"

# public name -> module; resolved lazily so `import tokentune` stays light
_EXPORTS = {
    "train": "tokentune.training",
    "TrainConfig": "tokentune.config",
    "TrainResult": "tokentune.training",
    "tune": "tokentune.tuning",
    "TuneOptions": "tokentune.tuning",
    "TuneResult": "tokentune.tuning",
    "evaluate": "tokentune.evaluation",
    "Tagger": "tokentune.inference",
    "Entity": "tokentune.inference",
    "predict_dataset": "tokentune.inference",
    "read_corpus": "tokentune.data",
    "load_splits": "tokentune.data",
    "Corpus": "tokentune.data",
    "Sentence": "tokentune.data",
    "TokentuneError": "tokentune.errors",
    "DataError": "tokentune.errors",
    "ConfigError": "tokentune.errors",
    "ModelError": "tokentune.errors",
    "LabelError": "tokentune.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'tokentune' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
