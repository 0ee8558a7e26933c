"""What ``server_stats`` reports every 2 seconds: the server, its connections, its namespaces,
and the events counted since the last report (``aggregatedEvents``), with the reference's field
names and units (uptime in seconds, timestamps in milliseconds truncated to the second)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from aiosio.engine.server import EngineSocket
from aiosio.server.server import Server

__all__ = ["AggregatedEvents", "Connections", "Traffic", "process_uptime", "server_stats"]


class AggregatedEvents:
    """Counts per second, type and subtype, handed over and cleared by each report (the
    reference's ``EventBuffer``). Reports run every 2 seconds while anything is counted, so
    this holds a few seconds' worth of keys."""

    def __init__(self) -> None:
        self._counts: dict[tuple[int, str, str | None], int] = {}

    def push(self, kind: str, sub_type: str | None = None, count: int = 1) -> None:
        key = (int(time.time()) * 1000, kind, sub_type)
        self._counts[key] = self._counts.get(key, 0) + count

    def drain(self) -> list[dict[str, Any]]:
        """The counts as the UI reads them; a missing subtype is left out, as
        ``JSON.stringify`` leaves out ``undefined``."""
        counts, self._counts = self._counts, {}
        drained = []
        for (timestamp, kind, sub_type), count in counts.items():
            entry: dict[str, Any] = {"timestamp": timestamp, "type": kind}
            if sub_type is not None:
                entry["subType"] = sub_type
            entry["count"] = count
            drained.append(entry)
        return drained


def _byte_length(data: str | bytes) -> int:
    """``Buffer.byteLength``: UTF-8 bytes of a text message."""
    if isinstance(data, bytes):
        return len(data)
    return len(data) if data.isascii() else len(data.encode())


class Traffic:
    """Counts every message in and out (a :class:`~aiosio.server.interfaces.PacketListener`):
    ``packetsIn``/``bytesIn``, ``packetsOut``/``bytesOut``."""

    def __init__(self, events: AggregatedEvents) -> None:
        self.events = events

    def received(self, data: str | bytes) -> None:
        self.events.push("packetsIn")
        self.events.push("bytesIn", count=_byte_length(data))

    def sent(self, data: str | bytes) -> None:
        self.events.push("packetsOut")
        self.events.push("bytesOut", count=_byte_length(data))


class Connections:
    """Engine.IO sessions opened and closed (``rawConnection``, ``rawDisconnection`` by
    reason) and how many are on long-polling now (``pollingClientsCount``)."""

    def __init__(self, events: AggregatedEvents) -> None:
        self.events = events
        self.polling = 0

    def opened(self, conn: EngineSocket) -> None:
        self.events.push("rawConnection")
        if conn.transport == "polling":
            self.polling += 1
            stopped = _StoppedPolling(self)
            conn.on("upgrade", stopped)
            conn.on("close", stopped)
        conn.on("close", self._closed)

    def _closed(self, reason: str, _description: Any = None) -> None:
        self.events.push("rawDisconnection", str(reason))


class _StoppedPolling:
    """Counts a session down once, at its upgrade or at its close, whichever comes first."""

    __slots__ = ("connections", "counted")

    def __init__(self, connections: Connections) -> None:
        self.connections = connections
        self.counted = True

    def __call__(self, *_args: Any) -> None:
        if self.counted:
            self.counted = False
            self.connections.polling -= 1


def _process_started() -> float:
    """When this process started, on the monotonic clock (Node's ``process.uptime()`` counts
    from there): read from ``/proc`` on Linux, else the time this module was imported."""
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as stat:
            # The command name (field 2) may hold spaces: fields are counted after its ')'.
            fields = stat.read().rsplit(b")", 1)[1].split()
        with open("/proc/uptime", "rb") as uptime:
            since_boot = float(uptime.read().split()[0])
        started_after_boot = int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return now
    return now - max(0.0, since_boot - started_after_boot)


_STARTED = _process_started()


def process_uptime() -> float:
    """Seconds since this process started."""
    return time.monotonic() - _STARTED


def server_stats(
    sio: Server, server_id: str, connections: Connections, events: AggregatedEvents
) -> dict[str, Any]:
    """One ``server_stats`` payload, its keys in the reference's order."""
    return {
        "serverId": server_id,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "uptime": process_uptime(),
        "clientsCount": sio.engine.clients_count,
        "pollingClientsCount": connections.polling,
        "aggregatedEvents": events.drain(),
        "namespaces": [
            {"name": nsp.name, "socketsCount": len(nsp.sockets)} for nsp in sio.namespaces.values()
        ],
    }
