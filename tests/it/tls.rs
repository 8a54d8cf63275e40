//! HTTPS: certificates chosen by SNI, ALPN, redirects and HSTS, broken
//! Secrets, rotation under load, and client certificates.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use testkit::manifests::{INGRESS_CLASS, docs, ingress, service, write_atomic};
use testkit::pki::{Ca, Issued, ca_secret, tls_secret};
use testkit::{EchoServer, GatewayProcess, HttpClient, TlsClient, eventually, run_gatehouse};

fn ingress_with_tls(name: &str, host: &str, service: &str, secret: &str) -> String {
    format!(
        "{}  tls:\n  - hosts: [\"{host}\"]\n    secretName: {secret}\n",
        ingress(name, host, &[("/", "Prefix", service)])
    )
}

fn route_with_tls(name: &str, host: &str, service: &str, tls: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  tls: {tls}\n  rules:\n  - backends: [{{name: {service}, port: 80}}]\n"
    )
}

fn write_pem(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

struct Setup {
    ca: Ca,
    _echo: EchoServer,
    dir: tempfile::TempDir,
    certs: tempfile::TempDir,
    gw: GatewayProcess,
}

/// a.example.com (Ingress TLS), *.wild.example.com (ApiRoute TLS with
/// HSTS), plain.example.com (no TLS), and a default certificate from
/// files.
async fn setup(extra: &[String]) -> Setup {
    let ca = Ca::new("Gatehouse test CA");
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let certs = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            tls_secret("a-cert", &ca.server(&["a.example.com"])),
            tls_secret("wild-cert", &ca.server(&["*.wild.example.com"])),
            ingress_with_tls("a", "a.example.com", "svc", "a-cert"),
            route_with_tls(
                "wild",
                "*.wild.example.com",
                "svc",
                "{certificateRef: {name: wild-cert}, hsts: {maxAgeSeconds: 600, includeSubdomains: true}}",
            ),
            ingress("plain", "plain.example.com", &[("/", "Prefix", "svc")]),
        ]),
    );
    let default = ca.server(&["default.example.net"]);
    let cert = write_pem(certs.path(), "default.crt", &default.cert);
    let key = write_pem(certs.path(), "default.key", &default.key);
    let mut args = vec![
        "--default-certificate".to_owned(),
        cert,
        "--default-key".to_owned(),
        key,
        "--https-redirect-port".to_owned(),
        "8443".to_owned(),
    ];
    args.extend(extra.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let gw = GatewayProcess::standalone(dir.path(), &args).await;
    Setup {
        ca,
        _echo: echo,
        dir,
        certs,
        gw,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sni_picks_exact_wildcard_and_default_certificates() {
    let s = setup(&[]).await;
    let trusting = TlsClient {
        trust: Some(s.ca.pem()),
        ..TlsClient::default()
    };
    let cases = [
        (
            Some("a.example.com"),
            "a.example.com",
            vec!["a.example.com"],
        ),
        (
            Some("x.wild.example.com"),
            "x.wild.example.com",
            vec!["*.wild.example.com"],
        ),
        (
            Some("plain.example.com"),
            "plain.example.com",
            vec!["default.example.net"],
        ),
        (
            Some("unknown.example.org"),
            "plain.example.com",
            vec!["default.example.net"],
        ),
        (None, "plain.example.com", vec!["default.example.net"]),
    ];
    for (sni, host, names) in cases {
        let mut conn = TlsClient::default().connect(s.gw.https, sni).await.unwrap();
        assert_eq!(conn.server_names(), names, "certificate for SNI {sni:?}");
        assert_eq!(conn.alpn.as_deref(), Some("h2"), "ALPN for {sni:?}");
        let reply = conn.get(host, "/hello").await.unwrap();
        assert_eq!(reply.status, 200, "{sni:?} {host}: {}", reply.text());
        assert_eq!(
            reply.echo().unwrap().header("x-forwarded-proto"),
            Some("https")
        );
    }
    // Verified against the CA, as a browser would.
    for host in ["a.example.com", "x.wild.example.com"] {
        let mut conn = trusting.connect(s.gw.https, Some(host)).await.unwrap();
        assert_eq!(conn.get(host, "/").await.unwrap().status, 200);
    }
    // HTTP/1.1 when the client offers only that; TLS 1.3 by default.
    let mut h1 = TlsClient {
        alpn: Some(vec!["http/1.1"]),
        ..TlsClient::default()
    }
    .connect(s.gw.https, Some("a.example.com"))
    .await
    .unwrap();
    assert_eq!(h1.alpn.as_deref(), Some("http/1.1"));
    assert!(h1.version.contains("TLSv1_3"), "{}", h1.version);
    assert_eq!(h1.get("a.example.com", "/").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn openssl_and_curl_see_the_right_certificates() {
    let s = setup(&[]).await;
    let port = s.gw.https.port();
    let ca = write_pem(s.certs.path(), "ca.pem", &s.ca.pem());
    for (sni, subject) in [
        ("a.example.com", "CN=a.example.com"),
        ("x.wild.example.com", "CN=*.wild.example.com"),
        ("plain.example.com", "CN=default.example.net"),
    ] {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", sni, "-alpn", "h2,http/1.1", "-CAfile", &ca])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed");
        let text = String::from_utf8_lossy(&out.stdout).replace(" = ", "=");
        assert!(
            text.contains(&format!("subject={subject}")),
            "{sni}: {text}"
        );
        assert!(text.contains("ALPN protocol: h2"), "{sni}: {text}");
        assert!(text.contains("Verify return code: 0 (ok)"), "{sni}: {text}");
    }
    // TLS 1.2 with an AEAD suite is served; CBC suites, RSA key exchange
    // and TLS 1.1 are not.
    let handshake = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "a.example.com"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tls12 = handshake(&["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]);
    assert!(
        tls12.contains("New, TLSv1.2, Cipher is ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{tls12}"
    );
    for refused in [
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"],
        ["-tls1_2", "-cipher", "AES128-GCM-SHA256"],
        ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"],
    ] {
        let out = handshake(&refused);
        assert!(out.contains("Cipher is (NONE)"), "{refused:?}: {out}");
    }

    let out = Command::new("curl")
        .args([
            "-sS",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args([
            "--cacert",
            &ca,
            "--resolve",
            &format!("a.example.com:{port}:127.0.0.1"),
        ])
        .arg(format!("https://a.example.com:{port}/"))
        .output()
        .expect("curl is installed");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "2 200",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http_is_redirected_for_tls_hosts_and_hsts_is_sent() {
    let s = setup(&[]).await;
    let client = HttpClient::new();
    let reply = client
        .get(s.gw.http, "a.example.com", "/x?y=1")
        .await
        .unwrap();
    assert_eq!(reply.status, 308);
    assert_eq!(
        reply.headers["location"].to_str().unwrap(),
        "https://a.example.com:8443/x?y=1"
    );
    // ACME HTTP-01 challenges stay on plain HTTP (here: routed as usual).
    let reply = client
        .get(
            s.gw.http,
            "a.example.com",
            "/.well-known/acme-challenge/token",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    // Hosts without TLS are not redirected.
    let reply = client
        .get(s.gw.http, "plain.example.com", "/")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    let mut conn = TlsClient::default()
        .connect(s.gw.https, Some("x.wild.example.com"))
        .await
        .unwrap();
    let reply = conn.get("x.wild.example.com", "/").await.unwrap();
    assert_eq!(
        reply.headers["strict-transport-security"],
        "max-age=600; includeSubDomains"
    );
    let mut conn = TlsClient::default()
        .connect(s.gw.https, Some("a.example.com"))
        .await
        .unwrap();
    let reply = conn.get("a.example.com", "/").await.unwrap();
    assert!(reply.headers.get("strict-transport-security").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_secret_is_reported_and_its_host_gets_the_default_certificate() {
    let s = setup(&[]).await;
    let good = s.ca.server(&["a.example.com"]);
    let broken = [
        (
            // The key of another certificate.
            tls_secret(
                "a-cert-2",
                &Issued {
                    cert: good.cert.clone(),
                    key: s.ca.server(&["a.example.com"]).key,
                },
            ),
            "does not match the certificate",
        ),
        (
            tls_secret("a-cert-2", &s.ca.expired_server(&["a.example.com"])),
            "the certificate expired on Wed, 01 Jan 2020",
        ),
        (
            tls_secret(
                "a-cert-2",
                &Issued {
                    cert: "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
                        .into(),
                    key: good.key.clone(),
                },
            ),
            "not valid PEM",
        ),
    ];
    let original = std::fs::read_to_string(s.dir.path().join("config.yaml")).unwrap();
    let with = |secret: &str| {
        format!("{original}---\n{secret}\n")
            .replace("secretName: a-cert\n", "secretName: a-cert-2\n")
    };
    let names = |host: &'static str| {
        let https = s.gw.https;
        async move {
            TlsClient::default()
                .connect(https, Some(host))
                .await
                .unwrap()
                .server_names()
        }
    };
    for (secret, message) in &broken {
        // `validate` names the Secret, the field and the reason.
        let text = with(secret);
        let dir = tempfile::tempdir().unwrap();
        write_atomic(dir.path(), "config.yaml", &text);
        let (status, out) = run_gatehouse(&["validate", "-f", dir.path().to_str().unwrap()]);
        assert!(!status.success(), "{out}");
        assert!(
            out.contains("spec.tls[0].secretName: Secret default/a-cert-2"),
            "{out}"
        );
        assert!(out.contains(message), "{message}: {out}");

        // Served: the host falls back to the default certificate, the
        // others are untouched, the process keeps running and logs why.
        write_atomic(s.dir.path(), "config.yaml", &text);
        eventually(
            Duration::from_secs(5),
            "a.example.com falls back",
            || async { names("a.example.com").await == ["default.example.net"] },
        )
        .await;
        let mut conn = TlsClient::default()
            .connect(s.gw.https, Some("a.example.com"))
            .await
            .unwrap();
        assert_eq!(conn.get("a.example.com", "/").await.unwrap().status, 200);
        assert_eq!(names("x.wild.example.com").await, ["*.wild.example.com"]);
        assert!(s.gw.logs().contains(message), "{message}");

        // Mended: the host's own certificate is back.
        write_atomic(
            s.dir.path(),
            "config.yaml",
            &with(&tls_secret("a-cert-2", &good)),
        );
        eventually(
            Duration::from_secs(5),
            "a.example.com has its certificate again",
            || async { names("a.example.com").await == ["a.example.com"] },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_that_expires_while_served_falls_back_without_a_change() {
    let s = setup(&[]).await;
    let now = std::time::SystemTime::now();
    let short = s.ca.server_valid(
        &["a.example.com"],
        now - Duration::from_secs(60),
        now + Duration::from_secs(3),
    );
    let text = std::fs::read_to_string(s.dir.path().join("config.yaml")).unwrap();
    let text = format!("{text}---\n{}\n", tls_secret("a-cert-short", &short))
        .replace("secretName: a-cert\n", "secretName: a-cert-short\n");
    write_atomic(s.dir.path(), "config.yaml", &text);
    let names = || async {
        TlsClient::default()
            .connect(s.gw.https, Some("a.example.com"))
            .await
            .unwrap()
            .server_names()
    };
    eventually(
        Duration::from_secs(5),
        "the short-lived certificate is served",
        || async { names().await == ["a.example.com"] },
    )
    .await;
    // No file changes from here on: the gateway notices the expiry itself.
    eventually(
        Duration::from_secs(10),
        "the expired certificate is replaced by the default one",
        || async { names().await == ["default.example.net"] },
    )
    .await;
    assert!(s.gw.logs().contains("the certificate expired on"));
    let mut conn = TlsClient::default()
        .connect(s.gw.https, Some("a.example.com"))
        .await
        .unwrap();
    assert_eq!(conn.get("a.example.com", "/").await.unwrap().status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_certificate_reaches_new_connections_without_a_failed_request() {
    let s = setup(&[]).await;
    let https = s.gw.https;
    let first = TlsClient::default()
        .connect(https, Some("a.example.com"))
        .await
        .unwrap()
        .server_cert;

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    // Two clients on long-lived connections, two opening a connection per
    // request.
    for fresh in [false, false, true, true] {
        let (stop, ok, failures) = (stop.clone(), ok.clone(), failures.clone());
        workers.push(tokio::spawn(async move {
            let mut conn = TlsClient::default()
                .connect(https, Some("a.example.com"))
                .await
                .unwrap();
            while !stop.load(Ordering::Relaxed) {
                if fresh {
                    match TlsClient::default()
                        .connect(https, Some("a.example.com"))
                        .await
                    {
                        Ok(c) => conn = c,
                        Err(e) => {
                            failures.lock().unwrap().push(e);
                            continue;
                        }
                    }
                }
                match conn.get("a.example.com", "/").await {
                    Ok(r) if r.status == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failures
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status)),
                    Err(e) => failures.lock().unwrap().push(e),
                }
            }
        }));
    }
    // Under load before the rotation: every client has been served.
    let served = |n: u64| {
        let ok = ok.clone();
        move || {
            let ok = ok.clone();
            async move { ok.load(Ordering::Relaxed) >= n }
        }
    };
    eventually(
        Duration::from_secs(10),
        "load before the rotation",
        served(50),
    )
    .await;
    let text = std::fs::read_to_string(s.dir.path().join("config.yaml")).unwrap();
    let rotated = s.ca.server(&["a.example.com"]);
    let start = text
        .find("{\"apiVersion\":\"v1\",\"kind\":\"Secret\"")
        .unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}{}{}",
        &text[..start],
        tls_secret("a-cert", &rotated),
        &text[end..]
    );
    write_atomic(s.dir.path(), "config.yaml", &text);
    eventually(
        Duration::from_secs(5),
        "the new certificate is served",
        || async {
            let conn = TlsClient::default()
                .connect(https, Some("a.example.com"))
                .await
                .unwrap();
            conn.server_cert != first
        },
    )
    .await;
    // And under load after it.
    let after = ok.load(Ordering::Relaxed) + 50;
    eventually(
        Duration::from_secs(10),
        "load after the rotation",
        served(after),
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "failed requests: {failures:?}");
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too little load to prove anything"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_required_verified_and_passed_on() {
    let ca = Ca::new("server CA");
    let clients = Ca::new("client CA");
    let strangers = Ca::new("someone else");
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            tls_secret("m-cert", &ca.server(&["mtls.example.com"])),
            ca_secret("client-ca", &clients.pem()),
            route_with_tls(
                "m",
                "mtls.example.com",
                "svc",
                "{certificateRef: {name: m-cert}, clientValidation: {caCertificateRef: {name: client-ca}, forwardSubjectHeader: x-client-subject}}",
            ),
            route_with_tls(
                "opt",
                "optional.example.com",
                "svc",
                "{clientValidation: {caCertificateRef: {name: client-ca}, mode: Optional}}",
            ),
            ingress("plain", "plain.example.com", &[("/", "Prefix", "svc")]),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let alice = TlsClient {
        client_cert: Some({
            let i = clients.client("alice");
            (i.cert, i.key)
        }),
        ..TlsClient::default()
    };
    let mallory = TlsClient {
        client_cert: Some({
            let i = strangers.client("mallory");
            (i.cert, i.key)
        }),
        ..TlsClient::default()
    };

    let mut conn = alice
        .connect(gw.https, Some("mtls.example.com"))
        .await
        .unwrap();
    let reply = conn.get("mtls.example.com", "/").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.echo().unwrap().header("x-client-subject"),
        Some("CN=alice")
    );

    // No certificate, or one from another CA: no request gets through. In
    // TLS 1.3 the server's refusal arrives after the client's handshake
    // completes, so it shows on the first request.
    for client in [&TlsClient::default(), &mallory] {
        let outcome = match client.connect(gw.https, Some("mtls.example.com")).await {
            Err(e) => Err(e),
            Ok(mut c) => c.get("mtls.example.com", "/").await.map(|r| r.status),
        };
        assert!(outcome.is_err(), "refused, got {outcome:?}");
    }

    // Optional: without a certificate is fine, a bad one is not.
    let mut conn = TlsClient::default()
        .connect(gw.https, Some("optional.example.com"))
        .await
        .unwrap();
    assert_eq!(
        conn.get("optional.example.com", "/").await.unwrap().status,
        200
    );
    let outcome = match mallory
        .connect(gw.https, Some("optional.example.com"))
        .await
    {
        Err(e) => Err(e),
        Ok(mut c) => c.get("optional.example.com", "/").await.map(|r| r.status),
    };
    assert!(
        outcome.is_err(),
        "a bad certificate is refused, got {outcome:?}"
    );

    // A connection made for another host cannot be used to reach the
    // mTLS host, and a forged identity header is not passed on.
    let mut conn = TlsClient::default()
        .connect(gw.https, Some("plain.example.com"))
        .await
        .unwrap();
    assert_eq!(conn.get("mtls.example.com", "/").await.unwrap().status, 421);
    assert_eq!(
        conn.get("plain.example.com", "/").await.unwrap().status,
        200
    );
}

fn route_to(name: &str, host: &str, service: &str, protocol: &str, backend_tls: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  rules:\n  - backendTls: {backend_tls}\n    backends: [{{name: {service}, port: 80, protocol: {protocol}}}]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn https_backends_are_verified_by_name_and_ca_with_optional_client_certificates() {
    let upstream_ca = Ca::new("upstream CA");
    let other_ca = Ca::new("another CA");
    let gateway_clients = Ca::new("gateway client CA");
    let good = upstream_ca.server(&["backend.internal"]);
    let stranger = other_ca.server(&["backend.internal"]);
    let secure = EchoServer::start_tls("secure", &good.cert, &good.key, None).await;
    let impostor = EchoServer::start_tls("impostor", &stranger.cert, &stranger.key, None).await;
    let picky =
        EchoServer::start_tls("picky", &good.cert, &good.key, Some(&gateway_clients.pem())).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = "{caCertificateRef: {name: upstream-ca}, serverName: backend.internal}";
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("secure", &[secure.addr]),
            // Protocol and TLS belong to a cluster (a Service port), so the
            // h2 route gets a Service of its own.
            service("secure-h2", &[secure.addr]),
            service("secure-name", &[secure.addr]),
            service("secure-roots", &[secure.addr]),
            service("impostor", &[impostor.addr]),
            service("picky", &[picky.addr]),
            service("picky-mutual", &[picky.addr]),
            ca_secret("upstream-ca", &upstream_ca.pem()),
            tls_secret("gateway-client", &gateway_clients.client("gatehouse")),
            route_to("ok", "ok.example.com", "secure", "HTTPS", ca),
            route_to("h2", "h2.example.com", "secure-h2", "GRPCS", ca),
            route_to("impostor", "impostor.example.com", "impostor", "HTTPS", ca),
            route_to(
                "wrong-name",
                "wrong-name.example.com",
                "secure-name",
                "HTTPS",
                "{caCertificateRef: {name: upstream-ca}, serverName: other.internal}",
            ),
            route_to(
                "system-roots",
                "system.example.com",
                "secure-roots",
                "HTTPS",
                "{serverName: backend.internal}",
            ),
            route_to("no-client-cert", "picky.example.com", "picky", "HTTPS", ca),
            route_to(
                "client-cert",
                "mutual.example.com",
                "picky-mutual",
                "HTTPS",
                "{caCertificateRef: {name: upstream-ca}, serverName: backend.internal, clientCertificateRef: {name: gateway-client}}",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let expect = [
        ("ok.example.com", 200, Some("HTTP/1.1")),
        ("h2.example.com", 200, Some("HTTP/2.0")),
        ("mutual.example.com", 200, Some("HTTP/1.1")),
        ("impostor.example.com", 502, None),
        ("wrong-name.example.com", 502, None),
        ("system.example.com", 502, None),
        ("picky.example.com", 502, None),
    ];
    for (host, status, protocol) in expect {
        let reply = match client.get(gw.http, host, "/over-tls").await {
            Ok(r) => r,
            Err(e) => panic!("{host}: {e}\n{}", gw.logs()),
        };
        assert_eq!(reply.status, status, "{host}: {}", reply.text());
        if let Some(p) = protocol {
            let echo = reply.echo().unwrap();
            assert_eq!(echo.protocol, p, "{host}");
            assert_eq!(echo.path, "/over-tls");
        }
    }
    assert_eq!(
        impostor.requests(),
        0,
        "nothing reaches an unverified backend"
    );
    let logs = gw.logs();
    assert!(logs.contains("upstream TLS connection failed"), "{logs}");
    assert!(logs.contains("UnknownIssuer"), "{logs}");
    assert!(
        logs.contains("certificate not valid for name \"other.internal\""),
        "{logs}"
    );
}
