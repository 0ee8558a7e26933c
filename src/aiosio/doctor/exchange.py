"""The doctor's exchanges with the deployment: HTTP requests bounded by ``--timeout``, the
polling queries of Engine.IO 4, a new polling session, a WebSocket, and how an answer is shown
as evidence."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any
from urllib.parse import parse_qs

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.errors import engine_error
from aiosio.client.http import HttpResult
from aiosio.client.http import WebSocketConnection
from aiosio.doctor import packets
from aiosio.doctor.target import Target

__all__ = [
    "POST_HEADERS",
    "close_session",
    "close_sessions",
    "describe",
    "engine_error",
    "handshake_of",
    "open_session",
    "open_websocket",
    "polling_query",
    "post",
    "request",
    "request_quiet",
    "try_request",
    "websocket_query",
]

# What a browser's XMLHttpRequest sends with a polling POST.
POST_HEADERS = {"Content-Type": "text/plain;charset=UTF-8"}


def polling_query(sid: str | None = None, *, cache_buster: bool = True, revision: int = 4) -> str:
    """The query of an Engine.IO long-polling request, with a fresh ``t`` as clients add."""
    query = f"EIO={revision}&transport=polling"
    if cache_buster:
        query += f"&t={secrets.token_hex(4)}"
    return query + (f"&sid={sid}" if sid is not None else "")


def websocket_query(sid: str | None = None) -> str:
    """The query of an Engine.IO 4 WebSocket: a new session, or the upgrade of ``sid``."""
    return "EIO=4&transport=websocket" + (f"&sid={sid}" if sid is not None else "")


def describe(result: HttpResult) -> str:
    """An answer as evidence: status, content type, the start of the body."""
    body = result.body[:160].decode("utf-8", "replace").replace("\n", " ")
    ctype = result.header("content-type") or "-"
    return f"HTTP {result.status} ({ctype}) {body!r}"


def handshake_of(result: HttpResult | None) -> dict[str, Any] | None:
    """The handshake of a polling answer that opens a session, else ``None``."""
    if result is None or result.status != 200:
        return None
    return packets.handshake_of_payload(result.body)


async def request(
    target: Target,
    method: str,
    query: str,
    *,
    path: str | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    origin: bool = True,
) -> HttpResult:
    """One request on a new connection; raises :class:`ConnectError`, with stage TIMEOUT when
    no answer came within ``--timeout``."""
    conn = target.connection()
    url_path = (path or target.path) + ("?" + query if query else "")
    try:
        async with asyncio.timeout(target.options.timeout):
            result = await conn.request(
                method,
                url_path,
                target.headers(headers, origin=origin),
                body,
                url=target.origin_url + url_path,
            )
    except TimeoutError:
        raise ConnectError(
            Stage.TIMEOUT,
            f"{method} {url_path} got no answer within {target.options.timeout}s",
            url=target.origin_url + url_path,
        ) from None
    finally:
        conn.close()
    sid = _sid_of(query)
    if sid is None and method == "GET":
        opened = handshake_of(result)
        if opened is not None and isinstance(opened.get("sid"), str):
            target.sessions.add(opened["sid"])
    elif sid is not None and method == "POST" and body == packets.CLOSE_PAYLOAD:
        target.sessions.discard(sid)
    return result


def _sid_of(query: str) -> str | None:
    sid = parse_qs(query).get("sid")
    return sid[0] if sid else None


async def try_request(
    target: Target, method: str, query: str, path: str | None = None, *, origin: bool = True
) -> HttpResult | None:
    """:func:`request`, ``None`` when it fails."""
    try:
        return await request(target, method, query, path=path, origin=origin)
    except ConnectError:
        return None


async def request_quiet(
    target: Target,
    method: str,
    query: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> HttpResult | None:
    """:func:`request`, ``None`` when it fails or takes longer than ``--timeout``."""
    try:
        async with asyncio.timeout(target.options.timeout):
            return await request(target, method, query, body=body, headers=headers)
    except (ConnectError, TimeoutError):
        return None


async def open_session(target: Target) -> dict[str, Any] | None:
    """A new polling session's handshake, ``None`` when none opens."""
    return handshake_of(await try_request(target, "GET", polling_query()))


async def post(
    target: Target, sid: str, body: bytes, *, cache_buster: bool = False
) -> HttpResult | None:
    """A polling POST of ``body`` to session ``sid``; ``None`` when it fails."""
    query = polling_query(sid, cache_buster=cache_buster)
    return await request_quiet(target, "POST", query, body, POST_HEADERS)


async def close_session(target: Target, sid: str) -> None:
    """Close session ``sid``: the doctor leaves nothing behind."""
    await request_quiet(
        target, "POST", polling_query(sid, cache_buster=False), packets.CLOSE_PAYLOAD
    )


async def close_sessions(target: Target) -> None:
    """Close the polling sessions still open (those upgraded to a WebSocket close with it)."""
    await asyncio.gather(*(close_session(target, sid) for sid in sorted(target.sessions)))


async def open_websocket(
    target: Target, query: str
) -> tuple[WebSocketConnection | None, HttpResult | None, ConnectError | None]:
    """A WebSocket to the Socket.IO path: the connection, else the HTTP answer that refused it
    (if any) or the error."""
    try:
        conn, result = await WebSocketConnection.connect(
            target.endpoint,
            f"{target.path}?{query}",
            target.headers(),
            max_message_size=10_000_000,
            url=target.origin_url + target.path,
        )
    except ConnectError as error:
        return None, None, error
    sid = _sid_of(query)
    if sid is not None and conn is not None:
        target.sessions.discard(sid)  # upgraded: it closes with this WebSocket
    return conn, result, None
