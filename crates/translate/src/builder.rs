//! Assembles routes, ranked entries and clusters into a snapshot.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use snapshot::{
    Action, BackendTarget, Cluster, ClusterIndex, Endpoint, HostPattern, PathMatch, Route,
    RouteEntry, RouteIndex, Snapshot, UpstreamProtocol, VirtualHost,
};

use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::traffic::ClusterSettings;

/// How far down the precedence order an entry sits before its path is
/// even compared: ordinary entries first, then per-object default
/// backends, then the cluster-wide default backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Tier {
    Rule,
    ObjectDefault,
    GlobalDefault,
}

/// Where an entry came from, for ordering ties and for conflict messages.
#[derive(Clone, Debug)]
pub(crate) struct Provenance {
    pub(crate) object: ObjectRef,
    /// Seconds since the epoch of `metadata.creationTimestamp`; objects
    /// without one sort as the oldest.
    pub(crate) created: Option<i64>,
    /// Field of the match, for diagnostics.
    pub(crate) field: String,
}

/// A sort key implementing the documented precedence: exact path, then
/// regular expression (longer first), then prefix (longer first); then a
/// method, more header, more query and more body conditions; then the older
/// object,
/// then namespace/name, then the order within the object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    tier: Tier,
    path_class: u8,
    path_len: Reverse<usize>,
    no_method: bool,
    headers: Reverse<usize>,
    query: Reverse<usize>,
    body: Reverse<usize>,
    created: Option<i64>,
    namespace: Arc<str>,
    name: Arc<str>,
    kind: Arc<str>,
    position: usize,
}

struct Ranked {
    rank: Rank,
    entry: RouteEntry,
    provenance: Provenance,
}

/// A cluster as the first route that used it configured it.
struct ClusterDraft {
    endpoints: Vec<Endpoint>,
    protocol: UpstreamProtocol,
    settings: ClusterSettings,
    owner: String,
}

#[derive(Default)]
pub(crate) struct Builder {
    hosts: BTreeMap<HostPattern, Vec<Ranked>>,
    routes: Vec<Route>,
    clusters: BTreeMap<Arc<str>, ClusterDraft>,
    position: usize,
    /// TLS settings proposed by the objects, per host.
    pub(crate) tls: crate::tls::Collector,
}

impl Builder {
    /// The routes added so far, for policies to attach to.
    pub(crate) fn routes_mut(&mut self) -> &mut [Route] {
        &mut self.routes
    }

    /// Adds a route and returns its index for entries to point at.
    pub(crate) fn add_route(&mut self, route: Route) -> RouteIndex {
        self.routes.push(route);
        RouteIndex(self.routes.len() - 1)
    }

    /// Registers a cluster and returns a target naming it; indexes are
    /// assigned in [`Builder::finish`]. Protocol and health settings
    /// belong to the cluster: the first registration sets them, and a
    /// later one that differs gets the returned warning.
    pub(crate) fn cluster_target(
        &mut self,
        name: Arc<str>,
        endpoints: Vec<Endpoint>,
        protocol: UpstreamProtocol,
        settings: ClusterSettings,
        owner: String,
    ) -> (BackendTarget, Option<String>) {
        let mut warning = None;
        match self.clusters.get(&name) {
            Some(existing) if existing.protocol != protocol || existing.settings != settings => {
                warning = Some(format!(
                    "backend {name} is also used by {} with different protocol or health settings; those settings apply",
                    existing.owner
                ));
            }
            Some(_) => {}
            None => {
                self.clusters.insert(
                    name.clone(),
                    ClusterDraft {
                        endpoints,
                        protocol,
                        settings,
                        owner,
                    },
                );
            }
        }
        (
            BackendTarget::Cluster {
                index: ClusterIndex(usize::MAX),
                name,
            },
            warning,
        )
    }

