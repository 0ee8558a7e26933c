"""The client's network edge: HTTP/1.1 requests and WebSocket connections on asyncio streams.

Why our own and not aiohttp or httpx: every failure must say at which stage it happened (name
resolution, TCP, TLS, HTTP status, WebSocket handshake) with the exchange that shows it, which
``aiosio doctor --verbose`` prints like ``curl -v``; the WebSocket codec and its limits are the
server's own sans-I/O codec (:mod:`aiosio.protocol.websocket`), so the client applies the same
parser limits as the server; and the HTTP parsing is ``httptools`` (llhttp), as fast as it gets
in Python. Connections are kept alive, so long-polling costs no new TCP or TLS handshake per
request. Not supported: HTTP proxies (``HTTPS_PROXY``); connect directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl as ssl_module
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Protocol

import httptools

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage
from aiosio.client.proxy import Proxy
from aiosio.client.proxy import tunnel
from aiosio.protocol import websocket as ws

__all__ = [
    "MAX_HEAD",
    "ClientWebSocket",
    "CookieJar",
    "Endpoint",
    "HttpConnection",
    "HttpResult",
    "ResponseReader",
    "Trace",
    "WebSocketConnection",
    "WebSocketOpener",
    "authority",
    "new_trace",
    "open_stream",
]

logger = logging.getLogger("aiosio.client.http")

USER_AGENT = "aiosio"
MAX_HEAD = 64 * 1024
"""The bytes of a server's answer the client holds before it is whole: an HTTP/1.1 response
head here, the incomplete HTTP/3 frames of a WebTransport connection (client/webtransport.py)."""


@dataclass(slots=True)
class HttpResult:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class CookieJar:
    """Cookies set by the server, sent back on every request of the session: what makes
    cookie-based sticky sessions (``io=<sid>``, load balancer cookies) work."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def update(self, headers: list[tuple[str, str]]) -> None:
        for name, value in headers:
            if name.lower() != "set-cookie":
                continue
            jar: SimpleCookie = SimpleCookie()
            with contextlib.suppress(Exception):
                jar.load(value)
            for key, morsel in jar.items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = morsel.value

    def header(self) -> str | None:
        if not self.cookies:
            return None
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())


Trace = Callable[[str, str], None]  # (direction ">" / "<" / "*", text), like curl -v


def authority(host: str, port: int, secure: bool) -> str:
    """The ``Host`` header of a request to ``host:port`` (no port when it is the default)."""
    return host if port == (443 if secure else 80) else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a connection goes and how: ``host`` and ``port``, TLS when ``secure`` (with
    ``ssl_context``, else the default context), each network step bounded by ``timeout``
    seconds, and ``trace`` to show the exchange as ``curl -v`` does."""

    host: str
    port: int
    secure: bool
    ssl_context: ssl_module.SSLContext | None
    timeout: float
    trace: Trace | None = None
    proxy: Proxy | None = None
    """The HTTP proxy every connection tunnels through (see :mod:`aiosio.client.proxy`)."""

    @property
    def authority(self) -> str:
        return authority(self.host, self.port, self.secure)


@contextlib.asynccontextmanager
async def _within(
    timeout: float, message: str, *, url: str, hint: str | None = None
) -> AsyncIterator[None]:
    """Run the block for at most ``timeout`` seconds; past it, a :class:`ConnectError` at
    :attr:`Stage.TIMEOUT` that says what took too long."""
    try:
        async with asyncio.timeout(timeout):
            yield
    except TimeoutError:
        raise ConnectError(Stage.TIMEOUT, message, hint=hint, url=url) from None


@contextlib.contextmanager
def _closed_on_error(writer: asyncio.StreamWriter) -> Iterator[None]:
    """Close ``writer`` when the block raises: a half-opened connection is of no use."""
    try:
        yield
    except BaseException:
        writer.close()
        raise


async def open_stream(
    endpoint: Endpoint, *, url: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Resolve, connect (through the endpoint's proxy, if any) and (for https/wss)
    TLS-handshake, each failure tagged with its stage."""
    proxy = endpoint.proxy
    if proxy is None:
        reader, writer = await _connect(endpoint, endpoint.host, endpoint.port, url=url)
    else:
        reader, writer = await _connect(endpoint, proxy.host, proxy.port, url=url, proxy=proxy)
        with _closed_on_error(writer):
            async with _within(
                endpoint.timeout,
                f"the proxy {proxy.shown} did not answer CONNECT within {endpoint.timeout}s",
                url=url,
            ):
                await tunnel(reader, writer, proxy, f"{endpoint.host}:{endpoint.port}", url=url)
        if endpoint.trace:
            endpoint.trace("*", f"tunnel to {endpoint.host}:{endpoint.port} through {proxy.shown}")
    if endpoint.secure:
        with _closed_on_error(writer):
            await _start_tls(writer, endpoint, url)
        if endpoint.trace:
            cipher = writer.get_extra_info("cipher") or ("?", "?")
            endpoint.trace("*", f"TLS connection using {cipher[1]} / {cipher[0]}")
    return reader, writer


