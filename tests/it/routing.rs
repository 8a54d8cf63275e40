//! Requests reach the right backend; errors get the right status.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::HashMap;

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, ingress, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, free_addr};

#[tokio::test(flavor = "multi_thread")]
async fn routes_by_host_and_path() {
    let a = EchoServer::start("a").await;
    let b = EchoServer::start("b").await;
    let c = EchoServer::start("c").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc-a", &[a.addr]),
            service("svc-b", &[b.addr]),
            service("svc-c", &[c.addr]),
            ingress(
                "one",
                "one.example.com",
                &[
                    ("/", "Prefix", "svc-a"),
                    ("/shop", "Prefix", "svc-b"),
                    ("/shop/cart", "Exact", "svc-c"),
                ],
            ),
            ingress("two", "two.example.com", &[("/", "Prefix", "svc-c")]),
            ingress("wild", "*.wild.example.com", &[("/", "Prefix", "svc-b")]),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let cases = [
        ("one.example.com", "/", Some("a")),
        ("one.example.com", "/anything", Some("a")),
        ("one.example.com", "/shop", Some("b")),
        ("one.example.com", "/shop/", Some("b")),
        ("one.example.com", "/shop/cart", Some("c")),
        ("one.example.com", "/shop/cart/", Some("b")),
        ("one.example.com", "/shopping", Some("a")),
        ("ONE.example.com:8080", "/shop", Some("b")),
        ("two.example.com", "/shop", Some("c")),
        ("x.wild.example.com", "/", Some("b")),
        ("wild.example.com", "/", None),
        ("x.y.wild.example.com", "/", None),
        ("three.example.com", "/", None),
    ];
    for (host, path, want) in cases {
        let reply = client.get(gw.http, host, path).await.unwrap();
        match want {
            Some(name) => {
                assert_eq!(reply.status, 200, "{host}{path}: {}", reply.text());
                assert_eq!(reply.backend().as_deref(), Some(name), "{host}{path}");
                let echo = reply.echo().unwrap();
                assert_eq!(echo.path, path, "the path is forwarded unchanged");
            }
            None => {
                assert_eq!(reply.status, 404, "{host}{path}");
                assert_eq!(reply.text(), "no route matches this request\n");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_is_even() {
    let backends = [
        EchoServer::start("r1").await,
        EchoServer::start("r2").await,
        EchoServer::start("r3").await,
    ];
    let addrs: Vec<_> = backends.iter().map(|b| b.addr).collect();
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "rr.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("pool", &addrs),
            ingress("rr", "rr.example.com", &[("/", "Prefix", "pool")]),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let mut counts: HashMap<String, i32> = HashMap::new();
    for _ in 0..30 {
        let reply = client.get(gw.http, "rr.example.com", "/").await.unwrap();
        assert_eq!(reply.status, 200);
        *counts.entry(reply.backend().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (name, n) in &counts {
        assert!((9..=11).contains(n), "{name} got {n} of 30: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn error_statuses() {
    let slow = EchoServer::start("slow").await;
    let dead = free_addr(); // nothing listens here
    let dir = tempfile::tempdir().unwrap();
    let route = "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: api}
spec:
  ingressClassName: gatehouse
  hostnames: [api.example.com]
  rules:
  - name: slow
    matches: [{path: {type: PathPrefix, value: /slow}}]
    timeouts: {request: 300ms}
    backends: [{name: slow, port: 80}]
  - name: ghost
    matches: [{path: {type: PathPrefix, value: /ghost}}]
    backends: [{name: no-such-service, port: 80}]
  - name: empty
    matches: [{path: {type: PathPrefix, value: /empty}}]
    backends: [{name: empty, port: 80}]
  - name: dead
    matches: [{path: {type: PathPrefix, value: /dead}}]
    backends: [{name: dead, port: 80}]
"
    .to_owned();
    write_atomic(
        dir.path(),
        "errors.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("slow", &[slow.addr]),
            service("empty", &[]),
            service("dead", &[dead]),
            route,
            ingress("ing", "ing.example.com", &[("/", "Prefix", "missing-svc")]),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let send = |path: &'static str,
                headers: &'static [(&'static str, &'static str)],
                host: &'static str| {
        let client = client.clone();
        let addr = gw.http;
        async move {
            client
                .send(addr, Method::GET, host, path, headers, Bytes::new())
                .await
                .unwrap()
        }
    };
    // Within the timeout: served.
    let ok = send("/slow", &[("x-echo-delay-ms", "10")], "api.example.com").await;
    assert_eq!(ok.status, 200);
    // Past the route's 300ms limit: 504.
    let late = send("/slow", &[("x-echo-delay-ms", "3000")], "api.example.com").await;
    assert_eq!(late.status, 504, "{}", late.text());
    assert_eq!(late.text(), "upstream request timeout\n");
    // An ApiRoute backend that does not resolve: 500.
    let ghost = send("/ghost", &[], "api.example.com").await;
    assert_eq!(ghost.status, 500, "{}", ghost.text());
    // A Service without ready endpoints: 503.
    let empty = send("/empty", &[], "api.example.com").await;
    assert_eq!(empty.status, 503, "{}", empty.text());
    assert_eq!(empty.text(), "no healthy upstream\n");
    // An endpoint that refuses connections: 502.
    let dead = send("/dead", &[], "api.example.com").await;
    assert_eq!(dead.status, 502, "{}", dead.text());
    assert_eq!(dead.text(), "upstream connect error\n");
    // An Ingress backend that does not resolve: 503.
    let missing = send("/", &[], "ing.example.com").await;
    assert_eq!(missing.status, 503, "{}", missing.text());
    // Every generated response is short plain text.
    for reply in [&late, &ghost, &empty, &dead, &missing] {
        assert_eq!(reply.headers["content-type"], "text/plain; charset=utf-8");
    }
    // The gateway is still healthy afterwards.
    let again = send("/slow", &[], "api.example.com").await;
    assert_eq!(again.status, 200);
}

/// Sends a request with forged forwarding headers: a POST with a body
/// (its body streams through the general HTTP/1.1 client) or a bodiless
/// GET (the gateway's own keep-alive client).
async fn send_forwarded(gw: &GatewayProcess, method: Method) -> testkit::Echo {
    let body = if method == Method::POST {
        Bytes::from_static(b"hello body")
    } else {
        Bytes::new()
    };
    let reply = HttpClient::new()
        .send(
            gw.http,
            method,
            "h.example.com:8080",
            "/submit?x=1",
            &[
                ("x-forwarded-for", "198.51.100.1, 203.0.113.9"),
                ("x-forwarded-proto", "gopher"),
                ("x-forwarded-host", "forged.example.com"),
                ("x-real-ip", "192.0.2.66"),
                ("traceparent", "00-not-a-trace-01"),
                ("connection", "x-private-hop"),
                ("x-private-hop", "secret"),
                ("keep-alive", "timeout=5"),
                ("x-kept", "yes"),
                ("x-request-id", "trace-me-123"),
            ],
            body,
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.headers["x-request-id"], "trace-me-123",
        "the id comes back to the client"
    );
    reply.echo().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_and_hop_by_hop() {
    let echo = EchoServer::start("h").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "h.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("h", &[echo.addr]),
            ingress("h", "h.example.com", &[("/", "Prefix", "h")]),
        ]),
    );
    // An untrusted peer cannot name the client: its X-Forwarded-For is
    // replaced, and so is every other forwarding header it forged, each
    // sent once.
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    for method in [Method::POST, Method::GET] {
        let echo = send_forwarded(&gw, method.clone()).await;
        assert_eq!(echo.method, method.as_str());
        assert_eq!(echo.path, "/submit");
        assert_eq!(echo.query, "x=1");
        let length = if method == Method::POST { 10 } else { 0 };
        assert_eq!(echo.body_length, length);
        let all = |name: &str| echo.headers.get(name).cloned().unwrap_or_default();
        assert_eq!(all("host"), ["h.example.com:8080"]);
        assert_eq!(all("x-forwarded-for"), ["127.0.0.1"], "{method}");
        assert_eq!(all("x-real-ip"), ["127.0.0.1"], "{method}");
        assert_eq!(all("x-forwarded-proto"), ["http"], "{method}");
        assert_eq!(all("x-forwarded-host"), ["h.example.com:8080"], "{method}");
        assert_eq!(all("x-request-id"), ["trace-me-123"], "{method}");
        let trace = all("traceparent");
        assert_eq!(trace.len(), 1, "{method}: {trace:?}");
        assert_ne!(trace[0], "00-not-a-trace-01", "{method}");
        assert_eq!(all("x-kept"), ["yes"]);
        assert_eq!(echo.header("x-private-hop"), None);
        assert_eq!(echo.header("keep-alive"), None);
    }
    drop(gw);

    // A trusted peer's list is kept and extended; the client is the
    // rightmost untrusted hop.
    let gw = GatewayProcess::standalone(dir.path(), &["--trusted-proxies", "127.0.0.0/8"]).await;
    for method in [Method::POST, Method::GET] {
        let echo = send_forwarded(&gw, method.clone()).await;
        assert_eq!(
            echo.headers["x-forwarded-for"],
            ["198.51.100.1, 203.0.113.9, 127.0.0.1"],
            "{method}"
        );
        assert_eq!(echo.headers["x-real-ip"], ["203.0.113.9"], "{method}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_backends_split_traffic() {
    let heavy = EchoServer::start("heavy").await;
    let light = EchoServer::start("light").await;
    let dir = tempfile::tempdir().unwrap();
    let route = "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: split}
spec:
  ingressClassName: gatehouse
  hostnames: [split.example.com]
  rules:
  - backends:
    - {name: heavy, port: 80, weight: 80}
    - {name: light, port: 80, weight: 20}
    - {name: never, port: 80, weight: 0}
";
    write_atomic(
        dir.path(),
        "split.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("heavy", &[heavy.addr]),
            service("light", &[light.addr]),
            route.to_owned(),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let mut heavy_count = 0;
    let total = 1000;
    for _ in 0..total {
        let reply = client.get(gw.http, "split.example.com", "/").await.unwrap();
        assert_eq!(reply.status, 200, "weight 0 must never be picked");
        if reply.backend().as_deref() == Some("heavy") {
            heavy_count += 1;
        }
    }
    // 80% of 1000 within 5 points (the binomial standard deviation is 12.6
    // requests, so this bound is about 4 sigma).
    assert!(
        (750..=850).contains(&heavy_count),
        "heavy got {heavy_count} of {total}"
    );
}
