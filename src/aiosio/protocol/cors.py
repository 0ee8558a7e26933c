"""Cross-origin resource sharing, header for header as the reference server does it.

The JavaScript server hands CORS to the npm ``cors`` package (expressjs/cors 2.8, ``lib/index.js``).
This module reproduces the headers that package writes, in its order and with its header-name case,
for every kind of ``origin`` option it accepts. It is sans-I/O: it decides and formats, the engine
server reads the request and writes the response.

Two things go beyond the reference, both stated where they happen:

* Enforcement. The ``cors`` package only writes headers and leaves the verdict to the browser, which
  does not protect a WebSocket (browsers apply no CORS to it, so any page may open one and ride on
  the user's cookies: cross-site WebSocket hijacking). :meth:`Cors.refuses` tells the server to
  refuse a polling request or an upgrade whose ``Origin`` is not allowed. Requests without an
  ``Origin`` header (non-browser clients) are never refused here.
* Configuration mistakes that the reference accepts silently raise at construction: a wildcard with
  credentials, and ``'*'`` inside a list (the reference compares it literally, so it matches no
  origin at all).

How the I/O layer uses it::

    origin = headers.get("origin")
    allowed = await cors.call_origin(origin)  # match_origin(origin) if not needs_callback()
    if cors.refuses(origin, allowed):
        log(cors.refusal_reason(origin))  # for the log only: it reveals the allow list
        ...  # answer 403 and end the response
    elif is_preflight(method, headers):
        ...  # PREFLIGHT_STATUS, cors.preflight_headers(origin, allowed, acrh) + Content-Length: 0
    else:
        ...  # the engine response, plus cors.response_headers(origin, allowed)
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from typing import TypeAlias

__all__ = [
    "PREFLIGHT_STATUS",
    "Cors",
    "OriginRule",
    "is_preflight",
]

OriginRule: TypeAlias = (
    str
    | bool
    | re.Pattern[str]
    | Sequence[str | re.Pattern[str]]
    | Callable[[str | None], bool | Awaitable[bool]]
)

#: Status of a preflight answer (the package's ``optionsSuccessStatus`` default). The caller adds
#: ``Content-Length: 0``: Safari waits for a body on a 204 without it.
PREFLIGHT_STATUS = 204

_DEFAULT_METHODS = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE")

# Header names exactly as the cors package spells them.
_ALLOW_ORIGIN = "Access-Control-Allow-Origin"
_ALLOW_CREDENTIALS = "Access-Control-Allow-Credentials"
_ALLOW_METHODS = "Access-Control-Allow-Methods"
_ALLOW_HEADERS = "Access-Control-Allow-Headers"
_MAX_AGE = "Access-Control-Max-Age"
_EXPOSE_HEADERS = "Access-Control-Expose-Headers"
_VARY = "Vary"

# Any C0 control character or DEL: a configured value holding one would split or corrupt a header.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# scheme://host[:port]rest, enough to explain a near miss in hint_for_origin (not a URL validator).
_ORIGIN_PARTS = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<host>\[[^\]]*\]|[^/:?#]*)(?::(?P<port>[0-9]*))?"
    r"(?P<rest>.*)",
    re.DOTALL,
)
_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}

_SHOWN_ITEMS = 5  # origins listed in a refusal message before "... (n more)"
_SHOWN_CHARS = 200  # longest peer-supplied string quoted in a message


def is_preflight(method: str, headers: Mapping[str, str]) -> bool:
    """Whether the request is answered as a CORS preflight.

    The cors package (with its default ``preflightContinue: false``) answers every ``OPTIONS``
    request as a preflight, with or without ``Access-Control-Request-Method``; so does this.
    ``headers`` (lowercase names) is accepted so the call site does not change if that rule ever
    does, and is not consulted.
    """
    return method.upper() == "OPTIONS"


@dataclass(frozen=True, slots=True, kw_only=True)
class Cors:
    """CORS options, with the names and defaults of the reference server's ``cors`` option.

    ``origins`` is one of:

    * ``"*"`` (default): any origin, answered with the literal ``*``. Not with ``credentials``.
    * ``True``: any origin, reflected. With ``credentials=True`` this lets every site on the web
      make credentialed requests; list the origins instead unless that is the intent.
    * ``False``: no CORS headers, and every request that carries an ``Origin`` is refused.
    * an origin string such as ``"https://app.example.com"``: that origin only, compared exactly
      (browsers send scheme, host and non-default port, lowercase, without a trailing slash). As in
      the reference, ``Access-Control-Allow-Origin`` always carries this string.
    * a compiled pattern: origins it matches with :meth:`re.Pattern.search`, which is unanchored
      like the reference's ``RegExp.test``: anchor it (``^https://([a-z0-9-]+\\.)?example\\.com$``)
      or ``https://example.com.evil.net`` matches too.
    * a list or tuple of origin strings and patterns: any of them.
    * a callable ``origins(origin) -> bool`` or ``async def origins(origin) -> bool``; it receives
      ``None`` for a request without an ``Origin`` header. Await :meth:`call_origin`.

    The literal ``"null"`` (sandboxed iframes, ``file://`` pages) is an ordinary origin string: it
    is allowed only where it is listed, or by ``"*"``, ``True`` or a callable that accepts it.

    ``allowed_headers=None`` reflects the preflight's ``Access-Control-Request-Headers``;
    ``exposed_headers`` and ``max_age`` (seconds) are sent only when set.

    Raises:
        TypeError: an option of the wrong type, or an unknown option.
        ValueError: a wildcard origin with ``credentials=True``, ``'*'`` inside a list, an empty
            string, a control character in a value, or a negative ``max_age``.
    """

    origins: OriginRule = "*"
    credentials: bool = False
    methods: Sequence[str] = _DEFAULT_METHODS
    allowed_headers: Sequence[str] | None = None
    exposed_headers: Sequence[str] | None = None
    max_age: int | None = None

    def __post_init__(self) -> None:
        # Fields are normalised to tuples so that the frozen value is also immutable and hashable.
        object.__setattr__(self, "origins", _checked_origins(self.origins))
        if not isinstance(self.credentials, bool):
            raise TypeError(f"cors: credentials must be a bool, got {_describe(self.credentials)}")
        object.__setattr__(self, "methods", _checked_tokens("methods", self.methods))
        if self.allowed_headers is not None:
            headers = _checked_tokens("allowed_headers", self.allowed_headers)
            object.__setattr__(self, "allowed_headers", headers)
        if self.exposed_headers is not None:
            headers = _checked_tokens("exposed_headers", self.exposed_headers)
            object.__setattr__(self, "exposed_headers", headers)
        if self.max_age is not None:
            if isinstance(self.max_age, bool) or not isinstance(self.max_age, int):
                raise TypeError(
                    f"cors: max_age must be an int (seconds) or None, got {_describe(self.max_age)}"
                )
            if self.max_age < 0:
                raise ValueError(f"cors: max_age must be 0 or more seconds, got {self.max_age}")
        if self.credentials and isinstance(self.origins, str) and self.origins == "*":
            raise ValueError(
                "cors: origins='*' cannot be combined with credentials=True: browsers refuse "
                "credentialed responses with a wildcard origin; list the allowed origins or "
                "use origins=True to reflect the request origin"
            )

    # -- deciding ----------------------------------------------------------------------------

    def needs_callback(self) -> bool:
        """Whether ``origins`` is a callable, whose verdict :meth:`call_origin` must await."""
        return callable(self.origins)

    def match_origin(self, origin: str | None) -> bool | None:
        """Whether ``origin`` is allowed, or ``None`` when only :meth:`call_origin` can tell.

        Matching is exact string equality: scheme, host and port as the browser sends them. There
        is deliberately no normalisation (trailing slash, case, default port): the browser compares
        ``Access-Control-Allow-Origin`` to its own origin byte for byte, so a normalised match
        would admit a request whose response the browser then rejects. :meth:`hint_for_origin`
        explains such near misses instead.
        """
        if callable(self.origins):
            return None
        return self._match_static(origin)

    async def call_origin(self, origin: str | None) -> bool:
        """The verdict for ``origin`` under any rule; a callable rule is called and awaited.

        Raises:
            TypeError: the callable returned something other than a bool (or an awaitable of one).
            Exception: whatever the callable raises, unchanged. The reference answers 400 then.
        """
        rule = self.origins
        if not callable(rule):
            return self._match_static(origin)
        result: object = rule(origin)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, bool):
            raise TypeError(
                f"cors: the origins callable {_callable_name(rule)} must return a bool "
                f"(or an awaitable of one), got {_describe(result)}"
            )
        return result

    def refuses(self, origin: str | None, allowed: bool) -> bool:
        """Whether the server must refuse the request (polling and WebSocket upgrade alike).

        Beyond the reference, which only writes headers: browsers do not apply CORS to WebSocket,
        so the origin check is what stops cross-site WebSocket hijacking. A request without an
        ``Origin`` header comes from a non-browser client and is not refused here.
        """
        return origin is not None and not allowed

    def _match_static(self, origin: str | None) -> bool:
        rule = self.origins
        if isinstance(rule, bool):
            return rule
        if isinstance(rule, str):
            # The browser sends its origin without a trailing slash, so a configured
            # "https://app.example.com/" never matches; see hint_for_origin.
            return rule == "*" or origin == rule
        if origin is None:
            return False
        if isinstance(rule, re.Pattern):
            return rule.search(origin) is not None
        assert not callable(rule), "cors: a callable origins rule is decided by call_origin"
        return any(
            origin == item if isinstance(item, str) else item.search(origin) is not None
            for item in rule
        )

    # -- headers -------------------------------------------------------------------------------

    def preflight_headers(
        self, origin: str | None, allowed: bool, request_headers: str | None
    ) -> list[tuple[str, str]]:
        """Headers of the answer to a preflight (``OPTIONS``), in the cors package's order.

        ``allowed`` is the verdict of :meth:`call_origin` (or :meth:`match_origin`);
        ``request_headers`` the request's ``Access-Control-Request-Headers``. The answer's status is
        :data:`PREFLIGHT_STATUS` and the caller adds ``Content-Length: 0``. An empty list is what
        the reference does for ``origins=False`` or a callable that refused: no CORS headers at all
        (it then hands the request on instead of answering 204).

        ``Vary`` appears once, its values joined with ``", "`` as the ``vary`` package does; a
        caller that has its own ``Vary`` values must merge them into this one.
        """
        headers = self._origin_headers(origin, allowed)
        if headers is None:
            return []
        if self.credentials:
            headers.append((_ALLOW_CREDENTIALS, "true"))
        methods = ",".join(self.methods)
        if methods:
            headers.append((_ALLOW_METHODS, methods))
        if self.allowed_headers is None:
            _add_vary(headers, "Access-Control-Request-Headers")
            allow_headers = request_headers or ""
        else:
            allow_headers = ",".join(self.allowed_headers)
        if allow_headers:
            headers.append((_ALLOW_HEADERS, allow_headers))
        if self.max_age is not None:
            headers.append((_MAX_AGE, str(self.max_age)))
        self._add_exposed(headers)
        return headers

    def response_headers(self, origin: str | None, allowed: bool) -> list[tuple[str, str]]:
        """Headers to add to an ordinary (non-preflight) response, in the cors package's order."""
        headers = self._origin_headers(origin, allowed)
        if headers is None:
            return []
        if self.credentials:
            headers.append((_ALLOW_CREDENTIALS, "true"))
        self._add_exposed(headers)
        return headers

    def _origin_headers(self, origin: str | None, allowed: bool) -> list[tuple[str, str]] | None:
        """The origin part (cors ``configureOrigin``), or ``None`` when nothing is sent at all."""
        rule = self.origins
        if rule is False or (callable(rule) and not allowed):
            # The package's origin callback yielded a falsy origin: it calls next() untouched.
            return None
        if isinstance(rule, str) and rule == "*":
            return [(_ALLOW_ORIGIN, "*")]
        if isinstance(rule, str):
            # A fixed origin is sent whatever the request's origin; the browser does the compare.
            return [(_ALLOW_ORIGIN, rule), (_VARY, "Origin")]
        # Reflect the request's origin when allowed; no value (no Origin header) writes nothing.
        headers: list[tuple[str, str]] = []
        if allowed and origin:
            headers.append((_ALLOW_ORIGIN, origin))
        headers.append((_VARY, "Origin"))
        return headers

    def _add_exposed(self, headers: list[tuple[str, str]]) -> None:
        if self.exposed_headers is not None:
            exposed = ",".join(self.exposed_headers)
            if exposed:
                headers.append((_EXPOSE_HEADERS, exposed))

    # -- explaining ----------------------------------------------------------------------------

    def hint_for_origin(self, origin: str | None) -> str | None:
        """Why a refused origin may have been meant to match a configured one, or ``None``.

        Looks for a configured origin string that differs from ``origin`` only by a trailing slash
        or a path, letter case, ``http`` versus ``https``, or an explicit default port; and explains
        the ``"null"`` origin.
        """
        rule = self.origins
        if origin is None or callable(rule) or self._match_static(origin):
            return None
        if origin == "null":
            return (
                "browsers send the origin 'null' from sandboxed iframes and file:// pages; list "
                "'null' only if every such page may connect"
            )
        if isinstance(rule, str):
            candidates: Sequence[object] = (rule,)
        elif isinstance(rule, Sequence):
            candidates = rule
        else:
            return None
        for configured in candidates:
            if isinstance(configured, str):
                hint = _near_miss(configured, origin)
                if hint is not None:
                    return hint
        return None

    def refusal_reason(self, origin: str) -> str:
        """A log message (lowercase, no trailing period) saying why ``origin`` was refused.

        For the server's log, never for the wire: it quotes the allow list.
        """
        shown = _show(origin)
        rule = self.origins
        if callable(rule):
            return (
                f"origin {shown} was refused by the cors origins callable {_callable_name(rule)}; "
                "change what it returns if this page should connect"
            )
        if rule is False:
            reason = (
                f"origin {shown} is not allowed: cors origins=False allows no browser requests; "
                "list it in aiosio.Cors(origins=...) if this page should connect"
            )
        elif self._match_static(origin):
            return f"origin {shown} is allowed by cors origins={_show_rule(rule)}"
        else:
            reason = (
                f"origin {shown} is not allowed by cors origins={_show_rule(rule)}; add it to "
                "aiosio.Cors(origins=...) if this page should connect"
            )
        hint = self.hint_for_origin(origin)
        return reason if hint is None else f"{reason} ({hint})"


# -- helpers -----------------------------------------------------------------------------------


def _checked_origins(rule: object) -> OriginRule:
    if isinstance(rule, bool):
        return rule
    if isinstance(rule, str):
        if rule != "*":
            _check_value("origins", rule)
        return rule
    if isinstance(rule, re.Pattern):
        return _checked_pattern("origins", rule)
    if callable(rule):
        return rule  # its signature cannot be checked here; call_origin checks its result
    if isinstance(rule, list | tuple):
        items: list[str | re.Pattern[str]] = []
        for index, item in enumerate(rule):
            name = f"origins[{index}]"
            if isinstance(item, re.Pattern):
                items.append(_checked_pattern(name, item))
            elif not isinstance(item, str):
                raise TypeError(
                    f"cors: {name} must be an origin string or a compiled pattern, "
                    f"got {_describe(item)}"
                )
            elif item == "*":
                raise ValueError(
                    f"cors: {name} is '*', which the reference compares literally and which "
                    "therefore matches no origin; use origins='*' alone to allow any origin "
                    "(origins=True with credentials), or list the allowed origins"
                )
            else:
                _check_value(name, item)
                items.append(item)
        return tuple(items)
    raise TypeError(
        "cors: origins must be '*', True, False, an origin string, a compiled pattern, a list or "
        f"tuple of origin strings and patterns, or a callable, got {_describe(rule)}"
    )


def _checked_pattern(name: str, pattern: re.Pattern[Any]) -> re.Pattern[str]:
    if not isinstance(pattern.pattern, str):
        raise TypeError(f"cors: {name} must be a str pattern, got a bytes pattern {pattern!r}")
    return pattern


def _checked_tokens(name: str, values: object) -> tuple[str, ...]:
    if isinstance(values, str | bytes | bytearray) or not isinstance(values, Sequence):
        raise TypeError(
            f"cors: {name} must be a list or tuple of strings such as ('GET', 'POST'), "
            f"got {_describe(values)}"
        )
    checked: list[str] = []
    for index, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"cors: {name}[{index}] must be a str, got {_describe(value)}")
        _check_value(f"{name}[{index}]", value)
        checked.append(value)
    return tuple(checked)


