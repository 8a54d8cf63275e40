//! The immutable routing snapshot and its matcher.
//!
//! In the data flow of `DESIGN.md` this is the value between `translate()`
//! and the data plane: plain data, built once per configuration change,
//! published with one `ArcSwap::store` and read by every request. It knows
//! nothing of Kubernetes and does no I/O; everything a request needs to be
//! routed (patterns, precedence, weights, endpoints) is computed before the
//! snapshot exists, so a lookup only compares.
//!
//! Every node carries its origin (`kind/namespace/name/...`) so metrics, logs
//! and `explain` can say where a decision came from.

mod cluster;
mod compiled;
mod duration;
mod explain;
mod filters;
mod host;
mod index;
mod matcher;
mod path;
mod policy;
mod request;
mod route;
mod tls;
mod traffic;

use std::sync::Arc;

use serde::Serialize;

pub use cluster::{Cluster, ClusterIndex, Endpoint, UpstreamTls};
pub use compiled::{JsonSchema, Jwks, JwtKey};
pub use explain::{
    BackendSummary, ChosenHost, ConsideredEntry, ExplainedRequest, Explanation, RouteRow,
    RouteSummary,
};
pub use filters::{
    Filters, HeaderModifier, Mirror, PathRewrite, Redirect, RedirectFrom, Rewrite, Scheme,
};
pub use host::HostPattern;
pub use matcher::{
    BodyMatcher, EntryMatch, HeaderMatcher, PathMatch, Pattern, PatternError, QueryMatcher,
    RouteEntry, ValueMatch,
};
pub use path::{PathError, normalize_path};
pub use policy::{
    AccessList, ApiKeys, BasicUsers, CachePolicy, CacheQuery, Cidr, CorsPolicy, ExternalAuth,
    JwksSource, JwtPolicy, RateLimit, RateLimitKey, RateLimitScope, RequestValidation,
    RoutePolicies,
};
pub use request::{Body, RequestInfo, percent_decode};
pub use route::{
    Action, BackendTarget, DirectResponse, Forward, Origin, Route, RouteIndex, WeightedBackend,
};
pub use tls::{AcmeCertificate, AcmeState, Certificate, ClientValidation, TlsHost, TlsHosts};
pub use traffic::{
    Affinity, CompressionPolicy, Encoding, HashKey, HealthCheckPolicy, LoadBalance, OutlierPolicy,
    RetryPolicy, Traffic, UpstreamProtocol,
};

use host::HostIndex;

/// One complete, immutable routing configuration.
///
/// Built by the translator, never modified afterwards. Lists are in a
/// deterministic order so two snapshots of the same configuration compare
/// equal and serialize identically.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// Virtual hosts, sorted by host pattern.
    pub virtual_hosts: Vec<VirtualHost>,
    /// Every route, referenced by index from the virtual hosts' entries.
    pub routes: Vec<Route>,
    /// Every upstream cluster (a Service port and its ready endpoints),
    /// sorted by name and referenced by index from routes.
    pub clusters: Vec<Cluster>,
    /// TLS settings per host, for the HTTPS listener and HTTP redirects.
    pub tls: TlsHosts,
    /// Certificates kept issued by ACME, and the challenges being answered.
    pub acme: AcmeState,
    #[serde(skip)]
    hosts: HostIndex,
}

/// The routes of one host pattern, in precedence order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VirtualHost {
    /// Which Host headers this virtual host answers.
    pub host: HostPattern,
    /// Match entries, most specific first: the first entry that matches a
    /// request wins.
    pub entries: Vec<RouteEntry>,
    #[serde(skip)]
    index: index::PathIndex,
}

impl VirtualHost {
    /// A virtual host whose entries are already in precedence order.
    pub fn new(host: HostPattern, entries: Vec<RouteEntry>) -> Self {
        let index = index::PathIndex::build(&entries);
        Self {
            host,
            entries,
            index,
        }
    }

