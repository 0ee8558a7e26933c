#!/usr/bin/env bash
# The benchmarks in one command: installs the peers (idempotent), then runs the scenarios.
#
#   bash benchmarks/run.sh [--quick] [--scenario NAME] [--servers a,b] [--runs N] [--update-doc]
#
# Peers: python-socketio on uvicorn and on aiohttp in benchmarks/.venv-peers, Node socket.io 4.8
# (and the load generator's ws) in benchmarks/node_modules. aiosio runs from the project's .venv.
set -euo pipefail
cd "$(dirname "$0")"

command -v taskset >/dev/null || { echo "run.sh: taskset not found: apt-get install util-linux" >&2; exit 1; }
command -v node >/dev/null && command -v npm >/dev/null || { echo "run.sh: needs Node 20 and npm" >&2; exit 1; }

# 10000 idle connections (100 000 in idle-100k) need as many descriptors in the server and in the
# load generator: the limit goes up to the hard limit, at most 131072 (this shell and what it runs).
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 131072 ]; then ulimit -n 131072; else ulimit -n "$hard"; fi
if [ "$(ulimit -n)" -lt 10100 ]; then
  echo "run.sh: warning: ulimit -n is $(ulimit -n); idle-10k needs more than 10100" >&2
fi

if ! ../.venv/bin/python -c "import aiosio, uvicorn, uvloop, httptools" 2>/dev/null; then
  bash ../scripts/install.sh
fi

stamp=.venv-peers/.installed
if [ ! -f "$stamp" ] || [ requirements-peers.txt -nt "$stamp" ]; then
  [ -x .venv-peers/bin/python ] || python3 -m venv .venv-peers
  .venv-peers/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-peers.txt
  touch "$stamp"
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi

exec ../.venv/bin/python run.py "$@"
