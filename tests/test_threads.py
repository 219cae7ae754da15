"""The command's thread watch: fewer threads while other processes keep the cores busy (tokentune.threads)."""
import argparse
import threading
import time

import pytest

from tokentune import threads
from tokentune.cli.main import watch_threads

STAT = """cpu  900 0 300 5000 10 0 0 7 0 0
cpu0 100 0 50 2000 5 0 0 3 0 0
cpu1 200 1 60 2000 5 2 3 4 0 0
cpu2 400 0 100 1000 0 0 0 0 0 0
intr 12345
"""


@pytest.mark.parametrize("others, current, expected", [
    (0.0, 2, 2),    # alone: every core
    (0.05, 2, 2),   # a daemon's blip moves nothing
    (1.0, 2, 1),    # another job holds a core
    (0.6, 2, 1),    # or most of one
    (1.0, 1, 1),    # and keeps it
    (0.3, 1, 1),    # not yet gone: no flapping around the margin
    (0.1, 1, 2),    # gone: every core back
    (2.0, 2, 1),    # never fewer than one
])
def test_advice_follows_the_cores_other_processes_use(others, current, expected):
    assert threads.advised_threads(others, cores=2, most=2, current=current) == expected


def test_advice_on_more_cores_and_its_bound():
    assert threads.advised_threads(2.0, cores=8, most=8, current=8) == 6
    assert threads.advised_threads(0.0, cores=8, most=4, current=4) == 4


def test_busy_seconds_reads_only_the_processes_cpus():
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    # user nice system irq softirq; idle, iowait and steal are not busy
    assert threads.busy_seconds(frozenset({0, 1}), STAT) == pytest.approx((150 + 266) / ticks)
    assert threads.busy_seconds(frozenset({2}), STAT) == pytest.approx(500 / ticks)
    assert threads.busy_seconds(frozenset({0}), "") == 0
    assert threads.busy_seconds(frozenset({0})) is not None  # this machine's /proc/stat


def test_measure_counts_the_others_not_the_process_itself():
    watch = threads.ThreadWatch(cpus=frozenset({0, 1}))
    watch.measure((10.0, 5.0), (12.0, 7.0), 1.0)  # all the busy time was ours
    assert watch.advice == 2
    watch.measure((12.0, 7.0), (14.0, 8.0), 1.0)  # one core's second was another process's
    assert watch.advice == 1
    watch.measure((14.0, 8.0), (15.0, 9.0), 1.0)
    assert watch.advice == 2
    watch.measure((None, 9.0), (16.0, 10.0), 1.0)  # an unreadable /proc/stat changes nothing
    assert watch.advice == 2


class Readings:
    """Readings of a machine where another process takes one core while ``busy`` is set."""

    def __init__(self):
        self.busy = threading.Event()
        self.busy.set()
        self.clock, self.started = 0.0, time.monotonic()

    def __call__(self):
        elapsed = time.monotonic() - self.started
        return ((2.0 if self.busy.is_set() else 1.0) * elapsed, elapsed)  # we take one core ourselves


def wait_for(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_the_computing_thread_follows_the_watch_and_gets_its_count_back():
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    readings = Readings()
    watch = threads.start_watch(interval=0.02, cpus=frozenset({0, 1}), reader=readings)
    try:
        assert watch is not None and wait_for(lambda: watch.advice == 1)
        threads.follow()
        assert torch.get_num_threads() == 1 and watch.most == 2
        readings.busy.clear()
        assert wait_for(lambda: watch.advice == 2)
        threads.follow()
        assert torch.get_num_threads() == 2
        readings.busy.set()
        assert wait_for(lambda: watch.advice == 1)
        threads.follow()
        assert torch.get_num_threads() == 1
    finally:
        threads.stop_watch()
    assert torch.get_num_threads() == 2 and not watch.running
    threads.follow()  # no watch: nothing changes
    assert torch.get_num_threads() == 2
    torch.set_num_threads(before)


def test_no_watch_on_one_core_and_one_at_a_time():
    assert threads.start_watch(cpus=frozenset({0})) is None
    first = threads.start_watch(interval=10, cpus=frozenset({0, 1}))
    second = threads.start_watch(interval=10, cpus=frozenset({0, 1}))
    try:
        assert not first.running and second.running
    finally:
        threads.stop_watch()
    assert not second.running


def arguments(command="predict", **options):
    return argparse.Namespace(command=command, **{"threads": None, "workers": None, "ray": None, **options})


@pytest.mark.parametrize("args, variable, watched", [
    (arguments(), None, True),
    (arguments("train"), None, True),
    (arguments("score"), None, False),            # computes nothing with torch
    (arguments(threads=1), None, False),          # the user's count
    (arguments(workers=2), None, False),          # processes with their own share
    (arguments(ray="auto"), None, False),
    (arguments(), "OMP_NUM_THREADS", False),      # the user's OpenMP settings
    (arguments(), "OMP_WAIT_POLICY", False),
    (arguments(), "GOMP_SPINCOUNT", False),
])
def test_the_command_watches_unless_the_user_chose_the_threads(monkeypatch, args, variable, watched):
    import os

    for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        monkeypatch.delenv(name, raising=False)
    if variable:
        monkeypatch.setenv(variable, "1")
    try:
        watch_threads(args)
        assert (threads.running_watch() is not None) == (watched and len(os.sched_getaffinity(0)) > 1)
    finally:
        threads.stop_watch()
