# syntax=docker/dockerfile:1
#
# The Gatehouse image: a static binary on an empty base.
#
#   make image                 (docker build -t ghcr.io/gatehouse-dev/gatehouse:dev .)
#
# Stage 1 builds exactly what `make release-pgo` builds: the release
# profile, for the musl target of the build machine's architecture, with
# Cargo.lock as committed (--locked), optimized with a profile of the
# benchmark scenarios (bench/pgo.sh: an instrumented build serves them on
# loopback first). Should the profiled build fail, the plain `make
# release` binary is built instead, and the log says so. Stage 2 holds
# nothing but the binary and the CA bundle (for upstream TLS and ACME
# against public servers), and runs as an unprivileged user. The binary is stripped of
# the line tables the release profile keeps for profiling (134 MB → 28 MB).

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools make file binutils ca-certificates \
      curl openssl wrk nghttp2-client \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add "$(uname -m)-unknown-linux-musl" \
 && rustup component add llvm-tools
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=gatehouse-target \
    target="$(uname -m)-unknown-linux-musl" \
 && if make release-pgo; then \
      cp "target/pgo/$target/release/gatehouse" /gatehouse; \
    else \
      echo "warning: the profile-guided build failed; building without a profile" >&2; \
      make release && cp "target/$target/release/gatehouse" /gatehouse; \
    fi \
 && strip /gatehouse \
 && /gatehouse --version

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /gatehouse /gatehouse
# The chart runs as this user too (runAsUser 65532, runAsNonRoot).
USER 65532:65532
# Plain HTTP, HTTPS and the admin listener (health, readiness, metrics).
EXPOSE 8080 8443 9901
ENTRYPOINT ["/gatehouse"]
CMD ["--help"]
