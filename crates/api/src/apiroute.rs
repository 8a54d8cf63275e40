//! `ApiRoute`: HTTP routing rules for one or more hostnames.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{HttpHeader, ResourceStatus};
use crate::tls::RouteTls;
use crate::traffic::{
    BackendProtocol, Compression, HealthCheck, LoadBalancer, OutlierDetection, RequestLimits, Retry,
};

/// An ApiRoute sends HTTP requests for a set of hostnames to Kubernetes
/// Services, by path, method, headers and query parameters.
///
/// It is shaped like the Gateway API HTTPRoute: a list of rules, each with
/// matches (OR across matches, AND within one), filters and weighted
/// backends.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "ApiRoute",
    plural = "apiroutes",
    singular = "apiroute",
    shortname = "ar",
    category = "gatehouse",
    namespaced,
    derive = "PartialEq",
    doc = "An ApiRoute routes HTTP requests for a set of hostnames to Kubernetes Services.",
    status = "ResourceStatus",
    printcolumn = r#"{"name":"Hosts","type":"string","jsonPath":".spec.hostnames","description":"Hostnames this route serves"}"#,
    printcolumn = r#"{"name":"Accepted","type":"string","jsonPath":".status.conditions[?(@.type==\"Accepted\")].status","description":"Whether Gatehouse accepted the route"}"#,
    printcolumn = r#"{"name":"Programmed","type":"string","jsonPath":".status.conditions[?(@.type==\"Programmed\")].status","description":"Whether the route is live in the data plane"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("!has(self.rules) || self.rules.all(r, !has(r.name) || self.rules.filter(x, has(x.name) && x.name == r.name).size() == 1)").message("rule names must be unique within an ApiRoute"))]
#[serde(rename_all = "camelCase")]
pub struct ApiRouteSpec {
    /// The IngressClass whose controller should serve this route, with the
    /// same rules as `spec.ingressClassName` of an Ingress: Gatehouse serves
    /// the route when the class names an IngressClass whose
    /// `spec.controller` is Gatehouse's (or, when no IngressClass of that
    /// name exists, the class name Gatehouse was started with). When empty,
    /// the route is served when Gatehouse's IngressClass is the cluster
    /// default (annotation `ingressclass.kubernetes.io/is-default-class:
    /// "true"`) or Gatehouse runs with `--watch-ingress-without-class`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ingress_class_name: Option<String>,

    /// Hostnames this route answers for, matched against the request's
    /// Host header (or HTTP/2 `:authority`) without its port. A name may
    /// start with `*.` to match exactly one extra DNS label:
    /// `*.example.com` matches `a.example.com` but neither `example.com`
    /// nor `a.b.example.com`. An exact hostname beats a wildcard. An empty
    /// list matches every host that no other route names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 16),
        inner(
            length(min = 1, max = 253),
            regex(
                pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
            )
        )
    )]
    pub hostnames: Vec<String>,

    /// Routing rules. A request is handled by the single most specific
    /// matching rule across every route of its host (see the `matches`
    /// field for the order).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub rules: Vec<RouteRule>,

    /// HTTPS for the route's hostnames: certificate, redirect, HSTS and
    /// client certificates. Requires `hostnames`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,
}

/// One routing rule: which requests it takes, what it does to them, and
/// where it sends them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.filters) || !self.filters.exists(f, f.type == 'RequestRedirect' || f.type == 'DirectResponse') || !has(self.backends) || size(self.backends) == 0").message("a rule with a RequestRedirect or DirectResponse filter answers by itself and must not list backends"))]
#[x_kube(validation = Rule::new("!has(self.filters) || self.filters.filter(f, f.type == 'RequestRedirect' || f.type == 'DirectResponse').size() <= 1").message("a rule may have at most one RequestRedirect or DirectResponse filter"))]
#[serde(rename_all = "camelCase")]
pub struct RouteRule {
    /// Name of the rule, unique within the ApiRoute. Policies
    /// (RateLimitPolicy `targetRefs[].rule`) and metrics refer to a rule by
    /// this name; unnamed rules are known by their index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: Option<String>,

