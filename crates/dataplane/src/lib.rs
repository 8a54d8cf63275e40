//! The data plane: listeners, the request pipeline, upstream connection
//! pools and the admin endpoints.
//!
//! In the data flow of `DESIGN.md` this is the right-hand box. It holds the
//! live snapshot in one `ArcSwap` ([`Gateway`]); each request loads it once
//! and keeps that `Arc` until its response is done, so a configuration
//! swap never affects a request in flight. It never sees Kubernetes types:
//! everything it needs was compiled into the snapshot.

pub mod admin;
mod body;
mod headers;
pub mod listener;
mod proxy;
mod respond;
mod state;

pub use body::ProxyBody;
pub use listener::{ListenerConfig, bind, serve};
pub use proxy::{Connection, Proxy, ProxyConfig};
pub use state::Gateway;
