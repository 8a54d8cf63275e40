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

cargo build -q --release -p gatehouse -p gatehouse-testkit
bin=target/release/gatehouse-kube-bench

"$bin" latency 100 1000 "$@"
"$bin" latency 100 10000 "$@"
"$bin" scale 10000 50000 "$@"
