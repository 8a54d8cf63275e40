//! Rate limits: nginx `limit_req` burst semantics, keys, headers, and a
//! global limit shared through a real Redis that then goes away.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, ingress, service, write_atomic};
use testkit::nginx::Nginx;
use testkit::{EchoServer, GatewayProcess, HttpClient, eventually, free_addr};

fn route(name: &str, host: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: ApiRoute\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  ingressClassName: gatehouse\n  hostnames: [\"{host}\"]\n  rules:\n  - name: all\n    backends: [{{name: svc, port: 80}}]\n"
    )
}

fn policy(name: &str, target: &str, limit: &str, extra: &str) -> String {
    format!(
        "apiVersion: gatehouse.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  targetRefs: [{{kind: ApiRoute, name: {target}}}]\n  limits: [{limit}]\n{extra}"
    )
}

/// The schedule both nginx and Gatehouse see: (milliseconds after the
/// start, requests sent back to back). Batch boundaries sit at least 50 ms
/// from the instants where one more request would pass.
const SCHEDULE: [(u64, usize); 4] = [(0, 10), (250, 3), (1450, 8), (1700, 3)];

async fn run_schedule(client: &HttpClient, addr: SocketAddr, host: &str) -> Vec<usize> {
    let start = Instant::now();
    let mut passed = Vec::new();
    for (at, n) in SCHEDULE {
        tokio::time::sleep_until((start + Duration::from_millis(at)).into()).await;
        let mut ok = 0;
        for _ in 0..n {
            let reply = client.get(addr, host, "/").await.unwrap();
            match reply.status.as_u16() {
                200 => ok += 1,
                429 | 503 => {}
                other => panic!("unexpected status {other}"),
            }
        }
        passed.push(ok);
    }
    passed
}

