"""What the Redis namespace adapters share (classic, sharded, and the Redis Streams one):
their factory's settings, the link, the log; the rest is every cluster adapter's
(:mod:`aiosio.adapters.cluster`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol
from typing import TypeVar

from aiosio.adapters.cluster import ClusterNamespaceAdapter
from aiosio.adapters.cluster import ServerRequest
from aiosio.adapters.redis.link import Handler
from aiosio.adapters.redis.link import Link
from aiosio.protocol.socketio import Limits
from aiosio.server.adapter import NamespaceView

__all__ = ["AdapterSettings", "RedisNamespaceAdapter", "RedisSettings"]

M = TypeVar("M")


class RedisSettings(Protocol):
    """What every Redis namespace adapter reads of the factory that made it."""

    link: Link
    max_message_size: int
    limits: Limits


class AdapterSettings(RedisSettings, Protocol):
    """What the classic and sharded namespace adapters read of the
    :class:`~aiosio.adapters.redis.RedisAdapter` that made them (their ``factory``)."""

    key: str
    subscription_mode: str
    requests_timeout: float
    publish_on_specific_response_channel: bool


class RedisNamespaceAdapter(ClusterNamespaceAdapter):
    """A namespace adapter over Redis: the link's subscriptions, the server count from Redis."""

    log = logging.getLogger("aiosio.adapter.redis")
    factory_name = "RedisAdapter"

    def __init__(self, nsp: NamespaceView, factory: RedisSettings) -> None:
        super().__init__(nsp, factory)
        self.factory = factory
        self.link: Link = factory.link

    def _subscriber(self, decode: Callable[[bytes], M], handle: Callable[[M], None]) -> Handler:
        """A subscription's handler: the messages :meth:`_receive` keeps go to ``handle``."""

        def on_message(channel: str, data: bytes) -> None:
            message = self._receive(channel, decode, data)
            if message is not None:
                handle(message)

        return on_message

    def _unanswered(self, request: ServerRequest) -> str:
        return "Redis counts the servers, it cannot name them"
