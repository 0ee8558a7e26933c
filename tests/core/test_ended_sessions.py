"""The record of why recent sessions ended: what it remembers, for how long, and that it keeps no
object of a session alive (each such object would pin one of CPython's memory arenas after the
connections leave; tests/io/test_memory.py measures that end to end)."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from aiosio.engine.ended import EndedSessions


def test_a_recorded_session_is_found_with_its_reason_and_time() -> None:
    ended = EndedSessions(8)
    ended.add("sid-a", "ping timeout", 12.5)
    ended.add("sid-b", "transport close", 13.0)
    assert ended.get("sid-a") == ("ping timeout", 12.5)
    assert ended.get("sid-b") == ("transport close", 13.0)
    assert ended.get("sid-c") is None
    assert len(ended) == 2


def keys(**numbers: int) -> Callable[[str], int]:
    """A key function that gives each named session id the number chosen for it."""
    return numbers.__getitem__


def number(key_bytes: bytes) -> int:
    """The key recorded as these 8 bytes."""
    return int.from_bytes(key_bytes, sys.byteorder, signed=True)


def test_slots_not_yet_used_are_not_searched() -> None:
    # An unused slot holds zero bytes, which an id whose key is 0 would match.
    ended = EndedSessions(4, key=keys(a=1, late=0))
    assert ended.get("late") is None
    ended.add("a", "transport close", 1.0)
    assert ended.get("late") is None


def test_the_oldest_sessions_are_forgotten_beyond_the_capacity() -> None:
    ended = EndedSessions(3)
    for i in range(5):
        ended.add(f"sid-{i}", "transport close", float(i))
    assert len(ended) == 3
    assert ended.get("sid-0") is None
    assert ended.get("sid-1") is None
    assert [ended.get(f"sid-{i}") for i in (2, 3, 4)] == [
        ("transport close", 2.0),
        ("transport close", 3.0),
        ("transport close", 4.0),
    ]


def test_a_capacity_of_one_keeps_the_last_session() -> None:
    ended = EndedSessions(1)
    ended.add("a", "forced close", 1.0)
    ended.add("b", "parse error", 2.0)
    assert ended.get("a") is None
    assert ended.get("b") == ("parse error", 2.0)


def test_a_capacity_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1, got 0"):
        EndedSessions(0)


def test_reasons_beyond_256_distinct_ones_are_recorded_as_other() -> None:
    ended = EndedSessions(400)
    for i in range(300):
        ended.add(f"sid-{i}", f"reason {i}", float(i))
    assert ended.get("sid-0") == ("reason 0", 0.0)
    assert ended.get("sid-254") == ("reason 254", 254.0)
    assert ended.get("sid-255") == ("other", 255.0)  # "other" itself is the first of the 256
    assert ended.get("sid-299") == ("other", 299.0)


def test_a_key_found_across_two_slots_is_not_a_match() -> None:
    # The key of "late" is the last 4 bytes of x's and the first 4 of y's: a byte search finds
    # it at offset 4, straddling slots 0 and 1.
    ended = EndedSessions(
        4,
        key=keys(
            x=number(b"\x00\x00\x00\x00ABCD"),
            y=number(b"EFGH\x00\x00\x00\x00"),
            late=number(b"ABCDEFGH"),
        ),
    )
    ended.add("x", "transport close", 1.0)
    ended.add("y", "transport close", 2.0)
    assert ended.get("late") is None
    assert ended.get("y") == ("transport close", 2.0)


def test_the_record_keeps_no_reference_to_the_session_id() -> None:
    sid = "".join(["session-", "not-interned"])  # built at run time: a fresh str object
    before = sys.getrefcount(sid)
    ended = EndedSessions(16)
    ended.add(sid, "transport close", 1.0)
    assert sys.getrefcount(sid) == before
    assert ended.get(sid) == ("transport close", 1.0)
