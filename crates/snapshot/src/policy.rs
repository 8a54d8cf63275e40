//! Policies attached to routes: rate limits.

use std::net::IpAddr;
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
    /// The name of the API key that authenticated the request.
    ApiKey,
}

impl Serialize for RateLimitKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::ClientIp => s.serialize_str("ClientIP"),
            Self::Header(h) => s.collect_str(&format_args!("Header:{h}")),
            Self::JwtClaim(c) => s.collect_str(&format_args!("JwtClaim:{c}")),
            Self::Route => s.serialize_str("Route"),
            Self::ApiKey => s.serialize_str("ApiKey"),
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

/// An IPv4 or IPv6 network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside the network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?} has a bad prefix length"))?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{}/{}", self.addr, self.prefix))
    }
}

/// Client address lists of a rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccessList {
    /// Allowed networks; empty: all not denied.
    pub allow: Vec<Cidr>,
    /// Refused networks, checked first.
    pub deny: Vec<Cidr>,
}

impl AccessList {
    /// Whether `ip` may call.
    pub fn permits(&self, ip: IpAddr) -> bool {
        !self.deny.iter().any(|c| c.contains(ip))
            && (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip)))
    }
}

/// API keys of a rule, held as SHA-256 digests of the keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeys {
    /// Where the keys came from.
    pub source: Arc<str>,
    /// Header carrying the key.
    #[serde(serialize_with = "ser_header_opt")]
    pub header: Option<HeaderName>,
    /// Query parameter carrying the key.
    pub query_parameter: Option<Box<str>>,
    /// Header naming the authenticated key upstream.
    #[serde(serialize_with = "ser_header_opt")]
    pub forward_name_header: Option<HeaderName>,
    /// Digest of each key, and its name.
    #[serde(skip)]
    pub keys: Vec<([u8; 32], Arc<str>)>,
}

/// Basic-auth users of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicUsers {
    /// Where the users came from.
    pub source: Arc<str>,
    /// Realm of the challenge; `None`: the request's host.
    pub realm: Option<Box<str>>,
    /// Header naming the authenticated user upstream.
    #[serde(serialize_with = "ser_header_opt")]
    pub forward_user_header: Option<HeaderName>,
    /// User name and bcrypt hash.
    #[serde(skip)]
    pub users: Vec<(Box<str>, Box<str>)>,
}

/// JWT validation of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtPolicy {
    /// Where the keys come from.
    pub jwks: JwksSource,
    /// Required issuer.
    pub issuer: Option<Box<str>>,
    /// Accepted audiences.
    pub audiences: Vec<Box<str>>,
    /// Claim and value that must be present.
    pub required_claims: Vec<(Box<str>, Box<str>)>,
    /// Claim and the header it is passed in.
    #[serde(skip)]
    pub forward_claims: Vec<(Box<str>, HeaderName)>,
    /// Allowed clock skew.
    pub leeway_seconds: u32,
}

/// A JWKS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum JwksSource {
    /// The set itself, from a Secret, parsed by the translator.
    Inline(#[serde(skip)] crate::Jwks),
    /// A URL to fetch it from.
    Uri(#[serde(serialize_with = "ser_display")] http::Uri),
}

/// External authorization of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuth {
    /// The service's URL.
    #[serde(serialize_with = "ser_display")]
    pub url: http::Uri,
    /// Request headers sent along.
    #[serde(serialize_with = "ser_headers")]
    pub request_headers: Vec<HeaderName>,
    /// Answer headers copied upstream.
    #[serde(serialize_with = "ser_headers")]
    pub upstream_headers: Vec<HeaderName>,
    /// Longest wait.
    #[serde(serialize_with = "crate::duration::ser")]
    pub timeout: Duration,
}

fn ser_display<S: Serializer>(v: &http::Uri, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn ser_headers<S: Serializer>(v: &[HeaderName], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(HeaderName::as_str))
}

/// CORS settings of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CorsPolicy {
    /// Exact origins, lowercase.
    pub origins: Vec<Box<str>>,
    /// `scheme://` and suffix of one-label wildcard origins
    /// (`https://*.example.com` → (`https://`, `.example.com`)).
    pub wildcard_origins: Vec<(Box<str>, Box<str>)>,
    /// `*` was listed.
    pub any_origin: bool,
    /// Value of `Access-Control-Allow-Methods`.
    pub allow_methods: Box<str>,
    /// Value of `Access-Control-Allow-Headers` (empty: echo the request's).
    pub allow_headers: Box<str>,
    /// Value of `Access-Control-Expose-Headers`.
    pub expose_headers: Box<str>,
    /// Send `Access-Control-Allow-Credentials: true`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age`.
    pub max_age: Option<u32>,
}

impl CorsPolicy {
    /// Whether `origin` may call.
    pub fn allows(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.any_origin
            || self.origins.iter().any(|o| **o == *origin)
            || self.wildcard_origins.iter().any(|(scheme, suffix)| {
                origin
                    .strip_prefix(&**scheme)
                    .and_then(|rest| rest.strip_suffix(&**suffix))
                    .is_some_and(|label| !label.is_empty() && !label.contains('.'))
            })
    }
}

/// Edge policies of a route besides rate limits.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoutePolicies {
    /// Address lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access: Option<Arc<AccessList>>,
    /// API keys (any method passing suffices).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_keys: Option<Arc<ApiKeys>>,
    /// Basic auth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic: Option<Arc<BasicUsers>>,
    /// JWT validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<Arc<JwtPolicy>>,
    /// External authorization.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<Arc<ExternalAuth>>,
    /// CORS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cors: Option<Arc<CorsPolicy>>,
    /// Response caching.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<Arc<CachePolicy>>,
    /// Request validation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<Arc<RequestValidation>>,
}

/// Request checks of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestValidation {
    /// Largest body.
    pub max_body_bytes: Option<u64>,
    /// Headers that must be present.
    #[serde(serialize_with = "ser_headers")]
    pub required_headers: Vec<HeaderName>,
    /// Allowed media types (lowercase, no parameters).
    pub content_types: Vec<Box<str>>,
    /// The JSON Schema a JSON body must match, compiled.
    pub json_schema: Option<crate::JsonSchema>,
}

/// How the query enters a cache key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum CacheQuery {
    /// All parameters, sorted.
    All,
    /// None.
    Ignore,
    /// Only these.
    Listed(Vec<Box<str>>),
}

/// Response caching of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CachePolicy {
    /// Freshness when the response does not say.
    #[serde(serialize_with = "crate::duration::ser")]
    pub ttl: Duration,
    /// The query's part of the key.
    pub query: CacheQuery,
    /// Request headers in the key.
    #[serde(serialize_with = "ser_headers")]
    pub headers: Vec<HeaderName>,
    /// Largest body stored.
    pub max_entry_bytes: usize,
    /// Most bytes the rule's entries hold together.
    pub max_total_bytes: Option<u64>,
    /// Statuses stored.
    pub statuses: Vec<u16>,
    /// Changes whenever the rule's configuration does, so entries made
    /// under an older configuration are never served.
    pub fingerprint: u64,
}

impl RoutePolicies {
    /// Whether no policy is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether the route requires API keys, basic credentials or a JWT.
    pub fn authenticates(&self) -> bool {
        self.api_keys.is_some() || self.basic.is_some() || self.jwt.is_some()
    }
}

fn ser_header_opt<S: Serializer>(h: &Option<HeaderName>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => s.serialize_str(h.as_str()),
        None => s.serialize_none(),
    }
}
