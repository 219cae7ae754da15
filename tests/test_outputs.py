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


# the command as installed: console_main, whose SIGTERM handler this test is about
COMMAND = "import sys; from tokentune.cli.main import console_main; sys.exit(console_main())"


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_while_predicting_leaves_no_output_and_no_temporary(tiny_model, tmp_path, workers):
    """kill / timeout / a scheduler's SIGTERM stops predict as Ctrl-C does (one line, then it ends by the
    signal), and its half-written output goes with it: no file under the output's name, no hidden temporary."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out" / "tags.jsonl"
    process = subprocess.Popen([sys.executable, "-c", COMMAND, "predict", tiny_model.output_dir, "--output", str(out),
                                "--workers", workers, "--quiet"], stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdin.write("Alice met Bob in Paris.\n" * 50)
    process.stdin.flush()  # and kept open: predict waits for more input with its output begun
    deadline = time.monotonic() + 240
    while not (out.parent.exists() and os.listdir(out.parent)):
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == -signal.SIGTERM, err  # ended by the signal, after clean-up
    assert err == "tokentune predict: terminated\n"
    assert os.listdir(out.parent) == []


def test_a_pipe_a_device_and_a_link_are_written_where_they_point(tiny_model, tmp_path):
    """A named pipe is streamed into (a rename would replace it with a file the reader never sees),
    /dev/null stays a device, and a symbolic link stays a link to the file that gets the output."""
    import stat
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(open(fifo).read()))
    reader.start()
    assert main(["predict", tiny_model.output_dir, "Alice met Bob", "--output", str(fifo), "--quiet"]) == 0
    reader.join(timeout=60)
    assert received and received[0].startswith('{"text": "Alice met Bob"')
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)

    assert main(["predict", tiny_model.output_dir, "Alice met Bob", "--output", os.devnull, "--quiet"]) == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)

    target, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    target.write_text("old\n")
    link.symlink_to(target)
    assert main(["predict", tiny_model.output_dir, "Alice met Bob", "--output", str(link), "--quiet"]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().startswith('{"text": "Alice met Bob"')
    assert sorted(os.listdir(tmp_path)) == ["fifo", "link.jsonl", "real.jsonl"]


def test_a_write_error_on_a_device_is_one_line(tiny_model, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    assert main(["predict", tiny_model.output_dir, "Alice met Bob", "--output", "/dev/full", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == "tokentune predict: error: cannot write /dev/full: No space left on device. Fix: choose another " \
                  "output path, or free space / fix the permissions there\n"
    import stat

    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def _someone_elses_folder(path):
    (path / "sub").mkdir(parents=True)
    (path / "thesis.tex").write_text("three years of work")
    return {"sub", "thesis.tex"}


def test_overwrite_never_deletes_a_folder_that_is_not_an_earlier_output(tiny_model, tiny_data, tmp_path, capsys):
    """--overwrite (and convert's replacement of a brat folder) replaces an earlier output of the same
    command, or an empty folder: a folder holding anything else is refused, and left as it was."""
    from tokentune.errors import ConfigError
    from tokentune.export import export_model
    from tokentune.training import train

    folder = tmp_path / "mine"
    kept = _someone_elses_folder(folder)
    with pytest.raises(ConfigError, match=r"holds files that are not an earlier output of this command \(sub, "
                                          r"thesis\.tex\); replacing it would delete them"):
        train(data=tiny_data, output=str(folder), overwrite=True, epochs=1, max_train_samples=16, quiet=True)
    with pytest.raises(ConfigError, match=r"not an earlier output of this command"):
        export_model(tiny_model.output_dir, str(folder), overwrite=True)
    assert main(["convert", os.path.join(tiny_data, "dev.txt"), str(folder), "--to", "brat", "--overwrite"]) == 2
    assert "replacing it would delete them" in capsys.readouterr().err
    assert set(os.listdir(folder)) == kept and (folder / "thesis.tex").read_text() == "three years of work"

    brat = tmp_path / "brat"
    assert main(["convert", os.path.join(tiny_data, "dev.txt"), str(brat), "--to", "brat"]) == 0
    again = ["convert", os.path.join(tiny_data, "train.txt"), str(brat), "--to", "brat", "--overwrite"]
    assert main(again) == 0, "an earlier one"
    (tmp_path / "empty").mkdir()
    export_model(tiny_model.output_dir, str(tmp_path / "empty"), overwrite=True)
    export_model(tiny_model.output_dir, str(tmp_path / "empty"), overwrite=True)  # its own earlier export
    assert (tmp_path / "empty" / "onnx_export.json").exists()
