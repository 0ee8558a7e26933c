"""Bad input and limits (docs HARDENING.md items 8-14), over real sockets on 127.0.0.1.

Each fault must end with a clear, bounded answer for that one connection, nothing lost for anyone
else, and the server still serving: every test ends by opening a fresh session
(``assert_serving``), and no exception may reach the event loop's exception handler.

Tests that use ``serve`` run against the native server and the ASGI app under uvicorn; header
limits, the header deadline, keep-alive and malformed HTTP are the native server's own and use
``serve_native``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _eio import TIMEOUT
from _eio import RawConnection
from _eio import Recorder
from _eio import assert_serving
from _eio import decode_payload
from _eio import eventually
from _eio import handshake
from _eio import poll
from _eio import post
from _eio import recorder
from _eio import recv
from _eio import request_bytes
from _eio import url
from _eio import ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.exceptions import InvalidStatus

import aiosio

TEXT = "text/plain;charset=UTF-8"
LIMIT = 1000  # max_http_buffer_size of the size tests


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fails the test if anything reached the event loop's exception handler (HARDENING 14)."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    yield seen
    loop.set_exception_handler(previous)
    assert seen == [], seen


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=TIMEOUT)


def timer_count(engine: aiosio.EngineServer) -> int:
    """Sessions scheduled on the engine's timer wheel (one entry per session at most)."""
    return len(engine.timers)


# -- 8. max_http_buffer_size while reading --------------------------------------------------------


async def test_post_over_the_limit_is_413_and_the_session_survives(serve: Any) -> None:
    rec = recorder(max_http_buffer_size=LIMIT)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        body = "4" + "x" * LIMIT  # LIMIT + 1 bytes
        response = await post(c, base, sid, body, headers={"Content-Type": TEXT})
        assert response.status_code == 413
        assert rec.messages == []
        # exactly at the limit is fine, and the session carries on
        response = await post(c, base, sid, "4" + "y" * (LIMIT - 1), headers={"Content-Type": TEXT})
        assert response.status_code == 200
        response = await post(c, base, sid, "4ok", headers={"Content-Type": TEXT})
        assert response.status_code == 200
        await rec.message(sid, "ok")
        rec.sockets[sid].send("back")
        assert (await poll(c, base, sid)).text == "4back"
    assert sid not in rec.closes
    await assert_serving(base)


async def test_declared_length_over_the_limit_is_refused_before_the_body(serve: Any) -> None:
    rec = recorder(max_http_buffer_size=LIMIT)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    async with await RawConnection.open(base) as conn:
        # 100 MB announced, not one byte sent: the answer must not wait for the body
        await conn.send(request_bytes("POST", target, base, [("Content-Length", "100000000")]))
        response = await conn.response()
    assert response.status == 413
    assert rec.messages == []
    assert sid not in rec.closes
    await assert_serving(base)


async def test_chunked_body_over_the_limit_is_refused_while_reading(serve: Any) -> None:
    rec = recorder(max_http_buffer_size=LIMIT)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        async with await RawConnection.open(base) as conn:
            await conn.send(
                request_bytes(
                    "POST",
                    target,
                    base,
                    [("Transfer-Encoding", "chunked"), ("Content-Type", TEXT)],
                )
            )
            chunk = b"4" + b"x" * 599
            for _ in range(2):  # 1200 bytes, and the body never ends: no terminating chunk
                await conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            response = await conn.response()
        assert response.status == 413
        # a chunked body within the limit is delivered, and the session is intact
        async with await RawConnection.open(base) as conn:
            body = b"4chunked"
            await conn.send(
                request_bytes("POST", target, base, [("Transfer-Encoding", "chunked")])
                + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            )
            response = await conn.response()
        assert (response.status, response.body) == (200, b"ok")
        await rec.message(sid, "chunked")
        assert len(rec.messages) == 1
    assert sid not in rec.closes
    await assert_serving(base)


async def _ws_session(base: str) -> tuple[Any, str]:
    ws = await ws_connect(base).__aenter__()
    opened = await recv(ws)
    assert isinstance(opened, str)
    assert opened.startswith("0{")
    sid = opened.split('"sid":"', 1)[1].split('"', 1)[0]
    return ws, sid


@pytest.mark.parametrize(
    "shape", ["single", "fragmented", "tiny-fragments", "binary"], ids=lambda s: s
)
async def test_websocket_message_over_the_limit(serve: Any, shape: str) -> None:
    rec = recorder(max_http_buffer_size=LIMIT)
    base = await serve(rec.engine)
    bystander, other = await _ws_session(base)
    ws, sid = await _ws_session(base)
    try:
        message: Any
        if shape == "single":
            message = "4" + "x" * LIMIT
        elif shape == "fragmented":
            message = ["4", "x" * 600, "x" * 600]
        elif shape == "tiny-fragments":
            message = ["4", *("x" for _ in range(LIMIT + 50))]
        else:
            message = b"\x00" * (LIMIT + 1)
        await ws.send(message)
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1009
        reason, _ = await rec.closed(sid)
        assert reason == "transport error"
        assert rec.messages == []
        # the other session is unaffected
        rec.sockets[other].send("still")
        assert await recv(bystander) == "4still"
        await bystander.send("4alive")
        await rec.message(other, "alive")
        assert other not in rec.closes
    finally:
        await ws.close()
        await bystander.close()
    await assert_serving(base)


