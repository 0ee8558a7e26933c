"""OncePer: a warning said once per reason (an origin without CORS, a server-side event run by a
client-event handler), and never more reasons kept than the limit, whatever a peer sends."""

from __future__ import annotations

from aiosio._once import OncePer


def test_each_reason_is_reported_the_first_time_only() -> None:
    once = OncePer()
    assert [once.first(r) for r in ("a", "b", "a", "b", "c")] == [True, True, False, False, True]


def test_past_the_limit_new_reasons_are_not_reported() -> None:
    once = OncePer(limit=2)
    assert [once.first(r) for r in ("a", "b", "c", "a", "d")] == [True, True, False, False, False]


def test_unlimited_keeps_reporting_new_reasons() -> None:
    once = OncePer()
    assert all(once.first(i) for i in range(10_000))
