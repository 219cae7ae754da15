"""--resume: a run SIGKILLed mid-epoch continues from its last checkpoint and ends exactly where an
uninterrupted run with the same seed ends."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tokentune.cli.main import main
from tokentune.errors import ConfigError

# The killed run: training steps slowed down so the test can kill it between two checkpoints.
SLOW_TRAIN = """
import sys, time
from transformers import Trainer
step = Trainer.training_step
def slow_step(self, *args, **kwargs):
    time.sleep(float(sys.argv[1]))
    return step(self, *args, **kwargs)
Trainer.training_step = slow_step
from tokentune.cli.main import main
sys.exit(main(sys.argv[2:]))
"""


def _argv(tiny_data, tiny_base_model, output):
    # 160 sentences / batch 8 = 20 steps per epoch, 40 in all; a full checkpoint (and dev evaluation) every 5
    return ["train", "--data", tiny_data, "--model", tiny_base_model, "--output", str(output), "--epochs", "2",
            "--batch-size", "8", "--learning-rate", "5e-3", "--seed", "5", "--eval-steps", "5", "--quiet",
            "--checkpoint-minutes", "0"]


def _wait_for(path, process, timeout=240.0):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, f"no {path} after {timeout} s"
        time.sleep(0.02)


def _records(output):
    return [json.loads(line) for line in open(os.path.join(output, "training_log.jsonl"))]


def test_killed_run_resumes_to_the_same_result(tiny_data, tiny_base_model, tmp_path, capsys, monkeypatch):
    import torch

    # one thread count throughout, as the README asks of runs that must match: no watch changing it
    monkeypatch.setenv("OMP_NUM_THREADS", str(torch.get_num_threads()))
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    assert main(_argv(tiny_data, tiny_base_model, reference)) == 0
    staging = tmp_path / ".resumed.partial"
    process = subprocess.Popen([sys.executable, "-c", SLOW_TRAIN, "0.25", *_argv(tiny_data, tiny_base_model, resumed)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(staging / "checkpoints" / "checkpoint-10" / "trainer_state.json", process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert not resumed.exists() and staging.exists(), "an interrupted run leaves only its staging directory"
    steps = [r["step"] for r in _records(staging) if "eval_f1" in r]
    assert 10 in steps and max(steps) < 20, f"killed mid-epoch, after step 10's checkpoint: {steps}"

    capsys.readouterr()
    assert main([*_argv(tiny_data, tiny_base_model, resumed), "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "note: resumed from checkpoint-" in printed
    ours, theirs = (json.load(open(d / "metrics.json")) for d in (resumed, reference))
    for split in ("dev", "test"):
        for key in ("precision", "recall", "f1", "accuracy"):
            assert ours[split][key] == theirs[split][key], (split, key)
    evals = [[(r["step"], r["eval_loss"], r["eval_f1"]) for r in _records(d) if "eval_f1" in r]
             for d in (resumed, reference)]
    assert [e[:1] for e in evals[0]] == [e[:1] for e in evals[1]] and len(evals[0]) == 8, "one log line per evaluation"
    assert [e[2] for e in evals[0]] == [e[2] for e in evals[1]]
    assert [e[1] for e in evals[0]] == pytest.approx([e[1] for e in evals[1]], rel=1e-5)
    assert not staging.exists() and not (resumed / "checkpoints").exists()


def test_resume_with_other_settings_is_refused(tiny_data, tiny_base_model, tmp_path):
    from tokentune.training import train

    staging = tmp_path / ".o.partial"
    staging.mkdir()
    (staging / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt"):
        (staging / "checkpoints" / "checkpoint-5" / name).write_text("x")
    (staging / "checkpoints" / "checkpoint-5" / "trainer_state.json").write_text('{"epoch": 0.5}')
    saved = {"data": tiny_data, "model": tiny_base_model, "output": str(tmp_path / "o"), "learning_rate": 1e-3}
    from tokentune.config import TrainConfig

    (staging / "tokentune_config.json").write_text(json.dumps(TrainConfig(**saved).to_dict()))
    with pytest.raises(ConfigError, match=r"started with other settings: learning_rate 0.001 \(now 0.005\).*or train from "
                                          r"the start: --overwrite in place of --resume"):
        train(**{**saved, "learning_rate": 5e-3, "resume": True, "quiet": True})


def _fake_checkpoint(staging, step=5):
    folder = staging / "checkpoints" / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt"):
        (folder / name).write_text("x")
    (folder / "trainer_state.json").write_text('{"epoch": 0.5}')
    return folder


def test_a_rerun_without_resume_keeps_an_interrupted_run_it_could_continue(tiny_data, tiny_base_model, tmp_path):
    """The same command repeated without --resume is refused before it reads anything; --overwrite starts
    again (deleting the interrupted run), as the refusal says."""
    from tokentune.training import train

    checkpoint = _fake_checkpoint(tmp_path / ".o.partial")
    settings = dict(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "o"), epochs=1, batch_size=16,
                    max_train_samples=32, quiet=True)
    with pytest.raises(ConfigError, match=r"\.o\.partial holds an interrupted run that can be continued \(checkpoint-5\)\. "
                                          r"Fix: add --resume to continue it, or --overwrite to delete it"):
        train(**settings)
    assert (checkpoint / "optimizer.pt").exists(), "the interrupted run is untouched"
    result = train(**settings, overwrite=True)
    assert (tmp_path / "o" / "model.safetensors").exists() and not checkpoint.exists()
    assert any("left by an interrupted run" in note for note in result.notes)


# the command as installed (console_main: SIGTERM handled), its training steps slowed as in SLOW_TRAIN
SLOW_COMMAND = """
import sys, time
from transformers import Trainer
step, delay = Trainer.training_step, float(sys.argv.pop(1))
def slow_step(self, *args, **kwargs):
    time.sleep(delay)
    return step(self, *args, **kwargs)
