//! `gatehouse validate`: offline translation with every problem reported.

use std::process::ExitCode;

use controller::ManifestSet;
use translate::{Severity, translate};

use crate::cli::ValidateArgs;

pub(crate) fn run(args: &ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut set = ManifestSet::new(args.files.clone());
    let report = set.rescan();
    let mut errors = 0usize;
    let mut warnings = 0usize;
    for e in &report.new_errors {
        println!("error: {e}");
        errors += 1;
    }
    for (path, skipped) in &report.skipped {
        println!(
            "warning: {}:{}: skipping {} {}: Gatehouse does not use this kind",
            path.display(),
            skipped.line,
            skipped.api_version,
            skipped.kind
        );
        warnings += 1;
    }
    let (resources, duplicates) = set.resources();
    for d in duplicates {
        println!("warning: {d}");
        warnings += 1;
    }
    let output = translate(&resources, &args.translate.options());
    for object in &output.ignored {
        println!(
            "note: {object} is not served: its class is not Gatehouse's (set spec.ingressClassName: {}, or mark Gatehouse's IngressClass as the default)",
            args.translate.ingress_class
        );
    }
    for d in &output.diagnostics {
        println!("{d}");
        match d.severity {
            Severity::Error => errors += 1,
            Severity::Warning => warnings += 1,
        }
    }
    println!(
        "{} objects, {} routes, {} match entries, {} clusters: {errors} error(s), {warnings} warning(s)",
        resources.len(),
        output.snapshot.routes.len(),
        output.snapshot.entry_count(),
        output.snapshot.clusters.len(),
    );
    Ok(if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
