"""BERT token classification for prediction in plain torch, so `predict`, `evaluate` and `serve` need not
import transformers.

Importing transformers' BERT code imports much of transformers and of torch besides (dynamo, distributed
tensors, sympy): about 4-6 s of a `tokentune predict` process that then tags CoNLL-2003 test in about 9 s
(docs/benchmarks.md, "Packed prediction, and start-up without transformers"). The forward of a trained
BERT token classifier is small: embeddings, self-attention through torch's scaled_dot_product_attention
(as transformers' SDPA attention calls it), feed-forward, layer norms, the linear head. This module
computes it with the same operations from the same ``model.safetensors``, for the configurations it knows
exactly (:func:`supported`); any other model, file layout or setting is loaded by transformers as before.
``tests/test_light_bert.py`` checks it against transformers' ``BertForTokenClassification`` (the oracle):
logits, packed rows, bf16.

Its forward can also give logits at chosen positions only (``select``): with its default aggregation
(``first``) the Tagger reads one position a word (its first piece), so the last layer's attention output,
feed-forward and the classifier run there alone, about 4% of the encoder's operations saved on CoNLL-2003
(its keys and values still come from every position, so the selected logits are those of the whole
forward, up to float rounding).
"""
from __future__ import annotations

import functools
import os
from types import SimpleNamespace

from .light import read_model_config

WEIGHTS = "model.safetensors"
# config.json settings whose other values change the forward: such a model goes through transformers
REQUIRED = {"model_type": "bert", "position_embedding_type": "absolute", "hidden_act": "gelu",
            "is_decoder": False, "add_cross_attention": False, "chunk_size_feed_forward": 0,
            "architectures": ["BertForTokenClassification"]}
SIZES = ("hidden_size", "num_attention_heads", "num_hidden_layers", "intermediate_size", "vocab_size",
         "max_position_embeddings", "type_vocab_size")
# the query, key and value products, computed as one product named QKV
QKV, QKV_PARTS = "attention.self.qkv", ("attention.self.query", "attention.self.key", "attention.self.value")
# settings config.json may leave out: transformers' BertConfig then takes the value required above
MAY_BE_ABSENT = {"position_embedding_type", "is_decoder", "add_cross_attention", "chunk_size_feed_forward"}


def supported(config) -> bool:
    """Whether this module computes exactly what transformers does for a model of this config."""
    settings = vars(config)
    if any(settings.get(name, value if name in MAY_BE_ABSENT else None) != value for name, value in REQUIRED.items()):
        return False
    sizes = [settings.get(name) for name in SIZES]
    if not all(isinstance(size, int) and size > 0 for size in sizes) or not isinstance(settings.get("layer_norm_eps"), float):
        return False  # transformers would fill in its defaults: leave such a file to it
    return settings["hidden_size"] % settings["num_attention_heads"] == 0


