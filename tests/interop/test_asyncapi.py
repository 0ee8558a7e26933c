"""``aiosio asyncapi module:sio`` (issue 17 item 2): the AsyncAPI 3.0 document of a server, valid
for the official parser (the npm ``@asyncapi/parser``, installed in tests/js by
scripts/install.sh), with its namespaces as channels, each handled event a ``receive`` operation
whose payload schema comes from the handler's annotations, a reply where the handler answers,
the declared server events as ``send`` operations, and the server's path and transports."""

from __future__ import annotations

import json
import logging
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import aiosio
from aiosio.asyncapi import asyncapi_document
from aiosio.cli import main
from conftest import run_node

pytestmark = pytest.mark.interop

APP = """
import re
from typing import Protocol

from pydantic import BaseModel

import aiosio


class Author(BaseModel):
    name: str


class Chat(BaseModel):
    room: str
    text: str
    author: Author


class Receipt(BaseModel):
    id: int


sio = aiosio.Server(path="/rt/", transports=["websocket"])


@sio.on("chat")
async def chat(socket: aiosio.Socket, msg: Chat) -> Receipt:
    return Receipt(id=1)


@sio.on("typing")
def typing(socket: aiosio.Socket, room: str) -> None:
    return None


@sio.of("/admin").on("stats")
def stats(socket, what):
    return {}


sio.of(re.compile(r"^/team-\\d+$"))


class ServerToClient(Protocol):
    def news(self, item: Chat) -> None: ...
    async def confirm(self, question: str) -> bool: ...
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "asyncapi_app.py").write_text(textwrap.dedent(APP))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("asyncapi_app", None)
    return tmp_path


async def test_the_document_is_valid_and_complete(app: Path) -> None:
    out = app / "asyncapi.json"
    args = ["asyncapi", "asyncapi_app:sio", "--emits", "asyncapi_app:ServerToClient"]
    args += ["--url", "https://rt.example.com", "--title", "Chat", "-o", str(out)]
    assert main(args) == 0
    (verdict,) = await run_node("asyncapi_validate.mjs", str(out))
    assert verdict["errors"] == []
    assert sorted(verdict["channels"]) == ["/", "/admin", "{namespace}"]
    assert "receive root_receive_chat" in verdict["operations"]
    assert "send root_send_news" in verdict["operations"]

    document = json.loads(out.read_text())
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "Chat"
    server = document["servers"]["default"]
    assert server == {**server, "host": "rt.example.com", "protocol": "wss", "pathname": "/rt/"}
    assert "websocket" in server["description"]
    root = document["channels"]["root"]["messages"]
    chat = root["receive_chat"]
    assert chat["name"] == "chat"
    (argument,) = chat["payload"]["items"]
    assert argument["required"] == ["room", "text", "author"]
    assert argument["properties"]["author"] == {"$ref": "#/components/schemas/Author"}
    assert "Author" in document["components"]["schemas"]
    reply = root["receive_chat_ack"]["payload"]["items"][0]
    assert reply["properties"]["id"]["type"] == "integer"
    operations = document["operations"]
    assert "reply" in operations["root_receive_chat"]
    assert "reply" not in operations["root_receive_typing"]  # -> None: no acknowledgement
    assert root["receive_typing"]["payload"]["items"] == [{"type": "string"}]
    assert "reply" in operations["root_send_confirm"]  # async: waits for the client's answer
    assert "reply" not in operations["root_send_news"]
    admin = document["channels"]["admin"]["messages"]["receive_stats"]
    assert admin["payload"]["items"] == [{}]  # unannotated: any value
    dynamic = document["channels"]["dynamic1"]
    assert "team-" in dynamic["parameters"]["namespace"]["description"]


def test_without_pydantic_the_schemas_are_empty_and_it_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    sio = aiosio.Server()

    @sio.on("echo")
    def echo(_socket: Any, value: int) -> int:
        return value

    monkeypatch.setitem(sys.modules, "pydantic", None)
    caplog.set_level(logging.WARNING, logger="aiosio.asyncapi")
    document = asyncapi_document(sio)
    assert document["channels"]["root"]["messages"]["receive_echo"]["payload"]["items"] == [{}]
    assert any('pip install "aiosio[typed]"' in r.getMessage() for r in caplog.records)


def test_not_a_server(app: Path) -> None:
    with pytest.raises(SystemExit, match=r"expected an aiosio\.Server"):
        main(["asyncapi", "asyncapi_app:ServerToClient"])
