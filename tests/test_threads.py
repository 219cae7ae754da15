"""The command's thread watch: fewer threads while other processes keep the cores busy (tokentune.threads)."""
import os
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
    (0.3, 2, 2),    # a daemon's blip, or a light neighbour, moves nothing
    (1.0, 2, 1),    # another job holds a core
    (0.6, 2, 1),    # or most of one
    (1.0, 1, 1),    # and keeps it
    (0.3, 1, 1),    # not gone yet: two thresholds, no flapping between them
    (0.1, 1, 2),    # gone: every core back
    (2.0, 2, 1),    # never fewer than one
])
def test_advice_follows_the_cores_other_processes_use(others, current, expected):
    assert threads.advised_threads(others, cores=2, most=2, current=current) == expected


def test_advice_on_more_cores_and_its_bound():
    assert threads.advised_threads(2.0, cores=8, most=8, current=8) == 6
    assert threads.advised_threads(0.0, cores=8, most=4, current=4) == 4


def test_busy_seconds_reads_only_the_processes_cpus():
    ticks = os.sysconf("SC_CLK_TCK")
    # user nice system irq softirq; idle, iowait and steal are not busy
    assert threads.busy_seconds(frozenset({0, 1}), STAT) == pytest.approx((150 + 266) / ticks)
    assert threads.busy_seconds(frozenset({2}), STAT) == pytest.approx(500 / ticks)
    assert threads.busy_seconds(frozenset({0}), "") is None  # none of its CPUs: nothing to watch
    assert threads.busy_seconds(frozenset({7}), STAT) is None
    assert threads.busy_seconds(frozenset({0})) is not None  # this machine's /proc/stat


def test_measure_counts_the_others_not_the_process_itself():
    watch = threads.ThreadWatch(cpus=frozenset({0, 1}))
    watch.measure((10.0, 5.0), (12.0, 7.0), 1.0)  # all the busy time was ours
    assert watch.advice == 2
    watch.measure((12.0, 7.0), (14.0, 8.0), 1.0)  # one core's second was another process's
    assert watch.advice == 1
    watch.measure((14.0, 8.0), (15.0, 9.0), 1.0)  # the other paused: one reading is not its end
    watch.measure((15.0, 9.0), (16.0, 10.0), 1.0)
    assert watch.advice == 1
    watch.measure((16.0, 10.0), (18.0, 11.0), 1.0)  # back before the third: the count of quiet readings restarts
    watch.measure((18.0, 11.0), (19.0, 12.0), 1.0)
    watch.measure((19.0, 12.0), (20.0, 13.0), 1.0)
    assert watch.advice == 1
    watch.measure((20.0, 13.0), (21.0, 14.0), 1.0)  # the third quiet reading in a row
    assert watch.advice == 2
    watch.measure((None, 14.0), (22.0, 15.0), 1.0)  # an unreadable /proc/stat changes nothing
    assert watch.advice == 2


class Readings:
    """Readings of a machine where another process takes one core while ``busy`` is set."""

    def __init__(self):
        self.busy = threading.Event()
        self.busy.set()
        self.started = time.monotonic()

    def __call__(self):
        elapsed = time.monotonic() - self.started
        return ((2.0 if self.busy.is_set() else 1.0) * elapsed, elapsed)  # we take one core ourselves


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_the_watch_thread_lowers_and_raises_its_advice():
    readings = Readings()
    watch = threads.start_watch(interval=0.02, cpus=frozenset({0, 1}), reader=readings)
    try:
        assert watch is not None and threads.running_watch() is watch
        assert wait_for(lambda: watch.advice == 1)
        readings.busy.clear()
        assert wait_for(lambda: watch.advice == 2)
    finally:
        threads.stop_watch()
    assert not watch.running and threads.running_watch() is None


@pytest.fixture(autouse=True)
def no_watch_left():
    """No test leaves a watch running (a failed one would have later training follow its advice)."""
    yield
    threads.stop_watch()


@pytest.fixture
def advised_one(one_thread):
    """A running watch (its readings never due) that advises one thread; stopped (and torch's thread count
    restored by one_thread) after the test."""
    watch = threads.start_watch(interval=3600, cpus=frozenset({0, 1}))
    watch.advice = 1
    yield watch
    threads.stop_watch()


