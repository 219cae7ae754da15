"""Dev read once: the evaluation during training is the path `evaluate` takes, its best figures are the
final dev figures; checkpoints write what --resume and the best model need, no more; a run's time parts."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import tokentune
from tokentune.timing import PARTS, describe
from tokentune.training.checkpoints import CheckpointPolicy, is_weights_only, last_checkpoint


def test_final_dev_figures_are_those_evaluate_gives_on_the_saved_model(tiny_model, tiny_data):
    again = tokentune.evaluate(tiny_model.output_dir, tiny_data, split="dev")
    for key in ("precision", "recall", "f1", "accuracy"):
        assert tiny_model.metrics["dev"][key] == pytest.approx(again[key], abs=1e-12), key
    assert not any("dev evaluated again" in note for note in tiny_model.notes)
    best = max(r["eval_f1"] for r in tiny_model.log_history if "eval_f1" in r)
    assert tiny_model.metrics["dev"]["f1"] == best  # the kept model is the best evaluation's


def test_the_reused_dev_scores_carry_their_predictions_to_the_report(tiny_model, tiny_data):
    from tokentune.config import TrainConfig
    from tokentune.reporting.card import split_curves
    from tokentune.training import prepare_splits

    assert len(tiny_model.metrics["dev"].predictions) == 40
    curves = split_curves(tiny_model.metrics, prepare_splits(TrainConfig(data=tiny_data)))
    assert set(curves) == {"dev", "test"} and curves["dev"][0]["gold"] > 0


def test_dev_loss_is_the_cross_entropy_over_labelled_sub_tokens(tiny_data, tiny_base_model):
    """The word cross-entropy from the Tagger's probabilities against the model run on the Trainer's dev
    features (labels on first sub-tokens). transformers' own loop averages batch means instead (each
    batch weighted by its sentences), which differs in the fourth digit."""
    import torch
    import torch.nn.functional as F

    from tokentune.config import TrainConfig
    from tokentune.modeling import build_model
    from tokentune.training.devscore import DevEvaluator
    from tokentune.training.run import prepare_data

    config = TrainConfig(data=tiny_data, model=tiny_base_model, output="unused", quiet=True,
                         precision="fp32")  # the reference runs in fp32; auto would be bf16 on AMX CPUs
    prep = prepare_data(config)
    model = build_model(tiny_base_model, prep.labels).eval()
    total = count = 0.0
    with torch.no_grad():
        for feature in prep.dev_features:
            logits = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0]
            labels = torch.tensor(feature["labels"])
            total += float(F.cross_entropy(logits, labels, ignore_index=-100, reduction="sum"))
            count += int((labels != -100).sum())
    ours = DevEvaluator(prep.dev, prep.tokenizer, prep.labels, config, prep.max_length, whole_split=True)
    assert ours.evaluate(model, 0)["eval_loss"] == pytest.approx(total / count, rel=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_dev_is_scored_through_evaluates_forward_reading_the_trained_weights(tiny_data, tiny_base_model, precision,
                                                                            monkeypatch):
    """A BERT being trained is scored by the plain-torch BERT that `evaluate` runs, reading the model's own
    tensors: an evaluation after a (fused AdamW) step sees the step, gives what transformers' model gives,
    and keeps no prepared (stacked or cast) weights after its pass."""
    import tokentune.training.hardware as hardware
    from tokentune.config import TrainConfig
    from tokentune.inference import Tagger
    from tokentune.inference.runners import torch_runner
    from tokentune.modeling import build_model
    from tokentune.training.devscore import DevEvaluator
    from tokentune.training.run import prepare_data

    monkeypatch.setattr(hardware, "cpu_bf16", lambda: "amx")  # bf16 scoring on any CPU, as on one with AMX
    config = TrainConfig(data=tiny_data, model=tiny_base_model, output="unused", quiet=True, precision=precision)
    prep = prepare_data(config)
    model = build_model(tiny_base_model, prep.labels).eval()
    ours = DevEvaluator(prep.dev, prep.tokenizer, prep.labels, config, prep.max_length, whole_split=True)
    first = ours.evaluate(model, 0)
    view = ours._tagger.runner.model
    assert type(view).__name__ == "LightBertForTokenClassification" and not view._prepared
    assert ours._tagger.precision == precision
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)  # leaves version counters alone
    model.train()
    ids = torch.tensor([prep.dev_features[0]["input_ids"]])
    model(input_ids=ids).logits.float().pow(2).sum().backward()
    optimizer.step()
    second, scored = ours.evaluate(model, 1), ours.last[1]
    assert second["eval_loss"] != first["eval_loss"]
    reference = Tagger(torch_runner(model, "cpu", ours._tagger.precision), prep.tokenizer, prep.labels,
                       max_length=prep.max_length, batch_size=config.eval_batch_size * 2)
    expected = reference.predict_token_batches([s.words for s in prep.dev])
    assert [p.tags for p in scored.predictions] == [p.tags for p in expected]


ON_GPU = pytest.mark.skipif("not __import__('torch').cuda.is_available()", reason="needs a CUDA GPU")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=ON_GPU)])
def test_crf_dev_loss_is_the_chain_likelihood_it_trains_with(tiny_data, tiny_base_model, device):
    """With the CRF head, eval_loss is the training loss (LinearChainCRF.nll per labelled token) on dev,
    also where the model and its CRF sit on a GPU (the probabilities come back on the CPU)."""
    import torch

    from tokentune.config import TrainConfig
    from tokentune.modeling import build_model
    from tokentune.training.crf import attach_crf
    from tokentune.training.devscore import DevEvaluator
    from tokentune.training.run import prepare_data

    config = TrainConfig(data=tiny_data, model=tiny_base_model, output="unused", quiet=True, head="crf",
                         precision="fp32")  # the reference runs in fp32; auto would be bf16 on AMX CPUs
    prep = prepare_data(config)
    model = build_model(tiny_base_model, prep.labels).eval()
    crf = attach_crf(model, len(prep.labels))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in crf.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    total = count = 0.0
    with torch.no_grad():
        for feature in prep.dev_features:
            logits = model(input_ids=torch.tensor([feature["input_ids"]])).logits
            nll, tokens = crf.nll(logits, torch.tensor([feature["labels"]]))
            total, count = total + float(nll), count + tokens
    model.to(device)  # the CRF is part of the model: it moves with it
    ours = DevEvaluator(prep.dev, prep.tokenizer, prep.labels, config, prep.max_length, whole_split=True)
    assert crf.start.device.type == device
    assert ours.evaluate(model, 0, crf)["eval_loss"] == pytest.approx(total / count, rel=1e-5 if device == "cpu" else 1e-4)


def test_a_cut_dev_split_is_evaluated_again_whole(tiny_data, tiny_base_model, tmp_path):
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=1,
                             learning_rate=5e-3, batch_size=8, quiet=True, max_eval_samples=10)
    assert any("dev evaluated again at the end, whole" in note for note in result.notes)
    assert result.metrics["dev"]["counts"]["gold"] > 0
    assert len(result.metrics["dev"].predictions) == 40


def test_metrics_json_says_where_the_time_went(tiny_model):
    time = json.load(open(os.path.join(tiny_model.output_dir, "metrics.json")))["time"]
    seconds = time["seconds"]
    assert {"reading", "model", "training", "dev evaluation", "final evaluation", "reports", "writing"} <= set(seconds)
    assert set(seconds) <= {*PARTS, "total"}
    assert sum(v for k, v in seconds.items() if k != "total") <= seconds["total"] + 0.05
    assert time["bytes_written"] > os.path.getsize(os.path.join(tiny_model.output_dir, "model.safetensors"))
    assert time["peak_rss_mb"] > 50
    line = describe(time)
    assert line.startswith("time ") and "dev evaluation" in line and "MB" in line


# --- checkpoint policy, on a stand-in Trainer: what each save writes and what rotation keeps --------

class _State:
    def __init__(self):
        self.global_step, self.best_global_step, self.best_model_checkpoint = 0, None, None

    def save_to_json(self, path):
        with open(path, "w") as handle:
            json.dump({"global_step": self.global_step, "best_model_checkpoint": self.best_model_checkpoint}, handle)


class _Args:
    def __init__(self, folder):
        self.output_dir, self.save_only_model = folder, False


class _Model(torch.nn.Linear):
    """A model with transformers' save_pretrained(state_dict=...) as far as the policy uses it."""

    def save_pretrained(self, path, state_dict=None, safe_serialization=True):
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in (state_dict or self.state_dict()).items()},
                  os.path.join(path, "model.safetensors"))


