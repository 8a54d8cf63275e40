//! Traffic management settings of an ApiRoute rule: upstream protocol,
//! load balancing, retries, health, compression and request limits.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How Gatehouse talks to a backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum BackendProtocol {
    /// HTTP/1.1 over plain TCP.
    HTTP,
    /// HTTP/2 over plain TCP with prior knowledge (h2c).
    H2C,
    /// gRPC: HTTP/2 over plain TCP.
    GRPC,
    /// HTTP/1.1 or HTTP/2 over TLS.
    HTTPS,
    /// gRPC over TLS.
    GRPCS,
}

/// How requests are spread over the endpoints of a backend.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.policy) || self.policy == 'ConsistentHash' || !has(self.consistentHash)").message("consistentHash is only used with policy ConsistentHash"))]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    /// `RoundRobin` (default): each endpoint in turn. `LeastRequest`: the
    /// less busy of two random endpoints (fewest requests in flight).
    /// `PeakEwma`: the faster of two random endpoints, by a moving average
    /// of latency that reacts to spikes at once and forgets them slowly,
    /// weighted by requests in flight. `Random`: uniformly at random.
    /// `ConsistentHash`: the same key always goes to the same endpoint;
    /// when endpoints come or go only about 1/N of keys move.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<LoadBalancerPolicy>,

    /// The key for `ConsistentHash`. Default: the client IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHash>,

    /// Keep each client on one endpoint with a cookie the gateway issues.
    /// Applies on top of any policy: a request with a valid cookie goes
    /// to its endpoint while that endpoint is ready; otherwise the policy
    /// picks and the response sets the cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<SessionAffinity>,
}

/// Load-balancing policies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum LoadBalancerPolicy {
    /// Each endpoint in turn.
    RoundRobin,
    /// The less busy of two random endpoints.
    LeastRequest,
    /// The faster of two random endpoints.
    PeakEwma,
    /// Uniformly at random.
    Random,
    /// By a hash of the request key.
    ConsistentHash,
}

/// The request key of consistent hashing. Set exactly one field.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("[has(self.header), has(self.cookie), has(self.sourceIP) && self.sourceIP].filter(x, x).size() == 1").message("set exactly one of header, cookie or sourceIP"))]
#[serde(rename_all = "camelCase")]
pub struct ConsistentHash {
    /// Hash the value of this request header. Requests without it are
    /// spread as by `Random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub header: Option<String>,
    /// Hash the value of this cookie. Requests without it are spread as by
    /// `Random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub cookie: Option<String>,
    /// Hash the client IP address (after trusted proxies).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "sourceIP")]
    pub source_ip: Option<bool>,
}

/// Cookie-based session affinity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionAffinity {
    /// Name of the cookie. Default `gatehouse-affinity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    )]
    pub cookie_name: Option<String>,
    /// Lifetime of the cookie, such as `1h`. Default: a session cookie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub ttl: Option<String>,
}

/// When and how often to try a request again.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retry {
    /// Attempts after the first, 0 to 5. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 5))]
    pub attempts: Option<i32>,
    /// Failures that are retried: `connect-failure` (the connection could
    /// not be made: always safe to retry), `reset` (the upstream closed
    /// the connection without answering), `gateway-error` (502, 503 or
    /// 504 from the upstream). `reset` and `gateway-error` are retried
    /// only for idempotent methods (GET, HEAD, OPTIONS, PUT, DELETE, TRACE)
    /// or when the request body is small enough to replay. Default
    /// `[connect-failure]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub on: Vec<RetryOn>,
    /// Time limit of each attempt. Default: the rule's
    /// `timeouts.backendRequest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub per_try_timeout: Option<String>,
    /// Wait before retry N: a random time up to `min(max, base × 2^N)`.
    /// Default base 25ms, max 250ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Retries may add at most this share of the rule's requests, 0 to
    /// 100 (plus a floor of a few retries per second), so a failing
    /// backend is not stormed. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub budget_percent: Option<i32>,
}

/// Failures that can be retried.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RetryOn {
    /// The connection could not be established.
    ConnectFailure,
    /// The connection was closed before a response arrived.
    Reset,
    /// The upstream answered 502, 503 or 504.
    GatewayError,
}

/// Retry backoff.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Base interval. Default 25ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub base: Option<String>,
    /// Longest interval. Default 250ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub max: Option<String>,
}

/// Passive health checking: endpoints that keep failing are taken out of
/// rotation for a while.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutlierDetection {
    /// Consecutive gateway errors (connect failures, resets, 502, 503,
    /// 504) that eject an endpoint. Default 5; 0 turns detection off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub consecutive_failures: Option<i32>,
    /// How long the first ejection lasts; each further ejection of the
    /// same endpoint lasts one base time longer. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub base_ejection_time: Option<String>,
    /// Most endpoints of a backend ejected at once, in percent. Default 50.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: Option<i32>,
}

/// Active health checking: the gateway probes every endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    /// Path of the probe (a GET). A 2xx or 3xx answer is healthy.
    #[schemars(length(min = 1, max = 1024))]
    pub path: String,
    /// Time between probes. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub interval: Option<String>,
    /// Time limit of one probe. Default 2s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub timeout: Option<String>,
    /// Failed probes in a row that mark an endpoint unhealthy. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub unhealthy_threshold: Option<i32>,
    /// Passed probes in a row that mark it healthy again. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub healthy_threshold: Option<i32>,
}

/// Response compression, negotiated with the client's `Accept-Encoding`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Compression {
    /// Encodings offered, in order of preference when the client accepts
    /// several equally. Default `[br, zstd, gzip]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 3))]
    pub algorithms: Vec<CompressionAlgorithm>,
    /// Responses smaller than this (by `Content-Length`) are sent as they
    /// are. Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub min_bytes: Option<i64>,
    /// Content types compressed (without parameters). Default: `text/*`,
    /// `application/json`, `application/javascript`, `application/xml`,
    /// `image/svg+xml` and any `+json` or `+xml` type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 128)))]
    pub content_types: Vec<String>,
}

/// Compression encodings.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CompressionAlgorithm {
    /// Brotli.
    Br,
    /// Zstandard.
    Zstd,
    /// gzip.
    Gzip,
}

/// Limits on requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestLimits {
    /// Largest request body in bytes; a larger body is answered with 413
    /// (at once when `Content-Length` says so, else when the limit is
    /// crossed). Default: the gateway's `--max-request-body-bytes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_body_bytes: Option<i64>,
    /// Most requests one client address may have in flight on this rule
    /// at once (a streaming response counts until it ends); more are
    /// answered with 429. Default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1_000_000))]
    pub max_in_flight_per_client: Option<i32>,
}
