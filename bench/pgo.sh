#!/usr/bin/env bash
# A profile-guided build of the gatehouse binary: an instrumented build
# serves the benchmark scenarios for a while (HTTP/1.1 keep-alive small and
# 16 KiB responses, a new connection per request, h2c, HTTPS, a rate-limited
# route, a cache hit, a streamed request body), its counters are merged
# with llvm-profdata, and the binary is built again with them. The profile
# tells the compiler which branches and functions are hot: it lays the
# request path out in few cache lines and moves cold code (errors, unused
# policies) out of its way.
#
#   bench/pgo.sh                      # → target/pgo/<host>/release/gatehouse
#   TARGET=x86_64-unknown-linux-musl bench/pgo.sh   # the image's target
#   SECONDS_PER_SCENARIO=3 bench/pgo.sh
#
# Needs llvm-profdata of the LLVM major version rustc uses (`rustc -vV`):
# rustup's llvm-tools component, or Debian's llvm-N package (llvm-22 for
# Rust 1.95). Needs wrk, h2load and curl, like the other benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

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

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
target/release/gatehouse-bench-upstream 127.0.0.1:18980 &
pids+=($!)
target/release/gatehouse-bench-upstream 127.0.0.1:18979 16384 &
pids+=($!)
"$instrumented" standalone --manifests bench/gatehouse --worker-threads 1 \
  --http-addr 127.0.0.1:18981 --https-addr 127.0.0.1:18987 --admin-addr 127.0.0.1:18990 \
  --default-certificate "$certs/cert.pem" --default-key "$certs/key.pem" \
  --log-level warn --access-log off &
gw=$!
for _ in $(seq 300); do curl -sf -o /dev/null http://127.0.0.1:18990/readyz && break; sleep 0.1; done
curl -sf -o /dev/null http://127.0.0.1:18990/readyz || { echo "the instrumented gateway did not start" >&2; exit 1; }

d=${SECONDS_PER_SCENARIO}s
url=http://127.0.0.1:18981/
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
# The counters are written when the process exits.
kill -TERM "$gw"
wait "$gw" || true
ls "$data"/*.profraw >/dev/null 2>&1 || { echo "no profile was written" >&2; exit 1; }
"$profdata" merge -o "$data/merged.profdata" "$data"/*.profraw

echo "optimized build" >&2
RUSTFLAGS="-Cprofile-use=$data/merged.profdata" cargo build -q --release --locked --target "$TARGET" \
  --target-dir target/pgo -p gatehouse
echo "target/pgo/$TARGET/release/gatehouse"
