"""Text as JavaScript peers write it: the UTF-8 of a string that may hold surrogates.

A Python ``str`` can hold lone surrogates (from ``"\\ud800"`` in JSON, or made by hand), which
``str.encode("utf-8")`` refuses; a JavaScript string can too, and Node writes each as U+FFFD.
Every place that turns text into bytes for the wire (polling bodies, WebSocket text frames)
goes through :func:`encode_text`, so a surrogate costs a replacement character, as with a Node
server, instead of an exception in the middle of a write.
"""

from __future__ import annotations

import codecs

__all__ = ["JS_UTF8", "encode_text", "js_text"]

JS_UTF8 = "aiosio.js-utf8"
"""The codec error handler that writes surrogates as JavaScript does (see :func:`encode_text`)."""


def _js_utf8(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text, i, end = error.object, error.start, error.end
    out = bytearray()
    while i < end:
        code = ord(text[i])
        low = ord(text[i + 1]) if i + 1 < len(text) else 0
        if 0xD800 <= code < 0xDC00 and 0xDC00 <= low < 0xE000:
            out += chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)).encode()
            i += 2
        else:
            out += b"\xef\xbf\xbd"  # U+FFFD REPLACEMENT CHARACTER
            i += 1
    return bytes(out), i


codecs.register_error(JS_UTF8, _js_utf8)


def encode_text(text: str) -> bytes:
    """``text`` in UTF-8 as JavaScript writes it (``Buffer.from``, ``TextEncoder``): a lone
    surrogate, which Python refuses to encode, becomes U+FFFD, and a high surrogate followed by
    a low one the character they stand for. Costs what ``encode("utf-8")`` costs on every other
    text: the handler runs only at a surrogate."""
    return text.encode("utf-8", JS_UTF8)


def js_text(text: str) -> str:
    """``text`` as a JavaScript peer receives it (surrogates resolved as :func:`encode_text`
    writes them): for an ASGI server, which encodes the text itself."""
    return encode_text(text).decode("utf-8")
