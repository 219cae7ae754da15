"""The CRF head (--head crf): Viterbi and likelihood against brute force, packed sentences kept apart,
and a CRF model through save, Tagger, plain transformers, ONNX export and serve."""
from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch

from tokentune.config import TrainConfig
from tokentune.crf import CRF_FILE, CrfScores, load_crf, save_crf
from tokentune.decoding import SCORE_DIGITS, crf_marginals, transition_masks, viterbi_batch
from tokentune.errors import ConfigError, ModelError
from tokentune.schemes import get_scheme
from tokentune.training.crf import SLOTS, TAGS, ChainLayoutCollator, LinearChainCRF, chain_index, sequence_nll
from tokentune.windows import IGNORE

LABELS = ["O", "B-X", "I-X", "B-Y", "I-Y"]
SENTENCE = "Alice Smith visited Paris with Acme today ."


def random_scores(rng, count=5) -> CrfScores:
    return CrfScores(rng.normal(size=count), rng.normal(size=(count, count)), rng.normal(size=count))


def path_score(emissions, path, start, trans, end) -> float:
    total = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in enumerate(path))
    return total + sum(trans[a, b] for a, b in zip(path, path[1:]))


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_with_learned_scores_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    scheme = get_scheme("IOB2")
    learned = random_scores(rng)
    masks = transition_masks(LABELS, scheme)
    start, trans, end = (m + s for m, s in zip(masks, learned))
    lengths = np.array([1, 4, 2, 3, 0, 4])
    emissions = rng.normal(size=(int(lengths.sum()), len(LABELS)))
    decoded = viterbi_batch(emissions, lengths, LABELS, scheme, learned=learned)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        if hi == lo:
            continue
        best = max(itertools.product(range(len(LABELS)), repeat=hi - lo),
                   key=lambda path: path_score(emissions[lo:hi], path, start, trans, end))
        assert decoded[lo:hi].tolist() == list(best)


@pytest.mark.parametrize("seed,group", [(0, 256), (1, 256), (2, 1), (3, 2)])
def test_crf_marginals_equal_brute_force(seed, group):
    rng = np.random.default_rng(seed)
    scheme = get_scheme("IOB2")
    learned = random_scores(rng)
    start, trans, end = (m + s for m, s in zip(transition_masks(LABELS, scheme), learned))
    lengths = np.array([3, 1, 0, 4, 2])
    emissions = rng.normal(size=(int(lengths.sum()), len(LABELS)))
    got = crf_marginals(emissions, lengths, LABELS, scheme, learned, group=group)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for lo, hi in zip(offsets[:-1], offsets[1:]):
        if hi == lo:
            continue
        want = np.zeros((hi - lo, len(LABELS)))
        for path in itertools.product(range(len(LABELS)), repeat=hi - lo):
            weight = np.exp(path_score(emissions[lo:hi], path, start, trans, end))
            want[np.arange(hi - lo), list(path)] += weight
        np.testing.assert_allclose(got[lo:hi], want / want.sum(axis=1, keepdims=True), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)
    # a sentence's marginals do not depend on the sentences decoded with it (workers and Ray split the input)
    for lo, hi, length in zip(offsets[:-1], offsets[1:], lengths):
        alone = crf_marginals(emissions[lo:hi], np.array([length]), LABELS, scheme, learned)
        assert np.array_equal(alone, got[lo:hi])
    assert got[:, 2][np.r_[0, 3, 4]].max() < 1e-300  # I-X never opens a sentence under IOB2


def test_crf_marginals_without_a_valid_path_keep_the_softmax():
    scheme = get_scheme("BIOES")
    labels = ["B-X", "E-X"]  # no O and no S-X: a one-word sentence has no valid path
    log_probs = np.log(np.array([[0.7, 0.3], [0.2, 0.8], [0.6, 0.4]]))
    got = crf_marginals(log_probs, np.array([1, 2]), labels, scheme, CrfScores(np.zeros(2), np.zeros((2, 2)),
                                                                                np.zeros(2)))
    np.testing.assert_allclose(got[0], [0.7, 0.3])  # the softmax, as Viterbi falls back to argmax
    np.testing.assert_allclose(got[1:], [[1.0, 0.0], [0.0, 1.0]], atol=1e-12)  # B-X E-X is the only path


