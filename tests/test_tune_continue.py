"""A search continued, interrupted at its end, or given settings it does not use: the same command with
--overwrite continues a search it can continue, a second study never takes the first's trial models, a finish
killed before its rename is done again, the saved settings repeat the user's command, and what --timeout and
flags the space draws do is said."""
from __future__ import annotations

import json
import os

import pytest

import tokentune
from tokentune.cli.main import main
from tokentune.config import TrainConfig
from tokentune.errors import ConfigError
from tokentune.tuning import Param, TuneOptions

SPACE = {"learning_rate": Param("learning_rate", "float", 1e-4, 1e-2, log=True)}


@pytest.fixture
def config(tiny_data, tiny_base_model, tmp_path):
    output = tmp_path.parent / f"{tmp_path.name}-tuned"  # outputs may not lie inside the tests' inputs
    return TrainConfig(data=tiny_data, model=tiny_base_model, output=str(output), batch_size=16, quiet=True, seed=3,
                       epochs=1, max_train_samples=48)


def _interrupt_after_one_trial(config, study="tokentune"):
    def stop(line):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tokentune.tune(config, TuneOptions(trials=2, study=study), space=SPACE, progress=stop)
    staging = os.path.join(os.path.dirname(config.output), f".{os.path.basename(config.output)}.tune.partial")
    assert os.path.isdir(os.path.join(staging, "trials", "trial-0000"))


def test_the_same_command_with_overwrite_continues_the_search(config):
    _interrupt_after_one_trial(config)
    config = TrainConfig(**{**config.to_dict(), "overwrite": True})
    result = tokentune.tune(config, TuneOptions(trials=2), space=SPACE)
    assert "continuing study 'tokentune': 1 of 2 trials already finished" in result.notes
    assert not any("removed" in note for note in result.notes) and len(result.trials) == 2
    saved = json.load(open(os.path.join(config.output, "tokentune_config.json")))
    assert (saved["overwrite"], saved["quiet"], saved["output"]) == (True, True, config.output)  # as given
    assert not os.path.exists(os.path.join(config.output, "trials"))


def test_another_study_does_not_take_the_interrupted_ones_trial_models(config):
    _interrupt_after_one_trial(config)
    with pytest.raises(ConfigError, match=r"holds the interrupted search of study 'tokentune', and its trials' models "
                                          r"would be taken for those of study 'other'.*Fix: continue it with --study tokentune, "
                                          r"give study 'other' another --output, or pass --overwrite to remove it"):
        tokentune.tune(config, TuneOptions(trials=1, study="other"), space=SPACE)
    other = TrainConfig(**{**config.to_dict(), "overwrite": True, "seed": 4})
    result = tokentune.tune(other, TuneOptions(trials=1, study="other"), space=SPACE)
    assert "--overwrite: removed the interrupted search of study 'tokentune'" in " ".join(result.notes)
    saved = json.load(open(os.path.join(config.output, "tokentune_config.json")))
    assert saved["seed"] == 4 and saved["overwrite"] is True and result.study_name == "other"


def test_a_study_of_the_same_name_in_another_storage_does_not_take_the_trial_models(config, tmp_path):
    """Trials are numbered from 0 in every study: a search continued with --storage added would promote the
    interrupted search's trial-0000 as its own trial 0 (the review's finding)."""
    _interrupt_after_one_trial(config)
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    with pytest.raises(ConfigError, match=r"holds the trials' models of another study named 'tokentune' \(kept in "
                                          r"another storage\).*Fix: continue that search with the --storage it started "
                                          r"with"):
        tokentune.tune(config, TuneOptions(trials=1, storage=shared), space=SPACE)
    again = TrainConfig(**{**config.to_dict(), "overwrite": True})
    result = tokentune.tune(again, TuneOptions(trials=1, storage=shared), space=SPACE)
    assert any("removed the trials' models of another study named 'tokentune'" in note for note in result.notes)
    assert len(result.trials) == 1 and result.best_trial == 0
    with open(os.path.join(config.output, "tokentune_config.json"), encoding="utf-8") as handle:
        saved = json.load(handle)  # the promoted model is this study's trial 0, trained at its own rate
    assert saved["learning_rate"] == pytest.approx(result.best_params["learning_rate"])


