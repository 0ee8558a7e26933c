"""``RedisAdapter(requests_timeout=...)`` at work: a cluster request given no ``.timeout()`` of
its own ends at it, with what arrived, when a member is counted but never answers (docs/limits.md).
Needs Redis on 127.0.0.1:6379 (scripts/services.sh), as tests/interop/test_redis_cluster.py."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
import redis.asyncio as redis_asyncio
from cluster_harness import REDIS_URL
from cluster_harness import skip_unless_redis

import aiosio
from aiosio.adapters.redis import RedisAdapter

pytestmark = pytest.mark.interop

skip_unless_redis()


async def test_requests_timeout_ends_requests_to_a_member_that_never_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="aiosio.adapter.redis")
    key = f"t{uuid.uuid4().hex[:12]}"
    factory = RedisAdapter(REDIS_URL, key=key, requests_timeout=0.5)
    sio = aiosio.Server(adapter=factory)
    raw = redis_asyncio.Redis.from_url(REDIS_URL)
    mute = raw.pubsub()
    try:
        assert await factory.ready()
        await mute.subscribe(f"{key}-request#/#")  # counted as a server, never answers
        async with asyncio.timeout(5):
            while await sio.sockets.adapter.server_count() != 2:  # type: ignore[misc]
                await asyncio.sleep(0.05)
        # each request waited requests_timeout, as its log line says (no clock read here)
        with pytest.raises(
            aiosio.FetchSocketsTimeout, match=r"requests_timeout=\.\.\.\) \(now 0.5s\)"
        ):
            await asyncio.wait_for(sio.fetch_sockets(), 30)
        sockets = await asyncio.wait_for(sio.fetch_sockets(partial=True), 30)
        assert sockets == []  # what arrived: this server's own (none)
        with pytest.raises(aiosio.AckTimeout) as info:
            await asyncio.wait_for(sio.server_side_emit_with_ack("sse", 1), 30)
        assert info.value.replies == []
        messages = [r.getMessage() for r in caplog.records]
        assert messages.count("only 0 of 1 servers answered within 0.5s") == 3, messages
    finally:
        await mute.aclose()
        await raw.aclose()
        await factory.close()
