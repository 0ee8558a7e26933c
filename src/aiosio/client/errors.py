"""``aiosio.ConnectError``: why a client could not connect, at which stage, and what to do.

Each stage is one step an expert would check in order with curl and DevTools: the name resolves,
the port answers, TLS verifies, the Engine.IO handshake answers at the path, the WebSocket
handshake succeeds, the namespace accepts. The hint maps the evidence to the catalogue of causes
in the troubleshooting guide.
"""

from __future__ import annotations

import enum
import json
from typing import Any

__all__ = [
    "CLOSED_BEFORE_CONNECT_HINT",
    "PARSER_HINT",
    "ConnectError",
    "Stage",
    "UpgradeError",
    "engine_error",
    "hint_for_http",
]

PARSER_HINT = (
    "the server and this client use different Socket.IO parsers (packet formats): give the "
    "client the server's, aiosio.Client(url, parser='msgpack') for a server using "
    "socket.io-msgpack-parser, the default parser='json' otherwise"
)

CLOSED_BEFORE_CONNECT_HINT = (
    "a server closes the connection this way when it cannot parse the client's packets: check "
    "that the client uses the server's parser (aiosio.Client(url, parser='msgpack') for a "
    "server using socket.io-msgpack-parser, the default 'json' otherwise); or the server "
    "stopped, or a middleware closed the connection"
)


class Stage(enum.Enum):
    """Where a connection attempt failed."""

    RESOLVE = "name resolution"
    TCP = "tcp connect"
    PROXY = "proxy"  # the HTTP proxy could not be reached, or refused the tunnel
    QUIC = "quic connect"  # WebTransport: no QUIC answer on UDP (blocked, or not served)
    TLS = "tls handshake"
    HTTP = "engine.io handshake"  # an HTTP status or body that is not a handshake
    WEBSOCKET = "websocket handshake"
    WEBTRANSPORT = "webtransport session"  # the HTTP/3 CONNECT refused, or not HTTP/3
    PROTOCOL = "protocol"  # the peer answered, but not as a Socket.IO server would
    NAMESPACE = "namespace"  # the server refused the namespace connection
    TIMEOUT = "timeout"
    TRANSPORT = "transport"  # an established connection broke


class ConnectError(Exception):
    """The argument of ``connect_error``.

    ``message`` is what socket.io-client would say (``err.message``), ``data`` the server's data
    for a namespace refusal (``err.data``), ``description`` the underlying error, ``stage`` the
    step that failed, ``hint`` the likely cause and fix, ``status`` and ``body`` the HTTP answer
    when there was one.
    """

    def __init__(
        self,
        stage: Stage,
        message: str,
        *,
        hint: str | None = None,
        data: Any = None,
        description: Any = None,
        status: int | None = None,
        body: bytes | None = None,
        url: str | None = None,
    ) -> None:
        super().__init__(message)
        self.stage = stage
        self.message = message
        self.hint = hint
        self.data = data
        self.description = description
        self.status = status
        self.body = body
        self.url = url

    def __str__(self) -> str:
        text = f"{self.stage.value} failed: {self.message}"
        if self.url:
            text += f" ({self.url})"
        if self.hint:
            text += f"; hint: {self.hint}"
        return text

    def __repr__(self) -> str:
        return f"ConnectError(stage={self.stage.name}, message={self.message!r})"


class UpgradeError(Exception):
    """The argument of the engine's ``upgradeError`` event (``client.io.engine``): the upgrade
    to ``transport`` failed and the session stays on polling. ``message`` as the reference's
    (``probe error``, ``probe error: <cause>``), ``description`` the underlying error if any."""

    def __init__(self, message: str, *, transport: str = "websocket", description: Any = None):
        super().__init__(message)
        self.message = message
        self.transport = transport
        self.description = description


def engine_error(body: bytes) -> tuple[int, str] | None:
    """The ``{"code": N, "message": ...}`` of an Engine.IO HTTP refusal, None for another body."""
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("code"), int):
        return int(value["code"]), str(value.get("message", ""))
    return None


def hint_for_http(
    status: int, body: bytes, content_type: str, path: str, eio: int = 4
) -> tuple[str, str]:
    """What an HTTP answer to the Engine.IO handshake means: ``(message, hint)``."""
    error = engine_error(body) if status in (400, 403) else None
    if error is not None:
        code, text = error
        hints = {
            0: "the server does not accept this transport; check the `transports` option on both "
            "sides",
            1: "the session is unknown to the server that answered: with several servers, enable "
            "sticky sessions (nginx ip_hash or a cookie) or use transports=['websocket']",
            2: "the handshake must be a GET request",
            3: "the server refused the request; its log says why (aiosio logs the cause)",
            4: "refused by the server's allow_request hook or CORS origin check",
            5: "the server does not speak this protocol revision: a socket.io 2.x server needs "
            "a 2.x client (or aiosio with allow_eio3=True on the server); a 3.x/4.x server "
            f"needs EIO=4 (this client sent EIO={eio})",
        }
        return f"code {code} {text}", hints.get(code, "see the server's log")
    if status == 404:
        return (
            "HTTP 404 Not Found",
            f"nothing answers at {path}: the `path` option must match the server's (default "
            "'/socket.io/'), and a proxy must forward that path; a namespace is not a path "
            "(io('https://host/admin') connects to namespace /admin at /socket.io/)",
        )
    if status == 426:
        return (
            "HTTP 426 Upgrade Required",
            "the server wants a WebSocket on every request: a plain WebSocket server, not a "
            "Socket.IO server; the Socket.IO client cannot talk to it",
        )
    if status in (301, 302, 307, 308):
        return (
            f"HTTP {status} redirect",
            "the server redirects the handshake (often http to https, or a missing trailing "
            "slash): connect to the final URL directly",
        )
    if status in (502, 503, 504):
        return (
            f"HTTP {status} from a proxy",
            "a proxy or load balancer answered: the Socket.IO server behind it is down or "
            "unreachable from the proxy",
        )
    if status == 200 and "html" in content_type:
        return (
            "an HTML page answered the handshake",
            f"{path} is served by a web page or a SPA fallback, not a Socket.IO server; check "
            "the path and the proxy's routing",
        )
    if status == 200:
        return (
            "the answer is not an Engine.IO handshake",
            "the server at this path is not a Socket.IO server (or it speaks another version)",
        )
    return f"HTTP {status}", "the server or a proxy refused the handshake"
