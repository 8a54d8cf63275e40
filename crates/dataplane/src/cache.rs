//! The response cache: bounded by bytes (moka, TinyLFU admission), one
//! entry per key with its `Vary` variants, freshness from the response's
//! `Cache-Control` or the rule's TTL, and request coalescing so that
//! concurrent misses for one key make one upstream request.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use snapshot::{CachePolicy, CacheQuery};
use tokio::sync::Notify;

/// A stored response.
#[derive(Debug)]
pub(crate) struct Stored {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    stored_at: Instant,
    fresh_for: Duration,
    /// `Vary` header names and this variant's request values.
    vary: Vec<(HeaderName, Option<HeaderValue>)>,
}

impl Stored {
    /// Seconds since stored (the `Age` header).
    pub(crate) fn age(&self) -> u64 {
        self.stored_at.elapsed().as_secs()
    }

    fn fresh(&self) -> bool {
        self.stored_at.elapsed() < self.fresh_for
    }

    fn matches(&self, request: &HeaderMap) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| request.get(name) == value.as_ref())
    }
}

type Variants = Arc<Vec<Arc<Stored>>>;

struct PerEntryTtl;

impl moka::Expiry<String, Variants> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, v: &Variants, _: Instant) -> Option<Duration> {
        v.iter().map(|s| s.fresh_for).max()
    }
    fn expire_after_update(
        &self,
        _: &String,
        v: &Variants,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        v.iter().map(|s| s.fresh_for).max()
    }
}

/// Cache statistics, for metrics.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Served from the cache.
    pub hits: telemetry::Counter,
    /// Looked up and not found (or stale).
    pub misses: telemetry::Counter,
}

impl CacheCounters {
    /// The counters registered in `metrics`.
    pub fn registered(metrics: &telemetry::Metrics) -> Self {
        Self {
            hits: metrics.cache_hits.clone(),
            misses: metrics.cache_misses.clone(),
        }
    }
}

/// The gateway's response cache.
pub struct ResponseCache {
    entries: moka::sync::Cache<String, Variants>,
    /// Bytes held per route (the key's first field), for per-rule caps.
    per_route: Arc<Mutex<HashMap<String, u64>>>,
    in_flight: Mutex<HashMap<String, Arc<Notify>>>,
    /// Hits and misses.
    pub(crate) counters: CacheCounters,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

/// What a lookup decided.
pub(crate) enum Lookup {
    /// A fresh stored response.
    Hit(Arc<Stored>),
    /// Fetch it; the guard wakes the requests waiting for this key when
    /// dropped.
    Fetch(FetchGuard),
}

/// Held by the one request fetching a key.
pub(crate) struct FetchGuard {
    cache: Arc<ResponseCache>,
    pub(crate) key: String,
    notify: Option<Arc<Notify>>,
}

impl Drop for FetchGuard {
    fn drop(&mut self) {
        if let Some(n) = self.notify.take() {
            if let Ok(mut m) = self.cache.in_flight.lock() {
                m.remove(&self.key);
            }
            n.notify_waiters();
        }
    }
}

impl ResponseCache {
    /// The same cache, counting hits and misses into `counters`.
    #[must_use]
    pub fn with_counters(mut self, counters: CacheCounters) -> Self {
        self.counters = counters;
        self
    }

