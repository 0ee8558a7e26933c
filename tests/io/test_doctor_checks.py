"""Each check of ``aiosio doctor`` on its own (aiosio.doctor.checks.*), against small servers in
this process: aiosio servers configured for the case, and a canned HTTP server that answers what a
proxy, a web server or another Socket.IO version answers. The fault lab (tests/lab) runs the
whole doctor against nginx and Node; these pin each module's verdicts."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request
from websockets.http11 import Response

import aiosio
from aiosio.doctor.checks import CHECKS
from aiosio.doctor.checks import DoctorOptions
from aiosio.doctor.checks import diagnose
from aiosio.doctor.checks.cors import check_cors
from aiosio.doctor.checks.handshake import check_handshake
from aiosio.doctor.checks.namespace import check_namespace
from aiosio.doctor.checks.network import check_network
from aiosio.doctor.checks.payload import check_payload
from aiosio.doctor.checks.settings import check_settings
from aiosio.doctor.checks.soak import check_soak
from aiosio.doctor.checks.sticky import check_sticky
from aiosio.doctor.checks.websocket import check_websocket
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Report
from aiosio.doctor.findings import Verdict
from aiosio.doctor.target import Target
from conftest import free_port

ORIGIN = "http://page.example"
HANDSHAKE = b'0{"sid":"canned","upgrades":[],"pingInterval":25000,"pingTimeout":20000}'
UPGRADABLE_HANDSHAKE = HANDSHAKE.replace(b"[]", b'["websocket"]')

Canned = dict[str, tuple[int, dict[str, str], bytes]]  # path -> status, headers, body


def diagnosis(url: str, **options: Any) -> Diagnosis:
    options.setdefault("timeout", 5.0)
    return Diagnosis(Target(DoctorOptions(url=url, **options)), Report(url))


def ids(d: Diagnosis) -> list[str]:
    return [finding.id for finding in d.report.findings]


def only(d: Diagnosis, prefix: str) -> Finding:
    found = [f for f in d.report.findings if f.id.startswith(prefix)]
    assert len(found) == 1, ids(d)
    return found[0]


@contextlib.asynccontextmanager
async def running(app: Any) -> AsyncIterator[str]:
    server = await aiosio.serve(app, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


@contextlib.asynccontextmanager
async def canned(answers: Canned, default: int = 404) -> AsyncIterator[str]:
    """An HTTP server answering each request by its method and path (``"OPTIONS /socket.io/"``),
    else by its path alone (query left out) from ``answers``, ``default`` with an empty body
    otherwise; one request per connection. A WebSocket request gets the same answer, so it never
    opens."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            method, target = head.decode().split(" ")[:2]
            path = target.partition("?")[0]
            answer = answers.get(f"{method} {path}") or answers.get(path)
            status, headers, body = answer or (default, {}, b"")
            lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
            lines += [f"{k}: {v}" for k, v in headers.items()]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def demo(**options: Any) -> aiosio.Server:
    sio = aiosio.Server(**options)

    @sio.of("/secure").use
    async def refuse(socket: aiosio.Socket) -> None:
        token = str(socket.handshake.auth.get("token", ""))
        if token.startswith("expired"):
            raise aiosio.ConnectionRefused("token expired", data={"code": "EXPIRED"})
        if token != "good":
            raise aiosio.ConnectionRefused("who are you")

    return sio


# -- network --------------------------------------------------------------------------------------


async def test_network_ok() -> None:
    async with running(demo()) as url:
        d = diagnosis(url)
        assert await check_network(d)
    assert ids(d) == ["dns.ok", "tcp.ok"]
    assert d.report.findings[1].data["connect_ms"] >= 0


async def test_network_refused() -> None:
    d = diagnosis(f"http://127.0.0.1:{free_port()}")
    assert not await check_network(d)
    assert ids(d) == ["dns.ok", "tcp.refused"]


async def test_network_unresolvable() -> None:
    d = diagnosis("http://no-such-host.invalid:80")
    assert not await check_network(d)
    assert ids(d) == ["dns.unresolvable"]


