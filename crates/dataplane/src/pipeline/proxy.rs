//! The proxy itself: its settings, and what it holds for every request
//! (the live configuration, upstream connections, rate limiter, caches).
//! The phases are methods of it in their own files; `mod.rs` drives them.

use std::sync::Arc;
use std::time::Duration;

use crate::cache::ResponseCache;
use crate::clientinfo::Cidr;
use crate::ratelimit::{InFlightPerClient, RateLimitCounters, RateLimiter};
use crate::state::Gateway;
use crate::upstream::{UpstreamConfig, Upstreams};

/// Most keys held per local rate limit before new keys share a budget.
const DEFAULT_RATE_LIMIT_KEYS: usize = 100_000;

/// Settings of the request pipeline.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Time limit for the upstream response headers when the route sets
    /// none.
    pub default_timeout: Duration,
    /// Time limit for establishing an upstream connection.
    pub connect_timeout: Duration,
    /// How long idle upstream connections are kept for reuse.
    pub upstream_idle_timeout: Duration,
    /// Most idle connections kept per upstream endpoint.
    pub upstream_max_idle: usize,
    /// Most body bytes read to evaluate body conditions; a larger body is
    /// answered with 413.
    pub max_body_match_bytes: usize,
    /// Largest request body for routes that set no limit; `None`: no limit.
    pub max_request_body_bytes: Option<u64>,
    /// Peers allowed to name the client in `X-Forwarded-For`.
    pub trusted_proxies: Vec<Cidr>,
    /// Idle limit of upgraded connections for routes that set none.
    pub tunnel_idle_timeout: Duration,
    /// Largest request body kept in memory so a retry can send it again.
    pub retry_buffer_bytes: usize,
    /// Port in the `Location` of HTTP-to-HTTPS redirects (443 is left
    /// out of the URL).
    pub https_redirect_port: u16,
    /// Data-plane worker threads with a runtime each (see
    /// [`crate::set_worker`]): the upstream pools keep a share per
    /// worker and one for every other thread. 0 when one runtime serves
    /// everything, however many threads it has.
    pub workers: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle: 256,
            max_body_match_bytes: 64 * 1024,
            max_request_body_bytes: None,
            trusted_proxies: Vec::new(),
            tunnel_idle_timeout: Duration::from_secs(3600),
            retry_buffer_bytes: 64 * 1024,
            https_redirect_port: 443,
            workers: 0,
        }
    }
}

/// The proxy: the live configuration plus the upstream connections.
#[derive(Debug)]
pub struct Proxy {
    pub(super) gateway: Arc<Gateway>,
    pub(super) upstreams: Arc<Upstreams>,
    pub(super) config: ProxyConfig,
    pub(super) rate_limiter: Arc<RateLimiter>,
    pub(super) in_flight_per_client: Arc<InFlightPerClient>,
    pub(super) basic_cache: Arc<crate::policy::BasicCache>,
    pub(super) auth_client: crate::policy::AuthClient,
    pub(super) cache: Arc<ResponseCache>,
    pub(super) jwks: crate::policy::JwksCache,
    pub(super) telemetry: Arc<telemetry::Telemetry>,
}

impl Proxy {
    /// A proxy serving `gateway`'s live configuration, filling its
    /// response cache. Built after the gateway, never wired back into it:
    /// the proxy's upstream clients serve the active health checks through
    /// [`Proxy::health_checks`].
    pub fn new(gateway: Arc<Gateway>, config: ProxyConfig) -> Self {
        let upstreams = Arc::new(Upstreams::new(&UpstreamConfig {
            connect_timeout: config.connect_timeout,
            idle_timeout: config.upstream_idle_timeout,
            max_idle: config.upstream_max_idle,
            workers: config.workers,
        }));
        let telemetry = gateway.telemetry().clone();
        let cache = gateway.cache().clone();
        let mut rate_limiter = RateLimiter::new(DEFAULT_RATE_LIMIT_KEYS);
        rate_limiter.counters = Arc::new(RateLimitCounters::registered(&telemetry.metrics));
        let rate_limiter = Arc::new(rate_limiter);
        Self {
            telemetry,
            gateway,
            upstreams,
            config,
            rate_limiter,
            in_flight_per_client: Arc::default(),
            basic_cache: Arc::default(),
            auth_client: crate::policy::auth_client(),
            jwks: crate::policy::JwksCache::new(),
            cache,
        }
    }

    /// Active health checks of the gateway's clusters, through this
    /// proxy's upstream clients: run it on a task of its own. It follows
    /// every publish and ends when the gateway is dropped.
    pub fn health_checks(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        crate::health::follow(Arc::downgrade(&self.gateway), self.upstreams.clone())
    }

    /// Uses `limiter` for rate limits (for example one with Redis).
    #[must_use]
    pub fn with_rate_limiter(mut self, mut limiter: RateLimiter) -> Self {
        limiter.counters = Arc::new(RateLimitCounters::registered(&self.telemetry.metrics));
        self.rate_limiter = Arc::new(limiter);
        self
    }

    /// The live configuration this proxy serves.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The peers trusted to name the client.
    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.config.trusted_proxies
    }
}
