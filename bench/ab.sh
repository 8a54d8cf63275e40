#!/usr/bin/env bash
# A/B on HTTP/1.1 keep-alive: interleaved rounds, each starting one
# contestant pinned to CPU 0 (one worker, no access log), warming it for a
# second, driving it with wrk (64 connections, CPU 1) and reading its CPU
# time from /proc. A contestant is a Gatehouse binary or the word `nginx`
# or `haproxy` (bench/nginx.conf, bench/haproxy.cfg, one worker).
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
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -eq 2 ] || { echo "usage: bench/ab.sh A B (each a gatehouse binary, nginx or haproxy)" >&2; exit 2; }
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
pid=""
trap 'kill "$upstream" $pid 2>/dev/null || true; rm -f "$out"' EXIT
sleep 0.3
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
user_ticks() { awk '{print $14}' "/proc/$1/stat"; }

# start CONTESTANT: runs it on CPU 0, sets pid and port, waits until it
# answers.
start() {
  case $1 in
    nginx)
      taskset -c 0 nginx -c "$PWD/bench/nginx.conf" -g 'master_process off;' >/dev/null 2>&1 &
      pid=$! port=18982
      ;;
    haproxy)
      taskset -c 0 haproxy -f bench/haproxy.cfg -db >/dev/null 2>&1 &
      pid=$! port=18984
      ;;
    *)
      taskset -c 0 "$1" standalone --manifests bench/gatehouse --no-https --http-addr 127.0.0.1:18981 \
        --admin-addr 127.0.0.1:18990 --worker-threads 1 --log-level warn --access-log off >/dev/null 2>&1 &
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
case " $* " in *" haproxy "*) bench/certs.sh ;; esac

for round in $(seq "$ROUNDS"); do
  order="A B"
  [ $((round % 2)) = 0 ] && order="B A"
  for name in $order; do
    if [ "$name" = A ]; then contestant=$1; else contestant=$2; fi
    start "$contestant"
    taskset -c 1 wrk -t1 -c64 -d1s "${headers[@]}" "http://127.0.0.1:$port/" >/dev/null
    before=$(cpu_ticks "$pid")
    user_before=$(user_ticks "$pid")
    result=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" "${headers[@]}" "http://127.0.0.1:$port/")
    after=$(cpu_ticks "$pid")
    user_after=$(user_ticks "$pid")
    n=$(awk '/requests in/ {print $1}' <<<"$result")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$result")
    us=$(awk -v t=$((after - before)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    user=$(awk -v t=$((user_after - user_before)) -v n="$n" -v hz="$hz" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}')
    echo "round $round $name: $rps req/s, $us µs CPU/request ($user user)" >&2
    echo "$round $name $rps $us $user" >> "$out"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
  done
done
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
echo "| contestant | req/s (median of $ROUNDS) | CPU µs/request (median) | of which user |"
echo "| --- | ---: | ---: | ---: |"
for name in A B; do
  if [ "$name" = A ]; then contestant=$1; else contestant=$2; fi
  printf '| %s %s | %s | %s | %s |\n' "$name" "$contestant" "$(awk -v n=$name '$2 == n {print $3}' "$out" | median)" \
    "$(awk -v n=$name '$2 == n {print $4}' "$out" | median)" "$(awk -v n=$name '$2 == n {print $5}' "$out" | median)"
done
# Paired: each round's B over the same round's A.
paired() { # column
  awk -v c="$1" '$2 == "A" {a[$1] = $c} $2 == "B" {b[$1] = $c} END {for (r in a) if (r in b && a[r] > 0) printf "%.4f\n", b[r] / a[r]}' "$out"
}
fewer=$(awk '$2 == "A" {a[$1] = $4} $2 == "B" {b[$1] = $4} END {k = 0; for (r in a) if (r in b && b[r] < a[r]) k++; print k}' "$out")
echo
printf 'paired, B/A per round (median of %s): req/s %.3f, CPU per request %.3f, user CPU %.3f; B used less CPU per request than A in %s of %s rounds\n' \
  "$ROUNDS" "$(paired 3 | median)" "$(paired 4 | median)" "$(paired 5 | median)" "$fewer" "$ROUNDS"
