"""The namespace of a protocol 4 CONNECT (socket.io-client 2.x over Engine.IO 3), which carries its
query: whatever the client writes there, the server answers as the reference does (a namespace
that does not exist is refused with "Invalid namespace"), and nothing escapes as an exception.

Found by fuzzing: ``//[`` and ``//]`` made ``urllib.parse.urlsplit`` raise ``ValueError``
("Invalid IPv6 URL") inside the server, and ``//admin`` was read as a host and the namespace
``/``. The reference splits the namespace as a path (Node's ``url.parse``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

import aiosio
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.socketio import Decoder
from aiosio.protocol.socketio import split_v4_namespace
from conftest import ServeFn
from conftest import run_node

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


async def test_v2_client_long_query_on_a_namespace(serve: ServeFn) -> None:
    """socket.io-client 2.x sends its query (a token) in the CONNECT of a namespace other than
    "/": a 600-character token is no namespace longer than max_namespace_length (the server
    closed such connections with a parse error); the bound applies to the namespace itself."""
    sio = aiosio.Server(allow_eio3=True)
    auths: list[dict[str, Any]] = []

    @sio.of("/admin").on("connection")
    def admin(socket: aiosio.Socket) -> None:
        auths.append(dict(socket.handshake.auth))
        socket.emit("cmd", {"do": "disconnect"})

    url = await serve(sio)
    token = "t" * 600
    lines = await run_node(
        "sio_client.mjs",
        *("--url", url, "--client", "v2", "--reconnection", "false"),
        *("--socket", "a=/admin", "--query", json.dumps({"token": token})),
    )
    assert auths == [{"token": token}], lines
    assert [line["reason"] for line in lines if line["type"] == "disconnect"] == [
        "io client disconnect"
    ]


def test_v4_connect_namespace_bounds() -> None:
    """Protocol 4: max_namespace_length bounds the namespace before the query; 256 passes, 257
    does not, whatever the query's length. Protocol 5 keeps bounding the whole namespace."""
    query = "?token=" + "t" * 1000
    v4 = Decoder(protocol=4)
    packet = v4.feed("0/" + "n" * 255 + query + ",")
    assert packet is not None
    assert split_v4_namespace(packet.nsp) == ("/" + "n" * 255, {"token": "t" * 1000})
    with pytest.raises(
        RemoteProtocolError, match=r"^namespace longer than max_namespace_length=256$"
    ):
        v4.feed("0/" + "n" * 256 + query + ",")
    with pytest.raises(
        RemoteProtocolError, match=r"^namespace longer than max_namespace_length=256$"
    ):
        Decoder().feed("0/admin" + query + ",")
    # Events keep the bound on the whole namespace, in both protocols.
    with pytest.raises(RemoteProtocolError):
        v4.feed("2/admin?x=" + "y" * 300 + ',["ev"]')
    # Node's querystring keeps the first 1000 fields.
    _path, fields = split_v4_namespace("/a?" + "&".join(f"k{i}=v" for i in range(1500)))
    assert len(fields) == 1000
    assert "k999" in fields
    assert "k1000" not in fields
