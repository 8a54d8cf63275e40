//! Edge policies: client address lists, API keys, basic auth, CORS.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, Reply, run_gatehouse};

fn rule_route(name: &str, host: &str, rule: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  rules:\n  - backends: [{{name: svc, port: 80}}]\n{rule}"
    )
}

fn secret(name: &str, entries: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "default", "labels": {"gatehouse.dev/secret": "true"}},
        "stringData": data,
    })
    .to_string()
}

async fn send(
    client: &HttpClient,
    gw: &GatewayProcess,
    method: Method,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    client
        .send(gw.http, method, host, path, headers, Bytes::new())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_policy_accepts_and_rejects() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let htpasswd = format!("# users\ncarol:{hash}\n");
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            secret("keys", &[("alice", "key-a"), ("bob", "key-b\n")]),
            secret("users", &[("auth", &htpasswd)]),
            rule_route(
                "allow",
                "allow.example.com",
                "    access: {allow: [10.0.0.0/8]}\n",
            ),
            rule_route(
                "deny",
                "deny.example.com",
                "    access: {deny: [127.0.0.0/8, \"::1\"]}\n",
            ),
            rule_route(
                "keys",
                "keys.example.com",
                "    authentication: {apiKey: {secretRef: {name: keys}, forwardNameHeader: X-Consumer}}\n",
            ),
            "apiVersion: gatehouse.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {name: per-app, namespace: default}\nspec:\n  targetRefs: [{kind: ApiRoute, name: keys}]\n  limits: [{name: per-app, key: {type: ApiKey}, rate: {requests: 1, per: 1m}, burst: 1}]\n".to_owned(),
            rule_route(
                "query",
                "query.example.com",
                "    authentication: {apiKey: {secretRef: {name: keys}, queryParameter: apikey}}\n",
            ),
            rule_route(
                "basic",
                "basic.example.com",
                "    authentication: {basic: {secretRef: {name: users}, realm: staff, forwardUserHeader: X-User}}\n",
            ),
            rule_route(
                "cors",
                "cors.example.com",
                "    cors: {allowOrigins: [\"https://app.example.com\", \"https://*.partner.example.com\"], allowMethods: [GET, POST], allowHeaders: [Content-Type], exposeHeaders: [X-Total], allowCredentials: true, maxAgeSeconds: 600}\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &["--trusted-proxies", "127.0.0.1/32"]).await;
    let c = HttpClient::new();
    let get = Method::GET;

    // Addresses: the client address after trusted proxies counts.
    let r = send(&c, &gw, get.clone(), "allow.example.com", "/", &[]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (403, "forbidden\n"));
    let r = send(
        &c,
        &gw,
        get.clone(),
        "allow.example.com",
        "/",
        &[("x-forwarded-for", "10.1.2.3")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(&c, &gw, get.clone(), "deny.example.com", "/", &[]).await;
    assert_eq!(r.status, 403);
    let r = send(
        &c,
        &gw,
        get.clone(),
        "deny.example.com",
        "/",
        &[("x-forwarded-for", "192.0.2.1")],
    )
    .await;
    assert_eq!(r.status, 200);

    // API keys in a header: missing and wrong → 401 with a challenge.
    for headers in [
        &[][..],
        &[("x-api-key", "nope")][..],
        &[("x-api-key", "key-ab")][..],
    ] {
        let r = send(&c, &gw, get.clone(), "keys.example.com", "/", headers).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(
            r.headers["www-authenticate"],
            "ApiKey realm=\"keys.example.com\""
        );
    }
    let r = send(
        &c,
        &gw,
        get.clone(),
        "keys.example.com",
        "/",
        &[("x-api-key", "key-a"), ("x-consumer", "forged")],
    )
    .await;
    assert_eq!(r.status, 200);
    let e = r.echo().unwrap();
    assert_eq!(e.header("x-consumer"), Some("alice"));
    assert_eq!(e.header("x-api-key"), None, "the key is not passed on");
    let r = send(
        &c,
        &gw,
        get.clone(),
        "keys.example.com",
        "/",
        &[("x-api-key", "key-b")],
    )
    .await;
    assert_eq!(
        r.status, 200,
        "a trailing newline in the Secret is not part of the key"
    );
    // The key's name is the rate-limit key: two per minute per app.
    let r = send(
        &c,
        &gw,
        get.clone(),
        "keys.example.com",
        "/",
        &[("x-api-key", "key-a")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(
        &c,
        &gw,
        get.clone(),
        "keys.example.com",
        "/",
        &[("x-api-key", "key-a")],
    )
    .await;
    assert_eq!(r.status, 429, "alice's budget is spent");
    let r = send(
        &c,
        &gw,
        get.clone(),
        "keys.example.com",
        "/",
        &[("x-api-key", "key-b")],
    )
    .await;
    assert_eq!(r.status, 200, "bob has his own");

    // API keys in the query: removed before the request goes upstream.
    let r = send(
        &c,
        &gw,
        get.clone(),
        "query.example.com",
        "/items?apikey=key-b&page=2",
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.echo().unwrap().query, "page=2");
    let r = send(
        &c,
        &gw,
        get.clone(),
        "query.example.com",
        "/items?apikey=key-c",
        &[],
    )
    .await;
    assert_eq!(r.status, 401);

    // Basic auth against bcrypt hashes.
    let basic = |user: &str, pass: &str| {
        use base64::Engine;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let r = send(&c, &gw, get.clone(), "basic.example.com", "/", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.headers["www-authenticate"],
        "Basic realm=\"staff\", charset=\"UTF-8\""
    );
    for (user, pass) in [("carol", "wrong"), ("dave", "s3cret")] {
        let auth = basic(user, pass);
        let r = send(
            &c,
            &gw,
            get.clone(),
            "basic.example.com",
            "/",
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(r.status, 401, "{user}");
    }
    let auth = basic("carol", "s3cret");
    for _ in 0..2 {
        let r = send(
            &c,
            &gw,
            get.clone(),
            "basic.example.com",
            "/",
            &[("authorization", &auth)],
        )
        .await;
        assert_eq!(r.status, 200);
        let e = r.echo().unwrap();
        assert_eq!(e.header("x-user"), Some("carol"));
        assert_eq!(e.header("authorization"), None);
    }
    assert!(
        !gw.logs().contains("s3cret") && !gw.logs().contains("key-a"),
        "no credentials in logs"
    );

    // CORS: preflight answered by the gateway, never reaching the backend.
    let before = echo.requests();
    let pre = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "POST"),
    ];
    let r = send(&c, &gw, Method::OPTIONS, "cors.example.com", "/api", &pre).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers["access-control-allow-methods"], "GET, POST");
    assert_eq!(r.headers["access-control-allow-headers"], "Content-Type");
    assert_eq!(r.headers["access-control-allow-credentials"], "true");
    assert_eq!(r.headers["access-control-max-age"], "600");
    let pre = [
        ("origin", "https://a.partner.example.com"),
        ("access-control-request-method", "GET"),
    ];
    let r = send(&c, &gw, Method::OPTIONS, "cors.example.com", "/api", &pre).await;
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://a.partner.example.com"
    );
    for origin in [
        "https://evil.example.org",
        "https://a.b.partner.example.com",
        "http://app.example.com",
    ] {
        let pre = [("origin", origin), ("access-control-request-method", "GET")];
        let r = send(&c, &gw, Method::OPTIONS, "cors.example.com", "/api", &pre).await;
        assert_eq!(r.status, 204);
        assert!(
            r.headers.get("access-control-allow-origin").is_none(),
            "{origin}"
        );
    }
    assert_eq!(echo.requests(), before);
    let r = send(
        &c,
        &gw,
        get.clone(),
        "cors.example.com",
        "/api",
        &[("origin", "https://app.example.com")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(r.headers["access-control-expose-headers"], "X-Total");
    assert_eq!(r.headers["vary"], "Origin");
}

#[test]
fn broken_policies_keep_the_rule_from_being_served() {
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[]),
            rule_route("a", "a.example.com", "    access: {deny: [10.0.0.0/33]}\n"),
            rule_route(
                "b",
                "b.example.com",
                "    authentication: {apiKey: {secretRef: {name: missing}}}\n",
            ),
            rule_route(
                "c",
                "c.example.com",
                "    cors: {allowOrigins: [\"*\"], allowCredentials: true}\n",
            ),
            rule_route(
                "d",
                "d.example.com",
                "    validation: {jsonSchema: '{\"type\": 12}'}\n",
            ),
        ]),
    );
    let (status, out) = run_gatehouse(&["validate", "-f", dir.path().to_str().unwrap()]);
    assert!(!status.success());
    for needle in [
        "spec.rules[0].access.deny[0]",
        "spec.rules[0].authentication.apiKey.secretRef: Secret default/missing does not exist",
        "spec.rules[0].cors.allowCredentials",
        "spec.rules[0].validation.jsonSchema: not a valid JSON Schema",
    ] {
        assert!(out.contains(needle), "{needle}\n{out}");
    }
}

/// An authorization service: `Bearer good` passes as alice; anything
/// else gets its own 401 with a body and a challenge.
async fn auth_service() -> std::net::SocketAddr {
    testkit::serve_fn(|req| {
        let good = req
            .headers
            .get("authorization")
            .is_some_and(|v| v == "Bearer good");
        if good {
            let uri = req
                .headers
                .get("x-forwarded-uri")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            (
                200,
                vec![
                    ("x-user", "alice".into()),
                    ("x-other", "not copied".into()),
                    ("x-seen-uri", uri),
                ],
                Bytes::new(),
            )
        } else {
            (
                401,
                vec![("www-authenticate", "Bearer realm=\"auth\"".into())],
                Bytes::from_static(b"{\"error\":\"login first\"}"),
            )
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_external_service_decides_and_its_answer_reaches_the_client() {
    let echo = EchoServer::start("echo").await;
    let auth = auth_service().await;
    let dead = testkit::free_addr();
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            rule_route(
                "ext",
                "ext.example.com",
                &format!(
                    "    authentication: {{external: {{url: \"http://{auth}/check\", upstreamHeaders: [X-User]}}}}\n"
                ),
            ),
            rule_route(
                "down",
                "down.example.com",
                &format!(
                    "    authentication: {{external: {{url: \"http://{dead}/check\", timeout: 500ms}}}}\n"
                ),
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();
    let r = send(
        &c,
        &gw,
        Method::GET,
        "ext.example.com",
        "/orders?id=7",
        &[("authorization", "Bearer good"), ("x-user", "mallory")],
    )
    .await;
    assert_eq!(r.status, 200);
    let e = r.echo().unwrap();
    assert_eq!(
        e.header("x-user"),
        Some("alice"),
        "the service's answer replaces the client's"
    );
    assert_eq!(e.header("x-other"), None);
    let before = echo.requests();
    let r = send(
        &c,
        &gw,
        Method::POST,
        "ext.example.com",
        "/orders",
        &[("authorization", "Bearer bad")],
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"auth\"");
    assert_eq!(r.text(), "{\"error\":\"login first\"}");
    assert_eq!(
        echo.requests(),
        before,
        "a denied request never reaches the backend"
    );
    let r = send(&c, &gw, Method::GET, "down.example.com", "/", &[]).await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "authorization unavailable\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_validated_with_problem_details() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let schema = r#"{"type":"object","required":["name","qty"],"properties":{"name":{"type":"string","minLength":1},"qty":{"type":"integer","minimum":1}}}"#;
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            rule_route(
                "orders",
                "orders.example.com",
                &format!(
                    "    validation: {{maxBodyBytes: 200, requiredHeaders: [X-Source], contentTypes: [application/json], jsonSchema: '{schema}'}}\n"
                ),
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let c = HttpClient::new();
    let post = |ct: &'static str, body: &'static str, source: bool| {
        let c = c.clone();
        let addr = gw.http;
        async move {
            let mut headers = vec![("content-type", ct)];
            if source {
                headers.push(("x-source", "test"));
            }
            c.send(
                addr,
                Method::POST,
                "orders.example.com",
                "/orders",
                &headers,
                Bytes::from_static(body.as_bytes()),
            )
            .await
            .unwrap()
        }
    };
    let ok = post(
        "application/json; charset=utf-8",
        r#"{"name":"tea","qty":2}"#,
        true,
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(
        ok.echo().unwrap().body_length,
        22,
        "the body reaches the backend intact"
    );

    let r = post("application/json", r#"{"name":"tea","qty":2}"#, false).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert!(
        r.text().contains("header x-source is required"),
        "{}",
        r.text()
    );

    assert_eq!(post("text/plain", "tea", true).await.status, 415);

    let r = post("application/json", "{not json", true).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("not valid JSON"));

    let r = post("application/json", r#"{"qty":0}"#, true).await;
    assert_eq!(r.status, 400);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(doc["status"], 400);
    let pointers: Vec<&str> = doc["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.contains(&"/qty") && pointers.contains(&""),
        "{doc}"
    );

    let big = Box::leak(format!("{{\"name\":\"{}\",\"qty\":1}}", "x".repeat(300)).into_boxed_str());
    assert_eq!(post("application/json", big, true).await.status, 413);
    // A request without a body needs no content type.
    let r = c
        .send(
            gw.http,
            Method::GET,
            "orders.example.com",
            "/orders",
            &[("x-source", "t")],
            Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
}