async def test_websocket_message_at_the_limit_is_delivered(serve: Any) -> None:
    rec = recorder(max_http_buffer_size=LIMIT)
    base = await serve(rec.engine)
    ws, sid = await _ws_session(base)
    try:
        await ws.send("4" + "x" * (LIMIT - 1))
        await ws.send(b"\x01" * LIMIT)
        await rec.message(sid, b"\x01" * LIMIT)
        assert (sid, "x" * (LIMIT - 1)) in rec.messages
    finally:
        await ws.close()


async def test_websocket_limit_counts_utf8_bytes(serve: Any) -> None:
    # ws maxPayload (the reference) counts bytes on the wire, not characters: so do the native
    # codec and the ASGI app (which once compared len(str), letting 4x the limit through).
    rec = recorder(max_http_buffer_size=LIMIT)
    base = await serve(rec.engine)
    ws, sid = await _ws_session(base)
    try:
        await ws.send("4" + "\u00e9" * 600)  # 601 characters, 1201 bytes
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1009
        assert (await rec.closed(sid))[0] == "transport error"
    finally:
        await ws.close()
    await assert_serving(base)


async def test_websocket_empty_fragment_flood_is_bounded(serve_native: Any) -> None:
    # Native only: the codec caps the frames of one message (max_fragments); under uvicorn the
    # websockets library assembles fragments itself.
    rec = recorder()
    base = await serve_native(rec.engine)
    bystander, other = await _ws_session(base)
    ws, sid = await _ws_session(base)
    try:
        await ws.send(["4", *("" for _ in range(5000)), "x"])
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert ws.close_code == 1009
        assert (await rec.closed(sid))[0] == "transport error"
        rec.sockets[other].send("still")
        assert await recv(bystander) == "4still"
    finally:
        await ws.close()
        await bystander.close()
    await assert_serving(base)


# -- 9. every error path ends the response ---------------------------------------------------


async def test_octet_stream_post_on_eio4_closes_the_session(serve: Any) -> None:
    # polling.ts onDataRequest: binary content on protocol 4 -> onError("invalid content"), 400.
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        response = await post(
            c, base, sid, b"4abc", headers={"Content-Type": "application/octet-stream"}
        )
        assert response.status_code == 400
        assert response.content == b""
        assert (await rec.closed(sid))[0] == "transport error"
        assert rec.messages == []
        response = await poll(c, base, sid)
        assert response.status_code == 400
        assert response.json()["code"] == 1
    await assert_serving(base)


@pytest.mark.parametrize("body", ["xyz", "4ok\x1e", "4ok\x1e9bad", "b!!!notbase64"])
async def test_malformed_payload_closes_the_session(serve: Any, body: str) -> None:
    # The reference decodes to an "error" packet -> onClose("parse error") (it still answers the
    # POST with 200 "ok"; aiosio answers 400). Packets before the bad one are delivered.
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        response = await post(c, base, sid, body, headers={"Content-Type": TEXT})
        assert response.status_code in (200, 400)
        assert (await rec.closed(sid))[0] == "parse error"
    assert [m for _, m in rec.messages] == (["ok"] if body.startswith("4ok") else [])
    await assert_serving(base)


async def test_packet_count_per_payload_is_bounded(serve: Any) -> None:
    rec = recorder(max_payload_packets=100)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        ok = await post(c, base, sid, "\x1e".join(["6"] * 100), headers={"Content-Type": TEXT})
        assert ok.status_code == 200
        assert sid not in rec.closes
        await post(c, base, sid, "\x1e".join(["6"] * 5000), headers={"Content-Type": TEXT})
        assert (await rec.closed(sid))[0] == "parse error"
    await assert_serving(base)


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
async def test_other_methods_with_a_sid_get_500(serve: Any, method: str) -> None:
    # polling.ts onRequest: neither GET nor POST -> res.writeHead(500); res.end().
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        response = await c.request(
            method, url(base, EIO="4", transport="polling", sid=sid), content=b"4x"
        )
        assert response.status_code == 500
        assert response.content == b""
        assert sid not in rec.closes  # the session is not affected
        await post(c, base, sid, "4after", headers={"Content-Type": TEXT})
        await rec.message(sid, "after")
        assert rec.messages == [(sid, "after")]
    await assert_serving(base)


BAD_SIDS = [
    "1234",
    "__proto__",
    "__class__",
    "__dict__",
    "constructor",
    "hasOwnProperty",
    "clients",
    "\x00\xff",
    "A" * 2000,
    "../../etc/passwd",
    "x;y=z",
]


@pytest.mark.parametrize("sid", BAD_SIDS, ids=lambda s: repr(s[:12]))
async def test_unknown_and_malformed_sids(serve: Any, sid: str) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        for method in ("GET", "POST"):
            response = await c.request(
                method, url(base, EIO="4", transport="polling", sid=sid), content=b"4x"
            )
            assert response.status_code == 400
            assert response.json() == {"code": 1, "message": "Session ID unknown"}
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base, sid=sid):
            pass
    assert caught.value.response.status_code == 400
    assert [e.code for e in rec.errors] == [1, 1, 1]
    assert all(len(e.context["sid"]) <= 64 for e in rec.errors)  # bounded in logs and events
    assert rec.engine.clients_count == 0
    await assert_serving(base)


