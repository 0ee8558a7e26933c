"""The checks of ``aiosio doctor``, in the order an expert runs them with curl and DevTools.

Each check reads what the deployment answers, never needs its cooperation, and records a
:class:`~aiosio.doctor.findings.Finding` with a stable id, the exchange that shows it and the fix.
It works against Node socket.io, python-socketio and aiosio servers alike.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import ssl as ssl_module
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiosio.client.errors import ConnectError, Stage
from aiosio.client.http import HttpConnection, HttpResult, Trace, WebSocketConnection, open_stream
from aiosio.doctor.findings import Finding, Report, Verdict
from aiosio.protocol.engineio import PacketType, PayloadError, decode_payload

__all__ = ["DoctorOptions", "diagnose"]

_V3_HANDSHAKE = re.compile(rb"^[0-9]{1,6}:0\{")


@dataclass(slots=True, kw_only=True)
class DoctorOptions:
    url: str
    path: str | None = None
    namespace: str | None = None
    auth: dict[str, Any] | None = None
    origin: str | None = None
    credentials: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    transport: str | None = None  # "polling" or "websocket": only that one
    soak: float = 0.0
    probe_payload: bool = False
    insecure: bool = False
    ca: str | None = None
    timeout: float = 10.0
    sticky_sessions: int = 6
    sticky_requests: int = 3
    ping_samples: int = 5
    trace: Trace | None = None


class _Target:
    def __init__(self, options: DoctorOptions) -> None:
        parts = urlsplit(options.url if "://" in options.url else "http://" + options.url)
        scheme = parts.scheme.lower()
        self.secure = scheme in ("https", "wss")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.secure else 80)
        url_path = parts.path or "/"
        self.url_path = url_path
        if options.path:
            self.path = _norm(options.path)
            self.namespace = options.namespace or (url_path.rstrip("/") or "/")
        elif url_path.rstrip("/").endswith("socket.io") or url_path.rstrip("/").endswith(
            "engine.io"
        ):
            # `doctor https://host/socket.io/` names the endpoint, not a namespace.
            self.path = _norm(url_path)
            self.namespace = options.namespace or "/"
        else:
            self.path = "/socket.io/"
            self.namespace = options.namespace or (url_path.rstrip("/") or "/")
        self.ssl: ssl_module.SSLContext | None = None
        if self.secure:
            context = ssl_module.create_default_context(cafile=options.ca)
            if options.insecure:
                context.check_hostname = False
                context.verify_mode = ssl_module.CERT_NONE
            self.ssl = context
        self.options = options
        self.cors_checked = False
        self.handshake_rtt = 0.0  # ms
        self.ping_rtts: list[float] = []  # ms, one per upgraded session

    @property
    def origin_url(self) -> str:
        scheme = "https" if self.secure else "http"
        default = 443 if self.secure else 80
        return f"{scheme}://{self.host}" + ("" if self.port == default else f":{self.port}")

    def connection(self) -> HttpConnection:
        return HttpConnection(
            self.host,
            self.port,
            secure=self.secure,
            ssl_context=self.ssl,
            timeout=self.options.timeout,
            max_body=10_000_000,
            trace=self.options.trace,
        )

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "*/*", "User-Agent": "aiosio-doctor"}
        if self.options.origin:
            headers["Origin"] = self.options.origin
        headers.update(self.options.headers)
        if extra:
            headers.update(extra)
        return headers


def _norm(path: str) -> str:
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def _t() -> str:
    return secrets.token_hex(4)


def _describe(result: HttpResult) -> str:
    body = result.body[:160].decode("utf-8", "replace").replace("\n", " ")
    ctype = result.header("content-type") or "-"
    return f"HTTP {result.status} ({ctype}) {body!r}"


async def _request(
    target: _Target,
    method: str,
    query: str,
    *,
    path: str | None = None,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    connection: HttpConnection | None = None,
) -> HttpResult:
    conn = connection or target.connection()
    url_path = (path or target.path) + ("?" + query if query else "")
    try:
        async with asyncio.timeout(target.options.timeout):
            return await conn.request(
                method, url_path, target.headers(headers), body, url=target.origin_url + url_path
            )
    except TimeoutError:
        raise ConnectError(
            Stage.TIMEOUT,
            f"{method} {url_path} got no answer within {target.options.timeout}s",
            url=target.origin_url + url_path,
        ) from None
    finally:
        if connection is None:
            conn.close()


def _handshake_of(result: HttpResult) -> dict[str, Any] | None:
    if result.status != 200:
        return None
    try:
        packets = decode_payload(result.body, 4)
    except PayloadError:
        return None
    if not packets or packets[0].type is not PacketType.OPEN:
        return None
    try:
        data = json.loads(packets[0].data)
    except ValueError:
        return None
    return data if isinstance(data, dict) and "sid" in data else None


# -- network --------------------------------------------------------------------------------------


async def check_network(target: _Target, report: Report) -> bool:
    """Name resolution, TCP, TLS: one finding for the first that fails, else ok lines."""
    loop = asyncio.get_running_loop()
    started = time.perf_counter()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        report.add(
            Finding(
                "dns.unresolvable",
                Verdict.FAIL,
                f"the host name {target.host} does not resolve",
                [f"getaddrinfo({target.host!r}): {exc.strerror}"],
                "check the host name in the URL, and DNS on the client's network",
            )
        )
        return False
    addresses = sorted({str(i[4][0]) for i in infos})
    report.add(Finding("dns.ok", Verdict.OK, f"{target.host} resolves to {', '.join(addresses)}"))
    try:
        _reader, writer = await open_stream(
            target.host,
            target.port,
            secure=target.secure,
            ssl_context=target.ssl,
            timeout=target.options.timeout,
            url=target.origin_url,
        )
    except ConnectError as error:
        report.add(_network_finding(target, error))
        return False
    writer.close()
    elapsed = (time.perf_counter() - started) * 1000
    report.add(
        Finding(
            "tcp.ok",
            Verdict.OK,
            f"TCP{' and TLS' if target.secure else ''} to {target.host}:{target.port} in "
            f"{elapsed:.0f} ms",
            data={"connect_ms": round(elapsed, 1)},
        )
    )
    return True


def _network_finding(target: _Target, error: ConnectError) -> Finding:
    where = f"{target.host}:{target.port}"
    if error.stage is Stage.TLS:
        message = error.message.lower()
        if "self-signed" in message or "self signed" in message:
            ident = "tls.self_signed"
            fix = (
                "trust the certificate on the client (aiosio.Client(ssl=ssl.create_default_context"
                "(cafile='cert.pem')), Node: ca: fs.readFileSync('cert.pem')) or use a certificate "
                "from a public CA; --ca FILE checks with it"
            )
        elif "hostname" in message or "mismatch" in message:
            ident = "tls.wrong_host"
            fix = (
                f"the certificate is not for {target.host}: connect with the name it was issued for"
            )
        elif "expired" in message:
            ident = "tls.expired"
            fix = "renew the server's certificate"
        elif "wrong version number" in message or "record layer failure" in message:
            ident = "tls.not_tls"
            fix = (
                f"{where} does not speak TLS (an HTTP server answers there): use http:// and "
                "ws://, or serve TLS on it (aiosio serve --certfile --keyfile, or a TLS proxy)"
            )
        else:
            ident = "tls.failed"
            fix = error.hint or "check the server's TLS configuration"
        return Finding(
            ident, Verdict.FAIL, f"TLS with {where} fails: {error.message}", [str(error)], fix
        )
    if error.stage is Stage.TIMEOUT:
        return Finding(
            "tcp.timeout",
            Verdict.FAIL,
            f"{where} does not answer (connect timed out)",
            [str(error)],
            "a firewall drops the packets or the host is down",
        )
    return Finding(
        "tcp.refused" if "refused" in error.message else "tcp.unreachable",
        Verdict.FAIL,
        error.message,
        [str(error)],
        error.hint or "is the server running on this host and port?",
    )


async def _speaks_tls(target: _Target) -> bool:
    """Whether a TLS handshake (certificate not checked) succeeds on the target's port."""
    context = ssl_module.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl_module.CERT_NONE
    try:
        _reader, writer = await open_stream(
            target.host,
            target.port,
            secure=True,
            ssl_context=context,
            timeout=target.options.timeout,
            url=target.origin_url,
        )
    except ConnectError:
        return False
    writer.close()
    return True


