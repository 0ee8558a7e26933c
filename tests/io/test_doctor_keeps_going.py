"""``aiosio doctor`` keeps going after a failed step and says what works, says nothing
misleading, writes each client-side fix in the language of the client named with ``--client``,
and closes every session it opened (issue 17, item 5). Against aiosio servers in this process;
the verdicts are read from the report, the sessions from the server's own ``close`` events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

import aiosio
from aiosio.cli import main
from aiosio.doctor.checks import DoctorOptions
from aiosio.doctor.checks import diagnose
from aiosio.doctor.findings import Report
from aiosio.doctor.findings import Verdict
from conftest import free_port


@contextlib.asynccontextmanager
async def running(sio: aiosio.Server) -> AsyncIterator[str]:
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


def by_id(report: Report) -> dict[str, Any]:
    return {finding.id: finding for finding in report.findings}


@pytest.mark.parametrize(
    ("client", "expected", "absent"),
    [
        ("js", 'io(url, { transports: ["websocket"] })', "aiosio.Client("),
        ("python", 'aiosio.Client(url, transports=["websocket"])', "io(url"),
        (None, 'io(url, { transports: ["websocket"] })', None),
    ],
)
async def test_a_websocket_only_server_is_found_as_such(
    client: str | None, expected: str, absent: str | None
) -> None:
    async with running(aiosio.Server(transports=["websocket"])) as url:
        report = await diagnose(DoctorOptions(url=url, timeout=5.0, client=client))
    found = by_id(report)
    # The polling refusal is information, the direct WebSocket works, and the primary finding
    # says what kind of server this is and what clients must do.
    assert found["handshake.refused_code_0"].verdict is Verdict.INFO
    assert found["websocket.ok"].verdict is Verdict.OK
    primary = report.primary
    assert primary is not None
    assert primary.id == "transport.websocket_only"
    assert primary.verdict is Verdict.WARN
    assert primary.fix is not None
    assert expected in primary.fix
    if absent is not None:
        assert absent not in primary.fix
    else:
        assert 'aiosio.Client(url, transports=["websocket"])' in primary.fix


async def test_polling_refused_and_websocket_refused_stays_a_failure() -> None:
    async with running(aiosio.Server(transports=["websocket"], cors=None)) as url:
        # --transport polling: only polling is checked, and it is refused.
        report = await diagnose(DoctorOptions(url=url, timeout=5.0, transport="polling"))
    assert report.primary is not None
    assert report.primary.id == "handshake.refused_code_0"
    assert report.primary.verdict is Verdict.FAIL


async def test_a_refused_origin_is_not_a_proxy_dropping_websocket() -> None:
    sio = aiosio.Server(cors=aiosio.Cors(origins=["https://good.example"]))
    async with running(sio) as url:
        report = await diagnose(DoctorOptions(url=url, timeout=5.0, origin="https://evil.example"))
    found = by_id(report)
    assert "cors.origin_refused" in found
    assert "websocket.stuck_in_polling" not in found
    refused = found["websocket.origin_refused"]
    assert refused.verdict is Verdict.FAIL
    assert "https://evil.example" in refused.fix
    assert not any("proxy_set_header" in (f.fix or "") for f in report.findings)


async def test_nothing_listening_is_said_once(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    status = await asyncio.to_thread(main, ["doctor", url, "--timeout", "5"])
    out = capsys.readouterr().out
    assert status != 0
    assert out.count("nothing listens on that port") == 1, out


async def test_every_session_it_opened_is_closed() -> None:
    sio = aiosio.Server()
    opened: list[str] = []
    reasons: dict[str, str] = {}

    def on_connection(conn: Any) -> None:
        opened.append(conn.id)
        conn.on("close", lambda reason, *_: reasons.setdefault(conn.id, reason))

    sio.engine.on("connection", on_connection)
    async with running(sio) as url:
        report = await diagnose(DoctorOptions(url=url, timeout=5.0))
        assert report.ok, [(f.id, f.title) for f in report.findings]
        # Closed by the doctor itself (not left to the heartbeat's timeout of 45 s).
        async with asyncio.timeout(10):
            while len(reasons) < len(opened):
                await asyncio.sleep(0.05)
    assert len(opened) > 5
    assert set(reasons.values()) == {"transport close"}, reasons


@pytest.mark.parametrize(
    ("client", "expected"),
    [("js", 'io(url, { path: "/ws/socket.io/" })'), ("python", 'path="/ws/socket.io/"')],
)
async def test_a_server_mounted_under_a_prefix_is_found(client: str, expected: str) -> None:
    # As FastAPI's app.mount("/ws", sio.asgi()): the Socket.IO path is /ws/socket.io/, and
    # `aiosio doctor http://host/ws` is what a user types.
    async with running(aiosio.Server(path="/ws/socket.io/")) as url:
        report = await diagnose(DoctorOptions(url=url + "/ws", timeout=5.0, client=client))
    primary = report.primary
    assert primary is not None
    assert primary.id == "path.mismatch"
    assert "answers at /ws/socket.io/" in primary.title
    assert primary.fix is not None
    assert expected in primary.fix


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        ("js", "io(url, { auth: (cb) => cb({ token: freshToken() }) })"),
        ("python", 'aiosio.Client(url, auth=lambda: {"token": fresh_token()})'),
    ],
)
async def test_an_expired_token_fix_is_in_the_clients_words(client: str, expected: str) -> None:
    sio = aiosio.Server()

    @sio.of("/secure").use
    async def refuse(socket: aiosio.Socket) -> None:
        raise aiosio.ConnectionRefused("token expired", data={"code": "EXPIRED"})

    async with running(sio) as url:
        report = await diagnose(
            DoctorOptions(url=url + "/secure", timeout=5.0, auth={"token": "x"}, client=client)
        )
    found = by_id(report)["namespace.token_expired"]
    assert expected in found.fix