    /// An empty cache holding at most `max_bytes` of responses.
    pub fn new(max_bytes: u64) -> Self {
        let per_route: Arc<Mutex<HashMap<String, u64>>> = Arc::default();
        let accounts = per_route.clone();
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &String, v: &Variants| weight(k, v))
                .expire_after(PerEntryTtl)
                .eviction_listener(move |k: Arc<String>, v: Variants, _| {
                    if let Ok(mut m) = accounts.lock()
                        && let Some(total) = m.get_mut(route_of(&k))
                    {
                        *total = total.saturating_sub(u64::from(weight(&k, &v)));
                    }
                })
                .build(),
            per_route,
            in_flight: Mutex::new(HashMap::new()),
            counters: CacheCounters::default(),
        }
    }

    /// The key of a request under `policy`: route, configuration
    /// fingerprint, host, path, the query as configured, listed headers.
    pub(crate) fn key(
        policy: &CachePolicy,
        route: &str,
        host: &str,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> String {
        let mut key = format!("{route}|{:x}|{host}|{path}|", policy.fingerprint);
        let mut params: Vec<&str> = query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
            .filter(|p| match &policy.query {
                CacheQuery::All => true,
                CacheQuery::Ignore => false,
                CacheQuery::Listed(names) => {
                    let name = p.split_once('=').map_or(*p, |(k, _)| k);
                    names.iter().any(|n| **n == *name)
                }
            })
            .collect();
        params.sort_unstable();
        key.push_str(&params.join("&"));
        for h in &policy.headers {
            key.push('|');
            if let Some(v) = headers.get(h) {
                key.push_str(&String::from_utf8_lossy(v.as_bytes()));
            }
        }
        key
    }

    /// Looks `key` up. When another request is already fetching it, waits
    /// (at most `wait`) for that fetch and looks again.
    pub(crate) async fn lookup(
        self: &Arc<Self>,
        key: String,
        request: &HeaderMap,
        wait: Duration,
    ) -> Lookup {
        for attempt in 0..2 {
            if let Some(stored) = self.fresh(&key, request) {
                self.counters.hits.inc();
                return Lookup::Hit(stored);
            }
            let waiting = {
                let mut m = self
                    .in_flight
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                match m.get(&key) {
                    Some(n) if attempt == 0 => {
                        // Registered before the lock is released, so the
                        // fetcher's wake-up cannot be missed.
                        let mut notified = Box::pin(n.clone().notified_owned());
                        notified.as_mut().enable();
                        Some(notified)
                    }
                    Some(_) => None,
                    None => {
                        let n = Arc::new(Notify::new());
                        m.insert(key.clone(), n.clone());
                        self.counters.misses.inc();
                        return Lookup::Fetch(FetchGuard {
                            cache: self.clone(),
                            key,
                            notify: Some(n),
                        });
                    }
                }
            };
            match waiting {
                Some(w) => {
                    let _ = tokio::time::timeout(wait, w).await;
                }
                None => break,
            }
        }
        // The fetch we waited for stored nothing usable: fetch alone.
        self.counters.misses.inc();
        Lookup::Fetch(FetchGuard {
            cache: self.clone(),
            key,
            notify: None,
        })
    }

    fn fresh(&self, key: &str, request: &HeaderMap) -> Option<Arc<Stored>> {
        let variants = self.entries.get(key)?;
        variants
            .iter()
            .find(|s| s.fresh() && s.matches(request))
            .cloned()
    }

    /// Stores a response if the policy and its headers allow.
    pub(crate) fn store(
        &self,
        key: &str,
        policy: &CachePolicy,
        request: &HeaderMap,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) {
        let Some(fresh_for) = freshness(policy, status, headers) else {
            return;
        };
        let vary: Vec<(HeaderName, Option<HeaderValue>)> = match vary_names(headers) {
            Some(names) => names
                .into_iter()
                .map(|n| {
                    let v = request.get(&n).cloned();
                    (n, v)
                })
                .collect(),
            None => return,
        };
        let stored = Arc::new(Stored {
            status,
            headers: headers.clone(),
            body,
            stored_at: Instant::now(),
            fresh_for,
            vary,
        });
        let mut variants: Vec<Arc<Stored>> = self
            .entries
            .get(key)
            .map(|v| {
                v.iter()
                    .filter(|s| s.fresh() && s.vary != stored.vary)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        variants.truncate(15);
        variants.push(stored);
        let variants = Arc::new(variants);
        let key = key.to_owned();
        let size = u64::from(weight(&key, &variants));
        let route = route_of(&key).to_owned();
        if let Some(cap) = policy.max_total_bytes {
            let over = |m: &HashMap<String, u64>| m.get(&route).copied().unwrap_or(0) + size > cap;
            if self.per_route.lock().is_ok_and(|m| over(&m)) {
                // Expired and evicted entries are accounted lazily.
                self.entries.run_pending_tasks();
                if self.per_route.lock().is_ok_and(|m| over(&m)) {
                    return;
                }
            }
        }
        if let Ok(mut m) = self.per_route.lock() {
            *m.entry(route).or_default() += size;
        }
        self.entries.insert(key, variants);
    }

    /// Removes the entries of `host` that `which` selects. Returns the
    /// number removed.
    pub fn purge(&self, host: &str, which: &Purge) -> usize {
        let query = match which {
            Purge::Key { query, .. } => query.as_deref().map(sorted_query),
            Purge::Prefix(_) => None,
        };
        let doomed: Vec<String> = self
            .entries
            .iter()
            .filter_map(|(k, _)| {
                // `route|fingerprint|host|path|query|header…`
                let mut parts = k.split('|').skip(2);
                let (h, p, q) = (parts.next()?, parts.next()?, parts.next()?);
                let selected = h == host
                    && match which {
                        Purge::Prefix(prefix) => p.starts_with(&**prefix),
                        Purge::Key { path, .. } => {
                            p == &**path && query.as_deref().is_none_or(|want| want == q)
                        }
                    };
                selected.then(|| (*k).clone())
            })
            .collect();
        for k in &doomed {
            self.entries.invalidate(k);
        }
        doomed.len()
    }

    /// Entries held.
    pub fn len(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Reads `body` up to `limit` bytes. `Ok` is the whole body; `Err` is a
/// body to stream on (what was read, then the rest) because it is larger.
pub(crate) async fn read_up_to(
    mut body: crate::upstream::FromUpstream,
    limit: usize,
) -> Result<Bytes, crate::body::UnsyncBody> {
    use http_body_util::BodyExt;
    let mut buf = bytes::BytesMut::new();
    loop {
        match body.frame().await {
            None => return Ok(buf.freeze()),
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    buf.extend_from_slice(&data);
                    if buf.len() > limit {
                        let first =
                            http_body_util::Full::new(buf.freeze()).map_err(|never| match never {});
                        let rest = body;
                        return Err(Chain {
                            first: Some(first),
                            rest,
                        }
                        .boxed_unsync());
                    }
                }
                // Trailers: not cached; pass what we have on.
                Err(_) => return Ok(buf.freeze()),
            },
            Some(Err(_)) => return Ok(buf.freeze()),
        }
    }
}

/// One body, then another.
struct Chain<A, B> {
    first: Option<A>,
    rest: B,
}

impl<A, B> http_body::Body for Chain<A, B>
where
    A: http_body::Body<Data = Bytes, Error = crate::body::BoxError> + Unpin,
    B: http_body::Body<Data = Bytes, Error = crate::body::BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some(first) = self.first.as_mut() {
            match std::pin::Pin::new(first).poll_frame(cx) {
                std::task::Poll::Ready(None) => self.first = None,
                other => return other,
            }
        }
        std::pin::Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// What an entry costs: body, an estimate per header, and overhead.
fn weight(key: &str, v: &Variants) -> u32 {
    let bytes: usize = v
        .iter()
        .map(|s| s.body.len() + s.headers.len() * 64 + 128)
        .sum();
    u32::try_from(bytes + key.len()).unwrap_or(u32::MAX)
}

/// What `POST /cache/purge` removes, besides the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Purge {
    /// Every entry whose path starts with this.
    Prefix(Box<str>),
    /// The entries of one path: with `query`, only those stored under
    /// that query (parameters in any order, compared as the key stores
    /// them); without, every query and header variant of the path.
    Key {
        /// The exact path.
        path: Box<str>,
        /// The query, without `?`.
        query: Option<Box<str>>,
    },
}

/// A query's parameters sorted and joined, as keys store them.
fn sorted_query(query: &str) -> String {
    let mut params: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
    params.sort_unstable();
    params.join("&")
}

/// The route id at the start of a key.
fn route_of(key: &str) -> &str {
    key.split('|').next().unwrap_or_default()
}

/// Whether a request may be answered from (and fill) the cache.
pub(crate) fn cacheable_request(method: &Method, headers: &HeaderMap) -> bool {
    (method == Method::GET || method == Method::HEAD)
        && !headers.contains_key(header::AUTHORIZATION)
        && !headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .any(|v| directive(v, "no-store").is_some() || directive(v, "no-cache").is_some())
}

fn directive<'a>(value: &'a HeaderValue, name: &str) -> Option<&'a str> {
    value.to_str().ok()?.split(',').find_map(|d| {
        let d = d.trim();
        let (k, v) = d.split_once('=').unwrap_or((d, ""));
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// How long a response stays fresh, or `None` when it must not be stored.
fn freshness(policy: &CachePolicy, status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if !policy.statuses.contains(&status.as_u16()) || headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let cc: Vec<&HeaderValue> = headers.get_all(header::CACHE_CONTROL).iter().collect();
    let has = |name: &str| cc.iter().any(|v| directive(v, name).is_some());
    if has("no-store") || has("private") || has("no-cache") {
        return None;
    }
    let seconds = |name: &str| {
        cc.iter()
            .find_map(|v| directive(v, name))
            .and_then(|v| v.trim_matches('"').parse::<u64>().ok())
    };
    let ttl = seconds("s-maxage")
        .or_else(|| seconds("max-age"))
        .map_or(policy.ttl, Duration::from_secs);
    let age = headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs);
    let fresh = ttl.checked_sub(age)?;
    (!fresh.is_zero()).then_some(fresh)
}

/// The `Vary` header names, or `None` for `Vary: *` (never stored).
fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names = Vec::new();
    for v in headers.get_all(header::VARY) {
        for n in v.to_str().ok()?.split(',') {
            let n = n.trim();
            if n == "*" {
                return None;
            }
            if let Ok(name) = HeaderName::try_from(n) {
                names.push(name);
            }
        }
    }
    Some(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> CachePolicy {
        CachePolicy {
            ttl: Duration::from_secs(60),
            query: CacheQuery::All,
            headers: Vec::new(),
            max_entry_bytes: 1024,
            max_total_bytes: None,
            statuses: vec![200],
            fingerprint: 1,
        }
    }

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        list.iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn freshness_follows_cache_control() {
        let p = policy();
        assert_eq!(
            freshness(&p, StatusCode::OK, &headers(&[])),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            freshness(
                &p,
                StatusCode::OK,
                &headers(&[("cache-control", "public, max-age=10, s-maxage=5")])
            ),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            freshness(
                &p,
                StatusCode::OK,
                &headers(&[("cache-control", "max-age=10"), ("age", "4")])
            ),
            Some(Duration::from_secs(6))
        );
        for cc in ["no-store", "private", "max-age=0"] {
            assert_eq!(
                freshness(&p, StatusCode::OK, &headers(&[("cache-control", cc)])),
                None,
                "{cc}"
            );
        }
        assert_eq!(
            freshness(&p, StatusCode::OK, &headers(&[("set-cookie", "a=b")])),
            None
        );
        assert_eq!(freshness(&p, StatusCode::NOT_FOUND, &headers(&[])), None);
    }

    #[test]
    fn keys_sort_and_select_the_query() {
        let mut p = policy();
        let h = HeaderMap::new();
        let a = ResponseCache::key(&p, "r", "h", "/p", Some("b=2&a=1"), &h);
        let b = ResponseCache::key(&p, "r", "h", "/p", Some("a=1&b=2"), &h);
        assert_eq!(a, b);
        p.query = CacheQuery::Listed(vec!["a".into()]);
        assert_eq!(
            ResponseCache::key(&p, "r", "h", "/p", Some("a=1&utm=x"), &h),
            ResponseCache::key(&p, "r", "h", "/p", Some("a=1"), &h)
        );
    }
}
