"""Request verification: what the server does with one request, decided before it acts.

Follows the reference ``engine.io`` ``Server.verify`` in the same order (transport, origin
characters, session id, handshake method, ``allow_request``), then the handshake's protocol
version (``Server.handshake``), with the same codes and HTTP bodies. The outcome is a
:data:`Verdict`: a new session, a request of an open session, or a :class:`Rejection` that names
the cause and the fix. Nothing here writes a response or changes a session.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Generic
from typing import Literal
from typing import Protocol
from typing import TypeVar

from aiosio.engine.ended import EndedSessions
from aiosio.engine.http import HttpRequest
from aiosio.engine.options import KNOWN_TRANSPORTS
from aiosio.engine.options import EngineOptions

__all__ = [
    "BAD_REQUEST",
    "ERROR_MESSAGES",
    "FORBIDDEN",
    "UNKNOWN_SID",
    "UNKNOWN_TRANSPORT",
    "ConnectionRejected",
    "ErrorCode",
    "Handshake",
    "OpenSession",
    "Rejection",
    "SessionRequest",
    "Verdict",
    "protocol_of",
    "rejection",
    "run_allow_request",
    "verify",
]

logger = logging.getLogger("aiosio.engine")

# Reference error codes and messages (engine.io Server.errors / Server.errorMessages).
ErrorCode = Literal[0, 1, 2, 3, 4, 5]
UNKNOWN_TRANSPORT: ErrorCode = 0
UNKNOWN_SID: ErrorCode = 1
BAD_HANDSHAKE_METHOD: ErrorCode = 2
BAD_REQUEST: ErrorCode = 3
FORBIDDEN: ErrorCode = 4
UNSUPPORTED_PROTOCOL_VERSION: ErrorCode = 5
ERROR_MESSAGES: dict[int, str] = {
    0: "Transport unknown",
    1: "Session ID unknown",
    2: "Bad handshake method",
    3: "Bad request",
    4: "Forbidden",
    5: "Unsupported protocol version",
}

_PROXY_UPGRADE_HINT = (
    "a proxy in front of the server probably drops them (nginx needs 'proxy_http_version 1.1; "
    'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade";\'); the '
    "client stays on polling"
)

# RFC 7230 field-value characters, as the reference's checkInvalidHeaderChar (tab, 32-126, 128-255).
_INVALID_HEADER_CHAR = re.compile(r"[^\t\x20-\x7e\x80-\xff]")


class OpenSession(Protocol):
    """What verification reads of an open session."""

    @property
    def transport(self) -> str:
        """The transport the session runs on now (``polling`` or ``websocket``)."""


S = TypeVar("S", bound=OpenSession)


@dataclass(frozen=True, slots=True)
class Handshake:
    """Accept: the request opens a new session."""


@dataclass(frozen=True, slots=True)
class SessionRequest(Generic[S]):
    """Accept: a request of the open session ``session`` (a poll, a POST, or a WebSocket that
    upgrades it)."""

    session: S


@dataclass(frozen=True, slots=True)
class Rejection:
    """Refuse with ``code``: ``message`` is what the HTTP body says (the reference's
    ``errorContext.message``, else the code's message), ``context`` the reference's context
    fields for ``connection_error``, ``cause`` and ``hint`` what was wrong and what to change."""

    code: ErrorCode
    cause: str
    hint: str
    context: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def __post_init__(self) -> None:
        if not self.message:
            object.__setattr__(self, "message", ERROR_MESSAGES[self.code])


def rejection(
    code: ErrorCode, cause: str, hint: str, message: str | None = None, **context: Any
) -> Rejection:
    """A :class:`Rejection`; a ``message`` of the hook's own is also part of the context."""
    if message is not None:
        context.setdefault("message", message)
    return Rejection(code, cause, hint, context, message or "")


Verdict = Handshake | SessionRequest[S] | Rejection


@dataclass(slots=True)
class ConnectionRejected:
    """The argument of the ``connection_error`` event: a request the server refused.

    ``code`` and ``message`` are what went on the wire; ``context`` carries the reference's
    context fields (``name``, ``sid``, ``transport``, ...); ``cause`` says in words what was wrong
    and ``hint`` what to change.
    """

    request: HttpRequest
    code: int
    message: str
    context: dict[str, Any]
    cause: str
    hint: str

    def __str__(self) -> str:
        return f"code {self.code} {self.message}: {self.cause}; {self.hint}"


async def verify(
    request: HttpRequest,
    *,
    upgrade: bool,
    options: EngineOptions,
    sessions: Mapping[str, S],
    ended: EndedSessions,
    now: Callable[[], float],
) -> Verdict[S]:
    """The reference's ``verify`` for a request (``upgrade``: a WebSocket upgrade request) to a
    server with ``options``, whose open sessions are ``sessions`` and whose recently ended ones
    are ``ended``; ``now`` is read only to say how long ago a session ended."""
    transport = request.query.get("transport")
    refused = _transport_rejection(request, transport, options.transports, upgrade)
    if refused is not None:
        return refused
    sid = request.query.get("sid")
    if sid:
        session = sessions.get(sid)
        if session is None:
            return _unknown_session(sid, ended, now)
        refused = _transport_mismatch(request, sid, transport, session.transport, upgrade)
        return refused if refused is not None else SessionRequest(session)
    if request.method != "GET":
        return rejection(
            BAD_HANDSHAKE_METHOD,
            f"a session starts with a GET request, got {request.method}",
            "send the handshake as GET ?EIO=4&transport=polling",
            method=request.method,
        )
    if transport == "websocket" and not upgrade:
        return rejection(
            BAD_REQUEST,
            *_plain_http(request, "a transport=websocket request"),
            name="TRANSPORT_HANDSHAKE_ERROR",
        )
    if options.allow_request is not None:
        refused = await run_allow_request(options, request)
        if refused is not None:
            return refused
    return Handshake()


def _transport_rejection(
    request: HttpRequest, transport: str | None, enabled: Sequence[str], upgrade: bool
) -> Rejection | None:
    if transport == "webtransport":
        # The reference refuses it here even when enabled: WebTransport is not HTTP/1.1 (its
        # sessions come through onWebTransportSession, aiosio.transports.webtransport here).
        return rejection(
            UNKNOWN_TRANSPORT,
            "transport 'webtransport' runs over HTTP/3 (QUIC, UDP), not in an HTTP/1.1 request"
            if transport in enabled
            else f"transport 'webtransport' is disabled on this server (transports={enabled!r})",
            "a WebTransport client opens a session on the server's UDP port (the same number "
            "as its HTTPS port unless configured otherwise); enable it with transports=(..., "
            "'webtransport') and serve(..., webtransport=aiosio.WebTransport(...))",
            transport=transport,
        )
    if transport not in enabled:
        if transport in KNOWN_TRANSPORTS:
            return rejection(
                UNKNOWN_TRANSPORT,
                f"transport {transport!r} is disabled on this server (transports={enabled!r})",
                f"connect with transports={list(enabled)!r} on the client, or enable it on the "
                "server",
                transport=transport,
            )
        return rejection(
            UNKNOWN_TRANSPORT,
            "the request has no transport query parameter"
            if transport is None
            else f"unknown transport {transport!r}",
            "is this a Socket.IO/Engine.IO client? the URL needs "
            "?EIO=4&transport=polling or transport=websocket",
            transport=transport,
        )
    if upgrade and transport != "websocket":
        return rejection(
            BAD_REQUEST,
            f"a WebSocket upgrade request asked for transport={transport!r}",
            "WebSocket requests must carry transport=websocket",
            name="TRANSPORT_MISMATCH",
        )
    origin = request.headers.get("origin")
    if origin is not None and _INVALID_HEADER_CHAR.search(origin):
        return rejection(
            BAD_REQUEST,
            "the Origin header holds characters not allowed in a header value",
            "fix the client or proxy that builds the Origin header",
            name="INVALID_ORIGIN",
            origin=origin,
        )
    return None


def _unknown_session(sid: str, ended: EndedSessions, now: Callable[[], float]) -> Rejection:
    record = ended.get(sid)
    if record is not None:
        reason, at = record
        return rejection(
            UNKNOWN_SID,
            f"session {sid} ended {now() - at:.1f}s ago on this server ({reason})",
            "the client must open a new session; socket.io clients reconnect by themselves",
            sid=sid,
            closeReason=reason,
        )
    return rejection(
        UNKNOWN_SID,
        f"session {sid[:64]!r} is not open on this server: it was opened on another server or "
        "process, or before this server restarted",
        "with several servers or workers, enable sticky sessions (nginx ip_hash or a cookie, or "
        "aiosio serve --workers) or connect with transports=['websocket']",
        sid=sid[:64],
    )


def _transport_mismatch(
    request: HttpRequest, sid: str, transport: str | None, previous: str, upgrade: bool
) -> Rejection | None:
    if not upgrade and transport == "websocket":
        return rejection(
            BAD_REQUEST,
            *_plain_http(request, f"the WebSocket request of session {sid}"),
            name="TRANSPORT_MISMATCH",
            transport=transport,
            previousTransport=previous,
        )
    if not upgrade and previous != transport:
        return rejection(
            BAD_REQUEST,
            f"session {sid} runs on {previous}; a {transport} request for it is refused"
            + (" (the session was upgraded)" if previous == "websocket" else ""),
            "requests after an upgrade must use the WebSocket; this is a client bug or a "
            "replayed request",
            name="TRANSPORT_MISMATCH",
            transport=transport,
            previousTransport=previous,
        )
    return None


async def run_allow_request(options: EngineOptions, request: HttpRequest) -> Rejection | None:
    """The hook refuses with ``aiosio.ConnectionRefused(message)`` (the message goes to the
    client, as the reference's ``callback(message, false)``) or by returning ``False``.
    Any other exception is a bug in the hook: logged, and answered with a bare Forbidden
    so that no internal detail reaches the client."""
    from aiosio.errors import ConnectionRefused

    assert options.allow_request is not None
    try:
        result: object = options.allow_request(request)
        if inspect.isawaitable(result):
            result = await result
    except ConnectionRefused as exc:
        message = exc.message or ERROR_MESSAGES[FORBIDDEN]
        # Reference: connection_error has message "Forbidden" and context {message}; the
        # HTTP body carries the hook's message.
        return rejection(
            FORBIDDEN,
            f"allow_request refused the request: {message}",
            "this is the server's own allow_request hook; check what it requires",
            message=message,
        )
    except Exception as exc:
        logger.exception("the allow_request hook raised %s", type(exc).__name__)
        return rejection(
            FORBIDDEN,
            f"the allow_request hook raised {type(exc).__name__}: {exc}",
            "fix the hook; refuse on purpose with raise aiosio.ConnectionRefused(message)",
        )
    if result is False:
        return rejection(
            FORBIDDEN,
            "allow_request returned False",
            "this is the server's own allow_request hook; check what it requires",
        )
    return None


def protocol_of(request: HttpRequest, allow_eio3: bool) -> int | Rejection:
    """The handshake's protocol revision; anything but 4 (or 3 with ``allow_eio3``) is code 5."""
    eio = request.query.get("EIO")
    if eio == "4":
        return 4
    if eio == "3" and allow_eio3:
        return 3
    if eio == "3":
        cause = "the client speaks Engine.IO 3 (socket.io-client 2.x or another v2 client)"
        hint = "upgrade the client to socket.io-client 4.x, or set allow_eio3=True"
    else:
        cause = (
            "the handshake has no EIO query parameter"
            if eio is None
            else f"unknown protocol version EIO={eio[:16]!r}"
        )
        hint = "Socket.IO 3.x/4.x clients send EIO=4; socket.io-client 2.x sends EIO=3"
    return rejection(UNSUPPORTED_PROTOCOL_VERSION, cause, hint, protocol=eio)


def _plain_http(request: HttpRequest, what: str) -> tuple[str, str]:
    """The cause and the fix when a WebSocket request arrived as plain HTTP. An ASGI server
    without a WebSocket library passes the Upgrade header through (the native server never
    does): that is then the cause; without the header, a proxy removed it."""
    if request.headers.get("upgrade", "").lower() == "websocket":
        return (
            f"{what} reached the app as plain HTTP although it carried 'Upgrade: websocket': the "
            "ASGI server was started without a WebSocket library (uvicorn needs websockets or "
            "wsproto)",
            'pip install "aiosio[asgi]" (or pip install websockets) and restart the ASGI server; '
            "until then the client stays on polling",
        )
    return (
        f"{what} arrived as plain HTTP, without the 'Upgrade: websocket' and "
        "'Connection: Upgrade' headers",
        _PROXY_UPGRADE_HINT,
    )
