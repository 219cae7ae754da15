"""Output paths that cannot be written: one located OutputError (exit 2 from the CLI), nothing half-written
left looking complete, no stray temporary files."""
from __future__ import annotations

import errno
import os
import tempfile

import pytest

from tokentune.cli.main import main
from tokentune.errors import OutputError
from tokentune.io import atomic_directory, atomic_file, atomic_write_text, writing


def _listing(root) -> set[str]:
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files}


def test_a_file_in_the_way_of_the_parent(tmp_path):
    (tmp_path / "blocker").write_text("mine")
    with pytest.raises(OutputError, match=r"cannot write .*blocker/x.txt: .*Fix:"):
        atomic_write_text(tmp_path / "blocker" / "x.txt", "data")
    assert _listing(tmp_path) == {"blocker"} and (tmp_path / "blocker").read_text() == "mine"


def test_an_existing_directory_where_a_file_is_written(tmp_path):
    (tmp_path / "out.txt").mkdir()
    with pytest.raises(OutputError, match="it is a directory"):
        atomic_write_text(tmp_path / "out.txt", "data")
    assert _listing(tmp_path) == {"out.txt"}


def test_a_full_disk_leaves_no_temporary_and_no_output(tmp_path, monkeypatch):
    real_mkstemp = tempfile.mkstemp

    def full_disk(**kwargs):  # a temporary whose writes fail as on a full disk
        fd, path = real_mkstemp(**kwargs)
        os.close(fd)
        return os.open("/dev/full", os.O_WRONLY), path

    monkeypatch.setattr(tempfile, "mkstemp", full_disk)
    with pytest.raises(OutputError, match="No space left on device"):
        with atomic_file(tmp_path / "big.jsonl") as handle:
            handle.write("x" * 100_000)
    assert _listing(tmp_path) == set()


def test_a_read_only_place(tmp_path, monkeypatch):
    def refused(**kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(OutputError, match="Permission denied"):
        atomic_write_text(tmp_path / "x.txt", "data")
    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    with pytest.raises(OutputError, match="Permission denied"):
        with atomic_directory(tmp_path / "d"):
            pass
    assert _listing(tmp_path) == set()


def test_a_failure_while_a_directory_is_filled_removes_it(tmp_path):
    with pytest.raises(OutputError, match="No space left on device"):
        with atomic_directory(tmp_path / "d") as staging:
            open(os.path.join(staging, "part"), "w").close()
            raise OSError(errno.ENOSPC, "No space left on device")
    assert _listing(tmp_path) == set()


def test_writing_converts_only_what_it_is_told():
    with pytest.raises(OutputError):
        with writing("/x", only=(errno.ENOSPC,)):
            raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(FileNotFoundError):
        with writing("/x", only=(errno.ENOSPC,)):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")


def test_cli_output_problems_are_one_line(tiny_model, tmp_path, capsys):
    (tmp_path / "dir.jsonl").mkdir()
    (tmp_path / "blocker").write_text("mine")
    for output in (tmp_path / "dir.jsonl", tmp_path / "blocker" / "x.jsonl"):
        assert main(["predict", tiny_model.output_dir, "Alice met Bob", "--output", str(output), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("tokentune predict: error: cannot write") and str(output) in err
    assert _listing(tmp_path) == {"dir.jsonl", "blocker"}