@pytest.mark.parametrize("eio", [None, "", "abc", "5", "3", "4.0", "04", " 4"])
async def test_protocol_version_must_be_4(serve: Any, eio: str | None) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    query = {"transport": "polling"} if eio is None else {"EIO": eio, "transport": "polling"}
    async with client() as c:
        response = await c.get(url(base, **query))
    assert response.status_code == 400
    assert response.json() == {"code": 5, "message": "Unsupported protocol version"}
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base, **({"EIO": eio} if eio is not None else {"EIO": ""})):
            pass
    assert caught.value.response.status_code == 400
    assert [e.code for e in rec.errors] == [5, 5]
    assert rec.engine.clients_count == 0
    await assert_serving(base)


async def test_overlapping_gets_close_the_session(serve: Any) -> None:
    # polling.ts onPollRequest: a second GET while one waits -> onError("overlap from client"),
    # 400 for the second; closing the transport answers the first with the close packet.
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        first = asyncio.create_task(poll(c, base, sid))
        await asyncio.sleep(0.2)
        second = await poll(c, base, sid)
        assert second.status_code == 400
        response = await asyncio.wait_for(first, TIMEOUT)
        assert (response.status_code, response.text) == (200, "1")
        assert await rec.closed(sid) == ("transport error", "overlap from client")
        assert rec.engine.clients_count == 0
    await assert_serving(base)


async def test_concurrent_posts_are_each_answered(serve: Any) -> None:
    # The HTTP layer reads a whole body before the engine sees it, so two POSTs never overlap
    # inside the engine (the reference closes the session on "data request overlap"); what
    # matters is that neither hangs.
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        async with await RawConnection.open(base) as slow:
            await slow.send(request_bytes("POST", target, base, [("Content-Length", "6")]) + b"4fi")
            await asyncio.sleep(0.1)
            fast = await post(c, base, sid, "4second", headers={"Content-Type": TEXT})
            assert (fast.status_code, fast.text) == (200, "ok")
            await slow.send(b"rst")
            response = await slow.response()
            assert (response.status, response.body) == (200, b"ok")
    await rec.message(sid, "first")
    assert [m for _, m in rec.messages] == ["second", "first"]
    await assert_serving(base)


async def test_long_poll_dropped_by_the_client_closes_the_session(serve: Any) -> None:
    # polling.ts onPollRequest: req "close" -> onError("poll connection closed prematurely").
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
    async with await RawConnection.open(base) as conn:
        await conn.send(
            request_bytes("GET", f"/engine.io/?EIO=4&transport=polling&sid={sid}", base)
        )
        await asyncio.sleep(0.2)
    assert await rec.closed(sid) == ("transport error", "poll connection closed prematurely")
    assert rec.engine.clients_count == 0
    assert timer_count(rec.engine) == 0
    await assert_serving(base)


@pytest.mark.parametrize("client_step", ["upgrade", "poll"])
async def test_server_close_during_an_upgrade(serve: Any, client_step: str) -> None:
    # The probe survives the close: a client that has "3probe" pauses polling, so the WebSocket
    # may be its only transport left. What was sent before the close goes first, on the
    # transport the client uses next (tests/core/test_close_during_upgrade.py has every state).
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as probe:
            await probe.send("2probe")
            assert await recv(probe) == "3probe"
            rec.sockets[sid].send("bye")
            rec.sockets[sid].close()
            if client_step == "upgrade":
                await probe.send("5")
                assert await recv(probe) == "4bye"
                with pytest.raises(ConnectionClosed):
                    await recv(probe)
                assert rec.upgrades == [sid]
            else:
                response = await poll(c, base, sid)
                assert decode_payload(response.text) == ["4bye"]
                response = await poll(c, base, sid)  # the orderly close: noop + close packet
                assert decode_payload(response.text) == ["6", "1"]
                with pytest.raises(ConnectionClosed):
                    await recv(probe)  # closed with the session
                assert not rec.upgrades
        assert await rec.closed(sid) == ("forced close", None)
    assert rec.engine.clients_count == 0
    await assert_serving(base)