def test_a_finish_stopped_before_its_rename_is_done_again(config, monkeypatch):
    import tokentune.io

    replace_with, calls = tokentune.io.replace_with, []

    def killed_once(staging, final):  # the search's own rename (trials are published with it too)
        if final == config.output:
            calls.append(final)
            if len(calls) == 1:
                raise KeyboardInterrupt
        return replace_with(staging, final)

    monkeypatch.setattr(tokentune.io, "replace_with", killed_once)
    with pytest.raises(KeyboardInterrupt):
        tokentune.tune(config, TuneOptions(trials=1), space=SPACE)
    assert not os.path.exists(config.output)
    result = tokentune.tune(config, TuneOptions(trials=1), space=SPACE)  # the same command: the trial's model is kept
    assert len(calls) == 2 and result.best_trial == 0
    saved = json.load(open(os.path.join(config.output, "tokentune_config.json")))
    assert (saved["overwrite"], saved["output"]) == (False, config.output)


def test_a_search_stopped_by_its_timeout_says_so(config):
    result = tokentune.tune(config, TuneOptions(trials=5, timeout=0.01), space=SPACE)
    assert len(result.trials) == 1 and "--timeout 0.01 s: stopped after 1 of 5 trials" in result.notes


def test_a_flag_for_a_setting_the_space_draws_is_said_unused(config, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("space:\n  learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    assert main(["tune", "--data", config.data, "--model", config.model, "--output", config.output, "--trials", "1",
                 "--epochs", "1", "--max-train-samples", "48", "--learning-rate", "0.005", "--space", str(space)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: --learning-rate: drawn by the search space, so the value given is not used (leave it "
                          "out of the space to fix it)")


def test_a_missing_optional_package_is_a_one_line_error(tiny_data, tiny_base_model, tmp_path, monkeypatch):
    from transformers import Trainer

    def needs_bitsandbytes(self, *args, **kwargs):
        raise ImportError("You need to install bitsandbytes to use 8-bit optimizers: pip install bitsandbytes")

    monkeypatch.setattr(Trainer, "training_step", needs_bitsandbytes)
    with pytest.raises(ConfigError, match=r"^ImportError: You need to install bitsandbytes.*Fix: install the package it "
                                          r"names, or choose another setting"):
        tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "o"), epochs=1, quiet=True,
                        max_train_samples=16)


def test_a_space_reaching_past_the_models_length_is_refused_before_any_trial(config, tmp_path):
    from transformers import AutoTokenizer

    limit = min(AutoTokenizer.from_pretrained(config.model).model_max_length, 10**6)
    space = {"max_length": Param("max_length", "categorical", choices=(32, 10**5))}
    with pytest.raises(ConfigError, match=r"^the search space: max_length reaches 100000, more than the model takes "
                                          r"\(\d+ sub-tokens\)\. Fix: keep max_length at \d+ or less in the space"):
        tokentune.tune(config, TuneOptions(trials=1), space=space)
    assert not os.path.exists(config.output) and limit > 32


def test_the_python_api_prints_no_optuna_trial_lines(config, capsys):
    import optuna

    before = optuna.logging.get_verbosity()
    tokentune.tune(config, TuneOptions(trials=1), space=SPACE)
    captured = capsys.readouterr()
    assert "Trial 0 finished" not in captured.err + captured.out and captured.out == ""
    assert optuna.logging.get_verbosity() == before  # restored


def test_epochs_sets_the_default_spaces_range_and_is_said_so(config, capsys):
    command = ["tune", "--data", config.data, "--model", config.model, "--output", config.output, "--trials", "1",
               "--epochs", "1", "--max-train-samples", "48"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert out.startswith("note: --epochs 1: the default space draws epochs from 1 to 1") and "not used" not in out
    # more trials into the finished search: refused, saying what --overwrite would do to it
    assert main([*command[:-6], "--trials", "2", *command[-4:]]) == 2
    err = capsys.readouterr().err
    assert "holds a finished search (1 trial of study 'tokentune'); a finished search is not continued" in err
    assert "--overwrite starts a new search from trial 0 and replaces this one" in err


def test_a_shared_storage_opens_without_optunas_experimental_warning(tmp_path):
    import warnings

    from tokentune.tuning.study import open_storage

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        open_storage(f"sqlite:///{tmp_path / 'shared.db'}", shared=True)
    assert not [w for w in caught if "experimental" in str(w.message).lower()], [str(w.message) for w in caught]


def test_resume_is_refused_saying_the_same_command_continues(config):
    resumed = TrainConfig(**{**config.to_dict(), "resume": True})
    with pytest.raises(ConfigError, match=r"--resume applies to train.*Fix: leave --resume out: the same tune command "
                                          r"continues an interrupted search"):
        tokentune.tune(resumed, TuneOptions(trials=1), space=SPACE)
    assert not os.path.exists(config.output)
