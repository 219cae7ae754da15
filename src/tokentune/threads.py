"""How many threads the model computes on while other processes want the same cores.

The ``tokentune`` command keeps OpenMP's own wait policy (a thread that reaches a barrier spins for some
milliseconds before it sleeps): on a machine of one's own that is the fastest setting, and on a CPU with
AMX, whose bf16 products are short, by far (`train` on 2,000 sentences: 27-28 s against 37 s with threads
that sleep at once, ``OMP_WAIT_POLICY=PASSIVE``; docs/benchmarks.md). But on a shared machine spinning
threads hold the cores that the other job's threads need, and both crawl. So the command also starts a
:class:`ThreadWatch`: once a second it compares the CPU time spent on the process's cores (``/proc/stat``,
only the CPUs of its affinity) with the process's own, and where other processes keep a core busy it
advises fewer threads, and all of them again once they leave. A thread at a barrier waits for no one
when there is one thread. The computing thread takes the advice itself (:func:`follow`, called before
every training step and every forward of the torch runner), since OpenMP's thread count belongs to the
thread that sets it.

The library starts no watch in a user's process; :func:`follow` does nothing without one.
"""
from __future__ import annotations

import math
import os
import sys
import threading
import time

# /proc/stat's per-CPU columns: user nice system idle iowait irq softirq steal (guest time is in user)
BUSY_COLUMNS = (0, 1, 2, 5, 6)
# fewer threads once others use this much of a core beyond what we leave free: a daemon's blip moves nothing
DROP_MARGIN = 0.4
# more threads again only when the others' use is within this of a whole core fewer ...
RISE_MARGIN = 0.15
# ... in this many readings in a row: a neighbour's pause between two tasks is not its end (each change
# of torch's thread count also rebuilds oneDNN's kernels)
RISE_READINGS = 3

_WATCH: list = [None]  # the process's running ThreadWatch, if the command started one
# the variables with which a user chooses how OpenMP's threads wait: then tokentune sets nothing
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
# ... or how many there are: then tokentune watches nothing, and waiting threads sleep at once
COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
THREAD_VARIABLES = WAIT_VARIABLES + COUNT_VARIABLES
CGROUP_ROOT = "/sys/fs/cgroup"


def any_set(names: tuple[str, ...]) -> bool:
    """Whether the user set one of these environment variables (an empty value is not a choice)."""
    return any(os.environ.get(name) for name in names)


def affinity_cpus() -> frozenset[int]:
    """The CPUs this process may run on; none where the system does not say (not Linux)."""
    return frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()


def cpu_quota(root: str = CGROUP_ROOT, cgroup_file: str = "/proc/self/cgroup") -> float | None:
    """The cores the process's control group, or one above it, may use (a container's or systemd's CPU
    limit: cgroup v2's ``cpu.max``, v1's ``cpu.cfs_quota_us``), the smallest; None without a limit."""
    places = []
    try:
        with open(cgroup_file) as handle:
            for line in handle:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    places.append((os.path.join(root, path.lstrip("/")), ("cpu.max",)))
                elif "cpu" in controllers.split(","):
                    places.append((os.path.join(root, "cpu", path.lstrip("/")), ("cpu.cfs_quota_us", "cpu.cfs_period_us")))
    except (OSError, ValueError):
        pass
    # each group's path leads up to a root, which is read on the way; without /proc/self/cgroup, the roots
    places = places or [(root, ("cpu.max",)), (os.path.join(root, "cpu"), ("cpu.cfs_quota_us", "cpu.cfs_period_us"))]
    stops = (os.path.normpath(root), os.path.normpath(os.path.join(root, "cpu")))
    limits = []
    for folder, names in places:
        while True:
            limits.append(_quota_in(folder, names))
            if os.path.normpath(folder) in stops or os.path.dirname(folder) == folder:
                break
            folder = os.path.dirname(folder)
    limits = [limit for limit in limits if limit is not None]
    return min(limits) if limits else None


def _quota_in(folder: str, names: tuple[str, ...]) -> float | None:
    """The quota in one control group's files ("QUOTA PERIOD" in microseconds), None without one."""
    try:
        parts = []
        for name in names:
            with open(os.path.join(folder, name)) as handle:
                parts.append(handle.read().strip())
    except OSError:
        return None
    quota, _, period = " ".join(parts).partition(" ")
    if quota.lstrip("-").isdigit() and period.strip().isdigit() and int(quota) > 0 and int(period) > 0:
        return int(quota) / int(period)
    return None


def torch_loaded() -> bool:
    return "torch" in sys.modules


def sleep_at_barriers() -> None:
    """OpenMP's threads sleep at once at a barrier (``OMP_WAIT_POLICY=PASSIVE``), unless the user chose how
    they wait (:data:`WAIT_VARIABLES`); only before torch loads (OpenMP reads it then), and so never in a
    process that has it. What ``--workers N`` processes do: their shares fill the cores, so spinning gains
    nothing alone, and a watch would count its siblings as others."""
    if not torch_loaded() and not any_set(WAIT_VARIABLES):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def watch_or_sleep(*, count_chosen: bool = False) -> ThreadWatch | None:
    """What a process that tokentune runs for a job does about its threads, before torch loads.

    Nothing where the user chose how threads wait (:data:`WAIT_VARIABLES`). Where the user chose only how
    many (:data:`COUNT_VARIABLES`, or ``count_chosen``: ``--threads``), that count holds and waiting threads
    sleep at once, the safe setting on a machine that may be shared. Else a :class:`ThreadWatch` with
    spinning threads, where the watch can see the cores; where it cannot (a CPU quota, whose throttling
    /proc/stat does not show; no /proc/stat or none of the process's CPUs in it; one core), threads that
    sleep at once."""
    if any_set(WAIT_VARIABLES):
        return None
    watch = None
    if not count_chosen and not any_set(COUNT_VARIABLES):
        quota = cpu_quota()
        if quota is None or quota >= len(affinity_cpus()):
            watch = start_watch()
    if watch is None:
        sleep_at_barriers()
    return watch


