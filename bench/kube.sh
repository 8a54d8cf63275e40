#!/usr/bin/env bash
# Kubernetes mode against the API simulator (crates/testkit):
#   * time from the API server accepting an ApiRoute to the first request
#     served on it, over 100 creations, with 1,000 and 10,000 Ingress
#     paths already loaded;
#   * memory with 10,000 Ingress paths and 50,000 endpoints.
#
#   bench/kube.sh [-- extra gatehouse run flags]
#
# Uses release binaries (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

build_release
"$bin/gatehouse-kube-bench" latency 100 1000 "$@"
"$bin/gatehouse-kube-bench" latency 100 10000 "$@"
"$bin/gatehouse-kube-bench" scale 10000 50000 "$@"
