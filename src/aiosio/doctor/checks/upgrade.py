"""The upgrade of a polling session to WebSocket, as real clients do it (``v4-current.md``,
"Upgrade"): the WebSocket with the session's sid, the probe ping and its pong, the upgrade."""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass
from typing import assert_never

from aiosio.client.http import WebSocketConnection
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import describe
from aiosio.doctor.exchange import open_session
from aiosio.doctor.exchange import open_websocket
from aiosio.doctor.exchange import websocket_query
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import CLOSE
from aiosio.doctor.packets import PROBE_PING
from aiosio.doctor.packets import UPGRADE
from aiosio.doctor.packets import is_noop
from aiosio.doctor.packets import is_probe_pong
from aiosio.doctor.target import Target

__all__ = ["Probe", "ProbeOutcome", "check_upgrade", "probe"]


class ProbeOutcome(enum.Enum):
    OK = "ok"
    NO_SESSION = "no session"  # no polling session opened
    REFUSED = "refused"  # the WebSocket with the sid did not open
    UNANSWERED = "unanswered"  # the probe ping got no probe pong


@dataclass(frozen=True, slots=True)
class Probe:
    """What one upgrade attempt showed: its outcome, the probe's round trip (ms) when it was
    answered, and what shows a failure."""

    outcome: ProbeOutcome
    rtt: float | None = None
    shown: str = ""


async def check_upgrade(diagnosis: Diagnosis) -> None:
    """A polling session, then the WebSocket probe with its sid: what real clients do."""
    result = await probe(diagnosis.target)
    match result.outcome:
        case ProbeOutcome.OK:
            assert result.rtt is not None
            diagnosis.ping_rtts.append(result.rtt)
            diagnosis.report.add(
                Finding("websocket.upgrade_ok", Verdict.OK, "polling sessions upgrade to WebSocket")
            )
        case ProbeOutcome.REFUSED:
            diagnosis.report.add(
                Finding(
                    "websocket.upgrade_refused",
                    Verdict.WARN,
                    "the upgrade of a polling session to WebSocket fails",
                    [result.shown],
                    "with several servers, the WebSocket request must reach the server of the "
                    "session (sticky sessions)",
                )
            )
        case ProbeOutcome.UNANSWERED:
            diagnosis.report.add(
                Finding(
                    "websocket.probe_failed",
                    Verdict.WARN,
                    "the WebSocket upgrade probe is not answered",
                    [result.shown],
                    "the WebSocket reached another server than the session's: sticky sessions",
                )
            )
        case ProbeOutcome.NO_SESSION:
            pass  # the handshake check already said why no session opens
        case _:
            assert_never(result.outcome)


async def probe(target: Target) -> Probe:
    """One polling session upgraded and closed: the doctor leaves nothing behind."""
    handshake = await open_session(target)
    if handshake is None:
        return Probe(ProbeOutcome.NO_SESSION)
    conn, answer, error = await open_websocket(target, websocket_query(handshake["sid"]))
    if conn is None:
        shown = str(error) if error else describe(answer) if answer else "?"
        return Probe(ProbeOutcome.REFUSED, shown=shown)
    messages: asyncio.Queue[str | bytes] = asyncio.Queue()
    conn.on_message = messages.put_nowait
    conn.start()
    started = time.perf_counter()
    conn.send(PROBE_PING)
    reply = await _probe_reply(messages, target.options.timeout)
    rtt = (time.perf_counter() - started) * 1000
    if not is_probe_pong(reply):
        conn.close()
        return Probe(ProbeOutcome.UNANSWERED, shown=f"sent {PROBE_PING}, got {str(reply)[:60]!r}")
    await _upgrade_and_close(conn)
    return Probe(ProbeOutcome.OK, rtt)


async def _probe_reply(messages: asyncio.Queue[str | bytes], timeout: float) -> str | bytes:
    """The first message after the probe ping other than a noop (which answers the session's
    waiting poll); ``""`` when none came in time."""
    reply: str | bytes = ""
    try:
        async with asyncio.timeout(timeout):
            reply = await messages.get()
            while is_noop(reply):
                reply = await messages.get()
    except TimeoutError:
        pass
    return reply


async def _upgrade_and_close(conn: WebSocketConnection) -> None:
    conn.send(UPGRADE)
    conn.send(CLOSE)
    await asyncio.sleep(0.02)
    conn.close()