def busy_seconds(cpus: frozenset[int], stat_text: str | None = None) -> float | None:
    """CPU seconds spent so far, by every process, on ``cpus`` (/proc/stat); None where there is no such
    file or it has none of those CPUs (a container whose /proc renumbers them)."""
    if stat_text is None:
        try:
            with open("/proc/stat") as handle:
                stat_text = handle.read()
        except OSError:
            return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, found = 0, False
    for line in stat_text.splitlines():
        name, _, rest = line.partition(" ")
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            values = rest.split()
            total += sum(int(values[i]) for i in BUSY_COLUMNS if i < len(values))
            found = True
    return total / ticks if found else None


def own_seconds() -> float:
    """CPU seconds this process has spent, all its threads together."""
    times = os.times()
    return times.user + times.system


def advised_threads(others: float, cores: int, most: int, current: int) -> int:
    """Threads to compute on while other processes use ``others`` cores of ``cores``, at most ``most``.

    A core the others keep busy is a core fewer for us. Two thresholds, so the count does not flap around
    one: it falls when the others take more than :data:`DROP_MARGIN` of the cores ``current`` threads
    need, and rises when they leave all but :data:`RISE_MARGIN` of another core free."""
    free = cores - others
    if free < current - DROP_MARGIN:
        current = math.floor(free + DROP_MARGIN)
    elif free > current + 1 - RISE_MARGIN:
        current = math.floor(free + RISE_MARGIN)
    return max(1, min(most, current))


class ThreadWatch:
    """A daemon thread that measures, every ``interval`` seconds, how many cores other processes use and
    keeps :attr:`advice`: the threads to compute on, at most one per core of the process's affinity.
    :attr:`most`: the count the computing thread had when it first followed (:func:`follow`), the most it
    is given and what it gets back when the watch stops.

    ``reader`` (tests): a callable returning (busy seconds of the cores, own CPU seconds) instead of
    /proc/stat and os.times."""

    def __init__(self, *, interval: float = 1.0, cpus: frozenset[int] | None = None, reader=None):
        self.cpus = cpus if cpus is not None else affinity_cpus()
        self.advice = len(self.cpus)
        self.most: int | None = None
        self.interval = interval
        self._rising = 0  # readings in a row that advised more threads
        self.reader = reader or (lambda: (busy_seconds(self.cpus), own_seconds()))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tokentune-thread-watch", daemon=True)

    def start(self) -> "ThreadWatch":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def measure(self, before: tuple, after: tuple, seconds: float) -> None:
        """Update :attr:`advice` from two readings ``seconds`` apart."""
        if before[0] is None or after[0] is None or seconds <= 0:
            return
        others = ((after[0] - before[0]) - (after[1] - before[1])) / seconds
        advice = advised_threads(max(0.0, others), len(self.cpus), len(self.cpus), self.advice)
        self._rising = self._rising + 1 if advice > self.advice else 0
        if advice < self.advice or self._rising >= RISE_READINGS:
            self.advice, self._rising = advice, 0

    def _run(self) -> None:
        try:
            before, then = self.reader(), time.monotonic()
            while not self._stop.wait(self.interval):
                after, now = self.reader(), time.monotonic()
                if after[0] is None:  # /proc/stat unreadable now: the watch ends, follow() gives every thread back
                    return
                self.measure(before, after, now - then)
                before, then = after, now
        except Exception:  # noqa: BLE001 - a watch that cannot read ends; follow() then gives every thread back
            return


def start_watch(**options) -> ThreadWatch | None:
    """Start the process's watch (the command's, never the library's on its own; one at a time). None
    where there is nothing to watch: one core (or none known: not Linux), or no /proc/stat. Torch need
    not be loaded yet."""
    stop_watch()
    watch = ThreadWatch(**options)
    if len(watch.cpus) < 2 or busy_seconds(watch.cpus) is None:
        return None
    _WATCH[0] = watch.start()
    return watch


def running_watch() -> ThreadWatch | None:
    """The process's watch, if one runs."""
    return _WATCH[0]


def stop_watch() -> None:
    """Stop the process's watch, if one runs, and give the thread that followed it its count back."""
    watch, _WATCH[0] = _WATCH[0], None
    if watch is None:
        return
    watch.stop()
    torch = sys.modules.get("torch")
    if torch is not None and watch.most is not None:  # also torch's default for threads started later
        torch.set_num_threads(watch.most)


def follow() -> None:
    """On the computing thread: take the watch's advice as torch's thread count, if a watch runs (never
    more than the thread had when it first followed)."""
    watch = _WATCH[0]
    torch = sys.modules.get("torch")
    if watch is None or torch is None:
        return
    now = torch.get_num_threads()
    if watch.most is None:
        watch.most = now
    wanted = min(watch.advice, watch.most) if watch.running else watch.most
    if now != wanted:
        torch.set_num_threads(wanted)