# -- the Engine.IO handshake -----------------------------------------------------------------------


async def check_handshake(target: _Target, report: Report) -> dict[str, Any] | None:
    query = f"EIO=4&transport=polling&t={_t()}"
    started = time.perf_counter()
    try:
        result = await _request(target, "GET", query)
    except ConnectError as error:
        # A TLS server closes an HTTP request at once; one that did not answer in time is
        # something else (and probing it would wait a second timeout).
        if not target.secure and error.stage is not Stage.TIMEOUT and await _speaks_tls(target):
            report.add(
                Finding(
                    "tls.expected",
                    Verdict.FAIL,
                    f"{target.host}:{target.port} speaks TLS, and the URL says http://",
                    [str(error), "a TLS handshake on the same port succeeds"],
                    "use https:// (the client then uses wss:// for the WebSocket)",
                )
            )
            return None
        report.add(
            Finding(
                "handshake.no_http",
                Verdict.FAIL,
                f"{target.path} did not answer as an HTTP server: {error.message}",
                [str(error)],
                "something that is not an HTTP server listens on this port",
            )
        )
        return None
    rtt = (time.perf_counter() - started) * 1000
    target.handshake_rtt = rtt
    handshake = _handshake_of(result)
    evidence = [f"GET {target.path}?{query} -> {_describe(result)}"]
    if handshake is None and result.status == 403 and target.options.origin:
        # Refused for the Origin? Try again without it, as a non-browser client would.
        origin, target.options.origin = target.options.origin, None
        try:
            plain = await _try(target, "GET", f"EIO=4&transport=polling&t={_t()}")
        finally:
            target.options.origin = origin
        handshake = _handshake_of(plain) if plain is not None else None
        if handshake is not None:
            report.add(
                Finding(
                    "cors.origin_refused",
                    Verdict.FAIL,
                    f"the server refuses the origin {origin} (403); without an Origin it answers",
                    evidence,
                    f"add {origin} to the server's CORS origins",
                )
            )
            target.cors_checked = True
            return handshake
    if handshake is not None:
        report.add(
            Finding(
                "handshake.ok",
                Verdict.OK,
                f"Engine.IO 4 handshake at {target.path} in {rtt:.0f} ms",
                evidence,
                data={"handshake": handshake, "rtt_ms": round(rtt, 1)},
            )
        )
        return handshake
    await _explain_handshake_failure(target, result, evidence, report)
    return None


