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
mod connection;
mod deadline;
mod error;
mod grpc;
mod headers;
mod health;
mod http1;
mod lb;
pub mod listener;
mod observe;
mod pipeline;
mod policy;
mod proxy_body;
mod proxy_protocol;
mod ratelimit;
mod respond;
mod retry;
mod send_timeout;
mod state;
mod tls;
mod tunnel;
mod upstream;
mod workers;

pub use cache::{CacheCounters, Purge, ResponseCache};
pub use clientinfo::Cidr;
pub use connection::Connection;
pub use error::BoxError;
pub use listener::{ListenerConfig, bind, bind_shared, serve, serve_tls};
pub use pipeline::{Proxy, ProxyConfig};
pub use proxy_body::ProxyBody;
pub use ratelimit::{RateLimitCounters, RateLimiter};
pub use state::Gateway;
pub use workers::set_worker;

/// Entry points for the policy benchmarks (`benches/policy.rs`); not a
/// stable interface.
#[doc(hidden)]
pub mod bench {
    use std::sync::Arc;

    use bytes::Bytes;
    use futures_util::FutureExt;
    use http::{HeaderMap, StatusCode};
    use snapshot::{ApiKeys, CachePolicy, RateLimit, RoutePolicies};

    use crate::RateLimiter;
    use crate::cache::ResponseCache;

    /// One local rate-limit check (no await happens for local limits).
    pub fn rate_limit(limiter: &RateLimiter, limit: &RateLimit, key: &[u8]) -> bool {
        limiter
            .check(limit, key)
            .now_or_never()
            .and_then(Result::ok)
            .is_some_and(|d| d.allowed)
    }

    /// One API-key check of `headers`.
    pub fn api_key(keys: &Arc<ApiKeys>, headers: &HeaderMap) -> bool {
        let policies = RoutePolicies {
            api_keys: Some(keys.clone()),
            ..RoutePolicies::default()
        };
        static CACHE: std::sync::OnceLock<Arc<crate::policy::BasicCache>> =
            std::sync::OnceLock::new();
        static JWKS: std::sync::OnceLock<crate::policy::JwksCache> = std::sync::OnceLock::new();
        let cache = CACHE.get_or_init(Arc::default);
        let jwks = JWKS.get_or_init(crate::policy::JwksCache::new);
        crate::policy::authenticate(&policies, headers, None, "h", cache, jwks)
            .now_or_never()
            .is_some_and(|r| r.is_ok())
    }

    /// Stores a response under `key`.
    pub fn cache_store(cache: &ResponseCache, key: &str, policy: &CachePolicy, body: Bytes) {
        cache.store(
            key,
            policy,
            &HeaderMap::new(),
            StatusCode::OK,
            &HeaderMap::new(),
            body,
        );
    }

    /// A cache lookup by request parts: key computation and a hit.
    pub fn cache_hit(
        cache: &Arc<ResponseCache>,
        policy: &CachePolicy,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> bool {
        let key = ResponseCache::key(policy, "route", "h", path, query, headers);
        matches!(
            cache
                .lookup(key, headers, std::time::Duration::from_secs(1))
                .now_or_never(),
            Some(crate::cache::Lookup::Hit(_))
        )
    }

    /// What happens to a request's headers on the way upstream, short of
    /// the forwarding headers: hop-by-hop headers removed, then the
    /// route's header modifier (set, add, remove).
    pub fn rewrite_request_headers(headers: &mut HeaderMap, modifier: &snapshot::HeaderModifier) {
        crate::headers::strip_hop_by_hop(headers);
        modifier.apply(headers);
    }

    /// The cache key of a request.
    pub fn cache_key(
        policy: &CachePolicy,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> String {
        ResponseCache::key(policy, "route", "h", path, query, headers)
    }
}
