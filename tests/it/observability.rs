//! What operators see: `/metrics` after known traffic, access-log lines,
//! W3C trace context and spans at an OTLP collector, and the answers of
//! `/debug/explain`, `gatehouse routes` and `gatehouse explain`.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::{
    EchoServer, GatewayProcess, HttpClient, OtlpCollector, TlsClient, eventually, free_addr,
    run_gatehouse,
};

/// An ApiRoute `shop` with a rule per (name, path, service).
fn route(rules: &[(&str, &str, &str)]) -> String {
    let mut text = "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {name: shop, namespace: default}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"shop.example.com\"]\n  rules:\n".to_owned();
    for (name, path, svc) in rules {
        text.push_str(&format!(
            "  - name: {name}\n    matches: [{{path: {{type: PathPrefix, value: {path}}}}}]\n    backends: [{{name: {svc}, port: 80}}]\n"
        ));
    }
    text
}

fn limit_policy() -> String {
    "apiVersion: gatehouse.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: generous, namespace: default}\nspec:\n  targetRefs: [{kind: ApiRoute, name: shop}]\n  limits: [{name: per-client, key: {type: ClientIP}, rate: {requests: 1000, per: 1s}, burst: 1000}]\n".to_owned()
}

/// A loopback address nothing listens on.
fn dead_addr() -> SocketAddr {
    free_addr()
}

/// Sample lines of an OpenMetrics text, by series (name and labels).
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {samples:#?}"))
}

