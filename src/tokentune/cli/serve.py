"""`tokentune serve MODEL_DIR`: the HTTP service and the page to try a model (see docs/serving.md)."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os

from ._common import add_precision_flag, add_text_flags

API_KEY_ENV = "TOKENTUNE_API_KEY"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..serving.validation import Limits

    defaults = Limits()
    parser.add_argument("model_dir", metavar="MODEL_DIR")
    net = parser.add_argument_group("network")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    net.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks a free one)")
    net.add_argument("--api-key", default=None,
                     help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}; the variable keeps "
                          "the key out of the process list)")
    net.add_argument("--shutdown-timeout", type=float, default=defaults.shutdown_timeout_s, metavar="S",
                     help="on SIGTERM, wait this long for in-flight requests, then answer them 503 "
                          f"(default {defaults.shutdown_timeout_s:g})")
    net.add_argument("--header-timeout", type=float, default=defaults.header_timeout_s, metavar="S",
                     help="close a connection whose request headers take longer than this "
                          f"(default {defaults.header_timeout_s:g})")
    net.add_argument("--body-timeout", type=float, default=defaults.body_timeout_s, metavar="S",
                     help="answer 408 when a request body takes longer than this to arrive "
                          f"(default {defaults.body_timeout_s:g})")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--max-texts", type=int, default=defaults.max_texts, metavar="N",
                        help=f"texts per request, more are answered 413 (default {defaults.max_texts})")
    limits.add_argument("--max-chars", type=int, default=defaults.max_chars, metavar="N",
                        help=f"characters per text, more are answered 413 (default {defaults.max_chars})")
    limits.add_argument("--max-body-bytes", type=int, default=defaults.max_body_bytes, metavar="N",
                        help=f"request body size in bytes, more is answered 413 (default {defaults.max_body_bytes}: "
                             f"{defaults.max_body_bytes / 2**20:g} MiB)")
    limits.add_argument("--max-queue", type=int, default=defaults.max_queue, metavar="N",
                        help=f"requests waiting for the model before answering 503 (default {defaults.max_queue})")
    batching = parser.add_argument_group("micro-batching")
    batching.add_argument("--max-batch-texts", type=int, default=defaults.max_batch_texts, metavar="N",
                          help="texts of concurrent requests sharing one forward pass (1: no batching; "
                               f"default {defaults.max_batch_texts})")
    batching.add_argument("--max-batch-chars", type=int, default=defaults.max_batch_chars, metavar="N",
                          help="characters sharing one forward pass: long requests are spread over several, "
                               f"so they do not hold up small ones (default {defaults.max_batch_chars})")
    batching.add_argument("--batch-wait-ms", type=float, default=defaults.batch_wait_ms, metavar="MS",
                          help=f"how long a batch waits for more requests (default {defaults.batch_wait_ms:g})")
    model = parser.add_argument_group("model")
    model.add_argument("--backend", choices=["torch", "onnx"],
                       help="default: torch, or onnx with --quantize/--onnx-file or for an exported directory")
    model.add_argument("--quantize", choices=["int8"], help="onnx backend: load model.int8.onnx")
    model.add_argument("--onnx-file", metavar="NAME", help="onnx backend: this file instead of model.onnx")
    add_precision_flag(model)
    model.add_argument("--batch-size", type=int, default=32,
                       help="windows per forward pass inside a batch (default 32)")
    model.add_argument("--decode", default="viterbi", choices=["viterbi", "argmax"],
                       help="viterbi: only tag sequences valid in the model's scheme (default)")
    model.add_argument("--aggregation", default="first", choices=["first", "average", "max"],
                       help="how a word's sub-token scores combine (default first)")
    model.add_argument("--stride", type=int, default=128, help="sub-tokens of overlap for long texts (default 128)")
    add_text_flags(model, min_score_help="leave out entities whose score is below X (0 to 1; default 0: all); a "
                                         "request may give its own \"min_score\"")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="log messages of this level and above to stderr (default info)")


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..inference.tagger import check_min_score
    from ._common import quiet_libraries
    from .predict import pick_backend

    try:
        from ..serving.app import create_app
        from ..serving.server import bind_socket, run_server
        from ..serving.validation import Limits
    except ImportError as err:
        raise ConfigError(f"serving needs fastapi and uvicorn ({err})", fix="pip install 'tokentune[serve]'") from None
    limits = Limits(max_texts=args.max_texts, max_chars=args.max_chars, max_body_bytes=args.max_body_bytes,
                    max_batch_texts=args.max_batch_texts, max_batch_chars=args.max_batch_chars,
                    batch_wait_ms=args.batch_wait_ms, max_queue=args.max_queue, header_timeout_s=args.header_timeout,
                    body_timeout_s=args.body_timeout, shutdown_timeout_s=args.shutdown_timeout)
    min_score = check_min_score(args.min_score)  # before binding the port and loading the model
    backend = pick_backend(args)  # as predict picks it: --quantize and --onnx-file need the onnx backend
    onnx_options = {"quantize": args.quantize, "onnx_file": args.onnx_file} if backend == "onnx" else {}
    sock = bind_socket(args.host, args.port)  # before loading the model: a port in use fails at once
    try:
        _configure_logging(args.log_level)
        quiet_libraries(True)  # a server's log is read line by line: no 'Loading weights' bar in it
        api_key = args.api_key if args.api_key is not None else (os.environ.get(API_KEY_ENV) or None)
        app = create_app(args.model_dir, limits=limits, api_key=api_key, backend=backend,
                         tagger_options={"batch_size": args.batch_size, "decoding": args.decode,
                                         "aggregation": args.aggregation, "stride": args.stride,
                                         "word_splitter": args.word_splitter,
                                         "split_sentences": args.split_sentences, "precision": args.precision,
                                         **onnx_options},
                         min_score=min_score)
    except BaseException:
        sock.close()
        raise
    log = logging.getLogger("tokentune.serving")
    if not api_key and not _is_loopback(args.host):
        log.warning("serving on %s without --api-key: anyone who can reach this address can use the model",
                    args.host)
    if app.state.texts_alone:
        from ..inference.onnx_graph import scales_per_call_message
        from ..inference.runners import onnx_file_for

        log.warning("%s", scales_per_call_message(onnx_file_for(args.model_dir, **onnx_options), args.model_dir,
                                                  "and each text runs alone so that its answer does not depend on other "
                                                  "requests (slower)"))
    info = app.state.model_info
    log.info("model %s (%s, %s, word splitter %s); API key %s", args.model_dir, backend, info.get("precision"),
             info.get("word_splitter"), "required" if api_key else "off")
    # uvicorn keeps the logging set up above, and its access log is off: our middleware logs requests
    run_server(app, host=args.host, limits=limits, sock=sock)
    return 0


def _configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
