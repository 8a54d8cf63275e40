//! Response caching: hits and misses, Cache-Control, Vary, coalescing,
//! purge, and invalidation when the rule changes.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, Reply};

fn cached_route(name: &str, host: &str, service: &str, cache: &str, filters: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  rules:\n  - cache: {cache}\n{filters}    backends: [{{name: {service}, port: 80}}]\n"
    )
}

fn config(ttl: &str, slow: &EchoServer, echo: &EchoServer) -> String {
    docs(&[
        INGRESS_CLASS.to_owned(),
        service("svc", &[echo.addr]),
        service("slow", &[slow.addr]),
        cached_route(
            "c",
            "cache.example.com",
            "svc",
            &format!("{{ttl: {ttl}, key: {{headers: [x-tenant]}}}}"),
            "",
        ),
        cached_route(
            "nostore",
            "nostore.example.com",
            "svc",
            "{ttl: 60s}",
            "    filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier: {set: [{name: cache-control, value: no-store}]}\n",
        ),
        cached_route(
            "vary",
            "vary.example.com",
            "svc",
            "{ttl: 60s}",
            "    filters:\n    - type: ResponseHeaderModifier\n      responseHeaderModifier: {set: [{name: vary, value: Accept-Language}]}\n",
        ),
        cached_route("slow", "slow.example.com", "slow", "{ttl: 60s}", ""),
        cached_route(
            "capped",
            "capped.example.com",
            "svc",
            "{ttl: 60s, maxTotalBytes: 3000}",
            "",
        ),
    ])
}

async fn get(
    c: &HttpClient,
    gw: &GatewayProcess,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    c.send(gw.http, Method::GET, host, path, headers, Bytes::new())
        .await
        .unwrap()
}