def test_learned_scores_change_the_path_but_never_break_the_scheme():
    scheme = get_scheme("IOB2")
    emissions = np.log(np.array([[0.4, 0.6, 0, 0, 0], [0.55, 0, 0.45, 0, 0]]) + 1e-12)
    plain = viterbi_batch(emissions, np.array([2]), LABELS, scheme)
    # a learned score favouring B-X -> I-X turns the second word into I-X
    trans = np.zeros((5, 5))
    trans[1, 2] = 2.0
    learned = viterbi_batch(emissions, np.array([2]), LABELS, scheme, learned=CrfScores(np.zeros(5), trans, np.zeros(5)))
    assert plain.tolist() == [1, 0] and learned.tolist() == [1, 2]
    # a learned score for a forbidden move (O -> I-X) does not lift the mask
    trans = np.zeros((5, 5))
    trans[0, 2] = 50.0
    forced = viterbi_batch(np.log(np.array([[0.9, 0.1, 0, 0, 0], [0.1, 0, 0.9, 0, 0]]) + 1e-12), np.array([2]), LABELS,
                           scheme, learned=CrfScores(np.zeros(5), trans, np.zeros(5)))
    assert forced.tolist() != [0, 2]


@pytest.mark.parametrize("tree", [False, True], ids=["stepwise", "tree"])
@pytest.mark.parametrize("lengths", [[1, 3, 4, 2], [5, 1, 2], [1], [3, 3]])
@pytest.mark.parametrize("seed", range(3))
def test_nll_equals_brute_force_log_sum_exp(seed, lengths, tree):
    """Both ways of computing log Z (one step at a time, and the step matrices multiplied as a tree, with
    odd widths padded) against every path enumerated."""
    rng = np.random.default_rng(seed)
    count = 3
    start, trans, end = (torch.tensor(v) for v in random_scores(rng, count))
    width = max(lengths)
    emissions = torch.tensor(rng.normal(size=(len(lengths), width, count)))
    tags = torch.tensor(rng.integers(0, count, size=(len(lengths), width)))
    mask = torch.arange(width)[None, :] < torch.tensor(lengths)[:, None]
    nll = sequence_nll(emissions, tags, mask, start, trans, end, tree=tree)
    for row, length in enumerate(lengths):
        e = emissions[row, :length].numpy()
        scores = [path_score(e, path, start.numpy(), trans.numpy(), end.numpy())
                  for path in itertools.product(range(count), repeat=length)]
        gold = path_score(e, tags[row, :length].tolist(), start.numpy(), trans.numpy(), end.numpy())
        expected = float(np.logaddexp.reduce(scores) - gold)
        assert float(nll[row]) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_tree_and_stepwise_nll_agree_in_fp32_with_their_gradients():
    """The tree (taken off the CPU) and the stepwise forward give the same loss and gradients in fp32 at
    a training batch's size, both as close to float64 as the other."""
    torch.manual_seed(0)
    count, width, labels = 48, 40, 9
    mask = torch.arange(width)[None] < torch.randint(1, width + 1, (count,))[:, None]
    tags = torch.randint(0, labels, (count, width)) * mask
    inputs = [torch.randn(count, width, labels) * 3, torch.randn(labels), torch.randn(labels, labels) * 2,
              torch.randn(labels)]

    def run(tree, dtype):
        leaves = [value.to(dtype).clone().requires_grad_(True) for value in inputs]
        emissions, start, trans, end = leaves
        nll = sequence_nll(emissions, tags, mask, start, trans, end, tree=tree)
        nll.sum().backward()
        return [nll.detach(), *(leaf.grad for leaf in leaves)]

    exact = run(False, torch.float64)
    for tree in (False, True):
        for got, want in zip(run(tree, torch.float32), exact):
            assert torch.allclose(got.double(), want, rtol=1e-5, atol=1e-3)


