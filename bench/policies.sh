#!/usr/bin/env bash
# Requests per second through Gatehouse (1 worker, pinned to CPU 0) with
# each edge policy versus none, against the same static upstream; wrk on
# CPU 1, 64 keep-alive connections. Needs wrk and redis-server.
#
#   bench/policies.sh            DURATION=10s bench/policies.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

DURATION=${DURATION:-5s}
ROUNDS=${ROUNDS:-3}
build_release

taskset -c 1 "$bin/gatehouse-bench-upstream" 127.0.0.1:18980 & pids+=($!)
redis-server --port 18979 --bind 127.0.0.1 --save "" --appendonly no >/dev/null & pids+=($!)

route() { # name host extra-rule-yaml
  printf 'apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {name: %s, namespace: default}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [%s]\n  rules:\n  - backends: [{name: upstream, port: 80}]\n%s---\n' "$1" "$2" "$3"
}
limit() { # name route scope
  printf 'apiVersion: gatehouse.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: %s, namespace: default}\nspec:\n  targetRefs: [{kind: ApiRoute, name: %s}]\n  limits: [{name: l, key: {type: ClientIP}, rate: {requests: 100000000, per: 1s}, burst: 1000000, scope: %s}]\n---\n' "$1" "$2" "$3"
}
{
  cat <<'YAML'
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: gatehouse}
spec: {controller: gatehouse.dev/ingress-controller}
---
apiVersion: v1
kind: Service
metadata: {name: upstream, namespace: default}
spec: {ports: [{name: http, port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: upstream-1, namespace: default, labels: {kubernetes.io/service-name: upstream}}
addressType: IPv4
ports: [{name: http, port: 18980}]
endpoints: [{addresses: ["127.0.0.1"]}]
---
apiVersion: v1
kind: Secret
metadata: {name: keys, namespace: default, labels: {gatehouse.dev/secret: "true"}}
stringData: {app: bench-key}
---
YAML
  route none none.bench ""
  route local local.bench ""
  limit local-limit local Local
  route global global.bench ""
  limit global-limit global Global
  route cached cached.bench "    cache: {ttl: 1h}\n"
  route keyed keyed.bench "    authentication: {apiKey: {secretRef: {name: keys}}}\n"
} > "$work/config.yaml"
sed -i 's/\\n/\n/g' "$work/config.yaml"

taskset -c 0 "$bin/gatehouse" standalone --manifests "$work" --http-addr 127.0.0.1:18981 \
  --admin-addr 127.0.0.1:18990 --no-https --worker-threads 1 --log-level warn --access-log off \
  --redis-url redis://127.0.0.1:18979/ & pids+=($!)
until curl -sf http://127.0.0.1:18990/readyz >/dev/null; do sleep 0.05; done

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
declare -A rps
cases=(none local global cached keyed)
for round in $(seq "$ROUNDS"); do
  for c in "${cases[@]}"; do
    extra=()
    [ "$c" = keyed ] && extra=(-H 'X-API-Key: bench-key')
    r=$(taskset -c 1 wrk -t1 -c64 -d"$DURATION" -H "Host: $c.bench" "${extra[@]}" http://127.0.0.1:18981/ | awk '/Requests\/sec/ {print $2}')
    rps[$c]+="$r "
    echo "round $round $c: $r req/s" >&2
  done
done
base=$(echo "${rps[none]}" | tr ' ' '\n' | grep . | median)
echo
echo "| policy | req/s | vs none |"
echo "| --- | ---: | ---: |"
for c in "${cases[@]}"; do
  r=$(echo "${rps[$c]}" | tr ' ' '\n' | grep . | median)
  printf '| %s | %.0f | %.2f |\n' "$c" "$r" "$(echo "$r / $base" | bc -l)"
done
