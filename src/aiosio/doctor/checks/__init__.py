"""The checks of ``aiosio doctor``, in the order an expert runs them with curl and DevTools.

Each check reads what the deployment answers, never needs its cooperation, and records a
:class:`~aiosio.doctor.findings.Finding` with a stable id, the exchange that shows it and the fix.
It works against Node socket.io, python-socketio and aiosio servers alike. One module per check;
:data:`CHECKS` is their order and when each applies, :func:`diagnose` runs them.
"""

from __future__ import annotations

from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass

from aiosio.doctor.checks.cors import check_cors
from aiosio.doctor.checks.handshake import check_handshake
from aiosio.doctor.checks.latency import check_latency
from aiosio.doctor.checks.namespace import check_namespace
from aiosio.doctor.checks.network import check_network
from aiosio.doctor.checks.payload import check_payload
from aiosio.doctor.checks.settings import check_settings
from aiosio.doctor.checks.soak import check_soak
from aiosio.doctor.checks.sticky import check_sticky
from aiosio.doctor.checks.websocket import check_websocket
from aiosio.doctor.checks.webtransport import check_webtransport
from aiosio.doctor.checks.webtransport import offers_webtransport
from aiosio.doctor.diagnosis import Diagnosis
from aiosio.doctor.exchange import close_sessions
from aiosio.doctor.findings import Report
from aiosio.doctor.options import DoctorOptions
from aiosio.doctor.target import Target

__all__ = ["CHECKS", "Check", "DoctorOptions", "diagnose"]


@dataclass(frozen=True, slots=True)
class Check:
    """One check: ``run`` records its findings and returns ``False`` when nothing after it can
    be learnt; it runs only when ``applies`` says so of the diagnosis so far."""

    name: str
    run: Callable[[Diagnosis], Awaitable[bool]]
    applies: Callable[[Diagnosis], bool]


def _always(d: Diagnosis) -> bool:
    return True


def _polling(d: Diagnosis) -> bool:
    return d.options.transport != "websocket"


def _websocket(d: Diagnosis) -> bool:
    return d.options.transport != "polling"


def _session(d: Diagnosis) -> bool:
    return d.handshake is not None


def _cors_unjudged(d: Diagnosis) -> bool:
    return _session(d) and bool(d.options.origin) and not d.cors_checked


def _upgraded(d: Diagnosis) -> bool:
    return _websocket(d) and _session(d) and bool(d.ping_rtts)


def _probe_payload(d: Diagnosis) -> bool:
    return _session(d) and d.options.probe_payload


def _soak(d: Diagnosis) -> bool:
    return d.options.soak > 0


CHECKS: tuple[Check, ...] = (
    Check("network", check_network, _always),
    Check("handshake", check_handshake, _polling),
    Check("settings", check_settings, _session),
    Check("cors", check_cors, _cors_unjudged),
    Check("websocket", check_websocket, _websocket),  # and the upgrade, when offered
    Check("webtransport", check_webtransport, offers_webtransport),  # HTTP/3, when offered
    Check("latency", check_latency, _upgraded),
    Check("sticky", check_sticky, _session),
    Check("namespace", check_namespace, _session),
    Check("payload", check_payload, _probe_payload),
    Check("soak", check_soak, _soak),
)


async def diagnose(options: DoctorOptions) -> Report:
    """Run :data:`CHECKS` in order against ``options.url``; the report of what they found."""
    diagnosis = Diagnosis(Target(options), Report(options.url))
    try:
        for check in CHECKS:
            if check.applies(diagnosis) and not await check.run(diagnosis):
                break
    finally:
        await close_sessions(diagnosis.target)
    return diagnosis.report
