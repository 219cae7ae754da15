"""Request limits and the parsing of ``POST /predict`` bodies.

The body is read and parsed here rather than by FastAPI's automatic validation, so that every
problem gets a message naming what was expected, what was found and the limit (with its flag and
value) that was crossed — and so that no input, however malformed, can reach the model and cause
a 500.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields

from ..errors import ConfigError

WHOLE = ("max_texts", "max_chars", "max_body_bytes", "max_batch_texts", "max_batch_chars", "max_queue")
SECONDS = ("header_timeout_s", "body_timeout_s", "shutdown_timeout_s")
# the `tokentune serve` flag of each setting, for error messages
FLAGS = {"header_timeout_s": "--header-timeout", "body_timeout_s": "--body-timeout",
         "shutdown_timeout_s": "--shutdown-timeout", "batch_wait_ms": "--batch-wait-ms"}


def flag_of(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server, how requests are batched and how long a client may
    take. Defaults suit a CPU. Every value is checked here, once: a bad one raises ConfigError."""

    max_texts: int = 64  # texts in one request
    max_chars: int = 10_000  # characters (code points) in one text
    max_body_bytes: int = 1_048_576  # request body size
    max_batch_texts: int = 64  # texts sharing one forward pass
    max_batch_chars: int = 20_000  # characters sharing one forward pass (a longer single text runs alone)
    batch_wait_ms: float = 5.0  # how long a batch stays open for more requests
    max_queue: int = 256  # requests waiting for the model before the server answers 503
    header_timeout_s: float = 10.0  # from connecting (or a request's first byte) to its last header
    body_timeout_s: float = 30.0  # from the headers to the body's last byte
    shutdown_timeout_s: float = 30.0  # how long a shutdown waits for requests in flight

    def __post_init__(self) -> None:
        for name in WHOLE:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"{name} must be a whole number of at least 1, found {value!r}",
                                  fix=f"pass {flag_of(name)} 1 or more")
        for name in SECONDS:
            value = getattr(self, name)
            if not _is_number(value) or not value > 0:
                default = next(f.default for f in fields(self) if f.name == name)
                raise ConfigError(f"{name} must be a finite number of seconds above 0, found {value!r}",
                                  fix=f"pass {flag_of(name)} with a number above 0, e.g. {default:g}")
        if not _is_number(self.batch_wait_ms) or self.batch_wait_ms < 0:
            raise ConfigError(f"batch_wait_ms must be a finite number of 0 or more, found {self.batch_wait_ms!r}",
                              fix="pass --batch-wait-ms 0 (no waiting) or more")


def _is_number(value) -> bool:
    """A real, finite number (not a bool, NaN or infinity)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float (JSON allows 10**400)
        return False


class ApiError(Exception):
    """An answer other than 200, as JSON ``{"detail": message, "limit": name, "value": n}``."""

    def __init__(self, status: int, message: str, *, limit: str | None = None, value: float | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.limit = limit
        self.value = value
        self.headers = headers or {}

    def body(self) -> dict:
        body: dict = {"detail": self.message}
        if self.limit is not None:
            body["limit"] = self.limit
            body["value"] = self.value
        return body


def too_large(message: str, limit: str, value: int) -> ApiError:
    flag = flag_of(limit)
    return ApiError(413, f"{message}; the limit is {value} ({flag})", limit=limit, value=value)


async def read_body(request, max_bytes: int) -> bytes:
    """The request body, refusing (413) before reading it all when it is larger than ``max_bytes``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(f"the request body has {int(declared)} bytes", "max_body_bytes", max_bytes)
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked uploads declare no length: count as we go
        size += len(chunk)
        if size > max_bytes:
            raise too_large(f"the request body has more than {max_bytes} bytes", "max_body_bytes", max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


EXPECTED = 'a JSON object {"texts": ["...", ...]} or {"text": "..."} (and optionally "min_score": 0 to 1)'
FIELDS = ("text", "texts", "min_score")


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def parse_texts(body: bytes, limits: Limits) -> tuple[list[str], bool]:
    """The texts of a /predict body, and whether it used the single ``text`` form."""
    texts, single, _ = parse_request(body, limits)
    return texts, single


def parse_request(body: bytes, limits: Limits) -> tuple[list[str], bool, float | None]:
    """The texts of a /predict body, whether it used the single ``text`` form, and its ``min_score``
    (None: not given, the server's default applies)."""
    if not body.strip():
        raise ApiError(422, f"the request body is empty; expected {EXPECTED}")
    try:  # json.loads would also take UTF-16 and UTF-32 bytes; the API is UTF-8 (a UTF-8 BOM is let pass)
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ApiError(422, f"the body is not UTF-8 (byte {err.start} is {body[err.start:err.start + 1]!r}); "
                            f"expected {EXPECTED}, encoded in UTF-8") from None
    try:
        payload = json.loads(text)
    except RecursionError:
        raise ApiError(422, "the JSON is nested too deeply; expected " + EXPECTED) from None
    except ValueError as err:  # JSONDecodeError
        raise ApiError(422, f"the body is not valid JSON ({err}); expected {EXPECTED}") from None
    if not isinstance(payload, dict):
        raise ApiError(422, f"expected {EXPECTED}, found {_kind(payload)}")
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise ApiError(422, f"unknown field {unknown[0]!r}; expected {EXPECTED}")
    if ("text" in payload) == ("texts" in payload):
        raise ApiError(422, f"give exactly one of 'text' and 'texts'; expected {EXPECTED}")
    single = "text" in payload
    texts = [payload["text"]] if single else payload["texts"]
    if not isinstance(texts, list):
        raise ApiError(422, f"'texts' must be a list of strings, found {_kind(texts)}")
    if not texts:
        raise ApiError(422, "'texts' is an empty list; expected at least one string")
    if len(texts) > limits.max_texts:
        raise too_large(f"the request has {len(texts)} texts", "max_texts", limits.max_texts)
    for index, text in enumerate(texts):
        _check_text(text, "'text'" if single else f"texts[{index}]", limits)
    return texts, single, _min_score(payload.get("min_score"))


def _min_score(value) -> float | None:
    """The request's ``min_score``: absent or null -> None; else a number from 0 to 1 (not NaN)."""
    if value is None:
        return None
    if not _is_number(value) or not 0 <= value <= 1:
        raise ApiError(422, f"'min_score' must be a number from 0 to 1, found {_kind(value)} {value!r}; "
                            "leave it out for the server's --min-score")
    return float(value)


def _check_text(text, where: str, limits: Limits) -> None:
    if not isinstance(text, str):
        raise ApiError(422, f"{where} must be a string, found {_kind(text)}")
    if len(text) > limits.max_chars:
        raise too_large(f"{where} has {len(text)} characters", "max_chars", limits.max_chars)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:  # JSON allows "\ud800"; neither the tokenizer nor the reply can hold it
        raise ApiError(422, f"{where} contains an unpaired surrogate at character {err.start}; "
                            "expected valid Unicode text") from None
