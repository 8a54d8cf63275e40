#!/usr/bin/env bash
# Side-by-side proxy benchmark: Gatehouse, nginx and HAProxy in front of
# the same static upstreams, plus the upstream alone as the physical
# reference, at equal worker threads (THREADS_LIST, 1 then 2).
#
# The proxy under test is pinned to CPU 0 (all its threads); the load
# generators and the upstreams share CPU 1. Scenarios (SCENARIOS):
#   keepalive  HTTP/1.1 keep-alive, 13-byte response (wrk, 64 connections)
#   16k        the same with a 16 KiB response
#   h2c        HTTP/2 without TLS (h2load, 16 connections x 10 streams)
#   https      HTTPS keep-alive (wrk over TLS 1.3)
#   close      a new connection per request (Connection: close)
#   ratelimit  a local rate limit on the route that never triggers
#   routes10k  10,000 routes loaded (1,000 hosts), a request to one of them
#   cache      a response cache hit
# Besides the three proxies, `relay` is HAProxy in TCP mode
# (bench/relay.cfg): it copies
# bytes between each client connection and an upstream connection of its
# own without reading HTTP (keepalive only), which makes its cost the
# floor for a proxy moving small HTTP/1.1 keep-alive requests through
# sockets. (Elsewhere it is no floor: with 16 KiB responses its 16 KiB
# buffers take two reads and writes per response, over h2c it passes the
# client's multiplexed streams through as they are, and for close it
# opens an upstream connection per request that the proxies keep alive.)
# Each scenario gives requests/s (wrk/h2load, closed loop) and the proxy's
# CPU time per request (user + system from /proc/<pid>/stat, over its
# processes); the HTTP/1.1 keep-alive scenarios also get p50/p99 from a
# fixed-rate run (gatehouse-load at RATE req/s, latency measured from each
# request's scheduled send time). Contestants are interleaved within each
# round, and each round starts with a different one; medians of ROUNDS
# rounds; ratios are to nginx in the same run.
# RSS is taken after the rounds. The host's steal time over the rounds is
# printed under each table: on a shared virtual machine, a run with much
# of it measured the host as well.
#
#   bench/compare.sh
#   ROUNDS=5 DURATION=10s THREADS_LIST="1 2" SCENARIOS="keepalive https" bench/compare.sh
#   GATEHOUSE=$(bench/pgo.sh | tail -1) bench/compare.sh   # the profile-guided build
#
# Needs nginx, haproxy, wrk, h2load and openssl (Debian: nginx haproxy wrk
# nghttp2-client openssl). Prints Markdown tables.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5s}
CONNECTIONS=${CONNECTIONS:-64}
H2_REQUESTS=${H2_REQUESTS:-100000}
RATE=${RATE:-10000}
LATENCY_SECONDS=${LATENCY_SECONDS:-5}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
THREADS_LIST=${THREADS_LIST:-1 2}
SCENARIOS=${SCENARIOS:-keepalive 16k h2c https close ratelimit routes10k cache}

for tool in nginx haproxy wrk h2load openssl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install nginx haproxy wrk nghttp2-client openssl)" >&2; exit 1; }
done
build_release
# The Gatehouse binary under test (a profile-guided build: bench/pgo.sh).
GATEHOUSE=${GATEHOUSE:-$bin/gatehouse}
certs=/tmp/gatehouse-bench-tls
bench/certs.sh

proxy_pids=()
stop_proxies() {
  for p in "${proxy_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for f in /tmp/gatehouse-bench-nginx.pid /tmp/gatehouse-bench-nginx10k.pid /tmp/gatehouse-bench-haproxy.pid; do
    if [ -f "$f" ]; then kill "$(cat "$f")" 2>/dev/null || true; rm -f "$f"; fi
  done
  proxy_pids=()
  sleep 0.5
}
on_exit() { stop_proxies; }

# The upstreams listen on every loopback address: the 10,000-route
# configuration spreads its endpoints over 127.0.0.0/8.
taskset -c "$LOAD_CPU" "$bin/gatehouse-bench-upstream" 0.0.0.0:18980 &
pids+=($!)
taskset -c "$LOAD_CPU" "$bin/gatehouse-bench-upstream" 0.0.0.0:18979 16384 &
pids+=($!)
wait_url http://127.0.0.1:18980/
wait_url http://127.0.0.1:18979/

