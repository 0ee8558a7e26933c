"""The names this module had before the Redis adapter became a package, kept for the code that
imports them from here: the connections are now :mod:`aiosio.adapters.redis.link`, the encodings
:mod:`aiosio.adapters.redis.codec`."""

from __future__ import annotations

from aiosio.adapters.redis.codec import decode, encode_json, encode_msgpack
from aiosio.adapters.redis.link import Link, RedisHealth, RedisLink, connection_lost

__all__ = [
    "Link",
    "RedisHealth",
    "RedisLink",
    "connection_lost",
    "decode",
    "encode_json",
    "encode_msgpack",
]
