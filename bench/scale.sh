#!/usr/bin/env bash
# Scale check: serves N synthetic Ingress paths in standalone mode and
# reports the time to the first published snapshot, the translate time the
# gateway logs, the time to republish after a change, and the resident
# memory of the gateway.
#
#   bench/scale.sh [N...]          (default: 1000 10000)
#
# Uses release binaries (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

build_release
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 10000)

# One echo backend answers for every generated endpoint (127.x.y.z:18973).
"$bin/gatehouse-echo" echo=0.0.0.0:18973 2>/dev/null &
pids+=($!)
on_exit() { [ -z "${gw_pid:-}" ] || kill "$gw_pid" 2>/dev/null || true; }

now_ms() { date +%s%3N; }

printf '%-8s %-10s %-14s %-14s %-12s %-16s\n' paths ready_ms translate_ms republish_ms rss_mib rss_after_mib
for n in "${sizes[@]}"; do
  dir="$work/$n"; mkdir -p "$dir"
  "$bin/gatehouse-gen" ingress-paths "$n" 2 18973 > "$dir/config.yaml"
  log="$work/$n.log"
  start=$(now_ms)
  "$bin/gatehouse" standalone --manifests "$dir" --http-addr 127.0.0.1:18972 \
    --admin-addr 127.0.0.1:18971 --log-format json --access-log off 2> "$log" &
  gw_pid=$!
  until curl -sf http://127.0.0.1:18971/readyz >/dev/null; do sleep 0.005; done
  ready=$(( $(now_ms) - start ))
  translate=$(grep -o '"translate_ms":[0-9.]*' "$log" | head -1 | cut -d: -f2)
  rss_kib=$(awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status")
  # Republish: rename one path and wait until the new path is served.
  start=$(now_ms)
  sed 's#/api/v1/items-0#/api/v1/items-0-changed#' "$dir/config.yaml" > "$dir/.tmp" && mv "$dir/.tmp" "$dir/config.yaml"
  until [ "$(curl -s -m 2 -o /dev/null -w '%{http_code}' -H 'Host: host-0.example.com' http://127.0.0.1:18972/api/v1/items-0-changed)" = 200 ]; do sleep 0.002; done
  republish=$(( $(now_ms) - start ))
  rss2_kib=$(awk '/VmRSS/ {print $2}' "/proc/$gw_pid/status")
  printf '%-8s %-10s %-14.1f %-14s %-12.1f %-16.1f\n' "$n" "$ready" "$translate" "$republish" \
    "$(echo "$rss_kib/1024" | bc -l)" "$(echo "$rss2_kib/1024" | bc -l)"
  kill "$gw_pid"; wait "$gw_pid" 2>/dev/null || true; gw_pid=
done