    /// TLS to this rule's `HTTPS` and `GRPCS` backends: trusted CAs,
    /// server name and client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_tls: Option<crate::tls::BackendTls>,

    /// Conditions a request must meet to use this rule. A request matches
    /// the rule when it meets ANY of the listed matches; within one match,
    /// every condition must hold. An empty list matches every request
    /// (as a `PathPrefix` of `/`).
    ///
    /// When several matches of a host's routes (ApiRoutes and Ingresses
    /// alike) fit a request, the most specific wins: an `Exact` path, then
    /// a `RegularExpression` path (the longer pattern first), then the
    /// longest `PathPrefix`; on a tie, a match that names a method, then
    /// the one with the most header matches, then the most query parameter
    /// matches, then the most body matches, then the oldest object, then
    /// namespace/name order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub matches: Vec<RouteMatch>,

    /// Filters applied to requests that use this rule, in order. Supported
    /// types: `RequestHeaderModifier`, `ResponseHeaderModifier`,
    /// `URLRewrite`, `RequestRedirect`, `DirectResponse` and
    /// `RequestMirror`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub filters: Vec<RouteFilter>,

    /// Services that receive the requests, each picked in proportion to
    /// its weight. Required unless a `RequestRedirect` or `DirectResponse`
    /// filter answers the request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub backends: Vec<BackendRef>,

    /// Time limits for requests using this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RouteTimeouts>,

    /// How requests are spread over the endpoints of each backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,

    /// Retries of failed requests. Without it, requests are not retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,

    /// Passive health checking of the backends' endpoints. On by default
    /// (5 consecutive gateway errors eject an endpoint for 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,

    /// Active health checking of the backends' endpoints. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,

    /// Response compression. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,

    /// Limits on requests using this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<RequestLimits>,

    /// Client addresses allowed and denied (403).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<crate::policy::AccessControl>,

    /// Credentials required (401 with `WWW-Authenticate` when missing or
    /// wrong).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<crate::policy::Authentication>,

    /// CORS: preflight requests are answered by the gateway, and allowed
    /// origins get the CORS response headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<crate::policy::Cors>,

    /// Response caching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::policy::Cache>,

    /// Request checks: body size, required headers, content types and a
    /// JSON Schema for JSON bodies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<crate::policy::Validation>,
}

/// A set of conditions on a request. All conditions present must hold.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// Condition on the request path. When absent, any path matches (as a
    /// `PathPrefix` of `/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathMatch>,

    /// The request method must be this one (for example `GET`). When
    /// absent, any method matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,

    /// Conditions on request headers; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub headers: Vec<HeaderMatch>,

    /// Conditions on query parameters; all must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub query_params: Vec<QueryParamMatch>,

    /// Conditions on the JSON request body; all must hold. A request whose
    /// body is not JSON (`application/json` or `*+json`) does not match.
    /// To evaluate them the gateway reads up to the body-matching limit
    /// (64 KiB by default); a larger body is answered with 413. The body
    /// is forwarded upstream byte for byte. Routes without body conditions
    /// never wait for the body.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub body: Vec<BodyMatch>,
}

/// A condition on one value inside a JSON request body.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.type == 'Present' || has(self.value)").message("value is required unless type is Present"))]
#[serde(rename_all = "camelCase")]
pub struct BodyMatch {
    /// RFC 6901 JSON Pointer to the value, such as `/tenant` or
    /// `/order/items/0/sku`.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^(/([^~/]|~[01])*)+$"))]
    pub json_pointer: String,

    /// `Exact`: the value equals `value` (a string is compared as it is;
    /// a number, boolean or null as its JSON text, such as `42` or
    /// `true`). `RegularExpression`: the value matches the regular
    /// expression `value` as a whole. `Present`: the pointer finds a
    /// value. Default `Exact`.
    #[serde(default = "StringMatchType::default_value", rename = "type")]
    pub type_: StringMatchType,

    /// Value or pattern to compare with. Required unless `type` is
    /// `Present`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
}

