"""Nothing lost, nothing silent: slow clients are cut off, a large request does not hold up small
ones, a request cut off by shutdown gets a JSON 503, settings are checked once, and `tokentune
serve` on a port in use or a bad host says so in one line.

Servers are real (uvicorn on a free 127.0.0.1 port, as `tokentune serve` runs it) over fake models,
so no test needs a trained model and each takes a few seconds at most.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import socket
import subprocess
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tokentune.errors import ConfigError  # noqa: E402
from tokentune.serving import Limits, create_app  # noqa: E402
from tokentune.serving.microbatch import MicroBatcher  # noqa: E402

from serving.helpers import PYTHON, ROOT, ThreadServer, client  # noqa: E402

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


class Found:
    """An entity spanning the whole text: results show which text they belong to."""

    def __init__(self, text: str) -> None:
        self.text = text

    def to_dict(self) -> dict:
        return {"label": "PER", "start": 0, "end": len(self.text), "text": self.text, "score": 1.0}


class FakeTagger:
    """A model that takes ``seconds_per_char`` per character of a batch and records each batch."""

    labels = LABELS

    def __init__(self, seconds_per_char: float = 0.0) -> None:
        self.seconds_per_char = seconds_per_char
        self.batches: list[list[str]] = []
        self.entered = threading.Event()

    def predict_texts(self, texts):
        self.batches.append(list(texts))
        self.entered.set()
        time.sleep(self.seconds_per_char * sum(map(len, texts)))
        return [[Found(text)] for text in texts]


class BlockedTagger(FakeTagger):
    """A model that answers only once the test opens ``gate`` (at most 30 s)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def predict_texts(self, texts):
        self.entered.set()
        self.gate.wait(30)
        return [[Found(text)] for text in texts]


def port_of(server: ThreadServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def read_until_closed(sock: socket.socket, timeout: float = 6.0) -> bytes:
    """Everything the server sends until it closes the connection; fails if it is still open after ``timeout``."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server kept the connection open for {timeout} s; received {data!r}")


def read_response(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """One whole response with a Content-Length, read from a kept-alive connection."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        head, found, body = data.partition(b"\r\n\r\n")
        if found:
            length = next(int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                          if line.startswith(b"content-length:"))
            if len(body) >= length:
                return data
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        data += sock.recv(65536)
    raise AssertionError(f"no whole response within {timeout} s: {data!r}")


def json_body(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return json.loads(body)


def post_in_thread(url: str, body: dict, **kwargs) -> concurrent.futures.Future:
    pool = concurrent.futures.ThreadPoolExecutor(1)

    def post():
        with client(url) as http:
            started = time.monotonic()
            response = http.post("/predict", json=body, **kwargs)
            return response, started, time.monotonic()

    future = pool.submit(post)
    pool.shutdown(wait=False)
    return future


# -- slow clients ---------------------------------------------------------------------------------
def test_slow_headers_are_cut_off_while_other_requests_are_served():
    app = create_app(FakeTagger(), limits=Limits(header_timeout_s=2.0, body_timeout_s=2.0))
    with ThreadServer(app) as server, client(server.url) as http:
        address = ("127.0.0.1", port_of(server))
        with socket.create_connection(address, timeout=5) as half, socket.create_connection(address, timeout=5) as \
                trickle, socket.create_connection(address, timeout=5) as silent:
            started = time.monotonic()
            half.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # half the headers, then nothing

            def drip() -> None:  # one byte every 0.1 s: each arrives in time, the headers never do
                for byte in b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 60:
                    try:
                        trickle.sendall(bytes([byte]))
                    except OSError:
                        return
                    time.sleep(0.1)

            dripper = threading.Thread(target=drip, daemon=True)
            dripper.start()
            response = http.post("/predict", json={"text": "Alice"})  # another connection, served meanwhile
            served = time.monotonic() - started
            cut_off = read_until_closed(half)
            closed = time.monotonic() - started
            dripped, quiet = read_until_closed(trickle), read_until_closed(silent)
            dripper.join(timeout=6)
    assert response.status_code == 200 and response.json()["results"][0]["entities"][0]["text"] == "Alice"
    assert served < 1.5, "the normal request must not wait for the slow ones"
    assert 1.9 <= closed < 5.0, closed
    for data in (cut_off, dripped, quiet):
        assert data.startswith(b"HTTP/1.1 408 "), data
        body = json_body(data)
        assert body["limit"] == "header_timeout_s" and body["value"] == 2.0 and "--header-timeout" in body["detail"]


def test_slow_header_on_a_kept_alive_connection_is_cut_off():
    app = create_app(FakeTagger(), limits=Limits(header_timeout_s=1.0))
    with ThreadServer(app) as server:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            first = read_response(conn)
            started = time.monotonic()
            conn.sendall(b"GET /health HTTP/1.1\r\n")  # the next request starts, and stalls
            rest = read_until_closed(conn)
            closed = time.monotonic() - started
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 408 ") and 0.9 <= closed < 3.0, (rest, closed)


def test_slow_body_gets_408_and_the_connection_is_closed():
    app = create_app(FakeTagger(), limits=Limits(header_timeout_s=5.0, body_timeout_s=1.0))
    with ThreadServer(app) as server:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as conn:
            started = time.monotonic()
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"text\": ")  # 9 of 100 bytes, then nothing
            data = read_until_closed(conn)
            closed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 408 "), data
    body = json_body(data)
    assert body["limit"] == "body_timeout_s" and body["value"] == 1.0 and "--body-timeout" in body["detail"]
    assert 0.9 <= closed < 3.0, closed


def test_a_body_nobody_reads_cannot_hold_the_connection():
    app = create_app(FakeTagger(), api_key="k", limits=Limits(body_timeout_s=0.5))
    with ThreadServer(app) as server:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=5) as conn:
            started = time.monotonic()
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
            data = read_until_closed(conn)  # 401 at once, without reading the body; then the body stalls
            closed = time.monotonic() - started
    assert data.startswith(b"HTTP/1.1 401 "), data
    assert closed < 3.0, "cut off at --body-timeout plus a second, before uvicorn's keep-alive timeout"


