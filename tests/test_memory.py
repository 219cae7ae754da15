"""Freed memory kept in the process (memory.py): what the setting does, and the processes that make it."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tokentune import memory
from tokentune.inference import parallel, ray_batch

# a child allocates, touches and frees a 96 MB block (above glibc's largest default mmap threshold, 32 MB), then
# does it again; it prints the page faults of the second round
ROUNDS = """
import resource, sys
from tokentune.memory import reuse_freed_memory
if sys.argv[1] == "kept":
    assert reuse_freed_memory()
import numpy as np
np.ones(96 << 18, dtype=np.float32)  # 96 MB, freed at once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
np.ones(96 << 18, dtype=np.float32)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _second_round_faults(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_block_is_reused_instead_of_faulted_in_again():
    afresh = _second_round_faults("default")
    assert afresh >= (96 << 20) // (2 << 20)  # mapped afresh: a fault a page at least, even with 2 MB huge pages
    assert _second_round_faults("kept") <= afresh // 4  # the same heap memory again


def _recorder(monkeypatch) -> list:
    """The calls of reuse_freed_memory (not made); libraries' verbosity left as it is in this process."""
    from tokentune import quiet

    calls = []
    monkeypatch.setattr(memory, "reuse_freed_memory", lambda: calls.append("kept") or True)
    monkeypatch.setattr(quiet, "quiet_transformers", lambda **options: None)
    return calls


def test_predict_workers_keep_freed_memory(monkeypatch):
    """A ``predict --workers`` process is the command's own: it keeps freed memory as the command does."""
    import signal

    import torch

    calls = _recorder(monkeypatch)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # the worker ignores Ctrl-C; this process must not
    monkeypatch.setattr(parallel, "_STATE", {})
    parallel._start_worker({"backend": "torch"}, torch.get_num_threads(), ready=None)
    assert calls == ["kept"]


def test_ray_actors_keep_freed_memory_but_not_in_the_driver(monkeypatch):
    """An actor's process is tokentune's own; an actor run inside the driver (older Ray's local mode) is not."""
    import os

    calls = _recorder(monkeypatch)
    loaded = object()
    monkeypatch.setattr(ray_batch, "load_tagger", lambda settings: loaded)
    options = {"column": "text", "kind": "text", "where": "input", "threads": 1}
    assert ray_batch.TaggerActor({"backend": "onnx"}, driver=os.getpid() + 1, **options)._load() is loaded
    assert calls == ["kept"]
    ray_batch.TaggerActor({"backend": "onnx"}, driver=os.getpid(), **options)._load()
    assert calls == ["kept"]


def test_the_library_and_main_leave_the_callers_process_alone(monkeypatch, tiny_model):
    """The rule: only processes tokentune runs for a job keep freed memory, never a user's own process:
    not a Tagger loaded from Python, not main() called from Python; the console script does."""
    import gc

    from tokentune.cli import main as cli
    from tokentune.inference import Tagger

    calls = _recorder(monkeypatch)
    Tagger.from_pretrained(tiny_model.output_dir).predict_text("Alice visited Paris .")
    assert cli.main(["--version"]) == 0 and calls == []
    monkeypatch.setattr(cli, "reuse_freed_memory", memory.reuse_freed_memory)  # the recorder, as cli imported it
    monkeypatch.setattr(cli, "main", lambda argv=None: 0)
    monkeypatch.setattr(gc, "freeze", lambda: None)  # console_main's last act: not in this test process
    assert cli.console_main() == 0 and calls == ["kept"]


# a child keeps freed memory (or not), frees a 96 MB block, then asks for it to be given back; prints whether it
# was and the resident memory it then holds
GIVE_BACK = """
import sys
from tokentune.memory import give_back_kept_memory, reuse_freed_memory
if sys.argv[1] == "kept":
    assert reuse_freed_memory()
import numpy as np
np.ones(96 << 18, dtype=np.float32)  # 96 MB, freed at once
given = give_back_kept_memory()
rss = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS")][0] // 1024
print(given, rss)
"""


@pytest.mark.skipif(__import__("platform").libc_ver()[0] != "glibc", reason="glibc's mallopt and malloc_trim")
def test_kept_memory_is_given_back_after_training_only_where_it_was_kept():
    """After training, a command that keeps freed memory hands what is free back (the final evaluation and
    reports then do not sit on the steps' freed buffers); a process that keeps none is left alone."""
    runs = {mode: subprocess.run([sys.executable, "-c", GIVE_BACK, mode], capture_output=True, text=True,
                                 check=True).stdout.split() for mode in ("kept", "default")}
    assert runs["kept"][0] == "True" and runs["default"][0] == "False"
    assert int(runs["kept"][1]) < int(runs["default"][1]) + 48  # the freed 96 MB is not resident any more


def test_a_finished_runs_optimizer_moments_are_released():
    import torch

    from tokentune.memory import release_moments

    weight = torch.nn.Parameter(torch.ones(4))
    optimizer = torch.optim.AdamW([weight], lr=0.1)
    weight.sum().backward()
    optimizer.step()
    assert optimizer.state[weight]["exp_avg"].numel() == 4

    class Wrapped:  # as accelerate wraps a torch optimizer
        def __init__(self, inner):
            self.optimizer = inner

    release_moments(Wrapped(optimizer))
    assert not optimizer.state
    release_moments(None)  # none built (sharded engines keep their own): nothing to do
