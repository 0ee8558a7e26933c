"""The transports of an Engine.IO session and their names.

Apart from :mod:`aiosio.protocol.session` (which exports them too) because
:class:`TransportName` subclasses ``str``, which mypyc cannot compile into a native class, and
session.py may be compiled (setup.py).
"""

from __future__ import annotations

import enum

__all__ = ["TRANSPORT_NAMES", "TransportKind", "TransportName"]


class TransportKind(enum.Enum):
    POLLING = "polling"
    WEBSOCKET = "websocket"
    # A WebTransport bidirectional stream carries the same messages as a WebSocket (framed by
    # aiosio.protocol.webtransport), so a session on it is in the WEBSOCKET state: that state
    # means "on a message transport", and ``transport`` says which one.
    WEBTRANSPORT = "webtransport"


class TransportName(str):
    """A transport's name that reads as the reference's transport object too: ``str`` for every
    comparison aiosio and its users make (``conn.transport == "websocket"``), ``.name`` as Node's
    ``socket.conn.transport.name`` (server) and ``socket.io.engine.transport.name`` (client)."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return str(self)


TRANSPORT_NAMES = {kind: TransportName(kind.value) for kind in TransportKind}