# -- fairness ---------------------------------------------------------------------------------------
def test_a_small_request_is_not_stuck_behind_a_maximal_one():
    tagger = FakeTagger(seconds_per_char=0.00008)  # 0.08 s per 1000-character batch
    limits = Limits(max_texts=32, max_chars=1000, max_batch_chars=1000, batch_wait_ms=0)
    big_texts = [f"{index:04d} " + "x" * 995 for index in range(32)]  # 32 batches: about 2.6 s
    with ThreadServer(create_app(tagger, limits=limits)) as server, client(server.url) as http:
        big = post_in_thread(server.url, {"texts": big_texts})
        assert tagger.entered.wait(10), "the large request never reached the model"
        started = time.monotonic()
        small = http.post("/predict", json={"text": "Alice"})
        small_done = time.monotonic()
        big_response, big_started, big_done = big.result(timeout=30)
    assert small.status_code == 200 and small.json()["results"][0]["entities"][0]["text"] == "Alice"
    # before: it waited for the whole large request, about 2.5 s more
    assert small_done - started < 1.0, f"the small request waited {small_done - started:.2f} s"
    assert big_done - big_started > 2.0 and big_done - small_done > 1.0
    assert big_response.status_code == 200
    results = big_response.json()["results"]
    assert [r["text"] for r in results] == big_texts
    assert [r["entities"][0]["text"] for r in results] == big_texts, "results must stay in request order"
    assert all(sum(map(len, batch)) <= 1000 or len(batch) == 1 for batch in tagger.batches)
    assert ["Alice"] in [[t for t in batch if t == "Alice"] for batch in tagger.batches[:3]]


def test_batches_are_bounded_round_robin_and_results_identical():
    tagger = FakeTagger()
    limits = Limits(max_batch_texts=3, max_batch_chars=12, batch_wait_ms=20)
    requests = [["aaaaa", "bbbbb", "ccccc", "ddddd", "eeeee"], ["x"], ["yy", "zzzzzzzzzzzzzzzz", "w"], ["v"] * 4]

    async def main():
        batcher = MicroBatcher(tagger.predict_texts, limits)
        await batcher.start()
        try:
            return await asyncio.wait_for(asyncio.gather(*(batcher.submit(texts) for texts in requests)), 10)
        finally:
            await batcher.stop()

    answers = asyncio.run(main())
    for texts, answer in zip(requests, answers):
        assert [found[0].text for found in answer] == texts
    for batch in tagger.batches:
        assert len(batch) <= 3 and (sum(map(len, batch)) <= 12 or len(batch) == 1), batch
    assert sorted(text for batch in tagger.batches for text in batch) == sorted(sum(requests, []))
    # round-robin: the first batch takes one text from each of the first requests, not five from one
    assert tagger.batches[0] == ["aaaaa", "x", "yy"]


