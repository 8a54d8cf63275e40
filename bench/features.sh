#!/usr/bin/env bash
# User-space work per request on each edge feature's route, counted by
# Valgrind (callgrind with cache simulation): instructions,
# instruction-cache misses and data-cache misses per request. Each
# binary serves bench/gatehouse and bench/pgo/features.yaml with one
# worker; per route, 2,000 warm-up requests, counters zeroed, N requests
# (h2load, 16 connections, one request at a time each), counters dumped.
# Made to see what a profile-guided build does to the paths it was or was
# not trained on.
#
#   bench/features.sh target/release/gatehouse target/pgo/x86_64-unknown-linux-gnu/release/gatehouse
#   N=20000 bench/features.sh BINARY...
#
# Needs valgrind and h2load. Output: binary, route, the three counts.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

[ $# -gt 0 ] || { echo "usage: bench/features.sh BINARY..." >&2; exit 2; }
N=${N:-10000}
for tool in valgrind callgrind_control h2load; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install valgrind nghttp2-client)" >&2; exit 1; }
done
cargo build -q --release -p gatehouse-testkit
target/release/gatehouse-bench-upstream 127.0.0.1:18980 & pids+=($!)
target/release/gatehouse-bench-upstream 127.0.0.1:18979 16384 & pids+=($!)
target/release/gatehouse-bench-upstream 127.0.0.1:18978 & pids+=($!)
sleep 0.3
url=http://127.0.0.1:18981
jwt=$(sed -n 's/^jwt=//p' bench/pgo.sh)
printf '{"kind": "express", "qty": 2}' > "$work/order.json"
printf '\0\0\0\0\5hello' > "$work/grpc"

echo "| binary | route | instructions | instruction-cache misses | data-cache misses |"
echo "| --- | --- | ---: | ---: | ---: |"
for bin in "$@"; do
  rm -f "$work"/out.*
  valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$work/out.%p" "$bin" standalone \
    --manifests bench/gatehouse --manifests bench/pgo --no-https --http-addr 127.0.0.1:18981 \
    --admin-addr 127.0.0.1:18990 --worker-threads 1 --log-level warn --access-log off >/dev/null 2>&1 &
  g=$!
  for _ in $(seq 600); do curl -sf -o /dev/null http://127.0.0.1:18990/readyz && break; sleep 0.1; done
  dumps=0
  run() { # route name, h2load arguments
    local name=$1 result dump=""
    shift
    h2load -n 2000 -c 16 -m 1 "$@" >/dev/null
    callgrind_control -z "$g" >/dev/null 2>&1
    result=$(h2load -n "$N" -c 16 -m 1 "$@")
    grep -q "$N 2xx" <<<"$result" || echo "$name: $(grep '^status codes' <<<"$result")" >&2
    callgrind_control -d "$g" >/dev/null 2>&1
    dumps=$((dumps + 1))
    for _ in $(seq 100); do
      # A control command is taken up when the process next runs.
      curl -s -o /dev/null -H "Host: bench.local" "$url/" || true
      dump=$work/out.$g.$dumps
      [ -f "$dump" ] && grep -q '^totals:' "$dump" && break
      sleep 0.1
    done
    awk -v b="$bin" -v r="$name" -v n="$N" '
      /^events:/ {for (i = 2; i <= NF; i++) e[i] = $i}
      /^totals:/ {for (i = 2; i <= NF; i++) v[e[i]] = $i
        printf "| %s | %s | %.0f | %.0f | %.0f |\n", b, r, v["Ir"] / n, v["I1mr"] / n, (v["D1mr"] + v["D1mw"]) / n}' "$dump"
  }
  run keep-alive --h1 -H ":authority: bench.local" "$url/"
  run h2c -H ":authority: bench.local" "$url/"
  run api-key --h1 -H ":authority: auth.pgo" -H "x-api-key: pgo-training-key" "$url/key"
  run jwt --h1 -H ":authority: auth.pgo" -H "authorization: Bearer $jwt" "$url/jwt"
  run rewrite --h1 -H ":authority: shape.pgo" -H "x-tenant: blue" -H "x-remove: 1" "$url/api/items?page=2"
  run json-body --h1 -d "$work/order.json" -H ":authority: bodies.pgo" -H "content-type: application/json" "$url/orders"
  run peak-ewma --h1 -H ":authority: balance.pgo" "$url/ewma"
  run grpc -d "$work/grpc" -H ":authority: streams.pgo" -H "content-type: application/grpc" -H "te: trailers" \
    "$url/train.Echo/Unary"
  kill "$g" 2>/dev/null || true
  wait "$g" 2>/dev/null || true
done