async def _explain_handshake_failure(
    target: _Target, result: HttpResult, evidence: list[str], report: Report
) -> None:
    body = result.body
    error = _engine_error(body)
    if error is not None and error[0] == 5:
        v3 = await _try(target, "GET", f"EIO=3&transport=polling&t={_t()}")
        if v3 is not None:
            evidence.append(f"GET {target.path}?EIO=3&transport=polling -> {_describe(v3)}")
        report.add(
            Finding(
                "version.server_rejects_v4",
                Verdict.FAIL,
                "the server refuses Engine.IO 4: code 5 Unsupported protocol version",
                evidence,
                "server and client versions must match: socket.io 3.x/4.x clients need a "
                "3.x/4.x server (with allowEIO3 it also accepts 2.x clients); socket.io 2.x "
                "servers need 2.x clients",
            )
        )
        return
    if error is not None:
        code, message = error
        report.add(
            Finding(
                f"handshake.refused_code_{code}",
                Verdict.FAIL,
                f"the server refused the handshake: code {code} {message}",
                evidence,
                {
                    0: "the server does not accept polling: try --transport websocket, or enable "
                    "polling on the server",
                    3: "the server refused the request; its log says why",
                    4: "refused by the server's allowRequest hook or its origin check",
                }.get(code, "see the server's log"),
            )
        )
        return
    if result.status == 200 and _V3_HANDSHAKE.match(body):
        report.add(
            Finding(
                "version.v2_server",
                Verdict.FAIL,
                "the server speaks Engine.IO 3 (socket.io 2.x)",
                evidence,
                "socket.io 2.x servers need 2.x clients; upgrade the server to socket.io 4.x "
                "(allowEIO3: true keeps 2.x clients working)",
            )
        )
        return
    # Not a handshake: find out what answered instead, and where the endpoint might be.
    content_type = result.header("content-type") or ""
    alternatives = await _probe_alternatives(target, evidence)
    if alternatives:
        path = alternatives[0]
        report.add(
            Finding(
                "path.mismatch",
                Verdict.FAIL,
                f"nothing answers at {target.path}, but a Socket.IO server answers at {path}",
                evidence,
                f"set path: '{path}' on the client (the path option, not the URL: "
                "io('https://host/admin') means namespace /admin at the default path)",
            )
        )
        return
    if await _is_plain_websocket(target, evidence):
        report.add(
            Finding(
                "server.plain_websocket",
                Verdict.FAIL,
                "a plain WebSocket server answers, not a Socket.IO server",
                evidence,
                "a Socket.IO client cannot talk to a plain WebSocket server (not even with "
                "transports: ['websocket']); use a WebSocket client, or run a Socket.IO server",
            )
        )
        return
    server = result.header("server") or ""
    if result.status == 404:
        ident = (
            "path.not_found_proxy"
            if "nginx" in server.lower() or "apache" in server.lower()
            else "path.not_found"
        )
        report.add(
            Finding(
                ident,
                Verdict.FAIL,
                f"{target.path} answers 404"
                + (f" from {server}" if server else "")
                + ": no Socket.IO server at this path",
                evidence,
                "check the proxy's location for the Socket.IO path (and that it forwards to the "
                "server) and the `path` option on both sides",
            )
        )
        return
    if result.status in (502, 503, 504):
        report.add(
            Finding(
                "proxy.upstream_down",
                Verdict.FAIL,
                f"a proxy answers {result.status}: the Socket.IO server behind it is unreachable",
                evidence,
                "start the Socket.IO server, or fix the proxy's upstream address",
            )
        )
        return
    if "html" in content_type:
        report.add(
            Finding(
                "server.html_page",
                Verdict.FAIL,
                f"an HTML page answers at {target.path}, not a Socket.IO server",
                evidence,
                "a web server or an SPA fallback serves this path; route the Socket.IO path to "
                "the Socket.IO server",
            )
        )
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


def _engine_error(body: bytes) -> tuple[int, str] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if isinstance(value, dict) and isinstance(value.get("code"), int):
        return int(value["code"]), str(value.get("message", ""))
    return None


async def _try(
    target: _Target, method: str, query: str, path: str | None = None
) -> HttpResult | None:
    try:
        return await _request(target, method, query, path=path)
    except ConnectError:
        return None


