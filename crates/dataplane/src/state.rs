//! The live configuration and the run-time state that sits beside it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

use arc_swap::ArcSwap;
use snapshot::Snapshot;
use telemetry::{RouteMetrics, Telemetry};

use crate::cache::{CacheCounters, ResponseCache};
use crate::lb::ClusterState;
use crate::retry::RetryBudget;
use crate::tls::{Shared, TlsState};

/// What one request reads: the snapshot and, index for index with its
/// clusters and routes, their run-time state. Swapped as one value so a
/// request never sees a snapshot with another snapshot's state.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) clusters: Vec<Arc<ClusterState>>,
    pub(crate) routes: Vec<Arc<RouteState>>,
    pub(crate) generation: u64,
    /// Server configurations of the HTTPS listener, when it is enabled.
    pub(crate) tls: Option<TlsState>,
}

/// Run-time state of one route, kept across swaps by route id.
#[derive(Debug)]
pub(crate) struct RouteState {
    pub(crate) budget: RetryBudget,
    /// Metric handles labelled with the route's identity.
    pub(crate) metrics: RouteMetrics,
}

impl RouteState {
    fn new(route: &snapshot::Route) -> Self {
        Self {
            budget: RetryBudget::default(),
            metrics: RouteMetrics::new(&route.id, &route.origin.namespace),
        }
    }
}

/// The data plane's view of the configuration: one atomic value, swapped
/// whole on every publish.
#[derive(Debug)]
pub struct Gateway {
    active: ArcSwap<Active>,
    ready: AtomicBool,
    draining: AtomicBool,
    generation: AtomicU64,
    /// The generation last published, for those who follow changes
    /// (active health checks) on tasks of their own.
    published: watch::Sender<u64>,
    /// The default certificate and TLS session state, once HTTPS is
    /// enabled.
    tls: OnceLock<Shared>,
    /// Metrics, access log and tracer.
    telemetry: Arc<Telemetry>,
    /// End of validity of the default certificate, for its expiry metric.
    default_not_after: AtomicI64,
    /// The response cache the proxy fills and the admin endpoint purges.
    cache: Arc<ResponseCache>,
}

/// Bytes of responses the cache holds unless configured.
const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

impl Default for Gateway {
    fn default() -> Self {
        Self::new()
    }
}

impl Gateway {
    /// A gateway serving nothing (every request gets 404) and not ready,
    /// with metrics but no access log or trace export.
    pub fn new() -> Self {
        Self::with_telemetry(Arc::new(Telemetry::quiet()))
    }

    /// As [`Gateway::new`], reporting through `telemetry`, with a
    /// response cache of the default size (see [`Gateway::with_cache`]).
    pub fn with_telemetry(telemetry: Arc<Telemetry>) -> Self {
        let cache = Arc::new(
            ResponseCache::new(DEFAULT_CACHE_BYTES)
                .with_counters(CacheCounters::registered(&telemetry.metrics)),
        );
        Self {
            active: ArcSwap::from_pointee(Active {
                snapshot: Arc::new(Snapshot::empty()),
                clusters: Vec::new(),
                routes: Vec::new(),
                generation: 0,
                tls: None,
            }),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            published: watch::Sender::new(0),
            tls: OnceLock::new(),
            telemetry,
            default_not_after: AtomicI64::new(0),
            cache,
        }
    }

    /// Uses `cache` for responses (its counters registered with this
    /// gateway's metrics). Call before handing the gateway to a proxy.
    #[must_use]
    pub fn with_cache(mut self, cache: ResponseCache) -> Self {
        self.cache =
            Arc::new(cache.with_counters(CacheCounters::registered(&self.telemetry.metrics)));
        self
    }

    /// Metrics, access log and tracer.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// The response cache.
    pub fn cache(&self) -> &Arc<ResponseCache> {
        &self.cache
    }

    /// The generations published from now on (the current one first).
    pub(crate) fn follow(&self) -> watch::Receiver<u64> {
        self.published.subscribe()
    }

