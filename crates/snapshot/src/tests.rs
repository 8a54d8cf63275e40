use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Method};

use super::*;

fn route(id: &str) -> Route {
    Route {
        id: id.into(),
        origin: Origin {
            kind: "ApiRoute",
            namespace: "default".into(),
            name: id.into(),
        },
        action: Action::Respond(DirectResponse {
            status: 200,
            content_type: http::HeaderValue::from_static("text/plain"),
            body: bytes::Bytes::from_static(b""),
        }),
        request_timeout: None,
        backend_timeout: None,
        filters: Filters::default(),
        traffic: Traffic::default(),
        rate_limits: Vec::new(),
        policies: crate::RoutePolicies::default(),
    }
}

fn entry(path: PathMatch, route: usize) -> RouteEntry {
    RouteEntry {
        path,
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        body: Vec::new(),
        route: RouteIndex(route),
    }
}

fn req<'a>(host: &'a str, path: &'a str, headers: &'a HeaderMap) -> RequestInfo<'a> {
    RequestInfo {
        host,
        path,
        query: None,
        method: &Method::GET,
        headers,
        body: Body::Unread,
    }
}

fn routed(s: &Snapshot, host: &str, path: &str) -> Option<Arc<str>> {
    let h = HeaderMap::new();
    match s.route(&req(host, path, &h)) {
        Lookup::Matched(m) => Some(m.route.id.clone()),
        Lookup::NeedBody => panic!("no body conditions here"),
        Lookup::NotFound => None,
    }
}

#[test]
fn host_selection_prefers_exact_then_wildcard_then_any() {
    let s = Snapshot::new(
        vec![
            VirtualHost::new(
                HostPattern::parse("*"),
                vec![entry(PathMatch::prefix("/"), 0)],
            ),
            VirtualHost::new(
                HostPattern::parse("*.example.com"),
                vec![entry(PathMatch::prefix("/"), 1)],
            ),
            VirtualHost::new(
                HostPattern::parse("a.example.com"),
                vec![entry(PathMatch::prefix("/"), 2)],
            ),
        ],
        vec![route("any"), route("wild"), route("exact")],
        Vec::new(),
    );
    assert_eq!(routed(&s, "a.example.com", "/").as_deref(), Some("exact"));
    assert_eq!(routed(&s, "b.example.com", "/").as_deref(), Some("wild"));
    // A wildcard covers exactly one label.
    assert_eq!(routed(&s, "example.com", "/").as_deref(), Some("any"));
    assert_eq!(routed(&s, "x.b.example.com", "/").as_deref(), Some("any"));
    assert_eq!(routed(&s, ".example.com", "/").as_deref(), Some("any"));
    assert_eq!(routed(&s, "other.org", "/").as_deref(), Some("any"));
}

#[test]
fn a_configured_host_does_not_fall_through() {
    let s = Snapshot::new(
        vec![
            VirtualHost::new(
                HostPattern::parse("*"),
                vec![entry(PathMatch::prefix("/"), 0)],
            ),
            VirtualHost::new(
                HostPattern::parse("a.example.com"),
                vec![entry(PathMatch::prefix("/api"), 1)],
            ),
        ],
        vec![route("any"), route("api")],
        Vec::new(),
    );
    assert_eq!(
        routed(&s, "a.example.com", "/api/x").as_deref(),
        Some("api")
    );
    assert_eq!(routed(&s, "a.example.com", "/other"), None);
}

#[test]
fn prefix_matches_whole_segments() {
    let p = PathMatch::prefix("/foo/");
    assert_eq!(p, PathMatch::Prefix("/foo".into()));
    for ok in ["/foo", "/foo/", "/foo/bar"] {
        assert!(p.matches(ok), "{ok}");
    }
    for no in ["/foobar", "/fo", "/", "/bar/foo"] {
        assert!(!p.matches(no), "{no}");
    }
    assert!(PathMatch::prefix("/").matches("/anything"));
    assert!(PathMatch::prefix("///").matches("/"));
}

