"""Prometheus metrics of a server (``pip install "aiosio[metrics]"``): :func:`instrument` counts
what the server does into a ``prometheus_client`` registry and may serve it at ``/metrics``;
:func:`metrics_app` is the registry as an ASGI app. See docs/metrics.md."""

from aiosio.metrics.collector import METRIC_NAMES
from aiosio.metrics.instrument import Metrics
from aiosio.metrics.instrument import instrument
from aiosio.metrics.instrument import metrics_app

__all__ = ["METRIC_NAMES", "Metrics", "instrument", "metrics_app"]
