#!/usr/bin/env bash
# Provision pebble (Let's Encrypt's small ACME test server) for the TLS end-to-end tests.
#
# Debian bookworm packages pebble 2.4.0 (`pebble` also ships pebble-challtestsrv). The
# tests run it on loopback with their own config: ACME and management endpoints on free
# ports, HTTP-01 validation (`httpPort`) pointed at the gateway's nginx, and
# `-dnsserver 127.0.0.1:<port>` aimed at a tiny DNS responder (tests/tls/dns.ts) that
# answers A 127.0.0.1 for every name, so `gw.test` resolves to the local nginx.
#
# Idempotent: does nothing when `pebble` is already on PATH (or GATEWAYCTL_PEBBLE points to
# an executable). Needs root (or sudo) for apt-get the first time.
# Usage: scripts/provision-pebble.sh [--quiet]
set -euo pipefail

QUIET=0
for arg in "$@"; do
  case "$arg" in
    --quiet) QUIET=1 ;;
    *) echo "usage: $0 [--quiet]" >&2; exit 2 ;;
  esac
done
say() { [ "$QUIET" = 1 ] || echo "provision-pebble: $*"; }

if [ -n "${GATEWAYCTL_PEBBLE:-}" ] && [ -x "$GATEWAYCTL_PEBBLE" ]; then
  say "using $GATEWAYCTL_PEBBLE"
  exit 0
fi
if command -v pebble >/dev/null 2>&1; then
  say "pebble already installed at $(command -v pebble)"
  exit 0
fi

say "installing Debian package pebble"
# shellcheck source=lib/apt-install.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/apt-install.sh"
apt_install pebble pebble
command -v pebble >/dev/null || { echo "provision-pebble: pebble not on PATH after install" >&2; exit 1; }
say "pebble installed at $(command -v pebble)"
