"""Thread settings on a shared machine: `tokentune train` alone, and two at once on the same cores.

Two identical training runs (the seed's regime, shortened: 200 training and 200 dev sentences, 3 epochs,
evaluation every 10 steps) start together, so each is "one other torch job" for the other, under:

* the command's default: OpenMP's own wait policy, with the command's thread watch
  (``tokentune.threads``: fewer threads while other processes keep the cores busy);
* OpenMP's own default unwatched (torch's GNU OpenMP: a thread that reaches a barrier spins about
  300,000 times, some milliseconds, before it sleeps; ``GOMP_SPINCOUNT=300000``, which libgomp takes
  over the wait policy, and with which the command, as with any thread variable, watches nothing);
* ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once at a barrier, giving the core to the other job;
  the command's default before the watch);
* ``OMP_NUM_THREADS=1`` (one thread per run);
* and each setting alone, for what it costs when the machine is not shared.

Each row: wall seconds of each run (whole process) and their mean. ``--beside``: instead of a second
training, each setting's run starts beside "one other torch job" that knows nothing of tokentune (a loop of
BERT-sized layers on all cores with OpenMP's defaults, as a hand-written script runs), and the row gives
that job's rate too. Run alone otherwise (the lock):
``flock /tmp/tokentune-cpu.lock .venv/bin/python bench/shared_machine.py [--beside]``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time

from small_data_tune import write_slice
from tokentune.threads import THREAD_VARIABLES

BIN = os.path.dirname(sys.executable)
SETTINGS = {
    "the watch (the command's default)": {},
    "OpenMP's default": {"GOMP_SPINCOUNT": "300000"},
    "OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
    "OMP_NUM_THREADS=1": {"OMP_NUM_THREADS": "1"},
}


OTHER_JOB = """
import sys, time, torch
x, w1, w2 = torch.randn(512, 384), torch.randn(1536, 384), torch.randn(384, 1536)
steps, started = 0, time.perf_counter()
while True:
    y = torch.nn.functional.linear(torch.nn.functional.gelu(torch.nn.functional.linear(x, w1)), w2)
    x = torch.layer_norm(x + y, (384,))
    steps += 1
    if steps % 50 == 0:
        print(steps / (time.perf_counter() - started), flush=True)
"""


def environment(env: dict) -> dict:
    """This process's environment with ``env``; OpenMP's thread variables only where ``env`` names them
    (with none, the tokentune command watches its threads)."""
    return {**{k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}, **env}


def runs(data: str, work: str, name: str, env: dict, count: int, extra: list[str]) -> list[float]:
    """Wall seconds of ``count`` identical `tokentune train` processes started together."""
    processes = []
    for index in range(count):
        output = os.path.join(work, f"{name.split('=')[0].split()[0]}-{count}-{index}")
        command = [os.path.join(BIN, "tokentune"), "train", "--data", data, "--output", output, "--overwrite",
                   "--quiet", "--epochs", "3", "--eval-steps", "10", *extra]
        log = open(output + ".log", "w")
        processes.append((time.perf_counter(), subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                                 env=environment(env)), log))
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
    parser.add_argument("--beside", action="store_true", help="beside a torch job that is not tokentune")
    parser.add_argument("--only", nargs="+", metavar="WORD", help="only the settings whose name has one of these")
    args = parser.parse_args()
    settings = {name: env for name, env in SETTINGS.items() if not args.only or any(word in name for word in args.only)}
    if not settings:
        parser.error(f"--only {' '.join(args.only)} names none of the settings: {', '.join(SETTINGS)}")
    work = tempfile.mkdtemp(prefix="tokentune-shared-")
    data = write_slice(os.path.join(work, "data"), 42, 200)
    if args.beside:
        return beside_other_job(settings, data, work, args.extra)
    print("| setting | alone | two at once: each run | two at once: mean | slowdown |\n|---|---:|---|---:|---:|")
    for name, env in settings.items():
        alone = runs(data, work, name, env, 1, args.extra)[0]
        shared = runs(data, work, name, env, 2, args.extra)
        mean = sum(shared) / len(shared)
        print(f"| {name} | {alone:.1f} s | {', '.join(f'{s:.1f} s' for s in shared)} | {mean:.1f} s | "
              f"{mean / alone:.2f}x |", flush=True)


def beside_other_job(settings: dict, data: str, work: str, extra: list[str]) -> None:
    """Each setting's training alone, then beside :data:`OTHER_JOB`, with the other job's steps/s."""
    with other_job() as alone_rate:
        time.sleep(20.0)
    print(f"other job alone: {alone_rate[0]:.1f} steps/s\n")
    print("| setting | alone | beside the other job | slowdown | other job's rate meanwhile |\n|---|---:|---:|---:|---:|")
    for name, env in settings.items():
        alone = runs(data, work, name, env, 1, extra)[0]
        with other_job() as rate:
            shared = runs(data, work, name, env, 1, extra)[0]
        print(f"| {name} | {alone:.1f} s | {shared:.1f} s | {shared / alone:.2f}x | "
              f"{rate[0]:.1f} steps/s ({rate[0] / alone_rate[0]:.0%} of alone) |", flush=True)


@contextlib.contextmanager
def other_job():
    """:data:`OTHER_JOB` running (OpenMP's defaults: it spins) for the block; the list yielded then holds
    its steps/s over that time: its mean rate since it started, the last it printed (NaN if none)."""
    rate: list[float] = []
    other = subprocess.Popen([sys.executable, "-c", OTHER_JOB], stdout=subprocess.PIPE, text=True,
                             env=environment({}))
    try:
        yield rate
    finally:
        other.terminate()
        printed = other.communicate()[0].split()
        rate.append(float(printed[-1]) if printed else float("nan"))


if __name__ == "__main__":
    main()
