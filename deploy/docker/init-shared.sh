#!/bin/sh
# One-shot init step of the compose demo, run as root before the seed: a fresh Docker volume can be
# root-owned (an existing one from an older image, a bind mount, another engine), while heraldd runs as
# the image's numeric user. Hand the directory to that user; readable by everyone, so the labs (same
# uid, read-only mount) can read the publisher key.
# usage: init-shared.sh [dir (/shared)] [uid:gid (10001:10001, the image's USER)] [mode (0755)]
# (the Helm chart's optional lab init container uses it for the host data directory, mode 0700)
set -eu
DIR="${1:-/shared}"
OWNER="${2:-10001:10001}"
MODE="${3:-0755}"
mkdir -p "$DIR"
chown "$OWNER" "$DIR"
chmod "$MODE" "$DIR"