# 10,000 routes for Gatehouse (Ingress paths, 10 per host) and the same
# hosts and locations for nginx.
mkdir -p "$work/gatehouse10k"
"$bin/gatehouse-gen" ingress-paths 10000 1 18980 > "$work/gatehouse10k/routes.yaml"
{
  echo "worker_processes 1; daemon off; pid /tmp/gatehouse-bench-nginx10k.pid;"
  echo "error_log /tmp/gatehouse-bench-nginx10k-error.log warn;"
  echo "events { worker_connections 4096; }"
  echo "http { access_log off; keepalive_requests 1000000; server_names_hash_max_size 4096;"
  echo "  client_body_temp_path /tmp/gatehouse-bench-nginx-body; proxy_temp_path /tmp/gatehouse-bench-nginx-proxy;"
  echo "  fastcgi_temp_path /tmp/gatehouse-bench-nginx-fastcgi; uwsgi_temp_path /tmp/gatehouse-bench-nginx-uwsgi; scgi_temp_path /tmp/gatehouse-bench-nginx-scgi;"
  echo "  upstream backend { server 127.0.0.1:18980; keepalive 128; }"
  echo "  proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_set_header Host \$host;"
  echo "  proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for; proxy_set_header X-Real-IP \$remote_addr;"
  for i in $(seq 0 999); do
    printf '  server { listen 127.0.0.1:18992; server_name host-%d.example.com;' "$i"
    for p in $(seq 0 9); do
      if [ $((p % 3)) -eq 0 ]; then eq="= "; else eq=""; fi
      printf ' location %s/api/v%d/items-%d { proxy_pass http://backend; }' "$eq" "$p" "$i"
    done
    echo " }"
  done
  echo "}"
} > "$work/nginx10k.conf"

# CPU ticks (user + system) of processes and their children.
cpu_ticks() {
  local total=0
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null || true; done); do
    if [ -r "/proc/$p/stat" ]; then
      read -r -a f < "/proc/$p/stat"
      total=$((total + f[13] + f[14]))
    fi
  done
  echo "$total"
}
hz=$(getconf CLK_TCK)

start_proxies() { # threads
  local t=$1
  taskset -c "$PROXY_CPU" "$GATEHOUSE" standalone --manifests bench/gatehouse --worker-threads "$t" \
    --http-addr 127.0.0.1:18981 --https-addr 127.0.0.1:18987 --admin-addr 127.0.0.1:18990 \
    --default-certificate "$certs/cert.pem" --default-key "$certs/key.pem" \
    --log-level warn --access-log off &
  proxy_pids+=($!)
  gatehouse_pid=$!
  taskset -c "$PROXY_CPU" "$GATEHOUSE" standalone --manifests "$work/gatehouse10k" --no-https \
    --worker-threads "$t" --http-addr 127.0.0.1:18991 --admin-addr 127.0.0.1:18993 \
    --log-level warn --access-log off &
  proxy_pids+=($!)
  gatehouse10k_pid=$!
  sed "s/^worker_processes 1;/worker_processes $t;/" bench/nginx.conf > "$work/nginx.conf"
  taskset -c "$PROXY_CPU" nginx -c "$work/nginx.conf" -p /tmp &
  proxy_pids+=($!)
  sed "s/^worker_processes 1;/worker_processes $t;/" "$work/nginx10k.conf" > "$work/nginx10k-t.conf"
  taskset -c "$PROXY_CPU" nginx -c "$work/nginx10k-t.conf" -p /tmp &
  proxy_pids+=($!)
  sed "s/nbthread 1/nbthread $t/" bench/haproxy.cfg > "$work/haproxy.cfg"
  taskset -c "$PROXY_CPU" haproxy -f "$work/haproxy.cfg" &
  proxy_pids+=($!)
  sed "s/nbthread 1/nbthread $t/" bench/relay.cfg > "$work/relay.cfg"
  taskset -c "$PROXY_CPU" haproxy -f "$work/relay.cfg" &
  proxy_pids+=($!)
  relay_pid=$!
  for u in http://127.0.0.1:18981/ https://127.0.0.1:18987/ http://127.0.0.1:18982/ https://127.0.0.1:18986/ \
    http://127.0.0.1:18984/ https://127.0.0.1:18988/ http://127.0.0.1:18992/ http://127.0.0.1:18989/; do
    wait_url "$u"
  done
  until curl -sf http://127.0.0.1:18993/readyz >/dev/null; do sleep 0.05; done
  nginx_pid=$(cat /tmp/gatehouse-bench-nginx.pid)
  nginx10k_pid=$(cat /tmp/gatehouse-bench-nginx10k.pid)
  haproxy_pid=$(pgrep -f "haproxy -f $work/haproxy.cfg" | head -1)
}

