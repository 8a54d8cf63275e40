//! Edge policies at request time: address lists, authentication (API
//! keys, basic) and CORS. Credentials are compared by digest in constant
//! time, stripped before the request goes upstream, and never logged.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use snapshot::{ApiKeys, BasicUsers, CorsPolicy, Jwks, JwksSource, RoutePolicies};

use crate::proxy_body::ProxyBody;
use crate::respond::ProxyError;

/// Successful basic-auth checks, so bcrypt (tens of milliseconds by
/// design) runs once per credential, not once per request.
#[derive(Debug, Default)]
pub(crate) struct BasicCache {
    verified: Mutex<HashMap<[u8; 32], ()>>,
}

const BASIC_CACHE_ENTRIES: usize = 10_000;

fn digest(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(&(p.len() as u64).to_be_bytes());
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Who passed authentication, to tell the backend.
pub(crate) struct Identity {
    pub(crate) header: Option<HeaderName>,
    pub(crate) value: HeaderValue,
    /// The API key's name, when an API key passed.
    pub(crate) key_name: Option<Arc<str>>,
}

/// Whether the client address may call the route (403 otherwise).
pub(crate) fn check_access(policies: &RoutePolicies, client: IpAddr) -> Result<(), ProxyError> {
    match &policies.access {
        Some(list) if !list.permits(client) => Err(ProxyError::Forbidden),
        _ => Ok(()),
    }
}

fn query_value<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn check_api_key(keys: &ApiKeys, headers: &HeaderMap, query: Option<&str>) -> Option<Identity> {
    let presented = keys
        .header
        .as_ref()
        .and_then(|h| headers.get(h))
        .map(HeaderValue::as_bytes)
        .or_else(|| {
            keys.query_parameter
                .as_deref()
                .and_then(|q| query_value(query, q))
                .map(str::as_bytes)
        })?;
    let presented = snapshot::percent_decode(std::str::from_utf8(presented).ok()?);
    let d = {
        let raw = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(raw.as_ref());
        out
    };
    // Every stored digest is compared, in constant time.
    let mut found = None;
    for (stored, name) in &keys.keys {
        if ct_eq(stored, &d) {
            found = Some(name.clone());
        }
    }
    let name = found?;
    Some(Identity {
        header: keys.forward_name_header.clone(),
        value: HeaderValue::from_str(&name).ok()?,
        key_name: Some(name),
    })
}

async fn check_basic(
    users: &BasicUsers,
    headers: &HeaderMap,
    cache: &Arc<BasicCache>,
) -> Option<Identity> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    let (_, hash) = users.users.iter().find(|(u, _)| **u == *user)?;
    let key = digest(&[user.as_bytes(), password.as_bytes(), hash.as_bytes()]);
    let cached = cache
        .verified
        .lock()
        .map(|m| m.contains_key(&key))
        .unwrap_or(false);
    if !cached {
        let (password, hash) = (password.to_owned(), hash.to_string());
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false);
        if !ok {
            return None;
        }
        if let Ok(mut m) = cache.verified.lock() {
            if m.len() >= BASIC_CACHE_ENTRIES {
                m.clear();
            }
            m.insert(key, ());
        }
    }
    Some(Identity {
        header: users.forward_user_header.clone(),
        value: HeaderValue::from_str(user).ok()?,
        key_name: None,
    })
}

/// What passing authentication changes in the upstream request: the
/// credentials are removed and the identity, if asked for, is added.
#[derive(Default)]
pub(crate) struct Passed {
    strip: Vec<HeaderName>,
    add: Option<(HeaderName, HeaderValue)>,
    /// The query without the API key parameter.
    pub(crate) query: Option<String>,
    /// Verified JWT claims.
    pub(crate) claims: Option<serde_json::Value>,
    /// Name of the API key that authenticated the request.
    pub(crate) key_name: Option<Arc<str>>,
    /// Claims passed on as headers.
    forward: Vec<(HeaderName, HeaderValue)>,
}

impl Passed {
    pub(crate) fn apply(self, headers: &mut HeaderMap) {
        for h in self.strip {
            headers.remove(h);
        }
        if let Some((name, value)) = self.add {
            headers.insert(name, value);
        }
        for (name, value) in self.forward {
            headers.insert(name, value);
        }
    }
}

