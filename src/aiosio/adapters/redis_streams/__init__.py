"""The Redis Streams adapter: ``aiosio.Server(adapter=RedisStreamsAdapter("redis://..."))``.

One cluster with Node socket.io servers on ``@socket.io/redis-streams-adapter`` 0.3; nothing a
server broadcasts is lost while Redis restarts or the network is cut (within the bounds of
:class:`RedisStreamsAdapter`), and a client recovers its state on any server of the cluster.
The modules, from the bytes up:

* :mod:`.messages`: the ``ClusterAdapter`` messages of :mod:`aiosio.adapters.redis` as stream
  entries and as pub/sub messages;
* :mod:`.link`: the stream readers, the ordered ``XADD`` queue and the health;
* :mod:`.adapter`: :class:`RedisStreamsAdapter`, the factory a server is given, and the
  namespace adapter.
"""

from __future__ import annotations

from aiosio.adapters.redis_streams.adapter import RedisStreamsAdapter
from aiosio.adapters.redis_streams.adapter import stream_of
from aiosio.adapters.redis_streams.link import StreamsHealth

__all__ = ["RedisStreamsAdapter", "StreamsHealth", "stream_of"]
