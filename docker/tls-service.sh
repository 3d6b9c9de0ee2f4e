#!/bin/sh
# The `tls` service of docker-compose.yml (image docker/Dockerfile.tools). It shares the
# gateway container's network and process namespaces and its volumes: the releases
# (/etc/gatewayctl, a `gatewayctl deploy` target), nginx's pid file (/etc/nginx/run), the
# certificates and the ACME webroot. So `gatewayctl tls` runs here exactly as on a host:
#   - no certificate yet: `tls issue`. The gateway serves the challenge from the pending build
#     (port 80, /.well-known/acme-challenge/ from the shared webroot); once issued, gateway.yaml
#     is rebuilt with the TLS listener and deployed as a new release (nginx -t, SIGHUP to the
#     gateway's master, /ready checked). A failure is retried after RETRY_INTERVAL.
#   - then every RENEW_INTERVAL seconds: `tls renew` (due within RENEW_DAYS days, 30), which
#     reloads the gateway when anything was renewed.
set -u
FLAGS="--config ${GATEWAYCTL_CONFIG:-/srv/gateway/gateway.yaml} --target /etc/gatewayctl --prefix /etc/nginx/"
CERTS_DIR="${CERTS_DIR:-/var/lib/gatewayctl/certs}"   # tls.acme.certs_dir of gateway.yaml
RENEW_INTERVAL="${RENEW_INTERVAL:-43200}"
RETRY_INTERVAL="${RETRY_INTERVAL:-300}"
RENEW_DAYS="${RENEW_DAYS:-30}"
trap 'exit 0' TERM INT

pause() { sleep "$1" & wait $!; }

while :; do
  # no managed certificate (or no answer): issue; issue never replaces a foreign certificate
  state="$(gatewayctl tls status --json --certs-dir "$CERTS_DIR" 2>/dev/null)" || state="[]"
  if [ "$(printf '%s' "$state" | tr -d ' \n')" = "[]" ]; then
    # shellcheck disable=SC2086
    if gatewayctl tls issue $FLAGS; then pause "$RENEW_INTERVAL"; else pause "$RETRY_INTERVAL"; fi
  else
    # shellcheck disable=SC2086
    if gatewayctl tls renew --days "$RENEW_DAYS" $FLAGS; then pause "$RENEW_INTERVAL"; else pause "$RETRY_INTERVAL"; fi
  fi
done
