//! Traffic policies: load balancing, retries, health, compression.

use std::time::Duration;

use serde::{Serialize, Serializer};

/// How Gatehouse talks to a cluster's endpoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, with pooled keep-alive connections.
    #[default]
    Http1,
    /// HTTP/2 with prior knowledge (h2c, gRPC), one multiplexed
    /// connection per endpoint.
    H2c,
}

/// The key of consistent hashing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum HashKey {
    /// A request header.
    Header(#[serde(serialize_with = "ser_name")] http::HeaderName),
    /// A cookie.
    Cookie(Box<str>),
    /// The client IP address.
    SourceIp,
}

fn ser_name<S: Serializer>(n: &http::HeaderName, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(n.as_str())
}

/// How requests are spread over a cluster's endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LoadBalance {
    /// Each endpoint in turn.
    #[default]
    RoundRobin,
    /// The less busy of two random endpoints.
    LeastRequest,
    /// The faster of two random endpoints (peak-sensitive moving average
    /// of latency times requests in flight).
    PeakEwma,
    /// Uniformly at random.
    Random,
    /// By a hash of the key, on a ring.
    ConsistentHash(HashKey),
}

/// Cookie-based session affinity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Affinity {
    /// The cookie's name.
    pub cookie: Box<str>,
    /// The cookie's lifetime; `None` for a session cookie.
    #[serde(
        serialize_with = "crate::duration::ser_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
}

/// Retry settings of a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub attempts: u8,
    /// Retry when the connection could not be made.
    pub on_connect_failure: bool,
    /// Retry when the connection closed before a response.
    pub on_reset: bool,
    /// Retry on 502, 503 and 504.
    pub on_gateway_error: bool,
    /// Time limit of one attempt; `None`: the route's backend timeout.
    #[serde(
        serialize_with = "crate::duration::ser_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_try_timeout: Option<Duration>,
    /// Base backoff.
    #[serde(serialize_with = "crate::duration::ser")]
    pub backoff_base: Duration,
    /// Largest backoff.
    #[serde(serialize_with = "crate::duration::ser")]
    pub backoff_max: Duration,
    /// Retries may add at most this percentage of requests.
    pub budget_percent: u8,
}

/// Passive health checking of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutlierPolicy {
    /// Consecutive gateway errors that eject an endpoint; 0: never.
    pub consecutive_failures: u32,
    /// First ejection time; each further ejection adds one more.
    #[serde(serialize_with = "crate::duration::ser")]
    pub base_ejection: Duration,
    /// Most endpoints ejected at once, in percent.
    pub max_ejection_percent: u8,
}

impl Default for OutlierPolicy {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(10),
            max_ejection_percent: 50,
        }
    }
}

/// Active health checking of a cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckPolicy {
    /// Path probed with GET.
    pub path: Box<str>,
    /// Time between probes.
    #[serde(serialize_with = "crate::duration::ser")]
    pub interval: Duration,
    /// Time limit of a probe.
    #[serde(serialize_with = "crate::duration::ser")]
    pub timeout: Duration,
    /// Failures in a row that mark an endpoint unhealthy.
    pub unhealthy_threshold: u32,
    /// Successes in a row that mark it healthy again.
    pub healthy_threshold: u32,
}

/// Response encodings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Brotli.
    Br,
    /// Zstandard.
    Zstd,
    /// gzip.
    Gzip,
}

impl Encoding {
    /// The `Content-Encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Br => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }
}

/// Response compression of a route.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompressionPolicy {
    /// Encodings offered, most preferred first.
    pub encodings: Vec<Encoding>,
    /// Responses with a smaller `Content-Length` are not compressed.
    pub min_bytes: u64,
    /// Compressible content types: exact types, `type/*`, and `+json` /
    /// `+xml` suffixes (written `*+json`).
    pub content_types: Vec<Box<str>>,
}

