//! Edge policies of an ApiRoute rule: who may call it (addresses, API
//! keys, basic auth) and which browsers may (CORS).

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use crate::tls::SecretRef;

/// Client address lists, checked against the client address after
/// trusted proxies. A request from a denied address, or (when `allow` is
/// set) from none of the allowed ones, gets 403.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessControl {
    /// CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or single addresses allowed;
    /// empty: every address not denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub allow: Vec<String>,
    /// CIDRs or addresses refused; checked before `allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub deny: Vec<String>,
}

/// Who must the caller be. When several methods are listed, a request
/// passes with any one of them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// API keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeyAuth>,
    /// HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    /// JSON Web Tokens (`Authorization: Bearer …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuth>,
    /// An authorization service asked about every request (after API key
    /// or basic auth, when those are set too: both must pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalAuth>,
}

/// External authorization: the gateway sends the request's method, URI
/// and chosen headers (no body) to `url`. A 2xx answer lets the request
/// through, copying `upstreamHeaders` from the answer into it; any other
/// answer is returned to the client as it is (status, headers, body up to
/// 64 KiB). An unreachable or slow service answers 503.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAuth {
    /// `http://host:port/path` of the service (for example
    /// `http://auth.security.svc:8080/check`). The original path and query
    /// go in `X-Forwarded-Uri`, the method in `X-Forwarded-Method`, the
    /// host in `X-Forwarded-Host`.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://"))]
    pub url: String,
    /// Request headers sent to the service. Default `Authorization`,
    /// `Cookie`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_headers: Vec<String>,
    /// Headers of a 2xx answer copied into the upstream request
    /// (replacing any the client sent).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstream_headers: Vec<String>,
    /// Longest wait for the answer; default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub timeout: Option<String>,
}

/// API keys from a Secret: each entry's key is the key's name (a client
/// or application) and its value the API key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyAuth {
    /// The Secret with the keys, in the route's namespace, labelled
    /// `gatehouse.dev/secret`.
    pub secret_ref: SecretRef,
    /// Header carrying the key. Default `X-API-Key` when `queryParameter`
    /// is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub header: Option<String>,
    /// Query parameter carrying the key (removed before the request goes
    /// upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub query_parameter: Option<String>,
    /// Header that tells the backend which key's name authenticated the
    /// request. The key itself is never passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub forward_name_header: Option<String>,
}

/// Basic authentication against an htpasswd file in a Secret (key
/// `auth`, as ingress-nginx uses), bcrypt hashes (`htpasswd -B`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The Secret, in the route's namespace, labelled
    /// `gatehouse.dev/secret`.
    pub secret_ref: SecretRef,
    /// Realm in the `WWW-Authenticate` challenge. Default: the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub realm: Option<String>,
    /// Header that tells the backend the authenticated user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub forward_user_header: Option<String>,
}

/// Cross-origin resource sharing, answered by the gateway.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cors {
    /// Origins allowed: exact (`https://app.example.com`), a one-label
    /// wildcard (`https://*.example.com`) or `*` (any, without
    /// credentials).
    #[schemars(length(min = 1, max = 64))]
    pub allow_origins: Vec<String>,
    /// Methods allowed in preflight. Default `GET, HEAD, POST`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// Request headers allowed in preflight.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to the page.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// Allow cookies and credentials (not with `*`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_credentials: bool,
    /// How long browsers may cache a preflight answer, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 86400))]
    pub max_age_seconds: Option<u32>,
}

/// Response caching for a rule. Only GET and HEAD requests are cached;
/// `Cache-Control` (`no-store`, `private`, `max-age`, `s-maxage`) and
/// `Vary` of the response are honoured, responses setting cookies are not
/// stored, and concurrent misses for one key make one upstream request.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cache {
    /// How long a response is fresh when it does not say (`max-age`,
    /// `s-maxage`), such as `60s`.
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub ttl: String,
    /// What tells entries apart besides method, host and path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<CacheKey>,
    /// Largest body stored, in bytes (default 1 MiB); larger responses are
    /// passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub max_entry_bytes: Option<u32>,
    /// Most bytes this rule's entries may hold together; responses beyond
    /// it are passed through unstored. Default: only the gateway's overall
    /// cache size (`--cache-max-bytes`) applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_total_bytes: Option<u64>,
    /// Statuses stored (default 200, 203, 204, 301, 404, 410).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub statuses: Vec<u16>,
}

/// The parts of a request that make up a cache key.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CacheKey {
    /// `All` (default): the whole query string, parameters sorted;
    /// `None`: ignore it; `Listed`: only `queryParameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<CacheQuery>,
    /// Query parameters in the key when `query` is `Listed`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query_parameters: Vec<String>,
    /// Request headers whose values are part of the key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
}

/// How the query string enters the key.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheQuery {
    /// Every parameter.
    All,
    /// None.
    None,
    /// Only the listed parameters.
    Listed,
}

/// JWT validation. Signatures: RS256, ES256, EdDSA (Ed25519) and HS256,
/// with keys from a JWKS (`oct` keys for HS256). `exp` is required and,
/// like `nbf`, checked with `leewaySeconds`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.jwksSecretRef) != has(self.jwksUri)").message("give exactly one of jwksSecretRef and jwksUri"))]
#[serde(rename_all = "camelCase")]
pub struct JwtAuth {
    /// A Secret (labelled `gatehouse.dev/secret`) holding the JWKS under
    /// the key `jwks.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_secret_ref: Option<SecretRef>,
    /// URL of the JWKS (`https://issuer/.well-known/jwks.json`), fetched
    /// on first use, refreshed every 5 minutes and when a token names an
    /// unknown key (at most every 5 s); the last good set is kept when a
    /// refresh fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://"))]
    pub jwks_uri: Option<String>,
    /// Required `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Accepted `aud` values (any one); empty: `aud` is not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// Claims that must hold a value: equal to it, an array containing
    /// it, or a space-separated string containing it (as `scope`). A valid
    /// token without them gets 403.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub required_claims: std::collections::BTreeMap<String, String>,
    /// Claims passed to the backend: claim name → header name (replacing
    /// any value the client sent).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub forward_claims: std::collections::BTreeMap<String, String>,
    /// Clock skew allowed for `exp` and `nbf`, in seconds (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 600))]
    pub leeway_seconds: Option<u32>,
}

/// Checks on the request before it goes upstream.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// Largest request body (413 beyond). Default for `jsonSchema`:
    /// 1 MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_073_741_824))]
    pub max_body_bytes: Option<u64>,
    /// Headers every request must carry (400 otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_headers: Vec<String>,
    /// Media types allowed for requests with a body (415 otherwise), such
    /// as `application/json`; parameters (`; charset=…`) are ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content_types: Vec<String>,
    /// A JSON Schema (draft 2020-12 unless `$schema` says otherwise), as
    /// JSON text, that JSON request bodies must satisfy. Failures answer
    /// 400 with `application/problem+json` listing every violation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 262_144))]
    pub json_schema: Option<String>,
}
