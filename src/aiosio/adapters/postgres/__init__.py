"""The Postgres adapter: ``aiosio.Server(adapter=PostgresAdapter("postgresql://..."))``.

One cluster with Node socket.io servers on ``@socket.io/postgres-adapter`` 0.5, reached by
``@socket.io/postgres-emitter`` too. The modules of this package, from the bytes up:

* :mod:`.messages`: the cluster messages as ``NOTIFY`` payloads and attachment rows;
* :mod:`.link`: the connections to PostgreSQL (listener, publisher, the table's cleanup);
* :mod:`.namespace`: the namespace adapter, with the heartbeat between servers;
* :mod:`.adapter`: :class:`PostgresAdapter`, the factory a server is given.

Needs ``asyncpg`` (``pip install "aiosio[postgres]"``), imported when an adapter is made.
"""

from __future__ import annotations

from aiosio.adapters.postgres.adapter import PostgresAdapter
from aiosio.adapters.postgres.link import PostgresHealth
from aiosio.adapters.postgres.link import PostgresLink

__all__ = ["PostgresAdapter", "PostgresHealth", "PostgresLink"]
