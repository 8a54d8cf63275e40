#!/usr/bin/env bash
# Memory per idle keep-alive connection: starts the gateway (one worker,
# CPU 0) and the bench upstream, opens N client connections that each
# make one request and then stay open, and reports the growth of the
# gateway's RSS per connection.
#
#   bench/idle.sh [BINARY] [N]     # defaults: target/release/gatehouse, 5000
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

gatehouse=${1:-target/release/gatehouse}
n=${2:-5000}
build_release
ulimit -n $((n * 2 + 1024))
taskset -c 1 target/release/gatehouse-bench-upstream 127.0.0.1:18980 &
pids+=($!)
taskset -c 0 "$gatehouse" standalone --manifests bench/gatehouse --no-https --http-addr 127.0.0.1:18981 \
  --admin-addr 127.0.0.1:18990 --worker-threads 1 --log-level warn --access-log off >/dev/null 2>&1 &
gw=$!
pids+=("$gw")
until curl -sf http://127.0.0.1:18990/readyz >/dev/null; do sleep 0.05; done
rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
before=$(rss "$gw")
python3 - "$n" "$gw" "$before" <<'PY'
import socket, sys, time
n, pid, before = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", 18981))
    s.sendall(b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n")
    socks.append(s)
for s in socks:
    if not s.recv(4096).startswith(b"HTTP/1.1 200"):
        sys.exit("unexpected answer")
time.sleep(1.0)
with open(f"/proc/{pid}/status") as f:
    after = int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
print(f"{n} idle connections: RSS {before} -> {after} KiB, "
      f"{(after - before) / n:.1f} KiB per connection")
PY
