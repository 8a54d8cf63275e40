#!/usr/bin/env bash
# Side-by-side proxy benchmark: Gatehouse, nginx and HAProxy in front of
# the same static upstream, plus the upstream alone as the physical
# reference. The proxy under test is pinned to CPU 0; the load generator
# and the upstream share CPU 1. Contestants are interleaved over ROUNDS
# rounds and the median of each is reported.
#
#   bench/compare.sh                 # HTTP/1.1 keep-alive (wrk) and h2c (h2load)
#   ROUNDS=5 DURATION=15s bench/compare.sh
#
# Needs nginx, haproxy, wrk and h2load (Debian: nginx haproxy wrk
# nghttp2-client). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
H2_REQUESTS=${H2_REQUESTS:-200000}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
THREADS=${THREADS:-1}

for tool in nginx haproxy wrk h2load; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx haproxy wrk nghttp2-client)" >&2; exit 1; }
done
cargo build -q --release -p gatehouse -p gatehouse-testkit
bin=target/release

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -f /tmp/gatehouse-bench-nginx.pid ]; then kill "$(cat /tmp/gatehouse-bench-nginx.pid)" 2>/dev/null || true; fi
  if [ -f /tmp/gatehouse-bench-haproxy.pid ]; then kill "$(cat /tmp/gatehouse-bench-haproxy.pid)" 2>/dev/null || true; fi
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 200); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  echo "port $1 never answered" >&2
  exit 1
}

taskset -c "$LOAD_CPU" "$bin/gatehouse-bench-upstream" 127.0.0.1:18980 &
pids+=($!)
wait_port 18980

taskset -c "$PROXY_CPU" "$bin/gatehouse" standalone --manifests bench/gatehouse \
  --http-addr 127.0.0.1:18981 --admin-addr 127.0.0.1:18990 --worker-threads "$THREADS" \
  --log-level warn --access-log off &
gatehouse_pid=$!
pids+=("$gatehouse_pid")
wait_port 18981

mkdir -p /tmp/gatehouse-bench-nginx-body
sed "s/^worker_processes 1;/worker_processes $THREADS;/" bench/nginx.conf > /tmp/gatehouse-bench-nginx.conf
taskset -c "$PROXY_CPU" nginx -c /tmp/gatehouse-bench-nginx.conf -p /tmp &
pids+=($!)
wait_port 18982

sed "s/nbthread 1/nbthread $THREADS/" bench/haproxy.cfg > /tmp/gatehouse-bench-haproxy.cfg
taskset -c "$PROXY_CPU" haproxy -f /tmp/gatehouse-bench-haproxy.cfg &
pids+=($!)
wait_port 18984

# CPU ticks (user + system) of a process and its children.
cpu_ticks() {
  local total=0
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    if [ -r "/proc/$p/stat" ]; then
      read -r -a f < "/proc/$p/stat"
      total=$((total + f[13] + f[14]))
    fi
  done
  echo "$total"
}
nginx_pid=$(cat /tmp/gatehouse-bench-nginx.pid)
haproxy_pid=$(pgrep -f "haproxy -f /tmp/gatehouse-bench-haproxy.cfg" | head -1)
declare -A http_port=([direct]=18980 [gatehouse]=18981 [nginx]=18982 [haproxy]=18984)
declare -A h2_port=([direct]=18980 [gatehouse]=18981 [nginx]=18983 [haproxy]=18985)
declare -A pid_of=([direct]=0 [gatehouse]=$gatehouse_pid [nginx]=$nginx_pid [haproxy]=$haproxy_pid)
hz=$(getconf CLK_TCK)
contestants=(direct gatehouse nginx haproxy)

# Latency as wrk prints it (e.g. 1.23ms, 850.00us) in microseconds.
to_us() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; unit = v; sub(/^[0-9.]+/, "", unit);
    if (unit == "us") print n; else if (unit == "ms") print n * 1000; else if (unit == "s") print n * 1000000; else print n }'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A rps p50 p99 cpu h2rps
for round in $(seq "$ROUNDS"); do
  for c in "${contestants[@]}"; do
    before=$(cpu_ticks "${pid_of[$c]}")
    out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency -H 'Host: bench.local' "http://127.0.0.1:${http_port[$c]}/")
    after=$(cpu_ticks "${pid_of[$c]}")
    r=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    total=$(echo "$out" | awk '/requests in/ {print $1}')
    rps[$c]+="$r "
    p50[$c]+="$(to_us "$(echo "$out" | awk '$1 == "50%" {print $2}')") "
    p99[$c]+="$(to_us "$(echo "$out" | awk '$1 == "99%" {print $2}')") "
    if [ "$c" != direct ]; then
      cpu[$c]+="$(awk -v t=$((after - before)) -v n="$total" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}') "
    fi
    h2=$(taskset -c "$LOAD_CPU" h2load -n "$H2_REQUESTS" -c 16 -m 10 -H 'Host: bench.local' "http://127.0.0.1:${h2_port[$c]}/" 2>/dev/null \
      | awk '/^finished in/ {gsub(",", "", $4); print $4}')
    h2rps[$c]+="${h2:-0} "
    echo "round $round $c: ${r} req/s, h2c ${h2:-?} req/s" >&2
  done
done

nginx_rps=$(echo "${rps[nginx]}" | tr ' ' '\n' | grep . | median)
nginx_h2=$(echo "${h2rps[nginx]}" | tr ' ' '\n' | grep . | median)
echo
echo "| contestant | HTTP/1.1 req/s | vs nginx | p50 | p99 | CPU µs/request | h2c req/s | vs nginx |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for c in "${contestants[@]}"; do
  r=$(echo "${rps[$c]}" | tr ' ' '\n' | grep . | median)
  l50=$(echo "${p50[$c]}" | tr ' ' '\n' | grep . | median)
  l99=$(echo "${p99[$c]}" | tr ' ' '\n' | grep . | median)
  h=$(echo "${h2rps[$c]}" | tr ' ' '\n' | grep . | median)
  if [ "$c" = direct ]; then cpu_med="-"; else cpu_med=$(echo "${cpu[$c]}" | tr ' ' '\n' | grep . | median); fi
  printf '| %s | %.0f | %.2f | %.0f µs | %.0f µs | %s | %.0f | %.2f |\n' \
    "$c" "$r" "$(echo "$r / $nginx_rps" | bc -l)" "$l50" "$l99" "$cpu_med" "$h" "$(echo "$h / $nginx_h2" | bc -l)"
done
