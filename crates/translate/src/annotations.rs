//! Typed Ingress annotations under `gatehouse.dev/`.
//!
//! Every value is parsed and validated into typed configuration; nothing is
//! ever pasted into configuration text. A malformed value of a known
//! annotation is an error and the Ingress is not served (serving it without
//! the setting could send requests where they were not meant to go); an
//! unknown `gatehouse.dev/` annotation is reported and ignored.

use std::collections::BTreeMap;

use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::values::normalize_rule_path;

/// The annotation prefix Gatehouse owns.
pub(crate) const PREFIX: &str = "gatehouse.dev/";

/// `gatehouse.dev/rewrite-target`: replaces the matched path prefix (the
/// whole path for `Exact` paths) before the request goes upstream.
pub(crate) const REWRITE_TARGET: &str = "gatehouse.dev/rewrite-target";
/// `gatehouse.dev/backend-protocol`: how Gatehouse talks to the backends.
pub(crate) const BACKEND_PROTOCOL: &str = "gatehouse.dev/backend-protocol";
/// `gatehouse.dev/rate-limit-policy`: RateLimitPolicies (comma-separated
/// names, same namespace) that apply to every path of the Ingress.
pub(crate) const RATE_LIMIT_POLICY: &str = "gatehouse.dev/rate-limit-policy";
/// `gatehouse.dev/ssl-redirect`: redirect plain HTTP to HTTPS for the
/// Ingress's TLS hosts (`true` or `false`).
pub(crate) const SSL_REDIRECT: &str = "gatehouse.dev/ssl-redirect";

const KNOWN: &[&str] = &[
    REWRITE_TARGET,
    BACKEND_PROTOCOL,
    RATE_LIMIT_POLICY,
    SSL_REDIRECT,
];

/// Protocols `gatehouse.dev/backend-protocol` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BackendProtocol {
    Http,
    Https,
    H2c,
    Grpc,
    Grpcs,
}

/// The parsed annotations of one Ingress.
#[derive(Clone, Debug, Default)]
pub(crate) struct IngressAnnotations {
    pub(crate) rewrite_target: Option<String>,
    pub(crate) backend_protocol: Option<BackendProtocol>,
    pub(crate) rate_limit_policies: Vec<String>,
    pub(crate) ssl_redirect: Option<bool>,
}

/// Parses the `gatehouse.dev/` annotations. `Err` means a known annotation
/// is malformed (each problem is already reported).
pub(crate) fn parse(
    annotations: Option<&BTreeMap<String, String>>,
    object: &ObjectRef,
    policy_exists: impl Fn(&str) -> bool,
    diags: &mut Diagnostics,
) -> Result<IngressAnnotations, ()> {
    let mut out = IngressAnnotations::default();
    let mut ok = true;
    let Some(annotations) = annotations else {
        return Ok(out);
    };
    for (key, value) in annotations.range(PREFIX.to_owned()..) {
        if !key.starts_with(PREFIX) {
            break;
        }
        let field = format!("metadata.annotations[{key}]");
        let mut bad = |diags: &mut Diagnostics, msg: String| {
            diags.error(
                object,
                field.clone(),
                Reason::InvalidAnnotation,
                format!("{msg}; the Ingress is not served"),
            );
            ok = false;
        };
        match key.as_str() {
            REWRITE_TARGET => match normalize_rule_path(value.trim()) {
                Ok(p) => out.rewrite_target = Some(p),
                Err(msg) => bad(diags, msg),
            },
            BACKEND_PROTOCOL => match value.trim().to_ascii_uppercase().as_str() {
                "HTTP" => out.backend_protocol = Some(BackendProtocol::Http),
                "HTTPS" => out.backend_protocol = Some(BackendProtocol::Https),
                "H2C" => out.backend_protocol = Some(BackendProtocol::H2c),
                "GRPC" => out.backend_protocol = Some(BackendProtocol::Grpc),
                "GRPCS" => out.backend_protocol = Some(BackendProtocol::Grpcs),
                _ => bad(
                    diags,
                    format!(
                        "{value:?} is not a backend protocol: use HTTP, HTTPS, H2C, GRPC or GRPCS"
                    ),
                ),
            },
            RATE_LIMIT_POLICY => {
                for name in value.split(',').map(str::trim) {
                    if !is_dns_label_name(name) {
                        bad(diags, format!("{name:?} is not a RateLimitPolicy name"));
                    } else if !policy_exists(name) {
                        diags.error(
                            object,
                            field.clone(),
                            Reason::BackendNotFound,
                            format!("RateLimitPolicy {}/{name} does not exist; the paths are served without it", object.namespace),
                        );
                    } else {
                        out.rate_limit_policies.push(name.to_owned());
                    }
                }
            }
            SSL_REDIRECT => match value.trim() {
                "true" => out.ssl_redirect = Some(true),
                "false" => out.ssl_redirect = Some(false),
                _ => bad(
                    diags,
                    format!("{value:?} is not a boolean: use \"true\" or \"false\""),
                ),
            },
            _ => diags.warning(
                object,
                field.clone(),
                Reason::InvalidAnnotation,
                format!(
                    "unknown annotation, ignored; Gatehouse understands {}",
                    KNOWN.join(", ")
                ),
            ),
        }
    }
    if ok { Ok(out) } else { Err(()) }
}

/// A Kubernetes object name (DNS-1123 subdomain).
fn is_dns_label_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.'])
}
