//! Traffic management through the real binary: retries and their budget,
//! passive and active health checking, every load balancer, consistent
//! hashing under endpoint changes, session affinity and body limits.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, eventually, free_addr};

/// A Service over the given endpoints (any ports), with one slice each.
fn service(name: &str, endpoints: &[std::net::SocketAddr]) -> String {
    testkit::manifests::service(name, endpoints)
}

fn route(name: &str, host: &str, rules: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  rules:\n{rules}"
    )
}

async fn gateway(parts: &[String]) -> (GatewayProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec![INGRESS_CLASS.to_owned()];
    all.extend_from_slice(parts);
    write_atomic(dir.path(), "c.yaml", &docs(&all));
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    (gw, dir)
}

async fn spread(
    gw: &GatewayProcess,
    host: &str,
    n: usize,
    headers: &[(&str, &str)],
) -> HashMap<String, usize> {
    let client = HttpClient::new();
    let mut counts = HashMap::new();
    for _ in 0..n {
        let r = client
            .send(gw.http, Method::GET, host, "/", headers, Bytes::new())
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        *counts.entry(r.backend().unwrap()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_reach_a_live_endpoint() {
    let live = EchoServer::start("live").await;
    let dead = free_addr();
    let (gw, _dir) = gateway(&[
        service("mixed", &[live.addr, dead]),
        // A full budget: this test is about retries reaching the live
        // endpoint; the budget has its own test.
        route("with", "with.example.com", "  - retry: {attempts: 2, on: [connect-failure], budgetPercent: 100}\n    outlierDetection: {consecutiveFailures: 0}\n    backends: [{name: mixed, port: 80}]\n"),
        route("without", "without.example.com", "  - outlierDetection: {consecutiveFailures: 0}\n    backends: [{name: mixed, port: 80}]\n"),
    ])
    .await;
    let client = HttpClient::new();
    for i in 0..30 {
        let r = client
            .send(
                gw.http,
                Method::POST,
                "with.example.com",
                "/",
                &[],
                Bytes::from(format!("body {i}")),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(
            r.echo().unwrap().body_length,
            format!("body {i}").len() as u64,
            "the body is replayed whole"
        );
    }
    // Without retries, round robin sends half of the requests to the dead
    // endpoint.
    let mut failed = 0;
    for _ in 0..10 {
        if client
            .get(gw.http, "without.example.com", "/")
            .await
            .unwrap()
            .status
            == 502
        {
            failed += 1;
        }
    }
    assert_eq!(failed, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_budget_limits_retries_under_total_failure() {
    let a = EchoServer::start("a").await;
    let b = EchoServer::start("b").await;
    a.fail_with(Some(503));
    b.fail_with(Some(503));
    let (gw, _dir) = gateway(&[
        service("down", &[a.addr, b.addr]),
        route(
            "r",
            "r.example.com",
            "  - retry: {attempts: 5, on: [gateway-error], budgetPercent: 20, backoff: {base: 1ms, max: 2ms}}\n    outlierDetection: {consecutiveFailures: 0}\n    backends: [{name: down, port: 80}]\n",
        ),
    ])
    .await;
    let client = HttpClient::new();
    let requests = 300u64;
    for _ in 0..requests {
        let r = client.get(gw.http, "r.example.com", "/").await.unwrap();
        assert_eq!(r.status, 503);
    }
    let upstream = a.requests() + b.requests();
    let retries = upstream - requests;
    // 20% of 300 = 60, plus the initial allowance of 10 and about one per
    // second of the run.
    assert!(retries >= 10, "retries happened: {retries}");
    assert!(
        retries <= 60 + 10 + 15,
        "the budget capped retries: {retries} for {requests} requests"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn outliers_are_ejected_and_come_back() {
    let good1 = EchoServer::start("good1").await;
    let good2 = EchoServer::start("good2").await;
    let flaky = EchoServer::start("flaky").await;
    let (gw, _dir) = gateway(&[
        service("pool", &[good1.addr, good2.addr, flaky.addr]),
        route(
            "r",
            "o.example.com",
            "  - outlierDetection: {consecutiveFailures: 3, baseEjectionTime: 1s, maxEjectionPercent: 50}\n    backends: [{name: pool, port: 80}]\n",
        ),
    ])
    .await;
    let client = HttpClient::new();
    flaky.fail_with(Some(503));
    // Round robin: the flaky endpoint fails its third request and is out.
    let mut failures = 0;
    for _ in 0..30 {
        if client
            .get(gw.http, "o.example.com", "/")
            .await
            .unwrap()
            .status
            == 503
        {
            failures += 1;
        }
    }
    assert_eq!(failures, 3, "ejected after three consecutive failures");
    let before = flaky.requests();
    for _ in 0..20 {
        assert_eq!(
            client
                .get(gw.http, "o.example.com", "/")
                .await
                .unwrap()
                .status,
            200
        );
    }
    assert_eq!(flaky.requests(), before, "no traffic while ejected");
    // Healthy again and past the ejection time: it gets traffic back.
    flaky.fail_with(None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let counts = spread(&gw, "o.example.com", 30, &[]).await;
    assert_eq!(counts.get("flaky").copied().unwrap_or(0), 10, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn active_health_checks_remove_and_restore_endpoints() {
    let good = EchoServer::start("good").await;
    let sick = EchoServer::start("sick").await;
    let (gw, _dir) = gateway(&[
        service("pool", &[good.addr, sick.addr]),
        route(
            "r",
            "h.example.com",
            "  - healthCheck: {path: /healthz, interval: 200ms, timeout: 1s, unhealthyThreshold: 2, healthyThreshold: 1}\n    backends: [{name: pool, port: 80}]\n",
        ),
    ])
    .await;
    sick.fail_with(Some(500));
    let client = HttpClient::new();
    eventually(
        Duration::from_secs(5),
        "the failing endpoint leaves rotation",
        || {
            let client = client.clone();
            async move {
                let mut all_good = true;
                for _ in 0..6 {
                    let r = client.get(gw.http, "h.example.com", "/").await.unwrap();
                    all_good &= r.status == 200 && r.backend().as_deref() == Some("good");
                }
                all_good
            }
        },
    )
    .await;
    sick.fail_with(None);
    eventually(
        Duration::from_secs(5),
        "the endpoint returns once its checks pass",
        || {
            let client = client.clone();
            async move {
                let mut seen_sick = false;
                for _ in 0..6 {
                    seen_sick |= client
                        .get(gw.http, "h.example.com", "/")
                        .await
                        .unwrap()
                        .backend()
                        .as_deref()
                        == Some("sick");
                }
                seen_sick
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn balancers_distribute_as_designed() {
    let fast1 = EchoServer::start("fast1").await;
    let fast2 = EchoServer::start("fast2").await;
    let fast3 = EchoServer::start("fast3").await;
    let slow = EchoServer::start_slow("slow", Duration::from_millis(150)).await;
    let (gw, _dir) = gateway(&[
        service("pool", &[fast1.addr, fast2.addr, fast3.addr]),
        service("mixed", &[fast1.addr, fast2.addr, slow.addr]),
        route("rr", "rr.example.com", "  - backends: [{name: pool, port: 80}]\n"),
        route("rand", "random.example.com", "  - loadBalancer: {policy: Random}\n    backends: [{name: pool, port: 80}]\n"),
        route("lr", "lr.example.com", "  - loadBalancer: {policy: LeastRequest}\n    backends: [{name: mixed, port: 80}]\n"),
        route("ewma", "ewma.example.com", "  - loadBalancer: {policy: PeakEwma}\n    backends: [{name: mixed, port: 80}]\n"),
        route("hash", "hash.example.com", "  - loadBalancer: {policy: ConsistentHash, consistentHash: {header: x-user}}\n    backends: [{name: pool, port: 80}]\n"),
        route("sticky", "sticky.example.com", "  - loadBalancer: {sessionAffinity: {cookieName: gh, ttl: 1h}}\n    backends: [{name: pool, port: 80}]\n"),
    ])
    .await;

    // Round robin: exactly even.
    let rr = spread(&gw, "rr.example.com", 30, &[]).await;
    assert!(rr.values().all(|&c| c == 10), "{rr:?}");
    // Random: every endpoint, roughly a third each.
    let random = spread(&gw, "random.example.com", 300, &[]).await;
    assert!(
        random.values().all(|&c| (60..=140).contains(&c)),
        "{random:?}"
    );

    // Under concurrent load the slow endpoint holds requests longer, so
    // the least-request and latency-aware balancers send it less.
    for host in ["lr.example.com", "ewma.example.com"] {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let addr = gw.http;
            tasks.push(tokio::spawn(async move {
                let client = HttpClient::new();
                let mut counts: HashMap<String, usize> = HashMap::new();
                for _ in 0..30 {
                    let r = client.get(addr, host, "/").await.unwrap();
                    *counts.entry(r.backend().unwrap()).or_default() += 1;
                }
                counts
            }));
        }
        let mut total: HashMap<String, usize> = HashMap::new();
        for t in tasks {
            for (k, v) in t.await.unwrap() {
                *total.entry(k).or_default() += v;
            }
        }
        let slow_share = total.get("slow").copied().unwrap_or(0) as f64 / 240.0;
        assert!(
            slow_share < 0.2,
            "{host}: slow endpoint got {slow_share:.2} of requests: {total:?}"
        );
    }

    // Consistent hash: a key always lands on the same endpoint; keys spread.
    let client = HttpClient::new();
    let mut owner: HashMap<String, String> = HashMap::new();
    for round in 0..3 {
        for user in 0..60 {
            let key = format!("user-{user}");
            let r = client
                .send(
                    gw.http,
                    Method::GET,
                    "hash.example.com",
                    "/",
                    &[("x-user", &key)],
                    Bytes::new(),
                )
                .await
                .unwrap();
            let backend = r.backend().unwrap();
            if round == 0 {
                owner.insert(key, backend);
            } else {
                assert_eq!(owner[&key], backend, "{key} moved without a change");
            }
        }
    }
    let mut per_backend: HashMap<&str, usize> = HashMap::new();
    for b in owner.values() {
        *per_backend.entry(b).or_default() += 1;
    }
    assert_eq!(per_backend.len(), 3, "{per_backend:?}");

    // Session affinity: the cookie pins the client to its first endpoint.
    let first = client
        .get(gw.http, "sticky.example.com", "/")
        .await
        .unwrap();
    let cookie = first.headers["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.starts_with("gh=") && cookie.contains("Max-Age=3600") && cookie.contains("HttpOnly"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let pinned = first.backend().unwrap();
    for _ in 0..12 {
        let r = client
            .send(
                gw.http,
                Method::GET,
                "sticky.example.com",
                "/",
                &[("cookie", &pair)],
                Bytes::new(),
            )
            .await
            .unwrap();
        assert_eq!(r.backend().unwrap(), pinned);
        assert!(
            !r.headers.contains_key("set-cookie"),
            "a valid cookie is not reissued"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consistent_hash_moves_few_keys_when_an_endpoint_joins() {
    let echoes: Vec<EchoServer> = futures_util::future::join_all(
        (0..5).map(|i| EchoServer::start(Box::leak(format!("e{i}").into_boxed_str()))),
    )
    .await;
    let addrs: Vec<_> = echoes.iter().map(|e| e.addr).collect();
    let config = |n: usize| {
        vec![
            INGRESS_CLASS.to_owned(),
            service("pool", &addrs[..n]),
            route(
                "h",
                "hash.example.com",
                "  - loadBalancer: {policy: ConsistentHash, consistentHash: {header: x-key}}\n    backends: [{name: pool, port: 80}]\n",
            ),
        ]
    };
    let dir = tempfile::tempdir().unwrap();
    write_atomic(dir.path(), "c.yaml", &docs(&config(4)));
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let owners = |client: HttpClient| async move {
        let mut m = HashMap::new();
        for k in 0..400 {
            let key = format!("k{k}");
            let r = client
                .send(
                    gw.http,
                    Method::GET,
                    "hash.example.com",
                    "/",
                    &[("x-key", &key)],
                    Bytes::new(),
                )
                .await
                .unwrap();
            m.insert(key, r.backend().unwrap());
        }
        m
    };
    let before = owners(client.clone()).await;
    write_atomic(dir.path(), "c.yaml", &docs(&config(5)));
    eventually(Duration::from_secs(2), "the fifth endpoint serves", || {
        let n = echoes[4].requests();
        let client = client.clone();
        async move {
            for k in 0..20 {
                let _ = client
                    .send(
                        gw.http,
                        Method::GET,
                        "hash.example.com",
                        "/",
                        &[("x-key", &format!("probe{k}"))],
                        Bytes::new(),
                    )
                    .await;
            }
            n > 0
        }
    })
    .await;
    let after = owners(client).await;
    let moved = before.iter().filter(|(k, v)| after[*k] != **v).count();
    let to_new = before.iter().filter(|(k, _)| after[*k] == "e4").count();
    // Ideal: 1/5 of keys move, all of them to the new endpoint.
    assert_eq!(moved, to_new, "keys only move to the new endpoint");
    let share = moved as f64 / 400.0;
    assert!((0.08..0.35).contains(&share), "{moved} of 400 keys moved");
}

#[tokio::test(flavor = "multi_thread")]
async fn body_limits_answer_413() {
    let echo = EchoServer::start("b").await;
    let (gw, _dir) = gateway(&[
        service("b", &[echo.addr]),
        route(
            "r",
            "limit.example.com",
            "  - limits: {maxBodyBytes: 1000}\n    backends: [{name: b, port: 80}]\n",
        ),
    ])
    .await;
    let client = HttpClient::new();
    let ok = client
        .send(
            gw.http,
            Method::POST,
            "limit.example.com",
            "/",
            &[],
            Bytes::from(vec![1u8; 1000]),
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let too_big = client
        .send(
            gw.http,
            Method::POST,
            "limit.example.com",
            "/",
            &[],
            Bytes::from(vec![1u8; 1001]),
        )
        .await
        .unwrap();
    assert_eq!(too_big.status, 413);
    // Without Content-Length (chunked), the limit trips while streaming.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(gw.http).await.unwrap();
    s.write_all(format!("POST / HTTP/1.1\r\nHost: limit.example.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7d0\r\n{}\r\n0\r\n\r\n", "x".repeat(2000)).as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_removed_endpoint_finishes_its_requests_and_gets_no_new_ones() {
    let leaving = EchoServer::start("leaving").await;
    let staying = EchoServer::start("staying").await;
    let dir = tempfile::tempdir().unwrap();
    let config = |endpoints: &[std::net::SocketAddr]| {
        docs(&[
            INGRESS_CLASS.to_owned(),
            service("pool", endpoints),
            route(
                "r",
                "drain.example.com",
                "  - backends: [{name: pool, port: 80}]\n",
            ),
        ])
    };
    write_atomic(dir.path(), "c.yaml", &config(&[leaving.addr]));
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    // A slow request is in flight on the endpoint about to leave.
    let addr = gw.http;
    let in_flight = tokio::spawn(async move {
        HttpClient::new()
            .send(
                addr,
                Method::GET,
                "drain.example.com",
                "/",
                &[("x-echo-delay-ms", "1500")],
                Bytes::new(),
            )
            .await
    });
    eventually(
        Duration::from_secs(5),
        "the slow request reached the endpoint",
        || {
            let n = leaving.requests();
            async move { n == 1 }
        },
    )
    .await;
    write_atomic(dir.path(), "c.yaml", &config(&[staying.addr]));
    let client = HttpClient::new();
    eventually(
        Duration::from_secs(2),
        "new requests go to the remaining endpoint",
        || {
            let client = client.clone();
            async move {
                client
                    .get(addr, "drain.example.com", "/")
                    .await
                    .is_ok_and(|r| r.backend().as_deref() == Some("staying"))
            }
        },
    )
    .await;
    let before = leaving.requests();
    for _ in 0..10 {
        assert_eq!(
            client
                .get(addr, "drain.example.com", "/")
                .await
                .unwrap()
                .backend()
                .as_deref(),
            Some("staying")
        );
    }
    assert_eq!(
        leaving.requests(),
        before,
        "no new request reached the removed endpoint"
    );
    let done = in_flight.await.unwrap().unwrap();
    assert_eq!(done.status, 200, "the request in flight finished");
    assert_eq!(done.backend().as_deref(), Some("leaving"));
}
