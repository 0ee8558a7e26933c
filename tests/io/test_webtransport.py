"""WebTransport over HTTP/3 on 127.0.0.1: the aiosio client against the aiosio server (direct,
the upgrade from polling, rooms and broadcast beside other transports, the reconnection), the
client's stages and fallback, the server's configuration errors, and bad input on the stream
(truncated, oversized, never-finished frames, a wrong first packet, no stream at all): each
closes one session with a stated reason while another client is served; and what ``aiosio
doctor`` says of WebTransport (it works, the certificate is refused, UDP is blocked).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiosio
from aiosio import ConnectError
from aiosio import Stage
from aiosio.client.webtransport import WebTransportConnection
from aiosio.client.webtransport import open_webtransport
from aiosio.client.webtransport import parse_certificate_hash
from aiosio.doctor.checks import DoctorOptions
from aiosio.doctor.checks import diagnose
from aiosio.protocol.webtransport import encode_frame
from conftest import free_port

TIMEOUT = 10.0
TRANSPORTS = ("polling", "websocket", "webtransport")


@dataclass
class Running:
    sio: aiosio.Server
    server: aiosio.NativeServer
    url: str
    port: int
    digest: str

    def client(self, **options: Any) -> aiosio.Client:
        options.setdefault("transports", ["webtransport"])
        options.setdefault("reconnection", False)
        return aiosio.Client(self.url, server_certificate_hashes=[self.digest], **options)

    async def raw(self, sid: str | None = None, *, stream: bool = True) -> WebTransportConnection:
        """A WebTransport session and stream (unless not ``stream``) whose bytes the test
        writes itself."""
        conn = await open_webtransport(
            "127.0.0.1",
            self.port,
            "/socket.io/?EIO=4&transport=webtransport",
            {},
            sid=sid,
            timeout=TIMEOUT,
            max_message=10_000_000,
            certificate_hashes=[parse_certificate_hash(self.digest)],
            url=self.url,
            open_stream=stream,
        )
        conn.start()
        return conn


def echo_server(**options: Any) -> aiosio.Server:
    sio = aiosio.Server(transports=TRANSPORTS, **options)

    @sio.on("echo")
    async def echo(socket: aiosio.Socket, *args: Any) -> list[Any]:
        return [socket.conn.transport, *args]

    @sio.on("join")
    async def join(socket: aiosio.Socket, room: str) -> None:
        socket.join(room)

    @sio.on("to_room")
    async def to_room(socket: aiosio.Socket, room: str, text: str) -> None:
        sio.to(room).emit("room", text)

    @sio.on("broadcast")
    async def broadcast(socket: aiosio.Socket, text: str) -> None:
        sio.emit("news", text)

    @sio.on("drop_me")
    async def drop_me(socket: aiosio.Socket) -> None:
        socket.conn.close()

    return sio


@pytest.fixture
async def running(
    webtransport_certificate: tuple[Path, Path, str],
) -> AsyncIterator[Callable[..., Any]]:
    started: list[aiosio.NativeServer] = []

    async def start(
        sio: aiosio.Server | None = None,
        *,
        webtransport: dict[str, Any] | None = None,
        **options: Any,
    ) -> Running:
        cert, key, digest = webtransport_certificate
        sio = sio or echo_server(**options)
        config = aiosio.WebTransport(certfile=cert, keyfile=key, **(webtransport or {}))
        server = await aiosio.serve(sio, "127.0.0.1", 0, webtransport=config)
        started.append(server)
        assert server.webtransport is not None
        port = server.webtransport.port
        assert port == server.port  # the same number as the HTTP port, by default
        return Running(sio, server, f"http://127.0.0.1:{server.port}", port, digest)

    yield start
    for server in started:
        await server.close()


async def next_event(client: aiosio.Client, name: str) -> Any:
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def handler(*args: Any) -> None:
        if not future.done():
            future.set_result(args)

    client.on(name, handler)
    return await asyncio.wait_for(future, TIMEOUT)


async def test_client_over_webtransport(running: Callable[..., Any]) -> None:
    run = await running()
    a, b = run.client(), run.client(transports=["websocket"])
    await a.connect()
    await b.connect()
    try:
        assert a.io.engine.transport == "webtransport"
        reply = await a.emit_with_ack("echo", "héllo", b"\x00\xff", {"n": 1}, timeout=TIMEOUT)
        assert reply == ["webtransport", "héllo", b"\x00\xff", {"n": 1}]
        big = "x" * 200_000  # frames with a 64-bit length, both ways
        assert await a.emit_with_ack("echo", big, timeout=TIMEOUT) == ["webtransport", big]
        # A room and a broadcast across transports: the sessions are ordinary ones.
        await a.emit_with_ack("join", "r", timeout=TIMEOUT)
        in_room = asyncio.ensure_future(next_event(a, "room"))
        await b.emit_with_ack("to_room", "r", "for r", timeout=TIMEOUT)
        assert await in_room == ("for r",)
        news = asyncio.gather(next_event(a, "news"), next_event(b, "news"))
        await a.emit_with_ack("broadcast", "all", timeout=TIMEOUT)
        assert await news == [("all",), ("all",)]
    finally:
        await a.disconnect()
        await b.disconnect()


async def test_client_upgrades_from_polling_to_webtransport(running: Callable[..., Any]) -> None:
    run = await running()
    upgrades: list[str] = []

    @run.sio.on("connection")
    def opened(socket: aiosio.Socket) -> None:
        upgrades.append(socket.conn.transport)
        socket.conn.on("upgrade", lambda *args: upgrades.append(socket.conn.transport))

    client = run.client(transports=list(TRANSPORTS))
    await client.connect()
    try:
        async with asyncio.timeout(TIMEOUT):
            while client.io.engine.transport != "webtransport":
                await asyncio.sleep(0.02)
        reply = await client.emit_with_ack("echo", b"\x01", timeout=TIMEOUT)
        assert reply == ["webtransport", b"\x01"]  # after the "5", on the same stream
        assert upgrades == ["polling", "webtransport"]  # favoured over WebSocket
    finally:
        await client.disconnect()


async def test_client_reconnects_after_the_server_drops_the_session(
    running: Callable[..., Any],
) -> None:
    run = await running()
    client = run.client(reconnection=True, reconnection_delay=0.05, reconnection_delay_max=0.1)
    await client.connect()
    try:
        first = client.id
        gone = asyncio.ensure_future(next_event(client, "disconnect"))
        back = asyncio.ensure_future(next_event(client, "connect"))
        client.emit("drop_me")
        assert (await gone)[0] == "transport close"
        await back
        assert client.id != first
        assert await client.emit_with_ack("echo", 1, timeout=TIMEOUT) == ["webtransport", 1]
    finally:
        await client.disconnect()


async def test_connect_error_stages(running: Callable[..., Any]) -> None:
    run = await running()
    wrong = aiosio.Client(
        run.url,
        transports=["webtransport"],
        reconnection=False,
        server_certificate_hashes=["A" * 43 + "="],
    )
    with pytest.raises(ConnectError) as caught:
        await wrong.connect()
    assert caught.value.stage is Stage.TLS
    assert run.digest in caught.value.message  # says which hash the server has

    unpinned = aiosio.Client(run.url, transports=["webtransport"], reconnection=False)
    with pytest.raises(ConnectError) as caught:
        await unpinned.connect()
    assert caught.value.stage is Stage.TLS
    assert "server_certificate_hashes" in (caught.value.hint or "")

    path = run.client(path="/elsewhere/")
    with pytest.raises(ConnectError) as caught:
        await path.connect()
    assert caught.value.stage is Stage.WEBTRANSPORT
    assert caught.value.status == 404
    assert "the server path is '/socket.io/'" in caught.value.message

    nothing = run.client(webtransport_port=free_port(), timeout=1.0)
    with pytest.raises(ConnectError) as caught:
        await nothing.connect()
    assert caught.value.stage is Stage.QUIC
    assert "UDP to this port is blocked" in (caught.value.hint or "")


async def test_client_falls_back_when_webtransport_fails(running: Callable[..., Any]) -> None:
    run = await running()
    client = run.client(
        transports=["webtransport", "websocket"],
        try_all_transports=True,
        webtransport_port=free_port(),  # UDP blocked, as far as the client can tell
        timeout=1.0,
    )
    await client.connect()
    try:
        assert client.io.engine.transport == "websocket"
        assert await client.emit_with_ack("echo", 2, timeout=TIMEOUT) == ["websocket", 2]
    finally:
        await client.disconnect()


async def test_upgrade_stays_on_polling_when_webtransport_fails(
    running: Callable[..., Any],
) -> None:
    run = await running()
    client = run.client(
        transports=["polling", "websocket", "webtransport"], webtransport_port=free_port()
    )
    client.io.options.timeout = 1.0  # the WebTransport probe gives up after 1 s
    await client.connect()
    try:
        async with asyncio.timeout(TIMEOUT):
            while client.io.engine.transport != "websocket":
                await asyncio.sleep(0.02)  # the WebSocket probe follows the failed one
    finally:
        await client.disconnect()


# -- the server's configuration -------------------------------------------------------------------


async def test_configuration_errors(webtransport_certificate: tuple[Path, Path, str]) -> None:
    cert, key, _ = webtransport_certificate
    with pytest.raises(ValueError, match=r"pass webtransport=aiosio.WebTransport\(certfile"):
        await aiosio.serve(aiosio.Server(transports=TRANSPORTS), "127.0.0.1", 0)
    with pytest.raises(ValueError, match="add 'webtransport' to its transports"):
        await aiosio.serve(
            aiosio.Server(), "127.0.0.1", 0, webtransport=aiosio.WebTransport(cert, key)
        )
    with pytest.raises(TypeError, match="WebTransport needs keyfile"):
        aiosio.WebTransport(certfile=cert, keyfile="")
    for name in ("max_connections", "max_sessions_per_connection", "max_header_size"):
        with pytest.raises(ValueError, match=rf"WebTransport\({name}=...\) must be an integer of "):
            aiosio.WebTransport(cert, key, **{name: 0})
    with pytest.raises(ValueError, match=r"handshake_timeout=...\) must be a positive number"):
        aiosio.WebTransport(cert, key, handshake_timeout=0)
    with pytest.raises(TypeError, match=r"retry=...\) must be True or False, got 'yes'"):
        aiosio.WebTransport(cert, key, retry="yes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot load the certificate"):
        await aiosio.serve(
            aiosio.Server(transports=TRANSPORTS),
            "127.0.0.1",
            0,
            webtransport=aiosio.WebTransport(certfile=key, keyfile=key),
        )


async def test_webtransport_over_http_is_refused_with_the_cause(
    running: Callable[..., Any],
) -> None:
    run = await running()
    errors: list[aiosio.ConnectionRejected] = []
    run.sio.engine.on("connection_error", errors.append)
    reader, writer = await asyncio.open_connection("127.0.0.1", run.server.port)
    writer.write(
        b"GET /socket.io/?EIO=4&transport=webtransport HTTP/1.1\r\nHost: x\r\n"
        b"Connection: close\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), TIMEOUT)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.endswith(b'{"code":0,"message":"Transport unknown"}')
    assert "runs over HTTP/3" in errors[0].cause


# -- bad input: one session closed with a reason, the others served -------------------------------


async def closed_with(conn: WebTransportConnection) -> str:
    async with asyncio.timeout(TIMEOUT):
        while conn.ended is None:
            await asyncio.sleep(0.02)
    return conn.close_reason


@pytest.fixture
async def bystander(running: Callable[..., Any]) -> AsyncIterator[tuple[Running, aiosio.Client]]:
    run = await running(max_http_buffer_size=1000, ping_interval=0.5, ping_timeout=0.5)
    client = run.client()
    await client.connect()
    yield run, client
    await client.disconnect()


async def handshake(conn: WebTransportConnection) -> str:
    first: asyncio.Future[str | bytes] = asyncio.get_running_loop().create_future()
    conn.on_message = lambda data: first.done() or first.set_result(data)
    opened = await asyncio.wait_for(first, TIMEOUT)
    assert isinstance(opened, str)
    assert opened.startswith('0{"sid":')
    return opened


async def test_limit_per_packet_and_oversized_frame(
    bystander: tuple[Running, aiosio.Client], caplog: pytest.LogCaptureFixture
) -> None:
    run, other = bystander
    closed: list[tuple[str, Any]] = []
    run.sio.engine.on(
        "connection", lambda s: s.on("close", lambda r, d=None: closed.append((r, d)))
    )
    conn = await run.raw()
    await handshake(conn)
    conn.send("6" + "x" * 999)  # a NOOP of exactly max_http_buffer_size: accepted, ignored
    with caplog.at_level(logging.WARNING, "aiosio.server.webtransport"):
        conn.protocol.quic.send_stream_data(conn.stream_id, b"\x7e\x03\xe9")  # 1001: header only
        conn.protocol.schedule_transmit()
        reason = await closed_with(conn)
    assert reason == "a frame announces 1001 bytes, over the limit of 1000 (max_http_buffer_size)"
    assert reason in caplog.text
    # As the reference's decoder stream: its error packet closes the socket with "parse error".
    await until(lambda: bool(closed))
    assert closed == [("parse error", reason)]
    assert await other.emit_with_ack("echo", "still", timeout=TIMEOUT) == ["webtransport", "still"]


async def test_truncated_frame_at_the_end_of_the_stream(
    bystander: tuple[Running, aiosio.Client],
) -> None:
    run, other = bystander
    conn = await run.raw()
    await handshake(conn)
    frame = encode_frame("4" + "y" * 500)
    conn.protocol.quic.send_stream_data(conn.stream_id, frame[:100], end_stream=True)
    conn.protocol.schedule_transmit()
    reason = await closed_with(conn)
    assert reason == "the stream ended in the middle of a frame (97 bytes of it received)"
    assert await other.emit_with_ack("echo", 1, timeout=TIMEOUT) == ["webtransport", 1]


async def test_a_frame_that_never_finishes_ends_with_the_heartbeat(
    bystander: tuple[Running, aiosio.Client],
) -> None:
    run, other = bystander
    closed: list[str] = []
    run.sio.engine.on("connection", lambda s: s.on("close", lambda r, d=None: closed.append(r)))
    conn = await run.raw()
    await handshake(conn)
    # Half a frame and nothing more: the pong can never be read, the ping timeout ends it.
    conn.protocol.quic.send_stream_data(conn.stream_id, encode_frame("3")[:0] + b"\x7e\x01")
    conn.protocol.schedule_transmit()
    await closed_with(conn)
    assert closed == ["ping timeout"]
    assert await other.emit_with_ack("echo", 2, timeout=TIMEOUT) == ["webtransport", 2]


async def test_wrong_first_packet_and_unknown_upgrade(
    bystander: tuple[Running, aiosio.Client],
) -> None:
    run, other = bystander
    errors: list[aiosio.ConnectionRejected] = []
    run.sio.engine.on("connection_error", errors.append)
    probe = await run.raw(stream=False)
    probe.open_stream(encode_frame("2probe"))
    reason = await closed_with(probe)
    assert reason.startswith(
        "the first packet on a WebTransport stream must be OPEN ('0' or '0{\"sid\":...}'), "
        "got '2probe'; a WebTransport client writes the OPEN packet first"
    )
    unknown = await run.raw(sid="nope")
    reason = await closed_with(unknown)
    assert reason.startswith("upgrade of session 'nope', which is not open on this server; ")
    assert "sticky routing" in reason
    sid = other.io.engine.id
    assert sid is not None
    twice = await run.raw(sid=sid)  # the bystander is on WebTransport already
    reason = await closed_with(twice)
    assert reason == (
        f"session {sid} is already upgrading or upgraded (on webtransport); a client upgrades "
        "a session once"
    )
    # Each refusal is a connection_error with the reference's code, as over HTTP.
    assert [(e.code, e.message) for e in errors] == [
        (3, "Bad request"),
        (1, "Session ID unknown"),
        (3, "Bad request"),
    ]
    assert errors[1].context == {"sid": "nope", "transport": "webtransport"}
    assert await other.emit_with_ack("echo", 3, timeout=TIMEOUT) == ["webtransport", 3]


async def test_a_session_without_stream_ends_at_the_upgrade_timeout(
    running: Callable[..., Any],
) -> None:
    run = await running(upgrade_timeout=0.3)
    idle = await run.raw(stream=False)
    assert await closed_with(idle) == (
        "the WebTransport session opened no stream within upgrade_timeout=0.3s"
    )
    silent = await run.raw(stream=False)
    silent.open_stream(b"\x05")  # the header of a 5-byte frame, and nothing after it
    assert await closed_with(silent) == (
        "the WebTransport session sent no OPEN packet within upgrade_timeout=0.3s"
    )
    assert run.sio.engine.clients_count == 0


# -- aiosio doctor ---------------------------------------------------------------------------------


async def test_doctor_checks_webtransport_when_offered(running: Callable[..., Any]) -> None:
    run = await running()
    timeout = 15.0  # what answers does so at once; a loaded machine makes aioquic's handshake slow
    report = await diagnose(
        DoctorOptions(url=run.url, certificate_hashes=[run.digest], timeout=timeout)
    )
    found = {f.id: f for f in report.findings}
    assert found["webtransport.ok"].title == (
        f"a WebTransport session works over HTTP/3 (udp port {run.port})"
    )
    assert report.ok

    unpinned = await diagnose(DoctorOptions(url=run.url, timeout=timeout))
    certificate = next(f for f in unpinned.findings if f.id == "webtransport.certificate")
    assert "self-signed certificate" in certificate.title
    assert "serverCertificateHashes" in (certificate.fix or "")

    blocked_port = free_port()
    blocked = await diagnose(
        DoctorOptions(url=run.url, webtransport_port=blocked_port, timeout=2.0)
    )
    udp = next(f for f in blocked.findings if f.id == "webtransport.udp_blocked")
    assert udp.verdict.name == "WARN"
    assert f"nothing answers QUIC on udp port {blocked_port}: UDP is blocked" in udp.title
    assert "fall back" in (udp.fix or "")


async def test_doctor_skips_webtransport_when_not_offered(running: Callable[..., Any]) -> None:
    sio = aiosio.Server()
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        report = await diagnose(DoctorOptions(url=f"http://127.0.0.1:{server.port}", timeout=2))
        assert not [f for f in report.findings if f.id.startswith("webtransport.")]
    finally:
        await server.close()


@pytest.mark.parametrize(("options", "limit"), [({}, 16), ({"max_sessions_per_connection": 2}, 2)])
async def test_sessions_per_quic_connection_are_bounded(
    running: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
    options: dict[str, Any],
    limit: int,
) -> None:
    """max_sessions_per_connection (16) WebTransport sessions on one QUIC connection; the
    next CONNECT is answered 429 with the reason."""
    run = await running(webtransport=options)
    caplog.set_level(logging.WARNING, "aiosio.server.webtransport")
    async with quic_peer(run.port) as peer:
        streams = [peer.request() for _ in range(limit + 1)]
        assert [await peer.status(s) for s in streams] == [b"200"] * limit + [b"429"]
        await until(lambda: streams[-1] in peer.bodies)
        assert peer.bodies[streams[-1]] == (
            f"too many WebTransport sessions on one QUIC connection (over {limit}, "
            "max_sessions_per_connection)\n".encode()
        )
    assert logged(caplog, f"are open on its QUIC connection, max_sessions_per_connection={limit}")()


async def test_messages_held_while_reading_is_paused_are_bounded(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A handler that never returns holds the client's next messages (backpressure); what a
    client sends meanwhile is bounded by max_outbound_buffer, then its session is closed."""
    sio = echo_server(max_handlers_per_connection=1, max_outbound_buffer=50_000)
    stuck = asyncio.Event()

    @sio.on("stuck")
    async def block(socket: aiosio.Socket) -> None:
        await stuck.wait()

    run = await running(sio)
    client = run.client()
    await client.connect()
    gone = asyncio.ensure_future(next_event(client, "disconnect"))
    client.emit("stuck")
    with caplog.at_level(logging.WARNING, "aiosio.server.webtransport"):
        for _ in range(20):
            client.emit("echo", "z" * 5000)
        await gone
    stuck.set()
    assert "bytes arrived while the server paused reading (over 50000, max_outbound_buffer)" in (
        caplog.text
    )


