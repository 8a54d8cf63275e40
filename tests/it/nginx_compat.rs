//! The ingress-nginx compatibility layer through the real binary: each
//! mapped annotation's behaviour, the same requests through nginx where
//! nginx itself implements the behaviour, and `gatehouse migrate`'s
//! ApiRoutes routing like the annotated Ingresses they replace.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::nginx::Nginx;
use testkit::{EchoServer, GatewayProcess, HttpClient, Reply, eventually, run_gatehouse};

/// An Ingress in `default` with one rule for `host`, one path to
/// `backend` (port 80), and the given `nginx.ingress.kubernetes.io/`
/// annotations.
fn annotated(
    name: &str,
    host: &str,
    path: &str,
    backend: &str,
    annotations: &[(&str, &str)],
) -> String {
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| {
            (
                format!("nginx.ingress.kubernetes.io/{k}"),
                serde_json::Value::from(*v),
            )
        })
        .collect();
    serde_json::json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"ingressClassName": "gatehouse", "rules": [{"host": host, "http": {"paths": [
            {"path": path, "pathType": "ImplementationSpecific",
             "backend": {"service": {"name": backend, "port": {"number": 80}}}}
        ]}}]},
    })
    .to_string()
}

async fn send(
    client: &HttpClient,
    addr: SocketAddr,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    client
        .send(addr, method, host, path, headers, Bytes::new())
        .await
        .unwrap()
}

async fn get(
    client: &HttpClient,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    send(client, addr, Method::GET, host, path, headers).await
}

fn upstream_path(r: &Reply) -> String {
    let e = r
        .echo()
        .unwrap_or_else(|| panic!("not an echo reply: {} {}", r.status, r.text()));
    if e.query.is_empty() {
        e.path
    } else {
        format!("{}?{}", e.path, e.query)
    }
}

