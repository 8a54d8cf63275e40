//! Endpoint selection and per-endpoint health.
//!
//! Each cluster of the live snapshot has a [`ClusterState`]; each of its
//! endpoints an [`EndpointState`] carried across configuration swaps by
//! address, so load, latency and health survive a publish. Selection skips
//! endpoints that are ejected (passive health) or failing active checks,
//! unless every endpoint is, in which case all are used ("panic mode":
//! better to try a doubtful endpoint than to fail every request).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use http::uri::Authority;
use snapshot::{Cluster, LoadBalance, OutlierPolicy};
use telemetry::BackendMetrics;

/// Milliseconds since the process's first use of this clock.
pub(crate) fn now_ms() -> u64 {
    millis(Instant::now())
}

/// `at` in this clock's milliseconds (for callers that have just read the
/// time anyway).
pub(crate) fn millis(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(|| at);
    u64::try_from(at.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
}

/// [`now_ms`], read at most once and only when asked for.
#[derive(Debug, Default)]
struct LazyNow(std::cell::Cell<Option<u64>>);

impl LazyNow {
    fn get(&self) -> u64 {
        match self.0.get() {
            Some(now) => now,
            None => {
                let now = now_ms();
                self.0.set(Some(now));
                now
            }
        }
    }
}

/// Decay time of the latency moving average.
const EWMA_DECAY_MS: f64 = 10_000.0;
/// Ring points per endpoint for consistent hashing (fewer for very large
/// clusters, to bound memory).
const RING_POINTS: usize = 160;
const RING_MAX_POINTS: usize = 100_000;

/// Run-time state of one endpoint.
#[derive(Debug)]
pub(crate) struct EndpointState {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: Authority,
    /// Stable identifier used in affinity cookies.
    pub(crate) id: u64,
    in_flight: AtomicU32,
    /// Peak-sensitive moving average of time to response headers, in
    /// nanoseconds, stored as `f64` bits.
    ewma: AtomicU64,
    ewma_stamp: AtomicU64,
    failures: AtomicU32,
    ejected_until: AtomicU64,
    ejections: AtomicU32,
    /// Result of active health checks (true when none are configured).
    pub(crate) healthy: AtomicBool,
    pub(crate) check_successes: AtomicU32,
    pub(crate) check_failures: AtomicU32,
}

impl EndpointState {
    fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            authority: Authority::try_from(addr.to_string())
                .expect("a socket address always forms a valid authority"),
            id: stable_hash(addr.to_string().as_bytes()),
            in_flight: AtomicU32::new(0),
            ewma: AtomicU64::new(0f64.to_bits()),
            ewma_stamp: AtomicU64::new(now_ms()),
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            healthy: AtomicBool::new(true),
            check_successes: AtomicU32::new(0),
            check_failures: AtomicU32::new(0),
        }
    }

    fn ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// Neither ejected nor failing health checks. The clock is read only
    /// for an endpoint that has been ejected at some point.
    fn available(&self, clock: &LazyNow) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        (until == 0 || until <= clock.get()) && self.healthy.load(Ordering::Relaxed)
    }

    fn cost(&self) -> f64 {
        let ewma = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        ewma * f64::from(self.in_flight.load(Ordering::Relaxed) + 1)
    }

    /// Records the time a response took to start; `now` is
    /// [`millis`] of the moment it started.
    pub(crate) fn observe_latency(&self, rtt: Duration, now: u64) {
        let rtt = rtt.as_nanos() as f64;
        let prev = f64::from_bits(self.ewma.load(Ordering::Relaxed));
        let elapsed = now.saturating_sub(self.ewma_stamp.swap(now, Ordering::Relaxed)) as f64;
        let next = if rtt > prev {
            // Peaks count at once; calm periods are forgotten slowly.
            rtt
        } else {
            let w = (-elapsed / EWMA_DECAY_MS).exp();
            prev * w + rtt * (1.0 - w)
        };
        self.ewma.store(next.to_bits(), Ordering::Relaxed);
    }

    /// Requests to this endpoint that have not finished.
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// Holds one in-flight request against an endpoint until dropped.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<EndpointState>);