/// How the request path is compared.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.type == 'RegularExpression' || self.value.startsWith('/')").message("an Exact or PathPrefix path must start with '/'"))]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    /// `Exact`: the path equals `value`. `PathPrefix`: the path starts with
    /// `value` on a `/` boundary (`/foo` matches `/foo`, `/foo/` and
    /// `/foo/bar`, not `/foobar`; a trailing slash in `value` is ignored).
    /// `RegularExpression`: `value` is a regular expression (Rust `regex`
    /// syntax) that must match the whole path. Default `PathPrefix`.
    #[serde(default = "PathMatchType::default_value", rename = "type")]
    pub type_: PathMatchType,

    /// The path or pattern to compare with. Paths are compared after
    /// normalization (`.` and `..` resolved, `//` merged).
    #[serde(default = "default_path")]
    #[schemars(length(min = 1, max = 1024))]
    pub value: String,
}

fn default_path() -> String {
    "/".to_owned()
}

impl Default for PathMatch {
    fn default() -> Self {
        Self {
            type_: PathMatchType::PathPrefix,
            value: default_path(),
        }
    }
}

/// The kind of comparison a path match makes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PathMatchType {
    /// The whole path equals the value.
    Exact,
    /// The path starts with the value, element by element.
    #[default]
    PathPrefix,
    /// The whole path matches the regular expression.
    RegularExpression,
}

impl PathMatchType {
    fn default_value() -> Self {
        Self::PathPrefix
    }
}

/// An HTTP method.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(clippy::upper_case_acronyms)]
pub enum HttpMethod {
    /// `GET`
    GET,
    /// `HEAD`
    HEAD,
    /// `POST`
    POST,
    /// `PUT`
    PUT,
    /// `DELETE`
    DELETE,
    /// `CONNECT`
    CONNECT,
    /// `OPTIONS`
    OPTIONS,
    /// `TRACE`
    TRACE,
    /// `PATCH`
    PATCH,
}

impl HttpMethod {
    /// The method as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GET => "GET",
            Self::HEAD => "HEAD",
            Self::POST => "POST",
            Self::PUT => "PUT",
            Self::DELETE => "DELETE",
            Self::CONNECT => "CONNECT",
            Self::OPTIONS => "OPTIONS",
            Self::TRACE => "TRACE",
            Self::PATCH => "PATCH",
        }
    }
}

/// A condition on one request header.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.type == 'Present' || has(self.value)").message("value is required unless type is Present"))]
#[serde(rename_all = "camelCase")]
pub struct HeaderMatch {
    /// `Exact`: the header value equals `value`. `RegularExpression`: the
    /// value matches the regular expression `value` as a whole.
    /// `Present`: the header exists, whatever its value. Default `Exact`.
    #[serde(default = "StringMatchType::default_value", rename = "type")]
    pub type_: StringMatchType,

    /// Header name, case-insensitive.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$")
    )]
    pub name: String,

    /// Value or pattern to compare with. Required unless `type` is
    /// `Present`. When the request repeats the header, the first value is
    /// compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
}

/// A condition on one query parameter.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.type == 'Present' || has(self.value)").message("value is required unless type is Present"))]
#[serde(rename_all = "camelCase")]
pub struct QueryParamMatch {
    /// `Exact`: the parameter equals `value`. `RegularExpression`: the
    /// parameter matches the regular expression `value` as a whole.
    /// `Present`: the parameter exists, whatever its value. Default `Exact`.
    #[serde(default = "StringMatchType::default_value", rename = "type")]
    pub type_: StringMatchType,

    /// Parameter name, case-sensitive, compared after percent-decoding.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,

    /// Value or pattern to compare with, after percent-decoding. Required
    /// unless `type` is `Present`. When the parameter repeats, the first
    /// value is compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub value: Option<String>,
}

/// The kind of comparison a header or query parameter match makes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum StringMatchType {
    /// The value equals the given string.
    #[default]
    Exact,
    /// The value matches the regular expression as a whole.
    RegularExpression,
    /// The header or parameter is present, whatever its value.
    Present,
}

