"""Load test of `tokentune serve` on loopback: throughput and latency with and without micro-batching.

    flock /tmp/tokentune-cpu.lock .venv/bin/python bench/serve_load.py MODEL_DIR --seconds 20 --clients 32
    ... bench/serve_load.py EXPORT_DIR --serve-flags "--quantize int8"   # the int8 ONNX file

For each mode it starts a real server (`tokentune serve MODEL_DIR --port 0 ...`) in a subprocess,
warms it up, then runs CLIENTS concurrent clients that each send one text per request, back to
back, until SECONDS have passed or MAX_REQUESTS were sent. It prints requests/s, p50/p99 latency,
errors and the mean batch size the server reported, then the speed-up of batching. Traffic goes to
127.0.0.1 only. Exit status 1 if any request failed.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time

import httpx

# news-style sentences with the kinds of entities CoNLL-2003 has, of varied length
SENTENCES = [
    "EU rejects German call to boycott British lamb .",
    "Peter Blackburn reported from Brussels on Thursday .",
    "The European Commission said on Thursday it disagreed with German advice to consumers .",
    "Germany 's representative to the European Union 's veterinary committee Werner Zwingmann said on Wednesday "
    "consumers should buy sheepmeat from countries other than Britain until the scientific advice was clearer .",
    "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria .",
    "Nadim Ladki AL-AIN , United Arab Emirates 1996-12-06",
    "Rangers beat Celtic 2-0 at Ibrox on Saturday .",
    "Microsoft Corp. and Apple Computer Inc. announced a deal in Seattle .",
    "Angela Merkel met Emmanuel Macron in Paris to discuss the budget of the European Union .",
    "Shares of Volkswagen fell 3 percent in Frankfurt after the report .",
    "The United Nations Security Council met in New York on Monday .",
    "Roger Federer beat Rafael Nadal in the final at Wimbledon .",
    "Reuters reported that the Bank of England kept interest rates unchanged .",
    "Toyota plans to build a new plant in Kentucky , the company said .",
    "Police in Oslo arrested two men after the robbery .",
    "Barcelona signed the Brazilian striker Ronaldo from PSV Eindhoven .",
]
_RUNNING = re.compile(r"running on (http://127\.0\.0\.1:\d+)")  # tokentune serve's start line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("--seconds", type=float, default=20.0, help="load duration per mode (at most 60)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients")
    parser.add_argument("--max-requests", type=int, default=20_000, help="bound on requests per mode")
    parser.add_argument("--max-batch-texts", type=int, default=64, help="the batched mode's --max-batch-texts")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--texts", metavar="FILE", help="one text per line (default: built-in sentences)")
    parser.add_argument("--modes", default="batched,unbatched", help="batched, unbatched or both (default)")
    parser.add_argument("--serve-flags", default="", help="more flags for every server, e.g. '--quantize int8'")
    parser.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = parser.parse_args(argv)
    if not 0 < args.seconds <= 60:
        parser.error(f"--seconds must be in (0, 60], found {args.seconds}")
    if args.clients < 1 or args.max_requests < 1:
        parser.error("--clients and --max-requests must be at least 1")
    return args


class Server:
    """`tokentune serve` in a subprocess on a free loopback port."""

    def __init__(self, model_dir: str, flags: list[str]) -> None:
        command = [sys.executable, "-m", "tokentune.cli.main", "serve", model_dir, "--host", "127.0.0.1",
                   "--port", "0", "--max-queue", "4096", *flags]
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.url: str | None = None
        self.tail: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()  # drain stderr so the pipe never blocks
        deadline = time.monotonic() + 120
        while not self._ready.wait(0.2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit("the server did not start:\n" + "\n".join(self.tail[-20:]))

    def _read(self) -> None:
        for line in self.process.stderr:
            self.tail = (self.tail + [line.rstrip()])[-50:]
            found = _RUNNING.search(line)
            if found and not self._ready.is_set():
                self.url = found.group(1)
                self._ready.set()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def load(url: str, texts: list[str], clients: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits, trust_env=False) as http:
        for text in texts[:8]:  # warm-up: first calls pay for lazy initialisation
            (await http.post("/predict", json={"text": text})).raise_for_status()
        before = (await http.get("/health")).json()
        started = time.perf_counter()
        deadline = started + seconds

        async def client(offset: int) -> None:
            nonlocal sent
            index = offset
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                text = texts[index % len(texts)]
                index += 1
                begin = time.perf_counter()
                try:
                    response = await http.post("/predict", json={"text": text})
                    key = None if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as err:
                    key = type(err).__name__
                if key is None:
                    latencies.append(time.perf_counter() - begin)
                else:
                    errors[key] = errors.get(key, 0) + 1

        await asyncio.gather(*(client(i) for i in range(clients)))
        elapsed = time.perf_counter() - started
        after = (await http.get("/health")).json()
    return summarise(latencies, errors, elapsed, before, after)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: p99 is a latency some request really had)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def summarise(latencies, errors, elapsed, before, after) -> dict:
    batches = after["batches"] - before["batches"]
    texts = after["texts"] - before["texts"]
    return {"requests": len(latencies) + sum(errors.values()), "ok": len(latencies), "errors": errors,
            "seconds": round(elapsed, 2), "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
            "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
            "mean_batch_texts": round(texts / batches, 2) if batches else None}


def run_mode(args, texts: list[str], name: str, flags: list[str]) -> dict:
    server = Server(args.model_dir, flags)
    try:
        result = asyncio.run(load(server.url, texts, args.clients, args.seconds, args.max_requests))
    finally:
        server.stop()
    result["mode"], result["flags"] = name, " ".join(flags)
    print(f"{name:>9}: {result['requests_per_s']:7.1f} req/s  p50 {result['p50_ms']} ms  p99 {result['p99_ms']} ms  "
          f"errors {sum(result['errors'].values())}  mean batch {result['mean_batch_texts']} texts  "
          f"({result['ok']} requests in {result['seconds']} s; {result['flags']})", flush=True)
    return result


def main(argv=None) -> int:
    args = parse_args(argv)
    texts = SENTENCES
    if args.texts:
        with open(args.texts, encoding="utf-8") as handle:
            texts = [line.rstrip("\n") for line in handle if line.strip()]
    modes = {"batched": ["--max-batch-texts", str(args.max_batch_texts), "--batch-wait-ms", str(args.batch_wait_ms)],
             "unbatched": ["--max-batch-texts", "1", "--batch-wait-ms", "0"]}
    wanted = [m.strip() for m in args.modes.split(",")]
    unknown = set(wanted) - set(modes)
    if unknown:
        raise SystemExit(f"unknown mode {sorted(unknown)[0]!r}; expected batched and/or unbatched")
    print(f"{args.clients} clients, {args.seconds:g} s per mode, at most {args.max_requests} requests, "
          f"{len(texts)} distinct texts, model {args.model_dir}", flush=True)
    results = {name: run_mode(args, texts, name, modes[name] + shlex.split(args.serve_flags)) for name in wanted}
    if {"batched", "unbatched"} <= set(results):
        speedup = results["batched"]["requests_per_s"] / max(results["unbatched"]["requests_per_s"], 1e-9)
        results["speedup"] = round(speedup, 2)
        print(f"micro-batching speed-up: {speedup:.2f}x requests/s", flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"command": " ".join(sys.argv), "clients": args.clients, "results": results}, handle, indent=2)
    failed = sum(sum(r["errors"].values()) for r in results.values() if isinstance(r, dict))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
