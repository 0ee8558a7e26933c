"""Typed events (aiosio.typed) with the official ``socket.io-client`` from npm: what its
``emit(..., callback)`` receives from a typed handler, valid payload or not, on both servers.

The client is ``tests/js/sio_client.mjs`` in its driven scenario (see its header): it announces
itself with ``ready``, emits what the server's ``cmd`` says, prints each acknowledgement.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pydantic
import pytest

import aiosio
from conftest import ServeFn
from conftest import run_node

pytestmark = pytest.mark.interop


class ChatMessage(pydantic.BaseModel):
    text: str
    room: str = "lobby"


class Ack(pydantic.BaseModel):
    ok: bool
    length: int


async def test_socketio_client_gets_the_dumped_reply_or_the_error(serve: ServeFn) -> None:
    sio = aiosio.Server()
    got: list[ChatMessage] = []

    @sio.on("ready")
    def ready(socket: aiosio.Socket, _info: Any) -> None:
        socket.emit(
            "cmd",
            [
                {"do": "emit", "event": "chat", "args": [{"room": 1}], "ack": True},
                {"do": "emit", "event": "chat", "args": ["not an object"], "ack": False},
                {"do": "emit", "event": "chat", "args": [{"text": "hé"}], "ack": True},
            ],
        )

    @sio.on("chat")
    def chat(socket: aiosio.Socket, msg: ChatMessage) -> Ack:
        got.append(msg)
        # Sent after this handler's acknowledgement (call_soon): the client prints it first.
        asyncio.get_running_loop().call_soon(socket.emit, "cmd", {"do": "disconnect"})
        return Ack(ok=True, length=len(msg.text))

    url = await serve(sio)
    lines = await run_node("sio_client.mjs", "--url", url, "--reconnection", "false")
    acks = [line["args"] for line in lines if line["type"] == "ack"]
    assert acks == [
        [
            {
                "error": "invalid payload",
                "details": [
                    {"loc": ["msg", "text"], "msg": "Field required", "type": "missing"},
                    {
                        "loc": ["msg", "room"],
                        "msg": "Input should be a valid string",
                        "type": "string_type",
                    },
                ],
            }
        ],
        [{"ok": True, "length": 2}],
    ]
    assert got == [ChatMessage(text="hé")]
    assert sio.sockets.invalid_payloads.counts == {"chat": 2}
