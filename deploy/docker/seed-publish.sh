#!/bin/sh
# Seed side-car of the compose demo: waits for the seed's API, generates a sample UniProt-like release
# and publishes it as sample@v1 (and its next version as sample@v2).
set -eu
API="${HERALD_API:-http://127.0.0.1:7480}"
# bounded: a seed that never becomes ready (e.g. its entry point exited) ends this script too
tries=0
until node -e "fetch('$API/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; do
  tries=$((tries + 1))
  if [ "$tries" -ge "${READY_TRIES:-120}" ]; then echo "seed-publish: $API/readyz not ready after $tries tries" >&2; exit 1; fi
  sleep 1
done
DIR="${SAMPLE_DIR:-/var/lib/herald/sample}"
node "${APP_DIR:-/opt/herald}/build/test/fixtures/release-gen.js" --out "$DIR/v1" --entries "${SAMPLE_ENTRIES:-20000}" --seed 1
node "${APP_DIR:-/opt/herald}/build/test/fixtures/release-gen.js" --out "$DIR/v2" --seed 2 --next-of "$DIR/v1"
herald --api "$API" publish sample@v1 "$DIR/v1"
herald --api "$API" publish sample@v2 "$DIR/v2"