    /// Adds an entry under a host pattern.
    pub(crate) fn add_entry(
        &mut self,
        host: HostPattern,
        entry: RouteEntry,
        tier: Tier,
        provenance: Provenance,
    ) {
        let path_class = match entry.path {
            PathMatch::Exact(_) => 0,
            PathMatch::Regex(_) => 1,
            PathMatch::Prefix(_) => 2,
        };
        self.position += 1;
        let rank = Rank {
            tier,
            path_class,
            path_len: Reverse(entry.path.len()),
            no_method: entry.method.is_none(),
            headers: Reverse(entry.headers.len()),
            query: Reverse(entry.query.len()),
            body: Reverse(entry.body.len()),
            created: provenance.created,
            namespace: provenance.object.namespace.clone(),
            name: provenance.object.name.clone(),
            kind: provenance.object.kind.clone(),
            position: self.position,
        };
        self.hosts.entry(host).or_default().push(Ranked {
            rank,
            entry,
            provenance,
        });
    }

    /// Host patterns that have at least one entry so far.
    pub(crate) fn hosts(&self) -> Vec<HostPattern> {
        self.hosts.keys().cloned().collect()
    }

    /// Orders every host's entries, drops entries shadowed by an
    /// identical, higher-ranked one (with a diagnostic on the loser), and
    /// assigns cluster indexes.
    pub(crate) fn finish(
        self,
        self_challenges: BTreeMap<Box<str>, Box<str>>,
        diags: &mut Diagnostics,
    ) -> Snapshot {
        let Self {
            hosts,
            mut routes,
            clusters,
            tls,
            ..
        } = self;
        let (tls, acme_certificates) = tls.finish(diags);

        let mut virtual_hosts = Vec::with_capacity(hosts.len());
        for (host, mut ranked) in hosts {
            ranked.sort_by(|a, b| a.rank.cmp(&b.rank));
            let mut seen: HashMap<String, Provenance> = HashMap::new();
            let mut entries = Vec::with_capacity(ranked.len());
            for r in ranked {
                let key = conditions_key(&r.entry, r.rank.tier);
                if let Some(w) = seen.get(&key) {
                    let what = if r.rank.tier == Tier::Rule {
                        "the same host, path and conditions"
                    } else {
                        "a default backend for the same host"
                    };
                    let by = if w.object == r.provenance.object {
                        format!("{} of the same object", w.field)
                    } else {
                        format!("{} ({})", w.object, w.field)
                    };
                    diags.error(
                        &r.provenance.object,
                        r.provenance.field.clone(),
                        Reason::Conflict,
                        format!(
                            "{what} ({host}) is already claimed by {by}, which takes precedence (older objects win, then namespace/name order); this one is not served"
                        ),
                    );
                    continue;
                }
                seen.insert(key, r.provenance);
                entries.push(r.entry);
            }
            virtual_hosts.push(VirtualHost::new(host, entries));
        }

        let names: Vec<Arc<str>> = clusters.keys().cloned().collect();
        let cluster_list: Vec<Cluster> = clusters
            .into_iter()
            .map(|(name, d)| Cluster {
                name,
                endpoints: d.endpoints,
                protocol: d.protocol,
                outlier: d.settings.outlier,
                health_check: d.settings.health_check,
                tls: d.settings.tls,
            })
            .collect();
        let resolve = |target: &mut BackendTarget| {
            if let BackendTarget::Cluster { index, name } = target
                && let Ok(i) = names.binary_search(name)
            {
                *index = ClusterIndex(i);
            }
        };
        for route in &mut routes {
            if let Action::Forward(forward) = &mut route.action {
                forward
                    .backends
                    .iter_mut()
                    .for_each(|b| resolve(&mut b.target));
            }
            route
                .filters
                .mirrors
                .iter_mut()
                .for_each(|m| resolve(&mut m.target));
        }
        Snapshot::new(virtual_hosts, routes, cluster_list)
            .with_tls(tls)
            .with_acme(snapshot::AcmeState {
                certificates: acme_certificates,
                challenges: self_challenges,
            })
    }
}

/// A canonical text of an entry's conditions: two entries with the same
/// key take exactly the same requests.
fn conditions_key(entry: &RouteEntry, tier: Tier) -> String {
    let mut headers: Vec<String> = entry.headers.iter().map(|h| format!("{h:?}")).collect();
    headers.sort();
    let mut query: Vec<String> = entry.query.iter().map(|q| format!("{q:?}")).collect();
    query.sort();
    let mut body: Vec<String> = entry.body.iter().map(|b| format!("{b:?}")).collect();
    body.sort();
    format!(
        "{tier:?}|{:?}|{:?}|{headers:?}|{query:?}|{body:?}",
        entry.path, entry.method
    )
}
