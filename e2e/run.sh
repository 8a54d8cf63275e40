#!/usr/bin/env bash
# The kind end-to-end suite (`make e2e`): a kind cluster, the image built
# from this tree, the chart installed with Helm, and every routing
# scenario of tests/scenarios applied with kubectl and checked through the
# host ports kind maps to the gateway.
#
# Needs: docker, kind, kubectl, helm, cargo.
#   E2E_HTTP_PORT / E2E_HTTPS_PORT  host ports (default 80 / 443)
#   KEEP_CLUSTER=1                  leave the cluster running afterwards
#   E2E_SCENARIOS="a.yaml b.yaml"   run only these scenario files
#   ECHO_IMAGE                      the echo backend image
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-gatehouse-e2e}
HTTP_PORT=${E2E_HTTP_PORT:-80}
HTTPS_PORT=${E2E_HTTPS_PORT:-443}
IMAGE=gatehouse:e2e
ECHO_IMAGE=${ECHO_IMAGE:-registry.k8s.io/gateway-api/echo-basic:v20251204-v1.4.1}
ARTIFACTS=${ARTIFACTS:-e2e/artifacts}
HELM=${HELM:-helm}

for tool in docker kind kubectl "$HELM" cargo; do
  command -v "$tool" >/dev/null || { echo "e2e needs $tool" >&2; exit 2; }
done

log() { printf '\n== %s\n' "$*"; }

collect() {
  log "collecting logs into $ARTIFACTS"
  mkdir -p "$ARTIFACTS"
  kubectl -n gatehouse logs -l app.kubernetes.io/name=gatehouse --tail=-1 --prefix > "$ARTIFACTS/gatehouse.log" 2>&1 || true
  kubectl -n gatehouse describe pods > "$ARTIFACTS/gatehouse-pods.txt" 2>&1 || true
  kubectl get ingress,apiroutes,ratelimitpolicies,services,endpointslices,pods -A -o wide > "$ARTIFACTS/objects.txt" 2>&1 || true
  kubectl get ingress,apiroutes -A -o yaml > "$ARTIFACTS/routes.yaml" 2>&1 || true
  kubectl get events -A --sort-by=.lastTimestamp > "$ARTIFACTS/events.txt" 2>&1 || true
  kind export logs "$ARTIFACTS/kind" --name "$CLUSTER" >/dev/null 2>&1 || true
}

finish() {
  status=$?
  if [ "$status" -ne 0 ]; then
    collect
    echo "e2e FAILED (logs in $ARTIFACTS)" >&2
  fi
  if [ "${KEEP_CLUSTER:-}" != 1 ]; then
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
  exit "$status"
}
trap finish EXIT

log "kind cluster $CLUSTER (http on host port $HTTP_PORT, https on $HTTPS_PORT)"
if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --wait 120s --config - <<KIND
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
- role: control-plane
  extraPortMappings:
  - {containerPort: 30080, hostPort: $HTTP_PORT, protocol: TCP}
  - {containerPort: 30443, hostPort: $HTTPS_PORT, protocol: TCP}
KIND
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

log "image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"
docker pull -q "$ECHO_IMAGE" >/dev/null
kind load docker-image "$ECHO_IMAGE" --name "$CLUSTER"

log "helm install"
# The restricted pod security standard is enforced on the gateway's
# namespace: a pod that needs more than the chart grants is rejected.
kubectl create namespace gatehouse --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl label namespace gatehouse pod-security.kubernetes.io/enforce=restricted --overwrite >/dev/null
"$HELM" upgrade --install gatehouse charts/gatehouse \
  --namespace gatehouse -f e2e/values.yaml --wait --timeout 180s
kubectl -n gatehouse rollout status deployment/gatehouse --timeout 120s

log "scenario runner"
cargo build -q -p gatehouse-testkit --bin gatehouse-scenarios
runner=target/debug/gatehouse-scenarios

scenarios=${E2E_SCENARIOS:-$(cd tests/scenarios && ls -- *.yaml)}
failed=0
for file in $scenarios; do
  name=${file%.yaml}
  ns="e2e-$name"
  log "scenario $name (namespace $ns)"
  kubectl create namespace "$ns" >/dev/null
  kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
  "$runner" manifests --echo-image "$ECHO_IMAGE" "tests/scenarios/$file" | kubectl -n "$ns" apply -f -
  kubectl -n "$ns" wait deployment --all --for=condition=Available --timeout 120s
  if ! "$runner" check --gateway "127.0.0.1:$HTTP_PORT" --wait 60 "tests/scenarios/$file"; then
    failed=$((failed + 1))
    mkdir -p "$ARTIFACTS"
    kubectl -n "$ns" get ingress,apiroutes -o yaml > "$ARTIFACTS/$name.yaml" 2>/dev/null || true
  fi
  # One scenario at a time: their hosts overlap.
  kubectl delete namespace "$ns" --wait=true --timeout 120s >/dev/null
done

log "status, HTTPS and metrics"
kubectl create namespace e2e-status >/dev/null
"$runner" manifests --echo-image "$ECHO_IMAGE" tests/scenarios/apiroute-matching.yaml | kubectl -n e2e-status apply -f -
for route in $(kubectl -n e2e-status get apiroutes -o name); do
  kubectl -n e2e-status wait "$route" --for=condition=Accepted --timeout 60s
done
# The HTTPS listener answers over HTTP/2 (ALPN) with the self-signed
# default certificate.
version=$(curl -sk --http2 -o /dev/null -w '%{http_version}' --resolve "nothing.example:$HTTPS_PORT:127.0.0.1" "https://nothing.example:$HTTPS_PORT/")
[ "$version" = 2 ] || { echo "HTTPS: HTTP version '$version', want 2" >&2; failed=$((failed + 1)); }
# Metrics through the admin port.
kubectl -n gatehouse port-forward deployment/gatehouse 19901:9901 >/dev/null 2>&1 &
pf=$!
sleep 2
curl -sf http://127.0.0.1:19901/metrics | grep -q '^gatehouse_requests_total' \
  || { echo "no gatehouse_requests_total on /metrics" >&2; failed=$((failed + 1)); }
kill "$pf" 2>/dev/null || true

if [ "$failed" -ne 0 ]; then
  echo "$failed scenario(s) or checks failed" >&2
  exit 1
fi
log "e2e passed"