async def test_heartbeats_keep_a_session_open(running: Callable[..., Any]) -> None:
    run = await running(ping_interval=0.2, ping_timeout=0.3)
    pings: list[None] = []
    client = run.client()
    client.io.on("ping", lambda: pings.append(None))
    await client.connect()
    try:
        await asyncio.sleep(1.2)  # several heartbeats, each answered over the stream
        assert len(pings) >= 3
        assert client.connected
        assert await client.emit_with_ack("echo", 4, timeout=TIMEOUT) == ["webtransport", 4]
    finally:
        await client.disconnect()


async def test_server_shutdown_closes_webtransport_sessions(
    webtransport_certificate: tuple[Path, Path, str],
) -> None:
    cert, key, digest = webtransport_certificate
    sio = echo_server()
    reasons: list[str] = []

    @sio.on("connection")
    def connected(socket: aiosio.Socket) -> None:
        socket.on("disconnect", lambda reason, description=None: reasons.append(reason))

    server = await aiosio.serve(
        sio, "127.0.0.1", 0, webtransport=aiosio.WebTransport(certfile=cert, keyfile=key)
    )
    client = aiosio.Client(
        f"http://127.0.0.1:{server.port}",
        transports=["webtransport"],
        server_certificate_hashes=[digest],
        reconnection=False,
    )
    await client.connect()
    closed = asyncio.ensure_future(next_event(client, "disconnect"))
    await asyncio.wait_for(server.close(), TIMEOUT)
    assert (await closed)[0] == "transport close"  # the server's close packet
    assert reasons == ["server shutting down"]
    assert server.webtransport is None