async def _probe_alternatives(target: _Target, evidence: list[str]) -> list[str]:
    candidates = []
    stripped = target.path.rstrip("/")
    url_path = _norm(target.url_path) if target.url_path.strip("/") else ""
    for path in (url_path, stripped, "/socket.io/", "/socket.io", "/engine.io/", "/"):
        if path and path != target.path and path not in candidates:
            candidates.append(path)
    found = []
    for path in candidates:
        result = await _try(target, "GET", f"EIO=4&transport=polling&t={_t()}", path=path)
        if result is None:
            continue
        evidence.append(f"GET {path}?EIO=4&transport=polling -> {_describe(result)}")
        if _handshake_of(result) is not None:
            found.append(path)
            break
    return found


async def _is_plain_websocket(target: _Target, evidence: list[str]) -> bool:
    url_path = target.path.rstrip("/") or "/"
    for path in dict.fromkeys([url_path, "/"]):
        try:
            conn, _answer = await WebSocketConnection.connect(
                target.host,
                target.port,
                path,
                {"User-Agent": "aiosio-doctor"},
                secure=target.secure,
                ssl_context=target.ssl,
                timeout=target.options.timeout,
                max_message_size=1_000_000,
                url=target.origin_url + path,
            )
        except ConnectError:
            continue
        if conn is None:
            continue
        conn.close()
        evidence.append(f"WebSocket GET {path} (no Engine.IO query) -> 101 Switching Protocols")
        return True
    return False


# -- what the handshake says -----------------------------------------------------------------------


def check_settings(handshake: dict[str, Any], report: Report) -> None:
    interval = handshake.get("pingInterval", 0) / 1000
    timeout = handshake.get("pingTimeout", 0) / 1000
    max_payload = handshake.get("maxPayload")
    upgrades = handshake.get("upgrades", [])
    report.add(
        Finding(
            "settings.heartbeat",
            Verdict.INFO,
            f"heartbeat: a ping every {interval:g}s, the client must answer within {timeout:g}s; a "
            f"silent connection is declared dead after {interval + timeout:g}s",
            [
                f"proxies must allow idle connections longer than {interval:g}s (nginx "
                f"proxy_read_timeout, HAProxy timeout tunnel)",
                f"maxPayload {max_payload} bytes: larger messages close the connection"
                if max_payload
                else "no maxPayload advertised",
                f"upgrades offered: {upgrades or 'none (the server has no WebSocket transport)'}",
            ],
            data={"ping_interval": interval, "ping_timeout": timeout, "max_payload": max_payload},
        )
    )
    if not upgrades:
        report.add(
            Finding(
                "settings.no_upgrades",
                Verdict.INFO,
                "the server offers no WebSocket upgrade: clients stay on long-polling",
                fix="enable the websocket transport on the server if clients should upgrade",
            )
        )


# -- CORS ------------------------------------------------------------------------------------------


async def check_cors(target: _Target, report: Report) -> None:
    origin = target.options.origin
    assert origin is not None
    query = f"EIO=4&transport=polling&t={_t()}"
    result = await _try(target, "GET", query)
    if result is None:
        return
    evidence = [f"GET {target.path}?{query} with Origin: {origin} -> {_describe(result)}"]
    values = [v for k, v in result.headers if k.lower() == "access-control-allow-origin"]
    credentials = [v for k, v in result.headers if k.lower() == "access-control-allow-credentials"]
    evidence += [f"Access-Control-Allow-Origin: {v}" for v in values]
    evidence += [f"Access-Control-Allow-Credentials: {v}" for v in credentials]
    if result.status == 403 and not values:
        report.add(
            Finding(
                "cors.origin_refused",
                Verdict.FAIL,
                f"the server refuses the origin {origin} (403)",
                evidence,
                f"add {origin} to the server's cors origins",
            )
        )
        return
    if len(values) > 1:
        report.add(
            Finding(
                "cors.duplicate_header",
                Verdict.FAIL,
                "Access-Control-Allow-Origin appears more than once: browsers refuse the response",
                evidence,
                "both the proxy and the server add CORS headers: remove them from the proxy (or "
                "from the server), not from both",
            )
        )
        return
    if not values:
        report.add(
            Finding(
                "cors.missing",
                Verdict.FAIL,
                f"no Access-Control-Allow-Origin for {origin}: a browser page from this origin "
                "cannot use long-polling",
                evidence,
                f"configure CORS on the Socket.IO server for {origin} (Node: new Server({{cors: "
                f"{{origin: '{origin}'}}}}); aiosio: cors=aiosio.Cors(origins=['{origin}'])), or "
                "use transports: ['websocket'] (no CORS for WebSocket)",
            )
        )
        return
    value = values[0]
    if value not in ("*", origin):
        report.add(
            Finding(
                "cors.other_origin",
                Verdict.FAIL,
                f"Access-Control-Allow-Origin is {value!r}, not {origin!r}",
                evidence,
                f"allow {origin} on the server (the value must equal the page's origin exactly: "
                "scheme, host and port, no trailing slash)",
            )
        )
        return
    if target.options.credentials and value == "*":
        report.add(
            Finding(
                "cors.wildcard_with_credentials",
                Verdict.FAIL,
                "Access-Control-Allow-Origin is * but the client sends credentials: browsers "
                "refuse it",
                evidence,
                "list the origin explicitly (or origin: true to reflect it) with credentials: true",
            )
        )
        return
    if target.options.credentials and not any(v.lower() == "true" for v in credentials):
        report.add(
            Finding(
                "cors.credentials_missing",
                Verdict.FAIL,
                "the client sends credentials but the server does not answer "
                "Access-Control-Allow-Credentials: true",
                evidence,
                "set credentials: true in the server's CORS options (and withCredentials: true on "
                "the client)",
            )
        )
        return
    preflight = await _try_preflight(target)
    if preflight is not None and preflight.status >= 400:
        report.add(
            Finding(
                "cors.preflight_refused",
                Verdict.FAIL,
                f"the preflight of the polling POST is refused ({preflight.status})",
                [*evidence, f"OPTIONS {target.path} -> {_describe(preflight)}"],
                "answer OPTIONS on the Socket.IO path with the CORS headers (the Socket.IO "
                "server does it; a proxy must not block it)",
            )
        )
        return
    report.add(Finding("cors.ok", Verdict.OK, f"CORS allows {origin}", evidence))