impl InFlight {
    pub(crate) fn new(endpoint: Arc<EndpointState>) -> Self {
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(endpoint)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Run-time state of one cluster.
/// Points on the consistent-hash ring for `endpoints`: a fixed number per
/// endpoint (fewer for very large clusters), placed by a hash of the
/// endpoint's address so every replica builds the same ring.
fn build_ring(endpoints: &[Arc<EndpointState>]) -> Vec<(u64, u32)> {
    let points = RING_POINTS
        .min(RING_MAX_POINTS / endpoints.len().max(1))
        .max(1);
    let mut ring = Vec::with_capacity(endpoints.len() * points);
    for (i, ep) in endpoints.iter().enumerate() {
        let base = ep.addr.to_string();
        for p in 0..points {
            let h = mix(stable_hash(format!("{base}#{p}").as_bytes()));
            ring.push((h, u32::try_from(i).unwrap_or(u32::MAX)));
        }
    }
    ring.sort_unstable();
    ring
}

#[derive(Debug)]
pub(crate) struct ClusterState {
    pub(crate) name: Arc<str>,
    pub(crate) endpoints: Vec<Arc<EndpointState>>,
    next: AtomicUsize,
    /// Consistent-hash ring, built on first use: most clusters never hash,
    /// and the ring is the largest per-endpoint structure.
    ring: OnceLock<Vec<(u64, u32)>>,
    by_id: HashMap<u64, usize>,
    outlier: OutlierPolicy,
    /// Metric handles labelled with the cluster's name.
    pub(crate) metrics: Option<BackendMetrics>,
}

/// Outcome of an attempt, for passive health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Anything but a gateway error.
    Success,
    /// Connect failure, reset, 502, 503 or 504.
    GatewayError,
}

impl ClusterState {
    /// State for `cluster`, reusing endpoint state from `previous` by
    /// address.
    pub(crate) fn new(cluster: &Cluster, previous: Option<&ClusterState>) -> Self {
        let old: HashMap<SocketAddr, &Arc<EndpointState>> = previous
            .map(|p| p.endpoints.iter().map(|e| (e.addr, e)).collect())
            .unwrap_or_default();
        let endpoints: Vec<Arc<EndpointState>> = cluster
            .endpoints
            .iter()
            .map(|e| {
                old.get(&e.addr)
                    .map_or_else(|| Arc::new(EndpointState::new(e.addr)), |s| Arc::clone(s))
            })
            .collect();
        let by_id = endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (e.id, i))
            .collect();
        let start = previous.map_or_else(
            || fastrand::usize(..endpoints.len().max(1)),
            |p| p.next.load(Ordering::Relaxed),
        );
        Self {
            name: cluster.name.clone(),
            endpoints,
            next: AtomicUsize::new(start),
            ring: OnceLock::new(),
            by_id,
            outlier: cluster.outlier.clone(),
            metrics: None,
        }
    }

    /// Whether `cluster` describes the same endpoints and policies, so
    /// this state can be kept as it is.
    pub(crate) fn matches(&self, cluster: &Cluster) -> bool {
        self.outlier == cluster.outlier
            && self.endpoints.len() == cluster.endpoints.len()
            && self
                .endpoints
                .iter()
                .zip(&cluster.endpoints)
                .all(|(s, e)| s.addr == e.addr)
    }

    /// Picks an endpoint. `hash` is the request key for consistent
    /// hashing; `pinned` the endpoint id from an affinity cookie; `avoid`
    /// an endpoint that just failed this request (used only when another
    /// one is available).
    pub(crate) fn pick(
        &self,
        policy: &LoadBalance,
        hash: Option<u64>,
        pinned: Option<u64>,
        avoid: Option<SocketAddr>,
    ) -> Option<&Arc<EndpointState>> {
        let n = self.endpoints.len();
        if n == 0 {
            return None;
        }
        let clock = LazyNow::default();
        // Panic mode: when nothing is available, everything is.
        let any_available = self.endpoints.iter().any(|e| e.available(&clock));
        let usable = |i: usize| {
            let e = &self.endpoints[i];
            (!any_available || e.available(&clock)) && (n == 1 || Some(e.addr) != avoid)
        };
        if let Some(id) = pinned
            && let Some(&i) = self.by_id.get(&id)
            && usable(i)
        {
            return Some(&self.endpoints[i]);
        }
        let pick = match policy {
            LoadBalance::RoundRobin => self.round_robin(&usable),
            LoadBalance::Random => self.random(&usable),
            LoadBalance::LeastRequest => self.two_choices(&usable, |e| f64::from(e.in_flight())),
            LoadBalance::PeakEwma => self.two_choices(&usable, EndpointState::cost),
            LoadBalance::ConsistentHash(_) => match hash {
                Some(h) => self.on_ring(h, &usable),
                None => self.random(&usable),
            },
        };
        pick.map(|i| &self.endpoints[i])
    }