async def test_connection_state_recovery_over_webtransport(running: Callable[..., Any]) -> None:
    """A session dropped by the network resumes with the same socket id and its rooms, and the
    packets sent meanwhile: recovery works on WebTransport as on the other transports."""
    sio = echo_server(connection_state_recovery=aiosio.Recovery())
    run = await running(sio)
    client = run.client(reconnection=True, reconnection_delay=0.2, reconnection_delay_max=0.2)
    await client.connect()
    try:
        first = client.id
        await client.emit_with_ack("join", "r", timeout=TIMEOUT)
        before = asyncio.ensure_future(next_event(client, "room"))
        sio.to("r").emit("room", "before")  # the client now has an offset to resume from
        # (next_event's handler takes *args: it gets the offset too, as a node handler does)
        assert (await before)[:1] == ("before",)
        gone = asyncio.ensure_future(next_event(client, "disconnect"))
        back = asyncio.ensure_future(next_event(client, "connect"))
        missed = asyncio.ensure_future(next_event(client, "room"))
        (engine_socket,) = run.sio.engine.clients.values()
        engine_socket.close()  # the transport drops: not a disconnect the client asked for
        await gone
        sio.to("r").emit("room", "while away")
        await back
        assert client.recovered
        assert client.id == first
        assert (await missed)[:1] == ("while away",)
    finally:
        await client.disconnect()


