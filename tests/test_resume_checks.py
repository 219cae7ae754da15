"""--resume from a damaged checkpoint: a ModelError naming the checkpoint, found before the Trainer reads
it (nothing unpickled), never a traceback. A half-written newest checkpoint is still skipped."""
from __future__ import annotations

import json
import os

import pytest

from tokentune.errors import ModelError
from tokentune.training.checkpoints import check_checkpoint, last_checkpoint, skipped_checkpoints, trained_epochs


def _checkpoint(folder, step: int, epoch: float = 0.5):
    """A checkpoint as the Trainer writes it, with real (tiny) files."""
    import torch
    from safetensors.torch import save_file

    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    save_file({"classifier.weight": torch.zeros(3, 4)}, str(path / "model.safetensors"))
    torch.save({"state": {}, "param_groups": [{"lr": 1e-3, "params": [0]}]}, str(path / "optimizer.pt"))
    torch.save({"last_epoch": step}, str(path / "scheduler.pt"))
    torch.save({"python": None, "cpu": torch.zeros(2, dtype=torch.uint8)}, str(path / "rng_state.pth"))
    (path / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": step, "log_history": []}))
    return path


def test_a_sound_checkpoint_passes(tmp_path):
    path = _checkpoint(tmp_path, 10, epoch=0.75)
    assert check_checkpoint(str(path))["global_step"] == 10
    assert trained_epochs(str(path)) == 0.75
    assert trained_epochs(None) == 0.0


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
def test_truncated_torch_state(tmp_path, name, monkeypatch):
    import pickle

    import torch

    path = _checkpoint(tmp_path, 10)
    data = (path / name).read_bytes()
    (path / name).write_bytes(data[: len(data) // 2])

    def no_unpickling(*args, **kwargs):
        raise AssertionError("unpickled")

    monkeypatch.setattr(torch, "load", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    with pytest.raises(ModelError, match=rf"--resume: checkpoint .*checkpoint-10 is damaged: {name} is truncated or "
                                         rf"not a torch file .*Fix: delete .*checkpoint-10 .*or train from the start: "
                                         rf"--overwrite in place of --resume"):
        trained_epochs(str(path))


def test_garbage_weights_and_foreign_archives(tmp_path):
    import zipfile

    path = _checkpoint(tmp_path, 10)
    (path / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="checkpoint-10 is damaged: .*model.safetensors is not a safetensors file"):
        check_checkpoint(str(path))
    path = _checkpoint(tmp_path, 20)
    with zipfile.ZipFile(path / "optimizer.pt", "w") as archive:
        archive.writestr("readme.txt", "not torch")
    with pytest.raises(ModelError, match="optimizer.pt is a zip archive but not one written by torch.save"):
        check_checkpoint(str(path))


@pytest.mark.parametrize("state", ["{garbage", "[1, 2]", '{"epoch": "half", "global_step": 3}', '{"weights": 1}'])
def test_garbage_trainer_state(tmp_path, state):
    path = _checkpoint(tmp_path, 10)
    (path / "trainer_state.json").write_text(state)
    with pytest.raises(ModelError, match="checkpoint-10 is damaged: trainer_state.json"):
        check_checkpoint(str(path))


def test_missing_files(tmp_path):
    path = _checkpoint(tmp_path, 10)
    (path / "optimizer.pt").unlink()
    (path / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="checkpoint-10 is damaged: model.safetensors, optimizer.pt missing"):
        check_checkpoint(str(path))


def test_half_written_newest_is_skipped_and_said(tmp_path):
    _checkpoint(tmp_path, 5)
    newest = _checkpoint(tmp_path, 10)
    (newest / "trainer_state.json").write_text('{"epoch": 0.')  # killed while the Trainer wrote it
    assert last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-5")
    assert skipped_checkpoints(str(tmp_path)) == [
        "checkpoint-10 (no readable trainer_state.json: its save was interrupted)"]


def test_unreadable_state_in_an_older_checkpoint_is_damage(tmp_path):
    """Only the newest save can be interrupted: an older checkpoint's garbage state is not skipped."""
    older = _checkpoint(tmp_path, 5)
    (older / "trainer_state.json").write_text("\x00\x00garbage")
    newest = _checkpoint(tmp_path, 10)
    (newest / "trainer_state.json").unlink()  # killed before the state was written
    with pytest.raises(ModelError, match=r"checkpoint-5 is damaged: trainer_state.json .*train from the start: "
                                         r"--overwrite in place"):
        last_checkpoint(str(tmp_path))


def test_train_resume_from_a_damaged_checkpoint(tiny_data, tiny_base_model, tmp_path):
    """Through train(): the damage is found before the Trainer starts, and the message names it."""
    from tokentune.config import TrainConfig
    from tokentune.training import train

    settings = {"data": tiny_data, "model": tiny_base_model, "output": str(tmp_path / "o"), "epochs": 1,
                "batch_size": 16, "max_train_samples": 32, "quiet": True}
    staging = tmp_path / ".o.partial"
    path = _checkpoint(staging / "checkpoints", 2)
    (path / "optimizer.pt").write_bytes(b"PK\x03\x04 cut short")
    (staging / "tokentune_config.json").write_text(json.dumps(TrainConfig(**settings).to_dict()))
    with pytest.raises(ModelError) as raised:
        train(**settings, resume=True)
    message = str(raised.value)
    assert "\n" not in message and str(path) in message and "optimizer.pt is truncated" in message
    assert os.path.isdir(path), "the checkpoint is left for the user to look at"
