//! `RateLimitPolicy`: request rate limits attached to routes.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::ResourceStatus;

/// A RateLimitPolicy limits how fast clients may send requests to the
/// routes it targets. Several policies may target one route; every limit
/// of every policy applies.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "RateLimitPolicy",
    plural = "ratelimitpolicies",
    singular = "ratelimitpolicy",
    shortname = "rlp",
    category = "gatehouse",
    namespaced,
    derive = "PartialEq",
    doc = "A RateLimitPolicy limits how fast clients may send requests to ApiRoutes and Ingresses.",
    status = "ResourceStatus",
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status","description":"Whether Gatehouse accepted the policy"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status","description":"Whether the policy is live in the data plane"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitPolicySpec {
    /// Routes this policy applies to, in the policy's namespace. May be
    /// empty when Ingresses name the policy in their
    /// `gatehouse.dev/rate-limit-policy` annotation instead.
    #[serde(default)]
    #[schemars(length(max = 16))]
    pub target_refs: Vec<PolicyTargetRef>,

    /// The limits. A request must pass every limit; the first one it
    /// exceeds rejects it with 429.
    #[schemars(length(min = 1, max = 8))]
    pub limits: Vec<RateLimit>,

    /// What to do when a `Global` limit cannot be checked because Redis is
    /// unreachable or slow: `Open` (default) lets the request through,
    /// `Closed` rejects it with 503. Either way a metric counts it and a
    /// log line says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<FailureMode>,
    /// Also send `RateLimit-Limit`, `RateLimit-Remaining` and
    /// `RateLimit-Reset` on allowed responses (429 responses always carry
    /// them). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_headers: Option<bool>,
}

/// A route a policy attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.kind == 'ApiRoute' || !has(self.rule)").message("rule can only be set when kind is ApiRoute"))]
#[serde(rename_all = "camelCase")]
pub struct PolicyTargetRef {
    /// `ApiRoute` or `Ingress`.
    pub kind: TargetKind,
    /// Name of the ApiRoute or Ingress, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Name of one rule of the ApiRoute. When absent the policy applies to
    /// every rule of the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub rule: Option<String>,
}

/// Kinds of object a policy can target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TargetKind {
    /// A `gatehouse.dev` ApiRoute.
    ApiRoute,
    /// A `networking.k8s.io` Ingress.
    Ingress,
}

/// One limit: a rate per key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Name of the limit, used in metrics and logs.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// What requests are counted by: each distinct key has its own budget.
    pub key: RateLimitKey,
    /// The steady rate.
    pub rate: Rate,
    /// Requests allowed above the steady rate at once, with no delay (the
    /// nginx `limit_req burst=N nodelay` meaning: a burst of `burst + 1`
    /// requests passes, then requests pass at the steady rate). Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub burst: Option<i32>,
    /// `Local` (default) counts in each gateway replica separately;
    /// `Global` shares one budget across replicas through Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<RateLimitScope>,
}

/// What a limit counts requests by.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(self.type == 'Header' || self.type == 'JwtClaim') == has(self.name)").message("name is required for Header and JwtClaim keys and not allowed otherwise"))]
#[serde(rename_all = "camelCase")]
pub struct RateLimitKey {
    /// `ClientIP`: the client address (after trusted proxies). `Header`:
    /// the value of the header `name` (requests without it share one
    /// budget). `JwtClaim`: the claim `name` of the verified JWT. `Route`:
    /// one budget shared by every request to the route. `ApiKey`: the name of
    /// the API key that authenticated the request.
    #[serde(rename = "type")]
    pub type_: RateLimitKeyType,
    /// Header or claim name, for `Header` and `JwtClaim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub name: Option<String>,
}

/// Kinds of rate-limit key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RateLimitKeyType {
    /// The client IP address.
    #[serde(rename = "ClientIP")]
    ClientIp,
    /// A request header.
    Header,
    /// A claim of the verified JWT.
    JwtClaim,
    /// The route itself.
    Route,
    /// The name of the API key that authenticated the request (requests
    /// without one share one budget).
    ApiKey,
}

/// A steady request rate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rate {
    /// Requests allowed per period, at least 1.
    #[schemars(range(min = 1, max = 1_000_000_000))]
    pub requests: i32,
    /// The period, such as `1s` or `1m`.
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub per: String,
}

/// Where a limit is counted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum RateLimitScope {
    /// Each replica counts alone.
    Local,
    /// Replicas share the count through Redis.
    Global,
}

/// Behaviour when a global limit cannot be checked.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FailureMode {
    /// Let requests through.
    Open,
    /// Reject requests with 503.
    Closed,
}
