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
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiosio
from aiosio import ConnectError, Stage
from aiosio.client.webtransport import (
    WebTransportConnection,
    open_webtransport,
    parse_certificate_hash,
)
from aiosio.doctor.checks import DoctorOptions, diagnose
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

    async def start(sio: aiosio.Server | None = None, **options: Any) -> Running:
        cert, key, digest = webtransport_certificate
        sio = sio or echo_server(**options)
        server = await aiosio.serve(
            sio, "127.0.0.1", 0, webtransport=aiosio.WebTransport(certfile=cert, keyfile=key)
        )
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
    conn = await run.raw()
    await handshake(conn)
    conn.send("6" + "x" * 999)  # a NOOP of exactly max_http_buffer_size: accepted, ignored
    with caplog.at_level(logging.WARNING, "aiosio.server.webtransport"):
        conn.protocol.quic.send_stream_data(conn.stream_id, b"\x7e\x03\xe9")  # 1001: header only
        conn.protocol.schedule_transmit()
        reason = await closed_with(conn)
    assert reason == "a frame announces 1001 bytes, over the limit of 1000 (max_http_buffer_size)"
    assert reason in caplog.text
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


async def test_sessions_per_quic_connection_are_bounded(running: Callable[..., Any]) -> None:
    """16 WebTransport sessions on one QUIC connection; the 17th CONNECT is answered 429."""
    from aioquic.asyncio.client import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    run = await running()
    statuses: dict[int, bytes] = {}

    class Sessions(QuicConnectionProtocol):  # type: ignore[misc]
        def __init__(self, quic: QuicConnection, **kwargs: Any) -> None:
            super().__init__(quic, **kwargs)
            self.connection = quic
            self.http = H3Connection(quic, enable_webtransport=True)

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.http.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    statuses[h3_event.stream_id] = dict(h3_event.headers)[b":status"]

    configuration = QuicConfiguration(
        alpn_protocols=H3_ALPN, is_client=True, max_datagram_frame_size=65536
    )
    configuration.verify_mode = 0  # ssl.CERT_NONE: this test is about sessions
    async with connect(
        "127.0.0.1", run.port, configuration=configuration, create_protocol=Sessions
    ) as protocol:
        assert isinstance(protocol, Sessions)
        streams = []
        for _ in range(17):
            stream_id = protocol.connection.get_next_available_stream_id()
            protocol.http.send_headers(
                stream_id,
                [
                    (b":method", b"CONNECT"),
                    (b":scheme", b"https"),
                    (b":authority", f"127.0.0.1:{run.port}".encode()),
                    (b":path", b"/socket.io/?EIO=4&transport=webtransport"),
                    (b":protocol", b"webtransport"),
                ],
            )
            streams.append(stream_id)
        protocol.transmit()
        async with asyncio.timeout(TIMEOUT):
            while len(statuses) < 17:
                await asyncio.sleep(0.02)
    assert [statuses[s] for s in streams] == [b"200"] * 16 + [b"429"]


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