# -- what a peer on UDP can make the server hold: each bound, logged, the others served ---------


def quic_peer_class() -> type:
    """An HTTP/3 client of the test's own (aioquic), to send what a WebTransport client does
    not: CONNECTs by hand, incomplete frames, nothing at all."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import DataReceived
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.events import ConnectionTerminated

    class Peer(QuicConnectionProtocol):  # type: ignore[misc]
        def __init__(self, quic: QuicConnection, **kwargs: Any) -> None:
            super().__init__(quic, **kwargs)
            self.connection = quic
            self.http = H3Connection(quic, enable_webtransport=True)
            self.statuses: dict[int, bytes] = {}
            self.bodies: dict[int, bytes] = {}
            self.closed_with: tuple[int, str] | None = None

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, ConnectionTerminated):
                self.closed_with = (event.error_code, event.reason_phrase)
            for h3_event in self.http.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    self.statuses[h3_event.stream_id] = dict(h3_event.headers)[b":status"]
                elif isinstance(h3_event, DataReceived):
                    body = self.bodies.get(h3_event.stream_id, b"") + h3_event.data
                    self.bodies[h3_event.stream_id] = body

        def request(self) -> int:
            """A WebTransport CONNECT to the server's path; its stream id."""
            stream_id = self.connection.get_next_available_stream_id()
            self.http.send_headers(
                stream_id,
                [
                    (b":method", b"CONNECT"),
                    (b":scheme", b"https"),
                    (b":authority", b"127.0.0.1"),
                    (b":path", b"/socket.io/?EIO=4&transport=webtransport"),
                    (b":protocol", b"webtransport"),
                ],
            )
            self.transmit()
            return stream_id

        async def status(self, stream_id: int) -> bytes:
            async with asyncio.timeout(TIMEOUT):
                while stream_id not in self.statuses:
                    await asyncio.sleep(0.01)
            return self.statuses[stream_id]

        def write(self, stream_id: int, data: bytes) -> None:
            self.connection.send_stream_data(stream_id, data)
            self.transmit()

        async def closed(self) -> tuple[int, str]:
            await asyncio.wait_for(self.wait_closed(), TIMEOUT)
            assert self.closed_with is not None
            return self.closed_with

    return Peer


def quic_peer(port: int) -> Any:
    """``async with quic_peer(port) as peer``: a QUIC connection whose handshake is done."""
    from aioquic.asyncio.client import connect
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    configuration = QuicConfiguration(
        alpn_protocols=H3_ALPN, is_client=True, max_datagram_frame_size=65536
    )
    configuration.verify_mode = 0  # ssl.CERT_NONE: these tests are about what the server holds
    return connect(
        "127.0.0.1", port, configuration=configuration, create_protocol=quic_peer_class()
    )


class Answers(asyncio.DatagramProtocol):
    """What the server sends back to a bare UDP socket."""

    def __init__(self) -> None:
        self.datagrams: list[bytes] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.append(data)


async def first_flight(port: int, answers: Answers | None = None) -> asyncio.DatagramTransport:
    """A QUIC handshake that never finishes: a client's Initial packet, then nothing (what
    the server answers goes to ``answers``, unread). Close the transport it returns."""
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    loop = asyncio.get_running_loop()
    quic = QuicConnection(configuration=QuicConfiguration(alpn_protocols=H3_ALPN, is_client=True))
    quic.connect(("127.0.0.1", port), now=loop.time())
    transport, _ = await loop.create_datagram_endpoint(
        lambda: answers or Answers(), remote_addr=("127.0.0.1", port)
    )
    for data, _addr in quic.datagrams_to_send(now=loop.time()):
        transport.sendto(data)
    return transport


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0.01)


def logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], bool]:
    return lambda: any(text in record.getMessage() for record in caplog.records)


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """What reaches the event loop's exception handler during the test (nothing should)."""
    errors: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(previous)


