//! Policies attached to routes: rate limits.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;
use serde::{Serialize, Serializer};

/// What a rate limit counts requests by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RateLimitKey {
    /// The client address (after trusted proxies).
    ClientIp,
    /// A request header's value (requests without it share one budget).
    Header(HeaderName),
    /// A claim of the verified JWT.
    JwtClaim(Box<str>),
    /// One budget per route.
    Route,
}

impl Serialize for RateLimitKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::ClientIp => s.serialize_str("ClientIP"),
            Self::Header(h) => s.collect_str(&format_args!("Header:{h}")),
            Self::JwtClaim(c) => s.collect_str(&format_args!("JwtClaim:{c}")),
            Self::Route => s.serialize_str("Route"),
        }
    }
}

/// Where a limit is counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum RateLimitScope {
    /// In this replica.
    Local,
    /// Across replicas, in Redis.
    Global,
}

/// One limit of a RateLimitPolicy, as enforced: GCRA with an emission
/// interval of `per / requests` and room for `burst` requests beyond the
/// steady rate.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// `namespace/policy/limit`: names the budget (shared by every route
    /// the policy targets) and labels metrics.
    pub id: Arc<str>,
    /// What is counted.
    pub key: RateLimitKey,
    /// Requests per period.
    pub requests: u32,
    /// The period.
    #[serde(serialize_with = "crate::duration::ser")]
    pub per: Duration,
    /// Extra requests allowed at once.
    pub burst: u32,
    /// Where it is counted.
    pub scope: RateLimitScope,
    /// Let requests through when a global limit cannot be checked.
    pub fail_open: bool,
    /// Send `RateLimit-*` headers on allowed responses too.
    pub headers_on_success: bool,
}

impl RateLimit {
    /// Time between requests at the steady rate.
    pub fn emission_interval(&self) -> Duration {
        self.per / self.requests.max(1)
    }

    /// Requests that may arrive at once: the burst plus one.
    pub fn capacity(&self) -> u32 {
        self.burst.saturating_add(1)
    }
}
