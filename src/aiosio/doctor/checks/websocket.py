"""A direct WebSocket (what ``transports: ['websocket']`` clients open), then the upgrade of a
polling session when the server offers it."""

from __future__ import annotations

import asyncio

from aiosio.client.errors import ConnectError
from aiosio.client.http import HttpResult
from aiosio.doctor.advice import websocket_only
from aiosio.doctor.checks.handshake import POLLING_REFUSED
from aiosio.doctor.checks.upgrade import check_upgrade
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import describe
from aiosio.doctor.exchange import engine_error
from aiosio.doctor.exchange import handshake_of
from aiosio.doctor.exchange import open_websocket
from aiosio.doctor.exchange import websocket_query
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import is_handshake_message

__all__ = ["check_websocket"]

_PROXY_FIX = (
    "nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
    'proxy_set_header Connection "upgrade"; (HAProxy passes them by default)'
)


async def check_websocket(diagnosis: Diagnosis) -> bool:
    target = diagnosis.target
    conn, result, error = await open_websocket(target, websocket_query())
    if conn is None:
        _refused(diagnosis, result, error)
        return True
    messages: asyncio.Queue[str | bytes] = asyncio.Queue()
    conn.on_message = messages.put_nowait
    conn.start()
    try:
        async with asyncio.timeout(target.options.timeout):
            first = await messages.get()
    except TimeoutError:
        first = ""
    conn.close()
    if is_handshake_message(first):
        diagnosis.report.add(
            Finding("websocket.ok", Verdict.OK, "a direct WebSocket connection works")
        )
        _websocket_only(diagnosis)
    else:
        diagnosis.report.add(
            Finding(
                "websocket.no_handshake",
                Verdict.FAIL,
                "the WebSocket opened but no Engine.IO handshake came over it",
                [f"first message: {str(first)[:80]!r}"],
                "the path is served by another WebSocket server",
            )
        )
    if diagnosis.handshake is not None and diagnosis.handshake.get("upgrades"):
        await check_upgrade(diagnosis)
    return True


def _websocket_only(diagnosis: Diagnosis) -> None:
    """Polling refused with code 0 "Transport unknown" and a WebSocket that works: a
    WebSocket-only server. The refusal becomes what it is, information; the finding says what
    clients must do."""
    refusal = next((f for f in diagnosis.report.findings if f.id == POLLING_REFUSED), None)
    if refusal is None:
        return
    refusal.verdict = Verdict.INFO
    diagnosis.report.add(
        Finding(
            "transport.websocket_only",
            Verdict.WARN,
            "the server accepts WebSocket only: long-polling is refused (code 0 Transport "
            "unknown), so clients that start with polling, as by default, never connect",
            refusal.evidence,
            f"connect with WebSocket only: {websocket_only(diagnosis.options)}; or accept "
            "polling on the server (Node: transports: ['polling', 'websocket']; aiosio: "
            "transports=['polling', 'websocket'])",
        )
    )


def _refused(diagnosis: Diagnosis, result: HttpResult | None, error: ConnectError | None) -> None:
    """No WebSocket: a warning when polling works (clients stay on it), else a failure; but
    first the causes that are not a proxy's: the page's origin refused, no WebSocket at all."""
    if result is not None:
        known = _origin_refused(diagnosis, result) or _not_offered(diagnosis, result)
        if known is not None:
            diagnosis.report.add(known)
            return
        evidence = [
            f"GET {diagnosis.target.path}?{websocket_query()} (Upgrade: websocket) -> "
            f"{describe(result)}"
        ]
        ident, cause = _http_refusal(result)
        fix = _PROXY_FIX
    else:
        assert error is not None
        evidence = [str(error)]
        cause = f"the WebSocket connection fails: {error.message}"
        ident = "websocket.failed"
        fix = "a proxy or firewall blocks WebSocket; check its configuration"
    stuck = diagnosis.handshake is not None
    diagnosis.report.add(
        Finding(
            "websocket.stuck_in_polling" if stuck else ident,
            Verdict.WARN if stuck else Verdict.FAIL,
            ("clients are stuck in long-polling: " if stuck else "") + cause,
            evidence,
            fix,
            data={"cause": ident},
        )
    )


def _origin_refused(diagnosis: Diagnosis, result: HttpResult) -> Finding | None:
    """The origin refused on polling is refused here too: the same cause, not a proxy's."""
    origin = diagnosis.options.origin
    refused = any(f.id == "cors.origin_refused" for f in diagnosis.report.findings)
    if result.status != 403 or not origin or not refused:
        return None
    return Finding(
        "websocket.origin_refused",
        Verdict.FAIL,
        f"the WebSocket handshake is refused (403) for the origin {origin}, as long-polling is",
        [
            f"GET {diagnosis.target.path}?{websocket_query()} (Upgrade: websocket, "
            f"Origin: {origin}) -> {describe(result)}"
        ],
        f"add {origin} to the server's CORS origins (browsers send it on WebSocket too)",
    )


def _not_offered(diagnosis: Diagnosis, result: HttpResult) -> Finding | None:
    """The server offers no upgrade and refuses a WebSocket: it has no WebSocket transport (a
    proxy that drops the Upgrade headers leaves the server's offer as it is)."""
    handshake = diagnosis.handshake
    if handshake is None or handshake.get("upgrades"):
        return None
    return Finding(
        "websocket.not_offered",
        Verdict.WARN,
        "the server has no WebSocket transport: clients stay on long-polling, and those that "
        "ask for WebSocket only cannot connect",
        [
            "the handshake offers no upgrade",
            f"GET {diagnosis.target.path}?{websocket_query()} (Upgrade: websocket) -> "
            f"{describe(result)}",
        ],
        "accept WebSocket on the server (Node: transports: ['polling', 'websocket']; aiosio: "
        "transports=['polling', 'websocket']), or keep 'polling' in the clients' transports",
    )


def _http_refusal(result: HttpResult) -> tuple[str, str]:
    """The finding id and the cause for a WebSocket request answered in plain HTTP."""
    body = result.body.decode("utf-8", "replace")
    if (result.status == 400 and "Bad request" in body) or engine_error(result.body) == (
        3,
        "Bad request",
    ):
        return "websocket.upgrade_headers_dropped", (
            "the server saw a WebSocket request without its Upgrade headers: a proxy drops "
            "'Upgrade' and 'Connection'"
        )
    if result.status == 200 and handshake_of(result) is not None:
        return "websocket.upgrade_headers_dropped", (
            "the request reached the server as plain HTTP: a proxy drops the Upgrade headers"
        )
    if result.status in (403, 401):
        return "websocket.forbidden", f"the WebSocket handshake is refused ({result.status})"
    return "websocket.refused", f"the WebSocket handshake is answered {result.status}"
