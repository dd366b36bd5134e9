#!/bin/sh
# Container entry point: create the data directory and keys once (idempotent), then run heraldd.
# HERALD_SEED=true makes a seed (publisher key created on first start).
set -eu
if [ "${HERALD_SEED:-false}" = "true" ]; then
  heraldd init --seed >/dev/null
  # peers trust the publisher key through a shared volume, when one is mounted
  if [ -d /shared ] && [ -w /shared ]; then cp "$HERALD_DATA_DIR/publisher.pub" /shared/publisher.pub; fi
else
  heraldd init >/dev/null
fi
if [ "${1:-start}" = "start" ]; then
  shift || true
  exec heraldd start "$@"
fi
exec "$@"
