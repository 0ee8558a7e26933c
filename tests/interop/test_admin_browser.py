"""The real Admin UI (``@socket.io/admin-ui`` 0.5.1's built page) in Debian's chromium, headless,
against aiosio serving it itself (``instrument(..., ui_path="/admin-ui/")``) and against a Node
server instrumented by the npm package: a wrong password is refused, the right one shows the
server and the live sockets, and the disconnect button of a socket's row disconnects it (its
client sees ``io server disconnect``); in read-only mode the row has no such button and the
socket stays. Both servers give the same screens (``tests/js/admin_browser.mjs`` reads them).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from typing import Any

import bcrypt
import pytest

import aiosio
from aiosio import Server
from aiosio.admin import BasicAuth
from aiosio.admin import instrument
from conftest import JS_DIR
from conftest import _node
from conftest import chromium
from conftest import run_node

pytestmark = pytest.mark.interop

UI_DIR = JS_DIR / "node_modules" / "@socket.io" / "admin-ui" / "ui" / "dist"
PASSWORD = "correct horse"
SERVER_ID = "admin-under-test"


async def browse(url: str, read_only: bool) -> dict[str, Any]:
    args = ["--url", url, "--password", PASSWORD, "--server-id", SERVER_ID]
    args += ["--chromium", chromium()] + (["--readonly"] if read_only else [])
    (result,) = await run_node("admin_browser.mjs", *args, timeout=120)
    return result


async def on_aiosio(password_hash: str, read_only: bool) -> dict[str, Any]:
    sio = Server()
    instrument(
        sio,
        auth=BasicAuth("admin", password_hash),
        read_only=read_only,
        server_id=SERVER_ID,
        ui_path="/admin-ui/",
        ui_dir=UI_DIR,
    )
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        return await browse(f"http://127.0.0.1:{server.port}", read_only)
    finally:
        await server.close()


async def on_node(password_hash: str, read_only: bool) -> dict[str, Any]:
    args = ["--hash", password_hash, "--server-id", SERVER_ID, "--ui", str(UI_DIR)]
    proc = await asyncio.create_subprocess_exec(
        _node(),
        str(JS_DIR / "admin_node_server.mjs"),
        *args,
        *(["--readonly"] if read_only else []),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(JS_DIR),
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        return await browse(f"http://127.0.0.1:{ready['port']}", read_only)
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.timeout(400)
@pytest.mark.parametrize("read_only", [False, True], ids=["operations", "read-only"])
async def test_the_ui_in_chromium(read_only: bool) -> None:
    password_hash = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    ours = await on_aiosio(password_hash, read_only)
    assert ours["loginError"] == "Invalid credentials"
    assert ours["server"] == [SERVER_ID, socket.gethostname(), "3", "Healthy"]  # A, B, the UI
    assert ours["rows"] == {"A": "<A>127.0.0.1WebSocket", "B": "<B>127.0.0.1WebSocket"}
    if read_only:
        assert ours["buttons"] == 0
        assert ours["remaining"] == {"A": True, "B": True}
    else:
        assert ours["buttons"] == 1
        assert ours["reason"] == "io server disconnect"
        assert ours["remaining"] == {"A": False, "B": True}
    assert ours == await on_node(password_hash, read_only)