# -- handshake, and why none opens ----------------------------------------------------------------


async def test_handshake_ok_records_the_session() -> None:
    async with running(demo()) as url:
        d = diagnosis(url)
        assert await check_handshake(d)
    assert ids(d) == ["handshake.ok"]
    assert d.handshake is not None
    assert d.handshake["pingInterval"] == 25000
    assert d.report.findings[0].data["handshake"] == d.handshake


ENGINE_5 = (
    400,
    {"Content-Type": "application/json"},
    b'{"code":5,"message":"Unsupported protocol version"}',
)
V3_OPEN = b'0{"sid":"x","upgrades":[],"pingInterval":25000,"pingTimeout":5000}'


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ({"/socket.io/": ENGINE_5}, "version.server_rejects_v4"),
        (
            {"/socket.io/": (403, {}, b'{"code":4,"message":"Forbidden"}')},
            "handshake.refused_code_4",
        ),
        (
            {"/socket.io/": (200, {}, b"%d:%s2:40" % (len(V3_OPEN), V3_OPEN))},
            "version.v2_server",
        ),
        ({"/custom/": (200, {}, HANDSHAKE)}, "path.not_found"),  # /custom/ is not a candidate
        ({"/socket.io/": (404, {"Server": "nginx/1.22.1"}, b"")}, "path.not_found_proxy"),
        ({"/socket.io/": (502, {"Server": "nginx"}, b"Bad Gateway")}, "proxy.upstream_down"),
        (
            {"/socket.io/": (200, {"Content-Type": "text/html"}, b"<!DOCTYPE html><p>app</p>")},
            "server.html_page",
        ),
        ({"/socket.io/": (200, {"Content-Type": "text/plain"}, b"hello")}, "server.not_socketio"),
    ],
)
async def test_why_no_handshake(answers: Canned, expected: str) -> None:
    async with canned(answers) as url:
        d = diagnosis(url)
        assert not await check_handshake(d)  # nothing else can be learnt
    assert ids(d) == [expected]
    assert d.report.findings[0].verdict is Verdict.FAIL
    assert d.report.findings[0].evidence[0].startswith("GET /socket.io/?EIO=4&transport=polling&t=")


async def test_version_refusal_shows_the_v3_answer() -> None:
    async with canned({"/socket.io/": ENGINE_5}) as url:
        d = diagnosis(url)
        await check_handshake(d)
    assert d.report.findings[0].evidence[1].startswith("GET /socket.io/?EIO=3&transport=polling ->")


async def test_path_mismatch_names_where_the_server_answers() -> None:
    async with canned({"/engine.io/": (200, {}, HANDSHAKE)}) as url:
        d = diagnosis(url + "/app/socket.io/")
        assert not await check_handshake(d)
    finding = only(d, "path.mismatch")
    assert "answers at /engine.io/" in finding.title
    assert [line.split(" ->")[0] for line in finding.evidence[1:]] == [
        "GET /app/socket.io?EIO=4&transport=polling",
        "GET /socket.io/?EIO=4&transport=polling",
        "GET /socket.io?EIO=4&transport=polling",
        "GET /engine.io/?EIO=4&transport=polling",
    ]


async def test_polling_only_stops_without_a_handshake() -> None:
    async with canned({"/socket.io/": (200, {}, b"hello")}) as url:
        d = diagnosis(url, transport="polling")
        assert not await check_handshake(d)
    assert ids(d) == ["server.not_socketio"]


# -- settings, CORS -------------------------------------------------------------------------------


async def test_settings_without_upgrades() -> None:
    d = diagnosis("http://127.0.0.1:1")
    d.handshake = json.loads(HANDSHAKE[1:])
    assert await check_settings(d)
    assert ids(d) == ["settings.heartbeat", "settings.no_upgrades"]
    assert d.report.findings[0].data == {
        "ping_interval": 25.0,
        "ping_timeout": 20.0,
        "max_payload": None,
    }


