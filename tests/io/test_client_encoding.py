"""The client's side of values that cannot be encoded: an emit raises at the call, naming the
argument; a handler's return value is the handler's error, logged with its path, and the
server's acknowledgement is left unanswered (as on the server, tests/io/test_server_limits.py).
The real client against a real server, in memory (aiosio.testing)."""

from __future__ import annotations

import asyncio
import logging

import pytest

import aiosio
import aiosio.testing
from aiosio import EncodingError

TIMEOUT = 10.0


async def test_a_return_value_that_cannot_be_encoded_is_logged_with_its_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="aiosio.client.socket")
    sio = aiosio.Server()
    sockets: list[aiosio.Socket] = []
    sio.on("connection", sockets.append)
    async with aiosio.testing.connect(sio) as client:
        client.on("one", lambda: {1})
        client.on("several", lambda: ("fine", frozenset({2})))
        client.on("echo", lambda text: text)
        (socket,) = sockets
        one = asyncio.ensure_future(socket.timeout(TIMEOUT).emit_with_ack("one"))
        several = asyncio.ensure_future(socket.timeout(TIMEOUT).emit_with_ack("several"))
        # Handled in order: once "echo" is answered, the two before it were handled.
        assert await socket.timeout(TIMEOUT).emit_with_ack("echo", "after") == "after"
        assert not one.done()  # no answer: the server's ack waits
        assert not several.done()
        one.cancel()
        several.cancel()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert messages[0].startswith(
        "handler of event 'one' on /: return value is a set, which JSON cannot carry"
    ), messages[0]
    assert messages[1].startswith(
        "handler of event 'several' on /: return value[1] is a frozenset"
    ), messages[1]
    assert all(m.endswith("is not answered") for m in messages), messages


async def test_an_emit_that_cannot_be_encoded_names_the_argument() -> None:
    sio = aiosio.Server()
    async with aiosio.testing.connect(sio, retries=1) as client:
        with pytest.raises(EncodingError, match=r"^emit\('x'\): args\[1\] is a set"):
            client.emit("x", 1, {2})
        with pytest.raises(EncodingError, match=r"^emit_with_ack\('x'\): args\[0\]\[0\] is a set"):
            await client.emit_with_ack("x", [{3}])
    async with aiosio.testing.connect(sio) as client:
        with pytest.raises(EncodingError, match=r"^emit\('x'\): args\[0\] is a set"):
            client.emit("x", {4})
