"""Option values the server and the client read the same way."""

from __future__ import annotations

__all__ = ["DEFAULT_COMPRESSION_THRESHOLD", "compression_threshold", "require_seconds"]

DEFAULT_COMPRESSION_THRESHOLD = 1024
"""Bytes from which a body or a message is compressed when compression is simply on (as the
reference's ``threshold`` default for ``perMessageDeflate`` and ``httpCompression``)."""


def compression_threshold(option: str, value: bool | int) -> int | None:
    """The threshold in bytes that ``option=value`` asks for, ``None`` when compression is off:
    ``True`` means from :data:`DEFAULT_COMPRESSION_THRESHOLD` bytes, ``False`` off, an integer
    >= 0 that many bytes."""
    if value is True:
        return DEFAULT_COMPRESSION_THRESHOLD
    if value is False:
        return None
    if isinstance(value, int) and value >= 0:
        return value
    raise ValueError(
        f"{option} must be True (from {DEFAULT_COMPRESSION_THRESHOLD} bytes on), False (off) or a "
        f"threshold in bytes (>= 0), got {value!r}"
    )


def require_seconds(**durations: float) -> None:
    """Check that every duration given by name is more than 0 seconds.

    :raises ValueError: naming the first that is not, and its value."""
    for name, value in durations.items():
        if not value > 0:
            raise ValueError(f"{name} must be more than 0 seconds, got {value}")
