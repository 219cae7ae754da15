"""Prediction without transformers: the plain-torch BERT (inference/bert.py) against transformers'
BertForTokenClassification, the oracle, and the models it must leave to transformers."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from tokentune.inference import Tagger
from tokentune.inference.bert import gelu, load_light_bert, residual_sum
from tokentune.inference.packed import pack_inputs, plan_batches
from tokentune.modeling import load_for_prediction


def _save_classifier(directory, tokenizer_dir, **settings) -> str:
    from transformers import AutoTokenizer, BertConfig, BertForTokenClassification

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    settings.setdefault("max_position_embeddings", 64)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=48, id2label=dict(enumerate(labels)),
                        label2id={label: i for i, label in enumerate(labels)}, **settings)
    torch.manual_seed(3)
    BertForTokenClassification(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


def _oracle(model_dir):
    from transformers import AutoModelForTokenClassification

    return AutoModelForTokenClassification.from_pretrained(model_dir).eval()


def _batch():
    ids = torch.randint(5, 60, (3, 20))
    mask = torch.ones_like(ids)
    mask[1, 12:] = 0
    mask[2, 4:] = 0
    return ids.masked_fill(mask == 0, 0), mask


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_logits_equal_transformers(tmp_path, tiny_base_model, dtype):
    model_dir = _save_classifier(tmp_path / "model", tiny_base_model)
    ours, config = load_light_bert(model_dir)
    theirs = _oracle(model_dir)
    ids, mask = _batch()
    with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        a, b = ours(input_ids=ids, attention_mask=mask).logits, theirs(input_ids=ids, attention_mask=mask).logits
    real = mask.bool()
    assert a.dtype == b.dtype
    tolerance = 1e-5 if dtype is None else 2e-2
    torch.testing.assert_close(a[real].float(), b[real].float(), atol=tolerance, rtol=tolerance)
    assert config.id2label[1] == "B-PER" and config._attn_implementation == "sdpa"


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_inference_reuses_memory_and_computes_the_same(tmp_path, tiny_base_model, dtype):
    """Under inference_mode the residual sums and GELU write into their inputs; with autograd recording they
    make new tensors (a trainable copy must keep what the backward reads): the logits are equal to the bit."""
    ours, _ = load_light_bert(_save_classifier(tmp_path / "model", tiny_base_model))
    ids, mask = _batch()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        with torch.inference_mode():
            in_place = ours(input_ids=ids, attention_mask=mask).logits
        for weight in ours.parameters():
            weight.requires_grad_(True)
        recorded = ours(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(in_place, recorded.detach())
    recorded.float().sum().backward()  # nothing the backward reads was overwritten
    assert all(weight.grad is not None for weight in ours.parameters())


def test_the_residual_stream_keeps_its_dtype_when_summed_in_place():
    """Under inference_mode the sum and GELU write into their inputs; under bf16 autocast a product is bf16 and
    the stream fp32: the sum in place stays fp32, as ``+`` promotes."""
    stream, product = torch.randn(4, 8), torch.randn(4, 8).bfloat16()
    with torch.inference_mode():
        kept = stream.clone()
        summed = residual_sum(product, kept)
        inner = torch.randn(4, 8)
        assert summed is kept and gelu(inner) is inner  # written in place: no new buffer
    assert summed.dtype == torch.float32 and torch.equal(summed, product + stream)
    assert residual_sum(product, stream) is not stream and gelu(inner) is not inner  # autograd on: new tensors


def test_packed_rows_equal_transformers(tmp_path, tiny_base_model):
    """Position ids and a 4D block-diagonal mask, as the Tagger packs windows (inference/packed.py)."""
    model_dir = _save_classifier(tmp_path / "model", tiny_base_model)
    ours, _ = load_light_bert(model_dir)
    theirs = _oracle(model_dir)
    ids, mask = (t.numpy() for t in _batch())
    batch = plan_batches(mask.sum(1), batch_size=8)[0]
    packed = [torch.from_numpy(a) for a in pack_inputs(ids[batch.chosen], mask[batch.chosen], batch, pad_id=0,
                                                         first_position=0)]
    inputs = {"input_ids": packed[0], "attention_mask": packed[1], "position_ids": packed[2]}
    with torch.inference_mode():
        torch.testing.assert_close(ours(**inputs).logits, theirs(**inputs).logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 12], ids=["small call", "large call"])
@pytest.mark.parametrize("light", [True, False], ids=["light", "transformers"])
def test_selected_positions_are_those_of_the_whole_forward(tmp_path, tiny_base_model, light, rows):
    """``select``: the light model runs the last layer's rest at the chosen positions alone, where the call
    has more positions than the selection rounded up (else it computes all and reads the chosen, as for
    transformers' model, which takes no such argument); all give the whole forward's probabilities there."""
    from tokentune.inference.runners import torch_runner

    model_dir = _save_classifier(tmp_path / "model", tiny_base_model)
    model = load_light_bert(model_dir)[0] if light else _oracle(model_dir)
    asked = []
    forward = model.forward
    model.forward = lambda *args, **kwargs: asked.append("select" in kwargs) or forward(*args, **kwargs)
    runner = torch_runner(model, "cpu")
    ids = torch.randint(5, 60, (rows, 50))
    mask = torch.ones_like(ids)
    ids, mask = ids.numpy(), mask.numpy()
    batch = plan_batches(mask.sum(1), batch_size=64)[0]
    inputs = pack_inputs(ids[batch.chosen], mask[batch.chosen], batch, pad_id=0, first_position=0)
    picked = np.array([0, 3, 7, 15], dtype=np.int64)
    where = (np.minimum(picked, batch.rows - 1), np.array([0, 3, 7, 15], dtype=np.int64))
    whole = runner.packed(*inputs)
    chosen = runner.packed(*inputs, select=where)
    assert chosen.shape == (4, 5) and runner.packed.selects
    assert asked == [False, light and rows == 12]  # a call of 64 positions: all computed, then read
    np.testing.assert_allclose(chosen, whole[where], atol=1e-6)


@pytest.mark.parametrize("aggregation", ["first", "average", "max"])
@pytest.mark.parametrize("light", [True, False], ids=["light", "transformers"])
def test_short_and_long_windows_in_one_call_tag_as_padded_batches(tmp_path, tiny_base_model, aggregation, light):
    """Windows of at most 64 positions go into rows of 64 and longer ones into wider rows, in one call; with
    each word's first piece selected (aggregation first) or every piece: the same probabilities as sorted,
    padded batches (the oracle), for the plain-torch model and for transformers' own."""
    from transformers import AutoTokenizer

    from tokentune.inference.runners import torch_runner

    model_dir = _save_classifier(tmp_path / "model", tiny_base_model, max_position_embeddings=192)
    model = load_light_bert(model_dir)[0] if light else _oracle(model_dir)
    asked = []
    forward = model.forward
    model.forward = lambda *args, **kwargs: asked.append("select" in kwargs) or forward(*args, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    runner = torch_runner(model, "cpu")
    widths = []
    packed_call = runner.packed
    runner.packed = lambda *inputs, **options: widths.append(inputs[0].shape[1]) or packed_call(*inputs, **options)
    runner.packed.selects = True
    rng = np.random.default_rng(7)
    vocabulary = ["Alice", "met", "Bob", "in", "Paris", "today", "Smith", "and", "Berlin"]
    sizes = [3, 90, 5, 2, 70, 8, 4, 100] + [6] * 15 + [80] * 6
    sentences = [[str(w) for w in rng.choice(vocabulary, size=size)] for size in sizes]
    packed = Tagger(runner, tokenizer, labels, max_length=180, aggregation=aggregation)
    padded = Tagger(runner, tokenizer, labels, max_length=180, aggregation=aggregation, packing=False)
    ours = packed.word_probabilities(sentences)
    assert set(widths) == {64, 128}  # the short windows in narrow rows, the long ones in wide rows
    assert any(asked) is (light and aggregation == "first")  # first pieces computed alone where it pays
    theirs = padded.word_probabilities(sentences)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=2e-6)


def test_the_tagger_predicts_as_with_transformers(tiny_model):
    """The trained tiny model: the Tagger loads it without transformers and tags as transformers' model does."""
    from tokentune.inference.runners import torch_runner

    model, tokenizer, config = load_for_prediction(tiny_model.output_dir)
    assert type(model).__name__ == "LightBertForTokenClassification"
    ours = Tagger.from_pretrained(tiny_model.output_dir, precision="fp32")
    theirs = Tagger(torch_runner(_oracle(tiny_model.output_dir), "cpu"), tokenizer, ours.labels,
                    max_length=ours.max_length, crf=ours.crf)
    texts = ["Alice met Bob in Paris .", "Globex hired Erika Smith in Berlin and Madrid .", ""]
    a, b = ours.predict_texts(texts), theirs.predict_texts(texts)
    assert [[(e.label, e.start, e.end) for e in x] for x in a] == [[(e.label, e.start, e.end) for e in x] for x in b]
    assert any(a)
    np.testing.assert_allclose([e.score for x in a for e in x], [e.score for x in b for e in x], atol=2e-6)


def test_prediction_imports_no_transformers(tiny_model):
    code = ("import sys; from tokentune.inference import Tagger; "
            f"print(Tagger.from_pretrained({tiny_model.output_dir!r}).predict_text('Alice met Bob in Paris .')); "
            "print('transformers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "False", result.stdout + result.stderr
    assert "Entity(" in result.stdout


@pytest.mark.parametrize("change", [
    {"position_embedding_type": "relative_key"}, {"hidden_act": "gelu_new"}, {"hidden_act": "relu"},
    {"architectures": ["BertModel"]}, {"layer_norm_eps": None}, {"num_hidden_layers": 3},
    {"model_type": "roberta"}], ids=lambda change: next(iter(change)) + "=" + str(next(iter(change.values()))))
def test_other_settings_are_left_to_transformers(tmp_path, tiny_base_model, change):
    model_dir = _save_classifier(tmp_path / "model", tiny_base_model)
    path = os.path.join(model_dir, "config.json")
    with open(path, encoding="utf-8") as handle:
        config = json.load(handle)
    config.update(change)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    assert load_light_bert(model_dir) is None


def test_other_weight_files_are_left_to_transformers(tmp_path, tiny_base_model):
    from safetensors.torch import load_file, save_file

    model_dir = _save_classifier(tmp_path / "model", tiny_base_model)
    weights = os.path.join(model_dir, "model.safetensors")
    state = load_file(weights)
    assert load_light_bert(model_dir) is not None
    for changed in ({**state, "bert.extra.weight": torch.zeros(2)},  # a tensor it would not read
                    {k: v for k, v in state.items() if k != "classifier.bias"},  # one missing
                    {k: v.to(torch.bfloat16) for k, v in state.items()}):  # not fp32
        save_file(changed, weights, metadata={"format": "pt"})
        assert load_light_bert(model_dir) is None
    os.remove(weights)  # e.g. sharded weights: no model.safetensors
    assert load_light_bert(model_dir) is None


def test_a_damaged_directory_is_refused_as_before(tmp_path, tiny_model):
    from tokentune.errors import ModelError

    copy = tmp_path / "copy"
    shutil.copytree(tiny_model.output_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config["id2label"] = {"0": "O"}  # fewer labels than the classifier has rows
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="id2label has 1 labels but the classifier"):
        Tagger.from_pretrained(str(copy))


def test_weights_safetensors_cannot_read_are_left_to_transformers(tmp_path, tiny_base_model):
    """A damaged weights file: transformers' loader reports it, with the fix, as before."""
    from tokentune.errors import ModelError

    model_dir = _save_classifier(tmp_path / "model", tiny_base_model)
    weights = os.path.join(model_dir, "model.safetensors")
    data = open(weights, "rb").read()
    with open(weights, "wb") as handle:
        handle.write(data[: len(data) // 2])  # cut short
    assert load_light_bert(model_dir) is None
    with pytest.raises(ModelError):
        Tagger.from_pretrained(model_dir)


def test_selected_positions_are_run_in_few_sizes():
    """The runner rounds a selection up (its last position repeated) so the last layer's tensors come in
    few sizes: with a new size each batch glibc's kept heap fragmented (200 MB more peak memory)."""
    from tokentune.inference.runners import SELECT_STEP, rounded_up

    out = rounded_up(np.arange(5))
    assert len(out) == SELECT_STEP and out[:5].tolist() == [0, 1, 2, 3, 4] and (out[5:] == 4).all()
    assert len(rounded_up(np.arange(SELECT_STEP))) == SELECT_STEP and len(rounded_up(np.arange(0))) == 0


def _trained_classifier(tmp_path, tiny_base_model):
    """transformers' model as training holds it: the weights are its own parameters, needing gradients."""
    return _oracle(_save_classifier(tmp_path / "model", tiny_base_model))


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_a_view_of_a_training_model_computes_its_logits_pass_after_pass(tmp_path, tiny_base_model, dtype):
    """light_view reads the model's own tensors; what a pass prepares (query, key and value stacked, weights
    cast for autocast) is dropped after it, so the next pass sees a fused AdamW step, which leaves the
    tensors' version counters alone, and the logits stay transformers'."""
    from tokentune.inference.bert import forget_prepared, light_view

    theirs = _trained_classifier(tmp_path, tiny_base_model)
    view = light_view(theirs)
    ids, mask = _batch()
    real = mask.bool()
    tolerance = 1e-5 if dtype is None else 2e-2

    def both():
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            return view(input_ids=ids, attention_mask=mask).logits, theirs(input_ids=ids, attention_mask=mask).logits

    before, oracle = both()
    torch.testing.assert_close(before[real].float(), oracle[real].float(), atol=tolerance, rtol=tolerance)
    assert view._prepared  # the stacked query, key and value at least
    forget_prepared(view)
    assert not view._prepared
    optimizer = torch.optim.AdamW(theirs.parameters(), lr=0.05, fused=True)
    theirs.train()
    theirs(input_ids=ids, attention_mask=mask).logits.float().pow(2).sum().backward()
    optimizer.step()
    theirs.eval()
    after, oracle = both()
    assert not torch.allclose(after, before)  # the step is seen
    torch.testing.assert_close(after[real].float(), oracle[real].float(), atol=tolerance, rtol=tolerance)
    shared = theirs.bert.encoder.layer[0].attention.self.query.weight
    assert view.weights["bert/encoder/layer/0/attention/self/query/weight"].data_ptr() == shared.data_ptr()


def test_a_loaded_model_keeps_its_linears_in_the_dtype_it_computes_in(tmp_path, tiny_base_model):
    from tokentune.inference.bert import light_view

    """A model loaded from its file for a bf16 Tagger: the linear weights are kept in bf16 (half the memory, no
    cast at each call), the embeddings and layer norms in fp32, and the probabilities are those of the fp32
    weights under autocast, to the bit; query, key and value are one stacked tensor from the start. An fp32
    Tagger's model, and a view of a model being trained, are left as they are."""
    from tokentune.inference.bert import settled
    from tokentune.inference.runners import torch_runner

    model_dir = _save_classifier(tmp_path / "model", tiny_base_model)
    owned, plain = load_light_bert(model_dir)[0], load_light_bert(model_dir)[0]
    assert "bert/encoder/layer/0/attention/self/qkv/weight" in owned.weights
    assert "bert/encoder/layer/0/attention/self/query/weight" not in owned.weights
    runner = torch_runner(settled(owned, "bf16"), "cpu", "bf16")
    dtypes = {name: weight.dtype for name, weight in owned.weights.items()}
    assert dtypes["bert/encoder/layer/1/intermediate/dense/weight"] == torch.bfloat16
    assert dtypes["classifier/bias"] == torch.bfloat16
    assert dtypes["bert/embeddings/word_embeddings/weight"] == torch.float32
    assert dtypes["bert/encoder/layer/1/output/LayerNorm/weight"] == torch.float32
    ids, mask = _batch()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.softmax(plain(input_ids=ids, attention_mask=mask).logits.float(), dim=-1).numpy()
    assert np.array_equal(runner(ids.numpy(), mask.numpy()), expected)
    assert settled(plain, "fp32") is plain and all(weight.dtype == torch.float32 for weight in plain.weights.values())
    view = light_view(_oracle(model_dir))
    assert settled(view, "bf16") is view and view.weights["classifier/weight"].dtype == torch.float32  # not owned
    assert light_view(_oracle(model_dir).to("meta")) is None  # off the CPU: transformers' own forward


def test_a_view_is_made_only_of_what_it_computes_exactly(tmp_path, tiny_base_model):
    from transformers import BertConfig, BertForTokenClassification

    from tokentune.inference.bert import light_view

    assert light_view(_trained_classifier(tmp_path, tiny_base_model)) is not None
    relu = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                      intermediate_size=48, hidden_act="relu")
    assert light_view(BertForTokenClassification(relu)) is None
    half = _trained_classifier(tmp_path / "half", tiny_base_model).to(torch.bfloat16)
    assert light_view(half) is None  # weights it would not read in fp32

    class Subclass(BertForTokenClassification):
        pass

    assert light_view(Subclass(BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                          intermediate_size=48))) is None
