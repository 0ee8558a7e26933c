"""The exceptions of aiosio's public API."""

from __future__ import annotations

from typing import Any

__all__ = ["AckTimeout", "ConnectionRefused", "Disconnected"]


class AckTimeout(Exception):
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


class Disconnected(Exception):
    """The connection ended while waiting for an acknowledgement."""


class ConnectionRefused(Exception):
    """Raised by a connection middleware to refuse a client.

    The client receives ``connect_error`` with ``message`` and ``data`` (socket.io-client:
    ``err.message`` and ``err.data``).
    """

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data
