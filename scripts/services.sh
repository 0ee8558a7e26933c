#!/usr/bin/env bash
# Starts the services the tests need when they are not running (Redis on 127.0.0.1:6379).
set -euo pipefail
if command -v redis-cli >/dev/null 2>&1 && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  if command -v redis-server >/dev/null 2>&1; then
    mkdir -p /tmp/aiosio-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /tmp/aiosio-redis --logfile /tmp/aiosio-redis/redis.log
  fi
fi
exit 0
