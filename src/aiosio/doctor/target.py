"""The deployment under diagnosis: where it is (host, port, TLS), its Socket.IO path and
namespace as a client would derive them from the URL, and the headers every request carries."""

from __future__ import annotations

import ssl as ssl_module
from urllib.parse import urlsplit

from aiosio.client.http import Endpoint
from aiosio.client.http import HttpConnection
from aiosio.client.http import authority
from aiosio.client.proxy import proxy_for
from aiosio.doctor.options import DoctorOptions

__all__ = ["Target", "norm_path"]


def norm_path(path: str) -> str:
    """``/a/b/`` for ``a/b``, ``/a/b``, ``/a/b/``; ``/`` for the root."""
    return "/" + path.strip("/") + "/" if path.strip("/") else "/"


def _names_endpoint(url_path: str) -> bool:
    return url_path.rstrip("/").endswith(("socket.io", "engine.io"))


class Target:
    def __init__(self, options: DoctorOptions) -> None:
        parts = urlsplit(options.url if "://" in options.url else "http://" + options.url)
        self.secure = parts.scheme.lower() in ("https", "wss")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (443 if self.secure else 80)
        self.url_path = parts.path or "/"
        url_namespace = self.url_path.rstrip("/") or "/"
        if options.path:
            self.path = norm_path(options.path)
            self.namespace = options.namespace or url_namespace
        elif _names_endpoint(self.url_path):
            # `doctor https://host/socket.io/` names the endpoint, not a namespace.
            self.path = norm_path(self.url_path)
            self.namespace = options.namespace or "/"
        else:
            self.path = "/socket.io/"
            self.namespace = options.namespace or url_namespace
        self.ssl = self._ssl_context(options) if self.secure else None
        self.options = options
        # The polling sessions the doctor opened and has not closed: closed when it ends, so
        # that it leaves nothing behind for the server to time out.
        self.sessions: set[str] = set()

    @staticmethod
    def _ssl_context(options: DoctorOptions) -> ssl_module.SSLContext:
        context = ssl_module.create_default_context(cafile=options.ca)
        if options.insecure:
            context.check_hostname = False
            context.verify_mode = ssl_module.CERT_NONE
        return context

    @property
    def origin_url(self) -> str:
        scheme = "https" if self.secure else "http"
        return f"{scheme}://{authority(self.host, self.port, self.secure)}"

    @property
    def endpoint(self) -> Endpoint:
        """The target's host and port, TLS as asked, ``--timeout`` and ``--verbose``'s trace."""
        o = self.options
        proxy = proxy_for(self.secure, self.host, o.proxy)
        return Endpoint(self.host, self.port, self.secure, self.ssl, o.timeout, o.trace, proxy)

    def connection(self) -> HttpConnection:
        return HttpConnection(self.endpoint, max_body=10_000_000)

    def headers(
        self, extra: dict[str, str] | None = None, *, origin: bool = True
    ) -> dict[str, str]:
        """The headers of every request: ``--origin`` (unless ``origin`` is false, as a
        non-browser client sends none), ``--header``, then ``extra``."""
        headers = {"Accept": "*/*", "User-Agent": "aiosio-doctor"}
        if origin and self.options.origin:
            headers["Origin"] = self.options.origin
        headers.update(self.options.headers)
        if extra:
            headers.update(extra)
        return headers
