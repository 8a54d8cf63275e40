#!/usr/bin/env bash
# Prints deploy/gatehouse.yaml: the chart rendered with its default values
# into the namespace `gatehouse`, after a Namespace object, for users
# without Helm (`kubectl apply -f deploy/crds -f deploy/`).
#
#   hack/render-manifests.sh > deploy/gatehouse.yaml    (make manifests)
set -euo pipefail
cd "$(dirname "$0")/.."

helm=${HELM:-}
if [ -z "$helm" ]; then
  hack/tools.sh helm >&2
  helm=.tools/bin/helm
fi

cat <<'HEAD'
# Gatehouse, rendered from charts/gatehouse with its default values by
# `make manifests`; do not edit by hand. Apply the CRDs first:
#
#   kubectl apply -f deploy/crds -f deploy/
---
apiVersion: v1
kind: Namespace
metadata:
  name: gatehouse
  labels:
    app.kubernetes.io/name: gatehouse
    pod-security.kubernetes.io/enforce: restricted
HEAD
"$helm" template gatehouse charts/gatehouse --namespace gatehouse
