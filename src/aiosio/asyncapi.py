"""An AsyncAPI 3.0 document of a server: its namespaces, the events each direction, their payload
schemas, acknowledgements, and where and how clients connect (``aiosio asyncapi module:sio``).

What a handler receives is read from its annotations, the way :mod:`aiosio.typed` reads them:
each namespace is a channel (its address the namespace's name); each client event a handler
takes is a ``receive`` operation whose message payload is the event's arguments (an array, as
Socket.IO sends them: ``socket.emit("chat", msg)`` is ``["chat", msg]`` on the wire, the name
being the message's name); a handler's return value is the operation's ``reply`` (the
acknowledgement). The events the server sends are not visible in its handlers: give them as the
``Protocol`` of :func:`aiosio.typed.emitter` (``emits=ServerToClient``), whose methods become
``send`` operations (an ``async`` method, one that waits for the client's acknowledgement, a
reply).

Schemas come from pydantic (the ``typed`` extra) for every annotation it knows: models,
dataclasses, TypedDicts, and plain types (``str``, ``list[int]``); nested models are in
``components.schemas``. An argument without an annotation, or without pydantic, has the empty
schema (any JSON value). Dynamic namespaces (a regex or a callable) are channels whose address is
a parameter, described by the matcher.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from collections.abc import Iterable
from typing import Any
from typing import get_type_hints
from urllib.parse import urlsplit

from aiosio._extras import import_extra
from aiosio.server.namespace import DynamicNamespace
from aiosio.server.namespace import Namespace
from aiosio.server.server import Server

__all__ = ["asyncapi_document"]

logger = logging.getLogger("aiosio.asyncapi")

VERSION = "3.0.0"
# The schemas of an event's arguments, and of its acknowledgement's (None: none asked for).
Schemas = tuple[list[dict[str, Any]], dict[str, Any] | None]
_LIFECYCLE = frozenset({"connect", "connection", "disconnecting", "disconnect"})


def asyncapi_document(
    sio: Server,
    *,
    title: str = "Socket.IO API",
    version: str = "1.0.0",
    url: str = "http://localhost:3000",
    emits: type | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``sio`` as a JSON-ready dict (see the module's docstring).
    ``url`` is where clients connect (``servers``); ``emits`` the events the server sends, as
    the ``Protocol`` given to :func:`aiosio.typed.emitter`."""
    builder = _Builder()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    sources: list[tuple[str, str, Namespace | DynamicNamespace]] = [
        (name, name, nsp) for name, nsp in sorted(sio.namespaces.items())
    ]
    for index, family in enumerate(sio.dynamic_namespaces):
        sources.append((f"dynamic{index + 1}", "{namespace}", family))
    for key, address, nsp in sources:
        channel_id = _identifier(key)
        messages: dict[str, Any] = {}
        for event, callback in sorted(nsp.handlers.events.items()):
            if event in _LIFECYCLE:
                continue
            fn = inspect.unwrap(callback.fn)
            args, reply = builder.handler(fn)
            _operation(operations, channel_id, messages, "receive", event, args, reply, "client")
        if emits is not None:
            for event, method in _declared(emits):
                args, reply = builder.declared(method)
                _operation(operations, channel_id, messages, "send", event, args, reply, "server")
        channel: dict[str, Any] = {"address": address, "messages": messages}
        if isinstance(nsp, DynamicNamespace):
            channel["parameters"] = {"namespace": {"description": _matcher(nsp)}}
        channels[channel_id] = channel
    document: dict[str, Any] = {
        "asyncapi": VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": description
            or "Socket.IO 5 over Engine.IO 4 (socket.io 4.x clients). A channel is a namespace; "
            "a message's payload is the event's arguments, its name the event's name.",
        },
        "servers": {"default": _server(sio, url)},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
    }
    if builder.schemas:
        document["components"] = {"schemas": dict(sorted(builder.schemas.items()))}
    if builder.missing is not None:
        logger.warning("no payload schemas in the AsyncAPI document: %s", builder.missing)
    return document


