"""What a failed run says (training/failures.py): an error once a resumed run trains is not blamed on its
checkpoint, a checkpoint written by another number of processes is refused, a lost peer process and running
out of memory say how to go on, and commands other than train refuse to run under a launcher."""
from __future__ import annotations

import os
import shutil

import pytest

import tokentune
from tokentune.cli.main import main
from tokentune.errors import ConfigError, Interrupted


def _train(tiny_data, tiny_base_model, output, **settings):
    options = dict(data=tiny_data, model=tiny_base_model, output=str(output), epochs=1, learning_rate=5e-3,
                   batch_size=8, quiet=True, seed=11, max_train_samples=64, precision="fp32", eval_steps=3,
                   checkpoint_minutes=0)
    options.update(settings)
    return tokentune.train(**options)


def _raise_at(step: int, error: BaseException):
    from transformers import TrainerCallback

    class Raise(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == step:
                raise error

    return Raise()


@pytest.fixture
def interrupted(tiny_data, tiny_base_model, tmp_path):
    """An output whose run stopped at step 4 (Ctrl-C), with checkpoint-3 to resume from."""
    output = tmp_path / "run"
    with pytest.raises(Interrupted, match="checkpoint-3 is kept"):
        _train(tiny_data, tiny_base_model, output, callbacks=[_raise_at(4, KeyboardInterrupt())])
    checkpoint = tmp_path / ".run.partial" / "checkpoints" / "checkpoint-3"
    assert (checkpoint / "rng_state.pth").is_file()
    return output, checkpoint


def test_an_error_after_the_checkpoint_loaded_is_not_blamed_on_it(tiny_data, tiny_base_model, interrupted):
    output, checkpoint = interrupted
    with pytest.raises(RuntimeError, match="^the disk went away$"):
        _train(tiny_data, tiny_base_model, output, resume=True,
               callbacks=[_raise_at(5, RuntimeError("the disk went away"))])
    assert checkpoint.is_dir()  # kept, and no message told the user to delete it


def test_a_checkpoint_of_two_processes_does_not_resume_in_one(tiny_data, tiny_base_model, interrupted):
    output, checkpoint = interrupted
    os.rename(checkpoint / "rng_state.pth", checkpoint / "rng_state_0.pth")
    shutil.copy(checkpoint / "rng_state_0.pth", checkpoint / "rng_state_1.pth")
    with pytest.raises(ConfigError, match=r"--resume: checkpoint-3 was written by a run of 2 processes, this one has "
                                          r"1 process: the effective batch .*Fix: resume with 2 processes \(torchrun "
                                          r"--nproc_per_node 2 \.\.\.\), or train from the start"):
        _train(tiny_data, tiny_base_model, output, resume=True)
    os.remove(checkpoint / "rng_state_1.pth")
    os.rename(checkpoint / "rng_state_0.pth", checkpoint / "rng_state.pth")
    result = _train(tiny_data, tiny_base_model, output, resume=True)  # the same checkpoint, one process: resumes
    assert result.run["resumed_from_step"] == 3


def test_the_resume_check_reads_the_processes_of_a_checkpoint(tmp_path, monkeypatch):
    from tokentune.training.failures import check_processes

    checkpoint = tmp_path / "checkpoint-8"
    checkpoint.mkdir()
    check_processes(str(checkpoint))  # no RNG state (written before the Trainer saved one): not checked
    (checkpoint / "rng_state.pth").write_bytes(b"")
    check_processes(str(checkpoint))
    monkeypatch.setenv("WORLD_SIZE", "4")
    with pytest.raises(ConfigError, match=r"written by a run of 1 process, this one has 4 processes.*Fix: resume "
                                          r"without torchrun / accelerate launch"):
        check_processes(str(checkpoint))


def test_a_lost_peer_says_what_is_kept_and_how_to_resume(monkeypatch):
    from tokentune.training.failures import lost_peer, stopped_by_peer

    gloo = RuntimeError("[../third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:29500: "
                        "Connection reset by peer\nmore lines")
    assert not lost_peer(gloo)  # one process: no peer to lose
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert lost_peer(gloo) and not lost_peer(ValueError("Connection reset by peer")) and not lost_peer(
        RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    error = stopped_by_peer(gloo, "/o/.run.partial/checkpoints/checkpoint-160", "/o/.run.partial")
    assert str(error) == ("another process of this run stopped (RuntimeError: [../third_party/gloo/gloo/transport/tcp/"
                          "pair.cc:537] Read error [127.0.0.1]:29500: Connection reset by peer); checkpoint-160 is kept "
                          "in /o/.run.partial. Fix: find why in the other processes' output (killed, out of memory, a "
                          "lost machine), then run the same command with --resume")


def test_out_of_memory_in_several_processes_names_the_batch_to_try(monkeypatch):
    import torch

    from tokentune.training.failures import out_of_memory_error

    monkeypatch.setenv("WORLD_SIZE", "2")
    error = out_of_memory_error(torch.OutOfMemoryError("CUDA out of memory."), 16, 1, True)
    assert str(error) == ("out of memory with batch size 16 per device in one of 2 processes; the batch-size finder "
                          "halves the batch in a single process only (OutOfMemoryError: CUDA out of memory.). Fix: pass "
                          "--batch-size 8 --gradient-accumulation-steps 2 (the same examples per step)")
    assert "Fix: use a smaller --max-length" in str(out_of_memory_error(MemoryError(), 1, 4, True))


@pytest.mark.parametrize("command, more", [(["evaluate", "m", "--data", "d"], ""),
                                           (["predict", "m", "--input", "x.txt"], "--workers N"),
                                           (["tune", "--data", "d", "--output", "o"], "one --storage")])
def test_commands_other_than_train_refuse_to_run_under_a_launcher(command, more, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tokentune {command[0]}: error: {command[0]} runs in one process, but WORLD_SIZE is 2 "
                          f"(started by torchrun or accelerate launch). Fix: run `tokentune {command[0]}` without the "
                          f"launcher") and more in err and "Traceback" not in err


def test_a_peer_lost_after_the_output_was_published_is_a_note_on_rank_0(monkeypatch):
    from tokentune.training import distributed, failures

    def barrier():
        raise RuntimeError("[gloo] Connection closed by peer [127.0.0.1]:3764")

    monkeypatch.setattr(distributed, "barrier", barrier)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert failures.wait_after_output() == ["another process stopped after the output was complete (RuntimeError: "
                                            "[gloo] Connection closed by peer [127.0.0.1]:3764)"]
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(RuntimeError, match="Connection closed by peer"):
        failures.wait_after_output()