    fn round_robin(&self, usable: &impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.endpoints.len();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            if usable(i) {
                return Some(i);
            }
        }
        None
    }

    fn random(&self, usable: &impl Fn(usize) -> bool) -> Option<usize> {
        let n = self.endpoints.len();
        let start = fastrand::usize(..n);
        (0..n).map(|k| (start + k) % n).find(|&i| usable(i))
    }

    /// Power of two choices: the lower-cost of two distinct random usable
    /// endpoints.
    fn two_choices(
        &self,
        usable: &impl Fn(usize) -> bool,
        cost: impl Fn(&EndpointState) -> f64,
    ) -> Option<usize> {
        let n = self.endpoints.len();
        let a = self.random(usable)?;
        if n == 1 {
            return Some(a);
        }
        let offset = 1 + fastrand::usize(..n - 1);
        let b = (0..n - 1)
            .map(|k| (a + offset + k) % n)
            .find(|&i| i != a && usable(i));
        match b {
            Some(b) if cost(&self.endpoints[b]) < cost(&self.endpoints[a]) => Some(b),
            _ => Some(a),
        }
    }

    fn on_ring(&self, hash: u64, usable: &impl Fn(usize) -> bool) -> Option<usize> {
        let ring = self.ring.get_or_init(|| build_ring(&self.endpoints));
        if ring.is_empty() {
            return None;
        }
        let h = mix(hash);
        let start = ring.partition_point(|(point, _)| *point < h);
        let len = ring.len();
        (0..len)
            .map(|k| ring[(start + k) % len].1 as usize)
            .find(|&i| usable(i))
    }

    /// Records the outcome of an attempt for passive health checking, and
    /// ejects the endpoint when it has failed too often in a row.
    pub(crate) fn record(&self, endpoint: &EndpointState, outcome: Outcome) {
        match outcome {
            Outcome::Success => {
                endpoint.failures.store(0, Ordering::Relaxed);
            }
            Outcome::GatewayError => {
                let failures = endpoint.failures.fetch_add(1, Ordering::Relaxed) + 1;
                let threshold = self.outlier.consecutive_failures;
                if threshold == 0 || failures < threshold {
                    return;
                }
                let now = now_ms();
                let ejected = self.endpoints.iter().filter(|e| e.ejected(now)).count();
                let limit =
                    self.endpoints.len() * usize::from(self.outlier.max_ejection_percent) / 100;
                if ejected >= limit || endpoint.ejected(now) {
                    return;
                }
                let times = endpoint.ejections.fetch_add(1, Ordering::Relaxed) + 1;
                if let Some(m) = &self.metrics {
                    m.ejection();
                }
                let duration = self.outlier.base_ejection.saturating_mul(times.min(10));
                endpoint.ejected_until.store(
                    now + u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                endpoint.failures.store(0, Ordering::Relaxed);
                tracing::warn!(
                    cluster = %self.name, endpoint = %endpoint.addr, failures, ejection = ?duration,
                    "endpoint ejected after consecutive failures"
                );
            }
        }
    }

    /// The same state, counting into `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: BackendMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The endpoint with an affinity id, if it belongs to this cluster.
    pub(crate) fn endpoint_by_id(&self, id: u64) -> Option<&Arc<EndpointState>> {
        self.by_id.get(&id).map(|&i| &self.endpoints[i])
    }

    /// Whether the endpoint with affinity id `id` is here and available.
    pub(crate) fn has_available(&self, id: u64) -> bool {
        self.endpoint_by_id(id)
            .is_some_and(|e| e.available(&LazyNow::default()))
    }
}

