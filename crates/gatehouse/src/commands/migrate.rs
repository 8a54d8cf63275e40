//! `gatehouse migrate`: reads ingress-nginx Ingresses and reports, per
//! Ingress, what behaves the same in Gatehouse, what differs and what is
//! unsupported; with `--emit apiroute`, writes the equivalent ApiRoute
//! and RateLimitPolicy manifests (the report as YAML comments).

use std::fmt::Write as _;
use std::process::ExitCode;

use controller::ManifestSet;
use translate::migrate::{self, Migration};
use translate::nginx::Verdict;

use crate::cli::{Emit, MigrateArgs};

pub(crate) fn run(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let mut set = ManifestSet::new(args.files.clone());
    let report = set.rescan();
    for e in &report.new_errors {
        eprintln!("error: {e}");
    }
    let (resources, _) = set.resources();
    let migrations = migrate::migrate(
        &resources.ingresses,
        &resources.services,
        &args.ingress_class,
    );
    let emit = args.emit == Some(Emit::Apiroute);
    let mut out = String::new();
    let mut blocked = 0;
    let mut differ = 0;
    for m in &migrations {
        let text = report_one(m);
        if m.blocked() {
            blocked += 1;
        } else if m.findings.iter().any(|f| f.verdict != Verdict::Same) {
            differ += 1;
        }
        if emit {
            for line in text.lines() {
                let _ = writeln!(out, "# {line}");
            }
            out.push_str(&migrate::manifests_yaml(m).map_err(anyhow::Error::msg)?);
        } else {
            out.push_str(&text);
            out.push('\n');
        }
    }
    let summary = format!(
        "{} Ingress(es): {} behave the same, {differ} with differences or unsupported annotations to review, {blocked} not served until fixed",
        migrations.len(),
        migrations.len() - differ - blocked
    );
    if emit {
        let _ = writeln!(out, "# {summary}");
    } else {
        out.push_str(&summary);
        out.push('\n');
    }
    print!("{out}");
    Ok(if blocked > 0 || !report.new_errors.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn report_one(m: &Migration) -> String {
    let mut text = String::new();
    let state = if m.blocked() {
        "NOT SERVED until the errors below are fixed"
    } else if m.findings.iter().all(|f| f.verdict == Verdict::Same) {
        "behaves the same"
    } else {
        "served, with differences to review"
    };
    let _ = writeln!(text, "Ingress {}: {state}", m.ingress);
    for f in &m.findings {
        let label = match f.verdict {
            Verdict::Same => "same",
            Verdict::Differs => "differs",
            Verdict::Unsupported => "unsupported",
            Verdict::Refused => "refused",
            Verdict::Malformed => "malformed",
            Verdict::Unknown => "unknown",
        };
        let name = f
            .annotation
            .strip_prefix(translate::nginx::PREFIX)
            .unwrap_or(&f.annotation);
        let _ = writeln!(text, "  {label:<12} {name}: {}", f.message);
    }
    let mut made: Vec<String> = m
        .api_routes
        .iter()
        .map(|r| {
            format!(
                "ApiRoute {}",
                r.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    if let Some(p) = &m.rate_limit_policy {
        made.push(format!(
            "RateLimitPolicy {}",
            p.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    if !made.is_empty() {
        let _ = writeln!(text, "  becomes      {}", made.join(", "));
    }
    text
}
