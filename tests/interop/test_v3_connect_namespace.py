"""The namespace of a protocol 4 CONNECT (socket.io-client 2.x over Engine.IO 3), which carries its
query: whatever the client writes there, the server answers as the reference does (a namespace
that does not exist is refused with "Invalid namespace"), and nothing escapes as an exception.

Found by fuzzing: ``//[`` and ``//]`` made ``urllib.parse.urlsplit`` raise ``ValueError``
("Invalid IPv6 URL") inside the server, and ``//admin`` was read as a host and the namespace
``/``. The reference splits the namespace as a path (Node's ``url.parse``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

import aiosio
from conftest import ServeFn, run_node

pytestmark = pytest.mark.interop


async def test_v2_client_odd_namespaces(serve: ServeFn, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiosio")
    loop = asyncio.get_running_loop()
    escaped: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: escaped.append(context))
    try:
        sio = aiosio.Server(allow_eio3=True)
        auths: dict[str, dict[str, Any]] = {}

        @sio.of("//admin").on("connection")
        def admin(socket: aiosio.Socket) -> None:
            auths[socket.nsp.name] = dict(socket.handshake.auth)
            socket.emit("cmd", {"do": "disconnect"})

        url = await serve(sio)
        lines = await run_node(
            "sio_client.mjs",
            "--url",
            url,
            "--client",
            "v2",
            "--transports",
            "polling",
            "--reconnection",
            "false",
            "--socket",
            "open=//[",
            "--socket",
            "close=//]",
            "--socket",
            "admin=//admin",
            "--query",
            '{"token": "t"}',
        )
    finally:
        loop.set_exception_handler(previous)
    errors = {line["socket"]: line["data"] for line in lines if line["type"] == "error"}
    assert errors == {
        "open": {"message": "Invalid namespace"},
        "close": {"message": "Invalid namespace"},
    }, lines
    # "//admin" is a namespace of its own, with the query as its auth (not the host "admin").
    assert auths == {"//admin": {"token": "t"}}
    assert [line["socket"] for line in lines if line["type"] == "connect"] == ["admin"]
    assert escaped == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
