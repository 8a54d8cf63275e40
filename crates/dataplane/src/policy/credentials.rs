//! Credentials at request time: API keys and basic users (compared by
//! digest in constant time), and JWTs (`jwt.rs`). What passed is stripped
//! before the request goes upstream and never logged; the verified
//! identity is passed on under the configured header.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use snapshot::{ApiKeys, BasicUsers, RoutePolicies};

use super::jwt::{JwksCache, check_jwt};
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