def test_the_computing_thread_follows_the_watch_and_gets_its_count_back(one_thread):
    import torch

    torch.set_num_threads(2)
    watch = threads.start_watch(interval=3600, cpus=frozenset({0, 1}))
    threads.follow()
    assert torch.get_num_threads() == 2 and watch.most == 2
    watch.advice = 1
    threads.follow()
    assert torch.get_num_threads() == 1
    other = []
    helper = threading.Thread(target=lambda: other.append(torch.get_num_threads()))
    watch.advice = 2
    threads.follow()
    assert torch.get_num_threads() == 2
    watch.advice = 1
    threads.follow()
    threads.stop_watch()
    assert torch.get_num_threads() == 2 and not watch.running
    helper.start()
    helper.join()
    assert other == [2]  # a thread started after the watch stopped has the whole count too
    threads.follow()  # no watch: nothing changes
    assert torch.get_num_threads() == 2


def test_a_watch_that_stopped_reading_gives_every_thread_back(one_thread):
    import torch

    calls = []

    def reader():
        calls.append(1)
        if len(calls) > 1:
            raise OSError("/proc/stat is gone")
        return (1.0, 0.0)

    torch.set_num_threads(2)
    watch = threads.start_watch(interval=0.01, cpus=frozenset({0, 1}), reader=reader)
    assert wait_for(lambda: not watch.running)
    watch.advice = 1
    threads.follow()
    assert torch.get_num_threads() == 2
    threads.stop_watch()


def test_a_reading_of_none_ends_the_watch():
    readings = iter([(1.0, 0.0), (None, 1.0)])  # /proc/stat readable, then not
    watch = threads.start_watch(interval=0.01, cpus=frozenset({0, 1}), reader=lambda: next(readings, (None, 2.0)))
    assert wait_for(lambda: not watch.running)


def test_the_command_starts_a_watch_and_stops_it_when_it_ends(monkeypatch, tmp_path):
    from tokentune.cli.main import main

    no_thread_variables(monkeypatch)
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    started = []
    real = threads.start_watch
    monkeypatch.setattr(threads, "start_watch",
                        lambda **options: started.append(real(interval=3600, cpus=frozenset({0, 1}))) or started[-1])
    missing = str(tmp_path / "missing")
    assert main(["evaluate", missing, "--data", missing]) == 2  # the command ran, and failed
    assert len(started) == 1 and started[0] is not None and not started[0].running
    assert threads.running_watch() is None
    assert not any(thread.name == "tokentune-thread-watch" for thread in threading.enumerate())


def test_the_runner_follows_before_each_batch(tiny_model, advised_one, one_thread):
    import torch

    from tokentune import Tagger

    torch.set_num_threads(2)
    Tagger.from_pretrained(tiny_model.output_dir).predict_text("Anna lives in Paris")
    assert torch.get_num_threads() == 1 and advised_one.most == 2


