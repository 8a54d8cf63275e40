#!/usr/bin/env bash
# What observability costs, and how many series it makes.
#
# 1. HTTP/1.1 keep-alive RPS (wrk, 64 connections) through Gatehouse with
#    the access log off, with the JSON access log written to a file, and
#    with the access log plus every request traced and exported over OTLP
#    (to an nginx that answers 200). Metrics are always on; set
#    BASELINE_BIN to a gatehouse binary built without them (for example
#    from the commit before the telemetry crate) to add that row.
#    Contestants are interleaved over ROUNDS rounds; medians reported,
#    with the proxy's CPU time per request (user + system, from
#    /proc/<pid>/stat), which other load on the machine disturbs less
#    than requests per second.
# 2. Series on /metrics after one request to each of 1,000 routes.
#
#   bench/observability.sh
#   ROUNDS=5 DURATION=15s BASELINE_BIN=/tmp/gatehouse-before bench/observability.sh
#
# The proxy is pinned to CPU 0; wrk, the upstream and the span sink share
# CPU 1. Needs wrk and nginx.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
ROUTES=${ROUTES:-1000}
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk nginx)" >&2; exit 1; }
done
build_release
on_exit() {
  if [ -f "$work/nginx.pid" ]; then kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; fi
}

taskset -c 1 "$bin/gatehouse-bench-upstream" 127.0.0.1:18980 &
pids+=($!)
wait_url http://127.0.0.1:18980/

# The span sink: accepts any POST and answers 200.
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $work;
    server {
        listen 127.0.0.1:18984;
        location / { client_max_body_size 16m; return 200 "{}"; }
    }
}
EOF
taskset -c 1 nginx -c "$work/nginx.conf" -p "$work"
wait_url http://127.0.0.1:18984/

# name|binary|extra arguments
variants=(
  "access log off|$bin/gatehouse|--access-log off"
  "JSON access log to a file|$bin/gatehouse|--access-log json"
  "access log + OTLP export, every request|$bin/gatehouse|--access-log json --otlp-endpoint http://127.0.0.1:18984 --trace-sample-ratio 1"
)
if [ -n "${BASELINE_BIN:-}" ]; then
  variants=("before telemetry (baseline)|$BASELINE_BIN|" "${variants[@]}")
fi

declare -A results cpu
hz=$(getconf CLK_TCK)
# User plus system CPU time of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
  for v in "${variants[@]}"; do
    IFS='|' read -r name binary extra <<<"$v"
    # shellcheck disable=SC2086
    taskset -c 0 "$binary" standalone --manifests bench/gatehouse --no-https \
      --http-addr 127.0.0.1:18981 --admin-addr 127.0.0.1:18990 --worker-threads 1 \
      --log-level warn $extra > "$work/access.log" &
    gw=$!
    wait_url http://127.0.0.1:18981/
    taskset -c 1 wrk -t1 -c64 -d2s http://127.0.0.1:18981/ >/dev/null
    before=$(cpu_ticks "$gw")
    out=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" http://127.0.0.1:18981/)
    ticks=$(( $(cpu_ticks "$gw") - before ))
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    total=$(awk '/requests in/ {print $1}' <<<"$out")
    us=$(echo "$ticks * 1000000 / $hz / $total" | bc -l)
    lines=$(wc -l < "$work/access.log")
    kill "$gw"; wait "$gw" 2>/dev/null || true
    results["$name"]+="$rps "
    cpu["$name"]+="$us "
    printf 'round %s: %s: %s req/s, %.2f us CPU/request (%s log lines)\n' "$round" "$name" "$rps" "$us" "$lines" >&2
  done
done

first=""
echo
echo "| configuration (1 worker thread, wrk 64 connections) | requests/s (median of $ROUNDS) | vs. first row | proxy CPU µs/request (median) | vs. first row |"
echo "| --- | ---: | ---: | ---: | ---: |"
for v in "${variants[@]}"; do
  IFS='|' read -r name _ _ <<<"$v"
  m=$(echo "${results[$name]}" | median)
  c=$(echo "${cpu[$name]}" | median)
  [ -z "$first" ] && first=$m && first_cpu=$c
  printf '| %s | %.0f | %.3f | %.2f | %.3f |\n' "$name" "$m" "$(echo "$m / $first" | bc -l)" \
    "$c" "$(echo "$c / $first_cpu" | bc -l)"
done

# Series with ROUTES routes, one request each.
dir="$work/routes"; mkdir -p "$dir"
"$bin/gatehouse-gen" ingress-paths "$ROUTES" 1 18980 > "$dir/config.yaml"
"$bin/gatehouse" standalone --manifests "$dir" --no-https --http-addr 127.0.0.1:18982 \
  --admin-addr 127.0.0.1:18991 --access-log off --log-level warn &
gw=$!
pids+=("$gw")
until curl -sf http://127.0.0.1:18991/readyz >/dev/null; do sleep 0.01; done
before=$(curl -s http://127.0.0.1:18991/metrics | grep -vc '^#')
curl -s http://127.0.0.1:18991/debug/routes | python3 -c '
import json, sys
for r in json.load(sys.stdin):
    host = r["host"]
    path = r["path"].split(" ", 1)[1]
    print(f"url = \"http://127.0.0.1:18982{path}\"\nheader = \"Host: {host}\"\noutput = /dev/null\nnext")
' > "$work/curl.cfg"
curl -s --parallel --parallel-max 16 -K "$work/curl.cfg" 2>/dev/null || true
metrics=$(curl -s http://127.0.0.1:18991/metrics)
after=$(grep -vc '^#' <<<"$metrics")
routes=$(grep -c '^gatehouse_requests_total{' <<<"$metrics")
echo
echo "| series on /metrics | count |"
echo "| --- | ---: |"
echo "| before traffic, $ROUTES routes | $before |"
echo "| after one GET to each route | $after |"
echo "| of which gatehouse_requests_total | $routes |"
echo "| bytes of one scrape | $(wc -c <<<"$metrics") |"
