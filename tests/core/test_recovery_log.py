"""The ``--workers`` master's recovery store, fed values and a clock: what a session recovers,
and each reason it cannot."""

from __future__ import annotations

import pytest

from aiosio._recovery_log import RecoveryStore

NONE: frozenset[str] = frozenset()


def test_a_session_gets_what_was_sent_to_its_rooms_after_its_offset() -> None:
    store = RecoveryStore(max_len=10)
    first = store.append("ch", 0.0, 60, NONE, NONE, b"to all 1")
    store.persist("ch", 1.0, 60, "pid", frozenset({"sid", "r"}), b"session")
    store.append("ch", 2.0, 60, frozenset({"r"}), NONE, b"to r")
    store.append("ch", 2.0, 60, frozenset({"other"}), NONE, b"to other")
    store.append("ch", 2.0, 60, NONE, frozenset({"r"}), b"except r")
    last = store.append("ch", 3.0, 60, NONE, NONE, b"to all 2")
    found = store.restore("ch", 4.0, "pid", first)
    assert found.session == b"session"
    assert [entry for _, entry in found.missed] == [b"to r", b"to all 2"]
    assert found.missed[-1][0] == last
    # taken out of the store: a second restore finds nothing
    assert store.restore("ch", 4.0, "pid", first).reason == (
        "no session of that id (never kept, or expired)"
    )


def test_nothing_missed_after_the_last_offset() -> None:
    store = RecoveryStore(max_len=1)
    offset = store.append("ch", 0.0, 60, NONE, NONE, b"x")
    store.append("other channel", 0.0, 60, NONE, NONE, b"y")
    store.persist("ch", 0.0, 60, "pid", NONE, b"s")
    assert store.restore("ch", 1.0, "pid", offset).missed == []


def test_a_trimmed_log_recovers_nothing_and_names_the_option() -> None:
    store = RecoveryStore(max_len=2)
    offset = store.append("ch", 0.0, 60, NONE, NONE, b"0")
    store.persist("ch", 0.0, 60, "pid", NONE, b"s")
    for n in range(2):  # the log holds 2: the broadcast right after the offset is kept
        store.append("ch", 0.0, 60, NONE, NONE, str(n).encode())
    assert store.restore("ch", 0.0, "pid", offset).session == b"s"
    store.persist("ch", 0.0, 60, "pid", NONE, b"s")
    store.append("ch", 0.0, 60, NONE, NONE, b"3")  # now it is gone
    found = store.restore("ch", 0.0, "pid", offset)
    assert found.session is None
    assert found.reason == (
        f"the broadcasts after offset {offset} are no longer kept: the master keeps the last 2 "
        "broadcasts of a namespace (aiosio serve --recovery-log-size), each for "
        "max_disconnection_duration"
    )


def test_expiry_and_foreign_offsets() -> None:
    store = RecoveryStore()
    offset = store.append("ch", 0.0, 10, NONE, NONE, b"x")
    store.persist("ch", 0.0, 10, "pid", NONE, b"s")
    assert store.restore("ch", 10.5, "pid", offset).session is None  # expired
    store.persist("ch", 0.0, 10, "pid", NONE, b"s")
    for foreign in ("deadbeef-1", f"{store.epoch}-99", f"{store.epoch}-x", "nonsense"):
        found = store.restore("ch", 1.0, "pid", foreign)
        assert found.reason == f"offset {foreign!r} was not given by this master"
        store.persist("ch", 0.0, 10, "pid", NONE, b"s")
    # a broadcast older than max_disconnection_duration is dropped when the next one comes:
    # the one right after the offset is then gone
    store.append("ch", 0.0, 10, NONE, NONE, b"missed, then dropped")
    store.append("ch", 20.0, 10, NONE, NONE, b"late")
    store.persist("ch", 15.0, 10, "pid", NONE, b"s")
    reason = store.restore("ch", 20.0, "pid", offset).reason
    assert reason is not None
    assert reason.startswith(f"the broadcasts after offset {offset} are no longer kept")


def test_expired_sessions_go_when_the_next_is_kept() -> None:
    store = RecoveryStore()
    for n in range(1000):
        store.persist("ch", float(n), 10, f"pid{n}", NONE, b"s")
    assert store.kept_sessions("ch") == 11  # kept at 989..999: expiring at 999..1009
    store.persist("ch", 995.0, 10, "pid990", NONE, b"again")  # kept again: to the back
    store.persist("ch", 1001.5, 10, "late", NONE, b"s")
    # 989 and 991 expired and are gone; 990, kept again at 995, stays
    assert store.kept_sessions("ch") == 10
    offset = store.append("ch", 1001.5, 10, NONE, NONE, b"x")
    assert store.restore("ch", 1002.0, "pid990", offset).session == b"again"
    assert store.restore("ch", 1002.0, "pid989", offset).session is None
    assert store.kept_sessions("other") == 0


def test_the_log_size_is_checked() -> None:
    with pytest.raises(ValueError, match="recovery_log_size must be at least 1 broadcast, got 0"):
        RecoveryStore(max_len=0)
