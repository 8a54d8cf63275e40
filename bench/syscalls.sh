#!/usr/bin/env bash
# System calls per proxied request: each contestant (one worker) serves
# N HTTP/1.1 keep-alive requests (h2load, 16 connections, one request at a
# time each) after 2,000 for warm-up, with `strace -c` attached to every
# thread of it for the N requests only. Kernel work is the larger part of a
# proxy's CPU time on loopback; this shows how many calls it takes, and
# which.
#
#   bench/syscalls.sh                              # Gatehouse, nginx, HAProxy
#   N=50000 CONTESTANTS="gatehouse nginx" bench/syscalls.sh
#   GATEHOUSE=target/pgo/x86_64-unknown-linux-gnu/release/gatehouse bench/syscalls.sh
#
# Needs strace, h2load, nginx and haproxy. Under strace every call is
# slow: read the counts, not the times.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

N=${N:-20000}
CONTESTANTS=${CONTESTANTS:-gatehouse nginx haproxy}
GATEHOUSE=${GATEHOUSE:-target/release/gatehouse}
for tool in strace h2load curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install strace nghttp2-client curl)" >&2; exit 1; }
done
build_release
bench/certs.sh
target/release/gatehouse-bench-upstream 127.0.0.1:18980 &
pids+=($!)
pid=""
on_exit() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
sleep 0.3

# count NAME PORT COMMAND...: prints the contestant's calls per request.
count() {
  local name=$1 port=$2
  shift 2
  "$@" >"$work/log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do
    curl -s -o /dev/null -H "Host: bench.local" "http://127.0.0.1:$port/" && break
    sleep 0.05
  done
  h2load --h1 -n 2000 -c 16 -m 1 -H ":authority: bench.local" "http://127.0.0.1:$port/" >/dev/null
  local attach=()
  for tid in /proc/"$pid"/task/*; do attach+=(-p "${tid##*/}"); done
  strace -c -f -o "$work/strace" "${attach[@]}" 2>/dev/null &
  local tracer=$!
  sleep 1
  local result
  result=$(h2load --h1 -n "$N" -c 16 -m 1 -H ":authority: bench.local" "http://127.0.0.1:$port/")
  grep -q "$N succeeded" <<<"$result" || echo "$name: not every request succeeded" >&2
  kill -INT "$tracer"
  wait "$tracer" 2>/dev/null || true
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  # strace -c: % time, seconds, usecs/call, calls, [errors,] syscall.
  awk -v name="$name" -v n="$N" '
    $1 ~ /^[0-9.]+$/ && $NF != "total" { calls[$NF] = $4 }
    $NF == "total" { total = $4 }
    END {
      list = ""
      for (c in calls) if (calls[c] / n >= 0.01) list = list sprintf("%s %.2f, ", c, calls[c] / n)
      printf "| %s | %.2f | %s |\n", name, total / n, substr(list, 1, length(list) - 2)
    }' "$work/strace"
}

echo "| contestant | system calls per request ($N requests) | of which (≥ 0.01 per request) |"
echo "| --- | ---: | --- |"
for c in $CONTESTANTS; do
  case $c in
    gatehouse)
      count "gatehouse ($GATEHOUSE)" 18981 "$GATEHOUSE" standalone --manifests bench/gatehouse --no-https \
        --http-addr 127.0.0.1:18981 --admin-addr 127.0.0.1:18990 --worker-threads 1 --log-level warn \
        --access-log off
      ;;
    nginx) count nginx 18982 nginx -c "$PWD/bench/nginx.conf" -g 'master_process off;' ;;
    haproxy) count haproxy 18984 haproxy -f bench/haproxy.cfg -db ;;
    *) echo "unknown contestant $c" >&2; exit 2 ;;
  esac
done
