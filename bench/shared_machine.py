"""Thread settings on a shared machine: `tokentune train` alone, and two at once on the same cores.

Two identical training runs (the seed's regime, shortened: 200 training and 200 dev sentences, 3 epochs,
evaluation every 10 steps) start together, so each is "one other torch job" for the other, under:

* OpenMP's own default (torch's GNU OpenMP: a thread that reaches a barrier spins about 300,000 times,
  some milliseconds, before it sleeps; emulated with ``GOMP_SPINCOUNT=300000``, which libgomp takes over
  the wait policy, since the tokentune command now sets the policy itself);
* ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once at a barrier, giving the core to the other job;
  what the tokentune command sets unless the variable is set already);
* ``OMP_NUM_THREADS=1`` (one thread per run);
* and each setting alone, for what it costs when the machine is not shared.

Each row: wall seconds of each run (whole process) and their mean. Run alone otherwise (the lock):
``flock /tmp/tokentune-cpu.lock .venv/bin/python bench/shared_machine.py``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from small_data_tune import write_slice

BIN = os.path.dirname(sys.executable)
SETTINGS = {
    "OpenMP's default": {"GOMP_SPINCOUNT": "300000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}


def runs(data: str, work: str, name: str, env: dict, count: int, extra: list[str]) -> list[float]:
    """Wall seconds of ``count`` identical `tokentune train` processes started together."""
    processes = []
    for index in range(count):
        output = os.path.join(work, f"{name.split('=')[0].split()[0]}-{count}-{index}")
        command = [os.path.join(BIN, "tokentune"), "train", "--data", data, "--output", output, "--overwrite",
                   "--quiet", "--epochs", "3", "--eval-steps", "10", *extra]
        log = open(output + ".log", "w")
        processes.append((time.perf_counter(), subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                                 env={**os.environ, **env}), log))
    seconds = []
    for started, process, log in processes:
        if process.wait() != 0:
            raise SystemExit(f"a run failed: see {log.name}")
        seconds.append(time.perf_counter() - started)
        log.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `tokentune train` flags")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tokentune-shared-")
    data = write_slice(os.path.join(work, "data"), 42, 200)
    print("| setting | alone | two at once: each run | two at once: mean | slowdown |\n|---|---:|---|---:|---:|")
    for name, env in SETTINGS.items():
        alone = runs(data, work, name, env, 1, args.extra)[0]
        shared = runs(data, work, name, env, 2, args.extra)
        mean = sum(shared) / len(shared)
        print(f"| {name} | {alone:.1f} s | {', '.join(f'{s:.1f} s' for s in shared)} | {mean:.1f} s | "
              f"{mean / alone:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
