"""Choosing a parser by name, and telling a peer that uses another one (see
:mod:`aiosio.protocol.parser`)."""

from __future__ import annotations

from aiosio.protocol.errors import ParserMismatch
from aiosio.protocol.errors import RemoteProtocolError
from aiosio.protocol.parser import JSON
from aiosio.protocol.parser import Parser
from aiosio.protocol.socketio import Limits
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType

__all__ = ["PARSER_MISMATCH", "mismatch_reply", "mismatch_text", "resolve_parser"]

PARSER_MISMATCH = "parser mismatch"
"""How the message of a CONNECT_ERROR for a peer using another parser starts."""

_CHOICES = "'json' (the default), 'msgpack' or an aiosio.protocol.parser.Parser"


def resolve_parser(parser: str | Parser | None) -> Parser:
    """The parser a ``parser=`` option names. Raises ``ValueError`` for an unknown name and
    ``TypeError`` for anything else than a name or a :class:`Parser`."""
    if parser is None or parser == "json":
        return JSON
    if parser == "msgpack":
        # Imported when chosen: only servers and clients that use it load the module.
        from aiosio.protocol.msgpack_parser import MSGPACK

        return MSGPACK
    if isinstance(parser, Parser):
        return parser
    if not isinstance(parser, str):
        raise TypeError(f"parser must be {_CHOICES}, got {type(parser).__name__}")
    raise ValueError(f"unknown parser {parser!r}: expected {_CHOICES}")


def mismatch_text(ours: str, theirs: str, *, side: str) -> str:
    """Why a connection between two parsers fails, and the fix, for ``side`` ("server" or
    "client"), which uses ``ours``."""
    other = "client" if side == "server" else "server"
    return (
        f"{PARSER_MISMATCH}: the {side} uses the {ours} parser and the {other} likely the "
        f"{theirs} one; give both the same parser (aiosio: Server(parser=...) / "
        f"Client(parser=...); JavaScript: the parser option of socket.io and socket.io-client, "
        f"e.g. require('socket.io-msgpack-parser'))"
    )


def mismatch_reply(
    error: ParserMismatch, message: str | bytes, text: str, limits: Limits
) -> list[str | bytes]:
    """A CONNECT_ERROR carrying ``text``, encoded in the parser the peer uses (``error.peer``)
    for the namespace of its packet ``message``; empty when ``message`` is not a packet of that
    parser either (then the peer gets only the close)."""
    try:
        peer = resolve_parser(error.peer)
        packet = peer.decoder(limits).feed(message)
    except (RemoteProtocolError, ValueError, TypeError):
        return []
    if packet is None:  # a binary packet's header: its namespace is known all the same
        return []
    return peer.encode(Packet(PacketType.CONNECT_ERROR, packet.nsp, {"message": text}))