    /// The first entry that takes the request, using the path index.
    pub fn find(&self, req: &RequestInfo<'_>) -> Found<'_> {
        for pos in self.index.candidates(req.path, &self.entries) {
            let entry = &self.entries[pos as usize];
            match entry.check_beyond_path(req) {
                EntryMatch::Yes => return Found::Entry(entry),
                EntryMatch::NeedBody => return Found::NeedBody,
                EntryMatch::No => {}
            }
        }
        Found::None
    }

    /// The same answer as [`VirtualHost::find`], by checking every entry in
    /// order. The reference the index is tested against.
    pub fn find_linear(&self, req: &RequestInfo<'_>) -> Found<'_> {
        for entry in &self.entries {
            match entry.check(req) {
                EntryMatch::Yes => return Found::Entry(entry),
                EntryMatch::NeedBody => return Found::NeedBody,
                EntryMatch::No => {}
            }
        }
        Found::None
    }
}

/// What a virtual host found for a request.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Found<'a> {
    /// This entry takes the request.
    Entry(&'a RouteEntry),
    /// The deciding entry has body conditions: read the body and ask
    /// again.
    NeedBody,
    /// No entry takes the request.
    None,
}

/// The outcome of routing one request.
#[derive(Clone, Copy, Debug)]
pub struct Matched<'a> {
    /// The virtual host selected by the Host header.
    pub virtual_host: &'a VirtualHost,
    /// The entry that matched.
    pub entry: &'a RouteEntry,
    /// The route the entry belongs to.
    pub route: &'a Route,
}

/// The outcome of [`Snapshot::route`].
#[derive(Clone, Copy, Debug)]
pub enum Lookup<'a> {
    /// The request goes to this route.
    Matched(Matched<'a>),
    /// Body conditions decide: read the body (within the limit) and route
    /// again with it.
    NeedBody,
    /// No route takes the request.
    NotFound,
}

impl Snapshot {
    /// Assembles a snapshot and builds its lookup indexes.
    ///
    /// `virtual_hosts` are sorted by host pattern here; each host's entries
    /// must already be in precedence order.
    pub fn new(
        mut virtual_hosts: Vec<VirtualHost>,
        routes: Vec<Route>,
        clusters: Vec<Cluster>,
    ) -> Self {
        virtual_hosts.sort_by(|a, b| a.host.cmp(&b.host));
        let hosts = HostIndex::build(virtual_hosts.iter().map(|v| &v.host));
        let snapshot = Self {
            virtual_hosts,
            routes,
            clusters,
            tls: TlsHosts::default(),
            acme: AcmeState::default(),
            hosts,
        };
        if let Err(e) = snapshot.check_references() {
            // A builder bug, not a user error: say so loudly and refuse
            // the dangling reference rather than let a request hit it.
            panic!("snapshot invariant broken: {e}");
        }
        snapshot
    }

    /// Checks that every route and cluster index points inside the
    /// snapshot, so lookups never go out of bounds.
    fn check_references(&self) -> Result<(), String> {
        for vh in &self.virtual_hosts {
            for e in &vh.entries {
                if e.route.0 >= self.routes.len() {
                    return Err(format!("{} has an entry for route {}", vh.host, e.route.0));
                }
            }
        }
        let cluster_ok = |t: &BackendTarget| match t {
            BackendTarget::Cluster { index, .. } => index.0 < self.clusters.len(),
            BackendTarget::Unresolved { .. } => true,
        };
        for r in &self.routes {
            let forward_ok = match &r.action {
                Action::Forward(f) => f.backends.iter().all(|b| cluster_ok(&b.target)),
                _ => true,
            };
            if !forward_ok || !r.filters.mirrors.iter().all(|m| cluster_ok(&m.target)) {
                return Err(format!(
                    "route {} refers to a cluster that does not exist",
                    r.id
                ));
            }
        }
        Ok(())
    }

    /// The same snapshot with these TLS settings.
    #[must_use]
    pub fn with_tls(mut self, tls: TlsHosts) -> Self {
        self.tls = tls;
        self
    }

    /// The same snapshot with this ACME state.
    #[must_use]
    pub fn with_acme(mut self, acme: AcmeState) -> Self {
        self.acme = acme;
        self
    }

    /// An empty snapshot: every request gets 404.
    pub fn empty() -> Self {
        Self::new(Vec::new(), Vec::new(), Vec::new())
    }

    /// The virtual host for a request host (lowercase, without port): an
    /// exact name first, then a one-label wildcard, then the catch-all.
    pub fn virtual_host(&self, host: &str) -> Option<&VirtualHost> {
        self.hosts.find(host).map(|i| &self.virtual_hosts[i])
    }

    /// Routes a request: picks the virtual host by host, then the first
    /// entry of that host that matches. There is no fall-through to less
    /// specific hosts: a host that is configured but has no matching
    /// entry answers 404, as its own server block would.
    pub fn route(&self, req: &RequestInfo<'_>) -> Lookup<'_> {
        let Some(virtual_host) = self.virtual_host(req.host) else {
            return Lookup::NotFound;
        };
        match virtual_host.find(req) {
            Found::Entry(entry) => Lookup::Matched(Matched {
                virtual_host,
                entry,
                route: &self.routes[entry.route.0],
            }),
            Found::NeedBody => Lookup::NeedBody,
            Found::None => Lookup::NotFound,
        }
    }

    /// The cluster at an index taken from this snapshot's routes.
    pub fn cluster(&self, index: ClusterIndex) -> &Cluster {
        &self.clusters[index.0]
    }

    /// Number of match entries across all virtual hosts.
    pub fn entry_count(&self) -> usize {
        self.virtual_hosts.iter().map(|v| v.entries.len()).sum()
    }
}

impl Default for Snapshot {
    fn default() -> Self {
        Self::empty()
    }
}

/// A shared, immutable snapshot as the data plane holds it.
pub type SharedSnapshot = Arc<Snapshot>;

#[cfg(test)]
mod tests;
