//! Filters whose effects the scenario files cannot express: mirrors,
//! response headers, and the body-matching limit.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, eventually};

const ROUTE: &str = "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: f}
spec:
  ingressClassName: gatehouse
  hostnames: [f.example.com]
  rules:
  - name: mirrored
    matches: [{path: {value: /mirrored}}]
    filters:
    - type: RequestMirror
      requestMirror: {backend: {name: shadow, port: 80}}
    - type: ResponseHeaderModifier
      responseHeaderModifier:
        set: [{name: x-served-by, value: gatehouse}]
        remove: [x-echo-name]
    backends: [{name: main, port: 80}]
  - name: slow-mirror
    matches: [{path: {value: /slow-mirror}}]
    filters:
    - type: RequestMirror
      requestMirror: {backend: {name: slow-shadow, port: 80}}
    backends: [{name: main, port: 80}]
  - name: body
    matches:
    - path: {value: /body}
      body: [{jsonPointer: /kind, value: special}]
    backends: [{name: shadow, port: 80}]
  - name: body-rest
    matches: [{path: {value: /body}}]
    backends: [{name: main, port: 80}]
";

struct Setup {
    main: EchoServer,
    shadow: EchoServer,
    slow_shadow: EchoServer,
    gw: GatewayProcess,
    _dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let main = EchoServer::start("main").await;
    let shadow = EchoServer::start("shadow").await;
    let slow_shadow = EchoServer::start_slow("slow-shadow", Duration::from_secs(3)).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    write_atomic(
        dir.path(),
        "f.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("main", &[main.addr]),
            service("shadow", &[shadow.addr]),
            service("slow-shadow", &[slow_shadow.addr]),
            ROUTE.to_owned(),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &["--max-body-match-bytes", "1024"]).await;
    Setup {
        main,
        shadow,
        slow_shadow,
        gw,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mirrors_get_a_copy_and_response_headers_change() {
    // Bind the whole setup: the backends and directory must live as long
    // as the test.
    let s = setup().await;
    let (main, shadow, gw) = (&s.main, &s.shadow, &s.gw);
    let client = HttpClient::new();
    let body = Bytes::from(vec![b'x'; 200_000]);
    for _ in 0..5 {
        let reply = client
            .send(
                gw.http,
                Method::POST,
                "f.example.com",
                "/mirrored",
                &[],
                body.clone(),
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.headers["x-served-by"], "gatehouse");
        assert!(
            !reply.headers.contains_key("x-echo-name"),
            "removed by the filter"
        );
        let echo = reply.echo().unwrap();
        assert_eq!(echo.name, "main");
        assert_eq!(
            echo.body_length, 200_000,
            "the main request keeps its whole body"
        );
    }
    assert_eq!(main.requests(), 5);
    eventually(Duration::from_secs(5), "every request is mirrored", || {
        let n = shadow.requests();
        async move { n == 5 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_mirror_does_not_slow_the_request() {
    let s = setup().await;
    let (main, slow_shadow, gw) = (&s.main, &s.slow_shadow, &s.gw);
    let client = HttpClient::new();
    // The mirror answers after 3 s; the main request must not wait for
    // it. Ten requests in a row finish while the first mirror copy is
    // still being answered.
    for _ in 0..10 {
        let reply = client
            .get(gw.http, "f.example.com", "/slow-mirror")
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.backend().as_deref(), Some("main"));
    }
    assert_eq!(main.requests(), 10);
    assert!(
        slow_shadow.requests() >= 1,
        "the mirror has started receiving copies"
    );
    eventually(Duration::from_secs(10), "the mirror got every copy", || {
        let n = slow_shadow.requests();
        async move { n == 10 }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn body_matching_reads_within_the_limit_and_forwards_the_body_unchanged() {
    let s = setup().await;
    let gw = &s.gw;
    let client = HttpClient::new();
    let json = |s: &'static str| Bytes::from_static(s.as_bytes());
    let ct = [("content-type", "application/json")];
    let special_body = r#"{"kind": "special", "pad": "0123456789"}"#;
    let special = client
        .send(
            gw.http,
            Method::POST,
            "f.example.com",
            "/body",
            &ct,
            json(special_body),
        )
        .await
        .unwrap();
    assert_eq!(special.backend().as_deref(), Some("shadow"));
    assert_eq!(
        special.echo().unwrap().body_length,
        special_body.len() as u64,
        "forwarded byte for byte"
    );
    let plain = client
        .send(
            gw.http,
            Method::POST,
            "f.example.com",
            "/body",
            &ct,
            json(r#"{"kind": "plain"}"#),
        )
        .await
        .unwrap();
    assert_eq!(plain.backend().as_deref(), Some("main"));
    // Over the 1 KiB limit: 413, whether the length is declared or not.
    let big = Bytes::from(format!(
        r#"{{"kind": "special", "pad": "{}"}}"#,
        "x".repeat(2000)
    ));
    let too_big = client
        .send(gw.http, Method::POST, "f.example.com", "/body", &ct, big)
        .await
        .unwrap();
    assert_eq!(too_big.status, 413, "{}", too_big.text());
    // A route without body conditions streams bodies of any size.
    let other = client
        .send(
            gw.http,
            Method::POST,
            "f.example.com",
            "/mirrored",
            &ct,
            Bytes::from(vec![b'y'; 5_000_000]),
        )
        .await
        .unwrap();
    assert_eq!(other.status, 200);
    assert_eq!(other.echo().unwrap().body_length, 5_000_000);
}