def test_chains_take_first_pieces_and_keep_packed_sentences_apart():
    # one packed row: sentence A (positions 0..4) then sentence B (positions 0..3), then padding
    labels = torch.tensor([[IGNORE, 1, IGNORE, 2, IGNORE, IGNORE, 0, 0, IGNORE, IGNORE]])
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 0]])
    rows, cols, chain, step, lengths = chain_index(labels, positions)
    assert cols.tolist() == [1, 3, 6, 7] and chain.tolist() == [0, 0, 1, 1] and step.tolist() == [0, 1, 0, 1]
    assert lengths.tolist() == [2, 2]
    assert chain_index(labels)[2].tolist() == [0, 0, 0, 0]  # without positions: one chain per row

    crf = LinearChainCRF(3)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    logits = torch.randn(1, 10, 3)
    packed, tokens = crf.nll(logits, labels, positions)
    apart = torch.full((2, 5), IGNORE)
    apart[0, :5], apart[1, :5] = labels[0, :5], labels[0, 5:]
    alone, _ = crf.nll(torch.stack([logits[0, :5], logits[0, 5:]]), apart)
    assert tokens == 4 and float(packed.detach()) == pytest.approx(float(alone.detach()), rel=1e-6)


SYNCING = {"item", "tolist", "nonzero", "bincount", "unique", "__bool__", "__int__", "__float__", "__index__"}


