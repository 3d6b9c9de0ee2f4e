#!/usr/bin/env bash
# A private Docker engine for the container tests: installs Debian's docker.io when dockerd is
# missing and starts a dockerd of its own (own socket, data and exec roots, containerd
# namespace; no bridge and no iptables rules: containers use the host network), so it
# neither needs nor touches a system engine. Idempotent: a running engine is reused.
# Prints the DOCKER_HOST to use on the last line of stdout.
# Usage: scripts/provision-docker.sh [--dir DIR] [--quiet]
#   DIR defaults to $GATEWAYCTL_DOCKER_DIR or /tmp/gatewayctl-docker.
# Stop it: kill "$(cat DIR/dockerd.pid)".
set -euo pipefail

DIR="${GATEWAYCTL_DOCKER_DIR:-/tmp/gatewayctl-docker}"
QUIET=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --quiet) QUIET=1; shift ;;
    *) echo "usage: $0 [--dir DIR] [--quiet]" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "provision-docker: $*" >&2; }
SOCK="$DIR/docker.sock"
HOST="unix://$SOCK"

if ! command -v dockerd >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { echo "provision-docker: dockerd is missing and installing docker.io needs root" >&2; exit 1; }
  say "installing Debian's docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends docker.io >&2
fi

if [ -S "$SOCK" ] && DOCKER_HOST="$HOST" docker version >/dev/null 2>&1; then
  say "engine already running on $SOCK"
  echo "$HOST"
  exit 0
fi

mkdir -p "$DIR"
NS="gwctl-$(echo "$DIR" | cksum | cut -d' ' -f1)"
say "starting dockerd on $SOCK (log: $DIR/dockerd.log)"
setsid dockerd --host "$HOST" --data-root "$DIR/data" --exec-root "$DIR/exec" --pidfile "$DIR/dockerd.pid" \
  --bridge none --iptables=false --storage-driver vfs \
  --containerd-namespace "$NS" --containerd-plugins-namespace "$NS-plugins" \
  >"$DIR/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 120); do
  if DOCKER_HOST="$HOST" docker version >/dev/null 2>&1; then
    echo "$HOST"
    exit 0
  fi
  sleep 0.5
done
echo "provision-docker: dockerd did not come up; last lines of $DIR/dockerd.log:" >&2
tail -20 "$DIR/dockerd.log" >&2 || true
exit 1