class _FakeTrainer:
    """Saves as transformers does: weights, optimizer unless save_only_model, trainer_state.json last; its
    model's weight is the step it was trained to."""

    def __init__(self, folder):
        self.state, self.args, self.model = _State(), _Args(folder), _Model(1, 1, bias=False)

    def save(self):
        path = os.path.join(self.args.output_dir, f"checkpoint-{self.state.global_step}")
        os.makedirs(path)
        self.model.save_pretrained(path)
        best = os.path.join(self.args.output_dir, f"checkpoint-{self.state.best_global_step}")
        if self.state.best_global_step and os.path.exists(best):  # as _save_checkpoint records it
            self.state.best_model_checkpoint = best
        if not self.args.save_only_model:
            for name in ("optimizer.pt", "scheduler.pt"):
                open(os.path.join(path, name), "w").close()
        self.state.save_to_json(os.path.join(path, "trainer_state.json"))

    def step(self, policy, step, best):
        self.state.global_step = step
        with torch.no_grad():
            self.model.weight.fill_(step)
        if best:  # as the Trainer's _determine_best_metric does before it saves
            self.state.best_global_step = step
        policy.save(self, self.save)
        return sorted(os.listdir(self.args.output_dir), key=lambda name: int(name.split("-")[1]))


def _weight_in(checkpoint) -> float:
    from safetensors.torch import load_file

    return float(load_file(os.path.join(checkpoint, "model.safetensors"))["weight"])


