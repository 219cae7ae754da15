"""Two small ASGI middlewares: one log line per request, and the bearer API key.

Written against ASGI directly (not Starlette's BaseHTTPMiddleware) so that they add no buffering
and see every response, including 401s, 404s and errors.
"""
from __future__ import annotations

import hmac
import json
import logging
import time

log = logging.getLogger("tokentune.serving")

# Paths anyone may GET even with an API key: the page and the API's description hold no model
# output, and a browser cannot send a bearer header when it opens them. The page asks for the key.
PUBLIC_PATHS = frozenset({"/", "/favicon.ico", "/docs", "/openapi.json"})
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
        body = json.dumps({"detail": "missing or wrong API key; expected the header "
                                     "'Authorization: Bearer KEY' with the server's --api-key"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="tokentune"')]})
        await send({"type": "http.response.body", "body": body})

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
