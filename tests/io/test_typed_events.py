"""Typed events (aiosio.typed) as an application uses them, with the aiosio client on a real
server: handlers annotated with pydantic models, dataclasses and TypedDicts get validated values;
an invalid payload never reaches the handler (the acknowledgement is answered with the error,
the refusal counted and logged once per event); return values are dumped through their model;
the same on the client; plain annotations are left alone; unannotated handlers are registered as
they are; without pydantic, a dataclass annotation names the extra.

Packets of one connection are handled in order: an acknowledged ``sync`` event sent after
others returns once the server handled them, so no test waits for time to pass.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import Protocol

import pydantic
import pytest
from typing_extensions import TypedDict  # pydantic needs it on Python 3.11

import aiosio
from aiosio.typed import Validate
from aiosio.typed import emitter
from conftest import ServeFn

TIMEOUT = 10.0
ROOT = Path(__file__).resolve().parents[2]


class ChatMessage(pydantic.BaseModel):
    text: str
    room: str = "lobby"


class Ack(pydantic.BaseModel):
    ok: bool
    length: int


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Move(TypedDict):
    to: str
    steps: int


@pytest.fixture
async def sio_client(serve: ServeFn) -> AsyncIterator[tuple[aiosio.Server, aiosio.Client]]:
    sio = aiosio.Server()
    sio.on("sync", lambda _socket: "synced")
    client = aiosio.Client(await serve(sio), reconnection=False)
    try:
        yield sio, client
    finally:
        await client.disconnect()


async def ask(client: aiosio.Client, event: str, *args: Any) -> Any:
    return await client.emit_with_ack(event, *args, timeout=TIMEOUT)


async def test_model_arguments_are_validated_and_the_return_value_dumped(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, client = sio_client
    got: list[Any] = []

    @sio.on("chat")
    async def chat(socket: aiosio.Socket, msg: ChatMessage) -> Ack:
        got.append(msg)
        return Ack(ok=True, length=len(msg.text))

    @sio.on("point")
    def point(socket: aiosio.Socket, p: Point, moves: list[Move]) -> Point:
        got.append((p, moves))
        return Point(p.y, p.x)

    await client.connect()
    assert await ask(client, "chat", {"text": "hi"}) == {"ok": True, "length": 2}
    assert got == [ChatMessage(text="hi", room="lobby")]
    reply = await ask(client, "point", {"x": 1, "y": "2"}, [{"to": "n", "steps": 3}])
    assert reply == {"x": 2, "y": 1}
    assert got[1] == (Point(1, 2), [{"to": "n", "steps": 3}])


async def test_invalid_payload_answers_the_ack_with_the_error_and_never_reaches_the_handler(
    sio_client: tuple[aiosio.Server, aiosio.Client], caplog: pytest.LogCaptureFixture
) -> None:
    sio, client = sio_client
    got: list[Any] = []

    @sio.on("chat")
    def chat(socket: aiosio.Socket, msg: ChatMessage) -> str:
        got.append(msg)
        return "ok"

    await client.connect()
    with caplog.at_level(logging.WARNING, "aiosio.server"):
        reply = await ask(client, "chat", {"room": 5})
        assert reply == {
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
        assert await ask(client, "chat") == {
            "error": "invalid payload",
            "details": [{"loc": ["msg"], "msg": "missing argument", "type": "missing_argument"}],
        }
        client.emit("chat", "not an object")  # no ack: counted and logged (once per event)
        client.emit("chat", [1])
        assert await ask(client, "sync") == "synced"
    assert got == []
    assert sio.sockets.invalid_payloads.counts == {"chat": 4}
    warnings = [r.getMessage() for r in caplog.records if "failed validation" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("namespace /: a payload of event 'chat' failed validation")
    assert "msg.text: Field required, and 1 more error(s)" in warnings[0]


async def test_invalid_payloads_with_acks_are_counted_and_logged_once_per_event_too(
    sio_client: tuple[aiosio.Server, aiosio.Client], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17 item 1: an acknowledged refusal is answered with the error AND counted and
    logged, once per event name, exactly as one without an acknowledgement."""
    sio, client = sio_client
    got: list[Any] = []

    @sio.on("chat")
    def chat(socket: aiosio.Socket, msg: ChatMessage) -> str:
        got.append(msg)
        return "ok"

    @sio.on("point")
    def point(socket: aiosio.Socket, p: Point) -> str:
        got.append(p)
        return "ok"

    await client.connect()
    with caplog.at_level(logging.WARNING, "aiosio.server"):
        for _ in range(3):
            assert (await ask(client, "chat", {"text": 1}))["error"] == "invalid payload"
        assert (await ask(client, "point", {"x": "no"}))["error"] == "invalid payload"
        client.emit("point", None)  # without an ack: the same count, no second warning
        assert await ask(client, "sync") == "synced"
    assert got == []
    assert sio.sockets.invalid_payloads.counts == {"chat": 3, "point": 2}
    warnings = [r.getMessage() for r in caplog.records if "failed validation" in r.getMessage()]
    assert [w.split(" failed validation")[0] for w in warnings] == [
        "namespace /: a payload of event 'chat'",
        "namespace /: a payload of event 'point'",
    ]


