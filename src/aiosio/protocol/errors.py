"""Errors of the sans-I/O core.

Two families, as in h11: :class:`RemoteProtocolError` when the peer sent something the protocol
forbids (the connection is closed with a reason, never a traceback), and :class:`LocalProtocolError`
when our own code misused the API.
"""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base class of the core's errors."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; ``str(err)`` says what was expected and what arrived."""


class LocalProtocolError(ProtocolError):
    """Our own code used the core in a state that does not allow it."""
