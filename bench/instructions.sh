#!/usr/bin/env bash
# User-space instructions per proxied request, counted by Valgrind
# (callgrind): a measure of the proxy's own work that does not move with
# the host's noise, unlike time. Each contestant runs under callgrind with
# one worker; after 2,000 warm-up requests its counters are zeroed, N
# requests are sent (h2load, HTTP/1.1 keep-alive, 16 connections, one
# request at a time each) and the counters dumped. Kernel work (system
# calls, TCP) is not counted: see compare.sh for whole CPU time.
#
#   bench/instructions.sh                       # Gatehouse, nginx, HAProxy
#   bench/instructions.sh /tmp/gatehouse-before target/release/gatehouse
#   N=50000 CONTESTANTS="gatehouse nginx" bench/instructions.sh
#   KEEP=/tmp/cg CONTESTANTS=gatehouse bench/instructions.sh   # keep the
#       profiles, for callgrind_annotate --inclusive=yes /tmp/cg/callgrind.*
#   SIM=1 bench/instructions.sh   # also simulate caches and branch
#       prediction: instruction- and data-cache misses and mispredicted
#       branches per request
#
# Arguments are Gatehouse binaries to measure (default
# target/release/gatehouse). Needs valgrind, h2load, nginx and haproxy.
# Under Valgrind every contestant runs about 50 times slower, so event
# loops batch differently than at full speed; compare contestants with
# each other, not with compare.sh's times.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

N=${N:-20000}
CONTESTANTS=${CONTESTANTS:-gatehouse nginx haproxy}
for tool in valgrind callgrind_control h2load; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install valgrind nghttp2-client)" >&2; exit 1; }
done
binaries=("$@")
[ ${#binaries[@]} -gt 0 ] || binaries=(target/release/gatehouse)
build_release
# nginx.conf and haproxy.cfg have TLS listeners: they need the certificate.
bench/certs.sh
target/release/gatehouse-bench-upstream 127.0.0.1:18980 &
pids+=($!)
sleep 0.3

# measure NAME PORT HOST COMMAND...: prints "NAME instructions/request".
measure() {
  local name=$1 port=$2 host=$3
  shift 3
  local sim=()
  [ "${SIM:-0}" = 1 ] && sim=(--cache-sim=yes --branch-sim=yes)
  valgrind --tool=callgrind "${sim[@]}" --callgrind-out-file="$work/out.%p" "$@" >"$work/log" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    curl -s -o /dev/null -H "Host: $host" "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  h2load --h1 -n 2000 -c 16 -m 1 -H ":authority: $host" "http://127.0.0.1:$port/" >/dev/null
  callgrind_control -z "$pid" >/dev/null 2>&1
  local result
  result=$(h2load --h1 -n "$N" -c 16 -m 1 -H ":authority: $host" "http://127.0.0.1:$port/")
  grep -q "$N succeeded" <<<"$result" || { echo "$name: not every request succeeded" >&2; grep requests: <<<"$result" >&2; }
  callgrind_control -d "$pid" >/dev/null 2>&1
  # A control command is taken up when the process next runs: one more
  # request wakes it.
  curl -s -o /dev/null -H "Host: $host" "http://127.0.0.1:$port/" || true
  local dump=""
  for _ in $(seq 100); do
    dump=$(find "$work" -name "out.$pid.*" | head -1)
    [ -n "$dump" ] && grep -q '^totals:' "$dump" && break
    sleep 0.1
  done
  local total events totals
  total=$(awk '/^totals:/ {print $2}' "$dump")
  events=$(awk '/^events:/ {$1 = ""; print}' "$dump")
  totals=$(awk '/^totals:/ {$1 = ""; print}' "$dump")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    cp "$dump" "$KEEP/callgrind.$(tr -c 'a-zA-Z0-9\n' '_' <<<"$name" | head -c 60)"
  fi
  rm -f "$work"/out.*
  if [ "${SIM:-0}" = 1 ]; then
    # Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
    awk -v name="$name" -v n="$N" -v e="$events" -v t="$totals" 'BEGIN {
      split(e, k, " "); split(t, v, " "); for (i in k) x[k[i]] = v[i] / n
      printf "| %s | %.0f | %.1f | %.1f | %.1f | %.1f |\n", name, x["Ir"], x["I1mr"], x["D1mr"] + x["D1mw"],
        x["DLmr"] + x["DLmw"] + x["ILmr"], x["Bcm"] + x["Bim"] }'
  else
    awk -v name="$name" -v t="$total" -v n="$N" 'BEGIN {printf "| %s | %.0f |\n", name, t / n}'
  fi
}

if [ "${SIM:-0}" = 1 ]; then
  echo "| contestant | user-space instructions per request ($N requests) | instruction-cache misses | data-cache (L1) misses | last-level misses | mispredicted branches |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
else
  echo "| contestant | user-space instructions per request ($N requests) |"
  echo "| --- | ---: |"
fi
for c in $CONTESTANTS; do
  case $c in
    gatehouse)
      for binary in "${binaries[@]}"; do
        measure "gatehouse ($binary)" 18981 bench.local "$binary" standalone --manifests bench/gatehouse \
          --no-https --http-addr 127.0.0.1:18981 --admin-addr 127.0.0.1:18990 --worker-threads 1 \
          --log-level warn --access-log off
      done
      ;;
    nginx)
      measure nginx 18982 bench.local nginx -c "$PWD/bench/nginx.conf" -g 'master_process off;'
      ;;
    haproxy)
      measure haproxy 18984 bench.local haproxy -f bench/haproxy.cfg -db
      ;;
    *) echo "unknown contestant $c" >&2; exit 2 ;;
  esac
done