/// Checks the route's credentials.
pub(crate) async fn authenticate(
    policies: &RoutePolicies,
    headers: &HeaderMap,
    query: Option<&str>,
    host: &str,
    cache: &Arc<BasicCache>,
    jwks: &JwksCache,
) -> Result<Passed, ProxyError> {
    let mut passed = Passed::default();
    if !policies.authenticates() {
        return Ok(passed);
    }
    let mut identity = None;
    if let Some(keys) = &policies.api_keys {
        identity = check_api_key(keys, headers, query);
    }
    if identity.is_none()
        && let Some(users) = &policies.basic
    {
        identity = check_basic(users, headers, cache).await;
    }
    let mut jwt_ok = false;
    if identity.is_none()
        && let Some(jwt) = &policies.jwt
        && let Some((claims, forward)) = check_jwt(jwt, headers, jwks, host).await?
    {
        passed.strip.push(header::AUTHORIZATION);
        passed.forward.extend(forward);
        passed.claims = Some(claims);
        jwt_ok = true;
    }
    if jwt_ok {
        return Ok(passed);
    }
    let Some(identity) = identity else {
        let challenge = match &policies.basic {
            Some(b) => format!(
                "Basic realm=\"{}\", charset=\"UTF-8\"",
                b.realm.as_deref().unwrap_or(host).replace('"', "")
            ),
            None if policies.jwt.is_some() => format!("Bearer realm=\"{}\"", host.replace('"', "")),
            None => format!("ApiKey realm=\"{}\"", host.replace('"', "")),
        };
        return Err(ProxyError::Unauthorized(
            HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Basic")),
        ));
    };
    // Credentials stop here.
    if policies.basic.is_some() {
        passed.strip.push(header::AUTHORIZATION);
    }
    if let Some(keys) = &policies.api_keys {
        if let Some(h) = &keys.header {
            passed.strip.push(h.clone());
        }
        if let (Some(q), Some(query)) = (keys.query_parameter.as_deref(), query) {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| p.split_once('=').map_or(*p, |(k, _)| k) != q)
                .collect();
            passed.query = Some(kept.join("&"));
        }
    }
    passed.key_name = identity.key_name;
    if let Some(name) = identity.header {
        passed.add = Some((name, identity.value));
    }
    Ok(passed)
}

/// The answer to a CORS preflight, when the request is one.
pub(crate) fn preflight(
    cors: &CorsPolicy,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response<ProxyBody>> {
    if method != Method::OPTIONS || !headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD) {
        return None;
    }
    let origin = headers.get(header::ORIGIN)?;
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if !origin.to_str().is_ok_and(|o| cors.allows(o)) {
        // No CORS headers: the browser refuses the call.
        return Some(resp);
    }
    allow_origin(cors, origin, h);
    if let Ok(v) = HeaderValue::from_str(&cors.allow_methods) {
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    let allow_headers = if cors.allow_headers.is_empty() {
        headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned()
    } else {
        HeaderValue::from_str(&cors.allow_headers).ok()
    };
    if let Some(v) = allow_headers {
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
    }
    if let Some(age) = cors.max_age {
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
    }
    Some(resp)
}

fn allow_origin(cors: &CorsPolicy, origin: &HeaderValue, h: &mut HeaderMap) {
    if cors.any_origin && !cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    }
    if cors.allow_credentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// CORS headers for an actual (non-preflight) response.
pub(crate) fn response_headers(cors: &CorsPolicy, origin: &HeaderValue, h: &mut HeaderMap) {
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    if !origin.to_str().is_ok_and(|o| cors.allows(o)) {
        return;
    }
    allow_origin(cors, origin, h);
    if !cors.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cors.expose_headers)
    {
        h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

/// The client of external authorization services.
pub(crate) type AuthClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<Bytes>,
>;

pub(crate) fn auth_client() -> AuthClient {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(2)));
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build(connector)
}

/// Most bytes of a denying answer passed back to the client.
const AUTH_BODY_LIMIT: usize = 64 * 1024;

