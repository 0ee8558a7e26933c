"""Sockets and times as the Admin UI reads them (the reference's ``serialize``), and the
``socket.data`` that tells the admin when the application changes it (the reference wraps it in
a ``Proxy``)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import UTC
from datetime import datetime
from typing import Any

__all__ = ["ADMIN_KEY", "ObservedData", "js_now", "plain", "serialize_data", "serialize_socket"]

# Where the admin keeps what it knows of a socket, inside ``socket.data`` as the reference does,
# so that another server's admin reads it from ``fetch_sockets`` too.
ADMIN_KEY = "_admin"


def js_now() -> str:
    """``new Date()`` as ``JSON.stringify`` writes it: ``2024-01-15T12:34:56.789Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ObservedData(dict[str, Any]):
    """A ``dict`` that calls ``on_change()`` after each assignment to one of its keys: the
    reference's ``Proxy`` ``set`` trap, so ``socket.data["user"] = ...`` shows up in the UI. A
    ``dict`` assigned is observed the same way, one level down, as the reference's proxy of it:
    ``socket.data["user"]["name"] = ...`` shows up too, not a change deeper in it. Deleting a
    key is not an assignment (the reference does not trap it either)."""

    __slots__ = ("on_change",)

    def __init__(
        self, on_change: Callable[[], None], initial: Mapping[str, Any] | None = None
    ) -> None:
        """``initial`` is stored as it is, without a call to ``on_change``."""
        super().__init__(initial or {})
        self.on_change = on_change

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, self._observed(value))
        self.on_change()

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def _observed(self, value: Any) -> Any:
        if not isinstance(value, dict) or isinstance(value, ObservedData):
            return value
        return ObservedData(self.on_change, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy (pickle, copy.deepcopy) is a plain dict: the callback stays with the socket.
        return (dict, (plain(self),))


def plain(value: Any) -> Any:
    """``value`` with every ``dict`` subclass made a ``dict`` (what the encoders expect)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def serialize_data(data: Any) -> Any:
    """``socket.data`` without the admin's own key."""
    if isinstance(data, Mapping):
        return {key: plain(value) for key, value in data.items() if key != ADMIN_KEY}
    return plain(data) if data is not None else {}


def _field(obj: Any, name: str) -> Any:
    """A field of a handshake: an attribute of a local socket's, a key of a remote one's."""
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def serialize_socket(socket: Any, nsp: str, rooms: Iterable[str]) -> dict[str, Any]:
    """A socket (local, or of another server from ``fetch_sockets``) in the UI's shape; what
    the admin does not know (``clientId``, ``transport`` of a socket that connected before
    :func:`~aiosio.admin.instrument`) is left out, as ``JSON.stringify`` leaves ``undefined``."""
    data = socket.data
    admin = data.get(ADMIN_KEY) if isinstance(data, Mapping) else None
    handshake = socket.handshake
    headers = _field(handshake, "headers") or {}
    serialized: dict[str, Any] = {"id": socket.id}
    if isinstance(admin, Mapping):
        for key in ("clientId", "transport"):
            if admin.get(key) is not None:
                serialized[key] = admin[key]
    serialized["nsp"] = nsp
    serialized["data"] = serialize_data(data)
    serialized["handshake"] = {
        "address": headers.get("cf-connecting-ip")
        or headers.get("x-forwarded-for")
        or _field(handshake, "address"),
        "headers": headers,
        "query": _field(handshake, "query"),
        "issued": _field(handshake, "issued"),
        "secure": _field(handshake, "secure"),
        "time": _field(handshake, "time"),
        "url": _field(handshake, "url"),
        "xdomain": _field(handshake, "xdomain"),
    }
    serialized["rooms"] = list(rooms)
    return serialized
