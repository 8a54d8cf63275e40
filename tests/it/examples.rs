//! The examples users copy (`examples/*`) validate, and do what their
//! comments say, served by the real binary next to the quickstart.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::Method;
use testkit::pki::{Ca, tls_secret};
use testkit::{EchoServer, GatewayProcess, HttpClient, Reply, TlsClient, run_gatehouse};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

/// The quickstart's three backends, as echo servers.
struct Backends {
    a: EchoServer,
    b: EchoServer,
    c: EchoServer,
}

impl Backends {
    async fn start() -> Self {
        Self {
            a: EchoServer::start("a").await,
            b: EchoServer::start("b").await,
            c: EchoServer::start("c").await,
        }
    }
}

/// Copies the named examples into one directory, the quickstart's
/// backend ports moved to the echo servers'.
fn copy_examples(names: &[&str], backends: &Backends) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        let target = dir.path().join(name);
        std::fs::create_dir_all(&target).unwrap();
        for entry in std::fs::read_dir(example(name)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("9001", &backends.a.addr.port().to_string())
                .replace("9002", &backends.b.addr.port().to_string())
                .replace("9003", &backends.c.addr.port().to_string());
            std::fs::write(target.join(path.file_name().unwrap()), text).unwrap();
        }
    }
    dir
}