# target CONTESTANT SCENARIO -> "pid|kind|url|host|extra" ("" when the
# pair does not apply). kind: wrk, h2, tls.
target() {
  local c=$1 s=$2 port pid h2 tls
  case $c in
    direct) port=18980 pid=0 h2=18980 tls="" ;;
    gatehouse) port=18981 pid=$gatehouse_pid h2=18981 tls=18987 ;;
    nginx) port=18982 pid=$nginx_pid h2=18983 tls=18986 ;;
    haproxy) port=18984 pid=$haproxy_pid h2=18985 tls=18988 ;;
    relay)
      [ "$s" = keepalive ] || return 0
      port=18989 pid=$relay_pid h2="" tls=""
      ;;
  esac
  case $s in
    keepalive) echo "$pid|wrk|http://127.0.0.1:$port/|bench.local|" ;;
    16k) [ "$c" = direct ] && port=18979; echo "$pid|wrk|http://127.0.0.1:$port/|big.local|" ;;
    h2c) echo "$pid|h2|http://127.0.0.1:$h2/|bench.local|" ;;
    https) [ -n "$tls" ] && echo "$pid|wrk|https://127.0.0.1:$tls/|bench.local|" ;;
    close) echo "$pid|close|http://127.0.0.1:$port/|bench.local|" ;;
    ratelimit) [ "$c" != direct ] && echo "$pid|wrk|http://127.0.0.1:$port/|limited.local|" ;;
    cache) [ "$c" != direct ] && echo "$pid|wrk|http://127.0.0.1:$port/|cached.local|" ;;
    routes10k)
      case $c in
        gatehouse) echo "$gatehouse10k_pid|wrk|http://127.0.0.1:18991/api/v1/items-500|host-500.example.com|" ;;
        nginx) echo "$nginx10k_pid|wrk|http://127.0.0.1:18992/api/v1/items-500|host-500.example.com|" ;;
      esac ;;
  esac
  return 0
}

