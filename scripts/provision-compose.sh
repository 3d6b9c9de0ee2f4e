#!/usr/bin/env bash
# Make `docker-compose` available for static validation of docker-compose.yml
# (`docker-compose -f docker-compose.yml config -q` needs no Docker engine).
#
# Uses an existing docker-compose (v1) or `docker compose` (v2 plugin) when present;
# otherwise apt-get installs Debian's docker-compose package (bookworm: 1.29).
# Idempotent: a second run is a no-op. Exits non-zero when no tool can be had.
# Prints the command to use on the last line of stdout (e.g. "docker-compose").
# Usage: scripts/provision-compose.sh [--quiet]
set -euo pipefail

QUIET=0
for arg in "$@"; do
  case "$arg" in
    --quiet) QUIET=1 ;;
    *) echo "usage: $0 [--quiet]" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "provision-compose: $*" >&2; }

if command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1; then
  say "docker-compose already installed ($(command -v docker-compose))"
  echo docker-compose
  exit 0
fi
if command -v docker >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then
  say "using the docker compose plugin"
  echo "docker compose"
  exit 0
fi

say "installing Debian's docker-compose package"
# shellcheck source=lib/apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt-install.sh"
apt_install compose docker-compose
command -v docker-compose >/dev/null 2>&1 && docker-compose version >/dev/null 2>&1 \
  || { echo "provision-compose: docker-compose still not usable after install" >&2; exit 1; }
say "installed $(docker-compose version --short 2>/dev/null || echo docker-compose)"
echo docker-compose
