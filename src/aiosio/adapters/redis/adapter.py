"""``RedisAdapter``: scale out over Redis, in one cluster with Node socket.io servers.

Wire-compatible with ``@socket.io/redis-adapter`` 8.x in both of its modes:

* classic pub/sub (``createAdapter``): broadcasts as msgpack ``[uid, packet, opts]`` on
  ``<key>#<nsp>#`` (``<key>#<nsp>#<room>#`` for a single room), requests and responses on
  ``<key>-request#<nsp>#`` / ``<key>-response#<nsp>#[<uid>#]``, JSON or msgpack per type
  (:mod:`~aiosio.adapters.redis.classic_messages`, :mod:`~aiosio.adapters.redis.classic_adapter`);
* sharded pub/sub (``createShardedAdapter``, Redis 7 ``SPUBLISH``/``SSUBSCRIBE``): cluster
  messages ``{type, data, uid, nsp}`` on ``<key>#<nsp>#``, dynamic room channels, responses on
  ``<key>#<nsp>#<uid>#`` (:mod:`~aiosio.adapters.redis.sharded_messages`,
  :mod:`~aiosio.adapters.redis.sharded_adapter`).

Messages from Redis are size-capped and decoded into one frozen dataclass per message type
before use; nothing is ever unpickled. What another server asks to deliver is checked by the
rules a client's packets are decoded with (:func:`~aiosio.protocol.socketio.check_event`: no
reserved or non-string event name, no forged attachment placeholder, bounded depth and
attachments) before it reaches any socket or handler; a message that breaks one is dropped and
logged with the reason (:mod:`~aiosio.adapters.redis.messages`). The connections to Redis are
:mod:`~aiosio.adapters.redis.link`'s.
Connection state recovery is not shared across a Redis cluster (neither is it in Node).
"""

from __future__ import annotations

from typing import Any

from aiosio.adapters.cluster import ClusterAdapterFactory
from aiosio.adapters.outbox import Retries
from aiosio.adapters.redis.classic_adapter import ClassicAdapter
from aiosio.adapters.redis.link import Link
from aiosio.adapters.redis.link import RedisHealth
from aiosio.adapters.redis.link import RedisLink
from aiosio.adapters.redis.namespace import RedisNamespaceAdapter
from aiosio.adapters.redis.sharded_adapter import ShardedAdapter
from aiosio.protocol.socketio import Limits
from aiosio.server.adapter import NamespaceView

__all__ = ["RedisAdapter", "redis_client"]


def redis_client(client: Any, *, feature: str) -> Any:
    """``client``, or the ``redis.asyncio.Redis`` of its URL when it is one (``feature`` names
    what needs the ``redis`` extra when it is missing)."""
    if not isinstance(client, str):
        return client
    from aiosio._extras import import_extra

    redis_asyncio = import_extra("redis.asyncio", extra="redis", feature=feature)
    return redis_asyncio.Redis.from_url(client)


class RedisAdapter(ClusterAdapterFactory[RedisNamespaceAdapter]):
    """The adapter factory: ``aiosio.Server(adapter=RedisAdapter("redis://127.0.0.1:6379"))``.

    ``client`` may be a URL or a ``redis.asyncio.Redis``. ``sharded=True`` speaks the sharded
    adapter's protocol (Redis 7); ``subscription_mode`` is its ``"static"``, ``"dynamic"`` or
    ``"dynamic-private"``. ``health`` tells whether the link is up, how often it reconnected, the
    last error and how many messages could not be published.

    Broadcasts are published in order by one task; one whose publish fails because the
    connection was lost (``CLIENT KILL``, Redis's idle ``timeout``, a restart) is retried until
    ``publish_retry_timeout`` seconds after it was sent, and at most ``max_publish_queue`` wait;
    past either bound a broadcast is dropped, counted in ``health`` and logged. The subscriber
    PINGs Redis after ``health_check_interval`` seconds without a message and reconnects when no
    answer comes within 5 s (a quarter of the interval if that is shorter): a stalled or half-open
    connection is replaced.

    ``limits`` are the bounds applied to what other servers ask this one to deliver, as to what
    clients send (give it the server's ``limits`` if you changed them). A broadcast past them
    still reaches the clients of the server that sends it; the other aiosio servers drop it, and
    the sender logs a warning once per reason.
    """

    def __init__(
        self,
        client: Any = "redis://127.0.0.1:6379",
        *,
        key: str = "socket.io",
        sharded: bool = False,
        subscription_mode: str = "dynamic",
        requests_timeout: float = 5.0,
        publish_on_specific_response_channel: bool = False,
        max_message_size: int = 10_000_000,
        publish_retry_timeout: float = 2.0,
        max_publish_queue: int = 10_000,
        health_check_interval: float = 30.0,
        limits: Limits | None = None,
        link: Link | None = None,
    ) -> None:
        if subscription_mode not in ("static", "dynamic", "dynamic-private"):
            raise ValueError(
                "subscription_mode must be 'static', 'dynamic' or 'dynamic-private', got "
                f"{subscription_mode!r}"
            )
        super().__init__(max_message_size=max_message_size, limits=limits)
        if link is not None:
            self.link: Link = link  # another transport with the same interface (--workers)
        else:
            self.link = RedisLink(
                redis_client(client, feature="RedisAdapter(url)"),
                retries=Retries(max_publish_queue, publish_retry_timeout),
                health_check_interval=health_check_interval,
            )
        self.key = key
        self.sharded = sharded
        self.subscription_mode = subscription_mode
        self.requests_timeout = requests_timeout
        self.publish_on_specific_response_channel = publish_on_specific_response_channel

    def _namespace_adapter(self, nsp: NamespaceView) -> RedisNamespaceAdapter:
        cls = ShardedAdapter if self.sharded else ClassicAdapter
        return cls(nsp, self)

    @property
    def health(self) -> RedisHealth:
        return self.link.health