impl StringMatchType {
    // A named default makes schemars write it into the CRD, so the API
    // server fills it in before CEL rules read `self.type`.
    fn default_value() -> Self {
        Self::Exact
    }
}

/// A change made to a request or response that uses a rule. Set `type` and
/// the one field of the same name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(self.type == 'RequestHeaderModifier') == has(self.requestHeaderModifier)").message("requestHeaderModifier must be set exactly when type is RequestHeaderModifier"))]
#[x_kube(validation = Rule::new("(self.type == 'ResponseHeaderModifier') == has(self.responseHeaderModifier)").message("responseHeaderModifier must be set exactly when type is ResponseHeaderModifier"))]
#[x_kube(validation = Rule::new("(self.type == 'URLRewrite') == has(self.urlRewrite)").message("urlRewrite must be set exactly when type is URLRewrite"))]
#[x_kube(validation = Rule::new("(self.type == 'RequestRedirect') == has(self.requestRedirect)").message("requestRedirect must be set exactly when type is RequestRedirect"))]
#[x_kube(validation = Rule::new("(self.type == 'DirectResponse') == has(self.directResponse)").message("directResponse must be set exactly when type is DirectResponse"))]
#[x_kube(validation = Rule::new("(self.type == 'RequestMirror') == has(self.requestMirror)").message("requestMirror must be set exactly when type is RequestMirror"))]
#[serde(rename_all = "camelCase")]
pub struct RouteFilter {
    /// Which filter this is; the field of the same name (in lower camel
    /// case) holds its settings.
    #[serde(rename = "type")]
    pub type_: FilterType,

    /// Sets, adds or removes request headers before the request goes
    /// upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_header_modifier: Option<HeaderModifier>,

    /// Sets, adds or removes response headers before the response goes to
    /// the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_modifier: Option<HeaderModifier>,

    /// Rewrites the Host header and/or the path before the request goes
    /// upstream.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        rename = "urlRewrite"
    )]
    pub url_rewrite: Option<UrlRewrite>,

    /// Answers with a redirect instead of forwarding the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_redirect: Option<RequestRedirect>,

    /// Answers with a fixed response instead of forwarding the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<DirectResponse>,

    /// Sends a copy of each request to another Service; its response is
    /// ignored and it never slows the main request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_mirror: Option<RequestMirror>,
}

/// The kinds of filter.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum FilterType {
    /// Change request headers.
    RequestHeaderModifier,
    /// Change response headers.
    ResponseHeaderModifier,
    /// Rewrite host and path.
    #[serde(rename = "URLRewrite")]
    UrlRewrite,
    /// Answer with a redirect.
    RequestRedirect,
    /// Answer with a fixed response.
    DirectResponse,
    /// Copy requests to another Service.
    RequestMirror,
}

/// Header changes, applied in the order remove, set, add.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderModifier {
    /// Headers to set, replacing any existing value.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub set: Vec<HttpHeader>,
    /// Headers to add, keeping existing values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub add: Vec<HttpHeader>,
    /// Names of headers to remove.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub remove: Vec<String>,
}

/// Host and path rewriting.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UrlRewrite {
    /// Replaces the Host header sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    /// Replaces the path sent upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
}

/// A path replacement.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("(self.type == 'ReplaceFullPath') == has(self.replaceFullPath)").message("replaceFullPath must be set exactly when type is ReplaceFullPath"))]
#[x_kube(validation = Rule::new("(self.type == 'ReplacePrefixMatch') == has(self.replacePrefixMatch)").message("replacePrefixMatch must be set exactly when type is ReplacePrefixMatch"))]
#[x_kube(validation = Rule::new("(self.type == 'ReplaceRegexMatch') == (has(self.regex) && has(self.replacement))").message("regex and replacement must be set exactly when type is ReplaceRegexMatch"))]
#[serde(rename_all = "camelCase")]
pub struct PathModifier {
    /// `ReplaceFullPath` replaces the whole path. `ReplacePrefixMatch`
    /// replaces the part matched by the rule's `PathPrefix` match and keeps
    /// the rest: prefix `/v1` replaced by `/` maps `/v1/users` to `/users`.
    /// `ReplaceRegexMatch` replaces the whole path with `replacement` when
    /// `regex` is found in it (nginx's `rewrite`): `regex`
    /// `^/api(/|$)(.*)` and replacement `/$2` map `/api/users` to
    /// `/users`.
    #[serde(rename = "type")]
    pub type_: PathModifierType,
    /// The new path, for `ReplaceFullPath`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub replace_full_path: Option<String>,
    /// The new prefix, for `ReplacePrefixMatch`. Only valid on rules whose
    /// matches use `PathPrefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub replace_prefix_match: Option<String>,
    /// For `ReplaceRegexMatch`: a regular expression (RE2 syntax, `(?i)`
    /// for case-insensitive) searched for in the request path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub regex: Option<String>,
    /// For `ReplaceRegexMatch`: the new path; `$1` to `$9` are the
    /// regex's capture groups, `$$` is a `$`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    pub replacement: Option<String>,
}

