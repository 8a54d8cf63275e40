//! Configuration changes apply without a restart, without failing a single
//! request, and without letting a broken file take routes down.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use testkit::manifests::{INGRESS_CLASS, docs, ingress, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, eventually};

#[tokio::test(flavor = "multi_thread")]
async fn editing_a_manifest_changes_routing() {
    let a = EchoServer::start("a").await;
    let b = EchoServer::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let backends = docs(&[
        INGRESS_CLASS.to_owned(),
        service("a", &[a.addr]),
        service("b", &[b.addr]),
    ]);
    write_atomic(dir.path(), "backends.yaml", &backends);
    write_atomic(
        dir.path(),
        "route.yaml",
        &ingress("r", "edit.example.com", &[("/", "Prefix", "a")]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let reply = client.get(gw.http, "edit.example.com", "/").await.unwrap();
    assert_eq!(reply.backend().as_deref(), Some("a"));
    let pid = gw.pid();

    write_atomic(
        dir.path(),
        "route.yaml",
        &ingress("r", "edit.example.com", &[("/", "Prefix", "b")]),
    );
    eventually(
        Duration::from_secs(1),
        "the edited route is served within 1 s",
        || {
            let client = client.clone();
            async move {
                let r = client.get(gw.http, "edit.example.com", "/").await;
                r.is_ok_and(|r| r.backend().as_deref() == Some("b"))
            }
        },
    )
    .await;

    // A new file adds a route; deleting it removes the route.
    write_atomic(
        dir.path(),
        "extra.yaml",
        &ingress("x", "extra.example.com", &[("/", "Prefix", "a")]),
    );
    eventually(Duration::from_secs(1), "a new file is picked up", || {
        let client = client.clone();
        async move {
            let r = client.get(gw.http, "extra.example.com", "/").await;
            r.is_ok_and(|r| r.status == 200)
        }
    })
    .await;
    std::fs::remove_file(dir.path().join("extra.yaml")).unwrap();
    eventually(
        Duration::from_secs(1),
        "a deleted file's routes go away",
        || {
            let client = client.clone();
            async move {
                let r = client.get(gw.http, "extra.example.com", "/").await;
                r.is_ok_and(|r| r.status == 404)
            }
        },
    )
    .await;
    assert_eq!(gw.pid(), pid, "no restart happened");
}

/// Four keep-alive clients send requests while the directory is rewritten
/// 50 times, alternating between two configurations that differ in
/// routes, Services and endpoints. No request may fail, and every answer
/// must come from a backend that one of the two configurations names.
#[tokio::test(flavor = "multi_thread")]
async fn rewrites_under_load_fail_no_request() {
    let e1 = EchoServer::start("e1").await;
    let e2 = EchoServer::start("e2").await;
    let e3 = EchoServer::start("e3").await;
    let dir = tempfile::tempdir().unwrap();
    let config_a = docs(&[
        INGRESS_CLASS.to_owned(),
        service("svc-x", &[e1.addr, e2.addr]),
        ingress("load", "load.example.com", &[("/", "Prefix", "svc-x")]),
    ]);
    let config_b = docs(&[
        INGRESS_CLASS.to_owned(),
        service("svc-y", &[e3.addr]),
        service("svc-x", &[e2.addr]),
        ingress(
            "load",
            "load.example.com",
            &[("/", "Prefix", "svc-y"), ("/api", "Prefix", "svc-x")],
        ),
    ]);
    write_atomic(dir.path(), "config.yaml", &config_a);
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;

    let stop = Arc::new(AtomicBool::new(false));
    let total = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for i in 0..4 {
        let stop = stop.clone();
        let total = total.clone();
        let addr = gw.http;
        clients.push(tokio::spawn(async move {
            let client = HttpClient::new();
            let mut failures = Vec::new();
            let mut seen = HashSet::new();
            let path = if i % 2 == 0 { "/page" } else { "/api/items" };
            while !stop.load(Ordering::Relaxed) {
                match client.get(addr, "load.example.com", path).await {
                    Ok(r) if r.status == 200 => {
                        let backend = r.backend().unwrap_or_default();
                        // Valid in A: e1 or e2. Valid in B: e3 for /page,
                        // e2 for /api.
                        let valid = match path {
                            "/page" => ["e1", "e2", "e3"].contains(&backend.as_str()),
                            _ => ["e1", "e2"].contains(&backend.as_str()),
                        };
                        if !valid {
                            failures.push(format!("{path} answered by {backend:?}"));
                        }
                        seen.insert(backend);
                    }
                    Ok(r) => failures.push(format!("{path}: status {}: {}", r.status, r.text())),
                    Err(e) => failures.push(format!("{path}: {e}")),
                }
                total.fetch_add(1, Ordering::Relaxed);
            }
            (failures, seen)
        }));
    }

    for round in 0..50 {
        let text = if round % 2 == 0 { &config_b } else { &config_a };
        write_atomic(dir.path(), "config.yaml", text);
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    // The last write was config A: the clients go on under it for a
    // while (a hundred more requests) before they stop.
    let after_last = total.load(Ordering::Relaxed);
    eventually(
        Duration::from_secs(10),
        "requests after the last change",
        || {
            let total = total.clone();
            async move { total.load(Ordering::Relaxed) >= after_last + 100 }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);

    let mut failures = Vec::new();
    let mut seen = HashSet::new();
    for c in clients {
        let (f, s) = c.await.unwrap();
        failures.extend(f);
        seen.extend(s);
    }
    let total = total.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(total > 200, "the clients kept sending ({total} requests)");
    assert!(
        seen.contains("e3"),
        "configuration B was served at some point: {seen:?}\n{}",
        gw.logs()
    );
    assert!(
        seen.contains("e1"),
        "configuration A was served at some point: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_yaml_keeps_the_previous_routes() {
    let a = EchoServer::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "good.yaml",
        &docs(&[INGRESS_CLASS.to_owned(), service("a", &[a.addr])]),
    );
    write_atomic(
        dir.path(),
        "route.yaml",
        &ingress("r", "keep.example.com", &[("/", "Prefix", "a")]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    assert_eq!(
        client
            .get(gw.http, "keep.example.com", "/")
            .await
            .unwrap()
            .status,
        200
    );

    let broken = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: r\nspec:\n  rules: [\n    - host: {\n";
    write_atomic(dir.path(), "route.yaml", broken);
    let path = dir.path().join("route.yaml");
    let expected = format!("{}:", path.display());
    eventually(
        Duration::from_secs(2),
        "the error names the file and line",
        || {
            let logs = gw.logs();
            let found = logs.lines().any(|l| {
                l.contains("manifest error")
                    && l.split(&expected)
                        .nth(1)
                        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            });
            async move { found }
        },
    )
    .await;
    // The route from the last good version of the file is still served.
    for _ in 0..20 {
        let r = client.get(gw.http, "keep.example.com", "/").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.backend().as_deref(), Some("a"));
    }
    // A Gatehouse object with a bad field is reported with its field path.
    write_atomic(
        dir.path(),
        "bad-field.yaml",
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {name: typo}\nspec:\n  rules:\n  - matches:\n    - path: {type: Glob, value: /x}\n",
    );
    eventually(
        Duration::from_secs(2),
        "a type error names object and field",
        || {
            let found = gw.logs().contains(
                "ApiRoute default/typo: spec.rules[0].matches[0].path.type: unknown variant `Glob`",
            );
            async move { found }
        },
    )
    .await;
    assert_eq!(
        client
            .get(gw.http, "keep.example.com", "/")
            .await
            .unwrap()
            .status,
        200
    );
}