impl CompressionPolicy {
    /// The default list of compressible types.
    pub fn default_content_types() -> Vec<Box<str>> {
        [
            "text/*",
            "application/json",
            "application/javascript",
            "application/xml",
            "image/svg+xml",
            "*+json",
            "*+xml",
        ]
        .into_iter()
        .map(Into::into)
        .collect()
    }

    /// Whether a response of this content type (parameters allowed) may
    /// be compressed.
    pub fn compresses(&self, content_type: &str) -> bool {
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        self.content_types.iter().any(|pattern| {
            if let Some(suffix) = pattern.strip_prefix('*') {
                mime.ends_with(suffix)
            } else if let Some(prefix) = pattern.strip_suffix("/*") {
                mime.split('/').next() == Some(prefix)
            } else {
                **pattern == *mime
            }
        })
    }

    /// The encoding to use for an `Accept-Encoding` value: the client's
    /// highest-quality encoding among ours, ties broken by our order.
    /// `None` when the client accepts none of them.
    pub fn negotiate(&self, accept: &str) -> Option<Encoding> {
        let mut best: Option<(u32, usize, Encoding)> = None;
        for item in accept.split(',') {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            // q in thousandths, so it compares as an integer.
            let q = (q.clamp(0.0, 1.0) * 1000.0) as u32;
            if q == 0 {
                continue;
            }
            for (rank, enc) in self.encodings.iter().enumerate() {
                if token == enc.as_str() || token == "*" {
                    let better = match best {
                        None => true,
                        Some((bq, brank, _)) => q > bq || (q == bq && rank < brank),
                    };
                    if better {
                        best = Some((q, rank, *enc));
                    }
                }
            }
        }
        best.map(|(_, _, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CompressionPolicy {
        CompressionPolicy {
            encodings: vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip],
            min_bytes: 1024,
            content_types: CompressionPolicy::default_content_types(),
        }
    }

    #[test]
    fn negotiation_follows_q_values_then_our_order() {
        let p = policy();
        assert_eq!(p.negotiate("gzip"), Some(Encoding::Gzip));
        assert_eq!(p.negotiate("gzip, br"), Some(Encoding::Br));
        assert_eq!(p.negotiate("gzip;q=1.0, br;q=0.5"), Some(Encoding::Gzip));
        assert_eq!(p.negotiate("br;q=0, gzip;q=0.1"), Some(Encoding::Gzip));
        assert_eq!(p.negotiate("identity"), None);
        assert_eq!(p.negotiate(""), None);
        assert_eq!(p.negotiate("*"), Some(Encoding::Br));
        assert_eq!(p.negotiate("deflate, ZSTD"), Some(Encoding::Zstd));
    }

    #[test]
    fn content_type_patterns() {
        let p = policy();
        for ok in [
            "text/html; charset=utf-8",
            "application/json",
            "application/problem+json",
            "image/svg+xml",
            "TEXT/CSS",
        ] {
            assert!(p.compresses(ok), "{ok}");
        }
        for no in [
            "image/png",
            "application/octet-stream",
            "video/mp4",
            "application/grpc",
        ] {
            assert!(!p.compresses(no), "{no}");
        }
    }
}

/// The traffic settings of a route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Traffic {
    /// Endpoint selection.
    #[serde(skip_serializing_if = "is_round_robin")]
    pub load_balance: LoadBalance,
    /// Cookie-based session affinity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Retries; `None`: no retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Response compression; `None`: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionPolicy>,
    /// Largest request body; `None`: the gateway's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Idle limit of upgraded connections; `None`: the gateway's default.
    #[serde(
        serialize_with = "crate::duration::ser_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub idle_timeout: Option<Duration>,
    /// Most requests one client address may have in flight on the route
    /// at once; `None`: no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_in_flight_per_client: Option<u32>,
}

fn is_round_robin(lb: &LoadBalance) -> bool {
    *lb == LoadBalance::RoundRobin
}

impl Traffic {
    /// Whether every setting is the default.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}