Trainer.training_step = slow_step
from tokentune.cli.main import console_main
sys.exit(console_main())
"""


def test_a_terminated_run_says_how_to_resume(tiny_data, tiny_base_model, tmp_path, capsys):
    """SIGTERM (kill, timeout, a scheduler) stops train as Ctrl-C does (then ends by the signal), the
    checkpoint kept and the way to continue said; the command repeated without --resume is refused and
    deletes nothing."""
    argv = _argv(tiny_data, tiny_base_model, tmp_path / "run")
    staging = tmp_path / ".run.partial"
    process = subprocess.Popen([sys.executable, "-c", SLOW_COMMAND, "0.25", *argv], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(staging / "checkpoints" / "checkpoint-5" / "trainer_state.json", process)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=240)
    assert process.returncode == -signal.SIGTERM, err  # ended by the signal, after clean-up
    assert "Traceback" not in err
    assert re.search(r"tokentune train: terminated; checkpoint-\d+ is kept in \S*\.run\.partial: run the same command "
                     r"with --resume to continue from it", err), err
    kept = sorted(os.listdir(staging / "checkpoints"))
    capsys.readouterr()
    assert main(argv) == 2
    assert "holds an interrupted run that can be continued" in capsys.readouterr().err
    assert sorted(os.listdir(staging / "checkpoints")) == kept


def test_resume_without_a_checkpoint_starts_over(tiny_data, tiny_base_model, tmp_path):
    from tokentune.training import train

    result = train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "o"), epochs=1, batch_size=16,
                   max_train_samples=32, quiet=True, resume=True)
    assert any("no complete checkpoint" in note and "training from the start" in note for note in result.notes)
    assert (tmp_path / "o" / "model.safetensors").exists()


def test_last_checkpoint_skips_a_half_written_one(tmp_path):
    from tokentune.training.checkpoints import last_checkpoint

    for step, complete in ((5, True), (10, True), (15, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        for name in ("model.safetensors", "optimizer.pt", "scheduler.pt"):
            (folder / name).write_text("x")
        (folder / "trainer_state.json").write_text('{"global_step": 1}' if complete else '{"global_')
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert last_checkpoint(str(tmp_path / "missing")) is None


def test_resume_over_best_weights_alone_starts_over_without_them(tiny_data, tiny_base_model, tmp_path):
    """A run killed before its first full checkpoint leaves only best-model weights: nothing to resume, and
    nothing of it is loaded back at the end (here the weights are not even a safetensors file)."""
    from tokentune.training import train

    stale = tmp_path / ".o.partial" / "checkpoints" / "checkpoint-999"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_text("not weights")
    (stale / "trainer_state.json").write_text('{"global_step": 999, "epoch": 9.0}')
    result = train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "o"), epochs=1, batch_size=16,
                   max_train_samples=32, quiet=True, resume=True)
    assert any("no complete checkpoint" in note for note in result.notes)
    assert not stale.exists() and (tmp_path / "o" / "model.safetensors").exists()


def test_a_run_saved_before_a_setting_existed_resumes_at_its_old_value(tmp_path):
    """A configuration saved before ``context_dropout`` existed had it at 0: resuming with the default
    is allowed, with another value refused."""
    from tokentune.config import TrainConfig
    from tokentune.training.checkpoints import resumable_config

    config = TrainConfig(data="d", output=str(tmp_path / "o"), context="document", context_size=8)
    saved = config.to_dict()
    del saved["context_dropout"]
    path = tmp_path / "tokentune_config.json"
    path.write_text(json.dumps(saved))
    assert resumable_config(config, str(path)).context_dropout == 0.0
    changed = TrainConfig(data="d", output=str(tmp_path / "o"), context="document", context_size=8,
                          context_dropout=0.5)
    with pytest.raises(ConfigError, match=r"other settings: context_dropout 0.0 \(now 0.5\)"):
        resumable_config(changed, str(path))
