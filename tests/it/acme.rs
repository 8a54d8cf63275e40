//! ACME end to end against Pebble: a new hostname gets a certificate
//! issued and served with no manual step; a failure is reported on the
//! route and retried; a stored certificate past two thirds of its
//! lifetime is renewed.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::pebble::Pebble;
use testkit::pki::{Ca, tls_secret};
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

/// The shop route (ACME on) with its echo backend, in a manifest
/// directory, and an empty ACME storage directory.
struct Shop {
    echo: EchoServer,
    dir: tempfile::TempDir,
    storage: tempfile::TempDir,
}

impl Shop {
    async fn new() -> Self {
        assert!(
            Pebble::available(),
            "pebble is not installed (apt-get install pebble)"
        );
        let echo = EchoServer::start("shop").await;
        let dir = tempfile::tempdir().unwrap();
        write_atomic(
            dir.path(),
            "config.yaml",
            &docs(&[
                INGRESS_CLASS.to_owned(),
                service("svc", &[echo.addr]),
                ROUTE.to_owned(),
            ]),
        );
        Self {
            echo,
            dir,
            storage: tempfile::tempdir().unwrap(),
        }
    }
}

/// A gateway serving `dir` with ACME storage in `storage`, and a Pebble it
/// orders from. The gateway must know the directory URL and Pebble the
/// gateway's HTTP port, so the URL is reserved first; the gateway's
/// attempts fail until Pebble is up, then succeed.
async fn with_pebble(dir: &Path, storage: &Path) -> WithPebble {
    let listen = testkit::free_addr();
    let ca_dir = tempfile::tempdir().unwrap();
    let ca_file = ca_dir.path().join("pebble-api-ca.pem");
    let gw = GatewayProcess::standalone(
        dir,
        &[
            "--acme-directory",
            &format!("https://localhost:{}/dir", listen.port()),
            "--acme-ca-bundle",
            ca_file.to_str().unwrap(),
            "--acme-storage",
            storage.to_str().unwrap(),
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
    WithPebble {
        gw,
        pebble,
        root,
        _ca_dir: ca_dir,
    }
}

struct WithPebble {
    gw: GatewayProcess,
    pebble: Pebble,
    /// Pebble's root certificate.
    root: String,
    /// Holds the file `--acme-ca-bundle` names.
    _ca_dir: tempfile::TempDir,
}

/// Whether `gw` serves `host` a certificate that verifies against `root`.
async fn served_under(gw: &GatewayProcess, host: &str, root: &str) -> bool {
    TlsClient {
        trust: Some(root.to_owned()),
        ..TlsClient::default()
    }
    .connect(gw.https, Some(host))
    .await
    .is_ok_and(|c| c.server_names() == [host])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_hostname_gets_a_certificate_from_the_acme_server() {
    let Shop {
        echo: _echo,
        dir,
        storage,
    } = Shop::new().await;
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

    let started = Instant::now();
    let WithPebble {
        gw,
        pebble,
        root,
        _ca_dir: _kept,
    } = with_pebble(dir.path(), storage.path()).await;
    eventually(
        Duration::from_secs(60),
        "the issued certificate is served",
        || served_under(&gw, "shop.gatehouse.test", &root),
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

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_two_thirds_through_its_lifetime_is_renewed() {
    let Shop {
        echo: _echo,
        dir,
        storage,
    } = Shop::new().await;
    // A certificate obtained earlier: 30 days of validity, 20 gone, so
    // still valid but due (renewal starts at two thirds).
    let old_ca = Ca::new("earlier issuer");
    let day = Duration::from_secs(86_400);
    let now = SystemTime::now();
    let stored = storage.path().join("certificate-default-shop-tls.json");
    std::fs::write(
        &stored,
        tls_secret(
            "shop-tls",
            &old_ca.server_valid(&["shop.gatehouse.test"], now - 20 * day, now + 10 * day),
        ),
    )
    .unwrap();

    let WithPebble {
        gw,
        root,
        pebble: _pebble,
        _ca_dir: _kept,
    } = with_pebble(dir.path(), storage.path()).await;
    eventually(
        Duration::from_secs(60),
        "the renewed certificate is served",
        || served_under(&gw, "shop.gatehouse.test", &root),
    )
    .await;
    assert!(gw.logs().contains("ordering a certificate"));
    let text = std::fs::read_to_string(&stored).unwrap();
    let secret: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        secret.pointer("/data/tls.crt").is_some(),
        "the stored Secret was replaced: {text}"
    );
    assert!(!served_under(&gw, "shop.gatehouse.test", &old_ca.pem()).await);
}