async def test_quic_connections_are_bounded(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """At max_connections a new connection's first packet is dropped, said once; the open
    ones are served; one closing lets the next in."""
    run = await running(webtransport={"max_connections": 2})
    connections = run.server.webtransport.connections  # type: ignore[union-attr]
    client = run.client()
    await client.connect()  # 1
    caplog.set_level(logging.INFO, "aiosio.server.webtransport")
    async with quic_peer(run.port) as idle:  # 2: at the limit, accepted
        await until(lambda: len(connections) == 2)
        refused = await first_flight(run.port)  # 3: over it
        refused_again = await first_flight(run.port)
        try:
            await until(logged(caplog, "refusing new QUIC connections"))
            assert len(connections) == 2
            assert await client.emit_with_ack("echo", 1, timeout=TIMEOUT) == ["webtransport", 1]
        finally:
            refused.close()
            refused_again.close()
        (line,) = [r.getMessage() for r in caplog.records if "refusing" in r.getMessage()]
        assert line.startswith("refusing new QUIC connections (the first from 127.0.0.1:")
        assert line.endswith(
            ": 2 are open, max_connections=2 (aiosio.WebTransport(max_connections=...)); their "
            "clients time out and fall back to WebSocket or polling"
        )
        assert idle.closed_with is None
    await until(logged(caplog, "accepting new QUIC connections again (1 open, max_connections=2)"))
    other = run.client()
    await other.connect()  # the place the idle connection left
    try:
        assert await other.emit_with_ack("echo", 2, timeout=TIMEOUT) == ["webtransport", 2]
    finally:
        await other.disconnect()
        await client.disconnect()


async def test_a_quic_connection_without_session_ends_at_the_handshake_timeout(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A handshake that never finishes, a connection that opens no session, one whose session
    ended: each closed at handshake_timeout with the reason; a PING keeps none open, and a
    session in progress is not cut (the heartbeat bounds it)."""
    caplog.set_level(logging.INFO, "aiosio.server.webtransport")
    run = await running(webtransport={"handshake_timeout": 0.3})
    half = await first_flight(run.port)
    try:
        await until(logged(caplog, "it did not complete its QUIC handshake within "))
    finally:
        half.close()
    await until(lambda: not run.server.webtransport.connections)  # type: ignore[union-attr]
    # A QUIC and TLS handshake in Python can take a second on a loaded machine: 3 s here.
    run = await running(webtransport={"handshake_timeout": 3})
    client = run.client()
    await client.connect()

    async def idle() -> tuple[int, str]:
        async with quic_peer(run.port) as peer:
            peer.connection.send_ping(1)  # traffic that is not a session does not count
            peer.transmit()
            return await peer.closed()

    async def session_ended() -> tuple[int, str]:
        async with quic_peer(run.port) as peer:
            stream_id = peer.request()
            assert await peer.status(stream_id) == b"200"
            peer.connection.reset_stream(stream_id, 0)  # the session ends
            peer.transmit()
            return await peer.closed()

    try:
        assert await asyncio.gather(idle(), session_ended()) == [
            (0x100, "it opened no WebTransport session within handshake_timeout=3s"),
            (
                0x100,
                "it had no WebTransport session after its last one ended within "
                "handshake_timeout=3s",
            ),
        ]
        assert await client.emit_with_ack("echo", 3, timeout=TIMEOUT) == ["webtransport", 3]
    finally:
        await client.disconnect()
    messages = [r.getMessage() for r in caplog.records if "closing the QUIC" in r.getMessage()]
    assert sorted(m.split(": ", 1)[1] for m in messages) == [
        "it did not complete its QUIC handshake within handshake_timeout=0.3s",
        "it had no WebTransport session after its last one ended within handshake_timeout=3s",
        "it opened no WebTransport session within handshake_timeout=3s",
    ]


async def test_incomplete_http3_frames_are_bounded(
    bystander: tuple[Running, aiosio.Client],
    running: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aioquic holds a HEADERS frame until it is whole, whatever length it announces: the
    server allows max_header_size bytes of such frames per connection, then closes it."""
    _, other = bystander
    run = await running(webtransport={"max_header_size": 1000})
    caplog.set_level(logging.WARNING, "aiosio.server.webtransport")
    async with quic_peer(run.port) as peer:
        stream_id = peer.connection.get_next_available_stream_id()
        # HEADERS (type 1) announcing 5000 bytes (a 2-byte varint), then 1000 of them: at the
        # limit, held; the connection still serves a session.
        peer.write(stream_id, b"\x01" + (0x4000 | 5000).to_bytes(2, "big") + b"x" * 1000)
        session = peer.request()
        assert await peer.status(session) == b"200"
        peer.write(stream_id, b"x")  # one byte over
        reason = "1001 bytes of incomplete HTTP/3 frames, over max_header_size=1000"
        code, said = await peer.closed()
    assert (code, said) == (0x107, f"{reason} (aiosio.WebTransport(max_header_size=...))")
    assert logged(caplog, "closing the QUIC connection of 127.0.0.1:")()
    assert logged(caplog, reason)()
    assert run.sio.engine.clients_count == 0
    assert await other.emit_with_ack("echo", 4, timeout=TIMEOUT) == ["webtransport", 4]


async def test_a_client_that_stops_reading_its_stream_ends_its_session(
    bystander: tuple[Running, aiosio.Client], loop_errors: list[dict[str, Any]]
) -> None:
    """STOP_SENDING on the session's stream (a page's stream.readable.cancel()): aioquic
    resets the stream's sending side, where a write would raise; the session is closed with
    the reason instead, and a broadcast reaches everyone else."""
    run, other = bystander
    conn = await run.raw()
    await handshake(conn)
    conn.protocol.quic.stop_stream(conn.stream_id, 7)
    conn.protocol.schedule_transmit()
    assert await closed_with(conn) == "the client stopped reading the stream (STOP_SENDING, code 7)"
    news = asyncio.ensure_future(next_event(other, "news"))
    await other.emit_with_ack("broadcast", "all", timeout=TIMEOUT)
    assert await news == ("all",)
    await asyncio.sleep(1.2)  # past the heartbeat: nothing writes to the stopped stream
    assert loop_errors == []
    assert run.sio.engine.clients_count == 1


async def test_packets_before_the_engine_answers_are_bounded(
    running: Callable[..., Any],
) -> None:
    """While allow_request decides, the packets a session sends wait: at most 16 and
    max_http_buffer_size bytes, then the session is refused with the reason."""
    deciding = asyncio.Event()

    async def allow_request(request: Any) -> bool:
        await deciding.wait()
        return True

    run = await running(max_http_buffer_size=1000, allow_request=allow_request)
    async with quic_peer(run.port) as peer:
        session = peer.request()
        stream_id = peer.http.create_webtransport_stream(session)
        peer.write(stream_id, encode_frame("0") + encode_frame("6" + "x" * 600) * 2)
        assert await peer.status(session) == b"400"
        deciding.set()
        assert peer.bodies[session] == (
            b"more than 16 packets or 1000 bytes (max_http_buffer_size) before the server "
            b"answered the OPEN packet\n"
        )
    await asyncio.sleep(0)
    assert run.sio.engine.clients_count == 0


async def test_shutdown_closes_every_quic_connection_and_frees_the_port(
    running: Callable[..., Any], loop_errors: list[dict[str, Any]]
) -> None:
    """A session, a connection without one, a handshake under way: the server's close ends
    them all (the client of each is told) and the UDP port can be bound again at once."""
    run = await running()
    client = run.client()
    await client.connect()
    gone = asyncio.ensure_future(next_event(client, "disconnect"))
    half = await first_flight(run.port)
    try:
        async with quic_peer(run.port) as idle:
            connections = run.server.webtransport.connections  # type: ignore[union-attr]
            await until(lambda: len(connections) == 3)
            await asyncio.wait_for(run.server.close(), TIMEOUT)
            assert await idle.closed() == (0x100, "server shutting down")
    finally:
        half.close()
    assert (await gone)[0] == "transport close"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", run.port))  # free: nothing of the server holds it
    await asyncio.sleep(0.5)  # aioquic's timers of the closed connections run out
    assert loop_errors == []


async def test_retry_keeps_nothing_for_a_first_packet(running: Callable[..., Any]) -> None:
    """retry=True: a first packet is answered with a Retry and the server holds no connection
    for it (a forged address never gets further); a real client connects as before."""
    from aioquic.buffer import Buffer
    from aioquic.quic.packet import QuicPacketType
    from aioquic.quic.packet import pull_quic_header

    run = await running(webtransport={"retry": True})
    answers = Answers()
    forged = await first_flight(run.port, answers)
    try:
        await until(lambda: bool(answers.datagrams))
    finally:
        forged.close()
    header = pull_quic_header(Buffer(data=answers.datagrams[0]), host_cid_length=8)
    assert header.packet_type == QuicPacketType.RETRY
    assert not run.server.webtransport.connections  # type: ignore[union-attr]
    client = run.client()
    await client.connect()
    try:
        assert await client.emit_with_ack("echo", 5, timeout=TIMEOUT) == ["webtransport", 5]
    finally:
        await client.disconnect()


# -- under an ASGI server -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["asgi", "serve_webtransport"])
async def test_webtransport_beside_uvicorn(
    webtransport_certificate: tuple[Path, Path, str], how: str
) -> None:
    """uvicorn serves HTTP (polling, WebSocket) and WebTransport runs beside it in the same
    process: with ``sio.asgi(webtransport=...)``, or ``serve_webtransport`` in the lifespan of
    the app in front (Starlette here). A client connects over WebTransport directly, another
    upgrades to it from polling served by uvicorn; uvicorn's exit closes them and frees the
    UDP port."""
    import contextlib

    import uvicorn
    from starlette.applications import Starlette

    from aiosio.transports.webtransport import serve_webtransport

    cert, key, digest = webtransport_certificate
    port = free_port()
    sio = echo_server()
    config = aiosio.WebTransport(certfile=cert, keyfile=key, port=port)
    reasons: list[str] = []
    upgrades: list[str] = []

    @sio.on("connection")
    def connected(socket: aiosio.Socket) -> None:
        upgrades.append(socket.conn.transport)
        socket.conn.on("upgrade", lambda *args: upgrades.append(socket.conn.transport))
        socket.on("disconnect", lambda reason, description=None: reasons.append(reason))

    if how == "asgi":
        app = sio.asgi(webtransport=config)
    else:

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            server = await serve_webtransport(sio, config)
            yield
            await server.close()

        app = sio.asgi(other_app=Starlette(lifespan=lifespan))
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            ws="websockets-sansio",
        )
    )
    task = asyncio.ensure_future(server.serve())
    await until(lambda: server.started or task.done())
    url = f"http://127.0.0.1:{port}"
    direct = aiosio.Client(
        url, transports=["webtransport"], server_certificate_hashes=[digest], reconnection=False
    )
    upgraded = aiosio.Client(
        url, transports=list(TRANSPORTS), server_certificate_hashes=[digest], reconnection=False
    )
    try:
        await direct.connect()
        assert await direct.emit_with_ack("echo", 1, timeout=TIMEOUT) == ["webtransport", 1]
        await upgraded.connect()
        await until(lambda: upgraded.io.engine.transport == "webtransport")
        assert await upgraded.emit_with_ack("echo", 2, timeout=TIMEOUT) == ["webtransport", 2]
        assert upgrades == ["webtransport", "polling", "webtransport"]
        gone = asyncio.gather(next_event(direct, "disconnect"), next_event(upgraded, "disconnect"))
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        assert [args[0] for args in await gone] == ["transport close"] * 2
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, TIMEOUT)
        await direct.disconnect()
        await upgraded.disconnect()
    if how == "asgi":  # the sessions closed first, as the native server closes them
        assert reasons == ["server shutting down"] * 2
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(("127.0.0.1", port))  # the UDP port is free


