# What the benchmark scripts share: the build, a scratch folder and the
# processes to stop at exit, waiting for a port, medians and paired
# ratios, reading CPU, memory and host steal from /proc. Sourced by each
# script after it has changed to the repository root:
#
#   cd "$(dirname "$0")/.."
#   . bench/lib.sh
#
# Scripts add the pids they start to `pids`, and may define `on_exit` for
# anything else to stop; `work` is removed at exit.
# shellcheck shell=bash

# The release binaries every script runs.
# shellcheck disable=SC2034 # used by the scripts that source this file
bin=target/release

# Builds the gateway and the test kit's tools (upstream, load, generators).
build_release() {
  cargo build -q --release -p gatehouse -p gatehouse-testkit
}

work=$(mktemp -d)
pids=()
on_exit() { :; }
bench_cleanup() {
  on_exit
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap bench_cleanup EXIT

# wait_url URL: until it answers (any status), at most 15 s.
wait_url() {
  for _ in $(seq 300); do
    curl -sk -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "$1 never answered" >&2
  exit 1
}

# median: of the numbers on standard input (one per line or separated by
# spaces); "-" when there are none. The mean of the middle two when even.
median() {
  tr ' ' '\n' | awk 'NF' | sort -g |
    awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}

# paired "A LIST" "B LIST": the median of the per-round ratios A_i / B_i
# (the lists hold one figure per round, in round order).
paired() {
  awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
    for (i = 1; i <= n; i++) if (y[i] > 0) print x[i] / y[i] }' | median
}

# proc_ticks PID FIELD...: the sum of those /proc/PID/stat fields (clock
# ticks) over the process and its children.
proc_ticks() {
  local pid=$1 t=0 p f
  shift
  for p in "$pid" $(pgrep -P "$pid"); do
    for f in "$@"; do
      t=$((t + $(awk -v f="$f" '{print $f}' "/proc/$p/stat")))
    done
  done
  echo "$t"
}

# rss_kib PID...: resident memory of the processes and their children.
rss_kib() {
  local total=0 p
  for p in "$@" $(for q in "$@"; do pgrep -P "$q" 2>/dev/null || true; done); do
    if [ -r "/proc/$p/status" ]; then
      total=$((total + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status")))
    fi
  done
  echo "$total"
}

# steal_ticks: the host's steal time so far (both cores, clock ticks): CPU
# time the hypervisor gave other guests.
steal_ticks() { awk '/^cpu / {print $9}' /proc/stat; }
