#!/usr/bin/env bash
# Prepares what the benchmarked proxies' configurations expect on disk:
# a self-signed certificate for bench.local in /tmp/gatehouse-bench-tls
# (cert.pem, key.pem, and haproxy.pem with both) and nginx's temporary
# directories. Called by compare.sh, tls.sh and instructions.sh.
set -euo pipefail
certs=/tmp/gatehouse-bench-tls
mkdir -p "$certs" /tmp/gatehouse-bench-nginx-body /tmp/gatehouse-bench-nginx-cache
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
  -subj /CN=bench.local -addext subjectAltName=DNS:bench.local \
  -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null
cat "$certs/cert.pem" "$certs/key.pem" > "$certs/haproxy.pem"
