"""Where a command's time and disk writes go: start-up, reading, model, training, dev evaluation,
checkpoints, final evaluation (or evaluation), reports and writing, as a user waits for them (printed by
``tokentune train`` and ``evaluate``; ``metrics.json``'s ``"time"``). Parts are wall-clock seconds and
do not overlap: ``training`` is the Trainer's loop without the dev evaluations and checkpoints done inside
it, which have parts of their own."""
from __future__ import annotations

import os
import resource
import sys
import time
from contextlib import contextmanager

# the order parts are listed in, whatever order they were timed in
PARTS = ("start-up", "reading", "model", "training", "dev evaluation", "checkpoints", "final evaluation",
         "evaluation", "reports", "writing")


def process_age() -> float | None:
    """Seconds since this process started (Linux: /proc), or None where that is not known."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def bytes_written() -> int | None:
    """Bytes this process has sent to storage so far (Linux: /proc/self/io ``write_bytes``, what
    ``getrusage``'s blocks out count). Not ``wchar``, the bytes passed to any write call: it counts sockets
    too, and under a launcher the processes' exchanges: gloo on a CPU made a 15-step run of two processes say
    835 MB, where one process said 92 MB. Writes to a tmpfs (``/dev/shm``) reach no storage and are not counted."""
    try:
        with open("/proc/self/io", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("write_bytes:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MB: Linux's VmHWM, else ru_maxrss (bytes on macOS).

    On Linux ru_maxrss is not this program's own: it keeps the peak of the process before its exec, so a
    command started from a large process (a notebook, a bench that loaded a model) reported that process's
    memory as its own peak; VmHWM belongs to the running program alone."""
    try:
        with open("/proc/self/status", "rb") as handle:  # bytes: the Name line may be in any encoding
            for line in handle:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


class RunClock:
    """Wall-clock seconds per part of a run, bytes written and peak memory, from when it is made;
    ``startup=True`` (a command's clock): the time since the process started counts as "start-up"."""

    def __init__(self, startup: bool = False) -> None:
        self.started = time.perf_counter()
        age = process_age() if startup else None
        self.seconds: dict[str, float] = {"start-up": age} if age is not None else {}
        self._written = bytes_written()

    @contextmanager
    def part(self, name: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def inside_training(self) -> float:
        """Seconds of the parts the Trainer's loop holds (dev evaluations, checkpoints) so far."""
        return self.seconds.get("dev evaluation", 0.0) + self.seconds.get("checkpoints", 0.0)

    def summary(self) -> dict:
        """``{"seconds": {part: s, ..., "total": s}, "bytes_written": n, "peak_rss_mb": m}``."""
        parts = {name: round(self.seconds[name], 2) for name in PARTS if name in self.seconds}
        parts["total"] = round(time.perf_counter() - self.started + self.seconds.get("start-up", 0.0), 2)
        written = bytes_written()
        return {"seconds": parts,
                "bytes_written": written - self._written if written is not None and self._written is not None else None,
                "peak_rss_mb": round(peak_rss_mb(), 1)}


def describe(summary: dict) -> str:
    """One line for a person: ``time 81.2 s: start-up 4.1 s, reading 2.0 s, ...; wrote 378 MB; peak memory 1,188 MB``."""
    seconds = dict(summary["seconds"])
    total = seconds.pop("total")
    parts = ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())
    line = f"time {total:.1f} s: {parts}"
    if summary.get("bytes_written") is not None:
        line += f"; wrote {summary['bytes_written'] / 1e6:,.0f} MB"
    return line + f"; peak memory {summary['peak_rss_mb']:,.0f} MB"
