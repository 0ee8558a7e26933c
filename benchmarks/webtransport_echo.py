"""WebTransport beside WebSocket: the aiosio client and server in one process, acknowledged
echoes over each transport, sequential (one round trip at a time) and 3,000 in flight.

    .venv/bin/python benchmarks/webtransport_echo.py

The Node load generator (loadgen.mjs) cannot drive WebTransport here (Node's WebTransport
package, @fails-components/webtransport, does not build on this machine), so both ends are
aiosio's: the numbers compare the two transports under the same client, not against Node. Both
ends share one CPU, and aioquic is mostly Python (QUIC packets, their acknowledgements and their
encryption per message), so WebTransport costs more CPU per message than WebSocket here. A
development certificate is made with openssl for the run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import aiosio

N = 3000


def certificate() -> tuple[Path, Path, str]:
    folder = Path(tempfile.mkdtemp())
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "10", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    return cert, key, base64.b64encode(hashlib.sha256(der).digest()).decode()


async def main() -> None:
    cert, key, digest = certificate()
    sio = aiosio.Server(transports=("polling", "websocket", "webtransport"))
    sio.on("echo", lambda socket, text: text)
    server = await aiosio.serve(
        sio, "127.0.0.1", 0, webtransport=aiosio.WebTransport(certfile=cert, keyfile=key)
    )
    url = f"http://127.0.0.1:{server.port}"
    for transport in ("websocket", "webtransport") * 2:
        client = aiosio.Client(
            url, transports=[transport], server_certificate_hashes=[digest], reconnection=False
        )
        await client.connect()
        for _ in range(200):  # warm up
            await client.emit_with_ack("echo", "x", timeout=5)
        start = time.perf_counter()
        for _ in range(N):
            await client.emit_with_ack("echo", "hello", timeout=5)
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        await asyncio.gather(*(client.emit_with_ack("echo", "hello", timeout=60) for _ in range(N)))
        parallel = time.perf_counter() - start
        print(
            f"{transport:13s} sequential {N / sequential:6.0f} acks/s "
            f"({sequential / N * 1e6:5.0f} us per round trip); "
            f"{N} in flight {N / parallel:6.0f} acks/s"
        )
        await client.disconnect()
    await server.close()


if __name__ == "__main__":
    asyncio.run(main())