/// FNV-1a: stable across processes and versions, so replicas agree on
/// hashes and affinity cookies.
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A finalizer that spreads FNV's output over the whole ring.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use snapshot::{Endpoint, HashKey};

    use super::*;

    fn cluster(n: u16) -> Cluster {
        Cluster::new(
            "t".into(),
            (0..n)
                .map(|i| Endpoint {
                    addr: SocketAddr::from(([10, 0, 0, 1], 1000 + i)),
                })
                .collect(),
        )
    }

    fn counts(state: &ClusterState, policy: &LoadBalance, n: usize) -> Map<SocketAddr, usize> {
        let mut m = Map::new();
        for _ in 0..n {
            let e = state
                .pick(policy, Some(fastrand::u64(..)), None, None)
                .unwrap();
            *m.entry(e.addr).or_default() += 1;
        }
        m
    }

    #[test]
    fn round_robin_and_random_spread_evenly() {
        let state = ClusterState::new(&cluster(4), None);
        let rr = counts(&state, &LoadBalance::RoundRobin, 400);
        assert!(rr.values().all(|&c| c == 100), "{rr:?}");
        let random = counts(&state, &LoadBalance::Random, 40_000);
        assert!(
            random.values().all(|&c| (9_000..=11_000).contains(&c)),
            "{random:?}"
        );
    }

    #[test]
    fn least_request_avoids_busy_endpoints() {
        let state = ClusterState::new(&cluster(4), None);
        let busy = state.endpoints[0].clone();
        let _held: Vec<_> = (0..10).map(|_| InFlight::new(busy.clone())).collect();
        let picks = counts(&state, &LoadBalance::LeastRequest, 3000);
        // Two choices: the busy endpoint wins only when it is drawn twice,
        // which distinct choices never do.
        assert_eq!(picks.get(&busy.addr).copied().unwrap_or(0), 0, "{picks:?}");
    }

    #[test]
    fn peak_ewma_prefers_fast_endpoints() {
        let state = ClusterState::new(&cluster(3), None);
        state.endpoints[0].observe_latency(Duration::from_millis(200), now_ms());
        state.endpoints[1].observe_latency(Duration::from_millis(5), now_ms());
        state.endpoints[2].observe_latency(Duration::from_millis(5), now_ms());
        let picks = counts(&state, &LoadBalance::PeakEwma, 3000);
        let slow = picks.get(&state.endpoints[0].addr).copied().unwrap_or(0);
        assert_eq!(
            slow, 0,
            "the slow endpoint loses every comparison: {picks:?}"
        );
    }

    #[test]
    fn consistent_hash_moves_about_one_nth_of_keys() {
        let policy = LoadBalance::ConsistentHash(HashKey::SourceIp);
        let before = ClusterState::new(&cluster(10), None);
        let after = ClusterState::new(&cluster(11), Some(&before));
        let keys: Vec<u64> = (0..20_000u64)
            .map(|k| stable_hash(&k.to_le_bytes()))
            .collect();
        let mut moved = 0;
        for &k in &keys {
            let a = before.pick(&policy, Some(k), None, None).unwrap().addr;
            let b = after.pick(&policy, Some(k), None, None).unwrap().addr;
            // The same key always lands on the same endpoint.
            assert_eq!(a, before.pick(&policy, Some(k), None, None).unwrap().addr);
            if a != b {
                moved += 1;
            }
        }
        let share = f64::from(moved) / keys.len() as f64;
        // Ideal is 1/11 ≈ 9.1%.
        assert!((0.05..0.14).contains(&share), "{share}");
        // And the spread over endpoints is reasonable.
        let spread = counts(&after, &policy, 22_000);
        assert!(spread.values().all(|&c| c > 1_000), "{spread:?}");
    }

    #[test]
    fn ejection_respects_threshold_and_max_percent() {
        let mut c = cluster(4);
        c.outlier = OutlierPolicy {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(60),
            max_ejection_percent: 50,
        };
        let state = ClusterState::new(&c, None);
        let fail = |i: usize, times: usize| {
            for _ in 0..times {
                state.record(&state.endpoints[i], Outcome::GatewayError);
            }
        };
        fail(0, 2);
        state.record(&state.endpoints[0], Outcome::Success);
        fail(0, 2);
        assert!(
            !state.endpoints[0].ejected(now_ms()),
            "a success resets the count"
        );
        fail(0, 1);
        assert!(state.endpoints[0].ejected(now_ms()));
        fail(1, 3);
        fail(2, 3);
        let ejected: Vec<_> = state
            .endpoints
            .iter()
            .filter(|e| e.ejected(now_ms()))
            .collect();
        assert_eq!(ejected.len(), 2, "never more than 50%");
        let picks = counts(&state, &LoadBalance::RoundRobin, 100);
        assert!(!picks.contains_key(&state.endpoints[0].addr));
        assert!(!picks.contains_key(&state.endpoints[1].addr));
    }

    #[test]
    fn panic_mode_and_affinity() {
        let state = ClusterState::new(&cluster(2), None);
        for e in &state.endpoints {
            e.healthy.store(false, Ordering::Relaxed);
        }
        assert!(
            state
                .pick(&LoadBalance::RoundRobin, None, None, None)
                .is_some(),
            "all unhealthy: use all"
        );
        let target = state.endpoints[1].id;
        for _ in 0..10 {
            let e = state
                .pick(&LoadBalance::RoundRobin, None, Some(target), None)
                .unwrap();
            assert_eq!(e.id, target);
        }
        assert!(state.endpoint_by_id(target).is_some());
        // A failed endpoint is avoided on the retry when another exists.
        let avoid = state.endpoints[0].addr;
        for _ in 0..10 {
            assert_ne!(
                state
                    .pick(&LoadBalance::RoundRobin, None, None, Some(avoid))
                    .unwrap()
                    .addr,
                avoid
            );
        }
    }

    #[test]
    fn state_survives_a_swap_by_address() {
        let first = ClusterState::new(&cluster(3), None);
        first.endpoints[1].observe_latency(Duration::from_millis(7), now_ms());
        let second = ClusterState::new(&cluster(2), Some(&first));
        assert!(Arc::ptr_eq(&first.endpoints[1], &second.endpoints[1]));
        assert!(second.matches(&cluster(2)));
        assert!(!second.matches(&cluster(3)));
    }
}
