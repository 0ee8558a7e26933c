"""``aiosio serve servers.aiosio_native:sio --workers N`` (the benchmark handlers of
aiosio_native.py, in N worker processes behind one port, sticky; the master carries the
broadcasts between them): the same code path as the command, through its ``main(argv)``.

Prints ``READY <pid> <port>`` once the port answers (the master starts listening once every
worker is up). Run with the project's .venv.

    python aiosio_workers.py PORT [WORKERS]   (WORKERS: 2 by default)
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from aiosio.cli import main


def announce(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
            continue
        print(f"READY {os.getpid()} {port}", flush=True)
        return


if __name__ == "__main__":
    port, workers = int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "2"
    # the workers load aiosio_native from this directory
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH"))))
    sys.path.insert(0, here)
    threading.Thread(target=announce, args=(port,), daemon=True).start()
    args = ["serve", "aiosio_native:sio", "--port", str(port), "--workers", workers]
    sys.exit(main([*args, "--log-level", "warning"]))
