"""The WebSocket codec's modules (frames, handshake, deflate negotiation, the state machine):
each stays sans-I/O, and every name is importable from aiosio.protocol.websocket as before."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import pytest

import aiosio.protocol.websocket as ws
import aiosio.protocol.websocket_deflate as deflate
import aiosio.protocol.websocket_frames as frames
import aiosio.protocol.websocket_handshake as handshake

ALLOWED = {
    "__future__",
    "aiosio",
    "base64",
    "collections",
    "dataclasses",
    "enum",
    "hashlib",
    "os",
    "struct",
    "typing",
    "zlib",
    # only websockets.speedups.apply_mask, a C function: importing it loads no asyncio
    "websockets",
}


@pytest.mark.parametrize("module", [ws, frames, handshake, deflate], ids=lambda m: m.__name__)
def test_module_imports_no_io(module: ModuleType) -> None:
    # the source beside the module: compiled by mypyc (setup.py), __file__ is the extension's
    source = Path(str(module.__file__)).with_name(module.__name__.rpartition(".")[2] + ".py")
    tree = ast.parse(source.read_text(encoding="utf-8"))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= ALLOWED, imported - ALLOWED


@pytest.mark.parametrize("module", [frames, handshake, deflate], ids=lambda m: m.__name__)
def test_public_names_are_the_same_objects_from_the_codec_module(module: ModuleType) -> None:
    # What aiosio.protocol.websocket exported before the split, it still exports: the same
    # objects (an isinstance check against ws.HandshakeError catches the handshake's errors).
    for name in module.__all__:
        if name in ws.__all__:
            assert getattr(ws, name) is getattr(module, name), name


def test_the_codec_module_exports_what_it_did() -> None:
    assert set(ws.__all__) == {
        "GUID",
        "BinaryMessage",
        "CloseCode",
        "CloseReceived",
        "DeflateParams",
        "Event",
        "HandshakeError",
        "InvalidState",
        "Opcode",
        "PingReceived",
        "PongReceived",
        "ProtocolViolation",
        "Side",
        "State",
        "TextMessage",
        "WebSocketProtocol",
        "accept_deflate_response",
        "accept_key",
        "check_client_handshake",
        "check_server_handshake",
        "client_deflate_offer",
        "encode_frame",
        "negotiate_deflate",
        "new_client_key",
    }
    for name in ws.__all__:
        assert hasattr(ws, name), name
