//! What the annotations of one Ingress come to: typed settings and a
//! finding per annotation.

use api::{
    BackendProtocol, BasicAuth, ConsistentHash, Cors, ExternalAuth, LoadBalancerPolicy,
    SessionAffinity,
};
use serde::Serialize;

/// The annotation prefix of ingress-nginx.
pub const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// How one annotation fares in Gatehouse.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Verdict {
    /// Mapped; behaves as in ingress-nginx.
    Same,
    /// Mapped, with a documented difference.
    Differs,
    /// Known, not implemented: the Ingress is served without it.
    Unsupported,
    /// Known, not implemented, and it guards access: serving without it
    /// would open what it closes, so the Ingress is not served.
    Refused,
    /// The value does not parse: the Ingress is not served.
    Malformed,
    /// Not an ingress-nginx annotation Gatehouse knows.
    Unknown,
}

impl Verdict {
    /// Whether the Ingress cannot be served with this finding.
    pub fn blocks(self) -> bool {
        matches!(self, Self::Refused | Self::Malformed)
    }
}

/// What was found about one annotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The full annotation name.
    pub annotation: String,
    /// How it fares.
    pub verdict: Verdict,
    /// What Gatehouse does with it, or why not.
    pub message: String,
}

/// Canary routing of an Ingress marked `canary: "true"`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Canary {
    /// Share of requests, out of `weight_total`.
    pub weight: u32,
    /// Denominator of `weight` (default 100).
    pub weight_total: u32,
    /// Request header that picks the canary (`always`) or not (`never`).
    pub header: Option<String>,
    /// Exact header value that picks the canary, instead of `always`.
    pub header_value: Option<String>,
    /// Regular expression on the header value that picks the canary.
    pub header_pattern: Option<String>,
    /// Cookie that picks the canary (`always`) or not (`never`).
    pub cookie: Option<String>,
}

/// An HTTP redirect answered instead of proxying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlRedirect {
    /// Scheme of the target.
    pub https: bool,
    /// Host of the target; `None`: the request's.
    pub host: Option<String>,
    /// Port of the target.
    pub port: Option<u16>,
    /// Path of the target; `None`: the request's (for `$request_uri`).
    pub path: Option<String>,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
}

/// The typed settings of one Ingress's ingress-nginx annotations.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Paths are case-insensitive regular expressions anchored at the
    /// start (implied by `rewrite-target`).
    pub use_regex: bool,
    /// nginx `rewrite` replacement (`$1`…`$9` are path captures).
    pub rewrite_target: Option<String>,
    /// Redirect HTTP to HTTPS for the Ingress's TLS hosts.
    pub ssl_redirect: Option<bool>,
    /// Redirect HTTP to HTTPS for every host of the Ingress.
    pub force_ssl_redirect: bool,
    /// How the backends are spoken to.
    pub backend_protocol: Option<BackendProtocol>,
    /// Largest request body; `Some(0)`: no limit.
    pub max_body_bytes: Option<u64>,
    /// Time for a backend to start answering, seconds.
    pub read_timeout: Option<u32>,
    /// Requests per second per client address.
    pub limit_rps: Option<u32>,
    /// Requests per minute per client address.
    pub limit_rpm: Option<u32>,
    /// Requests in flight per client address.
    pub limit_connections: Option<u32>,
    /// Burst as a multiple of the rate (default 5).
    pub burst_multiplier: u32,
    /// Addresses allowed (CIDRs).
    pub allow: Vec<String>,
    /// Addresses denied (CIDRs).
    pub deny: Vec<String>,
    /// CORS.
    pub cors: Option<Cors>,
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// External authentication.
    pub external_auth: Option<ExternalAuth>,
    /// This Ingress is a canary of another with the same host and path.
    pub canary: Option<Canary>,
    /// Cookie session affinity.
    pub affinity: Option<SessionAffinity>,
    /// Consistent hashing key.
    pub hash_by: Option<ConsistentHash>,
    /// Load-balancing policy.
    pub load_balance: Option<LoadBalancerPolicy>,
    /// Redirect every request instead of proxying.
    pub redirect: Option<UrlRedirect>,
    /// Redirect `/` to this path.
    pub app_root: Option<String>,
}

/// Every annotation read from one Ingress, with its findings.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// The typed settings (meaningful only when no finding blocks).
    pub settings: Settings,
    /// One finding per `nginx.ingress.kubernetes.io/` annotation, in
    /// annotation order.
    pub findings: Vec<Finding>,
}

impl Parsed {
    /// Whether any finding keeps the Ingress from being served.
    pub fn blocked(&self) -> bool {
        self.findings.iter().any(|f| f.verdict.blocks())
    }
}
