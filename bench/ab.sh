#!/usr/bin/env bash
# A/B on HTTP/1.1 keep-alive: interleaved rounds, each starting one
# contestant pinned to CPU 0 (THREADS workers, 1 by default; no access
# log), warming it for a second, driving it with wrk (64 connections,
# CPU 1) and reading its CPU time from /proc. A contestant is a Gatehouse binary or the word `nginx`
# or `haproxy` (bench/nginx.conf, bench/haproxy.cfg); CPU time is the
# process's and its children's (nginx's workers). The word `relay` is
# HAProxy in TCP mode (bench/relay.cfg): it copies bytes between each client connection
# and an upstream connection of its own without reading HTTP, so what it
# costs is the floor for any proxy that moves requests through sockets
# (for small keep-alive responses only: with SIZE=16k its 16 KiB buffers
# take two reads and writes per response, and with CLOSE=1 it opens an
# upstream connection per request where the proxies keep theirs alive).
#
# Rounds alternate which contestant goes first. Besides the medians of
# each, the report pairs the two runs of every round: the median of the
# per-round ratios B/A and the number of rounds in which B used less CPU
# per request than A. On a host whose speed drifts over minutes, the
# paired figures are steadier than either median: both runs of a round
# see the same host.
#
#   bench/ab.sh /tmp/gatehouse-before target/release/gatehouse
#   bench/ab.sh target/release/gatehouse nginx
#   ROUNDS=21 DURATION=2s bench/ab.sh A B
#   SIZE=16k bench/ab.sh A B     # 16 KiB responses instead of 13 bytes
#   CLOSE=1 bench/ab.sh A B      # a new connection for every request
#   THREADS=2 bench/ab.sh A B    # two worker threads (nginx: processes)
#   FLAGS_B="--scheduler work-stealing" THREADS=2 bench/ab.sh G G
#                                # the same binary, B with extra flags
#   bench/ab.sh nginx relay      # nginx against the byte relay's floor
#   RATE=10000 bench/ab.sh A B   # a fixed rate (gatehouse-load) instead of
#                                # wrk's closed loop; adds p50 and p99
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

[ $# -eq 2 ] || { echo "usage: bench/ab.sh A B (each a gatehouse binary, nginx, haproxy or relay)" >&2; exit 2; }
ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-5s}
case ${SIZE:-small} in
  small) host=bench.local upstream_args=(127.0.0.1:18980) ;;
  16k) host=big.local upstream_args=(127.0.0.1:18979 16384) ;;
  *) echo "SIZE is small or 16k" >&2; exit 2 ;;
esac
headers=(-H "Host: $host")
[ "${CLOSE:-0}" = 1 ] && headers+=(-H "Connection: close")
RATE=${RATE:-}
if [ -n "$RATE" ] && [ "${CLOSE:-0}" = 1 ]; then
  echo "RATE drives keep-alive connections only; leave out CLOSE" >&2
  exit 2
fi
cargo build -q --release -p gatehouse-testkit
out="$work/rounds"
taskset -c 1 target/release/gatehouse-bench-upstream "${upstream_args[@]}" &
pids+=($!)
pid=""
on_exit() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
sleep 0.3
THREADS=${THREADS:-1}
hz=$(getconf CLK_TCK)
# CPU time of a contestant: its process and its children (nginx's
# workers), in clock ticks.
cpu_ticks() { proc_ticks "$1" 14 15; }
user_ticks() { proc_ticks "$1" 14; }
sed "s/^worker_processes 1;/worker_processes $THREADS;/" bench/nginx.conf > "$work/nginx.conf"
sed "s/nbthread 1/nbthread $THREADS/" bench/haproxy.cfg > "$work/haproxy.cfg"
sed -e "s/nbthread 1/nbthread $THREADS/" -e "s/127.0.0.1:18980/${upstream_args[0]}/" bench/relay.cfg > "$work/relay.cfg"

# start CONTESTANT FLAGS: runs it on CPU 0 (a Gatehouse binary with the
# extra FLAGS), sets pid and port, waits until it answers.
start() {
  case $1 in
    nginx)
      # One worker: no master process, as HAProxy and Gatehouse have none.
      local master=off
      [ "$THREADS" -gt 1 ] && master=on
      taskset -c 0 nginx -c "$work/nginx.conf" -g "master_process $master;" >/dev/null 2>&1 &
      pid=$! port=18982
      ;;
    haproxy)
      taskset -c 0 haproxy -f "$work/haproxy.cfg" -db >/dev/null 2>&1 &
      pid=$! port=18984
      ;;
    relay)
      taskset -c 0 haproxy -f "$work/relay.cfg" -db >/dev/null 2>&1 &
      pid=$! port=18989
      ;;
    *)
      # shellcheck disable=SC2086 # FLAGS are words
      taskset -c 0 "$1" standalone --manifests bench/gatehouse --no-https --http-addr 127.0.0.1:18981 \
        --admin-addr 127.0.0.1:18990 --worker-threads "$THREADS" --log-level warn --access-log off $2 >/dev/null 2>&1 &
      pid=$! port=18981
      ;;
  esac
  for _ in $(seq 200); do
    curl -s -o /dev/null "${headers[@]}" "http://127.0.0.1:$port/" && return 0
    sleep 0.05
  done
  echo "$1 never answered on port $port" >&2
  exit 1
}
# nginx.conf and haproxy.cfg have TLS listeners: they need the certificate.
case " $* " in *" nginx "* | *" haproxy "*) bench/certs.sh ;; esac