def _operation(
    operations: dict[str, Any],
    channel_id: str,
    messages: dict[str, Any],
    action: str,
    event: str,
    args: list[dict[str, Any]],
    reply: dict[str, Any] | None,
    sender: str,
) -> None:
    key = _identifier(f"{action}_{event}")
    messages[key] = {
        "name": event,
        "title": event,
        "summary": f"the {event!r} event, sent by the {sender}",
        "payload": {"type": "array", "items": args, "minItems": len(args)} if args else {},
    }
    ref = {"$ref": f"#/channels/{channel_id}/messages/{key}"}
    operation: dict[str, Any] = {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel_id}"},
        "messages": [ref],
    }
    if reply is not None:
        ack_key = f"{key}_ack"
        messages[ack_key] = {
            "name": f"{event} (acknowledgement)",
            "summary": f"the acknowledgement of {event!r}: the arguments of the answer",
            "payload": {"type": "array", "items": [reply]},
        }
        operation["reply"] = {
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{ack_key}"}],
        }
    operations[_identifier(f"{channel_id}_{key}")] = operation


class _Builder:
    """JSON schemas of annotations, nested models gathered in ``schemas``."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}
        self.missing: str | None = None  # why there are no schemas (pydantic not installed)
        self._pydantic: Any = None
        self._tried = False

    def handler(self, fn: Callable[..., Any]) -> Schemas:
        """A server handler ``(socket, *args)``: its arguments' schemas and its reply's."""
        return self._signature(fn, skip=1)

    def declared(
        self, fn: Callable[..., Any]
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """A method of an ``emits`` Protocol ``(self, *args)``; a reply only when ``async``."""
        args, reply = self._signature(fn, skip=1)
        return args, reply if inspect.iscoroutinefunction(fn) else None

    def _signature(self, fn: Callable[..., Any], skip: int) -> Schemas:
        try:
            hints = get_type_hints(fn, include_extras=True)
        except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: any value
            hints = {}
        parameters = [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ][skip:]
        args = [self.schema(hints.get(p.name)) for p in parameters]
        returned = hints.get("return", inspect.Signature.empty)
        reply = None
        if returned is not inspect.Signature.empty and returned is not type(None):
            reply = self.schema(returned)
        elif "return" not in hints:
            reply = {}  # unannotated: it may answer with anything
        return args, reply

    def schema(self, tp: Any) -> dict[str, Any]:
        if tp is None or tp is Any:
            return {}
        pydantic = self._load()
        if pydantic is None:
            return {}
        try:
            schema: dict[str, Any] = pydantic.TypeAdapter(tp).json_schema(
                ref_template="#/components/schemas/{model}"
            )
        except Exception:  # noqa: BLE001 - a type pydantic cannot describe: any value
            return {}
        self.schemas.update(schema.pop("$defs", {}))
        return schema

    def _load(self) -> Any:
        if not self._tried:
            self._tried = True
            try:
                self._pydantic = import_extra(
                    "pydantic", extra="typed", feature="the payload schemas of aiosio asyncapi"
                )
            except ImportError as exc:
                self._pydantic = None
                self.missing = str(exc)
        return self._pydantic


def _declared(events: type) -> Iterable[tuple[str, Callable[..., Any]]]:
    for name, member in sorted(vars(events).items()):
        if not name.startswith("_") and callable(member):
            yield name, member


def _server(sio: Server, url: str) -> dict[str, Any]:
    parts = urlsplit(url if "://" in url else "http://" + url)
    secure = parts.scheme in ("https", "wss")
    transports = ", ".join(sio.engine.transports)
    return {
        "host": parts.netloc or "localhost:3000",
        "protocol": "wss" if secure else "ws",
        "pathname": sio.path,
        "description": f"Engine.IO 4 transports: {transports} (a client starts with the first "
        f"and upgrades); connect with path={sio.path!r}",
    }


def _matcher(family: DynamicNamespace) -> str:
    matcher = family.matcher
    if isinstance(matcher, re.Pattern):
        return f"a namespace name matching {matcher.pattern!r}"
    return f"a namespace name accepted by {getattr(matcher, '__qualname__', repr(matcher))}"


def _identifier(text: str) -> str:
    """A key AsyncAPI accepts (``^[\\w\\d.\\-_]+$``) for a namespace or event name."""
    return re.sub(r"[^\w.\-]", "_", text.strip("/")) or "root"
