"""The exceptions of aiosio's public API."""

from __future__ import annotations

from typing import Any

from aiosio.protocol.errors import AiosioError

__all__ = [
    "AckTimeout",
    "AiosioError",
    "ConnectionRefused",
    "Disconnected",
    "EncodingError",
    "FetchSocketsTimeout",
]


class AckTimeout(AiosioError):
    """No acknowledgement arrived in time.

    For a broadcast with acknowledgements, ``replies`` holds the replies that did arrive and
    ``missing`` the ids of the sockets that did not answer.
    """

    def __init__(
        self, message: str, *, replies: list[Any] | None = None, missing: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.replies = replies or []
        self.missing = missing or []


class Disconnected(AiosioError):
    """The connection ended while waiting for an acknowledgement."""


class ConnectionRefused(AiosioError):
    """Raised by a connection middleware to refuse a client.

    The client receives ``connect_error`` with ``message`` and ``data`` (socket.io-client:
    ``err.message`` and ``err.data``).
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data


class EncodingError(AiosioError, TypeError):
    """A value given to ``emit`` (or returned as an acknowledgement) cannot be encoded; the
    message names the argument and its type. A ``TypeError`` too, as Python raises for a
    value of the wrong type."""


class FetchSocketsTimeout(AiosioError):
    """A cluster ``fetch_sockets`` did not hear from every server in time (the reference
    rejects its promise the same way): ``answered`` of ``expected`` other servers answered
    within ``timeout`` seconds; ``sockets`` holds what did arrive (this server's included).
    Pass ``fetch_sockets(partial=True)`` to take that instead of this error."""

    def __init__(
        self, message: str, *, sockets: list[Any], answered: int, expected: int, timeout: float
    ) -> None:
        super().__init__(message)
        self.sockets = sockets
        self.answered = answered
        self.expected = expected
        self.timeout = timeout
