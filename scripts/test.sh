#!/usr/bin/env bash
# The whole test suite: quality gates (ruff, mypy --strict) then pytest with branch coverage
# (tests/packaging builds the wheel and installs it into fresh venvs, bare and per extra).
# Installs what is missing first, so it runs on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
bash scripts/services.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest --cov --cov-report=term "$@"
