//! Route lookup cost: the data plane's per-request matching work, with
//! 10, 1,000 and 10,000 routes (10 routes per host, so 10,000 routes span
//! 1,000 hosts). Criterion measures the mean; a second pass times single
//! lookups to report p50 and p99, and the snapshot's heap size per 1,000
//! routes is measured with a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, Method};
use snapshot::{Body, Lookup, RequestInfo, Snapshot};
use translate::{Options, ResourceSet, manifest, translate};

/// Counts live heap bytes, to measure the snapshot's size.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call forwards to the system allocator unchanged; only a
// counter is updated beside it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn resources(routes: usize) -> ResourceSet {
    let text = testkit::scale::ingress_paths(routes, 2, 8080);
    manifest::parse(&text)
        .expect("generated manifests parse")
        .objects
        .into_iter()
        .collect()
}

/// Builds the snapshot and reports its heap size.
fn build(routes: usize) -> (Snapshot, isize) {
    let set = resources(routes);
    let before = LIVE.load(Ordering::Relaxed);
    let output = translate(&set, &Options::default());
    let snapshot = output.snapshot;
    drop(output.diagnostics);
    drop(output.ignored);
    let size = LIVE.load(Ordering::Relaxed) - before;
    (snapshot, size)
}

/// Request (host, path) pairs: nine in ten hit a configured path, one in
/// ten misses.
fn requests(routes: usize, n: usize) -> Vec<(String, String)> {
    let hosts = routes.div_ceil(10);
    let mut rng = fastrand::Rng::with_seed(7);
    (0..n)
        .map(|_| {
            let i = rng.usize(..hosts);
            let p = rng.usize(..10);
            let path = match rng.u8(..10) {
                0 => format!("/api/v{p}/missing-{i}"),
                _ => format!("/api/v{p}/items-{i}/sub/resource"),
            };
            (format!("host-{i}.example.com"), path)
        })
        .collect()
}

fn lookup(snapshot: &Snapshot, host: &str, path: &str, headers: &HeaderMap) -> bool {
    let info = RequestInfo {
        host,
        path,
        query: None,
        method: &Method::GET,
        headers,
        body: Body::Unread,
    };
    matches!(snapshot.route(&info), Lookup::Matched(_))
}

fn bench(c: &mut Criterion) {
    let headers = HeaderMap::new();
    let mut group = c.benchmark_group("lookup");
    for routes in [10, 1_000, 10_000] {
        let (snapshot, size) = build(routes);
        let reqs = requests(routes, 4096);
        group.bench_function(format!("routes/{routes}"), |b| {
            let mut i = 0;
            b.iter(|| {
                let (h, p) = &reqs[i & 4095];
                i += 1;
                black_box(lookup(&snapshot, h, p, &headers))
            });
        });

        // Per-lookup latency distribution, minus the clock's own cost.
        let clock = {
            let mut v: Vec<u64> = (0..10_000)
                .map(|_| {
                    let t = Instant::now();
                    let d = t.elapsed();
                    d.as_nanos() as u64
                })
                .collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        let mut samples: Vec<u64> = Vec::with_capacity(200_000);
        for (h, p) in requests(routes, 200_000) {
            let t = Instant::now();
            black_box(lookup(&snapshot, &h, &p, &headers));
            samples.push((t.elapsed().as_nanos() as u64).saturating_sub(clock));
        }
        samples.sort_unstable();
        let pct = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
        println!(
            "lookup/routes/{routes}: p50 {} ns, p99 {} ns, p99.9 {} ns (clock cost {clock} ns subtracted); snapshot heap {:.1} KiB = {:.0} bytes per route",
            pct(0.50),
            pct(0.99),
            pct(0.999),
            size as f64 / 1024.0,
            size as f64 / routes as f64
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
