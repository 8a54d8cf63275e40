//! JWT bearer tokens: verified against the route's key set (from the
//! snapshot, or fetched from a URL and refreshed), then claims checked and
//! passed on.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use snapshot::{Jwks, JwksSource};

use crate::respond::ProxyError;

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
