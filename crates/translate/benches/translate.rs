//! Translation cost at scale: parsing is excluded, only
//! `ResourceSet -> Snapshot` is measured, as the controller runs it.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use translate::{Options, ResourceSet, manifest, translate};

fn resources(paths: usize) -> ResourceSet {
    let text = testkit::scale::ingress_paths(paths, 2, 8080);
    manifest::parse(&text)
        .expect("generated manifests parse")
        .objects
        .into_iter()
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("translate");
    group.sample_size(10);
    for paths in [1_000, 10_000] {
        let set = resources(paths);
        let options = Options::default();
        group.bench_function(format!("ingress_paths/{paths}"), |b| {
            b.iter(|| black_box(translate(black_box(&set), &options)));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
