//! The indexed matcher agrees with a linear scan on random route sets and
//! requests.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use proptest::prelude::*;
use snapshot::{
    Body, BodyMatcher, Found, HeaderMatcher, HostPattern, PathMatch, Pattern, QueryMatcher,
    RequestInfo, RouteEntry, RouteIndex, ValueMatch, VirtualHost,
};

const SEGMENTS: &[&str] = &["a", "b", "ab", "c", "v1"];
const REGEXES: &[&str] = &["/a/.*", "/(a|b)/c", "/[ab]+", ".*/c/?", "/v1/[0-9a-z]+"];
const METHODS: &[Method] = &[Method::GET, Method::POST];
const HEADER_NAMES: &[&str] = &["x-a", "x-b"];
const VALUES: &[&str] = &["1", "2", "10"];

fn path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(SEGMENTS), 0..4),
        any::<bool>(),
    )
        .prop_map(|(segs, slash)| {
            let mut p = String::from("/");
            p.push_str(&segs.join("/"));
            if slash && !segs.is_empty() {
                p.push('/');
            }
            p
        })
}

fn value_match() -> impl Strategy<Value = ValueMatch> {
    prop_oneof![
        prop::sample::select(VALUES).prop_map(|v| ValueMatch::Exact(v.into())),
        Just(ValueMatch::Regex(
            Pattern::new("1.*").expect("fixed pattern")
        )),
        Just(ValueMatch::Present),
    ]
}

fn entry() -> impl Strategy<Value = RouteEntry> {
    let path_match = prop_oneof![
        path().prop_map(|p| PathMatch::Exact(p.into())),
        path().prop_map(|p| PathMatch::prefix(&p)),
        prop::sample::select(REGEXES)
            .prop_map(|r| PathMatch::Regex(Pattern::new(r).expect("fixed pattern"))),
    ];
    (
        path_match,
        prop::option::of(prop::sample::select(METHODS)),
        prop::collection::vec((prop::sample::select(HEADER_NAMES), value_match()), 0..2),
        prop::collection::vec((prop::sample::select(&["q", "r"][..]), value_match()), 0..2),
        prop::collection::vec(value_match(), 0..2),
    )
        .prop_map(|(path, method, headers, query, body)| RouteEntry {
            path,
            method,
            headers: headers
                .into_iter()
                .map(|(n, v)| HeaderMatcher {
                    name: HeaderName::from_static(n),
                    value: v,
                })
                .collect(),
            query: query
                .into_iter()
                .map(|(n, v)| QueryMatcher {
                    name: n.into(),
                    value: v,
                })
                .collect(),
            body: body
                .into_iter()
                .map(|v| BodyMatcher {
                    json_pointer: "/k".into(),
                    value: v,
                })
                .collect(),
            route: RouteIndex(0),
        })
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    method: Method,
    headers: Vec<(&'static str, &'static str)>,
    query: Option<String>,
    body: Option<serde_json::Value>,
}

fn request() -> impl Strategy<Value = Request> {
    (
        path(),
        prop::sample::select(METHODS),
        prop::collection::vec(
            (
                prop::sample::select(HEADER_NAMES),
                prop::sample::select(VALUES),
            ),
            0..3,
        ),
        prop::option::of(prop::collection::vec(
            (
                prop::sample::select(&["q", "r", "s"][..]),
                prop::sample::select(VALUES),
            ),
            0..3,
        )),
        prop::option::of(prop::sample::select(VALUES)),
    )
        .prop_map(|(path, method, headers, query, body)| Request {
            path,
            method,
            headers,
            query: query.map(|q| {
                q.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("&")
            }),
            body: body.map(|v| serde_json::json!({ "k": v })),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn index_agrees_with_linear_scan(entries in prop::collection::vec(entry(), 0..40), requests in prop::collection::vec(request(), 1..20)) {
        let vhost = VirtualHost::new(HostPattern::Any, entries);
        for r in &requests {
            let mut headers = HeaderMap::new();
            for (k, v) in &r.headers {
                headers.append(*k, HeaderValue::from_static(v));
            }
            for body in [Body::Unread, Body::NotJson] {
                let info = RequestInfo { host: "h", path: &r.path, query: r.query.as_deref(), method: &r.method, headers: &headers, body };
                assert_same(vhost.find(&info), vhost.find_linear(&info), r);
            }
            if let Some(json) = &r.body {
                let info = RequestInfo { host: "h", path: &r.path, query: r.query.as_deref(), method: &r.method, headers: &headers, body: Body::Json(json) };
                assert_same(vhost.find(&info), vhost.find_linear(&info), r);
            }
        }
    }
}

fn assert_same(fast: Found<'_>, slow: Found<'_>, r: &Request) {
    match (fast, slow) {
        (Found::Entry(a), Found::Entry(b)) => assert!(
            std::ptr::eq(a, b),
            "different entries for {r:?}: {a:?} vs {b:?}"
        ),
        (a, b) => assert_eq!(a, b, "{r:?}"),
    }
}