async def _try_preflight(target: _Target) -> HttpResult | None:
    conn = target.connection()
    try:
        return await conn.request(
            "OPTIONS",
            f"{target.path}?EIO=4&transport=polling",
            target.headers(
                {
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type",
                }
            ),
            url=target.origin_url + target.path,
        )
    except ConnectError:
        return None
    finally:
        conn.close()


# -- WebSocket ------------------------------------------------------------------------------------


async def _websocket(
    target: _Target, query: str
) -> tuple[WebSocketConnection | None, HttpResult | None, ConnectError | None]:
    try:
        conn, result = await WebSocketConnection.connect(
            target.host,
            target.port,
            f"{target.path}?{query}",
            target.headers(),
            secure=target.secure,
            ssl_context=target.ssl,
            timeout=target.options.timeout,
            max_message_size=10_000_000,
            url=target.origin_url + target.path,
            trace=target.options.trace,
        )
    except ConnectError as error:
        return None, None, error
    return conn, result, None


async def check_websocket(
    target: _Target, handshake: dict[str, Any] | None, report: Report
) -> None:
    query = "EIO=4&transport=websocket"
    conn, result, error = await _websocket(target, query)
    evidence = []
    if conn is not None:
        messages: asyncio.Queue[str | bytes] = asyncio.Queue()
        conn.on_message = messages.put_nowait
        conn.start()
        try:
            async with asyncio.timeout(target.options.timeout):
                first = await messages.get()
        except TimeoutError:
            first = ""
        conn.close()
        if isinstance(first, str) and first.startswith("0{"):
            report.add(Finding("websocket.ok", Verdict.OK, "a direct WebSocket connection works"))
        else:
            report.add(
                Finding(
                    "websocket.no_handshake",
                    Verdict.FAIL,
                    "the WebSocket opened but no Engine.IO handshake came over it",
                    [f"first message: {str(first)[:80]!r}"],
                    "the path is served by another WebSocket server",
                )
            )
        if handshake is not None and handshake.get("upgrades"):
            await _check_upgrade(target, report)
        return
    if result is not None:
        evidence.append(f"GET {target.path}?{query} (Upgrade: websocket) -> {_describe(result)}")
        body = result.body.decode("utf-8", "replace")
        if (result.status == 400 and "Bad request" in body) or _engine_error(result.body) == (
            3,
            "Bad request",
        ):
            cause = (
                "the server saw a WebSocket request without its Upgrade headers: a proxy drops "
                "'Upgrade' and 'Connection'"
            )
            ident = "websocket.upgrade_headers_dropped"
        elif result.status == 200 and _handshake_of(result) is not None:
            cause = (
                "the request reached the server as plain HTTP: a proxy drops the Upgrade headers"
            )
            ident = "websocket.upgrade_headers_dropped"
        elif result.status in (403, 401):
            cause = f"the WebSocket handshake is refused ({result.status})"
            ident = "websocket.forbidden"
        else:
            cause = f"the WebSocket handshake is answered {result.status}"
            ident = "websocket.refused"
        fix = (
            "nginx: proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; "
            'proxy_set_header Connection "upgrade"; (HAProxy passes them by default)'
        )
    else:
        assert error is not None
        evidence.append(str(error))
        cause = f"the WebSocket connection fails: {error.message}"
        ident = "websocket.failed"
        fix = "a proxy or firewall blocks WebSocket; check its configuration"
    stuck = handshake is not None
    report.add(
        Finding(
            "websocket.stuck_in_polling" if stuck else ident,
            Verdict.WARN if stuck else Verdict.FAIL,
            ("clients are stuck in long-polling: " if stuck else "") + cause,
            evidence,
            fix,
            data={"cause": ident},
        )
    )


