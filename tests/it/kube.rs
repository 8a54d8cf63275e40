//! Kubernetes mode end to end: the real `gatehouse run` against the API
//! simulator, configured with the real `kubectl`.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::Method;
use serde_json::{Value, json};
use testkit::kubesim::{KubeSim, Kubectl};
use testkit::pki::{Ca, tls_secret};
use testkit::{EchoServer, GatewayProcess, HttpClient, TlsClient, eventually};

/// The address `--publish-address` reports in Ingress status.
const PUBLISHED: &str = "203.0.113.7";

/// A simulated cluster with the CRDs and the quickstart applied, the
/// quickstart's three demo backends played by echo servers.
struct Cluster {
    sim: KubeSim,
    kubectl: Kubectl,
    /// Kept alive for the quickstart's echo-a.
    _a: EchoServer,
    b: EchoServer,
    c: EchoServer,
    _dir: tempfile::TempDir,
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

impl Cluster {
    async fn start() -> Self {
        let sim = KubeSim::start().await;
        let dir = tempfile::tempdir().unwrap();
        let kubectl = Kubectl::new(&sim, dir.path());
        let (a, b, c) = (
            EchoServer::start("a").await,
            EchoServer::start("b").await,
            EchoServer::start("c").await,
        );
        let crds = repo("charts/gatehouse/crds").display().to_string();
        let out = kubectl
            .ok(&["apply", "--validate=false", "-f", &crds])
            .await;
        assert!(out.contains("apiroutes.gatehouse.dev created"), "{out}");
        // The quickstart as published, its backends moved to the echo
        // servers' ports.
        let mut files: Vec<_> = std::fs::read_dir(repo("examples/quickstart"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut quickstart = String::new();
        for f in files {
            quickstart.push_str(&std::fs::read_to_string(f).unwrap());
            quickstart.push_str("\n---\n");
        }
        let quickstart = quickstart
            .replace("9001", &a.addr.port().to_string())
            .replace("9002", &b.addr.port().to_string())
            .replace("9003", &c.addr.port().to_string());
        let out = kubectl.apply(&quickstart).await;
        assert!(
            out.contains("apiroute.gatehouse.dev/orders created"),
            "{out}"
        );
        Self {
            sim,
            kubectl,
            _a: a,
            b,
            c,
            _dir: dir,
        }
    }

    /// Starts `gatehouse run` against the simulator, publishing
    /// [`PUBLISHED`], and waits until ready.
    async fn gateway(&self, extra: &[&str]) -> GatewayProcess {
        let mut args = vec!["--publish-address", PUBLISHED];
        args.extend_from_slice(extra);
        self.gateway_publishing(&args).await
    }

    /// Starts `gatehouse run` with only `extra` beyond the kubeconfig.
    async fn gateway_publishing(&self, extra: &[&str]) -> GatewayProcess {
        let kubeconfig = self.kubectl.kubeconfig().display().to_string();
        let args: Vec<String> = ["run", "--kubeconfig", &kubeconfig]
            .iter()
            .chain(extra)
            .map(|s| (*s).to_owned())
            .collect();
        GatewayProcess::start(&args, Duration::from_secs(30)).await
    }

    /// An object as `kubectl get -o json` prints it.
    async fn get(&self, what: &str, name: &str) -> Value {
        let out = self.kubectl.ok(&["get", what, name, "-o", "json"]).await;
        serde_json::from_str(&out).unwrap()
    }

    /// Points the EndpointSlice `name` of Service `service` at `backend`.
    fn move_slice(&self, name: &str, service: &str, backend: &EchoServer) {
        self.sim
            .put(json!({
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": name,
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": service},
                },
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": backend.addr.port()}],
                "endpoints": [{"addresses": ["127.0.0.1"]}],
            }))
            .unwrap();
    }

    fn lease_holder(&self) -> Option<String> {
        self.sim
            .get(
                "coordination.k8s.io/v1",
                "leases",
                "default",
                "gatehouse-leader",
            )
            .and_then(|l| {
                l.pointer("/spec/holderIdentity")?
                    .as_str()
                    .map(str::to_owned)
            })
            .filter(|h| !h.is_empty())
    }
}

/// The condition `kind` of an object's status.
fn condition(object: &Value, kind: &str) -> Option<Value> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .cloned()
}

/// Which echo backend answered `host` + `path` (None when not a 200).
async fn backend(
    client: &HttpClient,
    gw: &GatewayProcess,
    host: &str,
    path: &str,
) -> Option<String> {
    let r = client.get(gw.http, host, path).await.ok()?;
    if r.status != 200 {
        return None;
    }
    r.backend()
}

async fn status_code(client: &HttpClient, gw: &GatewayProcess, host: &str, path: &str) -> u16 {
    client
        .get(gw.http, host, path)
        .await
        .map_or(0, |r| r.status.as_u16())
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_applied_with_kubectl_routes_and_reports_status() {
    let cluster = Cluster::start().await;
    let gw = cluster.gateway(&[]).await;
    let client = HttpClient::new();

    // Ingress paths and ApiRoute matches reach the right backends.
    assert_eq!(
        backend(&client, &gw, "web.localhost", "/").await.as_deref(),
        Some("a")
    );
    assert_eq!(
        backend(&client, &gw, "web.localhost", "/shop/cart")
            .await
            .as_deref(),
        Some("b")
    );
    assert_eq!(
        backend(&client, &gw, "web.localhost", "/about")
            .await
            .as_deref(),
        Some("c")
    );
    let beta = client
        .send(
            gw.http,
            Method::GET,
            "api.localhost",
            "/v1/orders/7",
            &[("x-beta", "true")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(beta.backend().as_deref(), Some("c"));
    let orders = backend(&client, &gw, "api.localhost", "/v1/orders").await;
    assert!(matches!(orders.as_deref(), Some("a" | "b")), "{orders:?}");
    assert_eq!(
        status_code(&client, &gw, "nowhere.localhost", "/").await,
        404
    );

    // The controller reports what it accepted: printer columns, then the
    // full conditions.
    eventually(
        Duration::from_secs(10),
        "kubectl get apiroutes shows Accepted=True",
        || {
            let kubectl = cluster.kubectl.clone();
            async move {
                let table = kubectl.ok(&["get", "apiroutes"]).await;
                table
                    .lines()
                    .any(|l| l.starts_with("orders ") && l.contains("True"))
            }
        },
    )
    .await;
    let table = cluster.kubectl.ok(&["get", "apiroutes"]).await;
    let header = table.lines().next().unwrap();
    for column in ["NAME", "HOSTS", "ACCEPTED", "PROGRAMMED", "AGE"] {
        assert!(header.contains(column), "no {column} column in:\n{table}");
    }
    assert!(table.contains("api.localhost"), "{table}");

    let route = cluster.get("apiroute", "orders").await;
    let generation = route.pointer("/metadata/generation").cloned().unwrap();
    for (kind, reason) in [
        ("Accepted", "Accepted"),
        ("ResolvedRefs", "ResolvedRefs"),
        ("Programmed", "Programmed"),
    ] {
        let c = condition(&route, kind).unwrap_or_else(|| panic!("no {kind} in {route:#}"));
        assert_eq!(c["status"], "True", "{c:#}");
        assert_eq!(c["reason"], reason, "{c:#}");
        assert_eq!(c["observedGeneration"], generation, "{c:#}");
        assert!(c["lastTransitionTime"].is_string(), "{c:#}");
    }

    // Ingress status carries the published address.
    eventually(
        Duration::from_secs(10),
        "Ingress status.loadBalancer is set",
        || {
            let kubectl = cluster.kubectl.clone();
            async move {
                let out = kubectl
                    .ok(&[
                        "get",
                        "ingress",
                        "web",
                        "-o",
                        "jsonpath={.status.loadBalancer.ingress[0].ip}",
                    ])
                    .await;
                out.trim() == PUBLISHED
            }
        },
    )
    .await;

    // Status is written only when something changed: a quiet minute of
    // re-translations (here, a few unrelated changes) writes nothing.
    let writes = |sim: &KubeSim| {
        sim.requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.path.contains("/status"))
            .count()
    };
    let before = writes(&cluster.sim);
    for i in 0..3 {
        cluster.move_slice(
            "echo-c-1",
            "echo-c",
            if i % 2 == 0 { &cluster.b } else { &cluster.c },
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(
        writes(&cluster.sim),
        before,
        "status rewritten although nothing about it changed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoint_and_route_changes_apply_within_a_second() {
    let cluster = Cluster::start().await;
    let gw = cluster.gateway(&[]).await;
    let client = HttpClient::new();
    assert_eq!(
        backend(&client, &gw, "web.localhost", "/about")
            .await
            .as_deref(),
        Some("c")
    );

    // Kubernetes moves echo-c's endpoint: traffic follows.
    let changed = Instant::now();
    cluster.move_slice("echo-c-1", "echo-c", &cluster.b);
    eventually(
        Duration::from_secs(1),
        "traffic follows the EndpointSlice within 1 s",
        || {
            let client = client.clone();
            let gw = &gw;
            async move {
                backend(&client, gw, "web.localhost", "/about")
                    .await
                    .as_deref()
                    == Some("b")
            }
        },
    )
    .await;
    eprintln!("EndpointSlice change served after {:?}", changed.elapsed());

    // A scaled-down Service (an empty slice) answers 503, not a hang.
    cluster
        .sim
        .put(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": "echo-c-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "echo-c"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": cluster.c.addr.port()}],
            "endpoints": [],
        }))
        .unwrap();
    eventually(
        Duration::from_secs(1),
        "a Service without endpoints answers 503",
        || {
            let client = client.clone();
            let gw = &gw;
            async move { status_code(&client, gw, "web.localhost", "/about").await == 503 }
        },
    )
    .await;

    // Deleting a route with kubectl: 404 within 1 s, other routes intact.
    assert_eq!(
        status_code(&client, &gw, "api.localhost", "/v1/orders").await,
        200
    );
    cluster.kubectl.ok(&["delete", "apiroute", "orders"]).await;
    let deleted = Instant::now();
    eventually(
        Duration::from_secs(1),
        "a deleted route answers 404 within 1 s",
        || {
            let client = client.clone();
            let gw = &gw;
            async move { status_code(&client, gw, "api.localhost", "/v1/orders").await == 404 }
        },
    )
    .await;
    eprintln!("route deletion served after {:?}", deleted.elapsed());
    assert_eq!(
        backend(&client, &gw, "web.localhost", "/").await.as_deref(),
        Some("a")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_route_is_rejected_with_a_reason_and_one_event() {
    let cluster = Cluster::start().await;
    let gw = cluster.gateway(&[]).await;
    let client = HttpClient::new();
    cluster
        .kubectl
        .apply(
            "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: broken}
spec:
  hostnames: [broken.localhost]
  rules:
  - matches:
    - path: {type: RegularExpression, value: \"/items/(unclosed\"}
    backends: [{name: echo-a, port: 80}]
---
apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: dangling}
spec:
  hostnames: [dangling.localhost]
  rules:
  - backends: [{name: no-such-service, port: 80}]
",
        )
        .await;

    // Accepted=False, naming the field.
    eventually(
        Duration::from_secs(10),
        "the broken route gets Accepted=False",
        || {
            let cluster = &cluster;
            async move {
                let broken = cluster.get("apiroute", "broken").await;
                condition(&broken, "Accepted").is_some_and(|c| c["status"] == "False")
            }
        },
    )
    .await;
    let broken = cluster.get("apiroute", "broken").await;
    let accepted = condition(&broken, "Accepted").unwrap();
    let message = accepted["message"].as_str().unwrap();
    assert!(
        message.contains("spec.rules[0].matches[0].path"),
        "{message}"
    );
    assert!(message.contains("regular expression"), "{message}");
    assert_ne!(accepted["reason"], "Accepted");
    assert_eq!(condition(&broken, "Programmed").unwrap()["status"], "False");

    // A route to a missing Service is accepted but does not resolve.
    eventually(
        Duration::from_secs(10),
        "the dangling route gets ResolvedRefs=False",
        || {
            let cluster = &cluster;
            async move {
                let dangling = cluster.get("apiroute", "dangling").await;
                condition(&dangling, "ResolvedRefs").is_some_and(|c| c["status"] == "False")
            }
        },
    )
    .await;
    let dangling = cluster.get("apiroute", "dangling").await;
    let resolved = condition(&dangling, "ResolvedRefs").unwrap();
    assert!(
        resolved["message"]
            .as_str()
            .unwrap()
            .contains("no-such-service"),
        "{resolved:#}"
    );
    assert_eq!(condition(&dangling, "Accepted").unwrap()["status"], "True");

    // One Warning event for the broken route.
    let events_about = |sim: &KubeSim, name: &str| -> Vec<Value> {
        sim.list("events.k8s.io/v1", "events")
            .into_iter()
            .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
            .collect()
    };
    eventually(
        Duration::from_secs(10),
        "a Warning event about the broken route",
        || {
            let found = events_about(&cluster.sim, "broken");
            async move { !found.is_empty() }
        },
    )
    .await;
    let events = events_about(&cluster.sim, "broken");
    assert_eq!(events[0]["type"], "Warning", "{:#}", events[0]);
    assert_eq!(events[0].pointer("/regarding/kind").unwrap(), "ApiRoute");
    assert!(
        events[0]["note"]
            .as_str()
            .unwrap()
            .contains("spec.rules[0].matches[0].path")
    );
    let listed = cluster.kubectl.ok(&["get", "events.events.k8s.io"]).await;
    assert!(listed.contains("broken"), "{listed}");

    // Everything else keeps serving, and more changes do not repeat the
    // event: a broken object cannot flood the API server.
    assert_eq!(
        backend(&client, &gw, "web.localhost", "/").await.as_deref(),
        Some("a")
    );
    assert_eq!(
        status_code(&client, &gw, "api.localhost", "/v1/orders").await,
        200
    );
    assert_eq!(
        status_code(&client, &gw, "broken.localhost", "/items/1").await,
        404
    );
    for i in 0..5 {
        cluster
            .kubectl
            .ok(&[
                "annotate",
                "--overwrite",
                "apiroute",
                "broken",
                &format!("touched={i}"),
            ])
            .await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        events_about(&cluster.sim, "broken").len(),
        1,
        "the event was repeated"
    );

    // Fixing it clears the condition and serves the route.
    cluster
        .kubectl
        .ok(&[
            "patch",
            "apiroute",
            "broken",
            "--type=json",
            "-p",
            r#"[{"op":"replace","path":"/spec/rules/0/matches/0/path/value","value":"/items/[0-9]+"}]"#,
        ])
        .await;
    eventually(Duration::from_secs(2), "the fixed route serves", || {
        let client = client.clone();
        let gw = &gw;
        async move {
            backend(&client, gw, "broken.localhost", "/items/12")
                .await
                .as_deref()
                == Some("a")
        }
    })
    .await;
    eventually(
        Duration::from_secs(10),
        "the fixed route gets Accepted=True",
        || {
            let cluster = &cluster;
            async move {
                let route = cluster.get("apiroute", "broken").await;
                let generation = route.pointer("/metadata/generation").cloned();
                condition(&route, "Accepted").is_some_and(|c| {
                    c["status"] == "True" && Some(c["observedGeneration"].clone()) == generation
                })
            }
        },
    )
    .await;
}

/// Sends requests until stopped, counting the ones that did not reach a
/// backend.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(gw: &GatewayProcess) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = gw.http;
        let task = tokio::spawn({
            let (stop, sent, failures) = (stop.clone(), sent.clone(), failures.clone());
            async move {
                let client = HttpClient::new();
                let targets = [("web.localhost", "/"), ("api.localhost", "/v1/orders")];
                while !stop.load(Ordering::Relaxed) {
                    for (host, path) in targets {
                        let r = client.get(addr, host, path).await;
                        sent.fetch_add(1, Ordering::Relaxed);
                        match r {
                            Ok(r) if r.status == 200 && r.backend().is_some() => {}
                            Ok(r) => failures
                                .lock()
                                .unwrap()
                                .push(format!("{host}{path}: {}", r.status)),
                            Err(e) => failures.lock().unwrap().push(format!("{host}{path}: {e}")),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        });
        Self {
            stop,
            sent,
            failures,
            task,
        }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_policies_report_status_and_are_enforced() {
    let cluster = Cluster::start().await;
    let gw = cluster.gateway(&[]).await;
    let client = HttpClient::new();
    // The published example, and a policy whose target does not exist.
    let example =
        std::fs::read_to_string(repo("examples/rate-limits/ratelimitpolicy.yaml")).unwrap();
    let out = cluster.kubectl.apply(&example).await;
    assert!(out.contains("orders-limits created"), "{out}");
    cluster
        .kubectl
        .apply(
            "apiVersion: gatehouse.dev/v1alpha1
kind: RateLimitPolicy
metadata: {name: orphan}
spec:
  targetRefs: [{kind: ApiRoute, name: no-such-route}]
  limits:
  - {name: all, key: {type: Route}, rate: {requests: 1, per: 1s}}
",
        )
        .await;

    let settled = |name: &'static str, programmed: &'static str| {
        let cluster = &cluster;
        async move {
            let policy = cluster.get("ratelimitpolicy", name).await;
            condition(&policy, "Programmed").is_some_and(|c| c["status"] == programmed)
        }
    };
    for name in ["orders-limits", "web-per-key"] {
        eventually(
            Duration::from_secs(10),
            "the example policies are Programmed",
            || settled(name, "True"),
        )
        .await;
        let policy = cluster.get("ratelimitpolicy", name).await;
        let generation = policy.pointer("/metadata/generation").cloned().unwrap();
        for kind in ["Accepted", "ResolvedRefs", "Programmed"] {
            let c = condition(&policy, kind).unwrap_or_else(|| panic!("no {kind} in {policy:#}"));
            assert_eq!(c["status"], "True", "{name}: {c:#}");
            assert_eq!(c["reason"], kind, "{name}: {c:#}");
            assert_eq!(c["observedGeneration"], generation, "{name}: {c:#}");
        }
    }
    eventually(
        Duration::from_secs(10),
        "the orphan policy is not Programmed",
        || settled("orphan", "False"),
    )
    .await;
    let table = cluster.kubectl.ok(&["get", "ratelimitpolicies"]).await;
    let header = table.lines().next().unwrap();
    for column in ["NAME", "ACCEPTED", "PROGRAMMED", "AGE"] {
        assert!(header.contains(column), "no {column} column in:\n{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("orphan ") && l.contains("True") && l.contains("False")),
        "{table}"
    );
    let orphan = cluster.get("ratelimitpolicy", "orphan").await;
    let resolved = condition(&orphan, "ResolvedRefs").unwrap();
    assert_eq!(resolved["status"], "False", "{resolved:#}");
    let message = resolved["message"].as_str().unwrap();
    assert!(
        message.contains("spec.targetRefs[0]") && message.contains("no-such-route"),
        "{message}"
    );
    assert_eq!(condition(&orphan, "Accepted").unwrap()["status"], "True");

    // The per-client limit of the `orders` rule: a burst of 10 plus one,
    // then 429 with the headers; the `beta` rule of the same route is not
    // limited.
    let mut codes = Vec::new();
    let mut rejected = None;
    for _ in 0..20 {
        let r = client
            .get(gw.http, "api.localhost", "/v1/orders")
            .await
            .unwrap();
        codes.push(r.status.as_u16());
        if r.status == 429 && rejected.is_none() {
            rejected = Some(r);
        }
    }
    assert!(codes[..11].iter().all(|c| *c == 200), "{codes:?}");
    let rejected = rejected.unwrap_or_else(|| panic!("never limited: {codes:?}"));
    assert!(rejected.headers.contains_key("retry-after"));
    assert_eq!(rejected.headers["ratelimit-limit"], "11", "burst + 1");
    let beta = client
        .send(
            gw.http,
            Method::GET,
            "api.localhost",
            "/v1/orders/1",
            &[("x-beta", "true")],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(beta.status, 200);
    assert!(!beta.headers.contains_key("ratelimit-limit"));

    // Deleting the targeted route leaves the policy accepted but no longer
    // programmed.
    cluster.kubectl.ok(&["delete", "apiroute", "orders"]).await;
    eventually(
        Duration::from_secs(10),
        "orders-limits is no longer Programmed",
        || settled("orders-limits", "False"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ingress_status_follows_the_published_service() {
    let cluster = Cluster::start().await;
    cluster
        .sim
        .put(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "gatehouse", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.20",
                     "ports": [{"name": "http", "port": 80}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.9"}]}},
        }))
        .unwrap();
    let _gw = cluster
        .gateway_publishing(&["--publish-service", "default/gatehouse"])
        .await;
    let address = || {
        let kubectl = cluster.kubectl.clone();
        async move {
            kubectl
                .ok(&[
                    "get",
                    "ingress",
                    "web",
                    "-o",
                    "jsonpath={.status.loadBalancer.ingress[0]['ip','hostname']}",
                ])
                .await
                .trim()
                .to_owned()
        }
    };
    eventually(
        Duration::from_secs(10),
        "the Ingress reports the Service's load balancer",
        || async { address().await == "198.51.100.9" },
    )
    .await;

    // The cloud hands the Service a new address: the Ingress follows.
    cluster
        .kubectl
        .ok(&[
            "patch",
            "service",
            "gatehouse",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"loadBalancer":{"ingress":[{"hostname":"lb.example.net"}]}}}"#,
        ])
        .await;
    eventually(
        Duration::from_secs(10),
        "the Ingress reports the new load balancer address",
        || async { address().await == "lb.example.net" },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_tls_secret_is_reported_and_a_mended_one_served() {
    let cluster = Cluster::start().await;
    let gw = cluster.gateway(&[]).await;
    let ca = Ca::new("kube test CA");
    cluster
        .kubectl
        .apply(&format!(
            // YAML first: a file that starts with `{` is read as a JSON
            // stream by some kubectl versions, and `---` is not JSON.
            "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {{name: secure}}
spec:
  hostnames: [secure.localhost]
  tls: {{certificateRef: {{name: secure-cert}}}}
  rules:
  - backends: [{{name: echo-a, port: 80}}]
---
{}
",
            tls_secret("secure-cert", &ca.expired_server(&["secure.localhost"]))
        ))
        .await;
    let resolved = || {
        let cluster = &cluster;
        async move { condition(&cluster.get("apiroute", "secure").await, "ResolvedRefs") }
    };
    eventually(
        Duration::from_secs(10),
        "the route reports its expired certificate",
        || async { resolved().await.is_some_and(|c| c["status"] == "False") },
    )
    .await;
    let c = resolved().await.unwrap();
    assert_eq!(c["reason"], "InvalidCertificate", "{c:#}");
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("spec.tls.certificateRef") && message.contains("expired"),
        "{message}"
    );
    eventually(
        Duration::from_secs(10),
        "a Warning event about the certificate",
        || async {
            cluster
                .sim
                .list("events.k8s.io/v1", "events")
                .iter()
                .any(|e| {
                    e.pointer("/regarding/name").and_then(Value::as_str) == Some("secure")
                        && e["reason"] == "InvalidCertificate"
                        && e["type"] == "Warning"
                })
        },
    )
    .await;
    // The host is served with the default certificate meanwhile.
    let names = || async {
        TlsClient::default()
            .connect(gw.https, Some("secure.localhost"))
            .await
            .unwrap()
            .server_names()
    };
    assert_ne!(names().await, ["secure.localhost"]);
    let mut conn = TlsClient::default()
        .connect(gw.https, Some("secure.localhost"))
        .await
        .unwrap();
    assert_eq!(conn.get("secure.localhost", "/").await.unwrap().status, 200);

    // A renewed certificate in the same Secret: resolved and served.
    cluster
        .kubectl
        .apply(&tls_secret(
            "secure-cert",
            &ca.server(&["secure.localhost"]),
        ))
        .await;
    eventually(
        Duration::from_secs(10),
        "the renewed certificate is served",
        || async { names().await == ["secure.localhost"] },
    )
    .await;
    eventually(Duration::from_secs(10), "ResolvedRefs=True", || async {
        resolved().await.is_some_and(|c| c["status"] == "True")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn serves_through_api_server_trouble_and_converges() {
    let cluster = Cluster::start().await;
    let gw = cluster.gateway(&[]).await;
    let client = HttpClient::new();
    let load = Load::start(&gw);
    let follows = |expected: &'static str, within: Duration, what: &'static str| {
        let client = client.clone();
        let gw = &gw;
        async move {
            eventually(within, what, || {
                let client = client.clone();
                async move {
                    backend(&client, gw, "web.localhost", "/about")
                        .await
                        .as_deref()
                        == Some(expected)
                }
            })
            .await;
        }
    };

    // Every watch dropped: the controller reconnects and sees changes.
    cluster.sim.drop_watches();
    tokio::time::sleep(Duration::from_millis(200)).await;
    cluster.move_slice("echo-c-1", "echo-c", &cluster.b);
    follows(
        "b",
        Duration::from_secs(5),
        "a change after dropped watches",
    )
    .await;

    // The history is gone: resumed watches get 410 Gone and relist.
    cluster.sim.expire_history();
    cluster.move_slice("echo-c-1", "echo-c", &cluster.c);
    follows("c", Duration::from_secs(5), "a change after 410 Gone").await;

    // The API server answers errors and throttles for a while.
    cluster.sim.fail_next(30, 500);
    cluster.sim.drop_watches();
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.sim.fail_next(30, 429);
    cluster.sim.drop_watches();
    cluster.move_slice("echo-c-1", "echo-c", &cluster.b);
    follows("b", Duration::from_secs(10), "a change after 500s and 429s").await;

    // Ten seconds without an API server. Changes made meanwhile (as if
    // by another client) arrive once it is back.
    cluster.sim.stop();
    let outage = Instant::now();
    cluster.move_slice("echo-c-1", "echo-c", &cluster.c);
    while outage.elapsed() < Duration::from_secs(10) {
        let ready = client.get(gw.admin, "localhost", "/readyz").await.unwrap();
        assert_eq!(
            ready.status, 200,
            "readiness must not depend on the API server once serving"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.sim.restart().await;
    let back = Instant::now();
    follows(
        "c",
        Duration::from_secs(10),
        "the change made during the outage",
    )
    .await;
    eprintln!(
        "converged {:?} after the API server came back",
        back.elapsed()
    );
    cluster
        .kubectl
        .apply(
            "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: after-outage}
spec:
  hostnames: [late.localhost]
  rules:
  - backends: [{name: echo-a, port: 80}]
",
        )
        .await;
    // Each kind's watch reconnects on its own backoff (at most 5 s plus
    // jitter), so the ApiRoute watch may come back after the one that
    // carried the change above.
    eventually(
        Duration::from_secs(10),
        "a route created after the outage",
        || {
            let client = client.clone();
            let gw = &gw;
            async move { backend(&client, gw, "late.localhost", "/").await.as_deref() == Some("a") }
        },
    )
    .await;

    let (sent, failures) = load.finish().await;
    assert!(sent > 500, "the load generator sent only {sent} requests");
    assert!(
        failures.is_empty(),
        "{} of {sent} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    let logs = gw.logs();
    assert!(
        logs.contains("watch failed"),
        "the outage was not noticed:\n{logs}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_replica_writes_status_and_another_takes_over_when_it_dies() {
    let cluster = Cluster::start().await;
    let lease = ["--lease-duration", "3s", "--lease-renew-interval", "500ms"];
    let mut gw1 = cluster
        .gateway(&[&["--instance", "gw-1"][..], &lease[..]].concat())
        .await;
    let mut gw2 = cluster
        .gateway(&[&["--instance", "gw-2"][..], &lease[..]].concat())
        .await;
    eventually(Duration::from_secs(10), "a leader is elected", || {
        let holder = cluster.lease_holder();
        async move { holder.is_some() }
    })
    .await;
    let leader = cluster.lease_holder().unwrap();
    let follower = if leader == "gw-1" { "gw-2" } else { "gw-1" };

    // Status appears, and only the leader wrote any.
    eventually(
        Duration::from_secs(10),
        "status of the quickstart route",
        || {
            let cluster = &cluster;
            async move { condition(&cluster.get("apiroute", "orders").await, "Accepted").is_some() }
        },
    )
    .await;
    let writers = |sim: &KubeSim| -> Vec<String> {
        let mut agents: Vec<String> = sim
            .requests()
            .iter()
            .filter(|r| (r.method == "PATCH" || r.method == "PUT") && r.path.contains("/status"))
            .map(|r| r.user_agent.clone())
            .collect();
        agents.sort();
        agents.dedup();
        agents
    };
    let agents = writers(&cluster.sim);
    assert_eq!(agents.len(), 1, "status writers: {agents:?}");
    assert!(agents[0].ends_with(&format!("({leader})")), "{agents:?}");
    assert_eq!(
        cluster.lease_holder().as_deref(),
        Some(leader.as_str()),
        "leadership moved"
    );

    // Both replicas serve.
    let client = HttpClient::new();
    for gw in [&gw1, &gw2] {
        assert_eq!(
            backend(&client, gw, "web.localhost", "/").await.as_deref(),
            Some("a")
        );
    }

    // The leader dies without a word; the other takes over within the
    // lease duration and writes the status of what changes next.
    let (dead, survivor) = if leader == "gw-1" {
        (&mut gw1, &gw2)
    } else {
        (&mut gw2, &gw1)
    };
    dead.signal("KILL");
    let killed = Instant::now();
    dead.wait_exit(Duration::from_secs(5)).await.unwrap();
    eventually(
        Duration::from_secs(6),
        "the survivor holds the lease",
        || {
            let holder = cluster.lease_holder();
            async move { holder.as_deref() == Some(follower) }
        },
    )
    .await;
    let takeover = killed.elapsed();
    eprintln!("takeover {takeover:?} after the leader was killed (lease 3s)");
    assert!(
        takeover <= Duration::from_millis(3300),
        "takeover took {takeover:?}, lease is 3 s"
    );

    cluster
        .kubectl
        .apply(
            "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: later}
spec:
  hostnames: [later.localhost]
  rules:
  - backends: [{name: echo-b, port: 80}]
",
        )
        .await;
    eventually(
        Duration::from_secs(5),
        "the new leader writes status",
        || {
            let cluster = &cluster;
            async move {
                condition(&cluster.get("apiroute", "later").await, "Accepted")
                    .is_some_and(|c| c["status"] == "True")
            }
        },
    )
    .await;
    let agents = writers(&cluster.sim);
    assert_eq!(agents.len(), 2, "status writers: {agents:?}");
    assert!(
        agents.iter().any(|a| a.ends_with(&format!("({follower})"))),
        "{agents:?}"
    );
    assert_eq!(
        backend(&client, survivor, "later.localhost", "/")
            .await
            .as_deref(),
        Some("b")
    );

    // A replica that shuts down cleanly hands the lease back at once.
    survivor.signal("TERM");
    eventually(
        Duration::from_secs(2),
        "the lease is released on shutdown",
        || {
            let holder = cluster.lease_holder();
            async move { holder.is_none() }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_for_an_unreachable_api_server_without_exiting() {
    let cluster = Cluster::start().await;
    cluster.sim.stop();
    let gw = GatewayProcess::spawn(&[
        "run".to_owned(),
        "--kubeconfig".to_owned(),
        cluster.kubectl.kubeconfig().display().to_string(),
    ]);
    let client = HttpClient::new();
    // Not ready, and alive, while the API server is away.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if let Ok(r) = client.get(gw.admin, "localhost", "/readyz").await {
            assert_eq!(r.status, 503, "ready without ever reaching the API server");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let healthy = client.get(gw.admin, "localhost", "/healthz").await.unwrap();
    assert_eq!(healthy.status, 200);
    cluster.sim.restart().await;
    gw.wait_ready(Duration::from_secs(15)).await;
    assert_eq!(
        backend(&client, &gw, "web.localhost", "/").await.as_deref(),
        Some("a")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_leader_obtains_an_acme_certificate_that_every_replica_serves() {
    assert!(
        testkit::pebble::Pebble::available(),
        "pebble is not installed (apt-get install pebble)"
    );
    let cluster = Cluster::start().await;
    cluster
        .kubectl
        .apply(
            "apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: kube}
spec:
  ingressClassName: gatehouse
  hostnames: [kube.gatehouse.test]
  tls: {acme: {}}
  rules:
  - backends: [{name: echo-b, port: 80}]
",
        )
        .await;
    // The directory URL is reserved first; Pebble starts once the first
    // replica's HTTP port is known and validates there, whichever replica
    // leads, so the answers must reach every replica.
    let listen = testkit::free_addr();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("pebble-api-ca.pem");
    let directory = format!("https://localhost:{}/dir", listen.port());
    let acme = [
        "--acme-directory",
        &directory,
        "--acme-ca-bundle",
        ca_file.to_str().unwrap(),
        "--acme-retry-min",
        "1s",
        "--lease-duration",
        "3s",
        "--lease-renew-interval",
        "500ms",
    ];
    let gw1 = cluster
        .gateway(&[&["--instance", "gw-1"][..], &acme[..]].concat())
        .await;
    let gw2 = cluster
        .gateway(&[&["--instance", "gw-2"][..], &acme[..]].concat())
        .await;
    let pebble = testkit::pebble::Pebble::start_on(listen, gw1.http.port()).await;
    std::fs::copy(&pebble.api_ca_file, &ca_file).unwrap();

    eventually(
        Duration::from_secs(60),
        "the certificate Secret is written",
        || {
            let found = cluster
                .sim
                .get("v1", "secrets", "default", "kube-tls")
                .is_some();
            async move { found }
        },
    )
    .await;
    let secret = cluster
        .sim
        .get("v1", "secrets", "default", "kube-tls")
        .unwrap();
    assert_eq!(secret["type"], "kubernetes.io/tls");
    assert!(secret.pointer("/data/tls.key").is_some());
    for gw in [&gw1, &gw2] {
        eventually(
            Duration::from_secs(10),
            "the replica serves the certificate",
            || async {
                match testkit::TlsClient::default()
                    .connect(gw.https, Some("kube.gatehouse.test"))
                    .await
                {
                    Ok(c) => c.server_names() == ["kube.gatehouse.test"],
                    Err(_) => false,
                }
            },
        )
        .await;
    }
    // Only the leader talked to the ACME server and wrote Secrets.
    let leader = cluster.lease_holder().unwrap();
    let writers: std::collections::BTreeSet<String> = cluster
        .sim
        .requests()
        .iter()
        .filter(|r| (r.method == "POST" || r.method == "PUT") && r.path.contains("/secrets"))
        .map(|r| r.user_agent.clone())
        .collect();
    assert_eq!(writers.len(), 1, "{writers:?}");
    assert!(
        writers.iter().all(|w| w.contains(&leader)),
        "{writers:?} vs leader {leader}"
    );
    let (leader_gw, follower_gw) = if leader == "gw-1" {
        (&gw1, &gw2)
    } else {
        (&gw2, &gw1)
    };
    assert!(leader_gw.logs().contains("certificate issued"));
    assert!(!follower_gw.logs().contains("ordering a certificate"));
    // The route reports no ACME error once issued.
    eventually(Duration::from_secs(10), "ResolvedRefs is True", || async {
        let route = cluster.get("apiroute", "kube").await;
        condition(&route, "ResolvedRefs").is_some_and(|c| c["status"] == "True")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_annotations_are_served_or_refused_with_events_and_status() {
    let cluster = Cluster::start().await;
    let gw = cluster.gateway(&["--nginx-compat"]).await;
    let client = HttpClient::new();
    cluster
        .kubectl
        .apply(
            "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: rewritten
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /$2
    nginx.ingress.kubernetes.io/server-snippet: \"return 403;\"
spec:
  ingressClassName: gatehouse
  rules:
  - host: nginx.localhost
    http:
      paths:
      - path: /api(/|$)(.*)
        pathType: ImplementationSpecific
        backend:
          service: {name: echo-b, port: {number: 80}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: misconfigured
  annotations:
    nginx.ingress.kubernetes.io/limit-rps: ten
spec:
  ingressClassName: gatehouse
  rules:
  - host: misconfigured.localhost
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: echo-b, port: {number: 80}}
",
        )
        .await;
    eventually(Duration::from_secs(10), "the rewrite is served", || {
        let client = &client;
        let gw = &gw;
        async move {
            client
                .get(gw.http, "nginx.localhost", "/api/orders")
                .await
                .ok()
                .and_then(|r| r.echo())
                .is_some_and(|e| e.path == "/orders")
        }
    })
    .await;
    assert_eq!(
        client
            .get(gw.http, "misconfigured.localhost", "/")
            .await
            .unwrap()
            .status,
        404,
        "a malformed annotation keeps the Ingress from being served"
    );
    // Status: the served Ingress gets the address, the refused one none.
    eventually(
        Duration::from_secs(10),
        "the served Ingress gets the address",
        || {
            let cluster = &cluster;
            async move {
                let ing = cluster.get("ingress", "rewritten").await;
                ing.pointer("/status/loadBalancer/ingress/0/ip") == Some(&json!(PUBLISHED))
            }
        },
    )
    .await;
    let refused = cluster.get("ingress", "misconfigured").await;
    assert!(
        refused.pointer("/status/loadBalancer/ingress/0").is_none(),
        "{refused:#}"
    );
    // Warning events name the annotation and why, for the refused
    // Ingress (error) and the unsupported snippet (served without it).
    let notes = |name: &'static str| {
        let sim = &cluster.sim;
        async move {
            sim.list("events.k8s.io/v1", "events")
                .into_iter()
                .filter(|e| e.pointer("/regarding/name").and_then(Value::as_str) == Some(name))
                .filter(|e| e["type"] == "Warning")
                .filter_map(|e| e["note"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        }
    };
    eventually(
        Duration::from_secs(10),
        "events for both Ingresses",
        || async {
            !notes("misconfigured").await.is_empty() && !notes("rewritten").await.is_empty()
        },
    )
    .await;
    let bad = notes("misconfigured").await.join("\n");
    assert!(
        bad.contains("metadata.annotations[nginx.ingress.kubernetes.io/limit-rps]")
            && bad.contains("\"ten\" is not a whole number"),
        "{bad}"
    );
    let snippet = notes("rewritten").await.join("\n");
    assert!(
        snippet.contains("nginx.ingress.kubernetes.io/server-snippet")
            && snippet.contains("never executed"),
        "{snippet}"
    );
}
