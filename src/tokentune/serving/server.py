"""Running the app with uvicorn: the listening socket, slow-client timeouts, and the start line.

``run_server(app, host=..., port=...)`` is what ``tokentune serve`` runs. It binds the socket itself
before uvicorn starts, so that a port in use or a bad host is a :class:`ConfigError` (one line from
the CLI), not a uvicorn log and exit status. uvicorn bounds only idle keep-alive connections; the
protocol here also bounds how long a client may take to send a request:

* headers: ``Limits.header_timeout_s`` from connecting, or from the first byte of a later request on a
  kept-alive connection, to the last header line; then a 408 and the connection is closed.
* body: the app answers 408 after ``Limits.body_timeout_s`` (see ``BodyTimeoutMiddleware``). A body
  that nobody reads (e.g. after a 401) is cut off here, a second later.
"""
from __future__ import annotations

import asyncio
import errno
import json
import logging
import re
import socket

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..errors import ConfigError, TokentuneError
from .validation import Limits

log = logging.getLogger("tokentune.serving")
BODY_GRACE_S = 1.0  # the app's own 408 comes first; this only closes connections nobody reads from
HOST = re.compile(r"[A-Za-z0-9._:%-]+")  # IP addresses and host names; anything else is a typo


class TimeoutH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a read deadline for each request's headers and body."""

    header_timeout = Limits.header_timeout_s
    body_timeout = Limits.body_timeout_s

    def connection_made(self, transport) -> None:
        self._read_timer: asyncio.TimerHandle | None = None
        self._phase = ""
        super().connection_made(transport)
        self._arm("headers", self.header_timeout)

    def data_received(self, data: bytes) -> None:
        if self._read_timer is None and self.conn.their_state is h11.IDLE:
            self._arm("headers", self.header_timeout)  # the first bytes of a new request
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            if self._phase != "body":
                self._arm("body", self.body_timeout + BODY_GRACE_S)
        elif state is not h11.IDLE or (self._phase == "body"):
            self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, phase: str, seconds: float) -> None:
        self._disarm()
        self._phase = phase
        self._read_timer = self.loop.call_later(seconds, self._expired, phase)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer, self._phase = None, ""

    def _expired(self, phase: str) -> None:
        self._read_timer, self._phase = None, ""
        if self.transport.is_closing():
            return
        client = "%s:%d" % self.client if self.client else "a client"
        if phase == "headers" and self.conn.their_state is h11.IDLE:
            log.info("%s sent no complete request headers within %g s (--header-timeout): 408, connection closed",
                     client, self.header_timeout)
            self.transport.write(_raw_408(f"the request headers did not arrive within {self.header_timeout:g} s "
                                          "(--header-timeout)", "header_timeout_s", self.header_timeout))
            self.transport.close()
        elif phase == "body" and self.conn.their_state is h11.SEND_BODY:
            log.info("%s did not finish sending a request body within %g s (--body-timeout): connection closed",
                     client, self.body_timeout)
            self.transport.close()


def _raw_408(message: str, limit: str, value: float) -> bytes:
    """A whole 408 response in the API's error shape, written outside h11 (no request was parsed)."""
    body = json.dumps({"detail": message, "limit": limit, "value": value}).encode()
    head = (f"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
    return head.encode("ascii") + body


def protocol_for(limits: Limits) -> type[TimeoutH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with these limits' timeouts."""
    return type("TokentuneH11Protocol", (TimeoutH11Protocol,),
                {"header_timeout": limits.header_timeout_s, "body_timeout": limits.body_timeout_s})


class Server(uvicorn.Server):
    """uvicorn's server, logging where it listens once it is ready (uvicorn does not, given a socket)."""

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets=sockets)
        if self.started and sockets:
            host, port = sockets[0].getsockname()[:2]
            shown = f"[{host}]" if ":" in host else host
            log.info("tokentune serve running on http://%s:%d (Ctrl-C to stop)", shown, port)


def build_server(app, sock: socket.socket, limits: Limits | None = None, **config) -> Server:
    """A uvicorn server for ``app`` on the bound ``sock``; run it with ``server.run(sockets=[sock])``.
    ``config`` overrides uvicorn settings (e.g. ``log_level``)."""
    limits = limits or getattr(getattr(app, "state", None), "limits", None) or Limits()
    host, port = sock.getsockname()[:2]
    settings = dict(host=host, port=port, http=protocol_for(limits), lifespan="on", log_config=None,
                    access_log=False, server_header=False, timeout_graceful_shutdown=limits.shutdown_timeout_s)
    return Server(uvicorn.Config(app, **{**settings, **config}))


def run_server(app, *, host: str = "127.0.0.1", port: int = 8080, limits: Limits | None = None,
               sock: socket.socket | None = None) -> None:
    """Serve ``app`` until SIGTERM or Ctrl-C (uvicorn then re-raises the signal, as `uvicorn.run` does).
    Raises ConfigError when it cannot listen on ``host:port``."""
    sock = sock or bind_socket(host, port)
    server = build_server(app, sock, limits)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise TokentuneError("the server did not start", fix="see the log lines above for why")


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (not listening yet), or a ConfigError naming the flag at fault."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, found {port}", fix="pass a valid port")
    fix = "pass --host 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or an address of this machine"
    if not HOST.fullmatch(host or ""):
        raise ConfigError(f"--host {host!r} is not an IP address or a host name", fix=fix)
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as err:
        raise ConfigError(f"--host {host!r} is not an address this machine can listen on ({err})", fix=fix) from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise _bind_error(host, port, err, fix) from None
    return sock


def _bind_error(host: str, port: int, err: OSError, fix: str) -> ConfigError:
    if err.errno == errno.EADDRINUSE:
        return ConfigError(f"port {port} on {host} is already in use",
                           fix="stop what listens there, or pass another --port (0 picks a free one)")
    if err.errno == errno.EADDRNOTAVAIL:
        return ConfigError(f"--host {host} is not an address of this machine", fix=fix)
    if err.errno == errno.EACCES:
        return ConfigError(f"no permission to listen on port {port}",
                           fix="ports below 1024 need privileges; pass --port 1024 or more")
    return ConfigError(f"cannot listen on {host}:{port} ({err.strerror or err})", fix=fix)
