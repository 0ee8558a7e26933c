"""Who may connect to the admin namespace: basic authentication with a bcrypt hash, as the
reference (``auth: {type: "basic", username, password}``), and the sessions it hands out so
that the UI reconnects without the password (``auth: {sessionId}``)."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiosio._extras import import_extra
from aiosio.admin.stores import SessionStore
from aiosio.errors import ConnectionRefused
from aiosio.server.socket import Socket

__all__ = ["BasicAuth", "Credentials", "basic_auth_from"]

# The modular crypt format of bcrypt: $2a$ (bcryptjs, what the reference's docs use), $2b$,
# $2y$, two digits of cost, then 53 characters of salt and hash.
_BCRYPT = re.compile(r"\$2[aby]\$\d{2}\$[./A-Za-z0-9]{53}")

# What the reference answers to any failure, and what the UI looks for to ask again.
INVALID_CREDENTIALS = "invalid credentials"

# The longest session id looked up: those handed out (here and by the reference) have 16
# characters; a longer one is refused without a look in the store (a key in Redis).
MAX_SESSION_ID = 64


@dataclass(frozen=True, slots=True)
class BasicAuth:
    """Basic authentication: ``username`` and ``password``, a bcrypt hash of the password (as
    ``bcryptjs.hashSync(password, 10)`` or ``bcrypt.hashpw(password, bcrypt.gensalt())``
    make); never the password itself."""

    username: str
    password: str

    def __post_init__(self) -> None:
        if not isinstance(self.password, str) or _BCRYPT.fullmatch(self.password) is None:
            raise ValueError(
                "the admin password must be a bcrypt hash ('$2b$10$' and 53 characters), not "
                "the password itself: hash it with bcrypt.hashpw(password, bcrypt.gensalt())"
            )


def basic_auth_from(auth: object) -> BasicAuth | None:
    """The ``auth`` option of :func:`~aiosio.admin.instrument`: ``False`` (no authentication),
    a :class:`BasicAuth`, or the reference's ``{"type": "basic", "username", "password"}``.

    :raises TypeError: anything else (``None`` included: as the reference, authentication is
        turned off only explicitly).
    """
    if auth is False:
        return None
    if isinstance(auth, BasicAuth):
        return auth
    if isinstance(auth, Mapping) and auth.get("type") == "basic":
        return BasicAuth(str(auth.get("username")), auth.get("password"))  # type: ignore[arg-type]
    raise TypeError(
        "instrument(auth=...) must be False (no authentication, say it explicitly), "
        "aiosio.admin.BasicAuth(username, bcrypt_hash) or "
        f"{{'type': 'basic', 'username': ..., 'password': bcrypt_hash}}, got {type(auth).__name__}"
    )


class Credentials:
    """The connection middleware of the admin namespace: a session id ``store`` knows, or the
    username and a password that matches the hash (a new session id is then saved and sent as
    ``session``). Refusals carry the reference's error, ``invalid credentials``."""

    def __init__(self, auth: BasicAuth, store: SessionStore) -> None:
        self.auth = auth
        self.store = store
        # Imported here, when basic authentication is configured, never with aiosio.admin:
        # bcrypt is an optional extra (aiosio[admin]).
        self._bcrypt: Any = import_extra("bcrypt", extra="admin", feature="the Admin UI's auth")

    async def __call__(self, socket: Socket) -> None:
        given = socket.handshake.auth
        session = given.get("sessionId")
        if (
            isinstance(session, str)
            and 0 < len(session) <= MAX_SESSION_ID
            and await self.store.exists(session)
        ):
            return
        username, password = given.get("username"), given.get("password")
        if (
            username == self.auth.username
            and isinstance(password, str)
            and await self._matches(password)
        ):
            session = secrets.token_hex(8)
            await self.store.save(session)
            socket.emit("session", session)
            return
        raise ConnectionRefused(INVALID_CREDENTIALS)

    async def _matches(self, password: str) -> bool:
        # bcrypt is slow on purpose (about 0.1 s at cost 10): not on the event loop.
        return bool(
            await asyncio.to_thread(
                self._bcrypt.checkpw, password.encode(), self.auth.password.encode()
            )
        )
