"""`--help` says each flag's default: the figures shown are the ones the code uses (read from the parser's
defaults and from serve's Limits), so the help cannot drift from them."""
from __future__ import annotations

from tokentune.cli.main import build_parser, main
from tokentune.serving import Limits


def _help(command: str, capsys, monkeypatch) -> dict[str, str]:
    """``{flag: its help text on one line}`` from ``tokentune COMMAND --help``."""
    monkeypatch.setenv("COLUMNS", "200")
    assert main([command, "--help"]) == 0
    texts: dict[str, str] = {}
    flag = None
    for line in capsys.readouterr().out.splitlines():
        stripped = line.strip()
        if line.startswith("  -"):
            flag = stripped.split()[0].rstrip(",")
            texts[flag] = " ".join(stripped.split()[1:])
        elif flag is not None and line.startswith("      ") and stripped:
            texts[flag] += " " + stripped
        else:
            flag = None
    return texts


def _defaults(command: str, *positionals: str):
    return build_parser(command).parse_args([command, *positionals])


def test_evaluate_help_says_what_decode_backend_batch_size_and_mode_do_and_their_defaults(capsys, monkeypatch):
    texts = _help("evaluate", capsys, monkeypatch)
    defaults = _defaults("evaluate", "MODEL", "--data", "DATA")
    assert (defaults.mode, defaults.decode, defaults.backend) == ("default", "viterbi", "torch")
    assert "default (the default;" in texts["--mode"] and "strict" in texts["--mode"]
    assert "viterbi: only tag sequences valid in the model's scheme (default)" in texts["--decode"]
    assert "argmax" in texts["--decode"]
    assert "torch (default), or onnx" in texts["--backend"]
    assert f"(default {defaults.batch_size})" in texts["--batch-size"]


def test_serve_help_shows_the_default_of_every_limit_and_the_log_level(capsys, monkeypatch):
    texts = _help("serve", capsys, monkeypatch)
    limits = Limits()
    for flag, value in (("--max-texts", limits.max_texts), ("--max-chars", limits.max_chars),
                        ("--max-body-bytes", limits.max_body_bytes), ("--max-queue", limits.max_queue),
                        ("--max-batch-texts", limits.max_batch_texts), ("--max-batch-chars", limits.max_batch_chars),
                        ("--batch-wait-ms", f"{limits.batch_wait_ms:g}"),
                        ("--shutdown-timeout", f"{limits.shutdown_timeout_s:g}"),
                        ("--header-timeout", f"{limits.header_timeout_s:g}"),
                        ("--body-timeout", f"{limits.body_timeout_s:g}")):
        assert f"default {value})" in texts[flag] or f"default {value}:" in texts[flag], (flag, texts[flag])
    defaults = _defaults("serve", "MODEL")
    assert f"(default {defaults.log_level})" in texts["--log-level"]
    assert f"(default {defaults.batch_size})" in texts["--batch-size"]
    assert f"(default {defaults.stride})" in texts["--stride"]
    assert f"(default {defaults.aggregation})" in texts["--aggregation"]
    assert "onnx backend: load model.int8.onnx" in texts["--quantize"]
