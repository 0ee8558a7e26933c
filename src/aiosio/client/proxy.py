"""The client behind an HTTP proxy: ``HTTP_PROXY``, ``HTTPS_PROXY`` and ``NO_PROXY`` (as curl and
``requests`` read them), or an explicit ``proxy=`` option.

Every connection goes through a ``CONNECT host:port`` tunnel, long-polling and WebSocket alike,
``http://`` and ``https://`` alike (as the ``https-proxy-agent`` that Node's clients use, and as
browsers open WebSockets): one path, and TLS stays end to end with the server. The proxy must
allow ``CONNECT`` to the server's port (squid allows 443 only by default: add the port to its
``SSL_ports``). Basic authentication is sent from the proxy URL's user and password
(``http://user:password@proxy:3128``). A proxy that refuses says so in a
:class:`~aiosio.client.errors.ConnectError` at :attr:`~aiosio.client.errors.Stage.PROXY`, with
its status and what to do.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import urllib.request
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote
from urllib.parse import urlsplit

from aiosio.client.errors import ConnectError
from aiosio.client.errors import Stage

__all__ = ["Proxy", "ProxyOption", "bypassed", "proxy_for", "tunnel"]

ProxyOption = str | Literal[False] | None
"""``proxy=`` of the client: a proxy URL, ``False`` for none (the environment ignored), or
``None`` to read ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY``."""

# A proxy's answer to CONNECT is a status line and headers; more than this is not one.
_MAX_ANSWER = 65536


@dataclass(frozen=True, slots=True)
class Proxy:
    host: str
    port: int
    authorization: str | None = None
    """The ``Proxy-Authorization`` header's value (``Basic ...``), from the URL's credentials."""

    @property
    def shown(self) -> str:
        """The proxy as messages name it (never with its password)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def from_url(cls, url: str) -> Proxy:
        """``http://[user:password@]host[:port]`` (port 80 when not given).

        :raises ValueError: another scheme, or no host."""
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme.lower() != "http":
            raise ValueError(
                f"proxy {parts.scheme}://{parts.hostname or ''}: only http:// proxies are "
                "supported (the tunnel to an https:// server is encrypted end to end anyway)"
            )
        if not parts.hostname:
            raise ValueError(f"proxy URL {url!r} has no host")
        authorization = None
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        return cls(parts.hostname, parts.port or 80, authorization)


def proxy_for(secure: bool, host: str, option: ProxyOption) -> Proxy | None:
    """The proxy a connection to ``host`` goes through: ``option`` when it is a URL, none when
    it is ``False``; else the environment's ``HTTPS_PROXY`` (``https``/``wss``) or
    ``HTTP_PROXY`` (``http``/``ws``), unless ``NO_PROXY`` names the host."""
    if option is False:
        return None
    if option is not None:
        return Proxy.from_url(option)
    proxies = urllib.request.getproxies_environment()
    url = proxies.get("https" if secure else "http")
    if not url or bypassed(host, proxies.get("no", "")):
        return None
    return Proxy.from_url(url)


def bypassed(host: str, no_proxy: str) -> bool:
    """True when ``NO_PROXY`` names ``host``, as curl reads it: ``*``, a host name or a domain
    (``example.com`` and ``.example.com`` both match ``api.example.com``), an IP address or a
    network in CIDR form (``10.0.0.0/8``); entries separated by commas, ports ignored."""
    host = host.strip("[]").lower()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if entry.startswith("[") and "]" in entry:
            entry = entry[1 : entry.index("]")]
        elif entry.count(":") == 1:
            entry = entry.partition(":")[0]  # host:port
        entry = entry.lstrip(".")
        if host == entry or host.endswith("." + entry):
            return True
    return False


