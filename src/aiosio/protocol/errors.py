"""Errors of the sans-I/O core.

Every exception aiosio raises on purpose derives from :class:`AiosioError`, defined here (the
bottom layer) so that the core's errors share it: ``except aiosio.AiosioError`` catches them all.

Two families of the core's own, as in h11: :class:`RemoteProtocolError` when the peer sent
something the protocol forbids (the connection is closed with a reason, never a traceback), and
:class:`LocalProtocolError` when our own code misused the API.
"""

from __future__ import annotations

__all__ = [
    "AiosioError",
    "LocalProtocolError",
    "ParserMismatch",
    "ProtocolError",
    "RemoteProtocolError",
]


class AiosioError(Exception):
    """The root of the library's exceptions (re-exported as ``aiosio.AiosioError``)."""


class ProtocolError(AiosioError):
    """Base class of the core's errors."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol; ``str(err)`` says what was expected and what arrived."""


class LocalProtocolError(ProtocolError):
    """Our own code used the core in a state that does not allow it."""


class ParserMismatch(RemoteProtocolError):
    """The peer's message is of the kind another Socket.IO parser writes (text for the JSON
    parser, a binary msgpack map for the msgpack one): the two sides use different parsers.
    ``peer`` names the parser the message looks like (``"json"`` or ``"msgpack"``)."""

    def __init__(self, message: str, *, peer: str) -> None:
        super().__init__(message)
        self.peer = peer
