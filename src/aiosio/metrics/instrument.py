"""``instrument(sio, ...)``: Prometheus metrics of one server, read through the hooks the
server offers to tools that watch it, so that a server nobody instruments pays nothing:

- the Engine.IO server's ``connection`` and ``connection_error`` events (handshakes, refusals
  by code and cause), and each session's ``upgrade`` and ``slow_client`` events;
- :meth:`~aiosio.Server.add_packet_listener` (messages and bytes in and out);
- :meth:`~aiosio.Server.on_new_namespace` and, for each namespace, its handlers'
  :meth:`~aiosio.server.handlers.Handlers.wrap_events` and ``ack_timer`` (handler durations and
  errors, acknowledgement round trips) and its adapter's ``broadcast_listener``;
- the cluster adapter's ``health``, read when Prometheus scrapes, as are the sockets per
  namespace and the sessions per transport.

Labels stay bounded: a namespace is named as the server declared it (a child of a dynamic
namespace by its family's pattern), an event by the name of its handler, a refusal by its code
and the reference's cause name; never a socket id, a room or a client's value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiosio._eager import Callback
from aiosio._extras import import_extra
from aiosio.engine.http import HttpRequest
from aiosio.engine.http import HttpResponse
from aiosio.engine.server import ConnectionRejected
from aiosio.engine.server import EngineSocket
from aiosio.metrics.collector import ServerCollector
from aiosio.metrics.counts import ACK_BUCKETS
from aiosio.metrics.counts import HandlerStats
from aiosio.metrics.counts import Histogram
from aiosio.metrics.counts import ServerCounts
from aiosio.metrics.counts import ack_timer
from aiosio.metrics.counts import timed_handler
from aiosio.metrics.labels import family_label
from aiosio.metrics.labels import namespace_label
from aiosio.server.handlers import Handlers
from aiosio.server.namespace import Namespace
from aiosio.server.server import Server

__all__ = ["Metrics", "instrument", "metrics_app"]

FEATURE = "aiosio.metrics"


def instrument(sio: Server, registry: Any = None, *, path: str | None = None) -> Metrics:
    """Count what ``sio`` does, for Prometheus (needs ``pip install "aiosio[metrics]"``).

    :param registry: the ``prometheus_client`` ``CollectorRegistry`` the metrics join
        (default: ``prometheus_client.REGISTRY``, which ``prometheus_client``'s own servers
        expose).
    :param path: also answer Prometheus at this path (``"/metrics"``) on the server itself,
        native or ASGI (through :meth:`~aiosio.Server.mount`).
    :raises ImportError: ``prometheus_client`` is not installed (the message names the extra).
    :raises ValueError: ``sio`` is already instrumented, or ``path`` cannot be mounted.
    """
    prometheus = import_extra("prometheus_client", extra="metrics", feature=FEATURE)
    if sio.sockets.handlers.wrapper is not None:
        raise ValueError("this server is already instrumented")
    metrics = Metrics(sio, prometheus.REGISTRY if registry is None else registry)
    if path is not None:
        try:
            sio.mount(path, metrics.endpoint(path))
        except ValueError:
            metrics.registry.unregister(metrics.collector)  # a refused mount changes nothing
            raise
    metrics.follow()
    return metrics


def metrics_app(registry: Any = None) -> Any:
    """``prometheus_client``'s ASGI application serving ``registry`` (default: its
    ``REGISTRY``), for applications that route ``/metrics`` themselves."""
    prometheus = import_extra("prometheus_client", extra="metrics", feature=FEATURE)
    return prometheus.make_asgi_app(prometheus.REGISTRY if registry is None else registry)


class Metrics:
    """The counts of one server, made by :func:`instrument`, registered in :attr:`registry`."""

    def __init__(self, sio: Server, registry: Any) -> None:
        self.sio = sio
        self.registry = registry
        self.counts = ServerCounts()
        self.collector = ServerCollector(sio, self.counts)
        registry.register(self.collector)

    def follow(self) -> None:
        sio = self.sio
        sio.engine.on("connection", self._session_opened)
        sio.engine.on("connection_error", self._refused)
        sio.add_packet_listener(self.counts.traffic)
        for family in sio.dynamic_namespaces:
            self._watch_handlers(family.handlers, family_label(family))
        for nsp in list(sio.namespaces.values()):
            self._watch(nsp)
        sio.on_new_namespace(self._watch)

    # -- the engine -------------------------------------------------------------------------------

    def _session_opened(self, conn: EngineSocket) -> None:
        transport = conn.transport
        handshakes = self.counts.handshakes
        handshakes[transport] = handshakes.get(transport, 0) + 1
        if transport == "polling":
            conn.on("upgrade", self._upgraded)
        conn.on("slow_client", self._slow_client)

    def _upgraded(self) -> None:
        self.counts.upgrades += 1

    def _slow_client(self, _queued: int, _limit: int) -> None:
        self.counts.slow_clients += 1

    def _refused(self, error: ConnectionRejected) -> None:
        # The reference's context name when there is one, else the code's message: both are
        # from a fixed set, never what the client sent.
        cause = str(error.context.get("name") or error.message)
        key = (str(error.code), cause)
        refusals = self.counts.refusals
        refusals[key] = refusals.get(key, 0) + 1

    # -- the namespaces ---------------------------------------------------------------------------

    def _watch(self, nsp: Namespace) -> None:
        label = namespace_label(self.sio, nsp)
        for family in self.sio.dynamic_namespaces:
            if family.children.get(nsp.name) is nsp and family.handlers.wrapper is None:
                self._watch_handlers(family.handlers, label)  # declared after instrument()
        self._watch_handlers(nsp.handlers, label)
        counts = self.counts.broadcasts.setdefault(label, [0, 0])

        def broadcast(recipients: int) -> None:
            counts[0] += 1
            counts[1] += recipients

        nsp.adapter.broadcast_listener = broadcast

    def _watch_handlers(self, handlers: Handlers, label: str) -> None:
        """Time the handlers (a child of a dynamic namespace copied its family's watch)."""
        if handlers.wrapper is None:
            handlers.wrap_events(self._handler_wrapper(label))
        if handlers.ack_timer is None:
            handlers.ack_timer = ack_timer(
                self.counts.acks.setdefault(label, Histogram(ACK_BUCKETS))
            )

    def _handler_wrapper(self, label: str) -> Callable[[str, Callback], Callable[..., Any]]:
        def wrap(event: str, callback: Callback) -> Callable[..., Any]:
            stats = self.counts.handlers.setdefault((label, event), HandlerStats())
            return timed_handler(callback, stats)

        return wrap

    # -- the endpoint -----------------------------------------------------------------------------

    def endpoint(self, path: str) -> Callable[[HttpRequest], Any]:
        """The handler :func:`instrument` mounts at ``path``: the registry in Prometheus' text
        format, for a GET of exactly ``path``."""
        prometheus = import_extra("prometheus_client", extra="metrics", feature=FEATURE)
        registry = self.registry
        sio = self.sio

        async def serve_metrics(request: HttpRequest) -> HttpResponse:
            if request.path != path:
                return sio.not_found(request)
            if request.method not in ("GET", "HEAD"):
                return HttpResponse(405, [("Allow", "GET, HEAD")], b"")
            body = prometheus.generate_latest(registry)
            headers = [("Content-Type", prometheus.CONTENT_TYPE_LATEST)]
            return HttpResponse(200, headers, b"" if request.method == "HEAD" else body)

        return serve_metrics
