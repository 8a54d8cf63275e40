//! `gatehouse-kube-bench`: measures Kubernetes mode against the API
//! simulator, with the `gatehouse` binary next to this one.
//!
//! * `latency [CHANGES] [BACKGROUND-PATHS]` — creates CHANGES ApiRoutes
//!   one by one through the API and reports, for each, the time from the
//!   API server's answer to the first request the gateway serves on it
//!   (p50, p90, p99, max). BACKGROUND-PATHS Ingress paths are loaded first
//!   so translation has realistic work to do.
//! * `scale [PATHS] [ENDPOINTS]` — loads PATHS Ingress paths and ENDPOINTS
//!   endpoints, then reports the time to ready and the gateway's memory.
//!
//! Extra `gatehouse run` flags can be given after `--`.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;
use serde_json::{Value, json};
use testkit::kubesim::KubeSim;
use testkit::{EchoServer, GatewayProcess, HttpClient};

#[tokio::main]
async fn main() -> ExitCode {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let (args, extra) = match all.iter().position(|a| a == "--") {
        Some(i) => (all[..i].to_vec(), all[i + 1..].to_vec()),
        None => (all, Vec::new()),
    };
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("latency") => latency(num(1, 100), num(2, 1000), &extra).await,
        Some("scale") => scale(num(1, 10_000), num(2, 50_000), &extra).await,
        _ => {
            eprintln!(
                "usage: gatehouse-kube-bench latency [CHANGES] [BACKGROUND-PATHS] [-- FLAGS]"
            );
            eprintln!("       gatehouse-kube-bench scale [PATHS] [ENDPOINTS] [-- FLAGS]");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

/// A simulator with the CRDs and `paths` generated Ingress paths with
/// `endpoints` endpoints in all, served by `echo`.
async fn cluster(paths: usize, endpoints: usize, echo: &EchoServer) -> KubeSim {
    let sim = KubeSim::start().await;
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../charts/gatehouse/crds");
    for entry in std::fs::read_dir(crds).expect("charts/gatehouse/crds") {
        let text = std::fs::read_to_string(entry.expect("a CRD file").path()).expect("read a CRD");
        let crd: Value = serde_saphyr::from_str(&text).expect("a CRD parses");
        sim.put(crd).expect("register a CRD");
    }
    if paths > 0 {
        let per_service = endpoints.div_ceil(paths.div_ceil(10)).max(1);
        let manifests = testkit::scale::ingress_paths(paths, per_service, echo.addr.port());
        for doc in manifests.split("\n---\n") {
            let object: Value = serde_saphyr::from_str(doc).expect("generated YAML parses");
            sim.put(object).expect("load a generated object");
        }
    }
    sim.put(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "bench", "namespace": "default"},
        "spec": {"ports": [{"name": "http", "port": 80}]},
    }))
    .expect("a Service");
    sim.put(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "bench-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "bench"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": echo.addr.port()}],
        "endpoints": [{"addresses": ["127.0.0.1"]}],
    }))
    .expect("an EndpointSlice");
    sim
}

async fn gateway(sim: &KubeSim, dir: &Path, extra: &[String]) -> (GatewayProcess, Duration) {
    let mut args = vec![
        "run".to_owned(),
        "--kubeconfig".to_owned(),
        sim.kubeconfig(dir).display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    let started = Instant::now();
    let gw = GatewayProcess::spawn(&args);
    gw.wait_ready(Duration::from_secs(300)).await;
    (gw, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn latency(changes: usize, background: usize, extra: &[String]) {
    let echo = EchoServer::start("bench").await;
    let sim = cluster(background, background * 2, &echo).await;
    let dir = tempfile::tempdir().expect("temporary directory");
    let (gw, _) = gateway(&sim, dir.path(), extra).await;
    let client = HttpClient::new().with_timeout(Duration::from_secs(5));
    let mut samples = Vec::with_capacity(changes);
    for i in 0..changes {
        let host = format!("r{i}.bench");
        let route = json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "ApiRoute",
            "metadata": {"name": format!("bench-{i}"), "namespace": "default"},
            "spec": {"ingressClassName": "gatehouse", "hostnames": [host],
                     "rules": [{"backends": [{"name": "bench", "port": 80}]}]},
        });
        let created = client
            .send(
                sim.addr,
                Method::POST,
                "sim",
                "/apis/gatehouse.dev/v1alpha1/namespaces/default/apiroutes",
                &[("content-type", "application/json")],
                Bytes::from(route.to_string()),
            )
            .await
            .expect("the simulator answers");
        assert_eq!(created.status, 201, "create failed: {}", created.text());
        let accepted = Instant::now();
        loop {
            if client
                .get(gw.http, &host, "/")
                .await
                .is_ok_and(|r| r.status == 200)
            {
                break;
            }
            assert!(
                accepted.elapsed() < Duration::from_secs(10),
                "route {i} never served; the route: {:#}\nthe gateway's log:\n{}",
                sim.get(
                    "gatehouse.dev/v1alpha1",
                    "apiroutes",
                    "default",
                    &format!("bench-{i}")
                )
                .unwrap_or_default(),
                gw.logs()
            );
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        samples.push(accepted.elapsed());
        // Let the controller go quiet, so every change is measured alone.
        tokio::time::sleep(Duration::from_millis(100 + fastrand::u64(0..100))).await;
    }
    if std::env::var_os("KUBE_BENCH_LOG").is_some() {
        eprintln!("{}", gw.logs());
    }
    samples.sort();
    println!(
        "accept-to-served over {changes} ApiRoute creations ({background} background Ingress paths): \
         p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 90.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples[samples.len() - 1]),
    );
}

fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

async fn scale(paths: usize, endpoints: usize, extra: &[String]) {
    // The generated endpoints are spread over 127.0.0.0/8; one echo
    // server on every loopback address answers for all of them.
    let echo = EchoServer::start_on("bench", "0.0.0.0:0".parse().expect("an address"))
        .await
        .expect("start the echo server");
    let loading = Instant::now();
    let sim = cluster(paths, endpoints, &echo).await;
    eprintln!("loaded the simulator in {:?}", loading.elapsed());
    let dir = tempfile::tempdir().expect("temporary directory");
    let (gw, ready) = gateway(&sim, dir.path(), extra).await;
    let client = HttpClient::new();
    let served = client
        .get(gw.http, "host-0.example.com", "/api/v1/items-0")
        .await
        .expect("the gateway answers");
    assert_eq!(served.status, 200, "a generated path is not served");
    let rss = memory_kib(gw.pid(), "VmRSS:");
    let peak = memory_kib(gw.pid(), "VmHWM:");
    // One more change, to see the steady state after a republish.
    sim.put(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "bench-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "bench"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": echo.addr.port()}],
        "endpoints": [{"addresses": ["127.0.0.1"]}, {"addresses": ["127.0.0.2"]}],
    }))
    .expect("update a slice");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after = memory_kib(gw.pid(), "VmRSS:");
    let translate = gw
        .logs()
        .lines()
        .filter_map(|l| {
            l.split("translate_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .next_back()
        .unwrap_or(f64::NAN);
    println!(
        "{paths} Ingress paths, {endpoints} endpoints: ready in {:.2} s, translate {translate:.1} ms, \
         RSS {:.1} MiB (peak {:.1} MiB), RSS after a republish {:.1} MiB",
        ready.as_secs_f64(),
        rss as f64 / 1024.0,
        peak as f64 / 1024.0,
        rss_after as f64 / 1024.0,
    );
}
