"""The bounds on what a peer may send (:class:`Limits`, ``aiosio.Limits``).

Apart from :mod:`aiosio.protocol.socketio` (which exports it too), which setup.py may compile
with mypyc: a user makes and copies this value, and a compiled frozen dataclass would check its
fields' types when made and could not be copied or pickled (``aiosio._compiled``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on what a peer may send; each is an option of the server and the client."""

    max_attachments: int = 10
    max_depth: int = 32
    max_namespace_length: int = 256
    max_ack_id: int = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
