//! Per-request cost of the edge policies: a local rate-limit check, an
//! API-key check, an address list, a CORS origin check, a cache hit (key
//! computation plus lookup), header rewriting, and path rewriting (by
//! prefix, and by a regular expression with captures as ingress-nginx's
//! `rewrite-target` does).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use dataplane::bench;
use dataplane::{RateLimiter, ResponseCache};
use http::{HeaderMap, HeaderName, HeaderValue};
use snapshot::{
    AccessList, ApiKeys, CachePolicy, CacheQuery, Cidr, CorsPolicy, RateLimit, RateLimitKey,
    RateLimitScope,
};

fn digest(key: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn policies(c: &mut Criterion) {
    let limiter = RateLimiter::new(100_000);
    let limit = RateLimit {
        id: "ns/policy/limit".into(),
        key: RateLimitKey::ClientIp,
        requests: 1_000_000_000,
        per: Duration::from_secs(1),
        burst: 1_000_000,
        scope: RateLimitScope::Local,
        fail_open: true,
        headers_on_success: false,
    };
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
        .collect();
    let mut i = 0usize;
    c.bench_function("policy/rate_limit_local_1000_keys", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(bench::rate_limit(&limiter, &limit, keys[i].as_bytes()))
        });
    });

    let api_keys = Arc::new(ApiKeys {
        source: "ns/keys".into(),
        header: Some(HeaderName::from_static("x-api-key")),
        query_parameter: None,
        forward_name_header: None,
        keys: (0..100)
            .map(|n| {
                (
                    digest(format!("key-{n}").as_bytes()),
                    Arc::from(format!("app-{n}")),
                )
            })
            .collect(),
    });
    let mut headers = HeaderMap::new();
    headers.insert("x-api-key", HeaderValue::from_static("key-42"));
    c.bench_function("policy/api_key_100_keys", |b| {
        b.iter(|| black_box(bench::api_key(&api_keys, &headers)));
    });

    let access = AccessList {
        allow: (0..20)
            .map(|n| {
                format!("10.{n}.0.0/16")
                    .parse::<Cidr>()
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect(),
        deny: vec![
            "10.19.9.0/24"
                .parse()
                .unwrap_or_else(|e: String| panic!("{e}")),
        ],
    };
    let ip = "10.19.1.1".parse().unwrap_or_else(|_| panic!("an address"));
    c.bench_function("policy/access_list_21_cidrs", |b| {
        b.iter(|| black_box(access.permits(black_box(ip))));
    });

    let cors = CorsPolicy {
        origins: vec![
            "https://app.example.com".into(),
            "https://admin.example.com".into(),
        ],
        wildcard_origins: vec![("https://".into(), ".partner.example.com".into())],
        any_origin: false,
        allow_methods: "GET, POST".into(),
        allow_headers: "".into(),
        expose_headers: "".into(),
        allow_credentials: true,
        max_age: None,
    };
    c.bench_function("policy/cors_origin_wildcard", |b| {
        b.iter(|| black_box(cors.allows(black_box("https://a.partner.example.com"))));
    });

    let cache = Arc::new(ResponseCache::new(64 << 20));
    let policy = CachePolicy {
        ttl: Duration::from_secs(3600),
        query: CacheQuery::All,
        headers: vec![HeaderName::from_static("accept-language")],
        max_entry_bytes: 1 << 20,
        max_total_bytes: None,
        statuses: vec![200],
        fingerprint: 7,
    };
    let mut req = HeaderMap::new();
    req.insert("accept-language", HeaderValue::from_static("en"));
    let key = bench::cache_key(&policy, "/products/42", Some("b=2&a=1"), &req);
    bench::cache_store(&cache, &key, &policy, Bytes::from(vec![b'x'; 4096]));
    c.bench_function("policy/cache_hit_4k", |b| {
        b.iter(|| {
            black_box(bench::cache_hit(
                &cache,
                &policy,
                "/products/42",
                Some("b=2&a=1"),
                &req,
            ))
        });
    });
}

/// Header rewriting on a typical browser request (11 headers, one of them
/// `Connection: keep-alive, x-trace-hop`): hop-by-hop stripping and a
/// modifier that sets two headers, adds one and removes two. The map is
/// cloned per iteration, as each request brings its own; the clone alone
/// is measured too, so the rewrite is the difference.
fn headers(c: &mut Criterion) {
    let mut req = HeaderMap::new();
    for (k, v) in [
        ("host", "shop.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/140.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive, x-trace-hop"),
        ("x-trace-hop", "1"),
        ("cookie", "session=0123456789abcdef; theme=dark"),
        ("upgrade-insecure-requests", "1"),
        ("x-debug", "true"),
        ("x-internal-user", "spoofed"),
    ] {
        req.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let modifier = snapshot::HeaderModifier {
        set: vec![
            (
                HeaderName::from_static("x-tenant"),
                HeaderValue::from_static("acme"),
            ),
            (
                HeaderName::from_static("host"),
                HeaderValue::from_static("shop.internal"),
            ),
        ],
        add: vec![(
            HeaderName::from_static("x-gateway"),
            HeaderValue::from_static("gatehouse"),
        )],
        remove: vec![
            HeaderName::from_static("x-debug"),
            HeaderName::from_static("x-internal-user"),
        ],
    };
    c.bench_function("headers/clone_only", |b| {
        b.iter(|| black_box(req.clone()));
    });
    c.bench_function("headers/rewrite_request", |b| {
        b.iter(|| {
            let mut h = req.clone();
            bench::rewrite_request_headers(&mut h, &modifier);
            black_box(h)
        });
    });
}

fn paths(c: &mut Criterion) {
    use snapshot::{PathMatch, PathRewrite, Pattern};
    let path = "/api/v1/orders/12345/items";
    let prefix = PathMatch::prefix("/api");
    let by_prefix = PathRewrite::Prefix("/".into());
    let regex_match =
        PathMatch::Regex(Pattern::new("(?i:/api(/|$)(.*)).*").unwrap_or_else(|e| panic!("{e}")));
    let by_regex = PathRewrite::Regex {
        pattern: Pattern::search("(?i)^(?:/api(/|$)(.*))").unwrap_or_else(|e| panic!("{e}")),
        replacement: "/$2".into(),
    };
    assert_eq!(by_regex.apply(path, &regex_match), "/v1/orders/12345/items");
    c.bench_function("paths/rewrite_prefix", |b| {
        b.iter(|| black_box(by_prefix.apply(black_box(path), &prefix)));
    });
    c.bench_function("paths/rewrite_regex_captures", |b| {
        b.iter(|| black_box(by_regex.apply(black_box(path), &regex_match)));
    });
}

criterion_group!(benches, policies, headers, paths);
criterion_main!(benches);
