"""Real servers for the serving tests: uvicorn in a thread (in-process app) or `tokentune serve` in a subprocess.

Every server binds 127.0.0.1 on port 0, so the OS picks a free port and tests never race for one.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator

import httpx

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PYTHON = sys.executable
_RUNNING = re.compile(r"running on (http://127\.0\.0\.1:\d+)")


def trained_model(tmp_path_factory, tiny_data: str, tiny_base_model: str) -> str:
    """Train the tiny model once per session, whichever test file asks first (fixtures are per file)."""
    import tokentune

    output = tmp_path_factory.getbasetemp() / "serve_model"
    if not (output / "config.json").exists():
        tokentune.train(data=tiny_data, model=tiny_base_model, output=str(output), epochs=4,
                        learning_rate=5e-3, batch_size=8, quiet=True)
    return str(output)


class ThreadServer:
    """``app`` served from a background thread as `tokentune serve` serves it (its protocol with the
    slow-client timeouts, the app's Limits); ``url`` is set once it listens."""

    def __init__(self, app, **config) -> None:
        from tokentune.serving.server import bind_socket, build_server

        self.socket = bind_socket("127.0.0.1", 0)
        limits = app.state.limits  # tests wait at most 5 s for a shutdown unless the app asks for less
        config.setdefault("timeout_graceful_shutdown", min(5.0, limits.shutdown_timeout_s))
        self.server = build_server(app, self.socket, **config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.url = ""

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 30 s")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


@contextmanager
def cli_server(args: list[str], env: dict | None = None, timeout: float = 90) -> Iterator[tuple[subprocess.Popen, str]]:
    """`tokentune serve ARGS --port 0` in a subprocess; yields (process, base url). stderr is kept in
    ``process.log`` (a list of lines) by a reader thread so the pipe never fills up."""
    command = [PYTHON, "-m", "tokentune.cli.main", "serve", *args, "--port", "0"]
    yield from _serve_process(command, env, timeout)


@contextmanager
def script_server(script: str, args: list[str], timeout: float = 90) -> Iterator[tuple[subprocess.Popen, str]]:
    yield from _serve_process([PYTHON, script, *args], None, timeout)


def _serve_process(command, env, timeout):
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    process.log = []
    found = threading.Event()

    def read() -> None:
        for line in process.stderr:
            process.log.append(line.rstrip("\n"))
            if _RUNNING.search(line):
                found.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        deadline = time.monotonic() + timeout
        while not found.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("server did not start:\n" + "\n".join(process.log))
        url = next(_RUNNING.search(line).group(1) for line in process.log if _RUNNING.search(line))
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def client(url: str, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, trust_env=False, **kwargs)


class GatedTagger:
    """Wraps a tagger so tests control when the model answers: each call records its texts, then
    waits for ``gate``. That makes a busy model, a filling queue and batching deterministic."""

    def __init__(self, tagger) -> None:
        self.tagger = tagger
        self.labels = tagger.labels
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[str]] = []

    def predict_texts(self, texts):
        self.batches.append(list(texts))
        self.entered.set()
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        return self.tagger.predict_texts(texts)