async def _connect(
    endpoint: Endpoint, host: str, port: int, *, url: str, proxy: Proxy | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to ``host:port`` (the server, or the ``proxy``: then a failure is at
    ``Stage.PROXY`` and names it)."""
    timeout, trace = endpoint.timeout, endpoint.trace
    what = f"the proxy {proxy.shown}" if proxy is not None else host
    loop = asyncio.get_running_loop()
    try:
        async with _within(timeout, f"resolving {what} took more than {timeout}s", url=url):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectError(
            Stage.PROXY if proxy is not None else Stage.RESOLVE,
            f"cannot resolve host {host!r}{' of the proxy' if proxy else ''}: {exc.strerror}",
            hint="check the proxy URL (HTTPS_PROXY/HTTP_PROXY or proxy=)"
            if proxy is not None
            else "check the host name in the URL (and DNS on this machine)",
            description=exc,
            url=url,
        ) from exc
    if trace:
        trace("*", f"resolved {host} to {', '.join(sorted({str(i[4][0]) for i in infos}))}")
    last: OSError | None = None
    for family, _type, proto, _name, address in infos:
        try:
            async with _within(
                timeout,
                f"TCP connect to {address[0]}:{port} took more than {timeout}s",
                hint="a firewall may drop the packets, or the host is down",
                url=url,
            ):
                reader, writer = await asyncio.open_connection(
                    str(address[0]), int(address[1]), family=family, proto=proto
                )
        except OSError as exc:
            last = exc
            continue
        if trace:
            trace("*", f"connected to {address[0]} port {port}")
        return reader, writer
    assert last is not None
    refused = isinstance(last, ConnectionRefusedError)
    reason = "connection refused" if refused else (last.strerror or str(last))
    if proxy is not None:
        raise ConnectError(
            Stage.PROXY,
            f"cannot connect to the proxy {proxy.shown}: {reason}",
            hint="is the proxy running? Check HTTPS_PROXY/HTTP_PROXY (or proxy=); set NO_PROXY "
            "for hosts reached directly",
            description=last,
            url=url,
        ) from last
    raise ConnectError(
        Stage.TCP,
        f"cannot connect to {host}:{port}: {reason}",
        hint="nothing listens on that port: is the server running, and on this host and port?"
        if refused
        else "the host is unreachable from here (network, firewall, or wrong address)",
        description=last,
        url=url,
    ) from last


async def _start_tls(writer: asyncio.StreamWriter, endpoint: Endpoint, url: str) -> None:
    context = endpoint.ssl_context or ssl_module.create_default_context()
    host, timeout = endpoint.host, endpoint.timeout
    try:
        async with _within(
            timeout, f"TLS handshake with {host} took more than {timeout}s", url=url
        ):
            await writer.start_tls(context, server_hostname=host)
    except ssl_module.SSLCertVerificationError as exc:
        raise ConnectError(
            Stage.TLS,
            f"certificate verification failed: {exc.verify_message}",
            hint=_tls_hint(exc),
            description=exc,
            url=url,
        ) from exc
    except (ssl_module.SSLError, OSError) as exc:
        raise ConnectError(
            Stage.TLS,
            f"TLS handshake failed: {exc}",
            hint="is the server speaking TLS on this port? (http:// vs https://)",
            description=exc,
            url=url,
        ) from exc


def _tls_hint(exc: ssl_module.SSLCertVerificationError) -> str:
    message = (exc.verify_message or "").lower()
    if "self-signed" in message or "self signed" in message:
        return (
            "the server's certificate is self-signed: pass ssl=ssl.create_default_context("
            "cafile='cert.pem') to trust it (or ssl=False to disable verification, for tests "
            "only)"
        )
    if "hostname" in message or "ip address mismatch" in message:
        return "the certificate is for another host name: connect with the name it was issued for"
    if "expired" in message:
        return "the server's certificate has expired: renew it"
    if "local issuer" in message:
        return "the certificate's issuer is not trusted here: pass ssl= a context with its CA"
    return "the server's certificate is not trusted: pass ssl= a context that trusts it"


def _closed_hint(endpoint: Endpoint, direct: str) -> str:
    """The hint of a connection that closed before its answer: through a proxy, the tunnel may
    be what closed (the proxy said yes to CONNECT, then could not reach the server)."""
    proxy = endpoint.proxy
    if proxy is None:
        return direct
    return (
        f"the tunnel through the proxy {proxy.shown} closed: the proxy accepted CONNECT but "
        "could not reach the server, or the server closed the connection (see the proxy's log)"
    )


class ResponseReader:
    """Collects one response from httptools' callbacks. The parser is the caller's (it refers to
    this object): a reference back would make a cycle per request, freed only by the garbage
    collector."""

    def __init__(self, head_only: bool = False) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.done = False
        self.headers_done = False
        self.head_only = head_only
        self.size = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


class HttpConnection:
    """One keep-alive HTTP/1.1 connection to a host; requests are sent one at a time."""

    def __init__(self, endpoint: Endpoint, *, max_body: int) -> None:
        self.endpoint = endpoint
        self.max_body = max_body
        self.trace = endpoint.trace
        self._stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes = b"",
        *,
        url: str,
    ) -> HttpResult:
        """Send one request and read its answer, whatever the peer sends back.

        Raises :class:`ConnectError` (with its stage) for every failure: no connection, a
        connection closed before a whole answer, an answer that is not HTTP/1.1 or too large.
        """
        async with self._lock:
            # A kept-alive connection the server closed meanwhile is retried once on a new one.
            reused = self._stream is not None
            for attempt in (1, 2):
                if self._stream is None:
                    self._stream = await open_stream(self.endpoint, url=url)
                try:
                    return await self._exchange(method, target, headers, body)
                except ConnectError:
                    self.close()  # the answer was not HTTP, or too large: the stream is lost
                    raise
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    self.close()
                    if reused and attempt == 1:
                        continue
                    raise ConnectError(
                        Stage.TRANSPORT if reused else Stage.HTTP,
                        f"the connection closed before an HTTP answer: {exc}",
                        hint=_closed_hint(
                            self.endpoint, "the server closed the connection: is it an HTTP server?"
                        ),
                        description=exc,
                        url=url,
                    ) from exc
            raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _exchange(
        self, method: str, target: str, headers: Mapping[str, str], body: bytes
    ) -> HttpResult:
        assert self._stream is not None
        reader, writer = self._stream
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.endpoint.authority}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        if self.trace:
            for line in lines:
                self.trace(">", line)
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        response = ResponseReader(head_only=method == "HEAD")
        parser = httptools.HttpResponseParser(response)
        while not response.done:
            chunk = await reader.read(65536)
            if not chunk:
                if response.headers_done and not response.done:
                    # A body delimited by the connection's end.
                    with contextlib.suppress(httptools.HttpParserError):
                        parser.feed_data(b"")
                    break
                raise ConnectionResetError("connection closed by the server")
            try:
                parser.feed_data(chunk)
            except httptools.HttpParserError as exc:
                raise ConnectError(
                    Stage.PROTOCOL,
                    f"the answer is not valid HTTP: {exc}",
                    hint="something that is not an HTTP server listens on this port",
                    description=exc,
                ) from exc
            except httptools.HttpParserUpgrade as exc:
                # httptools' upgrade signal is no HttpParserError: a 101 answer to a plain
                # request escaped as an undocumented exception.
                raise ConnectError(
                    Stage.PROTOCOL,
                    f"the server switched protocols (status {parser.get_status_code()}) in "
                    f"answer to a plain HTTP {method} request",
                    hint="something that is not an Engine.IO server answers on this path",
                    description=exc,
                ) from exc
            response.size += len(chunk)
            if response.size > self.max_body + MAX_HEAD:
                raise ConnectError(
                    Stage.PROTOCOL,
                    f"the HTTP answer is larger than {self.max_body} bytes",
                    hint="raise max_http_buffer_size on the client if this is expected",
                )
        status = parser.get_status_code()
        result = HttpResult(status, response.headers, b"".join(response.body))
        if self.trace:
            self.trace("<", f"HTTP/1.1 {status}")
            for name, value in result.headers:
                self.trace("<", f"{name}: {value}")
            preview = result.body[:300]
            if preview:
                self.trace("<", preview.decode("utf-8", "replace"))
        if not parser.should_keep_alive():
            self.close()
        return result

    def close(self) -> None:
        if self._stream is not None:
            self._stream[1].close()
            self._stream = None


async def _read_handshake_answer(
    reader: asyncio.StreamReader,
    parser: httptools.HttpResponseParser,
    response: ResponseReader,
    endpoint: Endpoint,
    url: str,
) -> bytes:
    """Feed the answer to a WebSocket handshake to ``parser`` (a refusal with its small body);
    returns what came after the head of a 101 (the first frames)."""
    buffer = b""
    leftover = b""
    timeout = endpoint.timeout
    try:
        async with _within(timeout, f"no WebSocket handshake answer within {timeout}s", url=url):
            while not response.headers_done:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ConnectionResetError("connection closed during the handshake")
                buffer += chunk
                try:
                    parser.feed_data(chunk)
                except httptools.HttpParserUpgrade as upgrade:
                    offset = upgrade.args[0] if upgrade.args else len(chunk)
                    leftover = chunk[offset:]
                if len(buffer) > MAX_HEAD and not response.headers_done:
                    raise ConnectError(Stage.WEBSOCKET, "handshake answer too large", url=url)
            if parser.get_status_code() != 101:
                # Read the (small) body of a refusal for the user to see.
                while not response.done and len(buffer) < MAX_HEAD:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    buffer += chunk
                    with contextlib.suppress(httptools.HttpParserError):
                        parser.feed_data(chunk)
    except httptools.HttpParserError as exc:
        raise ConnectError(
            Stage.PROTOCOL,
            f"the answer to the WebSocket handshake is not HTTP: {exc}",
            description=exc,
            url=url,
        ) from exc
    except ConnectionError as exc:
        raise ConnectError(
            Stage.WEBSOCKET,
            f"the server closed the connection during the WebSocket handshake: {exc}",
            hint=_closed_hint(
                endpoint, "the server or a proxy refused the upgrade without an answer"
            ),
            description=exc,
            url=url,
        ) from exc
    return leftover


class ClientWebSocket(Protocol):
    """What the Engine.IO client needs of a WebSocket: :class:`WebSocketConnection` over TCP,
    or another carrier that a :class:`WebSocketOpener` returns (``aiosio.testing``'s in-memory
    pair). Messages go to ``on_message`` and the end to ``on_close(code, error)`` once
    :meth:`start` was called."""

    on_message: Callable[[str | bytes], None]
    on_close: Callable[[int | None, str | None], None]

    def start(self) -> None:
        """Deliver the peer's messages from now on."""

    def send(self, data: str | bytes, compress: bool = True) -> None:
        """Queue one message (dropped once closing); ``compress=False`` keeps it out of
        permessage-deflate, where the carrier has it."""

    @property
    def buffered_amount(self) -> int:
        """Bytes queued for the peer and not yet written."""
        ...

    def close(self, code: int = 1000) -> None:
        """Start the closing handshake."""

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait for the closing handshake (or the abort that ends it)."""


class WebSocketOpener(Protocol):
    """How the client opens its WebSocket (the ``websocket_opener`` option of
    :class:`aiosio.Client`): given the request target (path and query), the request's headers,
    the client's largest message and the URL (for messages), return the connection, or ``None``
    and the server's answer when the server refused the upgrade. Raise
    :class:`~aiosio.client.errors.ConnectError` when there is no answer at all."""

    async def __call__(
        self, target: str, headers: Mapping[str, str], *, max_message_size: int, url: str
    ) -> tuple[ClientWebSocket | None, HttpResult]: ...


class WebSocketConnection:
    """A client WebSocket: the handshake over :func:`open_stream`, then the shared sans-I/O
    codec; a reader task delivers messages to ``on_message`` and the end to ``on_close``."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        codec: ws.WebSocketProtocol,
        leftover: bytes,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.codec = codec
        self._leftover = leftover
        self.on_message: Callable[[str | bytes], None] = lambda data: None
        self.on_close: Callable[[int | None, str | None], None] = lambda code, error: None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        # The loop the connection lives in: closed in another one (or after its loop ended),
        # its socket leaks to whichever code runs when the garbage collector does.
        self.loop = asyncio.get_running_loop()

    @property
    def closed(self) -> bool:
        """The connection is over (closing handshake done, or aborted)."""
        return self._closed

    @classmethod
    async def connect(
        cls,
        endpoint: Endpoint,
        target: str,
        headers: Mapping[str, str],
        *,
        max_message_size: int,
        url: str,
        compress_threshold: int | None = 1024,
    ) -> tuple[WebSocketConnection | None, HttpResult]:
        """Open a WebSocket; ``(None, answer)`` when the server answered the handshake with
        something else than 101 (the answer says what).

        ``compress_threshold``: permessage-deflate is offered, and messages of at least that
        many bytes are sent compressed when the server accepts it (as Node's client, through
        ``ws``, offers it with ``perMessageDeflate: {threshold: 1024}``); ``None``: not offered.
        """
        reader, writer = await open_stream(endpoint, url=url)
        trace = endpoint.trace
        key = ws.new_client_key()
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {endpoint.authority}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if compress_threshold is not None:
            lines.append(f"Sec-WebSocket-Extensions: {ws.client_deflate_offer()}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if trace:
            for line in lines:
                trace(">", line)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        response = ResponseReader()
        parser = httptools.HttpResponseParser(response)
        with _closed_on_error(writer):
            leftover = await _read_handshake_answer(reader, parser, response, endpoint, url)
        result = HttpResult(parser.get_status_code(), response.headers, b"".join(response.body))
        if trace:
            trace("<", f"HTTP/1.1 {result.status}")
            for name, value in result.headers:
                trace("<", f"{name}: {value}")
        if result.status != 101:
            writer.close()
            return None, result
        lowered = {k.lower(): v for k, v in result.headers}
        try:
            ws.check_server_handshake(101, lowered, key)
            params = ws.accept_deflate_response(
                lowered.get("sec-websocket-extensions"), offered=compress_threshold is not None
            )
        except ws.HandshakeError as exc:
            writer.close()
            raise ConnectError(
                Stage.WEBSOCKET,
                f"invalid WebSocket handshake answer: {exc.reason}",
                hint="a proxy may be mangling the upgrade",
                description=exc,
                url=url,
            ) from exc
        codec = ws.WebSocketProtocol(
            ws.Side.CLIENT,
            max_message_size=max_message_size,
            deflate=params,
            compress_threshold=compress_threshold or 0,
        )
        return cls(reader, writer, codec, leftover), result

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        code: int | None = None
        error: str | None = None
        try:
            data = self._leftover
            while True:
                if data:
                    for event in self.codec.receive_data(data):
                        if isinstance(event, ws.TextMessage | ws.BinaryMessage):
                            self.on_message(event.data)
                        elif isinstance(event, ws.CloseReceived):
                            code = event.code
                        elif isinstance(event, ws.ProtocolViolation):
                            code, error = int(event.code), event.reason
                    pending = self.codec.data_to_send()
                    if pending:
                        self._writer.write(pending)
                    if self.codec.close_expected or code is not None:
                        break
                data = await self._reader.read(65536)
                if not data:
                    code = code or 1006
                    break
        except (ConnectionError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            self._finish(code, error)

    def _finish(self, code: int | None, error: str | None) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._writer.close()
        self.on_close(code, error)

    def send(self, data: str | bytes, compress: bool = True) -> None:
        if self._closed or self.codec.state is not ws.State.OPEN:
            return
        if isinstance(data, str):
            self.codec.send_text(data, compress=compress)
        else:
            self.codec.send_binary(data, compress=compress)
        self._writer.write(self.codec.data_to_send())

    @property
    def buffered_amount(self) -> int:
        transport = self._writer.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    def close(self, code: int = 1000) -> None:
        if self._closed:
            return
        if self.codec.state is ws.State.OPEN:
            self.codec.send_close(code)
            with contextlib.suppress(Exception):
                self._writer.write(self.codec.data_to_send())
        loop = asyncio.get_running_loop()
        loop.call_later(1.0, self._abort)

    async def wait_closed(self, timeout: float = 2.0) -> None:
        """Wait for the closing handshake (or the abort that ends it)."""
        task = self._task
        if task is not None and not task.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), timeout)
        if not self._closed:
            self._abort()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()

    def _abort(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._finish(1006, None)


def new_trace(logger_: logging.Logger) -> Trace:
    def trace(direction: str, text: str) -> None:
        logger_.debug("%s %s", direction, text)

    return trace