def test_between_full_checkpoints_the_best_weights_stay_in_memory(tmp_path):
    trainer, policy = _FakeTrainer(str(tmp_path)), CheckpointPolicy(minutes=10, keep=1)
    assert trainer.step(policy, 10, best=True) == []  # nothing written
    assert policy.best_weights(10) is not None and policy.best_weights(20) is None
    assert trainer.step(policy, 20, best=False) == []
    assert trainer.step(policy, 30, best=True) == []
    kept = policy.best_weights(30)
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-30")  # where the end looks
    trainer.step(policy, 40, best=False)  # trains on: the copy stays as it was
    assert float(kept.weights["weight"]) == 30.0
    kept.load_into(trainer.model)
    assert float(trainer.model.weight) == 30.0
    assert last_checkpoint(str(tmp_path)) is None  # nothing to --resume from yet: a failed run leaves nothing


def test_a_due_full_checkpoint_first_writes_the_best_it_records(tmp_path):
    trainer, policy = _FakeTrainer(str(tmp_path)), CheckpointPolicy(minutes=10, keep=1)
    trainer.step(policy, 10, best=True)
    policy.interval = 0  # the time has come: every save is now full
    assert trainer.step(policy, 20, best=False) == ["checkpoint-10", "checkpoint-20"]
    assert is_weights_only(str(tmp_path / "checkpoint-10")) and not is_weights_only(str(tmp_path / "checkpoint-20"))
    assert _weight_in(tmp_path / "checkpoint-10") == 10.0  # the best's weights, not the model's of step 20
    assert json.load(open(tmp_path / "checkpoint-20" / "trainer_state.json"))["best_model_checkpoint"] == \
        str(tmp_path / "checkpoint-10")
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-20")
    assert policy.best_weights(10) is None  # on disk now
    policy.interval = 600
    # new bests in memory again; kept on disk: the newest full checkpoint and the best it recorded
    assert trainer.step(policy, 30, best=True) == ["checkpoint-10", "checkpoint-20"]
    assert trainer.step(policy, 40, best=True) == ["checkpoint-10", "checkpoint-20"]
    assert policy.best_weights(40) is not None


