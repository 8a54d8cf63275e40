#!/usr/bin/env bash
# Starts three echo backends and Gatehouse in standalone mode on the
# quickstart manifests, prints requests to try, and stops everything on
# Ctrl-C.
set -euo pipefail

bin_dir=${1:-target/debug}
http_addr=${2:-127.0.0.1:8080}
admin_addr=${3:-127.0.0.1:9901}
port=${http_addr##*:}

"$bin_dir/gatehouse-echo" a=127.0.0.1:9001 b=127.0.0.1:9002 c=127.0.0.1:9003 &
echo_pid=$!
trap 'kill "$echo_pid" 2>/dev/null || true' EXIT

cat <<MSG

Gatehouse is starting on http://$http_addr (admin on http://$admin_addr).
Try, from another terminal:

  curl -H 'Host: web.localhost' http://localhost:$port/              # Ingress, Prefix /   -> echo a
  curl -H 'Host: web.localhost' http://localhost:$port/shop/cart     # Ingress, Prefix /shop -> echo b
  curl -H 'Host: web.localhost' http://localhost:$port/about         # Ingress, Exact /about -> echo c
  curl -H 'Host: web.localhost' http://localhost:$port/rotate        # round robin over a, b, c
  curl -H 'Host: api.localhost' http://localhost:$port/v1/orders     # ApiRoute, 90/10 split a/b
  curl -H 'Host: api.localhost' -H 'x-beta: true' http://localhost:$port/v1/orders   # header match -> c
  curl -k --resolve web.localhost:8443:127.0.0.1 https://web.localhost:8443/about   # HTTPS
  curl 'http://$admin_addr/debug/snapshot'                          # the live routing table

Edit examples/quickstart/*.yaml and the changes apply at once. Ctrl-C stops.

MSG

"$bin_dir/gatehouse" standalone --manifests examples/quickstart \
  --http-addr "$http_addr" --admin-addr "$admin_addr" \
  --https-addr "${https_addr:-127.0.0.1:8443}"
