#!/bin/sh
# Container entry point: create the data directory and keys once (idempotent), then run heraldd.
# HERALD_SEED=true makes a seed (publisher key created on first start).
# EXPORT_PUBLISHER_KEY_TO=<file> (seed only): copy the publisher's public key there for the peers to
# trust (the compose demo's shared volume). A copy that cannot be made stops the container with exit 2
# and says why, instead of leaving the peers to fail later on a missing key.
set -eu
if [ "${HERALD_SEED:-false}" = "true" ]; then
  heraldd init --seed >/dev/null
  if [ -n "${EXPORT_PUBLISHER_KEY_TO:-}" ]; then
    dir=$(dirname "$EXPORT_PUBLISHER_KEY_TO")
    if ! cp "$HERALD_DATA_DIR/publisher.pub" "$EXPORT_PUBLISHER_KEY_TO.tmp" 2>/dev/null \
       || ! chmod 0644 "$EXPORT_PUBLISHER_KEY_TO.tmp" || ! mv -f "$EXPORT_PUBLISHER_KEY_TO.tmp" "$EXPORT_PUBLISHER_KEY_TO"; then
      echo "entrypoint: cannot write $EXPORT_PUBLISHER_KEY_TO: $dir must be writable by uid $(id -u) (owner: $(stat -c %u:%g "$dir" 2>/dev/null || echo missing)); run deploy/docker/init-shared.sh on it as root" >&2
      exit 2
    fi
  fi
else
  heraldd init >/dev/null
fi
if [ "${1:-start}" = "start" ]; then
  shift || true
  exec heraldd start "$@"
fi
exec "$@"
