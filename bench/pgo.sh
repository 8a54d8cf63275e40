#!/usr/bin/env bash
# A profile-guided build of the gatehouse binary: an instrumented build
# serves the benchmark scenarios for a while (HTTP/1.1 keep-alive small and
# 16 KiB responses, a new connection per request, h2c, HTTPS, a rate-limited
# route, a cache hit, a streamed request body), then every edge feature for
# a shorter while (bench/pgo/features.yaml: API-key, basic and JWT
# authentication; method, header and query matching; header and path
# rewriting, redirects, direct responses, CORS; JSON validation and body
# matching; weighted backends and each balancing policy; compression; gRPC
# and gRPC-Web; WebSocket upgrades). Its counters are merged with
# llvm-profdata, and the binary is built again with them. The profile
# tells the compiler which branches and functions are hot: it lays the
# request path out in few cache lines and moves cold code (errors, unused
# branches) out of its way. Code the training never ran is laid out as
# cold, so every feature a user may turn on is run here.
#
#   bench/pgo.sh                      # → target/pgo/<host>/release/gatehouse
#   TARGET=x86_64-unknown-linux-musl bench/pgo.sh   # the image's target
#   SECONDS_PER_SCENARIO=3 bench/pgo.sh   # features get a quarter of it each
#
# Needs llvm-profdata of the LLVM major version rustc uses (`rustc -vV`):
# rustup's llvm-tools component, or Debian's llvm-N package (llvm-22 for
# Rust 1.95). Needs wrk, h2load and curl, like the other benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh

host=$(rustc -vV | sed -n 's/^host: //p')
TARGET=${TARGET:-$host}
SECONDS_PER_SCENARIO=${SECONDS_PER_SCENARIO:-4}
llvm_major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
profdata=""
for candidate in "$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata" \
  "llvm-profdata-$llvm_major" "/usr/lib/llvm-$llvm_major/bin/llvm-profdata"; do
  if command -v "$candidate" >/dev/null 2>&1; then profdata=$candidate; break; fi
done
[ -n "$profdata" ] || {
  echo "no llvm-profdata for LLVM $llvm_major: rustup component add llvm-tools, or apt-get install llvm-$llvm_major" >&2
  exit 1
}
for tool in wrk h2load curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk nghttp2-client curl)" >&2; exit 1; }
done

data=$PWD/target/pgo/profiles
rm -rf "$data"
mkdir -p "$data"
# --target keeps build scripts and procedural macros uninstrumented.
echo "instrumented build ($TARGET)" >&2
RUSTFLAGS="-Cprofile-generate=$data" cargo build -q --release --locked --target "$TARGET" \
  --target-dir target/pgo/generate -p gatehouse
cargo build -q --release --locked -p gatehouse-testkit
bench/certs.sh
certs=/tmp/gatehouse-bench-tls
instrumented=target/pgo/generate/$TARGET/release/gatehouse

target/release/gatehouse-bench-upstream 127.0.0.1:18980 &
pids+=($!)
target/release/gatehouse-bench-upstream 127.0.0.1:18979 16384 &
pids+=($!)
target/release/gatehouse-bench-upstream 127.0.0.1:18978 &
pids+=($!)
target/release/gatehouse-echo echo=127.0.0.1:18977 2>/dev/null &
pids+=($!)
"$instrumented" standalone --manifests bench/gatehouse --manifests bench/pgo --worker-threads 1 \
  --http-addr 127.0.0.1:18981 --https-addr 127.0.0.1:18987 --admin-addr 127.0.0.1:18990 \
  --default-certificate "$certs/cert.pem" --default-key "$certs/key.pem" \
  --log-level warn --access-log off &
gw=$!
for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:18990/readyz && break; sleep 0.1; done
curl -sf -o /dev/null http://127.0.0.1:18990/readyz || { echo "the instrumented gateway did not start" >&2; exit 1; }