/// The kinds of path replacement.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PathModifierType {
    /// Replace the whole path.
    ReplaceFullPath,
    /// Replace the matched prefix.
    ReplacePrefixMatch,
    /// Replace the path through a regular expression.
    ReplaceRegexMatch,
}

/// A redirect response. Parts left empty keep the request's own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[x_kube(validation = Rule::new("!has(self.statusCode) || self.statusCode in [301, 302, 303, 307, 308]").message("statusCode must be one of 301, 302, 303, 307, 308"))]
#[serde(rename_all = "camelCase")]
pub struct RequestRedirect {
    /// Scheme of the new location: `http` or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<RedirectScheme>,
    /// Hostname of the new location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub hostname: Option<String>,
    /// Port of the new location. When absent, the default port of the
    /// scheme is used (and left out of the Location header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Path of the new location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathModifier>,
    /// Leave the request's query string out of the new location (nginx's
    /// `return` does); default false: the query is kept.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drop_query: bool,
    /// Status code: 301, 302 (default), 303, 307 or 308.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<i32>,
}

/// The scheme of a redirect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedirectScheme {
    /// `http`
    Http,
    /// `https`
    Https,
}

/// A fixed response from the gateway itself.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectResponse {
    /// Status code, 200 to 599.
    #[schemars(range(min = 200, max = 599))]
    pub status_code: i32,
    /// Response body, at most 64 KiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub body: Option<String>,
    /// Content-Type of the body. Default `text/plain; charset=utf-8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub content_type: Option<String>,
}

/// A copy of each request sent to another Service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestMirror {
    /// The Service receiving the copies.
    pub backend: ServiceRef,
    /// Share of requests to copy, 0 to 100. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub percent: Option<i32>,
}

/// A Service port in the route's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    /// Name of the Service, in the route's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Service port number (`spec.ports[].port` of the Service, not the
    /// target port).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

/// A weighted Service backend.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    /// Name of the Service, in the route's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Service port number (`spec.ports[].port` of the Service, not the
    /// target port).
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Relative share of requests, 0 to 1,000,000. Default 1. A weight of
    /// 0 sends this backend no traffic. A backend that cannot be resolved
    /// (missing Service or port) keeps its share and answers it with 500.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1_000_000))]
    pub weight: Option<i32>,
    /// How Gatehouse talks to this backend. Default: from the Service
    /// port's `appProtocol` (`kubernetes.io/h2c` and `grpc` mean H2C/GRPC,
    /// `https` means HTTPS), else `HTTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<BackendProtocol>,
}

/// Time limits for one rule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteTimeouts {
    /// Longest time from receiving the request to sending the complete
    /// response headers, across all attempts. Exceeding it answers 504.
    /// Format `1m30s`, `250ms`; default 60s; `0s` means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub request: Option<String>,
    /// Longest time an upgraded connection (WebSocket) may stay silent in
    /// both directions before the gateway closes it. Default 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub idle: Option<String>,
    /// Longest time one upstream attempt may take to return its response
    /// headers. Must not exceed `request`. Default: same as `request`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]{1,5}(h|m|s|ms)){1,4}$"))]
    pub backend_request: Option<String>,
}