@pytest.mark.parametrize(
    ("cors", "origin", "credentials", "expected"),
    [
        (None, ORIGIN, False, "cors.missing"),
        (aiosio.Cors(origins=[ORIGIN], credentials=True), ORIGIN, True, "cors.ok"),
        (aiosio.Cors(origins=[ORIGIN]), ORIGIN, True, "cors.credentials_missing"),
        (aiosio.Cors(origins="*"), ORIGIN, True, "cors.wildcard_with_credentials"),
    ],
)
async def test_cors(
    cors: aiosio.Cors | None, origin: str, credentials: bool, expected: str
) -> None:
    async with running(demo(cors=cors)) as url:
        d = diagnosis(url, origin=origin, credentials=credentials)
        assert await check_handshake(d)
        assert await check_cors(d)
    assert ids(d)[-1] == expected


async def test_cors_origin_refused_is_found_by_the_handshake() -> None:
    async with running(demo(cors=aiosio.Cors(origins=[ORIGIN]))) as url:
        d = diagnosis(url, origin="http://other.example")
        assert await check_handshake(d)
    assert ids(d) == ["cors.origin_refused"]
    assert d.cors_checked
    assert d.handshake is not None


async def test_cors_other_origin_and_preflight() -> None:
    answers: Canned = {
        "/socket.io/": (200, {"Access-Control-Allow-Origin": "http://x.example"}, HANDSHAKE)
    }
    async with canned(answers) as url:
        d = diagnosis(url, origin=ORIGIN)
        await check_cors(d)
    assert ids(d) == ["cors.other_origin"]
    answers = {"/socket.io/": (200, {"Access-Control-Allow-Origin": ORIGIN}, HANDSHAKE)}
    async with canned(answers) as url:  # OPTIONS gets the same 200: accepted
        d = diagnosis(url, origin=ORIGIN)
        await check_cors(d)
    assert ids(d) == ["cors.ok"]


# -- WebSocket, upgrade, latency ------------------------------------------------------------------


async def test_websocket_upgrade_and_latency() -> None:
    async with running(demo()) as url:
        d = diagnosis(url, ping_samples=2)
        report = await diagnose(d.options)
    assert [f.id for f in report.findings] == [
        "dns.ok",
        "tcp.ok",
        "handshake.ok",
        "settings.heartbeat",
        "websocket.ok",
        "websocket.upgrade_ok",
        "latency.ok",
        "sticky.ok",
        "namespace.ok",
    ]
    latency = report.findings[6]
    assert len(latency.data["ping_ms"]) == 2
    assert latency.evidence == [
        "2probe -> 3probe over the WebSocket of an upgraded session, 2 times"
    ]
    assert report.ok


async def test_a_server_without_websocket_is_not_a_proxy_problem() -> None:
    # Polling works, the handshake offers no upgrade, a WebSocket is refused: the server has no
    # WebSocket transport (no nginx advice).
    async with running(demo(transports=("polling",))) as url:
        d = diagnosis(url)
        await check_handshake(d)
        assert await check_websocket(d)
    finding = only(d, "websocket.")
    assert finding.id == "websocket.not_offered"
    assert finding.verdict is Verdict.WARN
    assert finding.fix is not None
    assert "transports=['polling', 'websocket']" in finding.fix
    assert "nginx" not in finding.fix


async def test_websocket_refused_with_polling_working() -> None:
    # The handshake offers the upgrade, and the WebSocket is refused on the way: stuck.
    async with canned({"GET /socket.io/": (200, {}, UPGRADABLE_HANDSHAKE)}, default=400) as url:
        d = diagnosis(url)
        await check_handshake(d)
        await check_websocket(d)
    finding = only(d, "websocket.stuck")
    assert finding.verdict is Verdict.WARN
    assert "nginx" in (finding.fix or "")


async def test_websocket_request_answered_as_plain_http() -> None:
    # A proxy that drops the Upgrade headers: the request reaches the server as a polling GET.
    async with canned({"/socket.io/": (200, {}, HANDSHAKE)}) as url:
        d = diagnosis(url, transport="websocket")
        assert await check_websocket(d)
    assert ids(d) == ["websocket.upgrade_headers_dropped"]


