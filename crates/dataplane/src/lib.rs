//! The data plane: listeners, the request pipeline, upstream connections,
//! load balancing, health, and the admin endpoints.
//!
//! In the data flow of `DESIGN.md` this is the right-hand box. It holds the
//! live snapshot in one `ArcSwap` ([`Gateway`]); each request loads it once
//! and keeps that `Arc` until its response is done, so a configuration
//! swap never affects a request in flight. Run-time state (load, latency,
//! health, retry budgets) sits beside the snapshot, keyed by stable
//! identity, and carries over swaps. It never sees Kubernetes types:
//! everything it needs was compiled into the snapshot.

pub mod admin;
mod body;
mod cache;
mod clientinfo;
mod compress;
mod grpc;
mod headers;
mod health;
mod lb;
pub mod listener;
mod policy;
mod proxy;
mod proxy_protocol;
mod ratelimit;
mod respond;
mod retry;
mod state;
mod tls;
mod tunnel;
mod upstream;

pub use body::{BoxError, ProxyBody};
pub use cache::{CacheCounters, ResponseCache};
pub use clientinfo::Cidr;
pub use listener::{ListenerConfig, bind, serve, serve_tls};
pub use proxy::{Connection, Proxy, ProxyConfig};
pub use ratelimit::{RateLimitCounters, RateLimiter};
pub use state::Gateway;