async def test_the_answer_to_an_invalid_payload_is_configurable(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, client = sio_client

    @sio.on("chat")
    def chat(socket: aiosio.Socket, msg: ChatMessage) -> str:
        return "ok"

    sio.sockets.invalid_payloads.answer = lambda event, details: {
        "code": 422,
        "event": event,
        "fields": [".".join(map(str, d["loc"])) for d in details],
    }
    await client.connect()
    assert await ask(client, "chat", {}) == {"code": 422, "event": "chat", "fields": ["msg.text"]}


async def test_plain_annotations_are_not_validated_unless_asked(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, client = sio_client

    @sio.on("plain")
    def plain(socket: aiosio.Socket, n: int, items: list[int]) -> Any:
        return [n, items]  # what the client sent, whatever the annotations say

    @sio.on("asked")
    def asked(socket: aiosio.Socket, n: Annotated[int, Validate]) -> Any:
        return n + 1

    await client.connect()
    assert await ask(client, "plain", "x", ["y"]) == ["x", ["y"]]
    assert await ask(client, "asked", "41") == 42
    assert (await ask(client, "asked", "x"))["error"] == "invalid payload"


async def test_unannotated_handlers_are_registered_as_they_are_and_wrappers_keep_async(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, _client = sio_client

    def bare(socket: Any, data: Any) -> Any:
        return data

    def plain(socket: aiosio.Socket, text: str) -> str:
        return text

    def typed(socket: aiosio.Socket, msg: ChatMessage) -> None:
        return None

    async def typed_async(socket: aiosio.Socket, msg: ChatMessage) -> None:
        return None

    for handler in (bare, plain, typed, typed_async):
        sio.on(handler.__name__, handler)
    events = sio.sockets.handlers.events
    assert events["bare"].fn is bare
    assert events["plain"].fn is plain
    sync_wrapper, async_wrapper = events["typed"].fn, events["typed_async"].fn
    assert sync_wrapper is not typed
    assert sync_wrapper == typed  # so that off(event, typed) finds it
    assert not inspect.iscoroutinefunction(type(sync_wrapper).__call__)
    assert events["typed"].is_async is False
    assert inspect.iscoroutinefunction(type(async_wrapper).__call__)
    assert events["typed_async"].is_async is True


async def test_socket_handlers_are_validated_and_removed_by_the_original(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, client = sio_client
    sockets: asyncio.Queue[aiosio.Socket] = asyncio.Queue()
    sio.on("connection", sockets.put_nowait)
    got: list[Any] = []

    def on_point(p: Point) -> int:
        got.append(p)
        return p.x + p.y

    await client.connect()
    socket = await asyncio.wait_for(sockets.get(), TIMEOUT)
    socket.on("point", on_point)
    assert await ask(client, "point", {"x": 1, "y": 2}) == 3
    assert (await ask(client, "point", {"x": "a"}))["error"] == "invalid payload"
    socket.off("point", on_point)
    client.emit("point", {"x": 5, "y": 5})
    assert await ask(client, "sync") == "synced"
    assert got == [Point(1, 2)]
    assert sio.sockets.invalid_payloads.counts == {"point": 1}


async def test_client_handlers_are_validated(
    sio_client: tuple[aiosio.Server, aiosio.Client], caplog: pytest.LogCaptureFixture
) -> None:
    sio, client = sio_client
    sockets: asyncio.Queue[aiosio.Socket] = asyncio.Queue()
    sio.on("connection", sockets.put_nowait)
    got: asyncio.Queue[Any] = asyncio.Queue()

    @client.on("news")
    async def news(msg: ChatMessage) -> Ack:
        got.put_nowait(msg)
        return Ack(ok=True, length=len(msg.text))

    def removed(msg: ChatMessage) -> None:
        got.put_nowait("removed handler called")

    client.on("news", removed)
    client.off("news", removed)
    await client.connect()
    socket = await asyncio.wait_for(sockets.get(), TIMEOUT)
    with caplog.at_level(logging.WARNING, "aiosio.client"):
        socket.emit("news", {"nope": 1})  # no ack: dropped, counted, logged
        reply = await socket.timeout(TIMEOUT).emit_with_ack("news", {"text": "abc"})
        assert reply == {"ok": True, "length": 3}
        error = await socket.timeout(TIMEOUT).emit_with_ack("news", 7)
    assert error["error"] == "invalid payload"
    assert error["details"][0]["loc"] == ["msg"]
    assert await asyncio.wait_for(got.get(), TIMEOUT) == ChatMessage(text="abc")
    assert got.empty()
    assert client.invalid_payloads.counts == {"news": 2}
    warnings = [r.getMessage() for r in caplog.records if "failed validation" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("client /: a payload of event 'news' failed validation")


class ServerToClient(Protocol):
    def news(self, msg: ChatMessage, /) -> None: ...

    async def question(self, text: str, /) -> Ack: ...


async def test_typed_emitter_dumps_models_and_validates_the_reply(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, client = sio_client
    sockets: asyncio.Queue[aiosio.Socket] = asyncio.Queue()
    sio.on("connection", sockets.put_nowait)
    got: asyncio.Queue[Any] = asyncio.Queue()
    client.on("news", got.put_nowait)
    client.on("question", lambda text: {"ok": True, "length": len(text)})
    await client.connect()
    socket = await asyncio.wait_for(sockets.get(), TIMEOUT)
    typed = emitter(socket.timeout(TIMEOUT), ServerToClient)
    typed.news(ChatMessage(text="hi"))
    assert await asyncio.wait_for(got.get(), TIMEOUT) == {"text": "hi", "room": "lobby"}
    assert await typed.question("four") == Ack(ok=True, length=4)
    emitter(sio, ServerToClient).news(ChatMessage(text="all"))  # a broadcast
    assert await asyncio.wait_for(got.get(), TIMEOUT) == {"text": "all", "room": "lobby"}
    with pytest.raises(AttributeError, match="ServerToClient declares no event 'newz'"):
        typed.newz  # noqa: B018


@dataclasses.dataclass
class Fresh:  # annotates only the handlers of the next test: not in the cache of TypeAdapters
    a: int


def test_without_pydantic_a_dataclass_annotation_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def handler(socket: aiosio.Socket, value: Fresh) -> None:
        return None

    monkeypatch.setitem(sys.modules, "pydantic", None)  # import pydantic raises ImportError
    sio = aiosio.Server()
    with pytest.raises(ImportError, match=r'pip install "aiosio\[typed\]"'):
        sio.on("x", handler)
    sio.on("plain", lambda socket, text: text)  # nothing else needs pydantic
    client = aiosio.Client("http://127.0.0.1:1")
    client.on("y", lambda value: None)  # no annotation: nothing to validate

    def on_x(value: Fresh) -> None:
        return None

    with pytest.raises(ImportError, match=r"handler .*on_x.* of event 'x' \(annotated with"):
        client.on("x", on_x)


def test_an_unresolvable_annotation_is_not_validated_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sio = aiosio.Server()

    def handler(socket: aiosio.Socket, msg: NotDefinedAnywhere) -> None:  # type: ignore[name-defined]  # noqa: F821
        return None

    with caplog.at_level(logging.WARNING, "aiosio.typed"):
        sio.on("x", handler)
    assert sio.sockets.handlers.events["x"].fn is handler
    (record,) = [r for r in caplog.records if r.name == "aiosio.typed"]
    assert "the annotation 'NotDefinedAnywhere' of parameter 'msg' cannot be resolved" in (
        record.getMessage()
    )


MYPY_SNIPPET = """
from typing import Protocol

import aiosio
from aiosio.typed import emitter
from pydantic import BaseModel


class ChatMessage(BaseModel):
    text: str


class ServerToClient(Protocol):
    def chat(self, msg: ChatMessage, /) -> None: ...


def send(socket: aiosio.Socket) -> None:
    typed = emitter(socket, ServerToClient)
    typed.chat(ChatMessage(text="fine"))
    typed.chat("not a message")
    typed.chta(ChatMessage(text="typo"))
"""


def test_mypy_checks_typed_emitters_at_the_call_site(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(MYPY_SNIPPET), encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--config-file",
            "/dev/null",
            str(snippet),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 2, out
    assert 'Argument 1 to "chat" of "ServerToClient" has incompatible type "str"' in errors[0]
    assert '"ServerToClient" has no attribute "chta"' in errors[1]


class Lengths:
    """A handler that is an object: its ``__call__`` is what is inspected."""

    def __init__(self) -> None:
        self.seen: list[ChatMessage] = []

    async def __call__(self, socket: aiosio.Socket, msg: ChatMessage) -> int:
        self.seen.append(msg)
        return len(msg.text)


async def test_a_callable_object_is_validated_and_stays_async(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, client = sio_client
    lengths = Lengths()
    sio.on("length", lengths)
    assert sio.sockets.handlers.events["length"].is_async is True
    await client.connect()
    assert await ask(client, "length", {"text": "four"}) == 4
    assert (await ask(client, "length", {}))["error"] == "invalid payload"
    assert lengths.seen == [ChatMessage(text="four")]


class Opaque:
    """A class pydantic has no schema for."""


def test_a_type_pydantic_cannot_validate_is_refused_at_registration() -> None:
    sio = aiosio.Server()

    def handler(socket: aiosio.Socket, value: Point | Opaque) -> None:
        return None

    with pytest.raises(TypeError, match=r"handler .*handler.* of event 'x' \(annotated with .*"):
        sio.on("x", handler)
    assert "x" not in sio.sockets.handlers.events


async def test_star_args_are_validated_one_by_one(
    sio_client: tuple[aiosio.Server, aiosio.Client],
) -> None:
    sio, client = sio_client

    @sio.on("points")
    def points(socket: aiosio.Socket, label: str, *rest: Point) -> Any:
        return [label, *(p.x + p.y for p in rest)]

    await client.connect()
    assert await ask(client, "points", "sums", {"x": 1, "y": 2}, {"x": 3, "y": 4}) == ["sums", 3, 7]
    refused = await ask(client, "points", "sums", {"x": 1, "y": 2}, {"x": 3})
    assert refused["details"] == [
        {"loc": ["rest[1]", "y"], "msg": "Field required", "type": "missing"}
    ]
