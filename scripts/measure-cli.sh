#!/usr/bin/env bash
# CLI start-up cost: median wall time and maximum resident set size over several runs of
#   gatewayctl --version
#   gatewayctl validate -c gateway.yaml      (the demo config)
#   gatewayctl build -c gateway.yaml -o <scratch dir>
# through bin/gatewayctl.js, as a user runs it. Rebuilds the bundle first (lib/gatewayctl.mjs)
# so the figures are those of the current sources.
#
#   scripts/measure-cli.sh [--runs N] [--no-build] [--config FILE]
#
# Budget: --version under 150 ms and 80 MiB, validate of the demo under 300 ms. Prints one
# line per command: name, median wall ms, median CPU ms (user + system: less sensitive than
# wall time to other load on the machine), max RSS MiB, and the budget verdict (on wall time
# and RSS); exit status 0 (the figures are the output). Needs GNU time at /usr/bin/time
# (Debian: apt-get install time).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
runs=7
build=1
config="$root/gateway.yaml"
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    --config) config="$2"; shift 2 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "measure-cli: unknown argument $1" >&2; exit 2 ;;
  esac
done

TIME=/usr/bin/time
if ! "$TIME" -f '%M' true >/dev/null 2>&1; then
  echo "measure-cli: GNU time is required at /usr/bin/time (Debian: apt-get install time)" >&2
  exit 2
fi
[ "$build" = 1 ] && node "$root/scripts/build-cli.mjs"

scratch="$(mktemp -d /tmp/gatewayctl-measure.XXXXXX)"
trap 'rm -rf "$scratch"' EXIT
cli=(node "$root/bin/gatewayctl.js")

median_of() {
  printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}

# measure NAME ARGS...: runs the command $runs times (plus one unmeasured warm-up for the
# file cache); every run must succeed and print nothing on stderr (a stale-bundle note from
# the launcher would mean the sources ran through tsx).
measure() {
  local name="$1"; shift
  local walls=() cpus=() rss_max=0 i t0 t1 rss user sys
  "${cli[@]}" "$@" >/dev/null 2>&1 || true
  for ((i = 0; i < runs; i++)); do
    t0=$(date +%s%N)
    if ! "$TIME" -f '%M %U %S' -o "$scratch/rss" "${cli[@]}" "$@" >"$scratch/out" 2>"$scratch/err"; then
      echo "measure-cli: gatewayctl $* failed:" >&2
      cat "$scratch/err" >&2
      exit 1
    fi
    t1=$(date +%s%N)
    if [ -s "$scratch/err" ]; then
      echo "measure-cli: gatewayctl $* wrote to stderr:" >&2
      cat "$scratch/err" >&2
      exit 1
    fi
    walls+=($(((t1 - t0) / 1000000)))
    read -r rss user sys < <(tail -n 1 "$scratch/rss")
    cpus+=($(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }'))
    [ "$rss" -gt "$rss_max" ] && rss_max=$rss
  done
  local median cpu
  median=$(median_of "${walls[@]}")
  cpu=$(median_of "${cpus[@]}")
  local budget_ms="${BUDGET_MS[$name]:-}" budget_mib="${BUDGET_MIB[$name]:-}" verdict=""
  local mib
  mib=$(awk -v k="$rss_max" 'BEGIN { printf "%.1f", k / 1024 }')
  if [ -n "$budget_ms" ]; then
    verdict="budget ${budget_ms} ms"
    [ "$median" -lt "$budget_ms" ] && verdict+=" ok" || verdict+=" OVER"
  fi
  if [ -n "$budget_mib" ]; then
    verdict+=", ${budget_mib} MiB"
    awk -v k="$rss_max" -v b="$budget_mib" 'BEGIN { exit !(k / 1024 < b) }' && verdict+=" ok" || verdict+=" OVER"
  fi
  printf '%-10s median_wall_ms=%-5s median_cpu_ms=%-5s max_rss_mib=%-6s runs=%s%s\n' "$name" "$median" "$cpu" "$mib" "$runs" "${verdict:+  $verdict}"
}

declare -A BUDGET_MS=([--version]=150 [validate]=300)
declare -A BUDGET_MIB=([--version]=80)

echo "node $(node --version), $(nproc) CPU(s), load $(cut -d' ' -f1-3 /proc/loadavg)"
measure --version --version
measure validate validate -c "$config"
measure build build -c "$config" -o "$scratch/dist"