async fn send(
    c: &HttpClient,
    gw: &GatewayProcess,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> Reply {
    c.send(gw.http, method, host, path, headers, Bytes::from(body))
        .await
        .unwrap()
}

#[test]
fn every_example_validates_with_the_quickstart() {
    let mut examples: Vec<String> = std::fs::read_dir(example(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["quickstart", "compose", "ingress-nginx"].contains(&n.as_str()))
        .collect();
    examples.sort();
    assert!(
        examples.len() >= 4,
        "canary, auth, rate limits, TLS: {examples:?}"
    );
    // The TLS example needs the Secret its comment tells users to make.
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(
        secret.path().join("secret.json"),
        tls_secret(
            "tls-localhost",
            &Ca::new("example CA").server(&["tls.localhost"]),
        ),
    )
    .unwrap();
    for name in &examples {
        let quickstart = example("quickstart");
        let dir = example(name);
        let (status, out) = run_gatehouse(&[
            "validate",
            "-f",
            quickstart.to_str().unwrap(),
            "-f",
            dir.to_str().unwrap(),
            "-f",
            secret.path().to_str().unwrap(),
        ]);
        assert!(status.success(), "examples/{name}: {out}");
        assert!(out.contains(": 0 error(s)"), "examples/{name}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_canary_example_splits_sticks_and_honours_opt_ins() {
    let backends = Backends::start().await;
    let dir = copy_examples(&["quickstart", "canary"], &backends);
    let gw = GatewayProcess::standalone(dir.path(), &["--no-https"]).await;
    let c = HttpClient::new();
    let get = |headers: Vec<(&'static str, String)>| {
        let (c, gw) = (&c, &gw);
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            send(c, gw, Method::GET, "shop.localhost", "/", &headers, "").await
        }
    };
    let opted = get(vec![("x-canary", "always".into())]).await;
    assert_eq!(opted.backend().as_deref(), Some("b"));
    let opted = get(vec![("cookie", "theme=dark; canary=always".into())]).await;
    assert_eq!(opted.backend().as_deref(), Some("b"));
    let not_opted = get(vec![("cookie", "canary=never".into())]).await;
    assert!(not_opted.status.is_success());

    // 400 new clients: about 5 % reach the canary; each keeps its side on
    // its next requests, whichever side that is.
    let mut sides: BTreeMap<String, usize> = BTreeMap::new();
    let mut cookies = Vec::new();
    for _ in 0..400 {
        let r = get(Vec::new()).await;
        let side = r.backend().unwrap();
        *sides.entry(side.clone()).or_default() += 1;
        let cookie = r.headers["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("shop-version="), "{cookie}");
        cookies.push((side, cookie.split(';').next().unwrap().to_owned()));
    }
    let canary = sides.get("b").copied().unwrap_or(0);
    assert!((5..=45).contains(&canary), "{sides:?}");
    let stayed = |side: &str, cookie: &str| {
        let (side, cookie) = (side.to_owned(), cookie.to_owned());
        let get = &get;
        async move {
            for _ in 0..3 {
                let r = get(vec![("cookie", cookie.clone())]).await;
                if r.backend().as_deref() != Some(side.as_str()) {
                    return false;
                }
            }
            true
        }
    };
    for (side, cookie) in &cookies {
        assert!(stayed(side, cookie).await, "a client on {side} moved");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_auth_example_guards_validates_and_allows_cors() {
    let backends = Backends::start().await;
    let dir = copy_examples(&["quickstart", "auth"], &backends);
    let gw = GatewayProcess::standalone(dir.path(), &["--no-https"]).await;
    let c = HttpClient::new();
    let host = "secure.localhost";

    let r = send(&c, &gw, Method::GET, host, "/v1/orders", &[], "").await;
    assert_eq!(r.status, 401);
    let r = send(
        &c,
        &gw,
        Method::GET,
        host,
        "/v1/orders",
        &[("x-api-key", "demo-key-mobile")],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let echo = r.echo().unwrap();
    assert_eq!(echo.header("x-consumer"), Some("mobile-app"));
    assert_eq!(
        echo.header("x-api-key"),
        None,
        "the key stops at the gateway"
    );
    let r = send(
        &c,
        &gw,
        Method::GET,
        host,
        "/v1/orders",
        &[("x-api-key", "wrong")],
        "",
    )
    .await;
    assert_eq!(r.status, 401);

    // The schema: a quantity of 0 is refused with problem details.
    let json = [
        ("x-api-key", "demo-key-mobile"),
        ("content-type", "application/json"),
    ];
    let r = send(
        &c,
        &gw,
        Method::POST,
        host,
        "/v1/orders",
        &json,
        r#"{"item": "tea", "qty": 0}"#,
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert!(r.text().contains("/qty"), "{}", r.text());
    let r = send(
        &c,
        &gw,
        Method::POST,
        host,
        "/v1/orders",
        &json,
        r#"{"item": "tea", "qty": 2}"#,
    )
    .await;
    assert_eq!(r.status, 200);

    // The demo front end's preflight is answered by the gateway.
    let r = send(
        &c,
        &gw,
        Method::OPTIONS,
        host,
        "/v1/orders",
        &[
            ("origin", "http://app.localhost:3000"),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "content-type, x-api-key"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "http://app.localhost:3000"
    );

    // Staff: basic auth, the user passed on.
    let r = send(&c, &gw, Method::GET, host, "/admin/", &[], "").await;
    assert_eq!(r.status, 401);
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let basic = format!("Basic {}", base64_of("staff:demo-password"));
    let r = send(
        &c,
        &gw,
        Method::GET,
        host,
        "/admin/",
        &[("authorization", &basic)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.backend().as_deref(), Some("b"));
    assert_eq!(r.echo().unwrap().header("x-user"), Some("staff"));
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_tls_example_serves_its_certificate_with_hsts() {
    let backends = Backends::start().await;
    let dir = copy_examples(&["quickstart", "tls"], &backends);
    let ca = Ca::new("example CA");
    std::fs::write(
        dir.path().join("tls/secret.json"),
        tls_secret("tls-localhost", &ca.server(&["tls.localhost"])),
    )
    .unwrap();
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let mut conn = TlsClient {
        trust: Some(ca.pem()),
        ..TlsClient::default()
    }
    .connect(gw.https, Some("tls.localhost"))
    .await
    .unwrap();
    let r = conn.get("tls.localhost", "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.backend().as_deref(), Some("a"));
    assert_eq!(r.headers["strict-transport-security"], "max-age=86400");
    let r = send(
        &HttpClient::new(),
        &gw,
        Method::GET,
        "tls.localhost",
        "/x",
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 308);
}