class SyncCalls(torch.overrides.TorchFunctionMode):
    """Counts the tensor calls that read a value back to the host (on a GPU: wait for the device)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNCING or (name == "__getitem__" and any(
                isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1:2] if len(args) > 1 else ()))):
            self.seen.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("packed", [True, False])
def test_chain_layout_from_the_host_gives_the_same_loss_and_never_waits_on_the_device(packed):
    labels = torch.tensor([[IGNORE, 1, IGNORE, 2, IGNORE, IGNORE, 0, 0, IGNORE, IGNORE],
                           [IGNORE, 3, 3, 0, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE, IGNORE]])
    positions = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 0], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]]) if packed else None
    batch = {"input_ids": torch.ones_like(labels), "labels": labels}
    if packed:
        batch["position_ids"] = positions
    laid_out = ChainLayoutCollator(lambda features: batch)([{}])
    assert set(laid_out) == {*batch, SLOTS, TAGS}
    crf = LinearChainCRF(4)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.normal_()
    logits = torch.randn(2, 10, 4, requires_grad=True)
    want, tokens = crf.nll(logits, labels, positions)
    with SyncCalls() as calls:
        got, counted = crf.nll_of_layout(logits, laid_out[SLOTS], laid_out[TAGS])
        got.backward()
    assert calls.seen == [] and counted.dim() == 0 and int(counted) == tokens == 7
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    grad, logits.grad = logits.grad.clone(), None
    want.backward()
    assert torch.allclose(grad, logits.grad, atol=1e-6)
    with SyncCalls() as calls:  # the old way reads chain sizes back: the reason for the layout
        crf.nll(logits, labels, positions)
    assert {"nonzero", "__int__"} <= set(calls.seen)


def test_chain_layout_of_a_batch_without_labelled_tokens():
    labels = torch.full((2, 4), IGNORE)
    laid_out = ChainLayoutCollator(lambda features: {"labels": labels})([{}])
    assert laid_out[SLOTS].shape == (0, 0)
    total, tokens = LinearChainCRF(3).nll_of_layout(torch.randn(2, 4, 3), laid_out[SLOTS], laid_out[TAGS])
    assert float(total) == 0.0 and int(tokens) == 0


def test_crf_file_round_trip_and_checks(tmp_path):
    scores = random_scores(np.random.default_rng(0))
    save_crf(str(tmp_path), scores, LABELS)
    loaded = load_crf(str(tmp_path), LABELS)
    for saved, read in zip(scores, loaded):
        np.testing.assert_allclose(read, saved.astype(np.float32))
    with pytest.raises(ModelError, match="saved for the labels"):
        load_crf(str(tmp_path), list(reversed(LABELS)))
    with pytest.raises(ModelError, match="shape"):
        load_crf(str(tmp_path), LABELS[:3])
    (tmp_path / CRF_FILE).write_bytes(b"damaged")
    with pytest.raises(ModelError, match="cannot read"):
        load_crf(str(tmp_path), LABELS)
    assert load_crf(str(tmp_path / "missing"), LABELS) is None


def test_crf_with_class_weights_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--class-weights"):
        TrainConfig(data=str(tmp_path), head="crf", class_weights="auto")
    with pytest.raises(ConfigError, match="head"):
        TrainConfig(data=str(tmp_path), head="semi-markov")


# -- a trained CRF model end to end ------------------------------------------------------------------
@pytest.fixture(scope="module")
def crf_model(tiny_data, tiny_base_model, tmp_path_factory):
    import tokentune

    output = tmp_path_factory.mktemp("crf") / "model"
    return tokentune.train(data=tiny_data, model=tiny_base_model, output=str(output), epochs=4,
                           learning_rate=5e-3, batch_size=8, quiet=True, seed=7, head="crf")


def test_crf_model_trains_and_saves_its_transitions_apart(crf_model):
    from transformers import AutoModelForTokenClassification

    directory = crf_model.output_dir
    assert os.path.isfile(os.path.join(directory, CRF_FILE))
    assert crf_model.metrics["test"]["f1"] > 0.5
    metrics = json.load(open(os.path.join(directory, "metrics.json")))
    assert metrics["head"] == "crf" and any("CRF" in note for note in metrics["notes"])
    model, info = AutoModelForTokenClassification.from_pretrained(directory, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]  # plain transformers: encoder + linear
    trans = load_crf(directory, [model.config.id2label[i] for i in range(model.config.num_labels)]).transitions
    assert np.abs(trans).max() > 0.5  # the transitions were trained (their own learning rate)


def test_crf_tagger_uses_the_transitions(crf_model, tiny_data):
    from tokentune import Tagger
    from tokentune.data import read_corpus

    tagger = Tagger.from_pretrained(crf_model.output_dir)
    assert tagger.crf is not None
    sentences = [s.words for s in read_corpus(os.path.join(tiny_data, "test.txt"))]
    predictions = tagger.predict_token_batches(sentences)
    # the same as decoding the word log-probabilities with the learned scores directly
    probs = np.concatenate(tagger.word_probabilities(sentences))
    ids = viterbi_batch(np.log(np.clip(probs, np.finfo(np.float32).tiny, None)), np.array([len(s) for s in sentences]),
                        tagger.labels, tagger.scheme, learned=tagger.crf)
    assert [t for p in predictions for t in p.tags] == [tagger.labels[i] for i in ids]
    # and with the scores dropped, the Tagger is the softmax one again
    assert Tagger.from_pretrained(crf_model.output_dir, crf=None).crf is None


def test_crf_entity_scores_are_the_crfs_marginals(crf_model, tiny_data):
    from tokentune import Tagger
    from tokentune.data import read_corpus

    tagger = Tagger.from_pretrained(crf_model.output_dir)
    sentences = [s.words for s in read_corpus(os.path.join(tiny_data, "test.txt"))]
    predictions = tagger.predict_token_batches(sentences)
    probs = np.concatenate(tagger.word_probabilities(sentences))
    lengths = np.array([len(s) for s in sentences])
    marginals = crf_marginals(np.log(np.clip(probs, np.finfo(np.float32).tiny, None)), lengths, tagger.labels,
                              tagger.scheme, tagger.crf)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    checked = 0
    for offset, prediction in zip(offsets, predictions):
        for (_, first, end), score in zip(prediction.spans, prediction.scores):
            ids = [tagger.labels.index(tag) for tag in prediction.tags[first:end]]
            assert score == pytest.approx(marginals[np.arange(offset + first, offset + end), ids].mean(), abs=1e-9)
            checked += 1
    assert checked > 0
    # --min-score cuts on the same scores
    cut = sorted(s for p in predictions for s in p.scores)[checked // 2]
    kept = Tagger.from_pretrained(crf_model.output_dir, min_score=cut).predict_token_batches(sentences)
    assert sorted(s for p in kept for s in p.scores) == [s for s in sorted(s for p in predictions for s in p.scores)
                                                         if round(s, SCORE_DIGITS) >= cut]  # compared as shown


def test_crf_model_through_onnx_export_and_serve(crf_model, tiny_data, tmp_path):
    from tokentune import Tagger
    from tokentune.cli.main import main
    from tokentune.data import read_corpus
    from tokentune.serving import create_app

    pytest.importorskip("onnxruntime")
    directory = crf_model.output_dir
    sentences = [s.words for s in read_corpus(os.path.join(tiny_data, "test.txt"))]
    torch_tagger = Tagger.from_pretrained(directory, precision="fp32")  # as the ONNX file computes
    expected = [p.tags for p in torch_tagger.predict_token_batches(sentences)]
    exported = str(tmp_path / "onnx")
    assert main(["export", directory, "--output", exported]) == 0
    assert os.path.isfile(os.path.join(exported, CRF_FILE))
    onnx_tagger = Tagger.from_pretrained(exported, backend="onnx")
    assert onnx_tagger.crf is not None
    assert [p.tags for p in onnx_tagger.predict_token_batches(sentences)] == expected
    texts = [SENTENCE, "Bob works for Globex in Berlin ."]
    want = [[e.to_dict() for e in entities] for entities in torch_tagger.predict_texts(texts)]
    assert [[e.to_dict() for e in entities] for entities in onnx_tagger.predict_texts(texts)] == want

    pytest.importorskip("fastapi")
    from serving.helpers import ThreadServer, client

    with ThreadServer(create_app(directory)) as server, client(server.url) as http:
        response = http.post("/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    got = [[(e["label"], e["start"], e["end"]) for e in r["entities"]] for r in response.json()["results"]]
    assert got == [[(e["label"], e["start"], e["end"]) for e in entities] for entities in want]


def test_crf_on_unpacked_batches_trains_too(tiny_data, tiny_base_model, tmp_path):
    import tokentune

    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=1,
                             learning_rate=5e-3, batch_size=8, quiet=True, head="crf", packing=False,
                             max_train_samples=40, crf_learning_rate=0.1)
    assert os.path.isfile(os.path.join(result.output_dir, CRF_FILE))
    assert json.load(open(os.path.join(result.output_dir, "tokentune_config.json")))["head"] == "crf"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tree_nll_holds_with_widely_spread_scores(dtype):
    """A short chain's padding steps are the identity: with start and end scores spread by 6,000 (a fixed
    -1e4 off the identity's diagonal leaked into log Z there), the tree equals the stepwise forward."""
    spread = 6e3
    tags, mask = torch.tensor([[0, 0], [0, 1]]), torch.tensor([[True, False], [True, True]])
    start, end = torch.tensor([spread, -spread], dtype=dtype), torch.tensor([-spread, spread], dtype=dtype)
    emissions, trans = torch.zeros(2, 2, 2, dtype=dtype), torch.zeros(2, 2, dtype=dtype)
    stepwise = sequence_nll(emissions, tags, mask, start, trans, end, tree=False)
    tree = sequence_nll(emissions, tags, mask, start, trans, end, tree=True)
    assert torch.isfinite(tree).all() and torch.allclose(tree, stepwise, rtol=1e-6, atol=1e-3)