contestants=(direct relay gatehouse nginx haproxy)
for threads in $THREADS_LIST; do
  start_proxies "$threads"
  declare -A rps=() cpu=() p50=() p99=() rss=()
  steal_before=$(steal_ticks)
  started=$(date +%s)
  for round in $(seq "$ROUNDS"); do
    # Each round starts with the next contestant, so none is always the
    # first on a cold or the last on a warm machine.
    k=$(((round - 1) % ${#contestants[@]}))
    order=("${contestants[@]:k}" "${contestants[@]:0:k}")
    for s in $SCENARIOS; do
      for c in "${order[@]}"; do
        t=$(target "$c" "$s")
        [ -z "$t" ] && continue
        IFS='|' read -r pid kind url host _ <<<"$t"
        before=$(cpu_ticks "$pid")
        case $kind in
          wrk | close)
            extra=()
            [ "$kind" = close ] && extra=(-H 'Connection: close')
            out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "Host: $host" "${extra[@]}" "$url")
            r=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
            n=$(awk '/requests in/ {print $1}' <<<"$out")
            bad=$(awk '/Non-2xx/ {print $5}' <<<"$out")
            [ -n "$bad" ] && echo "warning: $c $s: $bad non-2xx responses" >&2
            ;;
          h2)
            # The virtual host goes in :authority: an HTTP/2 request with
            # a `host` header besides is refused by nginx (400).
            out=$(taskset -c "$LOAD_CPU" h2load -n "$H2_REQUESTS" -c 16 -m 10 -H ":authority: $host" "$url" 2>/dev/null)
            r=$(awk '/^finished in/ {gsub(",", "", $4); print $4}' <<<"$out")
            # Succeeded requests only; any failure makes the figure void.
            n=$(awk '/^requests:/ {print $8}' <<<"$out")
            failed=$(awk '/^requests:/ {print $10}' <<<"$out")
            ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
            if [ "${failed:-1}" != 0 ] || [ "${ok:-0}" != "${n:-x}" ]; then
              echo "warning: $c $s: h2load reported failures or non-2xx answers: $(grep -E '^(requests|status codes):' <<<"$out" | tr '\n' ' ')" >&2
              r=0
            fi
            ;;
        esac
        after=$(cpu_ticks "$pid")
        rps["$s/$c"]+="$r "
        if [ "$pid" != 0 ] && [ "${n:-0}" -gt 0 ]; then
          cpu["$s/$c"]+="$(awk -v t=$((after - before)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}') "
        fi
        # Latency at a fixed rate, for the plain HTTP/1.1 keep-alive cases.
        if [ "$kind" = wrk ] && [ "${url#https}" = "$url" ]; then
          path=/${url#http://*/}
          addr=${url#http://}
          addr=${addr%%/*}
          lat=$(taskset -c "$LOAD_CPU" "$bin/gatehouse-load" "$addr" "$RATE" --connections "$CONNECTIONS" \
            --duration "$LATENCY_SECONDS" --host "$host" --path "$path" || true)
          p50["$s/$c"]+="$(tr ' ' '\n' <<<"$lat" | awk -F= '$1 == "p50_us" {print $2}') "
          p99["$s/$c"]+="$(tr ' ' '\n' <<<"$lat" | awk -F= '$1 == "p99_us" {print $2}') "
        fi
        echo "threads $threads round $round $s $c: $r req/s" >&2
      done
    done
  done
  steal_ms=$((($(steal_ticks) - steal_before) * 1000 / hz))
  elapsed=$(($(date +%s) - started))
  for s in $SCENARIOS; do
    for c in "${contestants[@]}"; do
      t=$(target "$c" "$s")
      [ -z "$t" ] && continue
      IFS='|' read -r pid _ <<<"$t"
      [ "$pid" != 0 ] && rss["$s/$c"]=$(rss_kib "$pid")
    done
  done

  echo
  echo "### $threads worker thread(s)"
  echo
  echo "| scenario | contestant | req/s | vs nginx | CPU µs/request | CPU vs nginx, paired | p50 at $RATE/s | p99 at $RATE/s | RSS |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for s in $SCENARIOS; do
    ref=$(echo "${rps[$s/nginx]:-}" | median)
    for c in "${contestants[@]}"; do
      [ -z "${rps[$s/$c]:-}" ] && continue
      r=$(echo "${rps[$s/$c]}" | median)
      ratio="-"
      [ "$ref" != "-" ] && ratio=$(awk -v a="$r" -v b="$ref" 'BEGIN {printf "%.2f", a / b}')
      c_us=$(echo "${cpu[$s/$c]:-}" | median)
      c_ratio="-"
      if [ -n "${cpu[$s/$c]:-}" ] && [ -n "${cpu[$s/nginx]:-}" ]; then
        c_ratio=$(printf '%.3f' "$(paired "${cpu[$s/$c]}" "${cpu[$s/nginx]}")")
      fi
      l50=$(echo "${p50[$s/$c]:-}" | median)
      l99=$(echo "${p99[$s/$c]:-}" | median)
      mem="-"
      [ -n "${rss[$s/$c]:-}" ] && mem="$(awk -v k="${rss[$s/$c]}" 'BEGIN {printf "%.1f MiB", k / 1024}')"
      printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$s" "$c" "$r" "$ratio" "$c_us" "$c_ratio" \
        "${l50}${l50:+ µs}" "${l99}${l99:+ µs}" "$mem" | sed 's/- µs/-/g'
    done
  done
  echo
  echo "Host steal over these rounds: $steal_ms ms of CPU time in $elapsed s (both cores; time the hypervisor gave other guests)."
  stop_proxies
done
