"""Fixes that name a client option, written in the language of the client the user named
(``aiosio doctor --client js|python``), or in both when none was named."""

from __future__ import annotations

from aiosio.doctor.options import DoctorOptions

__all__ = ["websocket_only"]


def websocket_only(options: DoctorOptions) -> str:
    """How a client connects with WebSocket only (no long-polling)."""
    js = 'io(url, { transports: ["websocket"] })'
    python = 'aiosio.Client(url, transports=["websocket"])'
    if options.client == "js":
        return js
    if options.client == "python":
        return python
    return f"{js} (JavaScript), {python} (Python)"