def test_training_follows_before_each_step(tiny_data, tiny_base_model, advised_one, one_thread, tmp_path):
    import torch
    from transformers import TrainerCallback

    import tokentune

    seen = []

    class Record(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            seen.append(torch.get_num_threads())

    torch.set_num_threads(2)
    tokentune.train(data=tiny_data, model=tiny_base_model, output=str(tmp_path / "m"), epochs=1, batch_size=8,
                    quiet=True, callbacks=[Record()])
    assert seen and set(seen) == {1}


def test_no_watch_on_one_core_and_one_at_a_time():
    assert threads.start_watch(cpus=frozenset({0})) is None
    first = threads.start_watch(interval=10, cpus=frozenset({0, 1}))
    second = threads.start_watch(interval=10, cpus=frozenset({0, 1}))
    try:
        assert not first.running and second.running
    finally:
        threads.stop_watch()
    assert not second.running


def parsed(*argv):
    from tokentune.cli.main import build_parser

    return build_parser(argv[0]).parse_args(list(argv))


def no_thread_variables(monkeypatch):
    """None of OpenMP's variables set, and each restored after the test (whatever the code sets)."""
    for name in threads.THREAD_VARIABLES:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def cores_visible() -> bool:
    """Whether a watch can run here: more than one core, each in /proc/stat."""
    cpus = frozenset(os.sched_getaffinity(0))
    return len(cpus) > 1 and threads.busy_seconds(cpus) is not None


PREDICT = ("predict", "m", "--input", "x.txt")


@pytest.mark.parametrize("argv, variable, watched, policy", [
    (PREDICT, None, True, None),
    ((*PREDICT, "--workers", "1"), None, True, None),
    (("train", "--data", "d"), None, True, None),
    (("evaluate", "m", "--data", "d"), None, True, None),
    (("tune", "--data", "d"), None, True, None),
    (("serve", "m"), None, True, None),
    (("score", "a.txt"), None, False, None),                       # computes nothing with torch
    ((*PREDICT, "--threads", "1"), None, False, "PASSIVE"),        # the user's count holds; waiting threads sleep
    ((*PREDICT, "--ray", "auto"), None, False, "PASSIVE"),         # as local Ray actors' do, inheriting it
    ((*PREDICT, "--workers", "2"), None, False, None),             # processes that see to their own
    (("tune", "--data", "d", "--workers", "2"), None, False, None),
    (PREDICT, "OMP_NUM_THREADS", False, "PASSIVE"),                # the user's count
    (PREDICT, "MKL_NUM_THREADS", False, "PASSIVE"),
    (PREDICT, "OMP_WAIT_POLICY", False, "1"),                      # the user's way of waiting: nothing set
    (PREDICT, "GOMP_SPINCOUNT", False, None),
])
def test_the_command_watches_unless_the_user_chose_the_threads(monkeypatch, argv, variable, watched, policy):
    no_thread_variables(monkeypatch)
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    monkeypatch.setattr(threads, "torch_loaded", lambda: False)  # as in the command, before torch loads
    if variable:
        monkeypatch.setenv(variable, "1")
    try:
        watch_threads(parsed(*argv))
        visible = cores_visible()
        assert (threads.running_watch() is not None) == (watched and visible)
        if watched and not visible:  # nothing to watch: threads that sleep at once
            policy = "PASSIVE"
        assert os.environ.get("OMP_WAIT_POLICY") == policy
    finally:
        threads.stop_watch()


def test_the_cpu_quota_of_the_process_cgroup_or_one_above_it(tmp_path):
    root = tmp_path / "cgroup"
    (root / "system.slice" / "job.service").mkdir(parents=True)
    (root / "cpu" / "docker" / "c1").mkdir(parents=True)
    cgroup = tmp_path / "self-cgroup"
    cgroup.write_text("0::/system.slice/job.service\n")
    assert threads.cpu_quota(str(root), str(cgroup)) is None  # no file says a limit
    (root / "cpu.max").write_text("max 100000\n")
    (root / "system.slice" / "cpu.max").write_text("150000 100000\n")  # a slice above the process's group
    assert threads.cpu_quota(str(root), str(cgroup)) == 1.5
    (root / "system.slice" / "job.service" / "cpu.max").write_text("50000 100000\n")
    assert threads.cpu_quota(str(root), str(cgroup)) == 0.5  # the smallest
    cgroup.write_text("4:cpu,cpuacct:/docker/c1\n")  # v1
    (root / "cpu" / "docker" / "c1" / "cpu.cfs_quota_us").write_text("-1\n")
    (root / "cpu" / "docker" / "c1" / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpu.max").write_text("max 100000\n")
    assert threads.cpu_quota(str(root), str(cgroup)) is None
    (root / "cpu" / "docker" / "c1" / "cpu.cfs_quota_us").write_text("200000\n")
    assert threads.cpu_quota(str(root), str(cgroup)) == 2.0
    assert threads.cpu_quota(str(tmp_path / "none"), str(tmp_path / "none")) is None


def test_where_the_watch_cannot_see_the_cores_threads_sleep_instead(monkeypatch):
    no_thread_variables(monkeypatch)
    monkeypatch.setattr(threads, "torch_loaded", lambda: False)
    monkeypatch.setattr(threads, "cpu_quota", lambda: 0.5)  # a quota under the cores: /proc/stat cannot show it
    assert threads.watch_or_sleep() is None and threads.running_watch() is None
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    no_thread_variables(monkeypatch)
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    monkeypatch.setattr(threads, "busy_seconds", lambda cpus: None)  # cores it cannot see
    assert threads.watch_or_sleep() is None and threads.running_watch() is None
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    no_thread_variables(monkeypatch)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # a count chosen: it holds, and waiting threads sleep
    assert threads.watch_or_sleep() is None and os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    no_thread_variables(monkeypatch)
    monkeypatch.setenv("GOMP_SPINCOUNT", "1000")  # how they wait chosen: nothing set
    assert threads.watch_or_sleep() is None and "OMP_WAIT_POLICY" not in os.environ


def test_an_empty_variable_is_not_a_choice(monkeypatch):
    """`OMP_NUM_THREADS=` (set, empty) chooses nothing: the command watches as without it."""
    no_thread_variables(monkeypatch)
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    monkeypatch.setattr(threads, "torch_loaded", lambda: False)
    monkeypatch.setenv("OMP_NUM_THREADS", "")
    monkeypatch.setenv("OMP_WAIT_POLICY", "")
    assert not threads.any_set(threads.THREAD_VARIABLES)
    watch = threads.watch_or_sleep()
    assert (watch is not None) == cores_visible()
    assert os.environ["OMP_WAIT_POLICY"] == ("" if watch is not None else "PASSIVE")