async fn scrape(gw: &GatewayProcess) -> (String, BTreeMap<String, f64>) {
    let reply = HttpClient::new()
        .get(gw.admin, "localhost", "/metrics")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(
        reply.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        reply.headers
    );
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    (text, s)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_known_traffic_with_bounded_labels() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("echo", &[echo.addr]),
            service("down", &[dead_addr()]),
            route(&[("read", "/orders", "echo"), ("gone", "/down", "down")]),
            // A route whose Service does not exist: a diagnostic.
            route(&[("x", "/", "missing")])
                .replace("name: shop,", "name: broken,")
                .replace("shop.example.com", "broken.example.com"),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();
    for _ in 0..5 {
        let r = c
            .get(gw.http, "shop.example.com", "/orders/1")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    for _ in 0..2 {
        let r = c
            .send(
                gw.http,
                Method::POST,
                "shop.example.com",
                "/orders",
                &[],
                Bytes::from_static(b"{\"item\":1}"),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
    }
    for i in 0..3 {
        let r = c
            .get(gw.http, "unknown.example.net", &format!("/missing/{i}"))
            .await
            .unwrap();
        assert_eq!(r.status, 404);
    }
    for _ in 0..2 {
        let r = c.get(gw.http, "shop.example.com", "/down").await.unwrap();
        assert_eq!(r.status, 502);
    }
    // One TLS handshake with the generated default certificate.
    let mut conn = TlsClient::default().connect(gw.https, None).await.unwrap();
    let _ = conn.get("shop.example.com", "/orders").await.unwrap();
    drop(conn);

    let read = "route=\"apiroute/default/shop/rule/read\",namespace=\"default\"";
    let gone = "route=\"apiroute/default/shop/rule/gone\",namespace=\"default\"";
    // Durations are recorded when the response body is done, a moment
    // after the client has it.
    let mut scraped = scrape(&gw).await;
    for _ in 0..100 {
        if scraped.1.get("gatehouse_requests_active") == Some(&0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        scraped = scrape(&gw).await;
    }
    let (text, s) = scraped;
    let get_2xx = format!("{read},method=\"GET\",status_class=\"2xx\"");
    // Five over HTTP and one over HTTPS.
    assert_eq!(
        value(&s, &format!("gatehouse_requests_total{{{get_2xx}}}")),
        6.0
    );
    assert_eq!(
        value(
            &s,
            &format!("gatehouse_request_duration_seconds_count{{{get_2xx}}}")
        ),
        6.0
    );
    assert_eq!(
        value(
            &s,
            &format!("gatehouse_request_duration_seconds_bucket{{le=\"+Inf\",{get_2xx}}}")
        ),
        6.0
    );
    assert_eq!(
        value(
            &s,
            &format!("gatehouse_requests_total{{{read},method=\"POST\",status_class=\"2xx\"}}")
        ),
        2.0
    );
    assert_eq!(
        value(
            &s,
            "gatehouse_requests_total{route=\"unmatched\",namespace=\"\",method=\"GET\",status_class=\"4xx\"}"
        ),
        3.0
    );
    assert_eq!(
        value(
            &s,
            &format!("gatehouse_requests_total{{{gone},method=\"GET\",status_class=\"5xx\"}}")
        ),
        2.0
    );
    assert_eq!(value(&s, "gatehouse_requests_active"), 0.0);

    // Upstreams by backend: seven answers from echo, two refused
    // connections to the dead endpoint.
    let backend = |prefix: &str, needle: &str| {
        s.iter()
            .find(|(k, _)| k.starts_with(prefix) && k.contains(needle))
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {prefix} series for {needle} in {text}"))
    };
    assert_eq!(
        backend("gatehouse_upstream_request_duration_seconds_count{", "echo"),
        8.0
    );
    assert_eq!(
        backend("gatehouse_upstream_connect_errors_total{", "down"),
        2.0
    );

    assert!(value(&s, "gatehouse_connections_total{listener=\"http\"}") >= 1.0);
    assert_eq!(
        value(&s, "gatehouse_connections_total{listener=\"https\"}"),
        1.0
    );
    assert_eq!(
        value(
            &s,
            "gatehouse_tls_handshakes_total{result=\"success\",version=\"TLSv1.3\"}"
        ),
        1.0
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        value(
            &s,
            "gatehouse_tls_certificate_expiry_timestamp_seconds{certificate=\"default\"}"
        ) > now
    );
    assert!(value(&s, "gatehouse_snapshot_publishes_total") >= 1.0);
    assert!(value(&s, "gatehouse_snapshot_generation") >= 1.0);
    assert!(value(&s, "gatehouse_snapshot_build_duration_seconds_count") >= 1.0);
    assert_eq!(value(&s, "gatehouse_snapshot_routes"), 3.0);
    assert!(
        value(
            &s,
            "gatehouse_diagnostics{kind=\"ApiRoute\",severity=\"error\"}"
        ) >= 1.0
    );
    assert!(s.contains_key("gatehouse_controller_watch_events_total{resource=\"files\"}"));
    assert_eq!(value(&s, "gatehouse_build_info{version=\"0.1.0\"}"), 1.0);
    // Families without labels are listed from the start; labelled ones
    // once a series exists.
    for family in [
        "gatehouse_ratelimit_rejected",
        "gatehouse_cache_hits",
        "gatehouse_cache_misses",
        "gatehouse_controller_watch_errors",
        "gatehouse_access_log_dropped",
        "gatehouse_trace_spans_dropped",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} counter\n")),
            "{family} missing"
        );
    }

    // Labels come from the configuration, never from requests.
    for from_request in [
        "unknown.example.net",
        "/missing",
        "/orders/1",
        "shop.example.com",
    ] {
        assert!(
            !text.contains(from_request),
            "{from_request} leaked into a label"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn access_log_lines_in_json_and_common_format_with_sampling() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("echo", &[echo.addr]),
            route(&[("read", "/", "echo")]),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();
    let posted = Bytes::from_static(b"{\"order\":\"one\"}");
    let reply = c
        .send(
            gw.http,
            Method::POST,
            "shop.example.com",
            "/orders?api_key=query-secret-123",
            &[
                ("authorization", "Bearer header-secret-456"),
                ("x-api-key", "key-secret-789"),
            ],
            posted.clone(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let request_id = reply.headers["x-request-id"].to_str().unwrap().to_owned();
    let r = c.get(gw.http, "nothing.example.com", "/x").await.unwrap();
    assert_eq!(r.status, 404);

    let mut lines = Vec::new();
    eventually(Duration::from_secs(5), "two access-log lines", || {
        lines = gw
            .stdout()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect::<Vec<_>>();
        std::future::ready(lines.len() >= 2)
    })
    .await;
    let line = lines
        .iter()
        .find(|l| l["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no line for {request_id}: {lines:#?}"));
    assert_eq!(line["method"], "POST");
    assert_eq!(line["host"], "shop.example.com");
    assert_eq!(line["path"], "/orders", "the query string is not logged");
    assert_eq!(line["protocol"], "HTTP/1.1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["client"], "127.0.0.1");
    assert_eq!(line["bytes_in"], posted.len() as u64);
    assert_eq!(line["bytes_out"], reply.body.len() as u64);
    assert_eq!(line["upstream"], echo.addr.to_string());
    assert_eq!(line["route"], "apiroute/default/shop/rule/read");
    assert!(
        line["duration_ms"].as_f64().unwrap() >= line["upstream_duration_ms"].as_f64().unwrap()
    );
    assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
    assert!(line["time"].as_str().unwrap().ends_with('Z'));
    let miss = lines.iter().find(|l| l["status"] == 404).unwrap();
    assert_eq!(miss["route"], serde_json::Value::Null);
    assert_eq!(miss["upstream"], serde_json::Value::Null);
    let out = gw.stdout();
    for secret in ["query-secret-123", "header-secret-456", "key-secret-789"] {
        assert!(!out.contains(secret), "{secret} in the access log");
    }
    assert!(!gw.logs().contains("header-secret-456"));
    drop(gw);

    // Common Log Format, and sampling that keeps every error but no
    // successes.
    let gw = GatewayProcess::standalone(
        dir.path(),
        &["--access-log", "common", "--access-log-sample", "0"],
    )
    .await;
    for _ in 0..20 {
        assert_eq!(
            c.get(gw.http, "shop.example.com", "/a")
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(
        c.get(gw.http, "nothing.example.com", "/b")
            .await
            .unwrap()
            .status,
        404
    );
    eventually(Duration::from_secs(5), "the 404 line", || {
        std::future::ready(gw.stdout().contains("\"GET /b HTTP/1.1\" 404"))
    })
    .await;
    let out = gw.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "only the error is logged: {out}");
    let re = regex::Regex::new(
        r#"^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET /b HTTP/1\.1" 404 \d+$"#,
    )
    .unwrap();
    assert!(re.is_match(lines[0]), "{}", lines[0]);
    drop(gw);

    let gw = GatewayProcess::standalone(dir.path(), &["--access-log", "off"]).await;
    assert_eq!(
        c.get(gw.http, "nothing.example.com", "/c")
            .await
            .unwrap()
            .status,
        404
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gw.stdout(), "");
}

/// GET `path` from shop.example.com through `gw` with `headers`.
async fn get_shop(
    c: &HttpClient,
    gw: &GatewayProcess,
    path: &str,
    headers: &[(&str, &str)],
) -> testkit::Reply {
    c.send(
        gw.http,
        Method::GET,
        "shop.example.com",
        path,
        headers,
        Bytes::new(),
    )
    .await
    .unwrap()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn traceparent_parts(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    assert_eq!(parts[0], "00", "{v}");
    assert_eq!(parts[1].len(), 32, "{v}");
    assert_eq!(parts[2].len(), 16, "{v}");
    (
        parts[1].to_owned(),
        parts[2].to_owned(),
        parts[3].to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn traceparent_is_continued_or_started_and_spans_reach_the_collector() {
    let collector = OtlpCollector::start().await;
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("echo", &[echo.addr]),
            route(&[("read", "/", "echo")]),
            limit_policy(),
        ]),
    );
    let gw = GatewayProcess::standalone(
        dir.path(),
        &[
            "--otlp-endpoint",
            &collector.endpoint(),
            "--service-name",
            "edge",
        ],
    )
    .await;
    let c = HttpClient::new();

    // Continue the caller's sampled trace.
    let incoming = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let reply = get_shop(
        &c,
        &gw,
        "/traced",
        &[("traceparent", &incoming), ("tracestate", "vendor=opaque")],
    )
    .await;
    assert_eq!(reply.status, 200);
    let seen = reply.echo().unwrap();
    let (trace, upstream_parent, flags) = traceparent_parts(seen.header("traceparent").unwrap());
    assert_eq!(trace, TRACE);
    assert_ne!(
        upstream_parent, CALLER_SPAN,
        "the gateway is a hop of its own"
    );
    assert_eq!(flags, "01");
    assert_eq!(seen.header("tracestate"), Some("vendor=opaque"));

    let spans = collector
        .wait_for(Duration::from_secs(10), "three spans of the trace", |s| {
            s.iter().filter(|s| s.trace_id == TRACE).count() >= 3
        })
        .await;
    let of_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == TRACE).collect();
    let server = of_trace.iter().find(|s| s.kind == 2).unwrap();
    assert_eq!(server.parent_span_id, CALLER_SPAN);
    assert_eq!(server.service, "edge");
    assert_eq!(server.attributes["http.request.method"], "GET");
    assert_eq!(server.attributes["url.path"], "/traced");
    assert_eq!(server.attributes["http.response.status_code"], "200");
    assert_eq!(
        server.attributes["gatehouse.route"],
        "apiroute/default/shop/rule/read"
    );
    assert!(server.end >= server.start);
    let attempt = of_trace.iter().find(|s| s.kind == 3).unwrap();
    assert_eq!(attempt.name, "upstream attempt");
    assert_eq!(attempt.parent_span_id, server.span_id);
    assert_eq!(
        attempt.span_id, upstream_parent,
        "the upstream's parent is the attempt span"
    );
    assert_eq!(
        attempt.attributes["server.port"],
        echo.addr.port().to_string()
    );
    let limit = of_trace.iter().find(|s| s.name == "rate limit").unwrap();
    assert_eq!(limit.kind, 1);
    assert_eq!(limit.parent_span_id, server.span_id);
    assert_eq!(limit.attributes["gatehouse.rate_limited"], "false");

    // No traceparent: a new trace, passed upstream and exported as a root.
    let reply = c.get(gw.http, "shop.example.com", "/fresh").await.unwrap();
    let seen = reply.echo().unwrap();
    let (fresh, _, flags) = traceparent_parts(seen.header("traceparent").unwrap());
    assert_ne!(fresh, TRACE);
    assert_ne!(fresh, "0".repeat(32));
    assert_eq!(flags, "01");
    collector
        .wait_for(Duration::from_secs(10), "the new trace's root span", |s| {
            s.iter()
                .any(|s| s.trace_id == fresh && s.kind == 2 && s.parent_span_id.is_empty())
        })
        .await;

    // The caller did not sample: the trace id still travels, nothing is
    // exported for it.
    let unsampled = "0af7651916cd43dd8448eb211c80319c";
    let reply = get_shop(
        &c,
        &gw,
        "/quiet",
        &[(
            "traceparent",
            &format!("00-{unsampled}-b7ad6b7169203331-00"),
        )],
    )
    .await;
    let (trace, _, flags) = traceparent_parts(reply.echo().unwrap().header("traceparent").unwrap());
    assert_eq!((trace.as_str(), flags.as_str()), (unsampled, "00"));
    // A malformed traceparent is replaced, not forwarded.
    let reply = get_shop(&c, &gw, "/bad", &[("traceparent", "00-not-a-trace-01")]).await;
    let (bad, _, _) = traceparent_parts(reply.echo().unwrap().header("traceparent").unwrap());
    collector
        .wait_for(Duration::from_secs(10), "the replaced trace", |s| {
            s.iter().any(|s| s.trace_id == bad && s.kind == 2)
        })
        .await;
    // Spans leave in order; the unsampled request came before.
    assert!(collector.spans().iter().all(|s| s.trace_id != unsampled));
    assert!(
        collector.rejected().is_empty(),
        "{:?}",
        collector.rejected()
    );

    // The access log names the same trace.
    eventually(
        Duration::from_secs(5),
        "the traced request's log line",
        || {
            std::future::ready(gw.stdout().lines().any(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["path"] == "/traced" && v["trace_id"] == TRACE
            }))
        },
    )
    .await;
    let (_, s) = scrape(&gw).await;
    assert!(value(&s, "gatehouse_trace_spans_exported_total") >= 7.0);
    assert_eq!(value(&s, "gatehouse_trace_spans_dropped_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_collector_drops_spans_and_never_slows_requests() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("echo", &[echo.addr]),
            route(&[("read", "/", "echo")]),
        ]),
    );
    let endpoint = format!("http://{}", dead_addr());
    let gw = GatewayProcess::standalone(dir.path(), &["--otlp-endpoint", &endpoint]).await;
    let c = HttpClient::new();
    for _ in 0..20 {
        assert_eq!(
            c.get(gw.http, "shop.example.com", "/")
                .await
                .unwrap()
                .status,
            200
        );
    }
    // Twenty requests, two spans each (request and upstream attempt).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, s) = scrape(&gw).await;
        let dropped = value(&s, "gatehouse_trace_spans_dropped_total");
        if dropped >= 40.0 {
            assert_eq!(value(&s, "gatehouse_trace_spans_exported_total"), 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{dropped} spans dropped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gw.logs().contains("trace export failed"), "{}", gw.logs());
}

#[tokio::test(flavor = "multi_thread")]
async fn explain_and_routes_answer_for_matching_and_other_requests() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("echo", &[echo.addr]),
            route(&[("read", "/orders", "echo"), ("all", "/", "echo")]),
            limit_policy(),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();
    let explain = |q: &str| {
        let c = c.clone();
        let admin = gw.admin;
        let q = q.to_owned();
        async move {
            let r = c
                .get(admin, "localhost", &format!("/debug/explain?{q}"))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()
        }
    };
    let hit = explain("host=shop.example.com:8080&path=/orders/7&method=GET").await;
    assert_eq!(hit["route"]["id"], "apiroute/default/shop/rule/read");
    assert_eq!(hit["virtualHost"]["matchedBy"], "exact");
    assert_eq!(
        hit["entries"].as_array().unwrap().last().unwrap()["result"],
        "matched"
    );
    assert_eq!(
        hit["route"]["backends"][0]["endpoints"][0],
        echo.addr.to_string()
    );
    assert!(
        hit["route"]["policies"][0]
            .as_str()
            .unwrap()
            .starts_with("rateLimit"),
        "{hit:#}"
    );
    let other = explain("host=shop.example.com&path=/elsewhere").await;
    assert_eq!(other["route"]["id"], "apiroute/default/shop/rule/all");
    let skipped = &other["entries"][0];
    assert_eq!(skipped["result"], "skipped");
    assert!(
        skipped["reason"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    let none = explain("host=nope.example.com&path=/").await;
    assert_eq!(none["route"], serde_json::Value::Null);
    assert!(none["summary"].as_str().unwrap().contains("404"));
    let bad = c
        .get(gw.admin, "localhost", "/debug/explain?path=/x")
        .await
        .unwrap();
    assert_eq!(bad.status, 400);

    // The CLI asks the same endpoint.
    let admin = gw.admin.to_string();
    let (status, out) = run_gatehouse(&["routes", "--admin-addr", &admin]);
    assert!(status.success(), "{out}");
    let header = out.lines().next().unwrap();
    assert!(
        header.starts_with("HOST") && header.contains("ROUTE"),
        "{out}"
    );
    assert!(out.contains("apiroute/default/shop/rule/read"), "{out}");
    assert!(out.contains("prefix /orders"), "{out}");
    let (status, out) = run_gatehouse(&[
        "explain",
        "--admin-addr",
        &admin,
        "--host",
        "shop.example.com",
        "--path",
        "/orders/1",
    ]);
    assert!(status.success(), "{out}");
    assert!(
        out.contains("goes to apiroute/default/shop/rule/read"),
        "{out}"
    );
    assert!(out.contains(&echo.addr.to_string()), "{out}");
    let (status, out) = run_gatehouse(&[
        "explain",
        "--admin-addr",
        &admin,
        "--host",
        "nope.example.com",
        "-o",
        "json",
    ]);
    assert_eq!(status.code(), Some(1), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["route"], serde_json::Value::Null);
    let (status, out) = run_gatehouse(&["routes", "--admin-addr", &dead_addr().to_string()]);
    assert!(!status.success());
    assert!(out.contains("cannot reach the admin endpoint"), "{out}");
}
