//! An Ingress's `spec.tls` as TLS proposals, and forced HTTPS.

use snapshot::HostPattern;

use crate::ResourceSet;
use crate::annotations;
use crate::builder::Builder;
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::nginx;

/// Proposes the TLS settings of `spec.tls`: each entry's hosts (all the
/// rules' hosts when it lists none) get its Secret's certificate, and a
/// redirect from HTTP unless `gatehouse.dev/ssl-redirect` is `false`.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every argument distinct"
)]
pub(super) fn propose_tls(
    spec: &k8s_openapi::api::networking::v1::IngressSpec,
    object: &ObjectRef,
    created: Option<i64>,
    namespace: &str,
    annotations: &annotations::IngressAnnotations,
    resources: &ResourceSet,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let rule_hosts: Vec<&str> = spec
        .rules
        .iter()
        .flatten()
        .filter_map(|r| r.host.as_deref())
        .collect();
    for (i, entry) in spec.tls.iter().flatten().enumerate() {
        let listed: Vec<&str> = entry.hosts.iter().flatten().map(String::as_str).collect();
        let names = if listed.is_empty() {
            &rule_hosts
        } else {
            &listed
        };
        let mut hosts = Vec::new();
        for (j, host) in names.iter().enumerate() {
            let host = host.to_ascii_lowercase();
            if let Err(msg) = crate::values::check_hostname(&host) {
                diags.error(
                    object,
                    format!("spec.tls[{i}].hosts[{j}]"),
                    Reason::InvalidField,
                    msg,
                );
                continue;
            }
            let pattern = HostPattern::parse(&host);
            if !hosts.contains(&pattern) {
                hosts.push(pattern);
            }
        }
        if hosts.is_empty() {
            continue;
        }
        builder.tls.propose(
            &hosts,
            crate::tls::Request {
                object,
                created,
                namespace,
                field: format!("spec.tls[{i}].secretName"),
                secret: entry.secret_name.as_deref().filter(|s| !s.is_empty()),
                acme: None,
                redirect: annotations.ssl_redirect.unwrap_or(true),
                hsts: None,
                client: None,
            },
            resources,
            diags,
        );
    }
}

/// `force-ssl-redirect`: every host of the rules that `spec.tls` does
/// not already cover is served on HTTPS (default certificate) and
/// redirected there from HTTP.
pub(super) fn force_https(
    spec: &k8s_openapi::api::networking::v1::IngressSpec,
    object: &ObjectRef,
    created: Option<i64>,
    namespace: &str,
    resources: &ResourceSet,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let covered = |host: &str| {
        spec.tls.iter().flatten().any(|t| {
            t.hosts
                .as_ref()
                .is_none_or(|h| h.is_empty() || h.iter().any(|x| x.eq_ignore_ascii_case(host)))
        })
    };
    let mut hosts = Vec::new();
    for rule in spec.rules.iter().flatten() {
        if let Some(h) = rule.host.as_deref()
            && crate::values::check_hostname(h).is_ok()
            && !covered(h)
        {
            let pattern = HostPattern::parse(&h.to_ascii_lowercase());
            if !hosts.contains(&pattern) {
                hosts.push(pattern);
            }
        }
    }
    if hosts.is_empty() {
        return;
    }
    builder.tls.propose(
        &hosts,
        crate::tls::Request {
            object,
            created,
            namespace,
            field: format!("metadata.annotations[{}force-ssl-redirect]", nginx::PREFIX),
            secret: None,
            acme: None,
            redirect: true,
            hsts: None,
            client: None,
        },
        resources,
        diags,
    );
}