def test_zero_minutes_writes_a_full_checkpoint_at_every_save(tmp_path):
    trainer, policy = _FakeTrainer(str(tmp_path)), CheckpointPolicy(minutes=0, keep=2)
    for step in (5, 10, 15):
        trainer.step(policy, step, best=step == 5)
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-10", "checkpoint-15", "checkpoint-5"]
    assert all(not is_weights_only(str(tmp_path / name)) for name in os.listdir(tmp_path))
    assert policy.best_weights(5) is None


def test_a_short_run_writes_no_checkpoint(tiny_data, tiny_base_model, tmp_path, monkeypatch):
    """The default policy in a real run (< 10 minutes): no optimizer state and no weights written while it
    trains (each new best's weights kept in memory), and the kept model is the best evaluation's."""
    from tokentune.training.checkpoints import CheckpointPolicy

    folders = []
    real_policy_save = CheckpointPolicy.save

    def save(self, trainer, save):
        real_policy_save(self, trainer, save)
        folders.extend(os.listdir(trainer.args.output_dir) if os.path.isdir(trainer.args.output_dir) else [])

    monkeypatch.setattr(CheckpointPolicy, "save", save)
    saved = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, path, *a, **k: (saved.append(str(path)), real_save(obj, path, *a, **k)))
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=2,
                             learning_rate=5e-3, batch_size=8, quiet=True, eval_steps=5)
    assert not [path for path in saved if path.endswith("optimizer.pt")], saved
    assert folders == []
    assert result.run["best_step"] in [r["step"] for r in result.log_history if "eval_f1" in r]
    assert np.isfinite(result.metrics["dev"]["f1"])


def test_the_kept_model_is_the_best_evaluations_when_it_came_early(tiny_data, tiny_base_model, tmp_path,
                                                                    monkeypatch):
    """The best evaluation is made to be the first (dev F1 falls after it): the saved model has the
    weights the model had then, restored from memory, the word-embedding matrix included."""
    from safetensors.torch import load_file

    from tokentune.training.devscore import DevEvaluator

    real_evaluate, seen = DevEvaluator.evaluate, {}

    def evaluate(self, model, step, crf=None):
        metrics = real_evaluate(self, model, step, crf)
        if not seen:
            seen.update({name: tensor.detach().clone() for name, tensor in model.state_dict().items()})
        metrics["eval_f1"] = 1.0 / (1 + len(seen.setdefault("steps", []))) - 1e-3 * step
        seen["steps"].append(step)
        return metrics

    monkeypatch.setattr(DevEvaluator, "evaluate", evaluate)
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=2,
                             learning_rate=5e-2, batch_size=8, quiet=True, eval_steps=3)
    assert len(seen["steps"]) >= 3 and result.run["best_step"] == seen["steps"][0]
    saved = load_file(os.path.join(result.output_dir, "model.safetensors"))
    compared = [name for name in saved if name in seen and seen[name].is_floating_point()]
    assert any("word_embeddings" in name for name in compared) and len(compared) > 10
    for name in compared:
        assert torch.equal(saved[name], seen[name]), name


def test_a_best_kept_in_memory_is_written_by_the_next_full_checkpoint_and_loaded_from_there(
        tiny_data, tiny_base_model, tmp_path, monkeypatch):
    """The first evaluation is the best; a full checkpoint falls due at the second: it first writes the
    kept weights as the best's folder, which the end of training loads (the Trainer's own way)."""
    from safetensors.torch import load_file

    from tokentune.training.checkpoints import CheckpointPolicy
    from tokentune.training.devscore import DevEvaluator

    real_evaluate, real_save, seen = DevEvaluator.evaluate, CheckpointPolicy.save, {}

    def evaluate(self, model, step, crf=None):
        metrics = real_evaluate(self, model, step, crf)
        if not seen:
            seen.update({name: tensor.detach().clone() for name, tensor in model.state_dict().items()})
        seen.setdefault("steps", []).append(step)
        metrics["eval_f1"] = 1.0 / len(seen["steps"])
        return metrics

    def save(self, trainer, save):
        real_save(self, trainer, save)
        seen.setdefault("folders", []).append(sorted(os.listdir(trainer.args.output_dir))
                                              if os.path.isdir(trainer.args.output_dir) else [])
        self.interval = 0  # from now on every save is a full checkpoint

    monkeypatch.setattr(DevEvaluator, "evaluate", evaluate)
    monkeypatch.setattr(CheckpointPolicy, "save", save)
    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=2,
                             learning_rate=5e-2, batch_size=8, quiet=True, eval_steps=3)
    first, second = seen["steps"][:2]
    assert seen["folders"][0] == [] and f"checkpoint-{first}" in seen["folders"][1]
    assert f"checkpoint-{second}" in seen["folders"][1] and result.run["best_step"] == first
    saved = load_file(os.path.join(result.output_dir, "model.safetensors"))
    compared = [name for name in saved if name in seen and seen[name].is_floating_point()]
    assert any("word_embeddings" in name for name in compared) and len(compared) > 10
    for name in compared:
        assert torch.equal(saved[name], seen[name]), name


