//! Upstream clusters: a Service port and its ready endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::Serialize;

use crate::traffic::{HealthCheckPolicy, OutlierPolicy, UpstreamProtocol};

/// Position of a cluster in [`crate::Snapshot::clusters`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ClusterIndex(pub usize);

/// A set of interchangeable endpoints: one port of one Service.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// Stable name, `namespace/service:port`. Keys run-time state (load
    /// balancer position, connection pools) across configuration swaps.
    pub name: Arc<str>,
    /// Ready endpoints, sorted by address. Empty means every request to
    /// the cluster gets 503.
    pub endpoints: Vec<Endpoint>,
    /// How the endpoints are spoken to.
    pub protocol: UpstreamProtocol,
    /// Passive health checking.
    pub outlier: OutlierPolicy,
    /// Active health checking, if configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheckPolicy>,
    /// TLS to the endpoints (`HTTPS` and `GRPCS` backends).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<Arc<UpstreamTls>>,
}

/// How the gateway speaks TLS to a cluster's endpoints.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpstreamTls {
    /// Name sent as SNI and checked against the endpoint's certificate.
    pub server_name: Box<str>,
    /// Where the trusted CAs came from; `None`: the system's roots.
    pub ca_source: Option<Arc<str>>,
    /// PEM CA bundle the endpoints' certificates must chain to.
    #[serde(skip)]
    pub ca_pem: Option<Arc<[u8]>>,
    /// Client certificate presented to the endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<crate::Certificate>,
}

impl Cluster {
    /// A cluster with default protocol and health settings.
    pub fn new(name: Arc<str>, endpoints: Vec<Endpoint>) -> Self {
        Self {
            name,
            endpoints,
            protocol: UpstreamProtocol::default(),
            outlier: OutlierPolicy::default(),
            health_check: None,
            tls: None,
        }
    }
}

/// One ready endpoint of a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Endpoint {
    /// Address and port to connect to.
    pub addr: SocketAddr,
}