/// Asks the external authorization service. `Ok` carries the headers to
/// add upstream.
pub(crate) async fn external(
    ext: &snapshot::ExternalAuth,
    client: &AuthClient,
    method: &Method,
    headers: &HeaderMap,
    host: &str,
    uri: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ProxyError> {
    use http_body_util::BodyExt;
    let mut req = http::Request::get(ext.url.clone())
        .body(http_body_util::Full::new(Bytes::new()))
        .map_err(|_| ProxyError::AuthUnavailable)?;
    let h = req.headers_mut();
    for name in &ext.request_headers {
        for v in headers.get_all(name) {
            h.append(name.clone(), v.clone());
        }
    }
    h.insert(
        "x-forwarded-method",
        HeaderValue::from_str(method.as_str()).map_err(|_| ProxyError::AuthUnavailable)?,
    );
    if let Ok(v) = HeaderValue::from_str(uri) {
        h.insert("x-forwarded-uri", v);
    }
    if let Ok(v) = HeaderValue::from_str(host) {
        h.insert("x-forwarded-host", v);
    }
    let answer = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let (parts, body) = resp.into_parts();
        if parts.status.is_success() {
            return Ok((parts, Bytes::new()));
        }
        let limited = http_body_util::Limited::new(body, AUTH_BODY_LIMIT);
        let body = limited
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((parts, body))
    };
    let (parts, body) = match tokio::time::timeout(ext.timeout, answer).await {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            tracing::warn!(url = %ext.url, error = %e, "external authorization failed");
            return Err(ProxyError::AuthUnavailable);
        }
        Err(_) => {
            tracing::warn!(url = %ext.url, timeout = ?ext.timeout, "external authorization timed out");
            return Err(ProxyError::AuthUnavailable);
        }
    };
    if parts.status.is_success() {
        return Ok(ext
            .upstream_headers
            .iter()
            .filter_map(|n| parts.headers.get(n).map(|v| (n.clone(), v.clone())))
            .collect());
    }
    let mut headers = parts.headers;
    crate::headers::strip_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    Err(ProxyError::AuthDenied(Box::new((
        parts.status,
        headers,
        body,
    ))))
}

type HttpsClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<Bytes>,
>;

/// A fetched key set and when it was read.
type ReadKeys = (std::time::Instant, Jwks);

/// Key sets fetched from URLs, with when each was read. (Key sets from
/// Secrets come parsed in the snapshot and never pass through here.)
pub(crate) struct JwksCache {
    sets: Mutex<HashMap<http::Uri, ReadKeys>>,
    client: Option<HttpsClient>,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwksCache")
    }
}

const JWKS_REFRESH: std::time::Duration = std::time::Duration::from_secs(300);
const JWKS_MIN_REFETCH: std::time::Duration = std::time::Duration::from_secs(5);