def test_evaluate_says_where_its_time_went(tiny_model, tiny_data, capsys):
    from tokentune.cli.main import main

    assert main(["evaluate", tiny_model.output_dir, "--data", tiny_data, "--json"]) == 0
    captured = capsys.readouterr()
    seconds = json.loads(captured.out)["time"]["seconds"]
    assert {"start-up", "reading", "model", "evaluation", "total"} <= set(seconds)
    assert captured.err.splitlines()[-1].startswith("time ")
    assert "time" not in tokentune.evaluate(tiny_model.output_dir, tiny_data)  # the API adds it when given a clock


def test_under_a_launcher_only_rank_0_keeps_the_best_weights_and_rotates(tmp_path, monkeypatch):
    """Every process takes the same branch (rank 0's clock decides, broadcast); the copy in memory and the
    removal of old checkpoints are rank 0's alone, and another rank knows the best is kept, not where."""
    from tokentune.training import distributed

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    decisions = []
    monkeypatch.setattr(distributed, "broadcast", lambda value: decisions.append(value) or value)
    trainer, policy = _FakeTrainer(str(tmp_path)), CheckpointPolicy(minutes=10, keep=1)
    assert trainer.step(policy, 10, best=True) == []
    assert policy.best_weights(10) is None and policy.holds_best(10) and not policy.holds_best(20)
    assert trainer.state.best_model_checkpoint == str(tmp_path / "checkpoint-10")
    policy.interval = 0
    assert trainer.step(policy, 20, best=False) == ["checkpoint-20"]  # rank 0 writes the kept best, not this rank
    assert trainer.step(policy, 30, best=False) == ["checkpoint-20", "checkpoint-30"]  # no rotation here
    assert not policy.holds_best(10) and decisions == [False, True, True]


def test_dev_shards_have_about_equal_words_and_keep_documents_whole():
    from tokentune.training.devscore import shard_ranges

    assert shard_ranges([5, 5, 5, 5], None, 2) == [(0, 2), (2, 4)]
    assert shard_ranges([10, 1, 1, 1, 1], None, 2) == [(0, 1), (1, 5)]
    assert shard_ranges([1, 1, 1, 1, 1, 1], [(0, 3), (3, 6)], 2) == [(0, 3), (3, 6)]
    assert shard_ranges([1, 1, 1, 1, 1, 1], [(0, 5), (5, 6)], 2) == [(0, 5), (5, 6)]
    assert shard_ranges([3], None, 3) == [(0, 1), (1, 1), (1, 1)]  # more processes than sentences: empty shares
    assert shard_ranges([], None, 2) == [(0, 0), (0, 0)]
    for lengths in ([2, 7, 1, 1, 9, 3, 3, 4], [0, 0, 4], [1] * 13):
        for parts in (2, 3, 4):
            ranges = shard_ranges(lengths, None, parts)
            assert ranges[0][0] == 0 and ranges[-1][1] == len(lengths)
            assert all(a[1] == b[0] and a[0] <= a[1] for a, b in zip(ranges, ranges[1:]))