def expected_shapes(config) -> dict[str, tuple[int, ...]]:
    """Every tensor the forward reads, by its name in transformers' checkpoints, with its shape."""
    hidden, inner, labels = config.hidden_size, config.intermediate_size, len(config.id2label)
    shapes = {"bert.embeddings.word_embeddings.weight": (config.vocab_size, hidden),
              "bert.embeddings.position_embeddings.weight": (config.max_position_embeddings, hidden),
              "bert.embeddings.token_type_embeddings.weight": (config.type_vocab_size, hidden),
              "bert.embeddings.LayerNorm.weight": (hidden,), "bert.embeddings.LayerNorm.bias": (hidden,),
              "classifier.weight": (labels, hidden), "classifier.bias": (labels,)}
    for layer in range(config.num_hidden_layers):
        prefix = f"bert.encoder.layer.{layer}."
        for name, (rows, cols) in {"attention.self.query": (hidden, hidden), "attention.self.key": (hidden, hidden),
                                   "attention.self.value": (hidden, hidden), "attention.output.dense": (hidden, hidden),
                                   "intermediate.dense": (inner, hidden), "output.dense": (hidden, inner)}.items():
            shapes[f"{prefix}{name}.weight"], shapes[f"{prefix}{name}.bias"] = (rows, cols), (rows,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{prefix}{norm}.weight"], shapes[f"{prefix}{norm}.bias"] = (hidden,), (hidden,)
    return shapes


def load_light_bert(model_dir: str):
    """``(model, config)`` of a local BERT token classifier in plain torch, or None where this module
    cannot be sure to compute what transformers would (other architectures or settings, sharded or
    non-fp32 weights, missing or extra tensors): the caller then loads it with transformers."""
    path = os.path.join(model_dir, WEIGHTS)
    if not os.path.isfile(path):
        return None
    config = read_model_config(model_dir)
    if not supported(config):
        return None
    import torch
    from safetensors import safe_open

    shapes = expected_shapes(config)
    try:
        with safe_open(path, framework="pt") as handle:
            names = set(handle.keys()) - {name for name in handle.keys() if name.startswith("bert.pooler.")}
            if names != set(shapes):
                return None
            state = {name: handle.get_tensor(name) for name in names}
    except Exception:  # noqa: BLE001 - a file safetensors cannot read: transformers' loader says why, with a fix
        return None
    if not _fits(state, shapes):
        return None
    config._attn_implementation = "sdpa"
    model = _module(torch)(config, _stack_qkv(state, config.num_hidden_layers)).eval()
    model.owns_weights = True  # its own copy, unlike a view: its Tagger may keep the linears in bf16 (settled)
    return model, config


def _fits(state: dict, shapes: dict) -> bool:
    """Every tensor the forward reads is there, of its shape, in fp32."""
    import torch

    return all(name in state and tuple(state[name].shape) == shape and state[name].dtype == torch.float32
               for name, shape in shapes.items())


def _stack_qkv(state: dict, layers: int) -> dict:
    """Each layer's query, key and value weights and biases as one ``...qkv`` tensor each, in ``state`` itself
    (the three parts freed as each layer is stacked, not held until the load returns)."""
    import torch

    for layer in range(layers):
        prefix = f"bert.encoder.layer.{layer}."
        for kind in ("weight", "bias"):
            state[f"{prefix}{QKV}.{kind}"] = torch.cat([state.pop(f"{prefix}{part}.{kind}") for part in QKV_PARTS])
    return state


def light_view(model):
    """The plain-torch BERT reading a transformers ``BertForTokenClassification``'s own tensors (no copy), or
    None where this module cannot be sure to compute what transformers would, or the model is not on the CPU.
    Training scores dev with it: the forward a later ``evaluate`` of the saved model runs, with its weights
    cast once a pass about a fifth faster than transformers' own on a CPU (docs/benchmarks.md). Made for one
    pass: the weights it prepares (stacked, cast) are those of the moment, as an optimizer step need not mark
    the tensors it changes (fused AdamW leaves their version counters alone)."""
    import torch

    if type(model).__name__ != "BertForTokenClassification":  # subclasses and wrappers (PEFT) may differ
        return None
    if any(weight.device.type != "cpu" for weight in model.parameters()):  # a GPU casts cheaply: its memory kept
        return None
    settings = model.config.to_dict()
    settings.update(architectures=[type(model).__name__], _attn_implementation="sdpa")
    settings["id2label"] = {int(key): value for key, value in (settings.get("id2label") or {}).items()}
    config = SimpleNamespace(**settings)
    if not supported(config):
        return None
    state, shapes = model.state_dict(), expected_shapes(config)  # state_dict: detached, the same storage
    if not _fits(state, shapes):
        return None
    return _module(torch)(config, {name: state[name] for name in shapes}).eval()


@functools.cache
def _module(torch):
    """The module class, defined where torch is imported (this file is imported without it), once."""
    from torch import nn
    from torch.nn import functional as F

    class LightBertForTokenClassification(nn.Module):
        def __init__(self, config, state: dict) -> None:
            super().__init__()
            self.config = config
            self.heads = config.num_attention_heads
            self.eps = config.layer_norm_eps
            self.weights = nn.ParameterDict({name.replace(".", "/"): nn.Parameter(tensor, requires_grad=False)
                                             for name, tensor in state.items()})
            self._prepared: dict = {}  # (linear, autocast dtype) -> (weight, bias), until forget_prepared

        def _w(self, name: str):
            return self.weights[name.replace(".", "/")]

        def _linear(self, x, name: str):
            return prepared_linear(self, x, name)

        def _norm(self, x, name: str):
            return F.layer_norm(x, x.shape[-1:], self._w(name + ".weight"), self._w(name + ".bias"), self.eps)

        selects_positions = True  # forward takes select, (rows, columns) index tensors: logits [selected, labels]

        def forward(self, input_ids, attention_mask=None, position_ids=None, select=None):
            batch, length = input_ids.shape
            if position_ids is None:
                position_ids = torch.arange(length, device=input_ids.device).expand(batch, length)
            e = "bert.embeddings."
            hidden = (F.embedding(input_ids, self._w(e + "word_embeddings.weight"))
                      + self._w(e + "token_type_embeddings.weight")[0]
                      + F.embedding(position_ids, self._w(e + "position_embeddings.weight")))
            hidden = self._norm(hidden, e + "LayerNorm")
            mask = None
            if attention_mask is not None:
                mask = attention_mask.bool()
                mask = mask[:, None, None, :] if mask.dim() == 2 else mask  # [batch, 1, 1 or query, key]
            last = self.config.num_hidden_layers - 1
            for layer in range(last + 1):
                hidden = self._layer(hidden, mask, f"bert.encoder.layer.{layer}.", select if layer == last else None)
            return SimpleNamespace(logits=self._linear(hidden, "classifier"))

        def _layer(self, hidden, mask, prefix: str, select=None):
            batch, length, size = hidden.shape

            # one product for query, key and value: the input is read (and cast, under autocast) once, not 3 times
            stacked = self._linear(hidden, prefix + QKV).view(batch, length, 3, self.heads, -1)
            query, key, value = (stacked[:, :, part].transpose(1, 2) for part in range(3))  # [batch, heads, length, size]
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=query.shape[-1] ** -0.5)
            context = context.transpose(1, 2).reshape(batch, length, size)
            if select is not None:  # past attention each position is on its own: only the selected go on
                context, hidden = context[select], hidden[select]
            attended = self._norm(residual_sum(self._linear(context, prefix + "attention.output.dense"), hidden),
                                  prefix + "attention.output.LayerNorm")
            inner = gelu(self._linear(attended, prefix + "intermediate.dense"))
            return self._norm(residual_sum(self._linear(inner, prefix + "output.dense"), attended), prefix + "output.LayerNorm")

    return LightBertForTokenClassification


