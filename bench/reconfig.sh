#!/usr/bin/env bash
# Reconfiguration under load, and time from a manifest change to the first
# request served.
#
# 1. Steady fixed-rate load (gatehouse-load, RATE req/s over 64 keep-alive
#    connections) for DURATION seconds with no changes: the baseline
#    latency.
# 2. The same load while the configuration changes every 100 ms for
#    DURATION seconds: routes added and removed (100 to 200 of them), and
#    the endpoint of the loaded route moved between 127.0.0.1 and
#    127.0.0.2 (the upstream listens on both). Every request must succeed;
#    the p99 difference is the cost of reconfiguring.
# 3. PROBES times: a new route is written and a client polls it (every
#    millisecond) until it answers; p50 and p99 of change-to-served, and
#    the same less the 50 ms debounce.
#
#   bench/reconfig.sh
#   DURATION=60 RATE=10000 PROBES=100 bench/reconfig.sh
#
# Gatehouse (one worker) on CPU 0; the upstream, the load and the changer
# on CPU 1. Each phase also reports the host's steal time (CPU time the
# hypervisor gave to other guests): a phase with much of it measured the
# host. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

DURATION=${DURATION:-60}
RATE=${RATE:-10000}
PROBES=${PROBES:-100}
build_release

taskset -c 1 "$bin/gatehouse-bench-upstream" 0.0.0.0:18980 &
pids+=($!)
mkdir -p "$work/config"
cp bench/gatehouse/bench.yaml "$work/config/bench.yaml"