async def tunnel(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    proxy: Proxy,
    authority: str,
    *,
    url: str,
) -> None:
    """Ask the proxy, on the connection ``reader``/``writer`` opened to it, for a tunnel to
    ``authority`` (``host:port``). Raises :class:`ConnectError` at ``Stage.PROXY`` when the
    proxy refuses or does not answer as an HTTP proxy."""
    lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
    if proxy.authorization:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    try:
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
    except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
        raise ConnectError(
            Stage.PROXY,
            f"the proxy {proxy.shown} closed the connection instead of answering CONNECT "
            f"{authority}",
            hint="is it an HTTP proxy? (the proxy URL's host and port)",
            description=exc,
            url=url,
        ) from exc
    status_line, headers = _parse_head(head)
    fields = status_line.split(" ", 2)
    status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
    page = _page(headers)
    if 200 <= status < 300 and page is None:
        return
    body = await _read_body(reader, headers) if page is not None else b""
    shown = f"{status_line[:200]}" + (f" and {_describe_page(page, body)}" if page else "")
    if 200 <= status < 300:
        # RFC 9110 section 9.3.6: a 2xx answer to CONNECT opens the tunnel and has no content.
        # One with a page is a proxy that answers for the server (a captive portal, a login or
        # block page, a web server): the client's requests would read that page as the server.
        raise ConnectError(
            Stage.PROXY,
            f"the proxy {proxy.shown} answered CONNECT {authority} with {shown} instead of "
            "opening a tunnel",
            hint=(
                f"{proxy.shown} does not tunnel: it answers with a page of its own (a captive "
                "portal or a login page? open it in a browser), or it is not an HTTP proxy: check "
                "the proxy URL (HTTPS_PROXY/HTTP_PROXY or proxy=)"
            ),
            status=status,
            body=body or None,
            url=url,
        )
    raise ConnectError(
        Stage.PROXY,
        f"the proxy {proxy.shown} refused CONNECT {authority}: {shown}",
        hint=_refusal_hint(status, proxy, authority),
        status=status or None,
        body=body or None,
        url=url,
    )


def _parse_head(head: bytes) -> tuple[str, dict[str, str]]:
    """The status line and the headers (names in lowercase, the last of a repeated one)."""
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return lines[0], headers


def _page(headers: dict[str, str]) -> str | None:
    """The content type of the page an answer carries (``""`` when it has a body of no stated
    type), ``None`` when it has none: what a tunnel's answer must not have."""
    content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    length = headers.get("content-length", "0").strip()
    if content_type or (length.isdigit() and int(length) > 0) or "transfer-encoding" in headers:
        return content_type
    return None


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The page's bytes, when its length is stated (at most 64 KiB, to show in the error);
    ``b""`` otherwise: what follows without a length cannot be told from a tunnel's bytes."""
    length = headers.get("content-length", "").strip()
    if not length.isdigit():
        return b""
    try:
        return await reader.readexactly(min(int(length), _MAX_ANSWER))
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        return exc.partial if isinstance(exc, asyncio.IncompleteReadError) else b""


_TITLE = re.compile(rb"<title[^>]*>(.*?)</title", re.IGNORECASE | re.DOTALL)


def _describe_page(content_type: str, body: bytes) -> str:
    """``an HTML page "Title"``, ``a text/plain page``: what the proxy answered with."""
    if content_type == "text/html" or body.lstrip()[:1] == b"<":
        match = _TITLE.search(body)
        title = " ".join(match.group(1).decode("utf-8", "replace").split())[:80] if match else ""
        return f'an HTML page "{title}"' if title else "an HTML page"
    return f"a {content_type} page" if content_type else "a page"


def _refusal_hint(status: int, proxy: Proxy, authority: str) -> str:
    if status in (401, 407):  # 407 as the standard says; some proxies answer 401
        if proxy.authorization:
            return "the proxy refused the credentials of the proxy URL: check user and password"
        return (
            "the proxy wants credentials: give them in the proxy URL "
            "(http://user:password@proxy:port, in HTTPS_PROXY/HTTP_PROXY or proxy=)"
        )
    if status in (403, 405):
        return (
            f"the proxy's policy forbids a tunnel to {authority}: it may allow CONNECT to port "
            "443 only (squid's SSL_ports); ask for the port to be allowed, or serve on 443"
        )
    if status in (502, 503, 504):
        return (
            f"the proxy could not reach {authority}: is the server up, and reachable from "
            "the proxy?"
        )
    if status == 0:
        return "the answer is not HTTP: is this an HTTP proxy?"
    return "see the proxy's log for why it refused the tunnel"
