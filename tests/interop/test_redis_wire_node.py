"""The golden messages of ``tests/core/test_redis_messages.py`` are what the Node packages write:
``tests/js/redis_wire.mjs`` runs ``@socket.io/redis-adapter`` 8.3 (classic and sharded) and
``@socket.io/redis-emitter`` 5.1 on recording clients and prints every message they publish;
``tests/js/redis_wire.golden.jsonl`` must be that output, byte for byte. After an upgrade of the
npm packages, a difference here shows what changed on the wire."""

from __future__ import annotations

import json

import pytest

from conftest import JS_DIR
from conftest import run_node

pytestmark = pytest.mark.interop


async def test_golden_messages_are_what_node_publishes() -> None:
    printed = await run_node("redis_wire.mjs", timeout=60)
    golden = [
        json.loads(line)
        for line in (JS_DIR / "redis_wire.golden.jsonl").read_text().splitlines()
        if line
    ]
    assert [entry["name"] for entry in printed] == [entry["name"] for entry in golden]
    for entry, expected in zip(printed, golden, strict=True):
        assert entry == expected, entry["name"]
