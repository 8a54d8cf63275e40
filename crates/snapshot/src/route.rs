//! Routes: what happens to a request once it matched.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderValue;
use serde::{Serialize, Serializer};

use crate::cluster::ClusterIndex;
use crate::filters::{Filters, Redirect};
use crate::traffic::Traffic;

/// Position of a route in [`crate::Snapshot::routes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct RouteIndex(pub usize);

/// The object a route came from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    /// `Ingress` or `ApiRoute`.
    pub kind: &'static str,
    /// Namespace of the object.
    pub namespace: Arc<str>,
    /// Name of the object.
    pub name: Arc<str>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One route: a rule of an ApiRoute, a path of an Ingress, or an Ingress
/// default backend.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    /// Stable identity, a path such as
    /// `apiroute/shop/orders/rule/v1` or
    /// `ingress/default/web/rule/0/path/1`. Labels metrics and logs and
    /// keys run-time state that must survive configuration swaps.
    pub id: Arc<str>,
    /// The object the route came from.
    pub origin: Origin,
    /// What the gateway does with matching requests.
    pub action: Action,
    /// Longest time until the response headers arrive, across attempts.
    /// `None`: the gateway's default; zero: no limit.
    #[serde(
        serialize_with = "crate::duration::ser_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub request_timeout: Option<Duration>,
    /// Longest time for one upstream attempt. `None`: as the request;
    /// zero: no limit.
    #[serde(
        serialize_with = "crate::duration::ser_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub backend_timeout: Option<Duration>,
    /// Header changes, rewrites and mirrors.
    #[serde(skip_serializing_if = "Filters::is_empty")]
    pub filters: Filters,
    /// Load balancing, retries, compression and limits.
    #[serde(skip_serializing_if = "Traffic::is_default")]
    pub traffic: Traffic,
    /// Rate limits from the RateLimitPolicies that target the route; a
    /// request must pass every one.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<Arc<crate::RateLimit>>,
    /// Address lists, authentication and CORS.
    #[serde(skip_serializing_if = "crate::RoutePolicies::is_empty")]
    pub policies: crate::RoutePolicies,
}

/// What the gateway does with a request.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// Proxy it to one of the weighted backends.
    Forward(Forward),
    /// Answer it directly.
    Respond(DirectResponse),
    /// Answer it with a redirect.
    Redirect(Redirect),
}

/// Weighted upstream choice.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Forward {
    /// Backends with a weight above zero.
    pub backends: Vec<WeightedBackend>,
    #[serde(skip)]
    total_weight: u64,
}

impl Forward {
    /// A weighted choice among `backends`; zero weights are dropped.
    pub fn new(backends: Vec<WeightedBackend>) -> Self {
        let backends: Vec<_> = backends.into_iter().filter(|b| b.weight > 0).collect();
        let total_weight = backends.iter().map(|b| u64::from(b.weight)).sum();
        Self {
            backends,
            total_weight,
        }
    }

    /// Sum of all weights; 0 when there is no backend.
    pub fn total_weight(&self) -> u64 {
        self.total_weight
    }

    /// The backend for a draw `n` in `0..total_weight()`; each backend owns
    /// a share of that range equal to its weight. `None` when there is no
    /// backend.
    pub fn pick(&self, n: u64) -> Option<&WeightedBackend> {
        if self.backends.len() == 1 {
            return self.backends.first();
        }
        let mut n = n % self.total_weight.max(1);
        for b in &self.backends {
            let w = u64::from(b.weight);
            if n < w {
                return Some(b);
            }
            n -= w;
        }
        self.backends.last()
    }
}

/// A backend and its share of traffic.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightedBackend {
    /// Relative share of requests.
    pub weight: u32,
    /// Where the share goes.
    pub target: BackendTarget,
}

/// Where a backend's share of requests goes.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendTarget {
    /// A cluster of this snapshot.
    Cluster {
        /// Index into [`crate::Snapshot::clusters`].
        index: ClusterIndex,
        /// The cluster's name, for reading.
        name: Arc<str>,
    },
    /// A backend that could not be resolved (missing Service or port):
    /// its share is answered with `status`.
    Unresolved {
        /// Status code for the share (500 for ApiRoutes, 503 for Ingress).
        status: u16,
        /// Why it did not resolve.
        reason: Arc<str>,
    },
}

/// A fixed response.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectResponse {
    /// Status code.
    pub status: u16,
    /// Content type of the body.
    #[serde(serialize_with = "crate::filters::ser_value")]
    pub content_type: HeaderValue,
    /// Body.
    #[serde(serialize_with = "ser_body")]
    pub body: Bytes,
}

fn ser_body<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&String::from_utf8_lossy(b))
}
