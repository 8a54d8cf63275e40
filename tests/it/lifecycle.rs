//! Process lifecycle: admin endpoints, readiness, graceful shutdown.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use testkit::manifests::{INGRESS_CLASS, docs, ingress, service, write_atomic};
use testkit::{EchoServer, GatewayProcess, HttpClient, run_gatehouse};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_in_flight_requests_finish() {
    let slow = EchoServer::start("slow").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("slow", &[slow.addr]),
            ingress("s", "slow.example.com", &[("/", "Prefix", "slow")]),
        ]),
    );
    let mut gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let addr = gw.http;
    let in_flight = tokio::spawn(async move {
        client
            .send(
                addr,
                Method::GET,
                "slow.example.com",
                "/",
                &[("x-echo-delay-ms", "1000")],
                Bytes::new(),
            )
            .await
    });
    // Wait until the backend has the request, so it is truly in flight.
    testkit::eventually(
        Duration::from_secs(5),
        "the request reaches the backend",
        || {
            let n = slow.requests();
            async move { n == 1 }
        },
    )
    .await;
    gw.signal("TERM");
    let reply = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.backend().as_deref(), Some("slow"));
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the process exits");
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        gw.logs()
    );
    // New connections are refused once the listener is closed.
    assert!(
        HttpClient::new()
            .get(addr, "slow.example.com", "/")
            .await
            .is_err()
    );
}

/// With `--shutdown-delay`, a terminating gateway fails `/readyz` at once
/// but keeps answering new connections until the delay is over, so load
/// balancers can take it out of rotation without refused connections.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_delay_keeps_serving_while_not_ready() {
    let (_echo, mut gw, _dir) = echo_gateway(&["--shutdown-delay", "1500ms"]).await;
    let client = HttpClient::new();
    assert_eq!(
        client
            .get(gw.admin, "admin", "/readyz")
            .await
            .unwrap()
            .status,
        200
    );
    let signalled = std::time::Instant::now();
    gw.signal("TERM");
    testkit::eventually(Duration::from_secs(1), "/readyz fails", || {
        let client = client.clone();
        let admin = gw.admin;
        async move { matches!(client.get(admin, "admin", "/readyz").await, Ok(r) if r.status == 503) }
    })
    .await;
    // New connections during the delay are served.
    for _ in 0..5 {
        let reply = HttpClient::new()
            .get(gw.http, "echo.example.com", "/")
            .await
            .expect("served during the shutdown delay");
        assert_eq!(reply.status, 200);
    }
    assert!(
        signalled.elapsed() < Duration::from_millis(1500),
        "the checks took longer than the delay"
    );
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the process exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(1500),
        "exited before the shutdown delay was over"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_endpoints() {
    let a = EchoServer::start("a").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("a", &[a.addr]),
            ingress("web", "admin.example.com", &[("/app", "Prefix", "a")]),
        ]),
    );
    let mut gw = GatewayProcess::standalone(dir.path(), &[]).await;
    let client = HttpClient::new();
    let health = client.get(gw.admin, "localhost", "/healthz").await.unwrap();
    assert_eq!(
        (health.status.as_u16(), health.text().as_str()),
        (200, "ok\n")
    );
    let ready = client.get(gw.admin, "localhost", "/readyz").await.unwrap();
    assert_eq!(ready.status, 200);
    let snap = client
        .get(gw.admin, "localhost", "/debug/snapshot")
        .await
        .unwrap();
    assert_eq!(snap.status, 200);
    assert_eq!(snap.headers["content-type"], "application/json");
    let json: serde_json::Value = serde_json::from_slice(&snap.body).unwrap();
    assert!(json["generation"].as_u64().unwrap() >= 1);
    let vhost = &json["snapshot"]["virtualHosts"][0];
    assert_eq!(vhost["host"], "admin.example.com");
    assert_eq!(vhost["entries"][0]["path"]["value"], "/app");
    assert_eq!(
        json["snapshot"]["routes"][0]["id"],
        "ingress/default/web/rule/0/path/0"
    );
    assert_eq!(
        json["snapshot"]["clusters"][0]["endpoints"][0]["addr"],
        a.addr.to_string()
    );
    gw.signal("INT");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("SIGINT stops the process");
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_arguments_fail_fast_with_a_message() {
    let (status, out) = run_gatehouse(&["standalone", "--manifests", "/nonexistent/gatehouse"]);
    assert!(!status.success());
    assert!(out.contains("/nonexistent/gatehouse"), "{out}");
    let (status, out) =
        run_gatehouse(&["standalone", "--manifests", ".", "--drain-timeout", "soon"]);
    assert!(!status.success());
    assert!(out.contains("is not a duration"), "{out}");
}

/// `gatehouse-load`, the fixed-rate load generator of the benchmarks,
/// sends the rate it is asked for and reports ordered percentiles and its
/// own pacing lateness; against a closed port it reports errors and fails.
#[tokio::test(flavor = "multi_thread")]
async fn the_fixed_rate_load_generator_measures_what_it_sends() {
    let (echo, gw, _dir) = echo_gateway(&["--access-log", "off"]).await;
    let run = |addr: std::net::SocketAddr| {
        std::process::Command::new(testkit::process::binary("gatehouse-load"))
            .args([
                &addr.to_string(),
                "200",
                "--connections",
                "4",
                "--duration",
                "1",
            ])
            .args(["--host", "echo.example.com"])
            .output()
            .unwrap()
    };
    let out = run(gw.http);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let field = |k: &str| field_of(&text, k);
    assert!((180..=220).contains(&field("requests")), "{text}");
    assert_eq!(field("errors"), 0, "{text}");
    assert_eq!(echo.requests(), field("requests"), "{text}");
    assert!(
        field("p50_us") > 0 && field("p50_us") <= field("p99_us"),
        "{text}"
    );
    assert!(field("p99_us") <= field("max_us"), "{text}");
    // The pacing thread reports how late it handed out send times; a
    // request's latency runs from its scheduled time, so it includes that.
    assert!(
        field("late_p50_us") <= field("late_p99_us") && field("late_p99_us") <= field("max_us"),
        "{text}"
    );

    let closed = testkit::free_addr();
    let out = run(closed);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(field_of(&text, "errors") > 0, "{text}");
}

