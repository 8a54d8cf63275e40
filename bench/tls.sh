#!/usr/bin/env bash
# TLS termination: Gatehouse and nginx with the same ECDSA P-256
# certificate in front of the same upstream. The proxy is pinned to CPU 0,
# wrk and the upstream to CPU 1; contestants are interleaved over ROUNDS
# rounds and the medians reported.
#
#   * handshakes/s: wrk with `Connection: close`, so every request is a new
#     TCP connection and a full TLS handshake (no resumption: wrk does not
#     resume, and nginx's session cache and tickets are off);
#   * HTTPS keep-alive req/s and latency: wrk, 64 connections.
#
#   bench/tls.sh                  ROUNDS=5 DURATION=15s bench/tls.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

for tool in nginx wrk openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx wrk openssl)" >&2; exit 1; }
done
build_release
certs=/tmp/gatehouse-bench-tls
bench/certs.sh

on_exit() {
  if [ -f /tmp/gatehouse-bench-nginx-tls.pid ]; then kill "$(cat /tmp/gatehouse-bench-nginx-tls.pid)" 2>/dev/null || true; fi
}

taskset -c "$LOAD_CPU" "$bin/gatehouse-bench-upstream" 127.0.0.1:18980 &
pids+=($!)
wait_url http://127.0.0.1:18980/

taskset -c "$PROXY_CPU" "$bin/gatehouse" standalone --manifests bench/gatehouse \
  --http-addr 127.0.0.1:18981 --https-addr 127.0.0.1:18987 --admin-addr 127.0.0.1:18990 \
  --default-certificate "$certs/cert.pem" --default-key "$certs/key.pem" \
  --worker-threads 1 --log-level warn --access-log off &
pids+=($!)
wait_url https://127.0.0.1:18987/

taskset -c "$PROXY_CPU" nginx -c "$PWD/bench/nginx-tls.conf" -p /tmp &
pids+=($!)
wait_url https://127.0.0.1:18986/

declare -A port=([gatehouse]=18987 [nginx]=18986)
contestants=(gatehouse nginx)
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; unit = v; sub(/^[0-9.]+/, "", unit);
    if (unit == "us") print n; else if (unit == "ms") print n * 1000; else if (unit == "s") print n * 1000000; else print n }'
}

declare -A hs ka p50 p99
for round in $(seq "$ROUNDS"); do
  for c in "${contestants[@]}"; do
    url="https://127.0.0.1:${port[$c]}/"
    h=$(taskset -c "$LOAD_CPU" wrk -t1 -c16 -d"$DURATION" -H 'Host: bench.local' -H 'Connection: close' "$url" \
      | awk '/Requests\/sec/ {print $2}')
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c64 -d"$DURATION" --latency -H 'Host: bench.local' "$url")
    k=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    hs[$c]+="$h "
    ka[$c]+="$k "
    p50[$c]+="$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')") "
    p99[$c]+="$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')") "
    echo "round $round $c: $h handshakes/s, $k keep-alive req/s" >&2
  done
done

med() { echo "$1" | tr ' ' '\n' | grep . | median; }
nginx_hs=$(med "${hs[nginx]}")
nginx_ka=$(med "${ka[nginx]}")
echo
echo "| contestant | handshakes/s | vs nginx | HTTPS keep-alive req/s | vs nginx | p50 | p99 |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in "${contestants[@]}"; do
  h=$(med "${hs[$c]}"); k=$(med "${ka[$c]}")
  printf '| %s | %.0f | %.2f | %.0f | %.2f | %.0f µs | %.0f µs |\n' "$c" "$h" \
    "$(echo "$h / $nginx_hs" | bc -l)" "$k" "$(echo "$k / $nginx_ka" | bc -l)" \
    "$(med "${p50[$c]}")" "$(med "${p99[$c]}")"
done
