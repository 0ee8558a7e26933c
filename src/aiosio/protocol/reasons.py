"""Why a server-side socket was disconnected: the reference's strings (``socket.ts``
``DisconnectReason``), as one enum.

The members are strings (:class:`enum.StrEnum`): a ``disconnect`` handler that compares the
reason with ``"ping timeout"`` keeps working, logs show the reference's words, and the values are
what a Node server reports for the same event. Engine.IO's close reasons (``transport close``,
``ping timeout``, ...) are the first five members, with the same strings.
"""

from __future__ import annotations

import enum

__all__ = ["RECOVERABLE", "DisconnectReason"]


class DisconnectReason(enum.StrEnum):
    """The reason a ``disconnecting`` / ``disconnect`` handler receives."""

    # The Engine.IO session ended.
    TRANSPORT_ERROR = "transport error"
    TRANSPORT_CLOSE = "transport close"
    FORCED_CLOSE = "forced close"
    PING_TIMEOUT = "ping timeout"
    PARSE_ERROR = "parse error"
    # The Socket.IO layer ended it.
    SERVER_SHUTTING_DOWN = "server shutting down"
    FORCED_SERVER_CLOSE = "forced server close"
    CLIENT_NAMESPACE_DISCONNECT = "client namespace disconnect"
    SERVER_NAMESPACE_DISCONNECT = "server namespace disconnect"

    @classmethod
    def of(cls, reason: str) -> str:
        """The member for ``reason`` (an Engine.IO close reason), or ``reason`` itself when no
        member has that string (a reason added to the engine later is passed on as it is)."""
        try:
            return cls(reason)
        except ValueError:
            return reason


# Disconnections after which connection state recovery keeps the socket's session: the client
# did not leave on purpose (``socket.ts``: every reason but the two namespace disconnects).
RECOVERABLE = frozenset(
    {
        DisconnectReason.TRANSPORT_ERROR,
        DisconnectReason.TRANSPORT_CLOSE,
        DisconnectReason.FORCED_CLOSE,
        DisconnectReason.PING_TIMEOUT,
        DisconnectReason.SERVER_SHUTTING_DOWN,
        DisconnectReason.FORCED_SERVER_CLOSE,
    }
)
