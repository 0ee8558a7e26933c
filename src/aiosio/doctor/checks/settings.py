"""What the handshake says about the server's settings: heartbeat, maxPayload, upgrades."""

from __future__ import annotations

from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.findings import Finding
from aiosio.doctor.findings import Verdict

__all__ = ["check_settings"]


async def check_settings(diagnosis: Diagnosis) -> bool:
    handshake = diagnosis.handshake
    assert handshake is not None  # the registry runs this check after a handshake
    interval = handshake.get("pingInterval", 0) / 1000
    timeout = handshake.get("pingTimeout", 0) / 1000
    max_payload = handshake.get("maxPayload")
    upgrades = handshake.get("upgrades", [])
    diagnosis.report.add(
        Finding(
            "settings.heartbeat",
            Verdict.INFO,
            f"heartbeat: a ping every {interval:g}s, the client must answer within {timeout:g}s; a "
            f"silent connection is declared dead after {interval + timeout:g}s",
            [
                f"proxies must allow idle connections longer than {interval:g}s (nginx "
                f"proxy_read_timeout, HAProxy timeout tunnel)",
                f"maxPayload {max_payload} bytes: larger messages close the connection"
                if max_payload
                else "no maxPayload advertised",
                f"upgrades offered: {upgrades or 'none (the server has no WebSocket transport)'}",
            ],
            data={"ping_interval": interval, "ping_timeout": timeout, "max_payload": max_payload},
        )
    )
    if not upgrades:
        diagnosis.report.add(
            Finding(
                "settings.no_upgrades",
                Verdict.INFO,
                "the server offers no WebSocket upgrade: clients stay on long-polling",
                fix="enable the websocket transport on the server if clients should upgrade",
            )
        )
    return True
