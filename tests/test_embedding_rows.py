"""--embedding-rows: the word-embedding rows the training data uses, trained as a matrix of their own.

Oracle: the same model trained with the whole matrix (the rows no batch holds must not move, and every
other weight must come out the same up to float rounding)."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from tokentune.training import rows as embedding_rows


def _tiny_bert(**settings):
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=5, pad_token_id=0,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, **settings)
    return BertForTokenClassification(config)


def _train(model, batches, attach: bool):
    if attach:
        features = [{"input_ids": ids} for batch in batches for ids in batch.tolist()]
        rows = embedding_rows.attach_rows(model, features, special_ids=[0])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, fused=True,
                                  weight_decay=0.0)
    if attach:
        rows.follow(optimizer)
        rows.follow(optimizer)  # asked twice (the Trainer may): written back once a step all the same
    model.train()
    for ids in batches:
        labels = ids % 5
        model(input_ids=ids, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 0.5)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return model


def test_training_the_used_rows_equals_training_the_whole_matrix():
    generator = torch.Generator().manual_seed(1)
    batches = [torch.randint(5, 30, (4, 7), generator=generator) for _ in range(6)]  # ids 30-59 never appear
    batches[2][0, 5:] = 0  # padding
    whole, alone = _train(_tiny_bert(), batches, attach=False), _train(_tiny_bert(), batches, attach=True)
    start = _tiny_bert().bert.embeddings.word_embeddings.weight
    assert embedding_rows.rows_of(alone) is not None
    assert not alone.get_input_embeddings().weight.requires_grad  # the full matrix is frozen meanwhile
    embedding_rows.finish_rows(alone)
    assert embedding_rows.rows_of(alone) is None and alone.get_input_embeddings().weight.requires_grad
    whole_weights, alone_weights = dict(whole.named_parameters()), dict(alone.named_parameters())
    assert whole_weights.keys() == alone_weights.keys()  # a plain model again: nothing of the rows left
    for name, weight in whole_weights.items():
        # a key's bias adds the same to every score of a query, which softmax ignores: its true gradient
        # is 0, its computed one float noise, which Adam scales up to steps of the learning rate's size
        if not name.endswith("key.bias"):
            torch.testing.assert_close(alone_weights[name], weight, atol=1e-6, rtol=1e-5, msg=name)
    matrix = alone_weights["bert.embeddings.word_embeddings.weight"]
    assert torch.equal(matrix[30:], start[30:])  # never in a batch: never moved, in either run
    assert not torch.equal(matrix[5:30], start[5:30])
    assert torch.equal(matrix[0], start[0])  # the padding row gets no gradient


def test_evaluation_reads_the_full_matrix_with_the_trained_rows():
    model = _tiny_bert()
    batches = [torch.randint(5, 30, (2, 6), generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    _train(model, batches, attach=True)
    rows = embedding_rows.rows_of(model)
    matrix = model.get_input_embeddings().weight
    assert torch.equal(matrix[rows.ids], rows.rows.detach())  # written back after the last step
    unseen = torch.tensor([[40, 41, 42]])  # ids outside the trained rows: only the full matrix has them
    model.eval()
    expected = nn.functional.embedding(unseen, matrix)
    assert torch.equal(model.get_input_embeddings()(unseen), expected)


def test_saved_without_the_rows_module_after_training(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification

    model = _tiny_bert()
    _train(model, [torch.randint(5, 30, (2, 6))], attach=True)
    model.save_pretrained(tmp_path / "checkpoint")  # a checkpoint while training holds the rows and their ids
    assert {"tokentune_embedding_rows.rows", "tokentune_embedding_rows.ids"} <= set(
        load_file(tmp_path / "checkpoint" / "model.safetensors"))
    embedding_rows.finish_rows(model)
    model.save_pretrained(tmp_path / "final")
    assert not any(embedding_rows.ATTRIBUTE in key for key in load_file(tmp_path / "final" / "model.safetensors"))
    loaded = AutoModelForTokenClassification.from_pretrained(tmp_path / "final")
    assert torch.equal(loaded.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_a_padding_id_outside_the_data_still_gets_no_gradient_and_nothing_else_loses_one():
    """The model's pad id need not be the tokenizer's: it is among the rows all the same, so F.embedding's
    padding_idx never becomes -1 (the last row, which would silently stop training)."""
    model = _tiny_bert()
    model.bert.embeddings.word_embeddings.padding_idx = 59  # the config's pad id, in no batch
    rows = embedding_rows.attach_rows(model, [{"input_ids": [5, 9, 29]}], special_ids=[0])
    assert 59 in rows.ids.tolist() and rows.padding_idx == rows.ids.tolist().index(59)
    model.train()
    model(input_ids=torch.tensor([[5, 9, 29, 59]])).logits.sum().backward()
    grad = dict(zip(rows.ids.tolist(), rows.rows.grad))
    assert grad[29].abs().sum() > 0 and grad[59].abs().sum() == 0


def test_special_ids_beyond_the_matrix_are_left_out():
    ids = embedding_rows.used_ids([{"input_ids": [2, 9]}], [0, 3, 60, 250_000, None], vocabulary=60)
    assert ids.tolist() == [0, 2, 3, 9]


def test_resuming_with_other_training_data_is_refused():
    from tokentune.errors import ModelError

    first, second = _tiny_bert(), _tiny_bert()
    embedding_rows.attach_rows(first, [{"input_ids": [5, 6, 7]}], special_ids=[0])
    embedding_rows.attach_rows(second, [{"input_ids": [5, 6, 8]}], special_ids=[0])
    with pytest.raises(ModelError, match="training data changed since the checkpoint"):
        second.load_state_dict(first.state_dict())
    third = _tiny_bert()
    embedding_rows.attach_rows(third, [{"input_ids": [7, 6, 5]}], special_ids=[0])
    third.load_state_dict(first.state_dict())  # the same ids: loads


def test_a_model_that_bypasses_its_embedding_layer_is_stopped_at_the_first_step():
    from tokentune.errors import ModelError

    model = _tiny_bert()
    rows = embedding_rows.attach_rows(model, [{"input_ids": [5, 6, 7]}], special_ids=[0])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rows.follow(optimizer)
    model.train()
    embeds = nn.functional.embedding(torch.tensor([[5, 6, 7]]), model.get_input_embeddings().weight)
    model(inputs_embeds=embeds, labels=torch.tensor([[1, 2, 3]])).loss.backward()
    with pytest.raises(ModelError, match="without calling its embedding layer"):
        optimizer.step()


def test_settings_under_which_the_whole_matrix_trains(tmp_path):
    from tokentune.config import TrainConfig
    from tokentune.training.trainer import training_arguments

    def reason(model=None, **setting):
        config = TrainConfig(data="d", output="o", **setting)
        return embedding_rows.why_not(config, training_arguments(config, str(tmp_path), False), model or _tiny_bert())

    assert reason() is None and reason(trainer=["optim=sgd"]) is None
    for setting, expected in (({"embedding_rows": False}, "--no-embedding-rows"),
                              ({"freeze_embeddings": True}, "--freeze-embeddings"),
                              ({"torch_compile": True}, "--torch-compile"),
                              ({"weight_decay": 0.01}, "weight decay"),
                              ({"trainer": ["optim=adafactor"]}, "optimizer adafactor")):
        assert expected in reason(**setting)
    from types import SimpleNamespace

    sharded = SimpleNamespace(optim="adamw_torch_fused", weight_decay=0.0, fsdp="full_shard", deepspeed=None, n_gpu=1)
    assert "sharded" in embedding_rows.why_not(TrainConfig(data="d", output="o"), sharded, _tiny_bert())
    replicated = SimpleNamespace(optim="adamw_torch_fused", weight_decay=0.0, fsdp="", deepspeed=None, n_gpu=2)
    assert "DataParallel" in embedding_rows.why_not(TrainConfig(data="d", output="o"), replicated, _tiny_bert())
    scaled = _tiny_bert()
    scaled.bert.embeddings.word_embeddings.max_norm = 1.0
    assert "not a plain lookup" in reason(scaled)
    tied = _tiny_bert()
    tied.classifier = nn.Linear(32, 60, bias=False)
    tied.classifier.weight = tied.bert.embeddings.word_embeddings.weight
    assert "shared" in reason(tied)


def test_used_ids_cover_the_features_and_the_special_tokens():
    ids = embedding_rows.used_ids([{"input_ids": [2, 9, 9, 3]}, {"input_ids": [2, 14, 3, 0]}], [0, 1, 2, 3, None], 60)
    assert ids.tolist() == [0, 1, 2, 3, 9, 14]


def test_train_cli_notes_it_and_gives_the_whole_matrix_result(tiny_data, tiny_base_model, tmp_path, capsys):
    from safetensors.torch import load_file

    from tokentune.cli.main import main

    common = ["train", "--data", tiny_data, "--model", tiny_base_model, "--epochs", "1", "--batch-size", "8",
              "--max-train-samples", "32", "--precision", "fp32", "--no-fast-dropout", "--quiet"]
    assert main([*common, "--output", str(tmp_path / "rows")]) == 0
    assert "rows that the training data uses are trained as a matrix of their own" in capsys.readouterr().out
    assert main([*common, "--output", str(tmp_path / "whole"), "--no-embedding-rows"]) == 0
    assert "matrix of their own" not in capsys.readouterr().out
    rows, whole = load_file(tmp_path / "rows" / "model.safetensors"), load_file(tmp_path / "whole" / "model.safetensors")
    assert rows.keys() == whole.keys() and not any(embedding_rows.ATTRIBUTE in key for key in rows)
    for key, weight in whole.items():
        torch.testing.assert_close(rows[key], weight, atol=1e-5, rtol=1e-4, msg=key)


def test_notes_say_what_was_done_and_why_not_once(tmp_path):
    from types import SimpleNamespace

    from tokentune.config import TrainConfig
    from tokentune.training.trainer import training_arguments

    tokenizer, features = SimpleNamespace(all_special_ids=[0]), [{"input_ids": [5, 6, 7]}]
    notes = []
    for setting in ({}, {}, {"weight_decay": 0.01}, {"weight_decay": 0.01}, {"embedding_rows": False}):
        config = TrainConfig(data="d", output="o", **setting)
        embedding_rows.train_used_rows(config, training_arguments(config, str(tmp_path), False), _tiny_bert(),
                                       tokenizer, features, notes)
    assert notes == [
        "word embeddings: the 4 of 60 rows that the training data uses are trained as a matrix of their own, the "
        "same result with less work (--no-embedding-rows trains all)",
        "word embeddings: every row trained (weight decay shrinks the rows that get no gradient), not only the "
        "rows the training data uses"]  # once each; nothing for the user's own --no-embedding-rows


def test_best_weights_kept_in_memory_leave_the_matrix_out_and_restore_or_write_it_whole(tmp_path):
    """The checkpoint policy's copy of a new best (checkpoints.KeptWeights) holds the trained rows but not
    the vocabulary-sized matrix; loading it back, or writing it as a checkpoint, gives the whole matrix as
    it was at that step."""
    from types import SimpleNamespace

    from safetensors.torch import load_file

    from tokentune.training.checkpoints import KeptWeights

    batches = [torch.tensor([[5, 6, 7, 0], [9, 8, 7, 6]]), torch.tensor([[6, 5, 7, 0], [9, 9, 8, 6]])]
    model = _train(_tiny_bert(), batches[:1], attach=True)
    then = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    state = SimpleNamespace(global_step=1, save_to_json=lambda path: open(path, "w").write("{}"))
    kept = KeptWeights(model, state)
    matrix = "bert.embeddings.word_embeddings.weight"
    assert kept.matrix_name == matrix and matrix not in kept.weights
    assert any(name.endswith("tokentune_embedding_rows.rows") for name in kept.weights)

    _train(model, batches[1:], attach=False)  # trains on: the rows too, written into the matrix below
    embedding_rows.rows_of(model).write_back()
    assert not torch.equal(model.state_dict()[matrix], then[matrix])
    kept.write(model, str(tmp_path / "checkpoint-1"))
    written = load_file(str(tmp_path / "checkpoint-1" / "model.safetensors"))
    kept.load_into(model)
    for name, tensor in then.items():
        assert torch.equal(model.state_dict()[name], tensor), name
        assert torch.equal(written[name], tensor), name
