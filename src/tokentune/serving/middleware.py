"""Small ASGI middlewares: one log line per request, the bearer API key, a deadline for the request
body, and a JSON 503 for a request cut off by shutdown.

Written against ASGI directly (not Starlette's BaseHTTPMiddleware) so that they add no buffering
and see every response, including 401s, 404s and errors.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time

from .validation import ApiError

log = logging.getLogger("tokentune.serving")

# Paths anyone may GET even with an API key: the page and the offline API page are static and hold
# neither model output nor labels, and a browser cannot send a bearer header when it opens them.
# Both ask for the key. /openapi.json is not public: its description names the entity types.
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", "/docs"})
PUBLIC_PREFIXES = ("/static/",)


class RequestLogMiddleware:
    """Logs ``METHOD PATH STATUS MS`` for every HTTP request, at INFO on ``tokentune.serving``."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            log.info("%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed)


class BearerAuthMiddleware:
    """Answers 401 unless the request carries ``Authorization: Bearer KEY`` (public paths excepted)."""

    def __init__(self, app, api_key: str) -> None:
        self.app = app
        self.key = api_key.encode("utf-8")

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or _is_public(scope) or self._authorized(scope):
            await self.app(scope, receive, send)
            return
        await send_json(send, 401, {"detail": "missing or wrong API key; expected the header "
                                              "'Authorization: Bearer KEY' with the server's --api-key"},
                        [(b"www-authenticate", b'Bearer realm="tokentune"')])

    def _authorized(self, scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                # compare_digest: the time taken must not reveal how much of the key was right
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False


def _is_public(scope) -> bool:
    if scope["method"] not in ("GET", "HEAD"):
        return False
    path = scope["path"]
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class BodyTimeoutMiddleware:
    """Bounds the time from a request's headers to the last byte of its body: a client that sends its
    body slowly gets a JSON 408 (``limit: body_timeout_s``) and the connection is closed, instead of
    holding a connection and a request task forever. Reading the body after that is not bounded."""

    def __init__(self, app, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.seconds
        complete = False

        async def bounded_receive():
            nonlocal complete
            if complete:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except asyncio.TimeoutError:
                raise ApiError(408, f"the request body did not arrive within {self.seconds:g} s (--body-timeout); "
                                    "send the whole body at once", limit="body_timeout_s", value=self.seconds,
                               headers={"Connection": "close"}) from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, bounded_receive, send)


class ShutdownMiddleware:
    """Answers a JSON 503 to a request still running when a shutdown's grace time ran out.

    uvicorn cancels such requests' tasks, and answers a cancelled request that had not started its
    response with a plain-text 500. Here the cancellation ends the request with the API's error
    shape instead; a response already started cannot change and is cut off as before.
    """

    def __init__(self, app, retry_after_s: int = 1) -> None:
        self.app = app
        self.retry_after = str(retry_after_s).encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_and_note(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        except asyncio.CancelledError:
            if started:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # answered: the request ends here, as its cancellation intended
            log.warning("%s %s cancelled by shutdown before it finished; answered 503",
                        scope["method"], scope["path"])
            await send_json(send, 503, {"detail": "the server is shutting down and could not finish this "
                                                  "request within --shutdown-timeout; retry, on another "
                                                  "instance if there is one"},
                            [(b"retry-after", self.retry_after), (b"connection", b"close")])


async def send_json(send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    """A whole JSON response, sent through ASGI ``send``."""
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode()), *headers]})
    await send({"type": "http.response.body", "body": data})
