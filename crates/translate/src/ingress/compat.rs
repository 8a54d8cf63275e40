//! What ingress-nginx annotations add to an Ingress under
//! `--nginx-compat`: rewrites, `app-root`, and the rule-level extras.

use k8s_openapi::api::networking::v1::Ingress;
use snapshot::{Action, Filters, Origin, PathMatch, PathRewrite, Rewrite, Route, Traffic};

use crate::ResourceSet;
use crate::annotations::{self, BackendProtocol};
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::nginx;

/// The annotations, with what the ingress-nginx settings say where the
/// Gatehouse annotations say nothing (backend protocol, HTTPS redirect).
pub(super) fn with_nginx_settings(
    mut annotations: annotations::IngressAnnotations,
    settings: &nginx::Settings,
) -> annotations::IngressAnnotations {
    if annotations.backend_protocol.is_none() {
        annotations.backend_protocol = settings.backend_protocol.map(|p| match p {
            api::BackendProtocol::HTTP => BackendProtocol::Http,
            api::BackendProtocol::HTTPS => BackendProtocol::Https,
            api::BackendProtocol::H2C => BackendProtocol::H2c,
            api::BackendProtocol::GRPC => BackendProtocol::Grpc,
            api::BackendProtocol::GRPCS => BackendProtocol::Grpcs,
        });
    }
    if annotations.ssl_redirect.is_none() {
        annotations.ssl_redirect = settings
            .ssl_redirect
            .or(settings.force_ssl_redirect.then_some(true));
    }
    annotations
}

/// The filters of one path: the ingress-nginx rewrite (a regex rewrite
/// under `use-regex`), else Gatehouse's `rewrite-target` annotation. The
/// error says why the path cannot be served.
pub(super) fn path_filters(
    settings: &nginx::Settings,
    annotations: &annotations::IngressAnnotations,
    path: &PathMatch,
    written: &str,
) -> Result<Filters, String> {
    let rewrite = if let Some(filter) = settings.rewrite_for(written) {
        let modifier = filter.url_rewrite.and_then(|u| u.path);
        let modifier = modifier.as_ref().ok_or("no rewrite")?;
        let rewrite = crate::filters::regex_rewrite(modifier, "rewrite-target")
            .map_err(|e| e.into_iter().map(|(_, m)| m).collect::<Vec<_>>().join("; "))?;
        Some(Rewrite {
            hostname: None,
            path: Some(rewrite),
        })
    } else {
        annotations.rewrite_target.as_ref().map(|target| Rewrite {
            hostname: None,
            path: Some(match path {
                PathMatch::Exact(_) => PathRewrite::Full(target.as_str().into()),
                _ => PathRewrite::Prefix(target.as_str().into()),
            }),
        })
    };
    Ok(Filters {
        rewrite,
        ..Filters::default()
    })
}

/// `app-root`: the redirect an exact `/` gets.
pub(super) fn app_root_route(root: &str, namespace: &str, name: &str, origin: &Origin) -> Route {
    Route {
        id: format!("ingress/{namespace}/{name}/app-root").into(),
        origin: origin.clone(),
        action: Action::Redirect(snapshot::Redirect {
            scheme: None,
            hostname: None,
            port: None,
            path: Some(PathRewrite::Full(root.into())),
            drop_query: true,
            status: 302,
        }),
        request_timeout: None,
        backend_timeout: None,
        filters: Filters::default(),
        traffic: Traffic::default(),
        rate_limits: Vec::new(),
        // nginx answers app-root in its rewrite phase, before access
        // and authentication: the redirect reveals nothing.
        policies: snapshot::RoutePolicies::default(),
    }
}