d=${SECONDS_PER_SCENARIO}s
url=http://127.0.0.1:18981/
# HS256, key in bench/pgo/features.yaml, expires in 2100.
jwt=eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6InRyYWluIn0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5wZ28iLCJhdWQiOiJhcGkiLCJzdWIiOiJ0cmFpbmVyIiwic2NvcGUiOiJyZWFkIiwiZXhwIjo0MTAyNDQ0ODAwfQ.rGqFawvfRdBERIrJCuHkMDS99qwhrPu363qwAXi73AQ
printf '{"kind": "express", "qty": 2}' > "$work/order.json"
printf '{"kind": "express", "qty": 0}' > "$work/bad-order.json"
# A gRPC message: no compression, five bytes of payload.
printf '\0\0\0\0\5hello' > "$work/grpc"

# Each feature route answers as it should before it is trained on: a
# route refused or misrouted would train the wrong path.
expect() { # status, curl arguments
  local want=$1 got
  shift
  got=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$@" || true)
  [ "$got" = "$want" ] || { echo "training check failed: curl $* answered $got, not $want" >&2; exit 1; }
}
expect 200 -H "Host: auth.pgo" -H "X-API-Key: pgo-training-key" "${url}key"
expect 401 -H "Host: auth.pgo" "${url}key"
expect 200 -H "Host: auth.pgo" -u staff:demo-password "${url}basic"
expect 200 -H "Host: auth.pgo" -H "Authorization: Bearer $jwt" "${url}jwt"
expect 200 -H "Host: shape.pgo" -H "X-Tenant: blue" "${url}api/items?page=2"
expect 204 -X OPTIONS -H "Host: shape.pgo" -H "Origin: http://app.pgo" \
  -H "Access-Control-Request-Method: POST" "${url}browser/items"
expect 301 -H "Host: shape.pgo" "${url}old/page"
expect 200 -H "Host: shape.pgo" "${url}status"
expect 200 -H "Host: bodies.pgo" -H "Content-Type: application/json" --data-binary @"$work/order.json" "${url}orders"
expect 400 -H "Host: bodies.pgo" -H "Content-Type: application/json" --data-binary @"$work/bad-order.json" "${url}orders"
expect 200 -H "Host: balance.pgo" -H "Accept-Encoding: br" "${url}big"
expect 200 --http2-prior-knowledge -H "Host: streams.pgo" -H "Content-Type: application/grpc" \
  --data-binary @"$work/grpc" "${url}train.Echo/Unary"
expect 200 -H "Host: streams.pgo" -H "Content-Type: application/grpc-web+proto" --data-binary @"$work/grpc" \
  "${url}train.Echo/Unary"
expect 101 -m 0.5 -H "Host: streams.pgo" -H "Connection: Upgrade" -H "Upgrade: websocket" \
  -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" -H "Sec-WebSocket-Version: 13" "${url}ws"

echo "training: $SECONDS_PER_SCENARIO s per scenario" >&2
wrk -t1 -c64 -d"$d" -H "Host: bench.local" "$url" >/dev/null
wrk -t1 -c64 -d"$d" -H "Host: big.local" "$url" >/dev/null
wrk -t1 -c16 -d"$d" -H "Host: bench.local" -H "Connection: close" "$url" >/dev/null
wrk -t1 -c64 -d"$d" -H "Host: limited.local" "$url" >/dev/null
wrk -t1 -c64 -d"$d" -H "Host: cached.local" "$url" >/dev/null
wrk -t1 -c64 -d"$d" -H "Host: bench.local" https://127.0.0.1:18987/ >/dev/null
h2load -D "$SECONDS_PER_SCENARIO" -c 16 -m 10 -H ":authority: bench.local" "$url" >/dev/null
h2load -D "$SECONDS_PER_SCENARIO" -c 16 -m 10 -H ":authority: bench.local" https://127.0.0.1:18987/ >/dev/null
# Request bodies, streamed and in one piece.
head -c 65536 /dev/zero > "$work/body"
for _ in $(seq 200); do
  curl -s -o /dev/null -H "Host: bench.local" --data-binary @"$work/body" "$url"