#[tokio::test(flavor = "multi_thread")]
async fn burst_semantics_match_nginx_limit_req() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            route("r", "limited.example.com"),
            policy(
                "ten-per-second",
                "r",
                "{name: per-client, key: {type: ClientIP}, rate: {requests: 10, per: 1s}, burst: 5}",
                "",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    // Warm the connection so the first batch is not slowed by a connect.
    let _ = client.get(gw.http, "warm.example.com", "/").await.unwrap();
    let ours = run_schedule(&client, gw.http, "limited.example.com").await;

    let nginx = Nginx::start(&format!(
        "  limit_req_zone $binary_remote_addr zone=z:1m rate=10r/s;
  server {{
    listen {{listen}};
    location / {{ limit_req zone=z burst=5 nodelay; limit_req_status 429; proxy_pass http://{}; }}
  }}",
        echo.addr
    ))
    .await;
    let port = nginx.addr;
    let nginx_client = HttpClient::new();
    // nginx's first request after start is its own connection warm-up;
    // it counts against the zone, so let that budget refill.
    let _ = nginx_client.get(port, "x", "/").await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let theirs = run_schedule(&nginx_client, port, "x").await;

    assert_eq!(ours, theirs, "Gatehouse {ours:?} vs nginx {theirs:?}");
    assert_eq!(ours, [6, 2, 6, 2]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejections_carry_retry_after_and_ratelimit_headers_and_keys_are_separate() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            route("r", "keys.example.com"),
            policy(
                "per-key",
                "r",
                "{name: per-key, key: {type: Header, name: x-api-key}, rate: {requests: 1, per: 10s}, burst: 2}",
                "  responseHeaders: true\n",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let send = |key: &'static str| {
        let client = client.clone();
        let addr = gw.http;
        async move {
            client
                .send(
                    addr,
                    Method::GET,
                    "keys.example.com",
                    "/",
                    &[("x-api-key", key)],
                    bytes::Bytes::new(),
                )
                .await
                .unwrap()
        }
    };
    let first = send("alice").await;
    assert_eq!(first.status, 200);
    assert_eq!(first.headers["ratelimit-limit"], "3");
    assert_eq!(first.headers["ratelimit-remaining"], "2");
    assert_eq!(send("alice").await.status, 200);
    assert_eq!(send("alice").await.status, 200);
    let rejected = send("alice").await;
    assert_eq!(rejected.status, 429);
    assert_eq!(rejected.text(), "too many requests\n");
    assert_eq!(rejected.headers["ratelimit-remaining"], "0");
    let retry: u64 = rejected.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((9..=10).contains(&retry), "Retry-After {retry}");
    // Another key has its own budget.
    assert_eq!(send("bob").await.status, 200);
    assert_eq!(
        echo.requests(),
        4,
        "a rejected request never reaches the backend"
    );
}

/// The status of one request to `host` per entry of `users`, each sent as
/// that user (`x-user`), in order.
async fn statuses(client: &HttpClient, addr: SocketAddr, host: &str, users: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for user in users {
        let r = client
            .send(
                addr,
                Method::GET,
                host,
                "/",
                &[("x-user", *user)],
                bytes::Bytes::new(),
            )
            .await
            .unwrap();
        out.push(r.status.as_u16());
    }
    out
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis(addr: SocketAddr) -> Redis {
    let child = Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is installed");
    Redis(child)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}_total ")))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_global_limit_is_shared_through_redis_and_fails_open_when_it_is_gone() {
    let echo = EchoServer::start("echo").await;
    let redis_addr = free_addr();
    let mut redis = Some(start_redis(redis_addr));
    eventually(Duration::from_secs(5), "redis listens", || async {
        std::net::TcpStream::connect(redis_addr).is_ok()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            route("open", "open.example.com"),
            route("closed", "closed.example.com"),
            policy(
                "shared",
                "open",
                "{name: shared, key: {type: Route}, rate: {requests: 1, per: 1m}, burst: 9, scope: Global}",
                "",
            ),
            route("mixed", "mixed.example.com"),
            policy(
                "a-mixed-global",
                "mixed",
                "{name: route, key: {type: Route}, rate: {requests: 1, per: 1m}, burst: 2, scope: Global}",
                "",
            ),
            policy(
                "b-mixed-local",
                "mixed",
                "{name: user, key: {type: Header, name: x-user}, rate: {requests: 1, per: 1m}}",
                "",
            ),
            policy(
                "strict",
                "closed",
                "{name: strict, key: {type: Route}, rate: {requests: 100, per: 1s}, scope: Global}",
                "  failureMode: Closed\n",
            ),
        ]),
    );
    let url = format!("redis://{redis_addr}/");
    let args = ["--redis-url", url.as_str()];
    let gw1 = GatewayProcess::standalone(dir.path(), &args).await;
    let gw2 = GatewayProcess::standalone(dir.path(), &args).await;
    let client = HttpClient::new();
    let mut allowed = 0;
    for i in 0..20 {
        let gw = if i % 2 == 0 { &gw1 } else { &gw2 };
        let status = client
            .get(gw.http, "open.example.com", "/")
            .await
            .unwrap()
            .status;
        match status.as_u16() {
            200 => allowed += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(allowed, 10, "one budget of 10 shared by both replicas");
    // A request the local limit rejects gives its global budget back (in
    // Redis): alice's second costs nothing, so carol still gets in.
    let codes = statuses(
        &client,
        gw1.http,
        "mixed.example.com",
        &["alice", "alice", "bob", "carol", "dave"],
    )
    .await;
    assert_eq!(codes, [200, 429, 200, 200, 429]);
    assert_eq!(
        client
            .get(gw1.http, "closed.example.com", "/")
            .await
            .unwrap()
            .status,
        200
    );

    // Redis goes away: the Open policy serves, the Closed one refuses,
    // nobody hangs, and the metric counts it.
    drop(redis.take());
    let started = Instant::now();
    for _ in 0..5 {
        let reply = client.get(gw1.http, "open.example.com", "/").await.unwrap();
        assert_eq!(reply.status, 200, "fail open");
    }
    assert_eq!(
        client
            .get(gw1.http, "closed.example.com", "/")
            .await
            .unwrap()
            .status,
        503
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "checks are bounded: {:?}",
        started.elapsed()
    );
    let metrics = client
        .get(gw1.admin, "admin", "/metrics")
        .await
        .unwrap()
        .text();
    assert!(
        metric(&metrics, "gatehouse_ratelimit_redis_failures") >= 6,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "gatehouse_ratelimit_failed_open") >= 5,
        "{metrics}"
    );
    assert!(
        gw1.logs()
            .contains("global rate limit could not be checked")
    );

    // Redis comes back (empty): limits apply again without a restart.
    let _redis = start_redis(redis_addr);
    eventually(
        Duration::from_secs(10),
        "global checks work again",
        || async {
            let before = metric(
                &client
                    .get(gw1.admin, "admin", "/metrics")
                    .await
                    .unwrap()
                    .text(),
                "gatehouse_ratelimit_redis_failures",
            );
            let _ = client.get(gw1.http, "open.example.com", "/").await.unwrap();
            let after = metric(
                &client
                    .get(gw1.admin, "admin", "/metrics")
                    .await
                    .unwrap()
                    .text(),
                "gatehouse_ratelimit_redis_failures",
            );
            before == after
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn policies_attach_by_target_and_annotation_and_all_apply() {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    let limit = |name: &str, key: &str, burst: u32| {
        format!("{{name: {name}, key: {key}, rate: {{requests: 1, per: 10s}}, burst: {burst}}}")
    };
    let policy_for = |name: &str, targets: &str, limit: &str| {
        format!(
            "apiVersion: gatehouse.dev/v1alpha1\nkind: RateLimitPolicy\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  targetRefs: {targets}\n  limits: [{limit}]\n"
        )
    };
    let annotated = ingress("shop", "shop.example.com", &[("/", "Prefix", "svc")]).replace(
        "metadata: {name: shop}",
        "metadata: {name: shop, annotations: {gatehouse.dev/rate-limit-policy: by-annotation}}",
    );
    assert!(annotated.contains("rate-limit-policy"), "{annotated}");
    write_atomic(
        dir.path(),
        "config.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("svc", &[echo.addr]),
            annotated,
            ingress("plain", "plain.example.com", &[("/", "Prefix", "svc")]),
            route("combo", "combo.example.com"),
            // Used only through the annotation: no targets of its own.
            policy_for("by-annotation", "[]", &limit("all", "{type: Route}", 1)),
            policy_for(
                "by-target",
                "[{kind: Ingress, name: plain}]",
                &limit("per-client", "{type: ClientIP}", 2),
            ),
            // Two policies on one route: every limit applies. The route's
            // budget is checked first (policies go by name).
            policy("a-whole", "combo", &limit("whole", "{type: Route}", 5), ""),
            policy(
                "per-user",
                "combo",
                &limit("per-user", "{type: Header, name: x-user}", 4),
                "",
            ),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let codes = |host: &'static str, user: &'static str, n: usize| {
        let (client, addr) = (&client, gw.http);
        async move { statuses(client, addr, host, &vec![user; n]).await }
    };
    assert_eq!(codes("shop.example.com", "-", 3).await, [200, 200, 429]);
    assert_eq!(
        codes("plain.example.com", "-", 4).await,
        [200, 200, 200, 429]
    );
    // alice spends her 5; her sixth, rejected by her own limit, gives the
    // route's budget back, so bob takes its sixth and last.
    assert_eq!(
        codes("combo.example.com", "alice", 6).await,
        [200, 200, 200, 200, 200, 429]
    );
    assert_eq!(codes("combo.example.com", "bob", 1).await, [200]);
    assert_eq!(codes("combo.example.com", "carol", 1).await, [429]);
}