async def test_a_udp_port_already_taken_is_refused_with_the_cause(
    webtransport_certificate: tuple[Path, Path, str],
) -> None:
    """Another process (another uvicorn worker) holds the UDP port: aiosio.serve raises, and
    the ASGI app fails its lifespan startup, with the cause and what to do."""
    cert, key, _ = webtransport_certificate
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        config = aiosio.WebTransport(certfile=cert, keyfile=key, port=port, host="127.0.0.1")
        expected = f"WebTransport cannot listen on udp 127.0.0.1:{port}: "
        with pytest.raises(OSError, match=expected) as caught:
            await aiosio.serve(echo_server(), "127.0.0.1", 0, webtransport=config)
        assert str(caught.value).endswith(
            "is another process serving it? Only one process can serve WebTransport on a port "
            "(not several workers, such as uvicorn --workers): run one"
        )
        app = echo_server().asgi(webtransport=config)
        said: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(message: dict[str, Any]) -> None:
            said.append(dict(message))

        await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
        assert said[0]["type"] == "lifespan.startup.failed"
        assert expected in said[0]["message"]
    with pytest.raises(ValueError, match=r"under an ASGI server, aiosio.WebTransport\(port=...\)"):
        echo_server().asgi(webtransport=aiosio.WebTransport(certfile=cert, keyfile=key))