fn x_cache(r: &Reply) -> &str {
    r.headers.get("x-cache").map_or("", |v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn hits_misses_directives_vary_coalescing_purge_and_invalidation() {
    let echo = EchoServer::start("echo").await;
    let slow = EchoServer::start_slow("slow", Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(dir.path(), "config.yaml", &config("60s", &slow, &echo));
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();

    // Miss, then hit with the same body and an Age; the query's order does
    // not matter, a listed header does.
    let first = get(&c, &gw, "cache.example.com", "/a?x=1&y=2", &[]).await;
    assert_eq!((first.status.as_u16(), x_cache(&first)), (200, "MISS"));
    let hit = get(&c, &gw, "cache.example.com", "/a?y=2&x=1", &[]).await;
    assert_eq!(x_cache(&hit), "HIT");
    assert_eq!(hit.body, first.body);
    assert_eq!(hit.headers["age"], "0");
    assert_eq!(echo.requests(), 1);
    let other = get(
        &c,
        &gw,
        "cache.example.com",
        "/a?x=1&y=2",
        &[("x-tenant", "b")],
    )
    .await;
    assert_eq!(x_cache(&other), "MISS");
    // HEAD is answered from the entry, without a body.
    let head = c
        .send(
            gw.http,
            Method::HEAD,
            "cache.example.com",
            "/a?x=1&y=2",
            &[],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!((x_cache(&head), head.body.len()), ("HIT", 0));
    // A client asking for a fresh answer goes upstream.
    let before = echo.requests();
    let r = get(
        &c,
        &gw,
        "cache.example.com",
        "/a?x=1&y=2",
        &[("cache-control", "no-cache")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(echo.requests(), before + 1);

    // no-store responses are never stored.
    for _ in 0..2 {
        let r = get(&c, &gw, "nostore.example.com", "/", &[]).await;
        assert_eq!(x_cache(&r), "MISS");
    }

    // Vary: one variant per Accept-Language.
    let en = get(
        &c,
        &gw,
        "vary.example.com",
        "/v",
        &[("accept-language", "en")],
    )
    .await;
    let de = get(
        &c,
        &gw,
        "vary.example.com",
        "/v",
        &[("accept-language", "de")],
    )
    .await;
    assert_eq!((x_cache(&en), x_cache(&de)), ("MISS", "MISS"));
    let en2 = get(
        &c,
        &gw,
        "vary.example.com",
        "/v",
        &[("accept-language", "en")],
    )
    .await;
    let de2 = get(
        &c,
        &gw,
        "vary.example.com",
        "/v",
        &[("accept-language", "de")],
    )
    .await;
    assert_eq!((x_cache(&en2), x_cache(&de2)), ("HIT", "HIT"));
    assert_eq!(en2.echo().unwrap().header("accept-language"), Some("en"));
    assert_eq!(de2.echo().unwrap().header("accept-language"), Some("de"));

    // 50 concurrent misses for one key: one upstream request.
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            let addr = gw.http;
            tokio::spawn(async move {
                c.send(
                    addr,
                    Method::GET,
                    "slow.example.com",
                    "/same",
                    &[],
                    Bytes::new(),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().status, 200);
    }
    assert_eq!(slow.requests(), 1, "coalesced into one upstream request");

    // Purge through the admin API: one key (host, path, query in any
    // order: both header variants of it), then a prefix.
    let purge = |query: &'static str| {
        let c = c.clone();
        let admin = gw.admin;
        async move {
            let r = c
                .send(
                    admin,
                    Method::POST,
                    "admin",
                    &format!("/cache/purge?host=cache.example.com&{query}"),
                    &[],
                    Bytes::new(),
                )
                .await
                .unwrap();
            (r.status.as_u16(), r.text())
        }
    };
    assert_eq!(
        x_cache(&get(&c, &gw, "cache.example.com", "/a?x=9", &[]).await),
        "MISS"
    );
    let (status, text) = purge("path=/a&query=y%3D2%26x%3D1").await;
    assert_eq!((status, text.as_str()), (200, "{\"removed\":2}\n"));
    assert_eq!(
        x_cache(&get(&c, &gw, "cache.example.com", "/a?x=9", &[]).await),
        "HIT",
        "another query of the path is kept"
    );
    assert_eq!(
        x_cache(&get(&c, &gw, "cache.example.com", "/a?x=1&y=2", &[]).await),
        "MISS"
    );
    assert_eq!(
        purge("prefix=/a&path=/a").await.0,
        400,
        "prefix and path together are ambiguous"
    );
    let (status, text) = purge("prefix=/a").await;
    assert_eq!((status, text.as_str()), (200, "{\"removed\":2}\n"));
    let r = get(&c, &gw, "cache.example.com", "/a?x=1&y=2", &[]).await;
    assert_eq!(x_cache(&r), "MISS");
    assert_eq!(
        x_cache(&get(&c, &gw, "cache.example.com", "/a?x=1&y=2", &[]).await),
        "HIT"
    );

    // Changing the rule makes earlier entries unreachable.
    write_atomic(dir.path(), "config.yaml", &config("61s", &slow, &echo));
    testkit::eventually(
        Duration::from_secs(5),
        "the changed rule misses",
        || async { x_cache(&get(&c, &gw, "cache.example.com", "/a?x=1&y=2", &[]).await) == "MISS" },
    )
    .await;

    // A rule's own byte budget: the first entries are kept, later ones
    // are passed through unstored.
    for n in 0..8 {
        let _ = get(&c, &gw, "capped.example.com", &format!("/item/{n}"), &[]).await;
    }
    let mut again = Vec::new();
    for n in 0..8 {
        let r = get(&c, &gw, "capped.example.com", &format!("/item/{n}"), &[]).await;
        again.push(x_cache(&r).to_owned());
    }
    assert_eq!(again[0], "HIT", "{again:?}");
    assert_eq!(again[7], "MISS", "{again:?}");

    let metrics = c.get(gw.admin, "admin", "/metrics").await.unwrap().text();
    assert!(metrics.contains("gatehouse_cache_hits_total"), "{metrics}");
}