/// Reads the ingress-nginx annotations of an Ingress and reports every
/// finding that deserves one; `None` when one keeps the Ingress from
/// being served.
pub(super) fn compat_settings(
    ingress: &Ingress,
    object: &ObjectRef,
    diags: &mut Diagnostics,
) -> Option<nginx::Settings> {
    let parsed = nginx::parse(ingress.metadata.annotations.as_ref(), &object.namespace);
    for f in &parsed.findings {
        let field = format!("metadata.annotations[{}]", f.annotation);
        match f.verdict {
            nginx::Verdict::Same | nginx::Verdict::Differs => {}
            nginx::Verdict::Unsupported => diags.warning(
                object,
                field,
                Reason::Unsupported,
                format!("{}; the Ingress is served without it", f.message),
            ),
            nginx::Verdict::Unknown => {
                diags.warning(object, field, Reason::InvalidAnnotation, f.message.clone());
            }
            nginx::Verdict::Refused => {
                diags.error(object, field, Reason::Unsupported, f.message.clone());
            }
            nginx::Verdict::Malformed => diags.error(
                object,
                field,
                Reason::InvalidAnnotation,
                format!("{}; the Ingress is not served", f.message),
            ),
        }
    }
    (!parsed.blocked()).then_some(parsed.settings)
}

/// Without the compatibility layer, ingress-nginx annotations change
/// nothing: say so once per Ingress rather than leave it silent.
pub(super) fn report_ignored_nginx(ingress: &Ingress, object: &ObjectRef, diags: &mut Diagnostics) {
    let count = ingress
        .metadata
        .annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(nginx::PREFIX))
        .count();
    if count > 0 {
        diags.warning(
            object,
            "metadata.annotations",
            Reason::InvalidAnnotation,
            format!(
                "{count} {}* annotation(s) are ignored: start Gatehouse with --nginx-compat (chart value controller.nginxCompat) to honour them, or run `gatehouse migrate` to see what they would do",
                nginx::PREFIX
            ),
        );
    }
}

/// What the ingress-nginx annotations add to every route of an Ingress.
pub(super) struct Extras {
    pub(super) policies: snapshot::RoutePolicies,
    pub(super) traffic: Traffic,
    pub(super) timeouts: (Option<std::time::Duration>, Option<std::time::Duration>),
    pub(super) rate_limits: Vec<std::sync::Arc<snapshot::RateLimit>>,
    pub(super) redirect: Option<snapshot::Redirect>,
}

impl Extras {
    pub(super) fn compile(
        settings: &nginx::Settings,
        namespace: &str,
        name: &str,
        resources: &ResourceSet,
        object: &ObjectRef,
        diags: &mut Diagnostics,
    ) -> Option<Self> {
        let template = settings.rule_template();
        let mut errors = Vec::new();
        let field = "metadata.annotations";
        let policies =
            crate::policy::route_policies(&template, field, namespace, resources, &mut errors);
        let traffic = crate::traffic::route_traffic(&template, field, &mut errors);
        let timeouts = settings.read_timeout.map_or((None, None), |n| {
            let d = std::time::Duration::from_secs(u64::from(n));
            (Some(d), Some(d))
        });
        let mut rate_limits = Vec::new();
        for (which, requests, per) in [
            ("rps", settings.limit_rps, std::time::Duration::from_secs(1)),
            (
                "rpm",
                settings.limit_rpm,
                std::time::Duration::from_secs(60),
            ),
        ] {
            if let Some(requests) = requests {
                rate_limits.push(std::sync::Arc::new(snapshot::RateLimit {
                    // Apart from RateLimitPolicy budgets (`ns/policy/limit`).
                    id: format!("ingress/{namespace}/{name}/limit-{which}").into(),
                    key: snapshot::RateLimitKey::ClientIp,
                    requests,
                    per,
                    burst: requests.saturating_mul(settings.burst_multiplier),
                    scope: snapshot::RateLimitScope::Local,
                    fail_open: true,
                    headers_on_success: false,
                }));
            }
        }
        let redirect = settings.redirect.as_ref().map(|r| snapshot::Redirect {
            scheme: Some(if r.https {
                snapshot::Scheme::Https
            } else {
                snapshot::Scheme::Http
            }),
            hostname: r.host.as_deref().map(Into::into),
            port: r.port,
            path: r.path.as_deref().map(|p| PathRewrite::Full(p.into())),
            drop_query: r.path.is_some(),
            status: r.status,
        });
        if !errors.is_empty() {
            for (f, msg) in errors {
                diags.error(
                    object,
                    f,
                    Reason::InvalidAnnotation,
                    format!("{msg}; the Ingress is not served"),
                );
            }
            return None;
        }
        Some(Self {
            policies,
            traffic,
            timeouts,
            rate_limits,
            redirect,
        })
    }
}