async def test_a_client_that_stops_reading_is_bounded_by_max_outbound_buffer(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A client whose network vanished (its UDP socket closed, nothing acknowledged): what the
    server sends it waits in QUIC's send buffer, counted in buffered_amount; past
    max_outbound_buffer the session is closed with the reason, another client served."""
    run = await running(max_outbound_buffer=50_000)
    other = run.client()
    await other.connect()
    conn = await run.raw()
    await handshake(conn)
    (stalled,) = [s for s in run.sio.engine.clients.values() if s.id != other.io.engine.id]
    closed: list[str] = []
    stalled.on("close", lambda reason, description=None: closed.append(reason))
    assert conn.protocol.datagram is not None
    conn.protocol.datagram.close()  # gone without a word: nothing it sends, nothing it reads
    caplog.set_level(logging.WARNING, "aiosio.engine")
    for _ in range(40):
        stalled.send("4" + "z" * 2000)
        await asyncio.sleep(0.01)
        if closed:
            break
    assert closed == ["transport error"]
    assert logged(
        caplog, "bytes wait for a client that does not read them (max_outbound_buffer=50000)"
    )()
    assert await other.emit_with_ack("echo", 6, timeout=TIMEOUT) == ["webtransport", 6]
    await other.disconnect()


async def test_receive_windows_grow_only_as_data_is_read(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """aioquic alone doubles a window whenever the peer's highest offset passes half of it,
    read or not, and fills the gap with zeros: one byte at the end of each window made the
    server hold 2 GB in a dozen packets. With receive_window, a byte at the end of the window
    with nothing before it leaves the window where it was (the server holds that window at
    most), while a client that sends in order gets as much through as it likes."""
    window = 65536
    run = await running(webtransport={"receive_window": window})
    caplog.set_level(logging.WARNING, "aiosio.server.webtransport")
    async with quic_peer(run.port) as peer:
        quic = peer.connection
        stream_id = quic.get_next_available_stream_id()
        quic.send_stream_data(stream_id, b"\x41")  # a WebTransport stream's first byte
        peer.transmit()
        await peer.ping()
        stream = quic._streams[stream_id]  # aioquic's, to write past a gap on purpose
        sender = stream.sender

        def window_end() -> int:  # the last offset the server allows, stream and connection
            room = quic._remote_max_data - quic._remote_max_data_used
            return min(stream.max_stream_data_remote, sender.highest_offset + room)

        # What the server has read: the stream's first byte, and the few bytes of HTTP/3's
        # control and QPACK streams (fewer than 64); the windows stay within receive_window
        # past that. Without the bound, each round below doubled them.
        for _ in range(3):
            end = window_end()
            sender._buffer_start = sender._buffer_stop = end - 1
            sender.write(b"x")  # the window's last byte, nothing between
            peer.transmit()
            await peer.ping()  # the server has taken it and sent what it had to
            assert sender.highest_offset == end  # sent
            assert window_end() <= window + 64
        # Past the window: a flow-control error that closes the connection, logged.
        stream.max_stream_data_remote += 1  # the client pretends it was allowed one more byte
        quic._remote_max_data += 1
        sender.write(b"x")
        peer.transmit()
        assert await peer.closed() == (0x3, "Over stream data limit")  # FLOW_CONTROL_ERROR
    # The server's side ends after its closing period, which may be after the client's.
    await until(logged(caplog, "closed: Over stream data limit (error code 0x3)"))
    client = run.client()
    await client.connect()
    try:
        big = "y" * 200_000  # three times the window, twice: it moves as the server reads
        for _ in range(2):
            assert await client.emit_with_ack("echo", big, timeout=TIMEOUT) == ["webtransport", big]
    finally:
        await client.disconnect()


async def test_the_client_bounds_what_a_server_sends_out_of_order(
    webtransport_certificate: tuple[Path, Path, str],
) -> None:
    """The aiosio client's QUIC windows grow only as it reads too: a server (the test's own,
    aioquic) that accepts the session and writes one byte at the end of each window on the
    session's stream does not make them grow (aioquic alone doubled them each time)."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.asyncio.server import serve
    from aioquic.h3.connection import H3_ALPN
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.h3.events import WebTransportStreamDataReceived
    from aioquic.quic.configuration import QuicConfiguration

    cert, key, digest = webtransport_certificate
    streams: asyncio.Queue[tuple[Any, int]] = asyncio.Queue()

    class Hostile(QuicConnectionProtocol):  # type: ignore[misc]
        def __init__(self, quic: Any, **kwargs: Any) -> None:
            super().__init__(quic, **kwargs)
            self.connection = quic
            self.http = H3Connection(quic, enable_webtransport=True)

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.http.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    self.http.send_headers(
                        h3_event.stream_id,
                        [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")],
                    )
                elif isinstance(h3_event, WebTransportStreamDataReceived):
                    streams.put_nowait((self, h3_event.stream_id))

    configuration = QuicConfiguration(
        alpn_protocols=H3_ALPN, is_client=False, max_datagram_frame_size=65536
    )
    configuration.load_cert_chain(cert, key)
    port = free_port()
    server = await serve("127.0.0.1", port, configuration=configuration, create_protocol=Hostile)
    conn = None
    try:
        conn = await open_webtransport(
            "127.0.0.1",
            port,
            "/socket.io/?EIO=4&transport=webtransport",
            {},
            sid=None,
            timeout=TIMEOUT,
            max_message=1_000_000,
            certificate_hashes=[parse_certificate_hash(digest)],
            url=f"http://127.0.0.1:{port}",
        )
        conn.start()
        hostile, stream_id = await asyncio.wait_for(streams.get(), TIMEOUT)
        quic = hostile.connection
        stream = quic._streams[stream_id]
        sender = stream.sender

        def window_end() -> int:
            room = quic._remote_max_data - quic._remote_max_data_used
            return min(stream.max_stream_data_remote, sender.highest_offset + room)

        for _ in range(3):
            end = window_end()
            sender._buffer_start = sender._buffer_stop = end - 1
            sender.write(b"x")
            hostile.transmit()
            await asyncio.wait_for(hostile.ping(), TIMEOUT)
            assert sender.highest_offset == end
            assert window_end() <= 1024 * 1024 + 256  # what the client read: a few bytes
    finally:
        if conn is not None:
            conn.close()
            await conn.wait_closed()
        server.close()
        await asyncio.sleep(0)  # the server's UDP socket closes on the next loop turn


async def test_churn_leaves_nothing_behind(running: Callable[..., Any]) -> None:
    """100 WebTransport clients connect, echo and leave, 10 at a time: afterwards the server
    holds no QUIC connection, no session and no task more than before (HARDENING 22)."""
    run = await running()
    connections = run.server.webtransport.connections  # type: ignore[union-attr]
    tasks_before = len(asyncio.all_tasks())

    async def visit(n: int) -> None:
        client = run.client()
        await client.connect()
        try:
            assert await client.emit_with_ack("echo", n, timeout=TIMEOUT) == ["webtransport", n]
        finally:
            await client.disconnect()

    async with asyncio.timeout(120):
        for start in range(0, 100, 10):
            await asyncio.gather(*(visit(n) for n in range(start, start + 10)))
        # The server's side of each QUIC connection ends after its closing period.
        await until(lambda: not connections)
    assert run.sio.engine.clients_count == 0
    await until(lambda: len(asyncio.all_tasks()) <= tasks_before)


async def test_a_close_capsule_in_two_pieces_is_read(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The client's close capsule may arrive in several HTTP/3 DATA frames: the server reads
    its code and reason all the same (it took only a capsule whole in one frame)."""
    from aiosio.protocol.webtransport import encode_close_capsule

    run = await running()
    caplog.set_level(logging.DEBUG, "aiosio.server.webtransport")
    capsule = encode_close_capsule(7, "bye " * 100)
    async with quic_peer(run.port) as peer:
        session = peer.request()
        assert await peer.status(session) == b"200"
        peer.http.send_data(session, capsule[:5], end_stream=False)
        peer.transmit()
        await peer.ping()
        peer.http.send_data(session, capsule[5:], end_stream=True)
        peer.transmit()
        await until(logged(caplog, "WebTransport session closed by the client: bye bye"))


async def test_a_connect_with_too_many_headers_is_refused(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """100 header fields (pseudo-headers included) are taken, 101 answered 431, as the native
    server's max_header_count (before, the ones past 100 were dropped without a word)."""
    run = await running()
    caplog.set_level(logging.WARNING, "aiosio.server.webtransport")
    base = [
        (b":method", b"CONNECT"),
        (b":scheme", b"https"),
        (b":authority", b"127.0.0.1"),
        (b":path", b"/socket.io/?EIO=4&transport=webtransport"),
        (b":protocol", b"webtransport"),
    ]
    async with quic_peer(run.port) as peer:
        answers = []
        for count in (100, 101):
            stream_id = peer.connection.get_next_available_stream_id()
            extra = [(f"x-{n}".encode(), b"1") for n in range(count - len(base))]
            peer.http.send_headers(stream_id, base + extra)
            peer.transmit()
            answers.append(await peer.status(stream_id))
        assert answers == [b"200", b"431"]
        await until(lambda: stream_id in peer.bodies)
        assert peer.bodies[stream_id] == b"more than 100 headers\n"
    assert logged(caplog, ": 101 headers, more than 100")()


async def test_no_qpack_dynamic_table_for_a_peer(
    running: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The server announces a QPACK table of 0 bytes: a peer that inserts into it anyway (the
    first step of a HEADERS frame of one-byte references to a 3 KB value, which aioquic's 4 KB
    table decoded to 45 MB from 15 KB) has its connection closed with the QPACK error."""
    import pylsqpack

    run = await running()
    caplog.set_level(logging.WARNING, "aiosio.server.webtransport")
    encoder = pylsqpack.Encoder()
    encoder.apply_settings(max_table_capacity=4096, blocked_streams=16)
    encoder.encode(0, [(b"x-a", b"v" * 3000)])
    insert, _ = encoder.encode(4, [(b"x-a", b"v" * 3000)])  # the encoder inserts it now
    assert insert
    async with quic_peer(run.port) as peer:
        session = peer.request()  # a CONNECT with literals only: served
        assert await peer.status(session) == b"200"
        peer.write(peer.http._local_encoder_stream_id, insert)
        code, _ = await peer.closed()
    assert code == 0x201  # QPACK_ENCODER_STREAM_ERROR
    await until(logged(caplog, "(error code 0x201)"))


# -- what a hostile server can make the client hold: bounded, the cause named ------------------

# A HEADERS frame (type 1) announcing a megabyte (a 4-byte varint), never finished.
HUGE_HEADERS = b"\x01" + (0x80000000 | 1_000_000).to_bytes(4, "big")


def hostile_server_class(
    behaviour: str, connected: asyncio.Queue[Any], *, chunk: int = 4096, chunks: int = 40
) -> type:
    """An HTTP/3 server of the test's own (aioquic): ``headers`` answers the session's CONNECT
    with a HEADERS frame that never ends, trickled ``chunk`` bytes at a time; ``engine`` plays
    Engine.IO and Socket.IO on the session's stream up to the namespace's CONNECT, then puts
    itself and the session's stream ids on ``connected``."""
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.h3.events import WebTransportStreamDataReceived

    from aiosio.protocol.webtransport import FrameDecoder

    class Hostile(QuicConnectionProtocol):  # type: ignore[misc]
        def __init__(self, quic: Any, **kwargs: Any) -> None:
            super().__init__(quic, **kwargs)
            self.connection = quic
            self.http = H3Connection(quic, enable_webtransport=True)
            self.decoder = FrameDecoder(1_000_000)
            self.session: int | None = None
            self.trickling: asyncio.Task[None] | None = None

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.http.handle_event(event):
                if isinstance(h3_event, HeadersReceived) and self.session is None:
                    self.session = h3_event.stream_id
                    if behaviour == "headers":
                        self.trickling = asyncio.ensure_future(self.trickle(h3_event.stream_id))
                        return
                    self.http.send_headers(
                        h3_event.stream_id,
                        [(b":status", b"200"), (b"sec-webtransport-http3-draft", b"draft02")],
                    )
                elif isinstance(h3_event, WebTransportStreamDataReceived):
                    for message in self.decoder.feed(h3_event.data):
                        self.answer(h3_event.stream_id, message)

        def answer(self, stream_id: int, message: str | bytes) -> None:
            if message == "0":  # the client's OPEN: the Engine.IO handshake
                handshake = (
                    '0{"sid":"hostile","upgrades":[],"pingInterval":25000,"pingTimeout":20000,'
                    '"maxPayload":1000000}'
                )
                self.write(stream_id, encode_frame(handshake))
            elif message == "40":
                self.write(stream_id, encode_frame('40{"sid":"s1"}'))
                connected.put_nowait((self, stream_id))

        def write(self, stream_id: int, data: bytes) -> None:
            self.connection.send_stream_data(stream_id, data)
            self.transmit()

        async def trickle(self, stream_id: int, first: bytes = HUGE_HEADERS) -> None:
            """What never ends: ``first``, then bytes, a chunk per round trip."""
            self.write(stream_id, first)
            for _ in range(chunks):
                self.write(stream_id, b"x" * chunk)
                try:
                    await asyncio.wait_for(self.ping(), TIMEOUT)
                except ConnectionError:
                    return  # the client closed the connection

    return Hostile


@pytest.fixture
async def hostile(
    webtransport_certificate: tuple[Path, Path, str],
) -> AsyncIterator[Callable[..., Any]]:
    """``url, digest, connected = await hostile(behaviour)``: a hostile HTTP/3 server."""
    from aioquic.asyncio.server import serve
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration

    cert, key, digest = webtransport_certificate
    servers: list[Any] = []

    async def start(behaviour: str) -> tuple[str, str, asyncio.Queue[Any]]:
        connected: asyncio.Queue[Any] = asyncio.Queue()
        configuration = QuicConfiguration(
            alpn_protocols=H3_ALPN, is_client=False, max_datagram_frame_size=65536
        )
        configuration.load_cert_chain(cert, key)
        port = free_port()
        servers.append(
            await serve(
                "127.0.0.1",
                port,
                configuration=configuration,
                create_protocol=hostile_server_class(behaviour, connected),
            )
        )
        return f"http://127.0.0.1:{port}", digest, connected

    yield start
    for server in servers:
        server.close()
    await asyncio.sleep(0)  # the servers' UDP sockets close on the next loop turn


def hostile_client(url: str, digest: str, **options: Any) -> aiosio.Client:
    return aiosio.Client(
        url,
        transports=["webtransport"],
        reconnection=False,
        server_certificate_hashes=[digest],
        timeout=TIMEOUT,
        **options,
    )


async def test_the_client_bounds_an_answer_that_never_ends(
    hostile: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A server that answers the session request with a HEADERS frame announcing a megabyte and
    trickles it: aioquic holds a frame until it is whole; the client gives up past
    MAX_HEAD (64 KiB) bytes, with a connect error that says so."""
    from aiosio.client.http import MAX_HEAD

    url, digest, _ = await hostile("headers")
    caplog.set_level(logging.WARNING, "aiosio.client.webtransport")
    client = hostile_client(url, digest)
    with pytest.raises(ConnectError) as raised:
        await asyncio.wait_for(client.connect(), TIMEOUT)
    error = raised.value
    assert error.stage is Stage.WEBTRANSPORT
    assert "bytes of incomplete HTTP/3 frames, over the 65536 the client holds" in error.message
    held = int(error.message.split("the server sent ")[1].split(" bytes")[0])
    assert MAX_HEAD < held <= MAX_HEAD + 4096 + len(HUGE_HEADERS)
    assert logged(caplog, "closing the WebTransport connection: the server sent")()
    await client.disconnect()


async def test_the_client_bounds_a_frame_that_never_ends_once_connected(
    hostile: Callable[..., Any],
) -> None:
    """Once connected, a HEADERS frame that never ends on the session's stream (trailers, as
    far as HTTP/3 knows): the client closes the connection past MAX_HEAD bytes held and
    disconnects with "transport error", the description naming the cause."""
    url, digest, connected = await hostile("engine")
    client = hostile_client(url, digest)
    disconnects: list[tuple[Any, ...]] = []
    client.on("disconnect", lambda *args: disconnects.append(args))
    await asyncio.wait_for(client.connect(), TIMEOUT)
    try:
        server, _stream = await asyncio.wait_for(connected.get(), TIMEOUT)
        assert server.session is not None
        await asyncio.wait_for(server.trickle(server.session), TIMEOUT)
        await until(lambda: bool(disconnects))
        reason, description = disconnects[0]
        assert reason == "transport error"
        assert "bytes of incomplete HTTP/3 frames, over the 65536 the client holds" in str(
            description
        )
        assert server.connection._close_event is not None  # the client closed it
    finally:
        await client.disconnect()


async def test_the_client_bounds_an_engineio_frame_by_max_http_buffer_size(
    hostile: Callable[..., Any],
) -> None:
    """An Engine.IO frame on the session's stream that announces more than the client's
    max_http_buffer_size is refused from its header, before anything of it is held (its
    payload trickled would otherwise be held to the end)."""
    url, digest, connected = await hostile("engine")
    client = hostile_client(url, digest, max_http_buffer_size=100_000)
    disconnects: list[tuple[Any, ...]] = []
    client.on("disconnect", lambda *args: disconnects.append(args))
    await asyncio.wait_for(client.connect(), TIMEOUT)
    try:
        server, stream = await asyncio.wait_for(connected.get(), TIMEOUT)
        header = bytes((127,)) + (100_001).to_bytes(8, "big")  # a text frame of 100,001 bytes
        trickling = asyncio.ensure_future(server.trickle(stream, header))
        await until(lambda: bool(disconnects))
        reason, description = disconnects[0]
        assert reason == "transport error"
        assert "a frame announces 100001 bytes, over the limit of 100000" in str(description)
        await asyncio.wait_for(trickling, TIMEOUT)
    finally:
        await client.disconnect()