def _check_value(name: str, value: str) -> None:
    if not value:
        raise ValueError(f"cors: {name} must not be an empty string")
    if _CONTROL.search(value):
        raise ValueError(f"cors: {name} must not contain control characters, got {value!r}")


def _add_vary(headers: list[tuple[str, str]], field: str) -> None:
    """Append ``field`` to the one ``Vary`` header, where it first appeared (the vary package)."""
    for index, (name, value) in enumerate(headers):
        if name == _VARY:
            headers[index] = (name, f"{value}, {field}")
            return
    headers.append((_VARY, field))


def _near_miss(configured: str, origin: str) -> str | None:
    """Explain how ``configured`` misses ``origin`` by a detail, or ``None`` if it is unrelated."""
    want = _ORIGIN_PARTS.fullmatch(configured)
    got = _ORIGIN_PARTS.fullmatch(origin)
    if want is None or got is None or got["rest"]:
        return None
    if want["host"].lower() != got["host"].lower():
        return None
    if _effective_port(want) != _effective_port(got):
        return None
    reasons: list[str] = []
    if want["rest"] == "/":
        reasons.append("has a trailing slash")
    elif want["rest"]:
        reasons.append(f"has a path {_show(want['rest'])}, which origins never carry")
    if want["scheme"].lower() != got["scheme"].lower():
        reasons.append(f"uses {want['scheme']}:// but the page is served over {got['scheme']}://")
    elif want["scheme"] != got["scheme"] or want["host"] != got["host"]:
        reasons.append("differs in letter case")
    if want["port"] is not None and _effective_port(want) is None:
        reasons.append(f"names the default port {want['port']}, which browsers omit")
    if not reasons:  # pragma: no cover - equal strings match, so the origin would not be refused
        return None
    return f"the configured origin {configured!r} {' and '.join(reasons)}; browsers send {origin!r}"


def _effective_port(parts: re.Match[str]) -> str | None:
    """The port an origin names, ``None`` for its scheme's default (or for no port)."""
    port: str | None = parts["port"]
    if not port or _DEFAULT_PORTS.get(parts["scheme"].lower()) == port:
        return None
    return port


def _show(text: str) -> str:
    """Quote a string for a message, bounded: origins come from the peer."""
    if len(text) > _SHOWN_CHARS:
        return f"{text[:_SHOWN_CHARS]!r}..."
    return repr(text)


def _show_rule(rule: OriginRule) -> str:
    if isinstance(rule, str):
        return _show(rule)
    if isinstance(rule, Sequence):
        items = [_show(item) if isinstance(item, str) else repr(item) for item in rule]
        if len(items) > _SHOWN_ITEMS:
            items[_SHOWN_ITEMS:] = [f"... ({len(items) - _SHOWN_ITEMS} more)"]
        return f"[{', '.join(items)}]"
    return repr(rule)


def _callable_name(rule: object) -> str:
    return getattr(rule, "__qualname__", None) or type(rule).__qualname__


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > _SHOWN_CHARS:
        text = f"{text[:_SHOWN_CHARS]}..."
    return f"{type(value).__name__} {text}"