/// With `--scheduler per-thread`, each worker thread accepts and serves
/// its own share of the connections (the kernel spreads them over the
/// workers' sockets), HTTPS as well as HTTP; no second process can take
/// the address; and SIGTERM drains every worker.
#[tokio::test(flavor = "multi_thread")]
async fn per_thread_workers_each_serve_a_share_of_the_connections() {
    let (_echo, mut gw, _dir) =
        echo_gateway(&["--worker-threads", "2", "--scheduler", "per-thread"]).await;
    let pid = gw.pid();
    let before = worker_run_times(pid, &["gatehouse-w0", "gatehouse-w1"]);
    for i in 0..200 {
        let reply = HttpClient::new()
            .get(gw.http, "echo.example.com", "/")
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        assert_eq!(reply.status, 200);
        assert_eq!(reply.backend().as_deref(), Some("echo"));
    }
    let after = worker_run_times(pid, &["gatehouse-w0", "gatehouse-w1"]);
    let spent: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    let total: u64 = spent.iter().sum();
    // About half each; a worker that accepted nothing would have a tiny
    // share at most.
    for (i, ns) in spent.iter().enumerate() {
        assert!(
            ns * 10 >= total,
            "worker {i} ran {ns} ns of the workers' {total} ns"
        );
    }
    for _ in 0..4 {
        let mut tls = testkit::tlsclient::TlsClient::default()
            .connect(gw.https, Some("echo.example.com"))
            .await
            .unwrap();
        let reply = tls.get("echo.example.com", "/").await.unwrap();
        assert_eq!(reply.status, 200);
    }

    // The address is taken, whatever the second process would share.
    let (status, out) = run_gatehouse(&[
        "standalone",
        "--manifests",
        ".",
        "--http-addr",
        &gw.http.to_string(),
        "--admin-addr",
        &testkit::free_addr().to_string(),
        "--no-https",
        "--worker-threads",
        "2",
    ]);
    assert!(!status.success());
    assert!(
        out.contains(&format!("cannot listen on {}", gw.http)),
        "{out}"
    );
    let reply = HttpClient::new()
        .get(gw.http, "echo.example.com", "/")
        .await
        .unwrap();
    assert_eq!(reply.status, 200);

    gw.signal("TERM");
    let status = gw
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the process exits");
    assert!(status.success(), "exit status {status:?}");
    let logs = gw.logs();
    for worker in ["worker{index=0}", "worker{index=1}"] {
        assert!(
            logs.contains(&format!("{worker}: all connections drained")),
            "{worker} did not drain; log:\n{logs}"
        );
    }
}

/// `--scheduler work-stealing` serves on one runtime with the worker
/// threads asked for, and no per-thread workers.
#[tokio::test(flavor = "multi_thread")]
async fn work_stealing_serves_on_one_runtime() {
    let (_echo, mut gw, _dir) =
        echo_gateway(&["--worker-threads", "3", "--scheduler", "work-stealing"]).await;
    for _ in 0..20 {
        let reply = HttpClient::new()
            .get(gw.http, "echo.example.com", "/")
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    let names: Vec<String> = thread_run_times(gw.pid()).into_keys().collect();
    // Thread names are cut to 15 bytes.
    let runtime_threads = names
        .iter()
        .filter(|n| n.starts_with("gatehouse-worke"))
        .count();
    assert!(runtime_threads >= 3, "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("gatehouse-w0")),
        "{names:?}"
    );
    gw.signal("TERM");
    let status = gw.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// Run time so far (ns, from `schedstat`) of each thread of `pid`, by
/// name (names shared by several threads: one entry per thread, suffixed
/// with its id).
fn thread_run_times(pid: u32) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = entry.unwrap().path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(path.join("comm")),
            std::fs::read_to_string(path.join("schedstat")),
        ) else {
            continue;
        };
        let ns = stat.split_whitespace().next().unwrap().parse().unwrap();
        let name = name.trim().to_owned();
        let key = if out.contains_key(&name) {
            format!("{name} {}", path.file_name().unwrap().to_string_lossy())
        } else {
            name
        };
        out.insert(key, ns);
    }
    out
}

/// The run times of the threads `names`, in that order.
fn worker_run_times(pid: u32, names: &[&str]) -> Vec<u64> {
    let all = thread_run_times(pid);
    names
        .iter()
        .map(|n| {
            *all.get(*n)
                .unwrap_or_else(|| panic!("no thread {n}: {all:?}"))
        })
        .collect()
}

fn field_of(text: &str, k: &str) -> u64 {
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{k} in {text}"))
}

/// An echo backend behind a standalone gateway started with `extra`, for
/// `echo.example.com`.
async fn echo_gateway(extra: &[&str]) -> (EchoServer, GatewayProcess, tempfile::TempDir) {
    let echo = EchoServer::start("echo").await;
    let dir = tempfile::tempdir().unwrap();
    write_atomic(
        dir.path(),
        "c.yaml",
        &docs(&[
            INGRESS_CLASS.to_owned(),
            service("echo", &[echo.addr]),
            ingress("e", "echo.example.com", &[("/", "Prefix", "echo")]),
        ]),
    );
    let gw = GatewayProcess::standalone(dir.path(), extra).await;
    (echo, gw, dir)
}