impl JwksCache {
    pub(crate) fn new() -> Self {
        let client = tls::client_config(None, None, &[]).ok().map(|config| {
            let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(std::time::Duration::from_secs(2)));
            let https = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(https)
        });
        Self {
            sets: Mutex::new(HashMap::new()),
            client,
        }
    }

    async fn fetch(&self, uri: &http::Uri) -> Result<Jwks, String> {
        use http_body_util::BodyExt;
        let client = self
            .client
            .as_ref()
            .ok_or("no TLS configuration for JWKS fetches")?;
        let req = http::Request::get(uri.clone())
            .body(http_body_util::Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let work = async {
            let resp = client.request(req).await.map_err(|e| e.to_string())?;
            if !resp.status().is_success() {
                return Err(format!("status {}", resp.status()));
            }
            let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Jwks::parse(std::str::from_utf8(&body).map_err(|e| e.to_string())?)
        };
        tokio::time::timeout(std::time::Duration::from_secs(5), work)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    /// The keys of `source` (`None`: none could be read); `refresh` asks
    /// for a re-read of a URL (an unknown key id), honoured at most every
    /// `JWKS_MIN_REFETCH`.
    async fn keys(&self, source: &JwksSource, refresh: bool) -> Option<Jwks> {
        let uri = match source {
            JwksSource::Inline(set) => return Some(set.clone()),
            JwksSource::Uri(uri) => uri,
        };
        let cached = self
            .sets
            .lock()
            .ok()
            .and_then(|m| m.get(uri).map(|(t, k)| (*t, k.clone())));
        let stale = cached.as_ref().is_none_or(|(t, _)| {
            t.elapsed() > JWKS_REFRESH || (refresh && t.elapsed() > JWKS_MIN_REFETCH)
        });
        if !stale {
            return cached.map(|(_, k)| k);
        }
        match self.fetch(uri).await {
            Ok(keys) => {
                if let Ok(mut m) = self.sets.lock() {
                    m.insert(uri.clone(), (std::time::Instant::now(), keys.clone()));
                }
                Some(keys)
            }
            Err(e) => {
                tracing::warn!(jwks = %uri, error = %e, "cannot read the JWKS; keeping the last good keys");
                // Try again no sooner than the minimum refetch interval.
                if let (Ok(mut m), Some((_, k))) = (self.sets.lock(), &cached) {
                    m.insert(
                        uri.clone(),
                        (
                            std::time::Instant::now() - JWKS_REFRESH + JWKS_MIN_REFETCH,
                            k.clone(),
                        ),
                    );
                }
                cached.map(|(_, k)| k)
            }
        }
    }
}

fn claim_matches(value: &serde_json::Value, wanted: &str) -> bool {
    match value {
        serde_json::Value::String(s) => s == wanted || s.split(' ').any(|p| p == wanted),
        serde_json::Value::Array(items) => items.iter().any(|i| i.as_str() == Some(wanted)),
        other => other.to_string().as_str() == wanted,
    }
}

/// Verifies the bearer token. `Ok(None)`: no bearer token was sent.
pub(crate) async fn check_jwt(
    policy: &snapshot::JwtPolicy,
    headers: &HeaderMap,
    cache: &JwksCache,
    host: &str,
) -> Result<Option<(serde_json::Value, Vec<(HeaderName, HeaderValue)>)>, ProxyError> {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
    else {
        return Ok(None);
    };
    let invalid = || {
        ProxyError::Unauthorized(
            HeaderValue::from_str(&format!(
                "Bearer realm=\"{}\", error=\"invalid_token\"",
                host.replace('"', "")
            ))
            .unwrap_or(HeaderValue::from_static("Bearer")),
        )
    };
    let head = jsonwebtoken::decode_header(token).map_err(|_| invalid())?;
    use jsonwebtoken::Algorithm;
    if !matches!(
        head.alg,
        Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA | Algorithm::HS256
    ) {
        return Err(invalid());
    }
    let pick = |set: Option<Jwks>| {
        set.map_or_else(Vec::new, |set| {
            set.keys()
                .iter()
                .filter(|k| k.alg == head.alg)
                .filter(|k| head.kid.is_none() || k.kid == head.kid)
                .map(|k| k.key.clone())
                .collect::<Vec<_>>()
        })
    };
    let mut candidates = pick(cache.keys(&policy.jwks, false).await);
    if candidates.is_empty() {
        candidates = pick(cache.keys(&policy.jwks, true).await);
    }
    let mut validation = jsonwebtoken::Validation::new(head.alg);
    validation.leeway = u64::from(policy.leeway_seconds);
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp"]);
    if let Some(iss) = &policy.issuer {
        validation.set_issuer(&[&**iss]);
    }
    if policy.audiences.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&policy.audiences);
    }
    let claims = candidates
        .iter()
        .find_map(|key| jsonwebtoken::decode::<serde_json::Value>(token, key, &validation).ok())
        .ok_or_else(invalid)?
        .claims;
    for (name, wanted) in &policy.required_claims {
        if !claims
            .get(&**name)
            .is_some_and(|v| claim_matches(v, wanted))
        {
            return Err(ProxyError::Forbidden);
        }
    }
    let forward = policy
        .forward_claims
        .iter()
        .filter_map(|(claim, header)| {
            let v = claims.get(&**claim)?;
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some((header.clone(), HeaderValue::from_str(&text).ok()?))
        })
        .collect();
    Ok(Some((claims, forward)))
}