def test_a_crf_run_collates_its_chains_on_the_host_and_the_loss_reads_them(tiny_data, tiny_base_model, tmp_path):
    """The CRF trainer's training batches carry their chain layout, and its loss is the same with it as
    without it (the loss's fallback, which evaluation batches take); where accelerate cuts batches between
    processes the layout of the whole batch would not fit a slice, so none is made."""
    from types import SimpleNamespace

    from tokentune.modeling import build_model
    from tokentune.training.hf_trainer import head_loss
    from tokentune.training.run import prepare_data
    from tokentune.training.trainer import build_trainer

    config = TrainConfig(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "o"), quiet=True,
                         head="crf", precision="fp32")
    prep = prepare_data(config)
    model = build_model(tiny_base_model, prep.labels)
    trainer = build_trainer(config, model, prep.tokenizer, prep.labels, prep.train_features, None, str(tmp_path), [])
    assert isinstance(trainer.train_collator, ChainLayoutCollator)
    with torch.no_grad():
        for parameter in trainer.crf.parameters():
            parameter.normal_()
    batch = trainer.train_collator(prep.train_features[:6])
    assert SLOTS in batch and TAGS in batch
    logits = torch.randn(*batch["labels"].shape, len(prep.labels))
    with_layout, mean = head_loss(trainer, logits, batch)
    without, plain_mean = head_loss(trainer, logits, {k: v for k, v in batch.items() if k not in (SLOTS, TAGS)})
    assert float(with_layout) == pytest.approx(float(without), rel=1e-6)
    assert float(mean) == pytest.approx(float(plain_mean), rel=1e-6)

    trainer.args.accelerator_config = SimpleNamespace(split_batches=True)  # as --trainer-arg would set it
    from tokentune.training.trainer import set_train_collator

    trainer.train_collator = None
    set_train_collator(trainer, config, model, prep.tokenizer, "fp32", 512, None)
    assert not isinstance(trainer.train_collator, ChainLayoutCollator)
