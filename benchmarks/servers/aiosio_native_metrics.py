"""aiosio_native.py's server instrumented by ``aiosio.metrics`` (and serving ``/metrics``): what
the metrics cost, measured by benchmarks/metrics_cost.py against the same server without them.

Prints ``READY <pid> <port>`` once listening. Run with the project's .venv."""

from __future__ import annotations

import sys

from aiosio_native import ready  # the same handlers; its own __main__ does not run
from aiosio_native import sio  # the same handlers; its own __main__ does not run

import aiosio
from aiosio.metrics import instrument

instrument(sio, path="/metrics")

if __name__ == "__main__":
    aiosio.run(sio, "127.0.0.1", int(sys.argv[1]), on_started=ready)
