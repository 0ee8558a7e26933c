"""Why no Engine.IO 4 session opens: the rules an expert tries in turn on the answer to the
handshake (a refusal code, an older protocol, the endpoint at another path, something that is
not Socket.IO), the first that explains it giving the finding."""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import replace

from aiosio.client.errors import ConnectError
from aiosio.client.http import HttpResult
from aiosio.client.http import WebSocketConnection
from aiosio.doctor.advice import path_option
from aiosio.doctor.exchange import describe
from aiosio.doctor.exchange import engine_error
from aiosio.doctor.exchange import handshake_of
from aiosio.doctor.exchange import polling_query
from aiosio.doctor.exchange import try_request
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Report
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import is_v3_handshake
from aiosio.doctor.target import Target
from aiosio.doctor.target import norm_path

__all__ = ["explain_handshake_failure"]

# (target, the handshake's answer, the evidence so far) -> the finding, or None: not this cause.
Rule = Callable[[Target, HttpResult, list[str]], Awaitable[Finding | None]]

_REFUSAL_FIXES = {
    0: "the server does not accept polling: try --transport websocket, or enable polling on the "
    "server",
    3: "the server refused the request; its log says why",
    4: "refused by the server's allowRequest hook or its origin check",
}


async def explain_handshake_failure(
    target: Target, result: HttpResult, evidence: list[str], report: Report
) -> None:
    for rule in _RULES:
        finding = await rule(target, result, evidence)
        if finding is not None:
            report.add(finding)
            return
    report.add(
        Finding(
            "server.not_socketio",
            Verdict.FAIL,
            f"the server at {target.path} is not a Socket.IO server",
            evidence,
            "check the URL and the path",
        )
    )


async def _refused_version(
    target: Target, result: HttpResult, evidence: list[str]
) -> Finding | None:
    error = engine_error(result.body)
    if error is None or error[0] != 5:
        return None
    v3 = await try_request(target, "GET", polling_query(revision=3))
    if v3 is not None:
        evidence.append(f"GET {target.path}?EIO=3&transport=polling -> {describe(v3)}")
    return Finding(
        "version.server_rejects_v4",
        Verdict.FAIL,
        "the server refuses Engine.IO 4: code 5 Unsupported protocol version",
        evidence,
        "server and client versions must match: socket.io 3.x/4.x clients need a 3.x/4.x server "
        "(with allowEIO3 it also accepts 2.x clients); socket.io 2.x servers need 2.x clients",
    )


async def _refused(target: Target, result: HttpResult, evidence: list[str]) -> Finding | None:
    error = engine_error(result.body)
    if error is None:
        return None
    code, message = error
    return Finding(
        f"handshake.refused_code_{code}",
        Verdict.FAIL,
        f"the server refused the handshake: code {code} {message}",
        evidence,
        _REFUSAL_FIXES.get(code, "see the server's log"),
    )


async def _v2_server(target: Target, result: HttpResult, evidence: list[str]) -> Finding | None:
    if result.status != 200 or not is_v3_handshake(result.body):
        return None
    return Finding(
        "version.v2_server",
        Verdict.FAIL,
        "the server speaks Engine.IO 3 (socket.io 2.x)",
        evidence,
        "socket.io 2.x servers need 2.x clients; upgrade the server to socket.io 4.x "
        "(allowEIO3: true keeps 2.x clients working)",
    )


async def _elsewhere(target: Target, result: HttpResult, evidence: list[str]) -> Finding | None:
    """Not a handshake: is the endpoint at another path (the URL's, without its slash, the
    defaults)?"""
    url_path = norm_path(target.url_path) if target.url_path.strip("/") else ""
    # A server mounted under a prefix (FastAPI's app.mount("/ws", sio.asgi())) answers at
    # /ws/socket.io/: the URL's path is the mount point, not a namespace.
    mounted = f"{url_path}socket.io/" if url_path and url_path != target.path else ""
    candidates = (
        mounted,
        url_path,
        target.path.rstrip("/"),
        "/socket.io/",
        "/socket.io",
        "/engine.io/",
    )
    for path in dict.fromkeys((*candidates, "/")):
        if not path or path == target.path:
            continue
        answer = await try_request(target, "GET", polling_query(), path=path)
        if answer is None:
            continue
        evidence.append(f"GET {path}?EIO=4&transport=polling -> {describe(answer)}")
        if handshake_of(answer) is not None:
            return Finding(
                "path.mismatch",
                Verdict.FAIL,
                f"nothing answers at {target.path}, but a Socket.IO server answers at {path}",
                evidence,
                f"set the path on the client: {path_option(target.options, path)} (the path "
                "option, not the URL: io('https://host/admin') means namespace /admin at the "
                "default path)",
            )
    return None


async def _plain_websocket(
    target: Target, result: HttpResult, evidence: list[str]
) -> Finding | None:
    url_path = target.path.rstrip("/") or "/"
    for path in dict.fromkeys([url_path, "/"]):
        if await _websocket_opens(target, path):
            evidence.append(f"WebSocket GET {path} (no Engine.IO query) -> 101 Switching Protocols")
            return Finding(
                "server.plain_websocket",
                Verdict.FAIL,
                "a plain WebSocket server answers, not a Socket.IO server",
                evidence,
                "a Socket.IO client cannot talk to a plain WebSocket server (not even with "
                "transports: ['websocket']); use a WebSocket client, or run a Socket.IO server",
            )
    return None


async def _websocket_opens(target: Target, path: str) -> bool:
    """Whether a WebSocket without an Engine.IO query opens at ``path``."""
    try:
        conn, _answer = await WebSocketConnection.connect(
            replace(target.endpoint, trace=None),
            path,
            {"User-Agent": "aiosio-doctor"},
            max_message_size=1_000_000,
            url=target.origin_url + path,
        )
    except ConnectError:
        return False
    if conn is None:
        return False
    conn.close()
    return True


async def _not_found(target: Target, result: HttpResult, evidence: list[str]) -> Finding | None:
    if result.status != 404:
        return None
    server = result.header("server") or ""
    proxy = "nginx" in server.lower() or "apache" in server.lower()
    return Finding(
        "path.not_found_proxy" if proxy else "path.not_found",
        Verdict.FAIL,
        f"{target.path} answers 404"
        + (f" from {server}" if server else "")
        + ": no Socket.IO server at this path",
        evidence,
        "check the proxy's location for the Socket.IO path (and that it forwards to the server) "
        "and the `path` option on both sides",
    )


async def _upstream_down(target: Target, result: HttpResult, evidence: list[str]) -> Finding | None:
    if result.status not in (502, 503, 504):
        return None
    return Finding(
        "proxy.upstream_down",
        Verdict.FAIL,
        f"a proxy answers {result.status}: the Socket.IO server behind it is unreachable",
        evidence,
        "start the Socket.IO server, or fix the proxy's upstream address",
    )


async def _html_page(target: Target, result: HttpResult, evidence: list[str]) -> Finding | None:
    if "html" not in (result.header("content-type") or ""):
        return None
    return Finding(
        "server.html_page",
        Verdict.FAIL,
        f"an HTML page answers at {target.path}, not a Socket.IO server",
        evidence,
        "a web server or an SPA fallback serves this path; route the Socket.IO path to the "
        "Socket.IO server",
    )


# In this order: the first that explains the answer gives the finding.
_RULES: tuple[Rule, ...] = (
    _refused_version,
    _refused,
    _v2_server,
    _elsewhere,
    _plain_websocket,
    _not_found,
    _upstream_down,
    _html_page,
)
