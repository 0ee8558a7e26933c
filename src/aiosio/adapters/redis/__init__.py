"""The Redis adapter: ``aiosio.Server(adapter=RedisAdapter("redis://127.0.0.1:6379"))``.

One cluster with Node socket.io servers on ``@socket.io/redis-adapter`` 8.x, classic or sharded.
The modules of this package, from the bytes up:

* :mod:`.codec`: bytes to values and back (msgpack as ``notepack.io``, JSON as
  ``JSON.stringify``);
* :mod:`.messages`: what both protocols share (the message types they write alike among it),
  and the errors of the decoders;
* :mod:`.classic_messages`, :mod:`.sharded_messages`: the message types of one protocol only,
  the decoder that validates, the encoder that writes Node's bytes around a message's fields;
* :mod:`.link`: the connections to Redis (reconnection, publish retry, health check);
* :mod:`.namespace`, :mod:`.classic_adapter`, :mod:`.sharded_adapter`: the namespace adapters;
* :mod:`.adapter`: :class:`RedisAdapter`, the factory a server is given.
"""

from __future__ import annotations

from aiosio.adapters.redis.adapter import RedisAdapter
from aiosio.adapters.redis.link import Link
from aiosio.adapters.redis.link import RedisHealth
from aiosio.adapters.redis.link import RedisLink
from aiosio.server.remote import RemoteSocket

__all__ = ["Link", "RedisAdapter", "RedisHealth", "RedisLink", "RemoteSocket"]
