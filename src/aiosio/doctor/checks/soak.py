"""``--soak SECONDS``: hold an idle session (answering pings) that long. A connection cut before
the end, earlier than the server's heartbeat would, is a proxy's idle timeout."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import open_websocket
from aiosio.doctor.exchange import websocket_query
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import PONG
from aiosio.doctor.packets import is_ping

__all__ = ["check_soak"]


async def check_soak(diagnosis: Diagnosis) -> bool:
    duration = diagnosis.options.soak
    conn, _result, error = await open_websocket(diagnosis.target, websocket_query())
    if conn is None:
        diagnosis.report.add(
            Finding("soak.skipped", Verdict.INFO, f"soak over WebSocket not possible: {error}")
        )
        return True
    closed: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    pings = 0
    started = time.monotonic()

    def on_message(data: str | bytes) -> None:
        nonlocal pings
        if is_ping(data):
            pings += 1
            conn.send(PONG)

    def on_close(code: int | None, err: str | None) -> None:
        if not closed.done():
            closed.set_result(time.monotonic() - started)

    conn.on_message = on_message
    conn.on_close = on_close
    conn.start()
    try:
        async with asyncio.timeout(duration):
            lasted = await closed
    except TimeoutError:
        conn.close()
        diagnosis.report.add(
            Finding(
                "soak.ok",
                Verdict.OK,
                f"an idle connection stayed up for {duration:g}s ({pings} pings answered)",
            )
        )
        return True
    diagnosis.report.add(_cut(diagnosis.handshake or {}, lasted, pings))
    return True


def _cut(handshake: dict[str, Any], lasted: float, pings: int) -> Finding:
    interval = handshake.get("pingInterval", 25000) / 1000
    timeout = handshake.get("pingTimeout", 20000) / 1000
    return Finding(
        "soak.idle_timeout",
        Verdict.FAIL,
        f"the connection was cut after {lasted:.1f}s of idleness ({pings} pings answered)"
        + (f", before the server's first ping ({interval:g}s)" if pings == 0 else ""),
        [f"server pingInterval {interval:g}s; the cut came at {lasted:.1f}s"],
        f"a proxy closes idle connections after about {lasted:.0f}s: raise it above "
        f"{interval + timeout:g}s (nginx proxy_read_timeout, HAProxy timeout tunnel, cloud load "
        "balancer idle timeout)",
        data={"lasted": lasted, "pings": pings},
    )
