"""Round trips: of the handshake and of a ping. An Engine.IO 4 client may not ping (the server
does), except the probe ping of an upgrade: so each sample is one upgraded session."""

from __future__ import annotations

from typing import Any

from aiosio.doctor.checks.upgrade import ProbeOutcome
from aiosio.doctor.checks.upgrade import probe
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict
from aiosio.doctor.packets import PROBE_PING
from aiosio.doctor.packets import PROBE_PONG

__all__ = ["check_latency"]


async def check_latency(diagnosis: Diagnosis) -> bool:
    handshake = diagnosis.handshake
    assert handshake is not None  # the registry runs this check after an upgrade
    samples = diagnosis.ping_rtts
    for _ in range(20):  # the first failure stops it; the upgrade check already said why
        if len(samples) >= diagnosis.options.ping_samples:
            break
        result = await probe(diagnosis.target)
        if result.outcome is not ProbeOutcome.OK or result.rtt is None:
            break
        samples.append(result.rtt)
    if samples:
        diagnosis.report.add(_finding(samples, diagnosis.handshake_rtt, handshake))
    return True


def _finding(samples: list[float], handshake_ms: float, handshake: dict[str, Any]) -> Finding:
    ordered = sorted(samples)
    median = ordered[len(ordered) // 2]
    worst = ordered[-1]
    timeout_ms = float(handshake.get("pingTimeout", 20000))
    slow = worst >= timeout_ms / 2
    text = (
        f"a ping takes {median:.1f} ms there and back (median of {len(samples)}, max "
        f"{worst:.1f}); the handshake {handshake_ms:.1f} ms"
    )
    return Finding(
        "latency.slow" if slow else "latency.ok",
        Verdict.WARN if slow else Verdict.OK,
        text + (f": half the server's pingTimeout ({timeout_ms:.0f} ms) or more" if slow else ""),
        [
            f"{PROBE_PING} -> {PROBE_PONG} over the WebSocket of an upgraded session, "
            f"{len(samples)} times"
        ],
        "heartbeats will time out on this path: raise pingTimeout on the server, or find what "
        "delays the packets (a buffering proxy, an overloaded server)"
        if slow
        else None,
        data={
            "ping_ms": [round(x, 2) for x in samples],
            "ping_median_ms": round(median, 2),
            "ping_max_ms": round(worst, 2),
            "handshake_ms": round(handshake_ms, 2),
        },
    )
