"""`tokentune serve` as a real process: flags, the API key from the environment, the request log,
graceful shutdown on SIGTERM, and one-line errors."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import threading

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import httpx  # noqa: E402

from serving.helpers import PYTHON, ROOT, cli_server, client, script_server, trained_model, wait_for  # noqa: E402

LOG_LINE = re.compile(r"tokentune\.serving: (GET|POST) (/\S*) (\d{3}) \d+\.\d ms$")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_data, tiny_base_model):
    return trained_model(tmp_path_factory, tiny_data, tiny_base_model)


@pytest.fixture(scope="module")
def exported_dir(model_dir, tmp_path_factory):
    from tokentune.cli.main import main

    pytest.importorskip("onnxruntime")
    output = tmp_path_factory.mktemp("serve_export") / "onnx"
    assert main(["export", model_dir, "--output", str(output), "--quantize", "int8"]) == 0
    return str(output)


def request_lines(log: list[str]) -> list[tuple[str, str, str]]:
    return [m.groups() for m in map(LOG_LINE.search, log) if m]


def test_serve_flags_endpoints_and_one_log_line_per_request(model_dir):
    with cli_server([model_dir, "--max-texts", "2", "--max-chars", "30"]) as (process, url), client(url) as http:
        assert http.get("/health").json()["status"] == "ok"
        ok = http.post("/predict", json={"texts": ["Alice visited Paris .", "Bob"]})
        too_many = http.post("/predict", json={"texts": ["a", "b", "c"]})
        too_long = http.post("/predict", json={"text": "x" * 31})
        assert http.get("/model").json()["limits"]["max_texts"] == 2
        assert wait_for(lambda: len(request_lines(process.log)) == 5, timeout=5), process.log
    assert ok.status_code == 200 and len(ok.json()["results"]) == 2
    assert (too_many.status_code, too_many.json()["value"]) == (413, 2)
    assert (too_long.status_code, too_long.json()["limit"]) == (413, "max_chars")
    assert request_lines(process.log) == [("GET", "/health", "200"), ("POST", "/predict", "200"),
                                          ("POST", "/predict", "413"), ("POST", "/predict", "413"),
                                          ("GET", "/model", "200")]
    assert url.startswith("http://127.0.0.1:"), "the default bind address must be loopback"


def test_api_key_from_the_environment(model_dir):
    with cli_server([model_dir], env={"TOKENTUNE_API_KEY": "from-env"}) as (process, url), client(url) as http:
        refused = http.post("/predict", json={"text": "Alice"})
        allowed = http.post("/predict", json={"text": "Alice"}, headers={"Authorization": "Bearer from-env"})
        page = http.get("/")
    assert refused.status_code == 401 and allowed.status_code == 200 and page.status_code == 200
    assert any("API key required" in line for line in process.log)
    assert not any("from-env" in line for line in process.log), "the key must never be logged"


def test_the_command_ends_by_sigterm_after_draining(model_dir):
    """`tokentune serve` itself (whose console_main handles SIGTERM for the other commands): uvicorn drains,
    re-raises the signal, and the process still ends by it, as supervisors expect of a clean stop."""
    with cli_server([model_dir]) as (process, url), client(url) as http:
        assert http.get("/health").status_code == 200
        process.send_signal(signal.SIGTERM)
        returncode = process.wait(timeout=30)
    assert returncode == -signal.SIGTERM
    assert any("Finished server process" in line for line in process.log)
    assert not any("Traceback" in line for line in process.log), process.log


def test_sigterm_lets_the_in_flight_request_finish(model_dir):
    script = os.path.join(ROOT, "tests", "serving", "slow_server.py")
    with script_server(script, [model_dir, "2.0"]) as (process, url):
        result: dict = {}

        def slow_request() -> None:
            with client(url) as http:
                result["response"] = http.post("/predict", json={"text": "Alice visited Paris ."})

        thread = threading.Thread(target=slow_request)
        thread.start()
        assert wait_for(lambda: "model busy" in process.log, timeout=20), process.log
        process.send_signal(signal.SIGTERM)
        assert wait_for(lambda: any("Shutting down" in line for line in process.log), timeout=10)
        with pytest.raises(httpx.ConnectError):  # no new connections once shutting down
            httpx.get(url + "/health", timeout=2, trust_env=False)
        thread.join(timeout=30)
        returncode = process.wait(timeout=30)
    response = result["response"]
    assert response.status_code == 200
    assert response.json()["results"][0]["text"] == "Alice visited Paris ."
    # uvicorn drains, then re-raises SIGTERM so the exit status still says how the process ended
    assert returncode in (0, -signal.SIGTERM)
    assert any("Finished server process" in line for line in process.log)
    assert ("POST", "/predict", "200") in request_lines(process.log)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "tokentune.cli.main", "serve", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_missing_model_dir_is_a_one_line_error(tmp_path):
    done = run_cli(str(tmp_path / "no-such-model"), "--port", "0")
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("tokentune serve: error:")]
    assert len(errors) == 1 and "no-such-model" in errors[0]


def test_bad_limit_is_a_one_line_error(model_dir):
    done = run_cli(model_dir, "--max-texts", "0", "--port", "0")
    assert done.returncode == 2
    assert "tokentune serve: error: max_texts must be a whole number of at least 1" in done.stderr
    assert "--max-texts 1 or more" in done.stderr


def test_importing_the_server_configures_no_logging():
    code = ("import logging, tokentune.serving.app, tokentune.cli.serve; "
            "assert not logging.getLogger().handlers, logging.getLogger().handlers; "
            "assert not logging.getLogger('tokentune.serving').handlers; print('clean')")
    done = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "clean", done.stderr


@pytest.mark.parametrize("flags, precision", [
    (["--quantize", "int8"], "int8"),
    (["--backend", "onnx", "--onnx-file", "model.int8.onnx"], "int8"),
    ([], "fp32"),  # an exported directory (no torch weights) is served with the onnx backend, as predict does
])
def test_serve_onnx_files_as_predict_picks_them(exported_dir, flags, precision):
    with cli_server([exported_dir, *flags]) as (process, url), client(url) as http:
        model = http.get("/model").json()
        answer = http.post("/predict", json={"text": "Alice visited Paris ."})
    assert model["precision"] == precision
    assert answer.status_code == 200 and answer.json()["results"][0]["text"] == "Alice visited Paris ."
    assert any(f"(onnx, {precision}," in line for line in process.log), process.log


@pytest.mark.parametrize("flags, message", [
    (["--backend", "torch", "--quantize", "int8"],
     "--quantize and --onnx-file choose an ONNX file; they do not apply to --backend torch"),
    (["--onnx-file", "missing.onnx"], "no ONNX model at "),
    (["--quantize", "int4"], "argument --quantize: invalid choice: 'int4'"),
])
def test_onnx_flags_are_checked_as_in_predict(exported_dir, flags, message):
    done = run_cli(exported_dir, *flags, "--port", "0")
    errors = [line for line in done.stderr.splitlines() if line.startswith("tokentune serve: error:")]
    assert done.returncode == 2 and len(errors) == 1 and message in errors[0], done.stderr
    assert "Traceback" not in done.stderr