async def test_polling_requests_after_the_upgrade_are_refused(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as ws:
            await ws.send("2probe")
            assert await recv(ws) == "3probe"
            await ws.send("5")
            await eventually(lambda: sid in rec.upgrades)
            for method in ("POST", "GET"):
                response = await c.request(
                    method,
                    url(base, EIO="4", transport="polling", sid=sid),
                    content=b"4sneaky",
                    headers={"Content-Type": TEXT},
                )
                assert response.status_code == 400
                assert response.json() == {"code": 3, "message": "Bad request"}
                assert rec.errors[-1].context == {
                    "name": "TRANSPORT_MISMATCH",
                    "transport": "polling",
                    "previousTransport": "websocket",
                }
            assert rec.messages == []
            rec.sockets[sid].send("fine")
            assert await recv(ws) == "4fine"
            assert sid not in rec.closes
    await assert_serving(base)


async def test_websocket_transport_as_plain_http(serve: Any) -> None:
    # transport=websocket without the Upgrade headers: code 3 (TRANSPORT_HANDSHAKE_ERROR or
    # TRANSPORT_MISMATCH for a known sid), with a hint about proxies.
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        response = await c.get(url(base, EIO="4", transport="websocket"))
        assert response.status_code == 400
        assert response.json() == {"code": 3, "message": "Bad request"}
        response = await c.get(url(base, EIO="4", transport="websocket", sid=sid))
        assert response.status_code == 400
        assert response.json() == {"code": 3, "message": "Bad request"}
    assert [e.context["name"] for e in rec.errors] == [
        "TRANSPORT_HANDSHAKE_ERROR",
        "TRANSPORT_MISMATCH",
    ]
    assert all("proxy" in e.hint for e in rec.errors)
    assert sid not in rec.closes
    await assert_serving(base)


async def test_invalid_origin_characters(serve: Any) -> None:
    # server.ts verify: checkInvalidHeaderChar(origin) -> BAD_REQUEST {name: INVALID_ORIGIN}. Both
    # HTTP parsers (httptools, and uvicorn's) already refuse such a header with a plain 400.
    rec = recorder()
    base = await serve(rec.engine)
    for bad in ("http://a\x7fb", "http://a\x01b"):
        async with await RawConnection.open(base) as conn:
            await conn.send(
                request_bytes("GET", "/engine.io/?EIO=4&transport=polling", base, [("Origin", bad)])
            )
            response = await conn.response()
            assert response.status == 400
            assert await conn.at_eof(2.0)
    assert rec.engine.clients_count == 0
    await assert_serving(base)


# -- 12. upgrade edge cases ----------------------------------------------------------------------


async def _still_polling(c: httpx.AsyncClient, base: str, rec: Recorder, sid: str) -> None:
    socket = rec.sockets[sid]
    assert socket.transport == "polling"
    assert sid not in rec.closes
    response = await post(c, base, sid, "4via polling", headers={"Content-Type": TEXT})
    assert response.status_code == 200
    await rec.message(sid, "via polling")
    socket.send("reply")
    response = await poll(c, base, sid)
    assert response.text == "4reply"


@pytest.mark.parametrize("first", ["2wrong", "4hello", "garbage", "3probe", "6", "1"])
async def test_probe_mismatch_closes_the_probe(serve: Any, first: str) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as probe:
            await probe.send(first)
            with pytest.raises(ConnectionClosed):
                await recv(probe)
        assert "hello" not in [m for _, m in rec.messages]
        assert not rec.upgrades
        await _still_polling(c, base, rec, sid)
        # and a proper upgrade still works afterwards
        async with ws_connect(base, sid=sid) as ws:
            await ws.send("2probe")
            assert await recv(ws) == "3probe"
            await ws.send("5")
            await eventually(lambda: sid in rec.upgrades)
    await assert_serving(base)


async def test_upgrade_packet_before_the_probe(serve: Any) -> None:
    # The reference (socket.ts _maybeUpgrade onPacket) completes the upgrade on "5" even without
    # "2probe". (This once raised LocalProtocolError out of the native data_received into the
    # event loop's exception handler; the autouse loop_errors fixture guards that.)
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        waiting = asyncio.create_task(poll(c, base, sid))
        await asyncio.sleep(0.1)
        async with ws_connect(base, sid=sid) as ws:
            await ws.send("5")
            await eventually(lambda: sid in rec.upgrades)
            socket = rec.sockets[sid]
            assert socket.upgraded
            response = await asyncio.wait_for(waiting, TIMEOUT)
            assert response.text == "1"  # the discarded polling transport closes its GET
            socket.send("x")
            assert await recv(ws) == "4x"
            await ws.send("4y")
            await rec.message(sid, "y")
    await assert_serving(base)


async def test_probe_mismatch_after_2probe(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as probe:
            await probe.send("2probe")
            assert await recv(probe) == "3probe"
            await probe.send("4not an upgrade")
            with pytest.raises(ConnectionClosed):
                await recv(probe)
        assert not rec.upgrades
        await _still_polling(c, base, rec, sid)
        assert "not an upgrade" not in [m for _, m in rec.messages]
    await assert_serving(base)


async def test_second_concurrent_upgrade_is_closed(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as first:
            await first.send("2probe")
            assert await recv(first) == "3probe"
            async with ws_connect(base, sid=sid) as second:
                with pytest.raises(ConnectionClosed):
                    await recv(second)
            await first.send("5")
            await eventually(lambda: sid in rec.upgrades)
            rec.sockets[sid].send("on ws")
            assert await recv(first) == "4on ws"
    await assert_serving(base)


async def test_upgrade_of_a_closed_session(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        await post(c, base, sid, "1", headers={"Content-Type": TEXT})
        await rec.closed(sid)
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base, sid=sid):
            pass
    assert caught.value.response.status_code == 400
    assert caught.value.response.body == b"Session ID unknown"
    assert "ended" in rec.errors[-1].cause
    await assert_serving(base)


@pytest.mark.parametrize("sent", [[], ["2probe"]], ids=["silent", "no-5"])
async def test_upgrade_timeout(
    serve: Any, sent: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiosio.engine")
    # heartbeats far beyond the wait: only the upgrade deadline can close the probe
    rec = recorder(upgrade_timeout=0.3, ping_interval=60.0, ping_timeout=60.0)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as probe:
            for message in sent:
                await probe.send(message)
                assert await recv(probe) == "3probe"
            with pytest.raises(ConnectionClosed):
                await recv(probe)
        abandoned = f"session {sid}: upgrade abandoned: client did not complete upgrade"
        assert abandoned in caplog.messages
        assert not rec.upgrades
        await _still_polling(c, base, rec, sid)
    await assert_serving(base)


async def test_probe_closed_by_the_client_mid_upgrade(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        async with ws_connect(base, sid=sid) as probe:
            await probe.send("2probe")
            assert await recv(probe) == "3probe"
        await asyncio.sleep(0.1)
        await _still_polling(c, base, rec, sid)
        async with ws_connect(base, sid=sid) as ws:  # may try again
            await ws.send("2probe")
            assert await recv(ws) == "3probe"
    await assert_serving(base)


# -- 11. heartbeat --------------------------------------------------------------------------------


async def test_pong_flood_allocates_nothing(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        response = await post(
            c, base, sid, "\x1e".join(["3"] * 2000), headers={"Content-Type": TEXT}
        )
        assert response.status_code == 200
        async with ws_connect(base) as ws:
            opened = await recv(ws)
            assert isinstance(opened, str)
            ws_sid = opened.split('"sid":"', 1)[1].split('"', 1)[0]
            for _ in range(300):
                await ws.send("3")
            await ws.send("4after the flood")
            await rec.message(ws_sid, "after the flood")
            assert rec.engine.clients_count == 2
            assert timer_count(rec.engine) == 2  # still one timer entry per session
            assert rec.closes == {}
        await _still_polling(c, base, rec, sid)
    await assert_serving(base)


async def test_client_ping_on_v4_polling_is_a_transport_error(serve: Any) -> None:
    # socket.ts onPacket: "ping" on protocol 4 -> onError("invalid heartbeat direction").
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        waiting = asyncio.create_task(poll(c, base, sid))
        await asyncio.sleep(0.1)
        await post(c, base, sid, "2\x1e4never", headers={"Content-Type": TEXT})
        assert await rec.closed(sid) == ("transport error", "invalid heartbeat direction")
        response = await asyncio.wait_for(waiting, TIMEOUT)
        assert decode_payload(response.text)[-1] == "1"
    assert rec.messages == []
    assert timer_count(rec.engine) == 0
    await assert_serving(base)


async def test_client_ping_on_v4_websocket_is_a_transport_error(serve: Any) -> None:
    rec = recorder()
    base = await serve(rec.engine)
    ws, sid = await _ws_session(base)
    try:
        for _ in range(3):
            await ws.send("2")
        with pytest.raises(ConnectionClosed):
            await recv(ws)
        assert await rec.closed(sid) == ("transport error", "invalid heartbeat direction")
    finally:
        await ws.close()
    assert rec.engine.clients_count == 0
    await assert_serving(base)


async def test_ping_timeout_and_pong(serve: Any) -> None:
    rec = recorder(ping_interval=0.2, ping_timeout=0.3)
    base = await serve(rec.engine)
    answering, kept = await _ws_session(base)
    silent, dropped = await _ws_session(base)

    async def answer(rounds: int) -> None:
        for _ in range(rounds):
            assert await recv(answering) == "2"
            await answering.send("3")

    try:
        answerer = asyncio.create_task(answer(4))  # four rounds of ping/pong keep this one
        assert await recv(silent) == "2"
        with pytest.raises(ConnectionClosed):
            await recv(silent)
        assert (await rec.closed(dropped))[0] == "ping timeout"
        await asyncio.wait_for(answerer, TIMEOUT)
        assert kept not in rec.closes
    finally:
        await answering.close()
        await silent.close()
    await assert_serving(base)


# -- 13. pathological headers and slow clients (native) ------------------------------------------


async def test_too_many_headers_is_431(serve_native: Any) -> None:
    base = await serve_native(
        aiosio.EngineServer(), limits=aiosio.ServerLimits(max_header_count=20)
    )
    headers = [(f"X-H{i}", "v") for i in range(25)]
    async with await RawConnection.open(base) as conn:
        await conn.send(request_bytes("GET", "/engine.io/?EIO=4&transport=polling", base, headers))
        response = await conn.response()
        assert response.status == 431
        assert b"max_header_count=20" in response.body
        assert response.header("Connection") == "close"
        assert await conn.at_eof(2.0)
    # thousands of headers are refused as soon as the count is passed
    async with await RawConnection.open(base) as conn:
        flood = request_bytes("GET", "/engine.io/", base, [(f"X-{i}", "v") for i in range(5000)])
        conn.writer.write(flood)
        response = await conn.response()
        assert response.status == 431
    await assert_serving(base)


async def test_request_head_over_max_header_size_is_431(serve_native: Any) -> None:
    base = await serve_native(
        aiosio.EngineServer(), limits=aiosio.ServerLimits(max_header_size=4096)
    )
    async with await RawConnection.open(base) as conn:
        await conn.send(
            request_bytes(
                "GET",
                "/engine.io/?EIO=4&transport=polling",
                base,
                [("X-Big", "a" * 3000), ("X-Bigger", "b" * 3000)],
            )
        )
        response = await conn.response()
        assert response.status == 431
        assert await conn.at_eof(2.0)
    async with await RawConnection.open(base) as conn:  # an overlong request line
        await conn.send(request_bytes("GET", "/engine.io/?x=" + "a" * 5000, base))
        response = await conn.response()
        assert response.status in (414, 431)
        assert await conn.at_eof(2.0)
    await assert_serving(base)


async def test_headers_trickled_past_the_deadline_get_408(serve_native: Any) -> None:
    limits = aiosio.ServerLimits(header_timeout=0.3)
    base = await serve_native(aiosio.EngineServer(), limits=limits)
    async with await RawConnection.open(base) as conn:
        await conn.send(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n")
        answered = asyncio.create_task(conn.response(timeout=3 * TIMEOUT))
        trickled = 0
        try:
            # a header line every 50 ms, for at least TIMEOUT: far longer than the deadline, and
            # each line well within it (a deadline reset by every read would never fire)
            while not answered.done() and trickled < TIMEOUT / 0.05:
                await conn.send(b"X-Slow-%d: v\r\n" % trickled)
                trickled += 1
                await asyncio.sleep(0.05)
        except ConnectionError:
            pass
        response = await answered
        assert response.status == 408
        assert trickled < TIMEOUT / 0.05  # cut while the head was still trickling in
        assert await conn.at_eof()
    async with await RawConnection.open(base) as conn:  # a connection that says nothing at all
        response = await conn.response(timeout=3.0)
        assert response.status == 408
        assert await conn.at_eof(2.0)
    await assert_serving(base)


async def test_header_deadline_does_not_cut_a_long_poll(serve_native: Any) -> None:
    rec = recorder()
    base = await serve_native(rec.engine, limits=aiosio.ServerLimits(header_timeout=0.2))
    async with client() as c:
        sid, _, _ = await handshake(c, base)
        waiting = asyncio.create_task(poll(c, base, sid))
        await asyncio.sleep(0.6)
        assert not waiting.done()
        rec.sockets[sid].send("late")
        assert (await waiting).text == "4late"


def _upgrade_request(base: str, target: str, extra: list[tuple[str, str]]) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
        *extra,
    ]
    return request_bytes("GET", target, base, headers)


async def _read_frame(conn: RawConnection) -> tuple[int, bytes]:
    async with asyncio.timeout(TIMEOUT):
        b0, b1 = await conn.reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await conn.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await conn.reader.readexactly(8), "big")
        return b0, await conn.reader.readexactly(length)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits" + ";x" * 5000),
        ("Sec-WebSocket-Extensions", ", ".join(["permessage-deflate; bogus"] * 40)),
        ("Sec-WebSocket-Extensions", "x-unknown; " + "a=b; " * 1500),
        ("Sec-WebSocket-Protocol", ", ".join(f"proto{i}" for i in range(1500))),
    ],
    ids=["long-extension", "many-offers", "unknown-extension", "many-protocols"],
)
async def test_huge_websocket_negotiation_headers_are_bounded(
    serve_native: Any, name: str, value: str
) -> None:
    assert len(value) < 16 * 1024 - 512  # under max_header_size: the handshake itself must cope
    rec = recorder(per_message_deflate=True)
    base = await serve_native(rec.engine)
    async with await RawConnection.open(base) as conn:
        # The work is bounded by negotiate_deflate's caps on the header's length and offers,
        # pinned in tests/core/test_websocket.py (test_negotiate_deflate_declines); here, the
        # handshake copes and declines.
        await conn.send(
            _upgrade_request(base, "/engine.io/?EIO=4&transport=websocket", [(name, value)])
        )
        response = await conn.response()
        assert response.status == 101
        assert response.header("Sec-WebSocket-Extensions") is None  # declined, not negotiated
        assert response.header("Sec-WebSocket-Protocol") is None
        opcode, payload = await _read_frame(conn)
        assert opcode == 0x81
        assert payload.startswith(b'0{"sid":')
    await assert_serving(base)


async def test_websocket_headers_over_max_header_size_are_431(serve_native: Any) -> None:
    base = await serve_native(aiosio.EngineServer(per_message_deflate=True))
    for name in ("Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"):
        async with await RawConnection.open(base) as conn:
            await conn.send(
                _upgrade_request(
                    base, "/engine.io/?EIO=4&transport=websocket", [(name, "x" * 20_000)]
                )
            )
            response = await conn.response()
            assert response.status == 431
            assert await conn.at_eof(2.0)
    await assert_serving(base)


async def test_deflate_is_negotiated_for_a_sane_offer(serve_native: Any) -> None:
    base = await serve_native(aiosio.EngineServer(per_message_deflate=True))
    async with await RawConnection.open(base) as conn:
        await conn.send(
            _upgrade_request(
                base,
                "/engine.io/?EIO=4&transport=websocket",
                [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")],
            )
        )
        response = await conn.response()
    assert response.status == 101
    assert response.header("Sec-WebSocket-Extensions") == "permessage-deflate"


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET /engine.io/ HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    b"GET /engine.io/ HTTP/9.9\r\nHost: x\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,  # TLS to a plain port
    b"GET /engine.io/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
    b"POST /engine.io/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /engine.io/ HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
]


@pytest.mark.parametrize("data", MALFORMED, ids=lambda d: repr(d[:20]))
async def test_malformed_http_is_400(serve_native: Any, data: bytes) -> None:
    rec = recorder()
    base = await serve_native(rec.engine)
    async with await RawConnection.open(base) as conn:
        await conn.send(data)
        response = await conn.response()
        assert response.status == 400
        assert response.header("Connection") == "close"
        assert await conn.at_eof(2.0)
    assert rec.engine.clients_count == 0
    await assert_serving(base)


async def test_keep_alive_and_connection_close(serve_native: Any) -> None:
    rec = recorder()
    base = await serve_native(rec.engine)
    handshake_request = request_bytes("GET", "/engine.io/?EIO=4&transport=polling", base)
    async with await RawConnection.open(base) as conn:
        # two requests one after the other on one connection
        await conn.send(handshake_request)
        first = await conn.response()
        await conn.send(request_bytes("GET", "/engine.io/?transport=udp", base))
        second = await conn.response()
        assert first.status == 200
        assert first.body.startswith(b'0{"sid":')
        assert second.status == 400
        assert second.body == b'{"code":0,"message":"Transport unknown"}'
        assert first.header("Connection") is None
        assert second.header("Connection") is None
        # pipelined: three requests in one write, answered in order
        await conn.send(handshake_request * 3)
        sids = [(await conn.response()).body[9:29] for _ in range(3)]
        assert len(set(sids)) == 3
        # and the connection is still usable
        await conn.send(handshake_request)
        assert (await conn.response()).status == 200
    async with await RawConnection.open(base) as conn:
        await conn.send(
            request_bytes(
                "GET", "/engine.io/?EIO=4&transport=polling", base, [("Connection", "close")]
            )
        )
        response = await conn.response()
        assert response.status == 200
        assert response.header("Connection") == "close"
        assert await conn.at_eof(2.0)
    async with await RawConnection.open(base) as conn:  # HTTP/1.0 without keep-alive
        await conn.send(b"GET /engine.io/?EIO=4&transport=polling HTTP/1.0\r\n\r\n")
        response = await conn.response()
        assert response.status == 200
        assert await conn.at_eof(2.0)
    assert rec.engine.clients_count == 7
    await assert_serving(base)


async def test_pipelined_request_behind_a_long_poll_waits_its_turn(serve_native: Any) -> None:
    rec = recorder()
    base = await serve_native(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
    target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
    async with await RawConnection.open(base) as conn:
        await conn.send(
            request_bytes("GET", target, base)
            + request_bytes("GET", "/engine.io/?transport=udp", base)
        )
        with pytest.raises(TimeoutError):
            await conn.response(timeout=0.3)
        rec.sockets[sid].send("x")
        first = await conn.response()
        second = await conn.response()
    assert first.body == b"4x"
    assert second.status == 400


async def test_idle_keep_alive_connection_is_closed(serve_native: Any) -> None:
    # the header deadline far beyond the wait: only the keep-alive timeout can close it
    limits = aiosio.ServerLimits(keep_alive_timeout=0.3, header_timeout=60.0)
    base = await serve_native(aiosio.EngineServer(), limits=limits)
    async with await RawConnection.open(base) as conn:
        await conn.send(request_bytes("GET", "/engine.io/?EIO=4&transport=polling", base))
        assert (await conn.response()).status == 200
        async with asyncio.timeout(TIMEOUT):
            rest = await conn.reader.read()
        assert rest == b""  # closed without a word (a header timeout would answer 408)


async def test_head_response_has_no_body(serve: Any) -> None:
    # RFC 9110 9.3.2: no content in a response to HEAD, or a keep-alive client reads it as the
    # start of the next response. (The native server once wrote the body.)
    base = await serve(aiosio.EngineServer())
    async with await RawConnection.open(base) as conn:
        await conn.send(
            request_bytes("HEAD", "/engine.io/?EIO=4&transport=polling", base)
            + request_bytes("GET", "/engine.io/?transport=udp", base)
        )
        async with asyncio.timeout(TIMEOUT):
            head = await conn.reader.readuntil(b"\r\n\r\n")  # a HEAD answer ends here
            assert head.startswith(b"HTTP/1.1 400 ")
            rest = b""
            while not rest.endswith(b'{"code":0,"message":"Transport unknown"}'):
                chunk = await conn.reader.read(4096)
                assert chunk, rest
                rest += chunk
        assert rest.startswith(b"HTTP/1.1 400 "), rest  # the GET's answer, not the HEAD's body


async def test_expect_continue_over_the_limit_is_413_at_once(serve: Any) -> None:
    rec = recorder(max_http_buffer_size=LIMIT)
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
    async with await RawConnection.open(base) as conn:
        await conn.send(
            request_bytes(
                "POST",
                f"/engine.io/?EIO=4&transport=polling&sid={sid}",
                base,
                [("Content-Length", str(LIMIT + 1)), ("Expect", "100-continue")],
            )
        )
        response = await conn.response()  # no body comes: waiting for it would end in a 408
    assert response.status == 413
    await assert_serving(base)


async def test_expect_continue_is_answered(serve: Any) -> None:
    # RFC 9110 10.1.1: answer "Expect: 100-continue" at once (curl sends it with every body over
    # 1 KiB and otherwise waits 1 s). Node's http server and uvicorn send 100 Continue.
    rec = recorder()
    base = await serve(rec.engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)
    body = b"4" + b"x" * 1999
    async with await RawConnection.open(base) as conn:
        await conn.send(
            request_bytes(
                "POST",
                f"/engine.io/?EIO=4&transport=polling&sid={sid}",
                base,
                [("Content-Length", str(len(body))), ("Expect", "100-continue")],
            )
        )
        interim = await conn.response()
        assert interim.status == 100
        await conn.send(body)
        response = await conn.response()
    assert (response.status, response.body) == (200, b"ok")


async def test_refused_upgrade_has_one_connection_header(serve_native: Any) -> None:
    # The reference's abortUpgrade writes exactly one "Connection: close".
    base = await serve_native(aiosio.EngineServer())
    async with await RawConnection.open(base) as conn:
        await conn.send(
            _upgrade_request(base, "/engine.io/?EIO=4&transport=websocket&sid=nope", [])
        )
        response = await conn.response()
    assert response.status == 400
    assert response.body == b"Session ID unknown"
    assert [k.lower() for k, _ in response.headers].count("connection") == 1


# -- 14. exceptions in user code -----------------------------------------------------------------


async def test_exceptions_in_event_handlers_are_logged_and_contained(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="aiosio")
    rec = recorder()
    engine = rec.engine

    @engine.on("connection")
    def broken_sync(socket: aiosio.EngineSocket) -> None:
        raise RuntimeError("boom in connection")

    @engine.on("connection")
    async def broken_async(socket: aiosio.EngineSocket) -> None:
        raise ValueError("boom in async connection")

    @engine.on("connection")
    def more(socket: aiosio.EngineSocket) -> None:
        def on_message(data: str | bytes) -> None:
            if data == "raise":
                raise KeyError("boom in message")

        socket.on("message", on_message)

    @engine.on("headers")
    def broken_headers(headers: list[tuple[str, str]], request: aiosio.HttpRequest) -> None:
        raise RuntimeError("boom in headers")

    @engine.on("connection_error")
    def broken_error_handler(error: aiosio.ConnectionRejected) -> None:
        raise RuntimeError("boom in connection_error")

    base = await serve(engine)
    async with client() as c:
        sid, _, _ = await handshake(c, base)  # the handlers after a broken one still ran
        assert sid in rec.sockets
        await post(c, base, sid, "4raise\x1e4next", headers={"Content-Type": TEXT})
        await rec.message(sid, "next")
        response = await c.get(url(base, transport="udp"))
        assert response.json() == {"code": 0, "message": "Transport unknown"}
    await eventually(
        lambda: any(
            r.exc_info is not None and "boom in async connection" in str(r.exc_info[1])
            for r in caplog.records
        )
    )
    raised = {str(r.exc_info[1]) for r in caplog.records if r.exc_info}
    assert {
        "boom in connection",
        "boom in async connection",
        "'boom in message'",
        "boom in headers",
        "boom in connection_error",
    } <= raised
    assert all(r.name.startswith("aiosio") for r in caplog.records if r.exc_info)
    assert sid not in rec.closes
    await assert_serving(base)


async def test_exception_in_allow_request(serve: Any) -> None:
    def allow(request: aiosio.HttpRequest) -> None:
        if "crash" in request.query:
            raise ZeroDivisionError("division by zero in the hook")

    rec = recorder(allow_request=allow)
    base = await serve(rec.engine)
    async with client() as c:
        response = await c.get(url(base, EIO="4", transport="polling", crash="1"))
        assert response.status_code == 403
        assert response.json()["code"] == 4
        await handshake(c, base)
    assert rec.engine.clients_count == 1
    await assert_serving(base)


async def _crashing_origins(origin: str | None) -> bool:
    if origin is not None and "crash" in origin:
        raise RuntimeError("origin check crashed")
    return origin == "https://ok.example"


async def test_exception_in_the_origins_callable(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The cors package hands the callable's error to next(err): engine.io answers 400
    # {"code":3,"message":"Bad request"} with context {name: MIDDLEWARE_FAILURE}
    # (server.ts handleRequest/_applyMiddlewares), and abortUpgrade's 400 on the WebSocket.
    caplog.set_level(logging.INFO, logger="aiosio")
    rec = recorder(cors=aiosio.Cors(origins=_crashing_origins))
    base = await serve(rec.engine)
    async with httpx.AsyncClient(timeout=TIMEOUT, headers={"Origin": "https://crash.example"}) as c:
        response = await c.get(url(base, EIO="4", transport="polling"))
    assert response.status_code == 400
    assert response.json() == {"code": 3, "message": "Bad request"}
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(base, _origin="https://crash.example"):
            pass
    assert caught.value.response.status_code == 400
    assert [e.code for e in rec.errors] == [3, 3]
    assert all(e.context.get("name") == "MIDDLEWARE_FAILURE" for e in rec.errors)
    assert all("origin check crashed" in e.cause for e in rec.errors)
    assert any(
        r.exc_info is not None and "origin check crashed" in str(r.exc_info[1])
        for r in caplog.records
    )
    async with httpx.AsyncClient(timeout=TIMEOUT, headers={"Origin": "https://ok.example"}) as c:
        await handshake(c, base)


async def test_the_socketio_connect_timeout_is_a_timer_wheel_entry(serve: Any) -> None:
    # One timer mechanism: a Socket.IO connection waiting for its first CONNECT has its connect
    # timeout on the engine's wheel beside its session's deadline; the CONNECT removes it.
    sio = aiosio.Server()
    path = "/socket.io/"
    base = await serve(sio)
    async with client() as c:
        sid, _, _ = await handshake(c, base, path)
        assert timer_count(sio.engine) == 2
        response = await post(c, base, sid, "40", path, headers={"Content-Type": TEXT})
        assert response.status_code == 200
        await eventually(lambda: len(sio.sockets.sockets) == 1)
        assert timer_count(sio.engine) == 1
    await assert_serving(base, path)