# The changer: rewrites churn.yaml (atomically) every 100 ms until stopped.
cat > "$work/churn.py" <<'PY'
import os, sys, time
config, stop = sys.argv[1], sys.argv[2]
def write(n, flip):
    docs = []
    addr = "127.0.0.2" if flip else "127.0.0.1"
    # The loaded route's backend moves between two addresses.
    docs.append(f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: upstream-1
  labels: {{kubernetes.io/service-name: upstream}}
addressType: IPv4
ports: [{{name: http, port: 18980}}]
endpoints:
- addresses: ["{addr}"]
""")
    # The loaded route, by host (no default backend: unknown hosts get
    # 404, which is how the probes of phase 3 see their route arrive).
    docs.append("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: bench}\nspec:\n  rules:\n  - host: bench.local\n    http:\n      paths:\n      - {path: /, pathType: Prefix, backend: {service: {name: upstream, port: {number: 80}}}}\n")
    docs.append("apiVersion: v1\nkind: Service\nmetadata: {name: churn}\nspec: {ports: [{port: 80}]}\n")
    docs.append(f"""apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: churn-1
  labels: {{kubernetes.io/service-name: churn}}
addressType: IPv4
ports: [{{port: 18980}}]
endpoints:
- addresses: ["{addr}"]
""")
    rules = "".join(
        f"  - host: churn-{i}.local\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: churn, port: {{number: 80}}}}}}}}\n"
        for i in range(n))
    docs.append(f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: churn}}\nspec:\n  rules:\n{rules}")
    tmp = os.path.join(config, ".churn.tmp")
    with open(tmp, "w") as f:
        f.write("---\n".join(docs))
    os.rename(tmp, os.path.join(config, "churn.yaml"))
if stop == "once":
    write(100, False)
    sys.exit(0)
k = 1
changes = 0
while not os.path.exists(stop):
    # 100 routes, growing to 200 and back; the endpoint flips each time.
    write(100 + abs((k % 200) - 100), k % 2 == 1)
    k += 1
    changes += 1
    time.sleep(0.1)
print(changes)
PY
# bench.yaml's EndpointSlice and catch-all Ingress are replaced by
# churn.yaml's from the start (first version: 100 routes, endpoint
# 127.0.0.1).
python3 - "$work/config/bench.yaml" <<'PY'
import sys
path = sys.argv[1]
docs = open(path).read().split("\n---\n")
keep = [d for d in docs if "kind: EndpointSlice" not in d and "kind: Ingress\n" not in d]
open(path, "w").write("\n---\n".join(keep))
PY
python3 "$work/churn.py" "$work/config" once >/dev/null

taskset -c 0 "$bin/gatehouse" standalone --manifests "$work/config" --no-https \
  --http-addr 127.0.0.1:18981 --admin-addr 127.0.0.1:18990 --worker-threads 1 \
  --log-level warn --access-log off &
pids+=($!)
until curl -sf http://127.0.0.1:18990/readyz >/dev/null; do sleep 0.05; done
curl -sf -H 'Host: bench.local' http://127.0.0.1:18981/ >/dev/null

load() { taskset -c 1 "$bin/gatehouse-load" 127.0.0.1:18981 "$RATE" --connections 64 --duration "$DURATION"; }
field() { tr ' ' '\n' | awk -F= -v k="$1" '$1 == k {print $2}'; }
# CPU time the hypervisor gave to others (steal, both cores, in ms) since
# the last call: on a shared virtual machine, a phase with much of it
# measured the host, not the gateway.
hz=$(getconf CLK_TCK)
last_steal=$(steal_ticks)
steal_ms() {
  local now
  now=$(steal_ticks)
  echo $(((now - last_steal) * 1000 / hz))
  last_steal=$now
}

echo "phase 1: $DURATION s at $RATE req/s, no changes" >&2
steal_ms >/dev/null
quiet=$(load || true)
quiet_steal=$(steal_ms)
echo "  $quiet (host steal $quiet_steal ms)" >&2

echo "phase 2: $DURATION s at $RATE req/s, a change every 100 ms" >&2
taskset -c 1 python3 "$work/churn.py" "$work/config" "$work/stop" > "$work/changes" &
churn=$!
busy=$(load || true)
busy_steal=$(steal_ms)
touch "$work/stop"
wait "$churn"
echo "  $busy ($(cat "$work/changes") changes, host steal $busy_steal ms)" >&2
generation=$(curl -s http://127.0.0.1:18990/metrics | awk '/^gatehouse_snapshot_generation / {print $2}')

echo "phase 3: $PROBES new routes, change to first request served" >&2
probe=$(taskset -c 1 python3 - "$work/config" "$PROBES" <<'PY'
import http.client, os, sys, time
config, n = sys.argv[1], int(sys.argv[2])
times = []
for k in range(n):
    host = f"probe-{k}.local"
    doc = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: probe}\nspec:\n  rules:\n"
           f"  - host: {host}\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: {{service: {{name: churn, port: {{number: 80}}}}}}}}\n")
    tmp = os.path.join(config, ".probe.tmp")
    with open(tmp, "w") as f:
        f.write(doc)
    start = time.monotonic()
    os.rename(tmp, os.path.join(config, "probe.yaml"))
    while True:
        c = http.client.HTTPConnection("127.0.0.1", 18981, timeout=2)
        c.request("GET", "/", headers={"Host": host})
        status = c.getresponse().status
        c.close()
        if status == 200:
            break
        time.sleep(0.001)
    times.append((time.monotonic() - start) * 1000)
    time.sleep(0.2)
times.sort()
pick = lambda p: times[min(len(times) - 1, int(p / 100 * len(times)))]
print(f"p50_ms={pick(50):.1f} p99_ms={pick(99):.1f} max_ms={times[-1]:.1f}")
PY
)
probe_steal=$(steal_ms)
echo "  $probe (host steal $probe_steal ms)" >&2

p50=$(field p50_ms <<<"$probe")
p99=$(field p99_ms <<<"$probe")
echo
echo "| phase | requests | errors | p50 | p99 | p99.9 | max | host steal |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for row in "no changes|$quiet_steal|$quiet" \
  "change every 100 ms ($(cat "$work/changes") changes, generation $generation)|$busy_steal|$busy"; do
  name=${row%%|*}
  rest=${row#*|}
  stolen=${rest%%|*}
  r=${rest#*|}
  printf '| %s | %s | %s | %s µs | %s µs | %s µs | %s µs | %s ms |\n' "$name" \
    "$(field requests <<<"$r")" "$(field errors <<<"$r")" "$(field p50_us <<<"$r")" \
    "$(field p99_us <<<"$r")" "$(field p999_us <<<"$r")" "$(field max_us <<<"$r")" "$stolen"
done
echo
echo "| change to first request served ($PROBES new routes) | p50 | p99 | host steal |"
echo "| --- | ---: | ---: | ---: |"
echo "| measured | $p50 ms | $p99 ms | $probe_steal ms |"
printf '| less the 50 ms debounce | %.1f ms | %.1f ms | |\n' "$(echo "$p50 - 50" | bc -l)" "$(echo "$p99 - 50" | bc -l)"
