"""--class-weights auto|FILE: the weighted cross-entropy by hand, the auto formula, files and their errors."""
from __future__ import annotations

import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tokentune.config import TrainConfig
from tokentune.errors import ConfigError
from tokentune.training.trainer import trainer_class
from tokentune.training.weights import auto_weights, class_weights, file_weights, label_counts
from tokentune.windows import IGNORE

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


class Logits(torch.nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.logits = logits

    def forward(self, **inputs):
        return SimpleNamespace(logits=self.logits)


def loss_of(weights, *, tokens_per_step=None, training=True, accumulation=1):
    logits = torch.tensor([[[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, 1.0, 1.0]]])
    labels = torch.tensor([[0, 2, IGNORE]])
    model = Logits(logits).train(training)
    trainer = SimpleNamespace(crf=None, cpu_dropout=None, class_weights=None if weights is None else torch.tensor(weights),
                              tokens_per_step=tokens_per_step, current_gradient_accumulation_steps=accumulation)
    loss = trainer_class().compute_loss(trainer, model, {"input_ids": labels * 0, "labels": labels})
    return float(loss)


def nll(row, label):
    row = np.array(row)
    return float(np.log(np.exp(row).sum()) - row[label])


def test_weighted_loss_equals_the_hand_computed_value():
    a, b = nll([2.0, 0.5, -1.0], 0), nll([0.1, 0.2, 0.3], 2)
    weights = [0.5, 1.0, 3.0]
    # token-weighted (the default): the weighted sum over the tokens an optimizer step holds
    assert loss_of(weights, tokens_per_step=4.0) == pytest.approx((0.5 * a + 3.0 * b) / 4.0)
    # batch mean: the weighted mean, as torch's cross_entropy(weight=...) takes it, over accumulation
    assert loss_of(weights, accumulation=2) == pytest.approx((0.5 * a + 3.0 * b) / 3.5 / 2)
    assert loss_of(weights, training=False) == pytest.approx((0.5 * a + 3.0 * b) / 3.5)
    # no weights: the plain cross-entropy, unchanged
    assert loss_of(None, tokens_per_step=4.0) == pytest.approx((a + b) / 4.0)
    assert loss_of(None, training=False) == pytest.approx((a + b) / 2)
    assert loss_of([1.0, 1.0, 1.0], tokens_per_step=4.0) == pytest.approx(loss_of(None, tokens_per_step=4.0))


def test_auto_weights_follow_the_formula():
    features = [{"labels": [IGNORE, 0, 0, 1, IGNORE, 2, IGNORE]}, {"labels": [IGNORE] + [0] * 20 + [3, IGNORE]}]
    counts = label_counts(features, len(LABELS))
    assert counts.tolist() == [22, 1, 1, 1, 0]
    weights = class_weights("auto", LABELS, features)
    raw = np.array([(n + 1.0) ** -0.5 for n in counts])
    expected = raw * counts.sum() / (counts * raw).sum()
    np.testing.assert_allclose(weights, expected)
    assert (counts * weights).sum() / counts.sum() == pytest.approx(1.0)  # mean 1 over the labelled tokens
    assert weights[1] / weights[0] == pytest.approx(math.sqrt(23 / 2))  # rarer weighs more, by the square root
    np.testing.assert_allclose(auto_weights(np.zeros(3)), np.ones(3))  # no labelled tokens: all 1


def test_weights_file_json_and_yaml(tmp_path):
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"B-PER": 2.0, "LOC": 3, "O": 0.5}))
    assert file_weights(str(path), LABELS).tolist() == [0.5, 2.0, 1.0, 3.0, 3.0]  # PER's I- label: missing -> 1
    yaml_path = tmp_path / "w.yaml"
    yaml_path.write_text("PER: 2\nI-PER: 4\n")
    assert file_weights(str(yaml_path), LABELS).tolist() == [1.0, 2.0, 4.0, 1.0, 1.0]  # the exact label wins


@pytest.mark.parametrize("text, suffix, message", [
    ('{"B-MISC": 2}', ".json", r"w\.json: unknown label 'B-MISC' in the class weights.*O, B-PER, I-PER, B-LOC, I-LOC"),
    ('{"O": "heavy"}', ".json", r"the weight of 'O' must be a finite number >= 0, found 'heavy'"),
    ('{"O": -1}', ".json", "must be a finite number >= 0"),
    ('{"O": NaN}', ".json", "must be a finite number >= 0"),
    ('{"O": 0, "B-PER": 0, "I-PER": 0, "B-LOC": 0, "I-LOC": 0}', ".json", "every label weighs 0"),
    ('[1, 2]', ".json", "expected a mapping of label -> weight, found list"),
    ('{"O": 1', ".json", r"w\.json:1: cannot parse the class weights file"),
    ("O: 1\nB-PER: [2\n", ".yaml", r"w\.yaml:\d+: cannot parse the class weights file"),
])
def test_bad_weight_files_are_one_line_errors(tmp_path, text, suffix, message):
    path = tmp_path / f"w{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        file_weights(str(path), LABELS)
    assert "\n" not in str(caught.value)


def test_class_weights_settings_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="class weights file .*missing.json not found"):
        TrainConfig(data="x", class_weights=str(tmp_path / "missing.json"))
    assert TrainConfig(data="x", class_weights="auto").class_weights == "auto"
    assert TrainConfig(data="x").class_weights is None and TrainConfig(data="x").head == "crf"  # measured default
    # class weights belong to the softmax head's cross-entropy: asking for them picks that head
    assert TrainConfig(data="x", class_weights="auto").head == "softmax"
    with pytest.raises(ConfigError, match="--class-weights applies to the softmax head"):
        TrainConfig(data="x", class_weights="auto", head="crf")


def test_bad_weights_file_on_the_command_line_exits_2_and_writes_nothing(tiny_data, tiny_base_model, tmp_path,
                                                                           capsys):
    from tokentune.cli.main import main

    weights = tmp_path / "weights.yaml"
    weights.write_text("B-MISC: 3\n")
    output = tmp_path / "out"
    code = main(["train", "--data", tiny_data, "--model", tiny_base_model, "--output", str(output),
                 "--class-weights", str(weights), "--epochs", "1", "-q"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "unknown label 'B-MISC'" in err and "B-PER" in err
    assert len(err.splitlines()) == 1
    assert not os.path.exists(output) and not [n for n in os.listdir(tmp_path) if n.endswith(".partial")]


def test_training_with_auto_weights_records_them(tiny_data, tiny_base_model, tmp_path):
    import tokentune

    result = tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=1,
                             learning_rate=5e-3, batch_size=8, quiet=True, class_weights="auto", max_train_samples=40)
    metrics = json.load(open(os.path.join(result.output_dir, "metrics.json")))
    weights = metrics["class_weights"]
    assert set(weights) == {"O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"}
    assert weights["O"] < 1 < weights["B-ORG"]
    assert any(note.startswith("class weights (auto") for note in metrics["notes"])
    assert metrics["head"] == "softmax"