for round in $(seq "$ROUNDS"); do
  order="A B"
  [ $((round % 2)) = 0 ] && order="B A"
  for name in $order; do
    if [ "$name" = A ]; then contestant=$1 flags=${FLAGS_A:-}; else contestant=$2 flags=${FLAGS_B:-}; fi
    start "$contestant" "$flags"
    taskset -c 1 wrk -t1 -c64 -d1s "${headers[@]}" "http://127.0.0.1:$port/" >/dev/null
    before=$(cpu_ticks "$pid")
    user_before=$(user_ticks "$pid")
    if [ -n "$RATE" ]; then
      # Latency from each request's scheduled send time.
      result=$(taskset -c 1 target/release/gatehouse-load "127.0.0.1:$port" "$RATE" --connections 64 \
        --duration "${DURATION%s}" --host "$host")
      after=$(cpu_ticks "$pid")
      user_after=$(user_ticks "$pid")
      field() { tr ' ' '\n' <<<"$result" | awk -F= -v k="$1" '$1 == k {print $2}'; }
      n=$(field requests)
      rps=$(field rate)
      p50=$(field p50_us)
      p99=$(field p99_us)
      [ "$(field errors)" = 0 ] || echo "warning: $contestant: $result" >&2
    else
      result=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" "${headers[@]}" "http://127.0.0.1:$port/")
      after=$(cpu_ticks "$pid")
      user_after=$(user_ticks "$pid")
      n=$(awk '/requests in/ {print $1}' <<<"$result")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$result")
      p50=0 p99=0
    fi
    us=$(awk -v t=$((after - before)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    user=$(awk -v t=$((user_after - user_before)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    echo "round $round $name: $rps req/s, $us µs CPU/request ($user user)${RATE:+, p50 $p50 µs, p99 $p99 µs}" >&2
    echo "$round $name $rps $us $user $p50 $p99" >> "$out"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
  done
done
column() { awk -v n="$1" -v c="$2" '$2 == n {print $c}' "$out" | median; }
if [ -n "$RATE" ]; then
  echo "| contestant | req/s sent (median of $ROUNDS) | CPU µs/request (median) | of which user | p50 µs | p99 µs |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: |"
else
  echo "| contestant | req/s (median of $ROUNDS) | CPU µs/request (median) | of which user |"
  echo "| --- | ---: | ---: | ---: |"
fi
for name in A B; do
  if [ "$name" = A ]; then contestant="$1 ${FLAGS_A:-}"; else contestant="$2 ${FLAGS_B:-}"; fi
  printf '| %s %s | %s | %s | %s |' "$name" "${contestant% }" "$(column $name 3)" "$(column $name 4)" "$(column $name 5)"
  [ -n "$RATE" ] && printf ' %s | %s |' "$(column $name 6)" "$(column $name 7)"
  echo
done
# Paired: each round's B over the same round's A.
paired() { # column
  awk -v c="$1" '$2 == "A" {a[$1] = $c} $2 == "B" {b[$1] = $c} END {for (r in a) if (r in b && a[r] > 0) printf "%.4f\n", b[r] / a[r]}' "$out"
}
# Rounds in which B's figure in a column was below A's.
below() { # column
  awk -v c="$1" '$2 == "A" {a[$1] = $c} $2 == "B" {b[$1] = $c} END {k = 0; for (r in a) if (r in b && b[r] < a[r]) k++; print k}' "$out"
}
echo
printf 'paired, B/A per round (median of %s): req/s %.3f, CPU per request %.3f, user CPU %.3f; B used less CPU per request than A in %s of %s rounds\n' \
  "$ROUNDS" "$(paired 3 | median)" "$(paired 4 | median)" "$(paired 5 | median)" "$(below 4)" "$ROUNDS"
if [ -n "$RATE" ]; then
  printf 'p99 B/A per round (median): %.3f; B had the lower p99 in %s of %s rounds\n' \
    "$(paired 7 | median)" "$(below 7)" "$ROUNDS"
fi
