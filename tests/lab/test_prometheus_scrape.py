"""A real Prometheus (Debian's package, installed by scripts/install.sh) scrapes an aiosio
server's /metrics (issue 14's proof): started in the foreground with a generated configuration
that scrapes every second, it reports the target up and the connected sockets the server counts,
read back through its own query API."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

import aiosio
from aiosio.metrics import instrument
from conftest import debian_binary
from conftest import free_port


async def query(http: httpx.AsyncClient, expression: str) -> list[dict[str, Any]]:
    answer = await http.get("/api/v1/query", params={"query": expression})
    answer.raise_for_status()
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


async def test_prometheus_scrapes_the_metrics(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    sio = aiosio.Server()
    instrument(sio, CollectorRegistry(), path="/metrics")
    server = await aiosio.serve(sio, "127.0.0.1", 0)
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: aiosio\n    metrics_path: /metrics\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{server.port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            debian_binary("prometheus", "a real Prometheus scrapes /metrics"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=log,
        stderr=log,
    )
    clients = [aiosio.Client(f"http://127.0.0.1:{server.port}", reconnection=False) for _ in "ab"]
    try:
        for client in clients:
            await client.connect()
        async with (
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{prom_port}") as http,
            asyncio.timeout(60),
        ):
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"prometheus exited: {(tmp_path / 'prometheus.log').read_text()}")
                try:
                    up = await query(http, 'up{job="aiosio"}')
                    sockets = await query(http, "aiosio_sockets_connected")
                except httpx.HTTPError:
                    up, sockets = [], []
                if up and up[0]["value"][1] == "1" and sockets:
                    break
                await asyncio.sleep(0.5)
        (connected,) = [s for s in sockets if s["metric"].get("namespace") == "/"]
        assert connected["value"][1] == "2"
        assert connected["metric"]["job"] == "aiosio"
    finally:
        for client in clients:
            await client.disconnect()
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        await server.close()
