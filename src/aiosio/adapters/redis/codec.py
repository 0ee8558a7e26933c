"""Bytes to values and back, as ``@socket.io/redis-adapter`` writes and reads them.

The Node adapter writes msgpack (``notepack.io``) or JSON (``JSON.stringify``) and tells them apart
by the first byte: ``{`` is JSON. Nothing here knows the shape of a message (that is
:mod:`~aiosio.adapters.redis.messages`); nothing is ever unpickled, and msgpack extension types
become plain data (a Date, what a Node server would send its clients: its ISO text).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import msgpack

from aiosio.protocol.packing import PackerPool

__all__ = ["decode", "encode_json", "encode_msgpack"]


def _ext_hook(code: int, data: bytes) -> Any:
    return [code, data]


# How notepack.io writes a JavaScript Date: the msgpack timestamp extension (type -1) in its
# 32-, 64- or 96-bit form. msgpack decodes it itself (``ext_hook`` never sees it), as a
# ``Timestamp``; a message whose bytes hold none of these is never walked.
_TIMESTAMP_MARKERS = (b"\xd6\xff", b"\xd7\xff", b"\xc7\x0c\xff")


def _js_date(ts: msgpack.Timestamp) -> str:
    """A Date as a Node server sends it to its clients (``JSON.stringify``:
    ``2024-01-15T12:34:56.789Z``)."""
    try:
        moment: datetime = ts.to_datetime()
    except (OverflowError, ValueError, OSError) as exc:
        raise ValueError(f"a date out of range: {ts!r}") from exc
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dates_as_text(value: Any) -> Any:
    """``value`` with every ``Timestamp`` replaced by its :func:`_js_date` (in place: the
    containers are fresh from the decoder; iterative: as deep as msgpack nests)."""
    if isinstance(value, msgpack.Timestamp):
        return _js_date(value)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            pairs: Any = enumerate(item)
        elif isinstance(item, dict):
            pairs = item.items()
        else:
            continue
        for key, child in list(pairs):
            if isinstance(child, msgpack.Timestamp):
                item[key] = _js_date(child)
            elif isinstance(child, list | dict):
                stack.append(child)
    return value


def encode_msgpack(value: Any) -> bytes:
    """msgpack as notepack.io (Node) writes and reads it. A lone surrogate (valid in a
    JavaScript string, not in UTF-8) is written as U+FFFD, as Node's UTF-8 encoder does."""
    try:
        return _PACKERS.pack(value)
    except UnicodeEncodeError:
        return _PACKERS.pack(_well_formed(value))


_PACKERS = PackerPool()


def _well_formed(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(value, list | tuple):
        return [_well_formed(v) for v in value]
    if isinstance(value, dict):
        return {_well_formed(k): _well_formed(v) for k, v in value.items()}
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        # What JSON.stringify makes of a Node Buffer.
        return {"type": "Buffer", "data": list(bytes(value))}
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_json(value: Any) -> bytes:
    """JSON as ``JSON.stringify`` writes it; a lone surrogate is escaped (``\\ud800``)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=_json_default)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(
            value, separators=(",", ":"), ensure_ascii=True, default=_json_default
        ).encode()


def decode(data: bytes, max_size: int) -> Any:
    """JSON when the first byte is ``{`` (what the Node adapter does), else msgpack. Raises
    ValueError for anything malformed or over ``max_size`` bytes."""
    if len(data) > max_size:
        raise ValueError(f"message of {len(data)} bytes exceeds max_message_size={max_size}")
    if data[:1] == b"{":
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise ValueError("JSON message nested too deeply") from exc
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook)
    except Exception as exc:  # msgpack raises several types for malformed input
        raise ValueError(f"invalid msgpack message: {exc}") from exc
    if any(marker in data for marker in _TIMESTAMP_MARKERS):
        value = _dates_as_text(value)
    return value
