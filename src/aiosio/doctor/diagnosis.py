"""One run of the doctor: the target, the report being written, and what earlier checks learned
that later ones use (the handshake, whether CORS was already judged, round trips)."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any

from aiosio.doctor.findings import Report
from aiosio.doctor.options import DoctorOptions
from aiosio.doctor.target import Target

__all__ = ["Diagnosis"]


@dataclass(slots=True)
class Diagnosis:
    target: Target
    report: Report
    handshake: dict[str, Any] | None = None  # the Engine.IO handshake's JSON, once seen
    cors_checked: bool = False
    handshake_rtt: float = 0.0  # ms
    ping_rtts: list[float] = field(default_factory=list)  # ms, one per upgraded session

    @property
    def options(self) -> DoctorOptions:
        return self.target.options
