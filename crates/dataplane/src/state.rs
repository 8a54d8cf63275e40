//! The live configuration and the run-time state that sits beside it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use http::uri::Authority;
use snapshot::{Cluster, Endpoint, Snapshot};

/// What one request reads: the snapshot and, index for index with its
/// clusters, the run-time state of each cluster. Swapped as one value so a
/// request never sees a snapshot with another snapshot's state.
#[derive(Debug)]
pub(crate) struct Active {
    pub(crate) snapshot: Arc<Snapshot>,
    pub(crate) clusters: Vec<Arc<ClusterState>>,
    pub(crate) generation: u64,
}

/// Run-time state of one cluster, kept across configuration swaps for as
/// long as a cluster of the same name exists.
#[derive(Debug)]
pub(crate) struct ClusterState {
    /// Round-robin position.
    next: AtomicUsize,
    /// Pre-parsed authorities of the endpoints, index for index with the
    /// cluster's endpoint list.
    authorities: Vec<Authority>,
}

impl ClusterState {
    fn new(cluster: &Cluster, next: usize) -> Self {
        Self {
            next: AtomicUsize::new(next),
            authorities: cluster.endpoints.iter().map(authority_of).collect(),
        }
    }

    /// The next endpoint in round-robin order, with its authority.
    pub(crate) fn pick<'a>(
        &'a self,
        cluster: &'a Cluster,
    ) -> Option<(&'a Endpoint, &'a Authority)> {
        let len = cluster.endpoints.len();
        if len == 0 {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % len;
        Some((&cluster.endpoints[i], &self.authorities[i]))
    }
}

fn authority_of(endpoint: &Endpoint) -> Authority {
    Authority::try_from(endpoint.addr.to_string())
        .expect("a socket address always forms a valid authority")
}

/// The data plane's view of the configuration: one atomic value, swapped
/// whole on every publish.
#[derive(Debug)]
pub struct Gateway {
    active: ArcSwap<Active>,
    ready: AtomicBool,
    draining: AtomicBool,
    generation: AtomicU64,
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new()
    }
}

impl Gateway {
    /// A gateway serving nothing (every request gets 404) and not ready.
    pub fn new() -> Self {
        Self {
            active: ArcSwap::from_pointee(Active {
                snapshot: Arc::new(Snapshot::empty()),
                clusters: Vec::new(),
                generation: 0,
            }),
            ready: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            generation: AtomicU64::new(0),
        }
    }

    /// Makes `snapshot` the live configuration. Requests already in flight
    /// finish with the snapshot they started with. Cluster state (such as
    /// the round-robin position) carries over by cluster name.
    pub fn publish(&self, snapshot: Arc<Snapshot>) {
        let previous = self.active.load();
        let by_name: HashMap<&str, &Arc<ClusterState>> = previous
            .snapshot
            .clusters
            .iter()
            .zip(&previous.clusters)
            .map(|(c, s)| (&*c.name, s))
            .collect();
        let clusters = snapshot
            .clusters
            .iter()
            .map(|c| match by_name.get(&*c.name) {
                Some(old)
                    if old.authorities.len() == c.endpoints.len()
                        && old
                            .authorities
                            .iter()
                            .zip(&c.endpoints)
                            .all(|(a, e)| *a == authority_of(e)) =>
                {
                    Arc::clone(old)
                }
                Some(old) => Arc::new(ClusterState::new(c, old.next.load(Ordering::Relaxed))),
                None => Arc::new(ClusterState::new(
                    c,
                    fastrand::usize(..c.endpoints.len().max(1)),
                )),
            })
            .collect();
        let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        self.active.store(Arc::new(Active {
            snapshot,
            clusters,
            generation,
        }));
        self.ready.store(true, Ordering::Release);
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