done

# Every edge feature (bench/pgo/features.yaml), for a quarter of the time:
# the benchmark scenarios above stay the hottest paths.
fs=$(( (SECONDS_PER_SCENARIO + 3) / 4 ))
f=${fs}s
echo "training the edge features: $f each" >&2
wrk -t1 -c16 -d"$f" -H "Host: auth.pgo" -H "X-API-Key: pgo-training-key" "${url}key" >/dev/null
wrk -t1 -c16 -d"$f" -H "Host: auth.pgo" -H "Authorization: Basic c3RhZmY6ZGVtby1wYXNzd29yZA==" "${url}basic" >/dev/null
wrk -t1 -c16 -d"$f" -H "Host: auth.pgo" -H "Authorization: Bearer $jwt" "${url}jwt" >/dev/null
wrk -t1 -c16 -d"$f" -H "Host: auth.pgo" "${url}key" >/dev/null # refused: 401
wrk -t1 -c16 -d"$f" -H "Host: shape.pgo" -H "X-Tenant: blue" -H "X-Remove: 1" "${url}api/items?page=2" >/dev/null
wrk -t1 -c16 -d"$f" -H "Host: shape.pgo" -H "Origin: http://app.pgo" "${url}browser/items" >/dev/null
wrk -t1 -c16 -d"$f" -H "Host: shape.pgo" "${url}old/page" >/dev/null
wrk -t1 -c16 -d"$f" -H "Host: shape.pgo" "${url}status" >/dev/null
for p in canary least ewma hash; do
  wrk -t1 -c16 -d"$f" -H "Host: balance.pgo" -H "X-User: trainer" "$url$p" >/dev/null
done
for e in gzip br zstd; do
  wrk -t1 -c16 -d"$f" -H "Host: balance.pgo" -H "Accept-Encoding: $e" "${url}big" >/dev/null
done
for body in order bad-order; do
  h2load --h1 -D "$fs" -c 16 -d "$work/$body.json" -H ":authority: bodies.pgo" \
    -H "content-type: application/json" "${url}orders" >/dev/null
done
h2load -D "$fs" -c 16 -m 10 -d "$work/grpc" -H ":authority: streams.pgo" \
  -H "content-type: application/grpc" -H "te: trailers" "${url}train.Echo/Unary" >/dev/null
h2load --h1 -D "$fs" -c 16 -d "$work/grpc" -H ":authority: streams.pgo" \
  -H "content-type: application/grpc-web+proto" "${url}train.Echo/Unary" >/dev/null
for _ in $(seq 50); do
  curl -s -o /dev/null -X OPTIONS -H "Host: shape.pgo" -H "Origin: http://app.pgo" \
    -H "Access-Control-Request-Method: POST" -H "Access-Control-Request-Headers: Content-Type" "${url}browser/items"
done
# WebSocket upgrades: curl reads the switched connection until it gives up.
for _ in $(seq 20); do
  curl -s -o /dev/null -m 0.2 -H "Host: streams.pgo" -H "Connection: Upgrade" -H "Upgrade: websocket" \
    -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" -H "Sec-WebSocket-Version: 13" "${url}ws" || true
done
# The counters are written when the process exits.
kill -TERM "$gw"
wait "$gw" || true
ls "$data"/*.profraw >/dev/null 2>&1 || { echo "no profile was written" >&2; exit 1; }
"$profdata" merge -o "$data/merged.profdata" "$data"/*.profraw

echo "optimized build" >&2
RUSTFLAGS="-Cprofile-use=$data/merged.profdata" cargo build -q --release --locked --target "$TARGET" \
  --target-dir target/pgo -p gatehouse
echo "target/pgo/$TARGET/release/gatehouse"
