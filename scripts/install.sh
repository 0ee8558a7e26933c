#!/usr/bin/env bash
# Installs everything aiosio needs on a fresh machine: a virtual environment with the package and
# its test tools (.venv), the npm packages the interop tests drive (tests/js/node_modules), and, as
# root, Debian's nginx, chromium, openssl and prometheus for the fault lab (tests/lab) and
# tinyproxy for the client's proxy tests, said before it does it (AIOSIO_NO_SYSTEM_PACKAGES=1
# skips them).
# Users of the library need none of this: pip install aiosio (see README.md, "Install").
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.aiosio-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi

if command -v npm >/dev/null 2>&1; then
  if [ ! -d tests/js/node_modules ] || [ tests/js/package-lock.json -nt tests/js/node_modules ]; then
    (cd tests/js && npm ci --no-audit --no-fund --loglevel=error)
    touch tests/js/node_modules
  fi
else
  echo "install.sh: npm not found; the interop tests need Node 20 and npm" >&2
  exit 1
fi

# The fault lab (tests/lab) runs Debian's nginx in front of the servers and Debian's chromium
# (driven by playwright-core from tests/js, which downloads no browser).
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || missing+=(chromium)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# The client behind an HTTP proxy (tests/io/test_client_proxy.py starts its own tinyproxy).
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || missing+=(tinyproxy)
# A real Prometheus scraping /metrics (tests/lab/test_prometheus_scrape.py starts its own).
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ] && [ -n "${AIOSIO_NO_SYSTEM_PACKAGES:-}" ]; then
  echo "install.sh: AIOSIO_NO_SYSTEM_PACKAGES is set: not installing ${missing[*]};" \
    "the fault lab (tests/lab) will fail without them" >&2
elif [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install.sh: installing ${missing[*]} system-wide with apt-get (with their" \
      "dependencies: chromium alone is several hundred MB) for the fault lab (tests/lab)," \
      "which runs nginx in front of the servers and a real browser against them, and for" \
      "the client's proxy tests (tinyproxy) and a Prometheus scrape (prometheus);" \
      "set AIOSIO_NO_SYSTEM_PACKAGES=1 to skip" >&2
    export DEBIAN_FRONTEND=noninteractive
    # The package lists are refreshed only when installing from them fails (none, or stale).
    if ! apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
      apt-get update -qq
      apt-get install -y -qq "${missing[@]}"
    fi
  else
    echo "install.sh: ${missing[*]} not installed and not root: the fault lab (tests/lab)" \
      "will fail; install them with apt-get install -y ${missing[*]}" >&2
  fi
fi
