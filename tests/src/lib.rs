//! Integration tests for Gatehouse live in `it/`: each starts the real
//! `gatehouse` binary on free loopback ports, with echo backends from
//! `gatehouse-testkit`, and talks to it over real sockets. Build the
//! binaries first (`cargo build --workspace --bins`; `make test` does).
