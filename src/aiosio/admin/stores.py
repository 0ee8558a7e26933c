"""Where the admin keeps the session ids it hands out after a login, so that the UI reconnects
without the password (the reference's ``store`` option): in this process (``InMemoryStore``, the
default), or in Redis (``RedisStore``), shared by every server of a cluster, Node servers with
the reference's ``RedisStore`` included (same keys, ``<prefix>#<session id>``)."""

from __future__ import annotations

import logging
from typing import Any
from typing import Protocol

from aiosio._extras import import_extra

__all__ = ["InMemoryStore", "RedisStore", "SessionStore"]

logger = logging.getLogger("aiosio.admin")


class SessionStore(Protocol):
    """What :func:`~aiosio.admin.instrument` asks of a ``store``."""

    async def exists(self, session_id: str) -> bool:
        """Whether ``session_id`` was saved (and has not expired)."""

    async def save(self, session_id: str) -> None:
        """Remember ``session_id``."""


class InMemoryStore:
    """The sessions of this process only (a restart, or another server, asks for the password
    again). Holds one short string per login, for the life of the process, as the reference."""

    def __init__(self) -> None:
        self._sessions: set[str] = set()

    async def exists(self, session_id: str) -> bool:
        return session_id in self._sessions

    async def save(self, session_id: str) -> None:
        self._sessions.add(session_id)


class RedisStore:
    """The sessions in Redis, each for ``session_duration`` seconds (a day), under the key
    ``<prefix>#<session id>``: as the reference's ``RedisStore``, so that every server of the
    cluster, aiosio or Node, knows a session any of them handed out.

    ``client`` is a URL or a ``redis.asyncio.Redis`` (``pip install "aiosio[redis]"``). When
    Redis cannot be reached, a login with the password still succeeds (its session is not
    kept) and a login with a session id is refused (the UI asks for the password); both are
    logged with Redis's error.
    """

    def __init__(
        self,
        client: Any = "redis://127.0.0.1:6379",
        *,
        prefix: str = "socket.io-admin",
        session_duration: int = 86_400,
    ) -> None:
        if not isinstance(session_duration, int) or session_duration < 1:
            raise ValueError(
                f"session_duration is a number of seconds, at least 1, got {session_duration!r}"
            )
        if isinstance(client, str):
            redis_asyncio = import_extra(
                "redis.asyncio", extra="redis", feature="aiosio.admin.RedisStore(url)"
            )
            client = redis_asyncio.Redis.from_url(client)
        self.client = client
        self.prefix = prefix
        self.session_duration = session_duration

    def key(self, session_id: str) -> str:
        return f"{self.prefix}#{session_id}"

    async def exists(self, session_id: str) -> bool:
        try:
            return bool(await self.client.exists(self.key(session_id)))
        except Exception as exc:  # noqa: BLE001 - redis raises several types; logged, refused
            logger.warning(
                "the admin could not check a session id in redis (%s: %s): the UI is asked for "
                "the password; check that redis is reachable",
                type(exc).__name__,
                exc,
            )
            return False

    async def save(self, session_id: str) -> None:
        try:
            await self.client.set(self.key(session_id), "true", ex=self.session_duration)
        except Exception as exc:  # noqa: BLE001 - redis raises several types; logged, kept going
            logger.warning(
                "the admin could not save a session in redis (%s: %s): the login succeeds, but "
                "the UI will be asked for the password when it reconnects; check that redis is "
                "reachable",
                type(exc).__name__,
                exc,
            )
