"""Sticky sessions: do the requests of one session reach its server when each comes over a new
connection, as a load balancer sees different clients' requests?"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field

from aiosio.client.http import HttpResult
from aiosio.doctor.advice import websocket_only
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import describe
from aiosio.doctor.exchange import engine_error
from aiosio.doctor.exchange import open_session
from aiosio.doctor.exchange import polling_query
from aiosio.doctor.exchange import post
from aiosio.doctor.exchange import request_quiet
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import CLOSE_PAYLOAD
from aiosio.doctor.packets import NOOP_PAYLOAD
from aiosio.doctor.packets import connect_payload
from aiosio.doctor.target import Target

__all__ = ["check_sticky"]

_UNKNOWN_SID = (1, "Session ID unknown")


@dataclass(slots=True)
class _Tally:
    total: int = 0
    unknown: int = 0
    evidence: list[str] = field(default_factory=list)


async def check_sticky(diagnosis: Diagnosis) -> bool:
    target = diagnosis.target
    sessions = target.options.sticky_sessions
    tally = _Tally()
    for _ in range(sessions):
        handshake = await open_session(target)
        if handshake is not None:
            await _session(target, handshake["sid"], tally)
    if tally.total == 0:
        return True
    if tally.unknown:
        rate = tally.unknown / tally.total
        diagnosis.report.add(
            Finding(
                "sticky.missing",
                Verdict.FAIL,
                f"{tally.unknown} of {tally.total} requests ({rate:.0%}) of known sessions got "
                "'Session ID unknown': several servers without sticky sessions",
                tally.evidence,
                "make the load balancer sticky (nginx ip_hash or hash $cookie_io, HAProxy "
                f"cookie), or connect with WebSocket only: {websocket_only(diagnosis.options)}, "
                "or use aiosio serve --workers on one machine",
                data={"unknown": tally.unknown, "total": tally.total},
            )
        )
    else:
        diagnosis.report.add(
            Finding(
                "sticky.ok",
                Verdict.OK,
                f"{tally.total} requests of {sessions} sessions over fresh connections all "
                "reached their server",
            )
        )
    return True


async def _session(target: Target, sid: str, tally: _Tally) -> None:
    """A fresh TCP connection for each request, as a load balancer sees different connections.
    None of them waits: the CONNECT, the GET its answer comes in, then noop POSTs; then a close."""
    connect = connect_payload("/", target.options.auth)
    for index in range(target.options.sticky_requests):
        tally.total += 1
        if index == 1:
            method = "GET"
            answer = await request_quiet(target, "GET", polling_query(sid))
        else:
            method = "POST"
            body = connect if index == 0 else NOOP_PAYLOAD
            answer = await post(target, sid, body, cache_buster=True)
        if answer is not None and _unknown_session(answer):
            tally.unknown += 1
            if len(tally.evidence) < 4:
                tally.evidence.append(f"{method} ...&sid={sid} -> {describe(answer)}")
    await post(target, sid, CLOSE_PAYLOAD, cache_buster=True)


def _unknown_session(answer: HttpResult | None) -> bool:
    return answer is not None and answer.status == 400 and engine_error(answer.body) == _UNKNOWN_SID