#[test]
fn exact_and_regex_paths() {
    let e = PathMatch::Exact("/foo".into());
    assert!(e.matches("/foo"));
    assert!(!e.matches("/foo/"));
    let r = PathMatch::Regex(Pattern::new("/users/[0-9]+").unwrap());
    assert!(r.matches("/users/42"));
    // Anchored: a partial match is no match.
    assert!(!r.matches("/users/42/orders"));
    assert!(!r.matches("/x/users/42"));
    let err = Pattern::new("(unclosed").unwrap_err().to_string();
    assert!(err.starts_with("invalid regular expression"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn header_query_and_method_conditions() {
    let mut e = entry(PathMatch::prefix("/"), 0);
    e.method = Some(Method::POST);
    e.headers.push(HeaderMatcher {
        name: http::HeaderName::from_static("x-version"),
        value: ValueMatch::Exact("2".into()),
    });
    e.query.push(QueryMatcher {
        name: "tenant id".into(),
        value: ValueMatch::Regex(Pattern::new("ac.*").unwrap()),
    });
    let mut headers = HeaderMap::new();
    headers.insert("X-Version", HeaderValue::from_static("2"));
    let ok = RequestInfo {
        host: "h",
        path: "/",
        query: Some("a=1&tenant%20id=acme&tenant%20id=other"),
        method: &Method::POST,
        headers: &headers,
        body: Body::Unread,
    };
    assert!(e.matches(&ok));
    assert!(!e.matches(&RequestInfo {
        method: &Method::GET,
        ..ok
    }));
    assert!(!e.matches(&RequestInfo {
        query: Some("tenant%20id=other"),
        ..ok
    }));
    assert!(!e.matches(&RequestInfo { query: None, ..ok }));
    let empty = HeaderMap::new();
    assert!(!e.matches(&RequestInfo {
        headers: &empty,
        ..ok
    }));
}

#[test]
fn weighted_pick_covers_each_share() {
    let b = |w, name: &str| WeightedBackend {
        weight: w,
        target: BackendTarget::Unresolved {
            status: 500,
            reason: name.into(),
        },
    };
    let f = Forward::new(vec![b(3, "a"), b(0, "zero"), b(1, "b")]);
    assert_eq!(f.total_weight(), 4);
    assert_eq!(f.backends.len(), 2);
    let names: Vec<_> = (0..4)
        .map(|n| match &f.pick(n).unwrap().target {
            BackendTarget::Unresolved { reason, .. } => reason.to_string(),
            BackendTarget::Cluster { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(names, ["a", "a", "a", "b"]);
    assert!(Forward::new(vec![b(0, "z")]).pick(0).is_none());
}

#[test]
fn explain_agrees_with_the_matcher_and_says_why() {
    let mut post_only = entry(PathMatch::prefix("/api"), 1);
    post_only.method = Some(Method::POST);
    let mut versioned = entry(PathMatch::prefix("/api"), 2);
    versioned.headers.push(HeaderMatcher {
        name: http::HeaderName::from_static("x-version"),
        value: ValueMatch::Exact("2".into()),
    });
    let s = Snapshot::new(
        vec![VirtualHost::new(
            HostPattern::parse("*.example.com"),
            vec![
                entry(PathMatch::Exact("/health".into()), 0),
                post_only,
                versioned,
                entry(PathMatch::prefix("/api"), 3),
            ],
        )],
        vec![
            route("health"),
            route("writes"),
            route("v2"),
            route("reads"),
        ],
        Vec::new(),
    );
    let h = HeaderMap::new();
    let e = s.explain(&req("a.example.com", "/api/x", &h));
    let vh = e.virtual_host.as_ref().unwrap();
    assert_eq!(
        (vh.pattern.as_str(), vh.matched_by, vh.entries),
        ("*.example.com", "wildcard", 4)
    );
    let results: Vec<_> = e
        .entries
        .iter()
        .map(|c| {
            (
                c.route.as_str(),
                c.result,
                c.reason.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("health", "skipped", "path /api/x does not match"),
            ("writes", "skipped", "method is GET, the entry wants POST"),
            ("v2", "skipped", "header x-version is missing"),
            ("reads", "matched", ""),
        ]
    );
    assert_eq!(e.route.as_ref().unwrap().id, "reads");
    assert_eq!(e.route.as_ref().unwrap().action, "respond");
    assert_eq!(
        routed(&s, "a.example.com", "/api/x").as_deref(),
        Some("reads")
    );

    // No entry takes it: the host is named and the answer is 404.
    let e = s.explain(&req("a.example.com", "/other", &h));
    assert!(e.route.is_none());
    assert_eq!(e.entries.len(), 4);
    assert!(e.summary.contains("none takes GET /other"), "{}", e.summary);
    assert_eq!(routed(&s, "a.example.com", "/other"), None);

    // No host: nothing considered.
    let e = s.explain(&req("example.org", "/api", &h));
    assert!(e.virtual_host.is_none() && e.entries.is_empty() && e.route.is_none());
    assert!(e.summary.contains("no virtual host"), "{}", e.summary);
}