def prepared_linear(model, x, name: str):
    """Linear ``name`` of the plain-torch BERT ``model`` (``...qkv``: query, key and value as one product).
    Outside autograd, a weight that needs stacking (a view's query, key and value) or casting to the autocast
    dtype is prepared once and kept until :func:`forget_prepared`: the same values as autocast's cast at every
    call (it keeps no cast of a weight that needs no gradient), without the casting."""
    import torch
    from torch.nn import functional as F

    grad = torch.is_grad_enabled()
    kind = x.device.type
    dtype = torch.get_autocast_dtype(kind) if not grad and torch.is_autocast_enabled(kind) else None
    kept = None if grad else model._prepared.get((name, dtype))
    if kept is not None:  # the usual call of a pass after its first batch
        return F.linear(x, *kept)
    separate = name.endswith(QKV) and model.weights.get((name + ".weight").replace(".", "/")) is None  # a view's
    parts = [name[:-len(QKV)] + part for part in QKV_PARTS] if separate else [name]
    sources = [(model._w(part + ".weight"), model._w(part + ".bias")) for part in parts]
    weight, bias = (sources[0] if len(sources) == 1 else
                    (torch.cat([w for w, _ in sources]), torch.cat([b for _, b in sources])))
    # with autograd recording, stacked at each call so that gradients reach each weight; else kept for the pass
    if grad or (len(sources) == 1 and dtype in (None, weight.dtype)):
        return F.linear(x, weight, bias)
    kept = model._prepared[(name, dtype)] = (weight.to(dtype or weight.dtype), bias.to(dtype or bias.dtype))
    return F.linear(x, *kept)


def settled(model, precision: str):
    """``model`` for a Tagger that owns it and runs it in ``precision`` alone: a plain-torch BERT loaded from
    its file keeps its linear weights in the dtype autocast computes products in (bf16, or fp16 on CUDA),
    the values autocast would cast them to at every call, in half the memory; it then runs under that
    autocast only. The fp32 copies freed are handed back where the process keeps freed memory. Any other
    model (transformers', a view of a model being trained), or fp32, is returned as it is."""
    import torch

    from ..memory import give_back_kept_memory

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if not getattr(model, "owns_weights", False) or dtype is None:
        return model
    # the load checked the tensors against expected_shapes: all but embeddings and layer norms are linears'
    linears = [key for key in model.weights.keys() if not ("LayerNorm" in key or "embeddings" in key)]
    for key in linears:
        model.weights[key] = type(model.weights[key])(model.weights[key].detach().to(dtype), requires_grad=False)
    model._prepared.clear()
    give_back_kept_memory()
    return model


def forget_prepared(model) -> None:
    """Drops what :func:`prepared_linear` kept for ``model`` (a view of a model being trained: its weights move
    before the next evaluation); nothing for another module."""
    prepared = getattr(model, "_prepared", None)
    if isinstance(prepared, dict):
        prepared.clear()


# Outside autograd (the runners' inference_mode) the residual sums and GELU write into a tensor that is not read
# again instead of a new one: a Python process that returns freed memory to the system (any but those tokentune
# runs for a job, memory.py) faults in a new buffer of positions x 1536 or x 384 for each.
def residual_sum(product, stream):
    """``product + stream``, in the stream's dtype (fp32 under bf16 autocast, as the sum promotes)."""
    import torch

    return product + stream if torch.is_grad_enabled() else stream.add_(product)


def gelu(inner):
    import torch

    return torch.nn.functional.gelu(inner) if torch.is_grad_enabled() else torch.ops.aten.gelu_(inner)
