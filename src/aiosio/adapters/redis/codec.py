"""Bytes to values and back, as ``@socket.io/redis-adapter`` writes and reads them.

The Node adapter writes msgpack (``notepack.io``) or JSON (``JSON.stringify``) and tells them apart
by the first byte: ``{`` is JSON. Nothing here knows the shape of a message (that is
:mod:`~aiosio.adapters.redis.messages`); nothing is ever unpickled, and msgpack extension types
become plain data.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgpack

__all__ = ["decode", "encode_json", "encode_msgpack"]


def _ext_hook(code: int, data: bytes) -> Any:
    if code == -1:
        # msgpack timestamp (a JavaScript Date): what a Node server would send its clients.
        ts = msgpack.Timestamp.from_bytes(data)
        seconds = ts.seconds + ts.nanoseconds / 1e9
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + (
            f".{ts.nanoseconds // 1_000_000:03d}Z"
        )
    return [code, data]


def encode_msgpack(value: Any) -> bytes:
    """msgpack as notepack.io (Node) writes and reads it. A lone surrogate (valid in a
    JavaScript string, not in UTF-8) is written as U+FFFD, as Node's UTF-8 encoder does."""
    try:
        return msgpack.packb(value, use_bin_type=True)  # type: ignore[no-any-return]
    except UnicodeEncodeError:
        return msgpack.packb(_well_formed(value), use_bin_type=True)  # type: ignore[no-any-return]


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
        return msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=_ext_hook)
    except Exception as exc:  # msgpack raises several types for malformed input
        raise ValueError(f"invalid msgpack message: {exc}") from exc