fn location(r: &Reply) -> &str {
    r.headers
        .get("location")
        .map_or("", |v| v.to_str().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn mapped_annotations_behave_like_ingress_nginx() {
    let app = EchoServer::start("app").await;
    let stable = EchoServer::start("stable").await;
    let next = EchoServer::start("next").await;
    let (a, b) = (EchoServer::start("a").await, EchoServer::start("b").await);
    let auth = EchoServer::start("auth").await;
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let users = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "users", "namespace": "default", "labels": {"gatehouse.dev/secret": "true"}},
        "stringData": {"auth": format!("carol:{hash}\n")},
    })
    .to_string();
    let auth_url = format!("http://{}/check", auth.addr);
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("app", &[app.addr]),
            service("stable", &[stable.addr]),
            service("next", &[next.addr]),
            service("pair", &[a.addr, b.addr]),
            users,
            annotated(
                "rewrite",
                "rw.example",
                "/something(/|$)(.*)",
                "app",
                &[("rewrite-target", "/$2")],
            ),
            annotated("web", "canary.example", "/", "stable", &[]),
            annotated(
                "web-canary",
                "canary.example",
                "/",
                "next",
                &[
                    ("canary", "true"),
                    ("canary-weight", "30"),
                    ("canary-by-header", "X-Canary"),
                    ("canary-by-cookie", "canary"),
                ],
            ),
            annotated(
                "limited",
                "limited.example",
                "/",
                "app",
                &[("limit-rps", "2"), ("limit-burst-multiplier", "2")],
            ),
            annotated(
                "cors-any",
                "cors-any.example",
                "/",
                "app",
                &[("enable-cors", "true")],
            ),
            annotated(
                "cors",
                "cors.example",
                "/",
                "app",
                &[
                    ("enable-cors", "true"),
                    ("cors-allow-origin", "https://app.example"),
                ],
            ),
            annotated(
                "basic",
                "basic.example",
                "/",
                "app",
                &[
                    ("auth-type", "basic"),
                    ("auth-secret", "users"),
                    ("auth-realm", "Staff"),
                ],
            ),
            annotated(
                "external",
                "ext.example",
                "/",
                "app",
                &[
                    ("auth-url", &auth_url),
                    ("auth-response-headers", "X-Echo-Name"),
                ],
            ),
            annotated(
                "moved",
                "moved.example",
                "/",
                "app",
                &[("permanent-redirect", "https://new.example/landing")],
            ),
            annotated(
                "tmp",
                "tmp.example",
                "/",
                "app",
                &[
                    ("temporal-redirect", "https://other.example$request_uri"),
                    ("temporal-redirect-code", "307"),
                ],
            ),
            annotated("root", "root.example", "/", "app", &[("app-root", "/app")]),
            annotated(
                "sticky",
                "sticky.example",
                "/",
                "pair",
                &[("affinity", "cookie"), ("session-cookie-name", "route")],
            ),
            annotated(
                "hashed",
                "hash.example",
                "/",
                "pair",
                &[("upstream-hash-by", "$http_x_user")],
            ),
            annotated(
                "small",
                "small.example",
                "/",
                "app",
                &[("proxy-body-size", "1k")],
            ),
            annotated(
                "allow",
                "allow.example",
                "/",
                "app",
                &[("whitelist-source-range", "10.0.0.0/8")],
            ),
            annotated(
                "snippet",
                "snippet.example",
                "/",
                "app",
                &[("configuration-snippet", "deny all;")],
            ),
            annotated(
                "broken",
                "broken.example",
                "/",
                "app",
                &[("proxy-body-size", "lots")],
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &["--nginx-compat"]).await;
    let c = HttpClient::new();
    let gw_addr = gw.http;

    // rewrite-target with capture groups; the path regex is
    // case-insensitive and anchored at the start; the query is kept.
    for (path, upstream) in [
        ("/something", "/"),
        ("/something/", "/"),
        ("/something/new", "/new"),
        ("/SOMETHING/a/b?q=1", "/a/b?q=1"),
    ] {
        let r = get(&c, gw_addr, "rw.example", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(upstream_path(&r), upstream, "{path}");
    }
    assert_eq!(
        get(&c, gw_addr, "rw.example", "/other", &[]).await.status,
        404
    );

    // Canary: header, then cookie, then weight.
    for _ in 0..5 {
        let always = get(
            &c,
            gw_addr,
            "canary.example",
            "/",
            &[("x-canary", "always")],
        )
        .await;
        assert_eq!(always.backend().as_deref(), Some("next"));
        let never = get(
            &c,
            gw_addr,
            "canary.example",
            "/",
            &[("x-canary", "never"), ("cookie", "canary=always")],
        )
        .await;
        assert_eq!(
            never.backend().as_deref(),
            Some("stable"),
            "the header wins over the cookie"
        );
        let cookie = get(
            &c,
            gw_addr,
            "canary.example",
            "/",
            &[("cookie", "a=1; canary=always")],
        )
        .await;
        assert_eq!(cookie.backend().as_deref(), Some("next"));
        let no = get(
            &c,
            gw_addr,
            "canary.example",
            "/",
            &[("cookie", "canary=never; b=2")],
        )
        .await;
        assert_eq!(no.backend().as_deref(), Some("stable"));
    }
    let mut to_next = 0;
    for _ in 0..1000 {
        if get(&c, gw_addr, "canary.example", "/", &[])
            .await
            .backend()
            .as_deref()
            == Some("next")
        {
            to_next += 1;
        }
    }
    assert!(
        (230..=370).contains(&to_next),
        "canary-weight 30: {to_next} of 1000 went to the canary"
    );

    // limit-rps 2 x multiplier 2: a burst of 5 passes, then 429.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            get(&c, gw_addr, "limited.example", "/", &[])
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    // CORS preflight with ingress-nginx's defaults for what is not set.
    let before = app.requests();
    let pre = send(
        &c,
        gw_addr,
        Method::OPTIONS,
        "cors.example",
        "/x",
        &[
            ("origin", "https://app.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert_eq!(pre.status, 204);
    let h = |name: &str| {
        pre.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(
        h("access-control-allow-origin").as_deref(),
        Some("https://app.example")
    );
    assert!(h("access-control-allow-methods").unwrap().contains("PUT"));
    assert_eq!(
        h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(h("access-control-max-age").as_deref(), Some("1728000"));
    assert_eq!(app.requests(), before, "preflights never reach the backend");
    let other = send(
        &c,
        gw_addr,
        Method::OPTIONS,
        "cors.example",
        "/x",
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "PUT"),
        ],
    )
    .await;
    assert!(other.headers.get("access-control-allow-origin").is_none());
    // enable-cors alone: any origin, without credentials (the pair
    // ingress-nginx sends, `*` with credentials, browsers refuse).
    let any = send(
        &c,
        gw_addr,
        Method::OPTIONS,
        "cors-any.example",
        "/x",
        &[
            ("origin", "https://anywhere.example"),
            ("access-control-request-method", "GET"),
        ],
    )
    .await;
    assert_eq!(any.status, 204);
    assert_eq!(any.headers.get("access-control-allow-origin").unwrap(), "*");
    assert!(
        any.headers
            .get("access-control-allow-credentials")
            .is_none()
    );

    // Basic auth from the htpasswd Secret.
    let none = get(&c, gw_addr, "basic.example", "/", &[]).await;
    assert_eq!(none.status, 401);
    let challenge = none
        .headers
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        challenge.starts_with("Basic realm=\"Staff\""),
        "{challenge}"
    );
    let good = format!("Basic {}", base64_encode("carol:s3cret"));
    let bad = format!("Basic {}", base64_encode("carol:wrong"));
    assert_eq!(
        get(
            &c,
            gw_addr,
            "basic.example",
            "/",
            &[("authorization", &good)]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(
            &c,
            gw_addr,
            "basic.example",
            "/",
            &[("authorization", &bad)]
        )
        .await
        .status,
        401
    );

    // External auth: a 2xx lets the request through with the listed
    // response headers; anything else goes back to the client.
    let ok = get(
        &c,
        gw_addr,
        "ext.example",
        "/",
        &[("authorization", "Bearer t")],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.echo().unwrap().header("x-echo-name"), Some("auth"));
    assert!(auth.requests() >= 1);
    auth.fail_with(Some(403));
    assert_eq!(get(&c, gw_addr, "ext.example", "/", &[]).await.status, 403);
    auth.fail_with(None);

    // Redirects.
    let moved = get(&c, gw_addr, "moved.example", "/anything?q=1", &[]).await;
    assert_eq!(
        (moved.status.as_u16(), location(&moved)),
        (301, "https://new.example/landing")
    );
    let tmp = get(&c, gw_addr, "tmp.example", "/a/b?x=1", &[]).await;
    assert_eq!(
        (tmp.status.as_u16(), location(&tmp)),
        (307, "https://other.example/a/b?x=1")
    );
    let root = get(&c, gw_addr, "root.example", "/", &[]).await;
    assert_eq!(root.status, 302);
    assert_eq!(
        location(&root),
        "http://root.example/app",
        "no port named, none added"
    );
    assert_eq!(
        upstream_path(&get(&c, gw_addr, "root.example", "/app", &[]).await),
        "/app"
    );

    // Cookie affinity pins a client to one endpoint.
    let first = get(&c, gw_addr, "sticky.example", "/", &[]).await;
    let cookie = first
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(cookie.starts_with("route="), "{cookie}");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let pinned = first.backend().unwrap();
    for _ in 0..10 {
        let r = get(&c, gw_addr, "sticky.example", "/", &[("cookie", &pair)]).await;
        assert_eq!(r.backend().unwrap(), pinned);
    }

    // upstream-hash-by: one user, one endpoint; different users spread.
    let mut seen = BTreeMap::new();
    for user in 0..20 {
        let id = format!("user-{user}");
        let one = get(&c, gw_addr, "hash.example", "/", &[("x-user", &id)])
            .await
            .backend()
            .unwrap();
        for _ in 0..3 {
            assert_eq!(
                get(&c, gw_addr, "hash.example", "/", &[("x-user", &id)])
                    .await
                    .backend()
                    .unwrap(),
                one
            );
        }
        *seen.entry(one).or_insert(0) += 1;
    }
    assert_eq!(
        seen.len(),
        2,
        "20 users all hashed to one endpoint: {seen:?}"
    );

    // proxy-body-size.
    let big = c
        .send(
            gw_addr,
            Method::POST,
            "small.example",
            "/",
            &[],
            Bytes::from(vec![b'x'; 2000]),
        )
        .await
        .unwrap();
    assert_eq!(big.status, 413);
    let fits = c
        .send(
            gw_addr,
            Method::POST,
            "small.example",
            "/",
            &[],
            Bytes::from(vec![b'x'; 500]),
        )
        .await
        .unwrap();
    assert_eq!(fits.status, 200);

    // The allow list refuses loopback; an unsupported snippet is not
    // executed but the Ingress is served; a malformed value keeps the
    // whole Ingress from being served.
    assert_eq!(
        get(&c, gw_addr, "allow.example", "/", &[]).await.status,
        403
    );
    assert_eq!(
        get(&c, gw_addr, "snippet.example", "/", &[]).await.status,
        200
    );
    assert_eq!(
        get(&c, gw_addr, "broken.example", "/", &[]).await.status,
        404
    );
    let (status, text) = run_gatehouse(&[
        "validate",
        "--nginx-compat",
        "-f",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(
        text.contains("Ingress default/broken")
            && text.contains("nginx.ingress.kubernetes.io/proxy-body-size")
            && text.contains("\"lots\" is not a size"),
        "{text}"
    );
    assert!(
        text.contains("nginx.ingress.kubernetes.io/configuration-snippet")
            && text.contains("never executed"),
        "{text}"
    );
    drop((a, b, stable, next));
}

/// An Ingress like [`annotated`] with `spec.tls` for its host (no
/// Secret: the default certificate).
fn with_tls(name: &str, host: &str, annotations: &[(&str, &str)]) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(&annotated(name, host, "/", "app", annotations)).unwrap();
    v["spec"]["tls"] = serde_json::json!([{"hosts": [host]}]);
    v.to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_timeout_redirect_and_connection_annotations() {
    let app = EchoServer::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("app", &[app.addr]),
            // Its own Service: a cluster speaks one protocol.
            service("h2", &[app.addr]),
            annotated(
                "h2c",
                "h2c.example",
                "/",
                "h2",
                &[("backend-protocol", "H2C")],
            ),
            annotated(
                "slow",
                "slow.example",
                "/",
                "app",
                &[("proxy-read-timeout", "1")],
            ),
            annotated(
                "conns",
                "conns.example",
                "/",
                "app",
                &[("limit-connections", "2")],
            ),
            annotated(
                "deny",
                "deny.example",
                "/",
                "app",
                &[("denylist-source-range", "127.0.0.0/8")],
            ),
            annotated(
                "forced",
                "force.example",
                "/",
                "app",
                &[("force-ssl-redirect", "true")],
            ),
            with_tls("tls-default", "tls.example", &[]),
            with_tls("tls-off", "plain.example", &[("ssl-redirect", "false")]),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &["--nginx-compat"]).await;
    let c = HttpClient::new();

    // backend-protocol: H2C reaches the backend over HTTP/2.
    let r = get(&c, gw.http, "h2c.example", "/", &[]).await;
    assert_eq!(r.echo().unwrap().protocol, "HTTP/2.0");

    // proxy-read-timeout: a backend that has not answered in time is a 504.
    assert_eq!(
        get(
            &c,
            gw.http,
            "slow.example",
            "/",
            &[("x-echo-delay-ms", "200")]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        get(
            &c,
            gw.http,
            "slow.example",
            "/",
            &[("x-echo-delay-ms", "1600")]
        )
        .await
        .status,
        504
    );

    // limit-connections: two requests of one client in flight, a third is
    // refused until one finishes.
    let slow = |c: HttpClient, addr| async move {
        c.send(
            addr,
            Method::GET,
            "conns.example",
            "/",
            &[("x-echo-delay-ms", "700")],
            Bytes::new(),
        )
        .await
        .unwrap()
        .status
    };
    let before = app.requests();
    let first = tokio::spawn(slow(HttpClient::new(), gw.http));
    let second = tokio::spawn(slow(HttpClient::new(), gw.http));
    // Both have reached the backend, which holds them for 700 ms.
    eventually(
        std::time::Duration::from_secs(5),
        "both slow requests in flight",
        || {
            let n = app.requests();
            async move { n >= before + 2 }
        },
    )
    .await;
    assert_eq!(
        get(&c, gw.http, "conns.example", "/", &[]).await.status,
        429
    );
    assert_eq!(
        (
            first.await.unwrap().as_u16(),
            second.await.unwrap().as_u16()
        ),
        (200, 200)
    );
    assert_eq!(
        get(&c, gw.http, "conns.example", "/", &[]).await.status,
        200
    );

    // denylist-source-range refuses loopback.
    assert_eq!(get(&c, gw.http, "deny.example", "/", &[]).await.status, 403);

    // ssl-redirect: on by default for TLS hosts (308), off when asked;
    // force-ssl-redirect without spec.tls.
    let tls = get(&c, gw.http, "tls.example", "/a?b=1", &[]).await;
    assert_eq!(
        (tls.status.as_u16(), location(&tls)),
        (308, "https://tls.example/a?b=1")
    );
    assert_eq!(
        get(&c, gw.http, "plain.example", "/", &[]).await.status,
        200
    );
    let forced = get(&c, gw.http, "force.example", "/x", &[]).await;
    assert_eq!(
        (forced.status.as_u16(), location(&forced)),
        (308, "https://force.example/x")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_flag_nginx_annotations_change_nothing_and_say_so() {
    let app = EchoServer::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("app", &[app.addr]),
            annotated(
                "plain",
                "plain.example",
                "/",
                "app",
                &[("permanent-redirect", "https://new.example/")],
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();
    assert_eq!(
        get(&c, gw.http, "plain.example", "/", &[]).await.status,
        200
    );
    let (_, text) = run_gatehouse(&["validate", "-f", dir.path().to_str().unwrap()]);
    assert!(
        text.contains("annotation(s) are ignored: start Gatehouse with --nginx-compat"),
        "{text}"
    );
}

fn base64_encode(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// What a request came to, comparable across gateways: the status, the
/// backend and upstream path that answered, or where a redirect points
/// (with the request's own host left out).
async fn outcome(
    c: &HttpClient,
    addr: SocketAddr,
    host: &str,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: usize,
) -> String {
    let r = c
        .send(
            addr,
            method,
            host,
            path,
            headers,
            Bytes::from(vec![b'x'; body]),
        )
        .await
        .unwrap();
    let status = r.status.as_u16();
    if let Some(loc) = r.headers.get("location") {
        let loc = loc.to_str().unwrap();
        let rest = ["http://", "https://"]
            .iter()
            .find_map(|s| loc.strip_prefix(s))
            .unwrap_or(loc);
        let own = rest
            .strip_prefix(host)
            .map(|r| r.trim_start_matches(|c: char| c == ':' || c.is_ascii_digit()));
        return format!("{status} -> {}", own.map_or(loc.to_owned(), str::to_owned));
    }
    match r.echo() {
        Some(e) => format!("{status} {} {}", e.name, upstream_path(&r)),
        None => format!("{status}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn same_requests_through_nginx_give_the_same_answers() {
    let app = EchoServer::start("app").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("app", &[app.addr]),
            annotated(
                "rewrite",
                "rw.example",
                "/something(/|$)(.*)",
                "app",
                &[("rewrite-target", "/$2")],
            ),
            annotated(
                "plain-rewrite",
                "flat.example",
                "/old",
                "app",
                &[("rewrite-target", "/")],
            ),
            annotated(
                "moved",
                "moved.example",
                "/",
                "app",
                &[("permanent-redirect", "https://new.example/landing")],
            ),
            annotated("root", "root.example", "/", "app", &[("app-root", "/app")]),
            annotated(
                "small",
                "small.example",
                "/",
                "app",
                &[("proxy-body-size", "1k")],
            ),
            annotated(
                "limited",
                "limited.example",
                "/",
                "app",
                &[("limit-rps", "2"), ("limit-burst-multiplier", "2")],
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &["--nginx-compat"]).await;
    // The locations ingress-nginx writes for these annotations (its
    // template: regex locations `~* "^<path>"` with `rewrite "(?i)<path>"
    // <target> break;`, `return <code> <url>;`, the app-root `if`,
    // `client_max_body_size`, and `limit_req` with burst = rps x
    // multiplier, nodelay, and the status set to 429 as Gatehouse's).
    let up = app.addr;
    let nginx = Nginx::start(&format!(
        "  limit_req_zone $binary_remote_addr zone=rps:1m rate=2r/s;
  server {{ listen {{listen}}; server_name rw.example;
    location ~* \"^/something(/|$)(.*)\" {{ rewrite \"(?i)/something(/|$)(.*)\" /$2 break; proxy_pass http://{up}; }} }}
  server {{ listen {{listen}}; server_name flat.example;
    location ~* \"^/old\" {{ rewrite \"(?i)/old\" / break; proxy_pass http://{up}; }} }}
  server {{ listen {{listen}}; server_name moved.example;
    location / {{ return 301 https://new.example/landing; }} }}
  server {{ listen {{listen}}; server_name root.example;
    if ($uri = /) {{ return 302 $scheme://$http_host/app; }}
    location / {{ proxy_pass http://{up}; }} }}
  server {{ listen {{listen}}; server_name small.example;
    location / {{ client_max_body_size 1k; proxy_pass http://{up}; }} }}
  server {{ listen {{listen}}; server_name limited.example;
    location / {{ limit_req zone=rps burst=4 nodelay; limit_req_status 429; proxy_pass http://{up}; }} }}"
    ))
    .await;
    let requests: &[(&str, Method, &str, usize)] = &[
        ("rw.example", Method::GET, "/something", 0),
        ("rw.example", Method::GET, "/something/", 0),
        ("rw.example", Method::GET, "/something/new", 0),
        ("rw.example", Method::GET, "/SomeThing/a/b?q=1&r=2", 0),
        ("rw.example", Method::GET, "/somethingelse/x", 0),
        ("flat.example", Method::GET, "/old", 0),
        ("flat.example", Method::GET, "/old/page?x=1", 0),
        ("moved.example", Method::GET, "/", 0),
        ("moved.example", Method::GET, "/deep/path?x=1", 0),
        ("root.example", Method::GET, "/", 0),
        ("root.example", Method::GET, "/?from=mail", 0),
        ("root.example", Method::GET, "/app", 0),
        ("root.example", Method::GET, "/other", 0),
        ("small.example", Method::POST, "/", 1024),
        ("small.example", Method::POST, "/", 1025),
        ("small.example", Method::POST, "/", 5000),
    ];
    let c = HttpClient::new();
    for (host, method, path, body) in requests {
        let ours = outcome(&c, gw.http, host, method.clone(), path, &[], *body).await;
        let theirs = outcome(&c, nginx.addr, host, method.clone(), path, &[], *body).await;
        assert_eq!(ours, theirs, "{method} {host}{path} with {body} bytes");
    }
    // One burst, back to back: the same requests pass.
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..8 {
        ours.push(outcome(&c, gw.http, "limited.example", Method::GET, "/", &[], 0).await);
        theirs.push(outcome(&c, nginx.addr, "limited.example", Method::GET, "/", &[], 0).await);
    }
    assert_eq!(ours, theirs);
    assert_eq!(ours.iter().filter(|o| o.starts_with("200")).count(), 5);
}

/// A request: host, path and headers.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// A Service and its EndpointSlice in `namespace`.
fn service_in(namespace: &str, name: &str, addr: SocketAddr) -> String {
    service(name, &[addr])
        .replace(
            &format!("metadata: {{name: {name}}}"),
            &format!("metadata: {{name: {name}, namespace: {namespace}}}"),
        )
        .replace(
            &format!("  name: {name}-0\n"),
            &format!("  name: {name}-0\n  namespace: {namespace}\n"),
        )
}

fn fixture_services(dir: &Path, echoes: &[(&str, &str, &EchoServer)]) {
    let mut parts = vec![INGRESS_CLASS.to_owned()];
    for (ns, name, echo) in echoes {
        parts.push(service_in(ns, name, echo.addr));
    }
    write_atomic(dir, "services.yaml", &docs(&parts));
}

#[tokio::test(flavor = "multi_thread")]
async fn migrated_apiroutes_route_the_same_requests_to_the_same_backends() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ingress-nginx");
    let fixture = fixture.to_str().unwrap();
    // The report: per Ingress, what is the same, what differs, what is
    // unsupported, and the exit status says one Ingress cannot be served.
    let (status, report) = run_gatehouse(&["migrate", "-f", fixture]);
    assert!(!status.success(), "{report}");
    for expected in [
        "Ingress shop/storefront: served, with differences to review",
        "Ingress shop/api: served, with differences to review",
        "  same         rewrite-target:",
        "Ingress shop/api-canary: behaves the same",
        "Ingress shop/secure: NOT SERVED until the errors below are fixed",
        "  refused      auth-tls-verify-client:",
        "  unsupported  configuration-snippet:",
        "  becomes      ApiRoute api, RateLimitPolicy api-limits",
        "Ingress docs/handbook: behaves the same",
    ] {
        assert!(
            report.contains(expected),
            "missing {expected:?} in\n{report}"
        );
    }
    let (_, emitted) = run_gatehouse(&["migrate", "-f", fixture, "--emit", "apiroute"]);
    assert!(
        emitted.contains("kind: ApiRoute") && emitted.contains("kind: RateLimitPolicy"),
        "{emitted}"
    );

    let names = [
        ("shop", "web"),
        ("shop", "api-v1"),
        ("shop", "api-v2"),
        ("shop", "admin"),
        ("shop", "blog"),
        ("shop", "grpc"),
        ("docs", "handbook"),
    ];
    let mut echoes = Vec::new();
    for (ns, name) in names {
        echoes.push((ns, name, EchoServer::start(&format!("{ns}/{name}")).await));
    }
    let echo_refs: Vec<(&str, &str, &EchoServer)> =
        echoes.iter().map(|(n, s, e)| (*n, *s, e)).collect();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "admin-users", "namespace": "shop", "labels": {"gatehouse.dev/secret": "true"}},
        "stringData": {"auth": format!("ops:{hash}\n")},
    })
    .to_string();

    let with_ingresses = tempfile::tempdir().unwrap();
    fixture_services(with_ingresses.path(), &echo_refs);
    write_atomic(with_ingresses.path(), "secret.yaml", &secret);
    for entry in std::fs::read_dir(fixture).unwrap() {
        let path = entry.unwrap().path();
        write_atomic(
            with_ingresses.path(),
            path.file_name().unwrap().to_str().unwrap(),
            &std::fs::read_to_string(&path).unwrap(),
        );
    }
    let with_routes = tempfile::tempdir().unwrap();
    fixture_services(with_routes.path(), &echo_refs);
    write_atomic(with_routes.path(), "secret.yaml", &secret);
    write_atomic(with_routes.path(), "migrated.yaml", &emitted);

    let compat = GatewayProcess::standalone(with_ingresses.path(), &["--nginx-compat"]).await;
    let migrated = GatewayProcess::standalone(with_routes.path(), &[]).await;
    let admin = format!("Basic {}", base64_encode("ops:pw"));
    let requests: &[Case<'_>] = &[
        ("shop.example", "/", &[]),
        ("shop.example", "/home", &[]),
        ("shop.example", "/products/42?color=red", &[]),
        (
            "shop.example",
            "/api/v1/orders?page=2",
            &[("x-canary", "never")],
        ),
        ("shop.example", "/API/cart", &[("x-canary", "never")]),
        ("shop.example", "/api", &[("x-canary", "always")]),
        ("shop.example", "/api/users", &[("cookie", "canary=always")]),
        (
            "shop.example",
            "/api/users",
            &[("cookie", "session=1; canary=never")],
        ),
        ("admin.example", "/", &[]),
        ("admin.example", "/reports", &[("authorization", &admin)]),
        (
            "admin.example",
            "/reports",
            &[("authorization", "Basic b3BzOndyb25n")],
        ),
        ("old.example", "/", &[]),
        ("old.example", "/some/page", &[]),
        ("blog.example", "/post/1", &[]),
        ("docs.example", "/healthz", &[]),
        ("docs.example", "/guide/intro", &[]),
        ("secure.example", "/", &[]),
        ("nobody.example", "/", &[]),
    ];
    let c = HttpClient::new();
    for (host, path, headers) in requests {
        let a = outcome(&c, compat.http, host, Method::GET, path, headers, 0).await;
        let b = outcome(&c, migrated.http, host, Method::GET, path, headers, 0).await;
        assert_eq!(
            a, b,
            "GET {host}{path} {headers:?}: Ingress with --nginx-compat vs migrated ApiRoutes"
        );
    }
    // The canary's weight applies to both the same way.
    for gw in [&compat, &migrated] {
        let mut canary = 0;
        for _ in 0..400 {
            if outcome(&c, gw.http, "shop.example", Method::GET, "/api/x", &[], 0)
                .await
                .contains("shop/api-v2")
            {
                canary += 1;
            }
        }
        assert!(
            (20..=80).contains(&canary),
            "canary-weight 10: {canary} of 400"
        );
    }
}
