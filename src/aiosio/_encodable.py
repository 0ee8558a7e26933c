"""Which value of an emit, or of a handler's return value, cannot be encoded, said precisely.

Encoding fails in the JSON encoder with a message that names a type but not where it was (``Type
is not JSON serializable: set``), and ``emit("news", a, b, c)`` has many places. Encoding itself
stays as it is (nothing is checked before it on the hot path); when it fails, this module walks
the values again to name the first one that cannot go, with its path and type, and the caller
raises or logs that instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from typing import NoReturn

from aiosio.errors import EncodingError
from aiosio.protocol.socketio import Packet
from aiosio.protocol.socketio import PacketType
from aiosio.protocol.socketio import encode

__all__ = [
    "ENCODE_ERRORS",
    "check_encodable",
    "encoding_error",
    "raise_encoding_error",
    "return_value_error",
]

# What encoding a packet raises for a value it cannot take: TypeError for a type JSON has no
# form for, ValueError for a circular reference, RecursionError for nesting too deep.
ENCODE_ERRORS = (TypeError, ValueError, RecursionError)

_KEY_TYPES = (str, int, float, bool, type(None))
_MAX_DEPTH = 200


def _encodes(value: Any) -> bool:
    try:
        encode(Packet(PacketType.EVENT, "/", [value]))
    except ENCODE_ERRORS:
        return False
    return True


def _locate(value: Any, path: str, seen: set[int], depth: int) -> str:
    """Why ``value``, known not to encode, fails: the innermost failing value and its path."""
    if depth > _MAX_DEPTH:
        return f"{path} is nested too deep"
    if isinstance(value, dict | list | tuple):
        if id(value) in seen:
            return f"{path} contains itself"
        seen.add(id(value))
        items: Any = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(value, dict) and not isinstance(key, _KEY_TYPES):
                return (
                    f"{path} has a key of type {type(key).__name__} (JSON keys are str, int, "
                    "float, bool or None)"
                )
            if not _encodes(item):
                return _locate(item, f"{path}[{key!r}]", seen, depth + 1)
        return f"{path} ({type(value).__name__}) cannot be encoded"
    name = type(value).__name__
    article = "an" if name[:1].lower() in "aeiou" else "a"
    return f"{path} is {article} {name}, which JSON cannot carry"


def encoding_error(
    what: str, values: Sequence[tuple[str, Any]], cause: BaseException
) -> BaseException:
    """The exception to raise when encoding ``values`` (pairs of a path such as ``args[1]`` and
    the value there) for ``what`` (such as ``emit('news')``) failed with ``cause``: an
    :class:`~aiosio.errors.EncodingError` (a TypeError) naming the first value that cannot be
    encoded, or ``cause`` when none is found (it was not about the values)."""
    for path, value in values:
        if not _encodes(value):
            reason = _locate(value, path, set(), 0)
            return EncodingError(
                f"{what}: {reason}; send dict, list, str, int, float, bool, None or bytes "
                "(convert other types first, e.g. a set with list(...))"
            )
    return cause


def raise_encoding_error(what: str, args: Sequence[Any], cause: BaseException) -> NoReturn:
    """Raise :func:`encoding_error`'s answer for the arguments ``args`` of an emit (``args[0]``,
    ``args[1]``, ...), chained to ``cause``."""
    error = encoding_error(what, _args_paths(args), cause)
    if error is cause:
        raise cause
    raise error from cause


def check_encodable(what: str, args: Sequence[Any]) -> None:
    """Raise what :func:`raise_encoding_error` raises if the arguments ``args`` of an emit
    cannot be encoded (for arguments kept to be sent later: the failure must come at the call,
    not when they are sent)."""
    try:
        encode(Packet(PacketType.EVENT, "/", list(args)))
    except ENCODE_ERRORS as exc:
        raise_encoding_error(what, args, exc)


def return_value_error(
    what: str, value: Any, ack_args: Sequence[Any], cause: BaseException
) -> BaseException:
    """:func:`encoding_error` for what a handler returned, ``value``, sent as the ack's
    ``ack_args``: its path is ``return value`` when it went as one argument, ``return
    value[i]`` for each value of a tuple sent as several."""
    if len(ack_args) == 1 and ack_args[0] is value:
        paths = [("return value", value)]
    else:
        paths = [(f"return value[{i}]", item) for i, item in enumerate(ack_args)]
    return encoding_error(what, paths, cause)


def _args_paths(args: Sequence[Any]) -> list[tuple[str, Any]]:
    return [(f"args[{i}]", value) for i, value in enumerate(args)]
