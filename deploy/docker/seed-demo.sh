#!/bin/sh
# The compose demo's seed: heraldd (through entrypoint.sh) and the sample publisher (seed-publish.sh)
# side by side. As the container's PID 1 this shell forwards SIGTERM/SIGINT to heraldd — a shell as
# PID 1 ignores them otherwise, and `docker stop` would kill heraldd after its timeout instead of letting
# it checkpoint and close the store — and exits with heraldd's status.
set -u
HERE=$(dirname "$0")
sh "$HERE/entrypoint.sh" start "$@" &
daemon=$!
sh "$HERE/seed-publish.sh" &
publisher=$!
trap 'kill -TERM "$daemon" "$publisher" 2>/dev/null' TERM INT
wait "$daemon"
status=$?
# a trapped signal interrupts wait (status > 128) while heraldd is still stopping: wait for its own exit
while kill -0 "$daemon" 2>/dev/null; do wait "$daemon"; status=$?; done
kill "$publisher" 2>/dev/null
exit "$status"