async def _probe(target: _Target) -> tuple[str, float | None, str]:
    """One polling session upgraded the way real clients do it: the WebSocket with its sid, the
    probe ping (``2probe``) and its pong (``3probe``), the upgrade, a close.

    The outcome (``"ok"``, ``"refused"``, ``"unanswered"``, ``"no session"``), the round trip of
    the probe ping in ms, and what shows a failure."""
    result = await _try(target, "GET", f"EIO=4&transport=polling&t={_t()}")
    handshake = _handshake_of(result) if result is not None else None
    if handshake is None:
        return "no session", None, ""
    sid = handshake["sid"]
    conn, answer, error = await _websocket(target, f"EIO=4&transport=websocket&sid={sid}")
    if conn is None:
        return "refused", None, str(error) if error else _describe(answer) if answer else "?"
    messages: asyncio.Queue[str | bytes] = asyncio.Queue()
    conn.on_message = messages.put_nowait
    conn.start()
    started = time.perf_counter()
    conn.send("2probe")
    reply: str | bytes = ""
    try:
        async with asyncio.timeout(target.options.timeout):
            reply = await messages.get()
            while reply == "6":  # a noop for the waiting poll
                reply = await messages.get()
    except TimeoutError:
        pass
    rtt = (time.perf_counter() - started) * 1000
    if reply != "3probe":
        conn.close()
        return "unanswered", None, f"sent 2probe, got {str(reply)[:60]!r}"
    conn.send("5")
    conn.send("1")  # close the session: the doctor leaves nothing behind
    await asyncio.sleep(0.02)
    conn.close()
    return "ok", rtt, ""


async def _check_upgrade(target: _Target, report: Report) -> None:
    """A polling session, then the WebSocket probe with its sid: what real clients do."""
    outcome, rtt, shown = await _probe(target)
    if outcome == "ok":
        assert rtt is not None
        target.ping_rtts.append(rtt)
        report.add(
            Finding("websocket.upgrade_ok", Verdict.OK, "polling sessions upgrade to WebSocket")
        )
    elif outcome == "refused":
        report.add(
            Finding(
                "websocket.upgrade_refused",
                Verdict.WARN,
                "the upgrade of a polling session to WebSocket fails",
                [shown],
                "with several servers, the WebSocket request must reach the server of the "
                "session (sticky sessions)",
            )
        )
    elif outcome == "unanswered":
        report.add(
            Finding(
                "websocket.probe_failed",
                Verdict.WARN,
                "the WebSocket upgrade probe is not answered",
                [shown],
                "the WebSocket reached another server than the session's: sticky sessions",
            )
        )


# -- latency ---------------------------------------------------------------------------------------


