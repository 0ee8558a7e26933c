"""``--probe-payload``: the largest message a polling session accepts, found by a binary search
on POST sizes (a proxy's body limit below the server's maxPayload shows here)."""

from __future__ import annotations

from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import close_session
from aiosio.doctor.exchange import open_session
from aiosio.doctor.exchange import post
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import message_payload
from aiosio.doctor.target import Target

__all__ = ["check_payload"]


async def check_payload(diagnosis: Diagnosis) -> bool:
    handshake = diagnosis.handshake
    assert handshake is not None  # the registry runs this check after a handshake
    low, high = 1, max(int(handshake.get("maxPayload") or 1_000_000), 2) * 2
    largest = 0
    for _ in range(16):
        if low > high:
            break
        size = (low + high) // 2
        if await _accepted(diagnosis.target, size):
            largest, low = size, size + 1
        else:
            high = size - 1
    advertised = handshake.get("maxPayload")
    verdict = Verdict.OK if advertised is None or largest >= int(advertised) - 16 else Verdict.WARN
    diagnosis.report.add(
        Finding(
            "payload.largest",
            verdict,
            f"the largest message accepted is about {largest} bytes (maxPayload {advertised})",
            fix=None
            if verdict is Verdict.OK
            else "something in front of the server (a proxy's client_max_body_size) refuses "
            "smaller bodies than the server allows",
            data={"largest": largest, "max_payload": advertised},
        )
    )
    return True


async def _accepted(target: Target, size: int) -> bool:
    """Whether a new session accepts a POST of ``size`` bytes (one message)."""
    handshake = await open_session(target)
    if handshake is None:
        return False
    sid = handshake["sid"]
    body = message_payload("x" * (size - 1))
    answer = await post(target, sid, body)
    await close_session(target, sid)
    return answer is not None and answer.status == 200
