"""The client and the recovery offset: with connection state recovery on, the server appends an
offset to every event without an ack except a volatile one, and the client cannot tell the two
apart. A trailing string goes to the handlers whose signature asks for it (a required positional
parameter, or ``*args``, which gets everything as socket.io-client's handlers do) and is kept
from the others. Proven here with the real client in memory (aiosio.testing) on our server; the
recovery itself, against our server and node's, in tests/interop/test_client.py.

Packets of one connection are handled in order: an acknowledged ``sync`` sent after the server
emitted returns once the client handled those events, so no test waits for time to pass.
"""

from __future__ import annotations

from typing import Annotated
from typing import Any

import pydantic

import aiosio
from aiosio.testing import TestClient
from aiosio.testing import connect
from aiosio.typed import Validate

TIMEOUT = 10.0


class Chat(pydantic.BaseModel):
    text: str


def recovering() -> aiosio.Server:
    sio = aiosio.Server(connection_state_recovery=aiosio.Recovery())
    sio.on("sync", lambda _socket: "synced")
    return sio


async def synced(client: TestClient) -> None:
    assert await client.emit_with_ack("sync", timeout=TIMEOUT) == "synced"


async def test_a_volatile_events_last_string_reaches_handlers_that_ask_for_it() -> None:
    sio = recovering()
    got: dict[str, list[tuple[Any, ...]]] = {}

    def keep(name: str) -> Any:
        return lambda *args: got.setdefault(name, []).append(args)

    async with connect(sio) as client:

        @client.on("said")
        def fixed(user: str, text: str) -> None:
            got.setdefault("fixed", []).append((user, text))

        @client.on("said")
        def fewer(user: str) -> None:  # cannot take it: it is kept from this one
            got.setdefault("fewer", []).append((user,))

        @client.on("said")
        def typed(user: Annotated[str, Validate], text: str) -> None:  # aiosio.typed wraps it
            got.setdefault("typed", []).append((user, text))

        client.on("said", keep("star"))
        client.on_any(lambda event, *args: keep("any")(event, *args))
        sio.volatile.emit("said", "user", "hello")
        await synced(client)
        assert got == {
            "fixed": [("user", "hello")],
            "fewer": [("user",)],
            "typed": [("user", "hello")],
            "star": [("user", "hello")],
            "any": [("said", "user", "hello")],
        }
        assert client.events("said") == [["user", "hello"]]


async def test_a_kept_events_offset_goes_only_to_star_args() -> None:
    sio = recovering()
    got: dict[str, list[tuple[Any, ...]]] = {}
    async with connect(sio) as client:

        @client.on("said")
        def fixed(user: str, text: str) -> None:
            got.setdefault("fixed", []).append((user, text))

        @client.on("said")
        def optional(user: str, text: str | None = None) -> None:  # no offset in a default
            got.setdefault("optional", []).append((user, text))

        @client.on("said")
        def typed(user: str, msg: Chat) -> None:
            got.setdefault("typed", []).append((user, msg))

        client.on("said", lambda *args: got.setdefault("star", []).append(args))
        sio.emit("said", "user", {"text": "hello"})
        await synced(client)
        assert got["fixed"] == [("user", {"text": "hello"})]
        assert got["optional"] == [("user", {"text": "hello"})]
        assert got["typed"] == [("user", Chat(text="hello"))]
        ((user, text, offset),) = got["star"]
        assert (user, text) == ("user", {"text": "hello"})
        assert isinstance(offset, str)
        assert client.events("said") == [["user", {"text": "hello"}, offset]]

        got.clear()
        sio.emit("said", "user")  # the optional parameter keeps its default
        await synced(client)
        assert got["optional"] == [("user", None)]
        ((_, offset),) = got["star"]
        # A handler that asks for more than the event has gets the offset in the required
        # parameter it cannot tell from a volatile event's argument (docs/porting.md).
        assert got["fixed"] == [("user", offset)]


async def test_without_recovery_a_trailing_string_is_never_taken_for_an_offset() -> None:
    sio = aiosio.Server()
    sio.on("sync", lambda _socket: "synced")
    got: list[tuple[Any, ...]] = []
    async with connect(sio) as client:
        client.on("said", lambda *args: got.append(args))
        sio.emit("said", "user", "hello")
        await synced(client)
        assert got == [("user", "hello")]