@pytest.mark.parametrize("context", ["sentence", "document"])
def test_dev_tagged_in_shares_gives_the_predictions_of_one_process(tiny_data, tiny_base_model, monkeypatch, context):
    """Each rank of three tags its share; the gathered predictions and probabilities are one process's."""
    from tokentune.config import TrainConfig
    from tokentune.evaluation import evaluate_corpus
    from tokentune.modeling import build_model
    from tokentune.training import devscore, distributed
    from tokentune.training.devscore import model_tagger
    from tokentune.training.run import prepare_data

    config = TrainConfig(data=tiny_data, model=tiny_base_model, output="unused", quiet=True, precision="fp32")
    prep = prepare_data(config)
    tagger = model_tagger(build_model(tiny_base_model, prep.labels).eval(), prep.tokenizer, prep.labels, config,
                          prep.max_length)
    corpus = prep.dev
    if context == "document":  # documents of 7 sentences
        corpus.document_starts = list(range(0, len(corpus), 7))
    alone = devscore._Recorder(tagger)
    expected = evaluate_corpus(alone, corpus, return_predictions=True, context=context)
    shares = []
    monkeypatch.setattr(distributed, "all_gather", lambda mine: shares.append(mine) or [mine] * 3)
    for rank in range(3):
        devscore._Recorder(tagger, 3, rank).predict_token_batches(
            [s.words for s in corpus], corpus.documents() if context == "document" else None)
    assert [len(predictions) for predictions, _ in shares] != [len(corpus), 0, 0]  # shared out
    monkeypatch.setattr(distributed, "all_gather", lambda mine: shares)
    recorder = devscore._Recorder(tagger, 3, 1)
    gathered = evaluate_corpus(recorder, corpus, return_predictions=True, context=context)
    assert [p.tags for p in gathered.predictions] == [p.tags for p in expected.predictions]
    assert gathered["f1"] == expected["f1"]
    np.testing.assert_allclose(recorder.probabilities, alone.probabilities, atol=1e-5)
    monkeypatch.setattr(distributed, "all_gather", lambda mine: [mine])  # a group of another size: refused
    with pytest.raises(RuntimeError, match="dev was shared out to 3 processes, but 1 answered"):
        recorder.predict_token_batches([s.words for s in corpus])


def test_a_model_sharded_over_processes_keeps_the_trainers_evaluation_and_saves():
    """FSDP or DeepSpeed over several processes: each forward is a collective, so dev is not shared out."""
    from types import SimpleNamespace

    from tokentune.config import TrainConfig
    from tokentune.training.devscore import attach_dev_and_checkpoints

    config = TrainConfig(data="unused", save_total_limit=3)
    for world_size, fsdp in ((2, True), (1, True), (2, False)):
        trainer = SimpleNamespace(args=SimpleNamespace(world_size=world_size, save_total_limit=None),
                                  is_fsdp_enabled=fsdp, checkpoint_policy=None, dev_evaluator=None)
        attach_dev_and_checkpoints(trainer, config, SimpleNamespace(dev=None))
        sharded = world_size > 1 and fsdp
        assert (trainer.checkpoint_policy is None) == sharded
        assert trainer.args.save_total_limit == (3 if sharded else None)


def test_a_train_commands_parts_cover_its_whole_time(tiny_data, tiny_base_model, tmp_path):
    """`tokentune train` in a process of its own: the parts add up to the whole, so transformers' own import
    (seconds, in a fresh process) is inside the "model" part; an import of the Trainer's module before that part
    once left 2-4 s of a run in no part at all."""
    import subprocess
    import sys

    out = tmp_path / "m"
    subprocess.run([sys.executable, "-m", "tokentune.cli.main", "train", "--data", tiny_data, "--model",
                    tiny_base_model, "--output", str(out), "--epochs", "1", "--quiet"], check=True,
                   capture_output=True, text=True)
    seconds = json.load(open(out / "metrics.json"))["time"]["seconds"]
    parts = sum(value for key, value in seconds.items() if key != "total")
    assert seconds["total"] - parts < 1.0, seconds
    assert seconds["model"] > 0.2  # the import of transformers' model code at least
