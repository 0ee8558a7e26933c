"""The rooms a ``to()`` or ``except_()`` call names, for the server's broadcast operators and
for :class:`aiosio.Emitter` alike: each argument a room or a collection of rooms, as in the
reference's ``to("a")`` / ``to(["a", "b"])``."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["named_rooms"]


def named_rooms(rooms: tuple[str | Iterable[str], ...]) -> frozenset[str]:
    """Every room of ``rooms``; a string is one room, not the characters of one."""
    out: set[str] = set()
    for room in rooms:
        if isinstance(room, str):
            out.add(room)
        else:
            out.update(room)
    return frozenset(out)