    /// Enables HTTPS with `chain_pem`/`key_pem` as the certificate for
    /// hosts without one of their own (and clients that send no SNI).
    /// Call before the first publish; later calls are ignored.
    pub fn set_default_certificate(
        &self,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<(), tls::CertError> {
        let cert = tls::certified_key(chain_pem, key_pem)?;
        if let Ok(info) = tls::cert_info(chain_pem) {
            self.default_not_after
                .store(info.not_after, Ordering::Relaxed);
        }
        let _ = self.tls.set(Shared::new(Arc::new(cert)));
        Ok(())
    }

    /// Makes `snapshot` the live configuration. Requests already in flight
    /// finish with the snapshot they started with. Cluster state (load,
    /// latency, health) carries over by cluster name and endpoint address;
    /// route state (retry budgets) by route id.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        let previous = self.active.load();
        let old_clusters: HashMap<&str, &Arc<ClusterState>> = previous
            .snapshot
            .clusters
            .iter()
            .zip(&previous.clusters)
            .map(|(c, s)| (&*c.name, s))
            .collect();
        let old_health: HashMap<&str, _> = previous
            .snapshot
            .clusters
            .iter()
            .map(|c| (&*c.name, (&c.health_check, c.protocol, &c.tls)))
            .collect();
        let mut clusters = Vec::with_capacity(snapshot.clusters.len());
        for c in &snapshot.clusters {
            let old = old_clusters.get(&*c.name);
            let unchanged_health =
                old_health.get(&*c.name) == Some(&(&c.health_check, c.protocol, &c.tls));
            let state = match old {
                Some(s) if s.matches(c) && unchanged_health => Arc::clone(s),
                // New state: the health checker (`health.rs`), which
                // follows publishes, starts checking it.
                _ => Arc::new(
                    ClusterState::new(c, old.map(|s| &***s))
                        .with_metrics(self.telemetry.metrics.backend(&c.name)),
                ),
            };
            clusters.push(state);
        }
        let old_routes: HashMap<&str, &Arc<RouteState>> = previous
            .snapshot
            .routes
            .iter()
            .zip(&previous.routes)
            .map(|(r, s)| (&*r.id, s))
            .collect();
        let routes = snapshot
            .routes
            .iter()
            .map(|r| {
                old_routes
                    .get(&*r.id)
                    .map_or_else(|| Arc::new(RouteState::new(r)), |s| Arc::clone(s))
            })
            .collect();
        let tls = self.tls.get().map(|shared| {
            let old = previous
                .tls
                .as_ref()
                .map(|state| (state, &*previous.snapshot));
            TlsState::build(shared, &snapshot, old)
        });
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.report(&snapshot, generation);
        self.active.store(Arc::new(Active {
            snapshot,
            clusters,
            routes,
            generation,
            tls,
        }));
        self.ready.store(true, Ordering::Release);
        self.published.send_replace(generation);
    }

    /// Sets the gauges that describe the configuration being published.
    fn report(&self, snapshot: &Snapshot, generation: u64) {
        let m = &self.telemetry.metrics;
        m.snapshot_publishes.inc();
        m.snapshot_generation
            .set(i64::try_from(generation).unwrap_or(i64::MAX));
        m.snapshot_routes
            .set(i64::try_from(snapshot.routes.len()).unwrap_or(i64::MAX));
        // Series of certificates no longer served go away.
        m.certificate_expiry.clear();
        let set = |source: &str, not_after: i64| {
            m.certificate_expiry
                .get_or_create(&telemetry::metrics::CertificateLabels {
                    certificate: source.to_owned(),
                })
                .set(not_after);
        };
        if self.tls.get().is_some() {
            set("default", self.default_not_after.load(Ordering::Relaxed));
        }
        for host in &snapshot.tls.hosts {
            if let Some(cert) = &host.certificate {
                set(&cert.source, cert.not_after);
            }
        }
    }

    /// Whether the gateway should receive traffic: a configuration has
    /// been published and shutdown has not begun.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire)
    }

    /// Marks the gateway as shutting down: `/readyz` fails from now on so
    /// load balancers stop sending new connections.
    pub fn begin_drain(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// The live snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.active.load().snapshot.clone()
    }

    /// How many snapshots have been published.
    pub fn generation(&self) -> u64 {
        self.active.load().generation
    }

    pub(crate) fn load(&self) -> Arc<Active> {
        self.active.load_full()
    }
}