async def test_websocket_forbidden() -> None:
    async with canned({"/socket.io/": (403, {}, b"")}) as url:
        d = diagnosis(url, transport="websocket")
        await check_websocket(d)
    assert ids(d) == ["websocket.forbidden"]


# -- sticky sessions ------------------------------------------------------------------------------


async def test_sticky_ok_when_no_request_is_refused() -> None:
    async with canned({"/socket.io/": (200, {}, HANDSHAKE)}) as url:
        d = diagnosis(url, sticky_sessions=2, sticky_requests=3)
        assert await check_sticky(d)
    # The canned server opens a session on every request, and never says 'Session ID unknown'.
    assert ids(d) == ["sticky.ok"]


UNKNOWN_SID = b'{"code":1,"message":"Session ID unknown"}'


async def test_sticky_unknown_sessions() -> None:
    """A server that answers every handshake and knows no session afterwards: what several
    servers behind a balancer that is not sticky look like."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        target = head.split(b" ")[1].decode()
        seen.append(head.split(b" ")[0].decode())
        status, body = (400, UNKNOWN_SID) if "sid=" in target else (200, HANDSHAKE)
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (status, len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        d = diagnosis(url, sticky_sessions=2, sticky_requests=3)
        assert await check_sticky(d)
    finally:
        server.close()
        await server.wait_closed()
    finding = only(d, "sticky.")
    assert finding.id == "sticky.missing"
    assert finding.data == {"unknown": 6, "total": 6}
    assert len(finding.evidence) == 4
    assert finding.evidence[0].startswith("POST ...&sid=canned -> HTTP 400")
    assert finding.evidence[1].startswith("GET ...&sid=canned -> HTTP 400")
    # per session: the handshake, POST CONNECT, GET, POST noop, POST close
    assert seen == ["GET", "POST", "GET", "POST", "POST"] * 2


# -- namespace ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "auth", "expected"),
    [
        ("/", None, "namespace.ok"),
        ("/secure", {"token": "good"}, "namespace.ok"),
        ("/secure", {"token": "expired-1"}, "namespace.token_expired"),
        ("/secure", {"token": "other"}, "namespace.refused"),
        ("/nope", None, "namespace.invalid"),
    ],
)
async def test_namespace(namespace: str, auth: dict[str, str] | None, expected: str) -> None:
    async with running(demo()) as url:
        d = diagnosis(url + namespace, auth=auth)
        assert await check_namespace(d)
    finding = only(d, "namespace.")
    assert finding.id == expected
    sent = json.dumps(auth, separators=(",", ":")) if auth else ""
    prefix = "40" if namespace == "/" else f"40{namespace},"
    assert finding.evidence[0].startswith(f"POST {prefix + sent!r} -> HTTP 200")


async def test_namespace_refusal_data() -> None:
    async with running(demo()) as url:
        d = diagnosis(url + "/secure", auth={"token": "expired-1"})
        await check_namespace(d)
    finding = d.report.findings[0]
    assert finding.title == (
        'namespace /secure refused the connection: token expired (data: {"code": "EXPIRED"})'
    )
    assert finding.data == {"message": "token expired", "data": {"code": "EXPIRED"}}


async def test_namespace_no_answer() -> None:
    # A server that never answers a CONNECT: each GET gets a handshake, no Socket.IO packet.
    answers: Canned = {"/socket.io/": (200, {}, HANDSHAKE)}
    async with canned(answers) as url:
        d = diagnosis(url)
        await check_namespace(d)
    assert ids(d) == ["namespace.no_answer"]


# -- payload, soak --------------------------------------------------------------------------------


async def test_payload_finds_the_servers_limit() -> None:
    async with running(demo(max_http_buffer_size=1000)) as url:
        d = diagnosis(url, probe_payload=True)
        assert await check_handshake(d)
        assert await check_payload(d)
    finding = only(d, "payload.")
    assert finding.verdict is Verdict.OK
    assert finding.data == {"largest": 1000, "max_payload": 1000}


async def test_soak_holds_an_idle_session() -> None:
    async with running(demo(ping_interval=0.1, ping_timeout=5.0)) as url:
        d = diagnosis(url, soak=0.5)
        assert await check_soak(d)
    assert ids(d) == ["soak.ok"]


async def test_soak_without_websocket() -> None:
    async with running(demo(transports=("polling",))) as url:
        d = diagnosis(url, soak=0.5)
        await check_soak(d)
    assert ids(d) == ["soak.skipped"]


# -- the registry ---------------------------------------------------------------------------------


def test_checks_run_in_the_experts_order() -> None:
    assert [check.name for check in CHECKS] == [
        "network",
        "handshake",
        "settings",
        "cors",
        "websocket",
        "webtransport",
        "latency",
        "sticky",
        "namespace",
        "payload",
        "soak",
    ]


async def test_registry_stops_after_a_fatal_handshake() -> None:
    async with canned({}) as url:
        report = await diagnose(DoctorOptions(url=url, timeout=5.0))
    assert [f.id for f in report.findings] == ["dns.ok", "tcp.ok", "path.not_found"]


async def test_registry_websocket_only() -> None:
    async with running(demo()) as url:
        report = await diagnose(DoctorOptions(url=url, timeout=5.0, transport="websocket"))
    assert [f.id for f in report.findings] == ["dns.ok", "tcp.ok", "websocket.ok"]


# -- peers that are not quite Socket.IO -----------------------------------------------------------

UPGRADABLE = b'0{"sid":"canned","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000}'


@contextlib.asynccontextmanager
async def websocket_peer(
    on_websocket: Callable[[ServerConnection], Awaitable[None]],
    polling: bytes | None = None,
    *,
    sessions_upgrade: bool = True,
) -> AsyncIterator[str]:
    """A WebSocket server (the ``websockets`` library) running ``on_websocket`` for each
    WebSocket; a plain GET gets ``polling`` as a 200 answer if given (426 otherwise); unless
    ``sessions_upgrade``, a WebSocket with a ``sid`` is refused (400)."""

    def plain_request(connection: ServerConnection, request: Request) -> Response | None:
        if request.headers.get("Upgrade"):
            if sessions_upgrade or "sid=" not in request.path:
                return None
            return connection.respond(400, "not this session\n")
        if polling is None:
            return None
        headers = Headers({"Content-Length": str(len(polling)), "Content-Type": "text/plain"})
        return Response(200, "OK", headers, polling)

    async with ws_serve(on_websocket, "127.0.0.1", 0, process_request=plain_request) as server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


@contextlib.asynccontextmanager
async def raw_peer(answer: bytes | None) -> AsyncIterator[str]:
    """A TCP server writing ``answer`` to each connection, then closing it; with ``None``,
    saying nothing until the client goes."""

    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        with contextlib.suppress(ConnectionError):
            if answer is None:
                await reader.read()  # until the client closes
            else:
                writer.write(answer)
                await writer.drain()
        writer.close()
        writers.discard(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in list(writers):  # a connection still held: its reader returns at once
            writer.transport.abort()
        server.close()
        await server.wait_closed()


async def greets(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        await ws.send("hello, I am not Socket.IO")
        await ws.wait_closed()


async def test_cors_header_added_twice() -> None:
    twice = {"Access-Control-Allow-Origin": ORIGIN, "access-control-allow-origin": ORIGIN}
    async with canned({"/socket.io/": (200, twice, HANDSHAKE)}) as url:
        d = diagnosis(url, origin=ORIGIN)
        assert await check_cors(d)
    finding = only(d, "cors.")
    assert finding.id == "cors.duplicate_header"
    assert finding.evidence[1:] == [f"Access-Control-Allow-Origin: {ORIGIN}"] * 2


async def test_cors_preflight_refused() -> None:
    allowed = {"Access-Control-Allow-Origin": ORIGIN}
    answers: Canned = {
        "/socket.io/": (200, allowed, HANDSHAKE),
        "OPTIONS /socket.io/": (405, {}, b"Method Not Allowed"),
    }
    async with canned(answers) as url:
        d = diagnosis(url, origin=ORIGIN)
        assert await check_cors(d)
    finding = only(d, "cors.")
    assert finding.id == "cors.preflight_refused"
    assert finding.title == "the preflight of the polling POST is refused (405)"
    assert finding.evidence[-1].startswith("OPTIONS /socket.io/ -> HTTP 405")


async def test_handshake_from_something_that_is_not_http() -> None:
    async with raw_peer(b"SSH-2.0-OpenSSH_9.6\r\n") as url:
        d = diagnosis(url)
        assert not await check_handshake(d)
    assert ids(d) == ["handshake.no_http"]
    assert d.report.findings[0].verdict is Verdict.FAIL


async def test_handshake_never_answered() -> None:
    async with raw_peer(None) as url:
        d = diagnosis(url, timeout=0.5)  # the doctor's --timeout: no TLS probe after it
        assert not await check_handshake(d)
    assert ids(d) == ["handshake.no_http"]
    assert "got no answer within 0.5s" in d.report.findings[0].title


async def test_handshake_from_a_plain_websocket_server() -> None:
    async with websocket_peer(greets) as url:
        d = diagnosis(url)
        assert not await check_handshake(d)
    finding = only(d, "server.")
    assert finding.id == "server.plain_websocket"
    assert finding.evidence[-1] == (
        "WebSocket GET /socket.io (no Engine.IO query) -> 101 Switching Protocols"
    )


async def test_websocket_that_opens_without_a_handshake() -> None:
    async with websocket_peer(greets) as url:
        d = diagnosis(url, transport="websocket")
        assert await check_websocket(d)
    finding = only(d, "websocket.")
    assert finding.id == "websocket.no_handshake"
    assert finding.evidence == ["first message: 'hello, I am not Socket.IO'"]


async def test_websocket_connection_closed_without_an_answer() -> None:
    async with raw_peer(b"") as url:
        d = diagnosis(url, transport="websocket")
        assert await check_websocket(d)
    finding = only(d, "websocket.")
    assert finding.id == "websocket.failed"
    assert finding.verdict is Verdict.FAIL
    assert finding.data == {"cause": "websocket.failed"}


async def test_upgrade_of_a_session_refused() -> None:
    async def handshake_only(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(UPGRADABLE.decode())
            await ws.wait_closed()

    # A direct WebSocket opens; the one of a polling session is refused.
    async with websocket_peer(handshake_only, UPGRADABLE, sessions_upgrade=False) as url:
        d = diagnosis(url)
        assert await check_handshake(d)
        assert await check_websocket(d)
    assert ids(d) == ["handshake.ok", "websocket.ok", "websocket.upgrade_refused"]
    assert d.report.findings[2].verdict is Verdict.WARN
    assert d.report.findings[2].evidence[0].startswith("HTTP 400")


async def test_upgrade_probe_not_answered() -> None:
    async def engine_io_without_probe(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            if "sid=" not in ws.request.path:  # type: ignore[union-attr]
                await ws.send(UPGRADABLE.decode())
            elif await ws.recv() == "2probe":
                await ws.send("4not the probe pong")
            await ws.wait_closed()

    async with websocket_peer(engine_io_without_probe, polling=UPGRADABLE) as url:
        d = diagnosis(url)
        assert await check_handshake(d)
        assert await check_websocket(d)
    assert ids(d) == ["handshake.ok", "websocket.ok", "websocket.probe_failed"]
    assert d.report.findings[2].evidence == ["sent 2probe, got '4not the probe pong'"]
    assert not d.ping_rtts


async def test_soak_cut_by_an_idle_timeout() -> None:
    async def cut_after_the_handshake(ws: ServerConnection) -> None:
        await ws.send(HANDSHAKE.decode())
        await ws.close()  # as a proxy with a short idle timeout, before any ping

    async with websocket_peer(cut_after_the_handshake) as url:
        d = diagnosis(url, soak=60.0)  # the bound: the cut comes first
        d.handshake = json.loads(HANDSHAKE[1:])
        assert await check_soak(d)
    finding = only(d, "soak.")
    assert finding.id == "soak.idle_timeout"
    assert finding.data["pings"] == 0
    assert "before the server's first ping (25s)" in finding.title
