#!/usr/bin/env bash
# A/B of two gatehouse binaries on HTTP/1.1 keep-alive: interleaved rounds,
# each starting one binary (pinned to CPU 0, one worker, access log off),
# warming it for a second, driving it with wrk (64 connections, CPU 1) and
# reading its CPU time; medians of requests/s, CPU µs per request and the
# user-space part of it.
#
#   bench/ab.sh /tmp/gatehouse-before target/release/gatehouse
#   ROUNDS=9 DURATION=5s bench/ab.sh A B
#   SIZE=16k bench/ab.sh A B     # 16 KiB responses instead of 13 bytes
#   CLOSE=1 bench/ab.sh A B      # a new connection for every request
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || { echo "usage: bench/ab.sh BINARY_A BINARY_B" >&2; exit 2; }
ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-5s}
case ${SIZE:-small} in
  small) host=bench.local upstream_args=(127.0.0.1:18980) ;;
  16k) host=big.local upstream_args=(127.0.0.1:18979 16384) ;;
  *) echo "SIZE is small or 16k" >&2; exit 2 ;;
esac
headers=(-H "Host: $host")
[ "${CLOSE:-0}" = 1 ] && headers+=(-H "Connection: close")
cargo build -q --release -p gatehouse-testkit
out=$(mktemp)
taskset -c 1 target/release/gatehouse-bench-upstream "${upstream_args[@]}" &
upstream=$!
trap 'kill "$upstream" 2>/dev/null || true; rm -f "$out"' EXIT
sleep 0.3
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }
for round in $(seq "$ROUNDS"); do
  for name in A B; do
    if [ "$name" = A ]; then bin=$1; else bin=$2; fi
    taskset -c 0 "$bin" standalone --manifests bench/gatehouse --no-https --http-addr 127.0.0.1:18981 \
      --admin-addr 127.0.0.1:18990 --worker-threads 1 --log-level warn --access-log off >/dev/null 2>&1 &
    gw=$!
    until curl -sf http://127.0.0.1:18990/readyz >/dev/null; do sleep 0.05; done
    taskset -c 1 wrk -t1 -c64 -d1s "${headers[@]}" http://127.0.0.1:18981/ >/dev/null
    before=$(cpu_ticks "$gw")
    user_before=$(user_ticks "$gw")
    result=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" "${headers[@]}" http://127.0.0.1:18981/)
    after=$(cpu_ticks "$gw")
    user_after=$(user_ticks "$gw")
    n=$(awk '/requests in/ {print $1}' <<<"$result")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$result")
    us=$(awk -v t=$((after - before)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    user=$(awk -v t=$((user_after - user_before)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    echo "round $round $name: $rps req/s, $us µs CPU/request ($user user)" >&2
    echo "$name $rps $us $user" >> "$out"
    kill "$gw"
    wait "$gw" 2>/dev/null || true
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| binary | req/s (median of $ROUNDS) | CPU µs/request (median) | of which user |"
echo "| --- | ---: | ---: | ---: |"
for name in A B; do
  if [ "$name" = A ]; then bin=$1; else bin=$2; fi
  printf '| %s | %s | %s | %s |\n' "$bin" "$(awk -v n=$name '$1 == n {print $2}' "$out" | median)" \
    "$(awk -v n=$name '$1 == n {print $3}' "$out" | median)" "$(awk -v n=$name '$1 == n {print $4}' "$out" | median)"
done