async def check_latency(target: _Target, handshake: dict[str, Any], report: Report) -> None:
    """Round trips of the handshake and of a ping. An Engine.IO 4 client may not ping (the
    server does), except the probe ping of an upgrade: so each sample is one upgraded session."""
    samples = target.ping_rtts
    for _ in range(20):  # the first failure stops it; the upgrade check already said why
        if len(samples) >= target.options.ping_samples:
            break
        _outcome, rtt, _shown = await _probe(target)
        if rtt is None:
            break
        samples.append(rtt)
    handshake_ms = target.handshake_rtt
    if not samples:
        return
    ordered = sorted(samples)
    median = ordered[len(ordered) // 2]
    worst = ordered[-1]
    timeout_ms = float(handshake.get("pingTimeout", 20000))
    slow = worst >= timeout_ms / 2
    text = (
        f"a ping takes {median:.1f} ms there and back (median of {len(samples)}, max "
        f"{worst:.1f}); the handshake {handshake_ms:.1f} ms"
    )
    report.add(
        Finding(
            "latency.slow" if slow else "latency.ok",
            Verdict.WARN if slow else Verdict.OK,
            text
            + (f": half the server's pingTimeout ({timeout_ms:.0f} ms) or more" if slow else ""),
            [f"2probe -> 3probe over the WebSocket of an upgraded session, {len(samples)} times"],
            "heartbeats will time out on this path: raise pingTimeout on the server, or find "
            "what delays the packets (a buffering proxy, an overloaded server)"
            if slow
            else None,
            data={
                "ping_ms": [round(x, 2) for x in samples],
                "ping_median_ms": round(median, 2),
                "ping_max_ms": round(worst, 2),
                "handshake_ms": round(handshake_ms, 2),
            },
        )
    )


# -- sticky sessions -------------------------------------------------------------------------------


async def check_sticky(target: _Target, report: Report) -> None:
    sessions = target.options.sticky_sessions
    requests = target.options.sticky_requests
    unknown = 0
    total = 0
    evidence: list[str] = []
    for _ in range(sessions):
        result = await _try(target, "GET", f"EIO=4&transport=polling&t={_t()}")
        handshake = _handshake_of(result) if result is not None else None
        if handshake is None:
            continue
        sid = handshake["sid"]
        body = b"40" + (json.dumps(target.options.auth).encode() if target.options.auth else b"")
        for index in range(requests):
            # A fresh TCP connection each time, as a load balancer sees different connections.
            # None of them waits: the CONNECT, the GET its answer comes in, then noop POSTs.
            total += 1
            method = "GET" if index == 1 else "POST"
            payload = body if index == 0 else b"6"
            answer = await _try_post_or_get(target, method, sid, payload)
            if (
                answer is not None
                and answer.status == 400
                and _engine_error(answer.body) == (1, "Session ID unknown")
            ):
                unknown += 1
                if len(evidence) < 4:
                    evidence.append(f"{method} ...&sid={sid} -> {_describe(answer)}")
        await _try_post_or_get(target, "POST", sid, b"1")
    if total == 0:
        return
    if unknown:
        rate = unknown / total
        report.add(
            Finding(
                "sticky.missing",
                Verdict.FAIL,
                f"{unknown} of {total} requests ({rate:.0%}) of known sessions got 'Session ID "
                "unknown': several servers without sticky sessions",
                evidence,
                "make the load balancer sticky (nginx ip_hash or hash $cookie_io, HAProxy cookie), "
                "or connect with transports: ['websocket'] only, or use aiosio serve --workers "
                "on one machine",
                data={"unknown": unknown, "total": total},
            )
        )
    else:
        report.add(
            Finding(
                "sticky.ok",
                Verdict.OK,
                f"{total} requests of {sessions} sessions over fresh connections all reached "
                "their server",
            )
        )


async def _try_post_or_get(
    target: _Target, method: str, sid: str, body: bytes
) -> HttpResult | None:
    query = f"EIO=4&transport=polling&t={_t()}&sid={sid}"
    if method == "POST":
        return await _request_quiet(
            target, "POST", query, body, {"Content-Type": "text/plain;charset=UTF-8"}
        )
    return await _request_quiet(target, "GET", query)


async def _request_quiet(
    target: _Target,
    method: str,
    query: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> HttpResult | None:
    try:
        async with asyncio.timeout(target.options.timeout):
            return await _request(target, method, query, body=body, headers=headers)
    except (ConnectError, TimeoutError):
        return None


# -- namespace ------------------------------------------------------------------------------------


async def check_namespace(target: _Target, report: Report) -> None:
    result = await _try(target, "GET", f"EIO=4&transport=polling&t={_t()}")
    handshake = _handshake_of(result) if result is not None else None
    if handshake is None:
        return
    sid = handshake["sid"]
    nsp = target.namespace
    packet = "40" + ("" if nsp == "/" else nsp + ",")
    if target.options.auth:
        packet += json.dumps(target.options.auth, separators=(",", ":"))
    conn = target.connection()
    try:
        post = await conn.request(
            "POST",
            f"{target.path}?EIO=4&transport=polling&sid={sid}",
            target.headers({"Content-Type": "text/plain;charset=UTF-8"}),
            packet.encode(),
            url=target.origin_url,
        )
        evidence = [f"POST {packet!r} -> {_describe(post)}"]
        answer: HttpResult | None = None
        for _ in range(3):
            answer = await conn.request(
                "GET",
                f"{target.path}?EIO=4&transport=polling&t={_t()}&sid={sid}",
                target.headers(),
                url=target.origin_url,
            )
            if b"4" in answer.body[:3] or answer.status != 200:
                break
        assert answer is not None
        evidence.append(f"GET -> {_describe(answer)}")
    except ConnectError as error:
        report.add(
            Finding(
                "namespace.error",
                Verdict.FAIL,
                f"connecting the namespace failed: {error.message}",
                [str(error)],
            )
        )
        return
    finally:
        conn.close()
    text = answer.body.decode("utf-8", "replace")
    prefix = "4" + ("0" if nsp == "/" else "0" + nsp + ",")
    error_prefix = "44" + ("" if nsp == "/" else nsp + ",")
    for part in text.split("\x1e"):
        if part.startswith(prefix) and '"sid"' in part:
            report.add(
                Finding(
                    "namespace.ok", Verdict.OK, f"namespace {nsp} accepts the connection", evidence
                )
            )
            return
        if part.startswith(error_prefix):
            try:
                payload = json.loads(part[len(error_prefix) :])
            except ValueError:
                payload = part[len(error_prefix) :]
            message = payload.get("message") if isinstance(payload, dict) else str(payload)
            data = payload.get("data") if isinstance(payload, dict) else None
            if message == "Invalid namespace":
                report.add(
                    Finding(
                        "namespace.invalid",
                        Verdict.FAIL,
                        f"the server has no namespace {nsp}",
                        evidence,
                        f"create it on the server (io.of('{nsp}')), or connect to an existing one: "
                        "the URL's path is the namespace",
                    )
                )
                return
            expired = "expire" in f"{message} {data}".lower()
            report.add(
                Finding(
                    "namespace.token_expired" if expired else "namespace.refused",
                    Verdict.FAIL,
                    f"namespace {nsp} refused the connection: {message}"
                    + (f" (data: {json.dumps(data)})" if data is not None else ""),
                    evidence,
                    "the token is expired: refresh it before each connection attempt (auth as a "
                    "function is called again on every reconnection)"
                    if expired
                    else "the server's middleware refused: check the auth you pass (--auth)",
                    data={"message": message, "data": data},
                )
            )
            return
    report.add(
        Finding(
            "namespace.no_answer",
            Verdict.WARN,
            f"no answer to the CONNECT of namespace {nsp}",
            evidence,
            "the server did not answer the namespace connection in time",
        )
    )


# -- soak, payload ------------------------------------------------------------------------------


async def check_soak(target: _Target, handshake: dict[str, Any], report: Report) -> None:
    """Hold an idle session (answering pings) for --soak seconds: a connection cut before the
    end, earlier than the server's heartbeat would, is a proxy's idle timeout."""
    duration = target.options.soak
    conn, _result, error = await _websocket(target, "EIO=4&transport=websocket")
    if conn is None:
        report.add(
            Finding("soak.skipped", Verdict.INFO, f"soak over WebSocket not possible: {error}")
        )
        return
    closed: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    pings = 0
    started = time.monotonic()

    def on_message(data: str | bytes) -> None:
        nonlocal pings
        if data == "2":
            pings += 1
            conn.send("3")

    def on_close(code: int | None, err: str | None) -> None:
        if not closed.done():
            closed.set_result(time.monotonic() - started)

    conn.on_message = on_message
    conn.on_close = on_close
    conn.start()
    try:
        async with asyncio.timeout(duration):
            lasted = await closed
    except TimeoutError:
        conn.close()
        report.add(
            Finding(
                "soak.ok",
                Verdict.OK,
                f"an idle connection stayed up for {duration:g}s ({pings} pings answered)",
            )
        )
        return
    interval = handshake.get("pingInterval", 25000) / 1000
    report.add(
        Finding(
            "soak.idle_timeout",
            Verdict.FAIL,
            f"the connection was cut after {lasted:.1f}s of idleness ({pings} pings answered)"
            + (f", before the server's first ping ({interval:g}s)" if pings == 0 else ""),
            [f"server pingInterval {interval:g}s; the cut came at {lasted:.1f}s"],
            f"a proxy closes idle connections after about {lasted:.0f}s: raise it above "
            f"{interval + handshake.get('pingTimeout', 20000) / 1000:g}s (nginx "
            "proxy_read_timeout, "
            "HAProxy timeout tunnel, cloud load balancer idle timeout)",
            data={"lasted": lasted, "pings": pings},
        )
    )


async def check_payload(target: _Target, handshake: dict[str, Any], report: Report) -> None:
    """Find the largest message a polling session accepts (binary search on POST sizes)."""
    low, high = 1, max(int(handshake.get("maxPayload") or 1_000_000), 2) * 2
    largest = 0
    for _ in range(16):
        if low > high:
            break
        size = (low + high) // 2
        ok = await _payload_ok(target, size)
        if ok:
            largest, low = size, size + 1
        else:
            high = size - 1
    advertised = handshake.get("maxPayload")
    verdict = Verdict.OK if advertised is None or largest >= int(advertised) - 16 else Verdict.WARN
    report.add(
        Finding(
            "payload.largest",
            verdict,
            f"the largest message accepted is about {largest} bytes (maxPayload {advertised})",
            fix=None
            if verdict is Verdict.OK
            else "something in front of the server (a proxy's client_max_body_size) refuses "
            "smaller bodies than the server allows",
            data={"largest": largest, "max_payload": advertised},
        )
    )


async def _payload_ok(target: _Target, size: int) -> bool:
    result = await _try(target, "GET", f"EIO=4&transport=polling&t={_t()}")
    handshake = _handshake_of(result) if result is not None else None
    if handshake is None:
        return False
    answer = await _request_quiet(
        target,
        "POST",
        f"EIO=4&transport=polling&sid={handshake['sid']}",
        b"4" + b"x" * (size - 1),
        {"Content-Type": "text/plain;charset=UTF-8"},
    )
    await _request_quiet(target, "POST", f"EIO=4&transport=polling&sid={handshake['sid']}", b"1")
    return answer is not None and answer.status == 200


# -- the whole diagnosis ---------------------------------------------------------------------------


async def diagnose(options: DoctorOptions) -> Report:
    target = _Target(options)
    report = Report(options.url)
    if not await check_network(target, report):
        return report
    handshake = None
    if options.transport != "websocket":
        handshake = await check_handshake(target, report)
        if handshake is None and options.transport == "polling":
            return report
        if handshake is not None:
            check_settings(handshake, report)
            if options.origin and not target.cors_checked:
                await check_cors(target, report)
    primary = report.primary
    fatal = ("path.", "server.", "version.", "proxy.", "handshake.", "tls.")
    if handshake is None and primary is not None and primary.id.startswith(fatal):
        return report
    if options.transport != "polling":
        await check_websocket(target, handshake, report)
        if handshake is not None and target.ping_rtts:
            await check_latency(target, handshake, report)
    if handshake is not None:
        await check_sticky(target, report)
        await check_namespace(target, report)
        if options.probe_payload:
            await check_payload(target, handshake, report)
    if options.soak > 0:
        await check_soak(target, handshake or {}, report)
    return report
