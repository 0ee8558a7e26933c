"""The native server's own bounds on bad input (issue 12, section 3; HARDENING 8, 9, 13, 14):
a body deadline, backpressure from a client that does not read what it is sent (pipelined HTTP
requests, WebSocket pings), HEAD on the handshake URL.

Raw clients write bytes by hand over real sockets on 127.0.0.1. What the server holds for a
connection is read through the public counters of :class:`aiosio.HttpConnection`; nothing may
reach the event loop's exception handler, and every test ends with a fresh client served.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from _eio import (
    TIMEOUT,
    RawConnection,
    assert_serving,
    handshake,
    recorder,
    request_bytes,
)

import aiosio


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


async def native(app: Any, **limits: Any) -> aiosio.NativeServer:
    return await aiosio.serve(app, "127.0.0.1", 0, limits=aiosio.ServerLimits(**limits))


def base_of(server: aiosio.NativeServer) -> str:
    return f"http://127.0.0.1:{server.port}"


# -- a body that stops arriving -----------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_that_stops_arriving_gets_408_and_is_closed(
    framing: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A POST that announces 100,000 bytes and sends 10 stayed open for good (issue 12).
    rec = recorder()
    server = await native(rec.engine, body_timeout=0.3)
    base = base_of(server)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        if framing == "content-length":
            head = request_bytes("POST", target, base, [("Content-Length", "100000")])
            sent, expected = b"4" * 10, "10 of 100000 announced bytes"
        else:
            head = request_bytes("POST", target, base, [("Transfer-Encoding", "chunked")])
            sent, expected = b"a\r\n4xxxxxxxxx\r\n", "10 bytes of a chunked body"
        with caplog.at_level(logging.INFO, "aiosio.server.http"):
            for _ in range(2):  # logged once per client host
                async with await RawConnection.open(base) as conn:
                    await conn.send(head + sent)
                    response = await conn.response(timeout=TIMEOUT)
                    assert response.status == 408
                    assert expected in response.body.decode()
                    assert response.header("Connection") == "close"
                    assert await conn.at_eof()
        warnings = [r for r in caplog.records if "body_timeout" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        message = warnings[0].getMessage()
        assert warnings[0].levelno == logging.WARNING
        assert "127.0.0.1:" in message  # the peer
        assert expected in message  # what arrived of what was announced
        assert "ServerLimits(body_timeout=...)" in message  # the fix
        assert rec.messages == []  # the partial body reached nobody
        await assert_serving(base)
    finally:
        await server.close()


async def test_a_body_sent_in_pieces_within_the_deadline_is_delivered() -> None:
    rec = recorder()
    server = await native(rec.engine, body_timeout=TIMEOUT)
    base = base_of(server)
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT) as c:
            sid, _, _ = await handshake(c, base)
        target = f"/engine.io/?EIO=4&transport=polling&sid={sid}"
        body = b"4" + b"x" * 99
        async with await RawConnection.open(base) as conn:
            await conn.send(request_bytes("POST", target, base, [("Content-Length", "100")]))
            for i in range(0, 100, 25):
                await conn.send(body[i : i + 25])
                await asyncio.sleep(0.05)
            response = await conn.response()
            assert (response.status, response.body) == (200, b"ok")
            # the deadline ended with the body: the kept-alive connection serves the next one
            await asyncio.sleep(0.1)
            await conn.send(request_bytes("GET", "/engine.io/?transport=udp", base))
            assert (await conn.response()).status == 400
        await rec.message(sid, "x" * 99)
    finally:
        await server.close()


def test_body_timeout_has_a_default_and_must_be_positive() -> None:
    assert aiosio.ServerLimits().body_timeout == 30.0
    for bad in (0, -1.0, "5", True):
        with pytest.raises(ValueError, match=r"ServerLimits\(body_timeout=\.\.\.\) must be a") as e:
            aiosio.ServerLimits(body_timeout=bad)
        assert repr(bad) in str(e.value)
