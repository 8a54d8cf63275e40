//! ACME end to end against Pebble: a new hostname gets a certificate
//! issued and served with no manual step; a failure is reported on the
//! route and retried.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::pebble::Pebble;
use testkit::{EchoServer, GatewayProcess, TlsClient, eventually};

const ROUTE: &str = "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: shop, namespace: default}
spec:
  ingressClassName: gatehouse
  hostnames: [shop.gatehouse.test]
  tls:
    acme: {email: ops@gatehouse.test}
  rules:
  - backends: [{name: svc, port: 80}]
";

#[tokio::test(flavor = "multi_thread")]
async fn a_new_hostname_gets_a_certificate_from_the_acme_server() {
    assert!(
        Pebble::available(),
        "pebble is not installed (apt-get install pebble)"
    );
    let echo = EchoServer::start("shop").await;
    let dir = tempfile::tempdir().unwrap();
    let storage = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            ROUTE.to_owned(),
        ]),
    );
    // Pebble must validate on the gateway's HTTP port, so the gateway
    // starts first and finds the ACME server missing: its first order
    // fails, is reported and retried.
    let nothing = testkit::free_addr();
    let gw = GatewayProcess::standalone(
        dir.path(),
        &[
            "--acme-directory",
            &format!("https://localhost:{}/dir", nothing.port()),
            "--acme-storage",
            storage.path().to_str().unwrap(),
            "--acme-retry-min",
            "1s",
        ],
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "the failure is reported on the route",
        || async {
            gw.logs()
                .contains("obtaining the certificate failed (retrying with backoff)")
        },
    )
    .await;
    // Served meanwhile, with the default certificate.
    let mut conn = TlsClient::default()
        .connect(gw.https, Some("shop.gatehouse.test"))
        .await
        .unwrap();
    assert_eq!(conn.server_names(), ["gatehouse.invalid"]);
    assert_eq!(
        conn.get("shop.gatehouse.test", "/").await.unwrap().status,
        200
    );
    drop(gw);

    // Now with Pebble. The gateway must know the directory URL and Pebble
    // the gateway's HTTP port, so the URL is reserved first; the
    // gateway's attempts fail until Pebble is up, then succeed.
    let listen = testkit::free_addr();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("pebble-api-ca.pem");
    let started = Instant::now();
    let gw = GatewayProcess::standalone(
        dir.path(),
        &[
            "--acme-directory",
            &format!("https://localhost:{}/dir", listen.port()),
            "--acme-ca-bundle",
            ca_file.to_str().unwrap(),
            "--acme-storage",
            storage.path().to_str().unwrap(),
            "--acme-retry-min",
            "1s",
        ],
    )
    .await;
    let pebble = Pebble::start_on(listen, gw.http.port()).await;
    std::fs::copy(&pebble.api_ca_file, &ca_file).unwrap();
    let root = {
        let mut c = TlsClient {
            trust: Some(pebble.api_ca_pem.clone()),
            ..TlsClient::default()
        }
        .connect(pebble.management, Some("localhost"))
        .await
        .unwrap();
        c.get("localhost", "/roots/0").await.unwrap().text()
    };
    assert!(root.contains("BEGIN CERTIFICATE"), "{root}");
    eventually(
        Duration::from_secs(60),
        "the issued certificate is served",
        || async {
            match (TlsClient {
                trust: Some(root.clone()),
                ..TlsClient::default()
            })
            .connect(gw.https, Some("shop.gatehouse.test"))
            .await
            {
                Ok(c) => c.server_names() == ["shop.gatehouse.test"],
                Err(_) => false,
            }
        },
    )
    .await;
    eprintln!("issued and served {:?} after start", started.elapsed());
    // Verified against Pebble's root, and routed.
    let mut conn = TlsClient {
        trust: Some(root.clone()),
        ..TlsClient::default()
    }
    .connect(gw.https, Some("shop.gatehouse.test"))
    .await
    .unwrap();
    let reply = conn.get("shop.gatehouse.test", "/").await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend().as_deref(), Some("shop"));
    // Stored privately, and the failure is cleared.
    let stored = storage.path().join("certificate-default-shop-tls.json");
    let mode = std::fs::metadata(&stored).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", stored.display());
    let state = std::fs::read_to_string(storage.path().join("state.json")).unwrap();
    assert!(!state.contains("error."), "{state}");
    assert!(
        !state.contains("challenge."),
        "answers are withdrawn: {state}"
    );
    let logs = gw.logs();
    assert!(
        logs.contains("certificate issued"),
        "{logs}\n{}",
        pebble.logs()
    );
    assert!(!logs.contains("BEGIN EC PRIVATE KEY") && !logs.contains("PRIVATE KEY-----"));
}
