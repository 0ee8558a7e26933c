"""The Admin UI cannot tell an aiosio server from a Node one: ``tests/js/admin_session.mjs``
drives the admin namespace with socket.io-client exactly as ``@socket.io/admin-ui`` 0.5.1's UI
does, once against aiosio with :func:`aiosio.admin.instrument` and once against socket.io 4.8
instrumented by the npm package (``tests/js/admin_node_server.mjs``), both running the same
application, and what both sent is compared step by step (ids, dates and the handshake's values,
which differ by nature, are normalized by the script).

The scenarios: a login refused with a wrong password, then accepted; every socket, room and
event as it happens (development mode); the operations (join, leave, emit, _disconnect, whose
client sees ``io server disconnect``); a login by session id; a socket that failed to log in and
sends operations anyway, which change nothing; read-only mode, whose operations change nothing;
production mode, which sends statistics only.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

import bcrypt
import pytest

import aiosio
from aiosio import Server
from aiosio import Socket
from aiosio.admin import BasicAuth
from aiosio.admin import instrument
from conftest import JS_DIR
from conftest import _node
from conftest import run_node

pytestmark = pytest.mark.interop

PASSWORD = "correct horse"
# Counted by every server in every scenario's statistics (what else shows up in a window of
# two seconds depends on timing).
AGGREGATED = {"bytesIn", "bytesOut", "packetsIn", "packetsOut", "rawConnection"}

Line = dict[str, Any]


@pytest.fixture(scope="module")
def password_hash() -> str:
    # Cost 4: the lowest bcrypt allows, the same check at a fraction of the time.
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def application(password_hash: str, mode: str, read_only: bool) -> Server:
    """The application of admin_node_server.mjs, instrumented."""
    sio = Server()

    @sio.on("connection")
    def joined(socket: Socket) -> None:
        socket.data["user"] = "alice"
        socket.join("room1")

    @sio.on("hello")
    def hello(_socket: Socket, n: int) -> int:
        return n + 1

    instrument(
        sio,
        auth=BasicAuth("admin", password_hash),
        mode=mode,  # type: ignore[arg-type]
        read_only=read_only,
    )
    return sio


@pytest.fixture
async def node_server() -> AsyncIterator[Any]:
    procs: list[asyncio.subprocess.Process] = []

    async def start(password_hash: str, mode: str, read_only: bool) -> str:
        args = ["--hash", password_hash, "--mode", mode] + (["--readonly"] if read_only else [])
        proc = await asyncio.create_subprocess_exec(
            _node(),
            str(JS_DIR / "admin_node_server.mjs"),
            *args,
            stdout=asyncio.subprocess.PIPE,
            cwd=str(JS_DIR),
            env={**os.environ, "NODE_NO_WARNINGS": "1"},
        )
        procs.append(proc)
        assert proc.stdout is not None
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        return f"http://127.0.0.1:{ready['port']}"

    yield start
    for proc in procs:
        proc.kill()
        await proc.wait()


async def session(url: str, scenario: str) -> dict[str, Line]:
    lines = await run_node(
        "admin_session.mjs",
        "--url",
        url,
        "--password",
        PASSWORD,
        "--scenario",
        scenario,
        timeout=120,
    )
    steps = {line["step"]: line for line in lines}
    assert len(steps) == len(lines), [line["step"] for line in lines]
    return steps


async def both(
    scenario: str, mode: str, read_only: bool, password_hash: str, node_server: Any
) -> tuple[dict[str, Line], dict[str, Line]]:
    server = await aiosio.serve(application(password_hash, mode, read_only), "127.0.0.1", 0)
    try:
        ours = await session(f"http://127.0.0.1:{server.port}", scenario)
    finally:
        await server.close()
    theirs = await session(await node_server(password_hash, mode, read_only), scenario)
    return ours, theirs


def same_steps(ours: dict[str, Line], theirs: dict[str, Line]) -> None:
    assert list(ours) == list(theirs)
    for name in ours:
        if name == "server_stats":
            continue
        assert ours[name] == theirs[name], f"step {name!r} differs"


@pytest.mark.timeout(300)
async def test_development_mode_as_node(password_hash: str, node_server: Any) -> None:
    ours, theirs = await both("full", "development", False, password_hash, node_server)
    same_steps(ours, theirs)
    assert ours["refused"]["message"] == "invalid credentials"
    assert ours["A sent hello"]["events"] == ['["event_received","/","<A>",["hello",1],"<date>"]']
    assert ours["emit"]["received"] == [["news", "x"]]
    assert ours["_disconnect"]["reason"] == "io server disconnect"
    unauthenticated = ours["after an unauthenticated socket's operations"]
    assert unauthenticated["refusal"] == '4/admin,{"message":"invalid credentials"}'
    assert unauthenticated["bConnected"] is True
    assert unauthenticated["bReceived"] == []
    stats, reference = ours["server_stats"], theirs["server_stats"]
    for field in ("keys", "types", "namespaces", "aggregatedKeys"):
        assert stats[field] == reference[field], field
    assert set(stats["aggregated"]) >= AGGREGATED
    assert set(reference["aggregated"]) >= AGGREGATED
    assert "rawDisconnection/transport close" in stats["aggregated"]


@pytest.mark.timeout(300)
async def test_read_only_as_node(password_hash: str, node_server: Any) -> None:
    ours, theirs = await both("readonly", "development", True, password_hash, node_server)
    same_steps(ours, theirs)
    config = json.loads(next(e for e in ours["login"]["events"] if e.startswith('["config"')))
    assert config[1]["supportedFeatures"] == ["AGGREGATED_EVENTS", "ALL_EVENTS"]
    after = ours["after refused operations"]
    assert after["aConnected"] is True
    assert after["aReceived"] == []
    all_sockets = next(e for e in after["events"] if e.startswith('["all_sockets"'))
    a = next(s for s in json.loads(all_sockets)[1] if s["id"] == "<A>")
    assert a["rooms"] == ["<A>", "room1"]


@pytest.mark.timeout(300)
async def test_production_mode_as_node(password_hash: str, node_server: Any) -> None:
    ours, theirs = await both("production", "production", False, password_hash, node_server)
    same_steps(ours, theirs)
    events = [json.loads(e)[0] for e in ours["login and A connected"]["events"]]
    assert sorted(events) == ["config", "session"]