def test_batcher_takes_its_settings_from_limits_only():
    with pytest.raises(ConfigError, match="max_batch_chars.*--max-batch-chars 1 or more"):
        MicroBatcher(lambda texts: texts, Limits(max_batch_chars=0))


# -- shutdown ---------------------------------------------------------------------------------------
def test_a_request_cut_off_by_shutdown_gets_a_json_503(caplog):
    caplog.set_level("INFO", logger="tokentune.serving")
    tagger = BlockedTagger()
    with ThreadServer(create_app(tagger, limits=Limits(shutdown_timeout_s=0.5))) as server:
        pending = post_in_thread(server.url, {"text": "Alice"})
        assert tagger.entered.wait(10), "the request never reached the model"
        server.server.should_exit = True
        try:
            response, _, _ = pending.result(timeout=10)
        finally:
            tagger.gate.set()
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/json" and response.headers["retry-after"] == "1"
    assert set(response.json()) == {"detail"} and "--shutdown-timeout" in response.json()["detail"]
    assert any(r.getMessage().startswith("POST /predict 503 ") for r in caplog.records)


# -- settings -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, flag", [
    ("header_timeout_s", math.nan, "--header-timeout"), ("header_timeout_s", 0, "--header-timeout"),
    ("body_timeout_s", math.inf, "--body-timeout"), ("body_timeout_s", True, "--body-timeout"),
    ("shutdown_timeout_s", -1.0, "--shutdown-timeout"), ("batch_wait_ms", math.nan, "--batch-wait-ms"),
    ("batch_wait_ms", -math.inf, "--batch-wait-ms"), ("max_batch_chars", 0, "--max-batch-chars"),
    ("max_queue", 2.5, "--max-queue"),
])
def test_limits_refuse_nan_inf_and_negative_values(name, value, flag):
    with pytest.raises(ConfigError, match=name) as caught:
        Limits(**{name: value})
    assert flag in str(caught.value)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "tokentune.cli.main", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "uvicorn" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tokentune serve: error: "), done.stderr
    return lines[0]


def test_port_in_use_is_a_one_line_error(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(run_cli(str(tmp_path / "model"), "--host", "127.0.0.1", "--port", str(port)))
    assert f"port {port} on 127.0.0.1 is already in use" in line and "--port" in line


@pytest.mark.parametrize("args, expected", [
    (["--host", "not a host!"], "--host 'not a host!' is not an IP address or a host name"),
    (["--port", "70000"], "--port must be between 0 and 65535"),
    (["--body-timeout", "nan", "--port", "0"], "--body-timeout"),
])
def test_bad_address_or_timeout_is_a_one_line_error(tmp_path, args, expected):
    assert expected in one_error_line(run_cli(str(tmp_path / "model"), *args))


def test_a_batch_dependent_model_tags_each_text_alone():
    """An int8 ONNX file scaled once per call (onnxruntime's quantize_dynamic, tokentune's exports before
    per-token scales): batched with other texts, a text's entities could change from one request to the
    next. Each text goes to the model alone, results in order. tokentune's int8 exports batch as fp32 does."""
    tagger = FakeTagger()
    tagger.precision, tagger.batch_dependent = "int8", True
    app = create_app(tagger)
    assert app.state.texts_alone  # `tokentune serve` logs a warning with the fix
    with ThreadServer(app) as server, client(server.url) as http:
        texts = ["Alice", "Bob went home", "Carol"]
        response = http.post("/predict", json={"texts": texts})
        assert http.get("/model").json()["precision"] == "int8"
    assert [r["entities"][0]["text"] for r in response.json()["results"]] == texts
    assert tagger.batches == [[text] for text in texts]
    per_token = FakeTagger()
    per_token.precision = "int8"
    with ThreadServer(create_app(per_token)) as server, client(server.url) as http:
        http.post("/predict", json={"texts": texts})
    assert per_token.batches == [texts]
    fp32 = FakeTagger()
    with ThreadServer(create_app(fp32)) as server, client(server.url) as http:
        http.post("/predict", json={"texts": texts})
    assert fp32.batches == [texts]  # other precisions batch as before
