//! Test support for Gatehouse: an echo backend, a harness that runs the
//! real binary, and an HTTP client for tests.
//!
//! This crate is never linked into the product binary; it exists so that
//! integration tests (and `make run`'s demo backends) exercise Gatehouse
//! over real sockets.

pub mod client;
pub mod echo;
pub mod grpc;
pub mod kubesim;
pub mod manifests;
pub mod nginx;
pub mod otlp;
pub mod pebble;
pub mod pki;
pub mod process;
pub mod scale;
pub mod scenario;
pub mod tlsclient;

pub use client::{HttpClient, Reply, raw_request, serve_fn};
pub use echo::{Echo, EchoServer};
pub use otlp::{OtlpCollector, ReceivedSpan};
pub use process::{GatewayProcess, eventually, free_addr, run_gatehouse};
pub use tlsclient::{TlsClient, TlsConn};
