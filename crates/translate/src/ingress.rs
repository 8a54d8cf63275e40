//! `networking.k8s.io/v1` Ingress semantics.
//!
//! * Every path of every rule becomes one route with one entry under its
//!   host (or the catch-all host when the rule names none).
//! * `Exact` matches the whole path; `Prefix` matches element by element
//!   (`/foo` takes `/foo`, `/foo/` and `/foo/bar`, never `/foobar`);
//!   `ImplementationSpecific` is defined as `Prefix`.
//! * `spec.defaultBackend` takes requests for the Ingress's hosts (and the
//!   catch-all host) that match no path of any route there.
//! * A backend that does not resolve keeps its place and answers 503, as a
//!   missing upstream would.

use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use snapshot::{
    Action, BackendTarget, Filters, Forward, HeaderMatcher, HostPattern, Origin, PathMatch,
    PathRewrite, Pattern, Rewrite, Route, RouteEntry, Traffic, ValueMatch, WeightedBackend,
};

use crate::annotations::{self, BackendProtocol};
use crate::backends::{Backends, PortRef, Use};
use crate::builder::{Builder, Provenance, Tier};
use crate::class::{Classes, LEGACY_CLASS_ANNOTATION};
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::nginx;
use crate::traffic::ClusterSettings;
use crate::values::{check_hostname, normalize_rule_path};
use crate::{ResourceSet, ServicePortRef, created_seconds};

/// Status for the share of a backend that does not resolve.
const UNRESOLVED_STATUS: u16 = 503;

pub(crate) fn translate_all(
    resources: &ResourceSet,
    classes: &Classes<'_>,
    backends: &Backends<'_>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
    ignored: &mut Vec<ObjectRef>,
    nginx_compat: bool,
) {
    let mut canaries = Canaries::default();
    let served = |ingress: &Ingress| {
        let class_name = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref());
        let legacy = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
            .map(String::as_str);
        classes.serves_ingress(class_name, legacy)
    };
    if nginx_compat {
        for ingress in crate::sorted(&resources.ingresses, |i| &i.metadata) {
            if served(ingress) {
                canaries.collect(ingress);
            }
        }
    }
    for ingress in crate::sorted(&resources.ingresses, |i| &i.metadata) {
        if served(ingress) {
            let policy_exists = |name: &str| {
                resources.rate_limit_policies.iter().any(|p| {
                    p.metadata.name.as_deref() == Some(name)
                        && p.metadata.namespace == ingress.metadata.namespace
                })
            };
            let compat = nginx_compat.then_some(&canaries);
            translate_one(
                ingress,
                resources,
                backends,
                &policy_exists,
                compat,
                builder,
                diags,
            );
        } else {
            ignored.push(crate::identity("Ingress", &ingress.metadata).0);
        }
    }
    canaries.report_unused(diags);
}

/// Canary Ingresses (`nginx.ingress.kubernetes.io/canary: "true"`) by the
/// namespace, host and path they shadow.
#[derive(Default)]
pub(crate) struct Canaries {
    by_path: std::collections::HashMap<(String, String, String), CanaryPath>,
}

pub(crate) struct CanaryPath {
    pub(crate) object: ObjectRef,
    field: String,
    pub(crate) canary: nginx::Canary,
    pub(crate) backend: IngressBackend,
    used: std::cell::Cell<bool>,
}

impl Canaries {
    pub(crate) fn collect(&mut self, ingress: &Ingress) {
        let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
        let parsed = nginx::parse(ingress.metadata.annotations.as_ref(), &namespace);
        let Some(canary) = parsed.settings.canary.clone() else {
            return;
        };
        if parsed.blocked() {
            return;
        }
        let object = crate::identity("Ingress", &ingress.metadata).0;
        for (i, rule) in ingress
            .spec
            .iter()
            .flat_map(|s| s.rules.iter().flatten())
            .enumerate()
        {
            let host = rule.host.clone().unwrap_or_default().to_ascii_lowercase();
            for (j, path) in rule.http.iter().flat_map(|h| h.paths.iter()).enumerate() {
                let key = (
                    namespace.clone(),
                    host.clone(),
                    path.path.clone().unwrap_or_else(|| "/".into()),
                );
                self.by_path.entry(key).or_insert_with(|| CanaryPath {
                    object: object.clone(),
                    field: format!("spec.rules[{i}].http.paths[{j}]"),
                    canary: canary.clone(),
                    backend: path.backend.clone(),
                    used: std::cell::Cell::new(false),
                });
            }
        }
    }

    fn is_canary(&self, object: &ObjectRef) -> bool {
        self.by_path.values().any(|c| c.object == *object)
    }

    pub(crate) fn find(&self, namespace: &str, host: &str, path: &str) -> Option<&CanaryPath> {
        let key = (
            namespace.to_owned(),
            host.to_ascii_lowercase(),
            path.to_owned(),
        );
        let found = self.by_path.get(&key)?;
        found.used.set(true);
        Some(found)
    }

    fn report_unused(&self, diags: &mut Diagnostics) {
        for ((_, host, path), c) in &self.by_path {
            if !c.used.get() {
                diags.warning(
                    &c.object,
                    c.field.clone(),
                    Reason::BackendNotFound,
                    format!("no other Ingress of the class serves host {host:?} path {path:?}: the canary is not served"),
                );
            }
        }
    }
}

fn translate_one(
    ingress: &Ingress,
    resources: &ResourceSet,
    backends: &Backends<'_>,
    policy_exists: &dyn Fn(&str) -> bool,
    compat: Option<&Canaries>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let (object, origin) = crate::identity("Ingress", &ingress.metadata);
    if compat.is_some_and(|c| c.is_canary(&object)) {
        // Served by the Ingress it shadows; report its findings only.
        let _ = compat_settings(ingress, &object, diags);
        return;
    }
    let (namespace, name) = (origin.namespace.clone(), origin.name.clone());
    let created = created_seconds(&ingress.metadata);
    let provenance = |field: String| Provenance {
        object: object.clone(),
        created,
        field,
    };
    let Some(spec) = &ingress.spec else {
        diags.error(
            &object,
            "spec",
            Reason::InvalidField,
            "an Ingress needs a spec",
        );
        return;
    };
    let Ok(annotations) = annotations::parse(
        ingress.metadata.annotations.as_ref(),
        &object,
        policy_exists,
        diags,
    ) else {
        return;
    };
    let settings = if compat.is_some() {
        let Some(settings) = compat_settings(ingress, &object, diags) else {
            return;
        };
        settings
    } else {
        report_ignored_nginx(ingress, &object, diags);
        nginx::Settings::default()
    };
    let Some(extras) = Extras::compile(&settings, &namespace, &name, resources, &object, diags)
    else {
        return;
    };
    let mut annotations = annotations;
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
    if settings.force_ssl_redirect {
        force_https(
            spec, &object, created, &namespace, resources, builder, diags,
        );
    }
    propose_tls(
        spec,
        &object,
        created,
        &namespace,
        &annotations,
        resources,
        builder,
        diags,
    );
    let protocol = annotations.backend_protocol.map(|p| match p {
        BackendProtocol::Http => api::BackendProtocol::HTTP,
        BackendProtocol::Https => api::BackendProtocol::HTTPS,
        BackendProtocol::H2c => api::BackendProtocol::H2C,
        BackendProtocol::Grpc => api::BackendProtocol::GRPC,
        BackendProtocol::Grpcs => api::BackendProtocol::GRPCS,
    });
    let filters = |path: &PathMatch, written: &str| -> Result<Filters, String> {
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
    };

    let mut hosts: Vec<HostPattern> = Vec::new();
    for (i, rule) in spec.rules.iter().flatten().enumerate() {
        let host = match rule.host.as_deref() {
            None | Some("") => HostPattern::Any,
            Some(h) => {
                if let Err(msg) = check_hostname(h) {
                    diags.error(
                        &object,
                        format!("spec.rules[{i}].host"),
                        Reason::InvalidField,
                        msg,
                    );
                    continue;
                }
                HostPattern::parse(h)
            }
        };
        if !hosts.contains(&host) {
            hosts.push(host.clone());
        }
        let Some(http) = &rule.http else { continue };
        for (j, path) in http.paths.iter().enumerate() {
            let field = format!("spec.rules[{i}].http.paths[{j}]");
            let written = path.path.as_deref().unwrap_or("/");
            let Some(path_match) =
                path_match(path, written, settings.use_regex, &object, &field, diags)
            else {
                continue;
            };
            let filters = match filters(&path_match, written) {
                Ok(f) => f,
                Err(msg) => {
                    diags.error(
                        &object,
                        format!("metadata.annotations[{}rewrite-target]", nginx::PREFIX),
                        Reason::InvalidAnnotation,
                        format!("{msg}; the path is not served"),
                    );
                    continue;
                }
            };
            let target = backend_target(
                &path.backend,
                &namespace,
                protocol,
                &object,
                &format!("{field}.backend"),
                backends,
                builder,
                diags,
            );
            let canary = compat.and_then(|c| {
                c.find(
                    &namespace,
                    rule.host.as_deref().unwrap_or_default(),
                    written,
                )
            });
            add_path_routes(
                &PathRoutes {
                    id: format!("ingress/{namespace}/{name}/rule/{i}/path/{j}"),
                    origin: &origin,
                    host: &host,
                    path_match,
                    target,
                    filters,
                    extras: &extras,
                    canary,
                    namespace: &namespace,
                    protocol,
                    backends,
                    provenance: provenance(field),
                },
                builder,
                diags,
            );
        }
    }
    if let Some(root) = &settings.app_root {
        let route = builder.add_route(Route {
            id: format!("ingress/{namespace}/{name}/app-root").into(),
            origin: origin.clone(),
            action: Action::Redirect(snapshot::Redirect {
                scheme: None,
                hostname: None,
                port: None,
                path: Some(PathRewrite::Full(root.as_str().into())),
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
        });
        let mut root_hosts = hosts.clone();
        if root_hosts.is_empty() {
            root_hosts.push(HostPattern::Any);
        }
        for host in root_hosts {
            builder.add_entry(
                host,
                RouteEntry {
                    path: PathMatch::Exact("/".into()),
                    method: None,
                    headers: Vec::new(),
                    query: Vec::new(),
                    body: Vec::new(),
                    route,
                },
                Tier::Rule,
                provenance(format!("metadata.annotations[{}app-root]", nginx::PREFIX)),
            );
        }
    }

    if let Some(default) = &spec.default_backend {
        let field = "spec.defaultBackend";
        let target = backend_target(
            default, &namespace, protocol, &object, field, backends, builder, diags,
        );
        let route = builder.add_route(Route {
            id: format!("ingress/{namespace}/{name}/default-backend").into(),
            origin,
            action: forward_to(target),
            request_timeout: None,
            backend_timeout: None,
            filters: Filters::default(),
            traffic: Traffic::default(),
            rate_limits: Vec::new(),
            policies: snapshot::RoutePolicies::default(),
        });
        add_catch_all(
            builder,
            hosts,
            route,
            Tier::ObjectDefault,
            &provenance(field.to_owned()),
        );
    } else if spec.rules.as_ref().is_none_or(Vec::is_empty) {
        diags.warning(
            &object,
            "spec",
            Reason::InvalidField,
            "the Ingress has neither rules nor a defaultBackend: it serves nothing",
        );
    }
}

/// The path condition of one Ingress path: a case-insensitive regular
/// expression anchored at the start under `use-regex` (nginx's
/// `location ~* "^<path>"`), else the normalized path by its type.
/// `None` when the path cannot be served (reported).
fn path_match(
    path: &k8s_openapi::api::networking::v1::HTTPIngressPath,
    written: &str,
    use_regex: bool,
    object: &ObjectRef,
    field: &str,
    diags: &mut Diagnostics,
) -> Option<PathMatch> {
    if use_regex {
        return match Pattern::new(&nginx::Settings::path_regex(written)) {
            Ok(p) => Some(PathMatch::Regex(p)),
            Err(e) => {
                diags.error(
                    object,
                    format!("{field}.path"),
                    Reason::InvalidField,
                    format!("{written:?} is not a regular expression (use-regex): {e}"),
                );
                None
            }
        };
    }
    let value = match normalize_rule_path(written) {
        Ok(v) => v,
        Err(msg) => {
            diags.error(object, format!("{field}.path"), Reason::InvalidField, msg);
            return None;
        }
    };
    if value != written {
        diags.warning(
            object,
            format!("{field}.path"),
            Reason::InvalidField,
            format!(
                "{written:?} is matched as {value:?}: request paths are normalized before matching"
            ),
        );
    }
    match path.path_type.as_str() {
        "Exact" => Some(PathMatch::Exact(value.as_str().into())),
        "Prefix" | "ImplementationSpecific" => Some(PathMatch::prefix(&value)),
        other => {
            diags.error(
                object,
                format!("{field}.pathType"),
                Reason::InvalidField,
                format!(
                    "{other:?} is not a path type: use Exact, Prefix or ImplementationSpecific"
                ),
            );
            None
        }
    }
}

/// Sends every request that reaches it to the cluster-wide default
/// backend, below every route of every host.
pub(crate) fn add_global_default(
    default: &ServicePortRef,
    backends: &Backends<'_>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let object = ObjectRef::new("Service", &default.namespace, &default.name);
    let usage = Use {
        protocol: None,
        settings: ClusterSettings::default(),
        object: &object,
        field: "--default-backend-service",
        name_field: "name",
        port_field: "port",
        unresolved_status: UNRESOLVED_STATUS,
    };
    let resolved = backends.resolve(
        &default.namespace,
        &default.name,
        PortRef::Number(default.port),
    );
    let target = crate::backends::target(resolved, usage, Some(builder), diags);
    let route = builder.add_route(Route {
        id: "default-backend".into(),
        origin: Origin {
            kind: "Service",
            namespace: default.namespace.as_str().into(),
            name: default.name.as_str().into(),
        },
        action: forward_to(target),
        request_timeout: None,
        backend_timeout: None,
        filters: Filters::default(),
        traffic: Traffic::default(),
        rate_limits: Vec::new(),
        policies: snapshot::RoutePolicies::default(),
    });
    let hosts = builder.hosts();
    let provenance = Provenance {
        object,
        created: None,
        field: "--default-backend-service".into(),
    };
    add_catch_all(builder, hosts, route, Tier::GlobalDefault, &provenance);
}

/// Adds a `/` prefix entry for `route` under every host in `hosts` and
/// the catch-all host.
fn add_catch_all(
    builder: &mut Builder,
    mut hosts: Vec<HostPattern>,
    route: snapshot::RouteIndex,
    tier: Tier,
    provenance: &Provenance,
) {
    if !hosts.contains(&HostPattern::Any) {
        hosts.push(HostPattern::Any);
    }
    for host in hosts {
        builder.add_entry(host, catch_all(route), tier, provenance.clone());
    }
}

fn catch_all(route: snapshot::RouteIndex) -> RouteEntry {
    RouteEntry {
        path: PathMatch::prefix("/"),
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        body: Vec::new(),
        route,
    }
}

fn forward_to(target: BackendTarget) -> Action {
    Action::Forward(Forward::new(vec![WeightedBackend { weight: 1, target }]))
}

#[allow(clippy::too_many_arguments)]
fn backend_target(
    backend: &IngressBackend,
    namespace: &str,
    protocol: Option<api::BackendProtocol>,
    object: &ObjectRef,
    field: &str,
    backends: &Backends<'_>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) -> BackendTarget {
    let unresolved = |reason: &str| BackendTarget::Unresolved {
        status: UNRESOLVED_STATUS,
        reason: reason.into(),
    };
    if backend.resource.is_some() {
        let msg = "resource backends are not supported: use a Service backend";
        diags.error(
            object,
            format!("{field}.resource"),
            Reason::UnsupportedBackend,
            msg,
        );
        return unresolved(msg);
    }
    let Some(service) = &backend.service else {
        let msg = "a backend needs a service";
        diags.error(
            object,
            format!("{field}.service"),
            Reason::InvalidField,
            msg,
        );
        return unresolved(msg);
    };
    let port = service.port.as_ref();
    let (port_ref, port_field) = match (
        port.and_then(|p| p.number),
        port.and_then(|p| p.name.as_deref()),
    ) {
        (Some(n), _) => (PortRef::Number(n), "number"),
        (None, Some(name)) => (PortRef::Name(name), "name"),
        (None, None) => {
            let msg = "a service backend needs port.number or port.name";
            diags.error(
                object,
                format!("{field}.service.port"),
                Reason::InvalidField,
                msg,
            );
            return unresolved(msg);
        }
    };
    let usage = Use {
        protocol,
        settings: ClusterSettings::default(),
        object,
        field,
        name_field: "service.name",
        port_field: if port_field == "number" {
            "service.port.number"
        } else {
            "service.port.name"
        },
        unresolved_status: UNRESOLVED_STATUS,
    };
    crate::backends::target(
        backends.resolve(namespace, &service.name, port_ref),
        usage,
        Some(builder),
        diags,
    )
}

/// Proposes the TLS settings of `spec.tls`: each entry's hosts (all the
/// rules' hosts when it lists none) get its Secret's certificate, and a
/// redirect from HTTP unless `gatehouse.dev/ssl-redirect` is `false`.
#[allow(
    clippy::too_many_arguments,
    reason = "one call site, every argument distinct"
)]
fn propose_tls(
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

/// Reads the ingress-nginx annotations of an Ingress and reports every
/// finding that deserves one; `None` when one keeps the Ingress from
/// being served.
fn compat_settings(
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
fn report_ignored_nginx(ingress: &Ingress, object: &ObjectRef, diags: &mut Diagnostics) {
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
struct Extras {
    policies: snapshot::RoutePolicies,
    traffic: Traffic,
    timeouts: (Option<std::time::Duration>, Option<std::time::Duration>),
    rate_limits: Vec<std::sync::Arc<snapshot::RateLimit>>,
    redirect: Option<snapshot::Redirect>,
}

impl Extras {
    fn compile(
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

/// Everything needed to serve one Ingress path.
struct PathRoutes<'a> {
    id: String,
    origin: &'a Origin,
    host: &'a HostPattern,
    path_match: PathMatch,
    target: BackendTarget,
    filters: Filters,
    extras: &'a Extras,
    canary: Option<&'a CanaryPath>,
    namespace: &'a str,
    protocol: Option<api::BackendProtocol>,
    backends: &'a Backends<'a>,
    provenance: Provenance,
}

/// Adds the route of one Ingress path and its entry; with a canary, also
/// the canary-only and main-only routes its header and cookie pick.
fn add_path_routes(p: &PathRoutes<'_>, builder: &mut Builder, diags: &mut Diagnostics) {
    let route = |id: String, action: Action| Route {
        id: id.into(),
        origin: p.origin.clone(),
        action,
        request_timeout: p.extras.timeouts.0,
        backend_timeout: p.extras.timeouts.1,
        filters: p.filters.clone(),
        traffic: p.extras.traffic.clone(),
        rate_limits: p.extras.rate_limits.clone(),
        policies: p.extras.policies.clone(),
    };
    let add_entry = |builder: &mut Builder, route, headers| {
        builder.add_entry(
            p.host.clone(),
            RouteEntry {
                path: p.path_match.clone(),
                method: None,
                headers,
                query: Vec::new(),
                body: Vec::new(),
                route,
            },
            Tier::Rule,
            p.provenance.clone(),
        );
    };
    if let Some(redirect) = &p.extras.redirect {
        let index = builder.add_route(route(p.id.clone(), Action::Redirect(redirect.clone())));
        add_entry(builder, index, Vec::new());
        return;
    }
    let Some(c) = p.canary else {
        let index = builder.add_route(route(p.id.clone(), forward_to(p.target.clone())));
        add_entry(builder, index, Vec::new());
        return;
    };
    let canary_target = backend_target(
        &c.backend,
        p.namespace,
        p.protocol,
        &c.object,
        &format!("{}.backend", c.field),
        p.backends,
        builder,
        diags,
    );
    let total = c.canary.weight_total.max(1);
    let weight = c.canary.weight.min(total);
    let split = Forward::new(vec![
        WeightedBackend {
            weight: total - weight,
            target: p.target.clone(),
        },
        WeightedBackend {
            weight,
            target: canary_target.clone(),
        },
    ]);
    let index = builder.add_route(route(p.id.clone(), Action::Forward(split)));
    add_entry(builder, index, Vec::new());
    let only_canary =
        builder.add_route(route(format!("{}/canary", p.id), forward_to(canary_target)));
    let only_main = builder.add_route(route(
        format!("{}/main", p.id),
        forward_to(p.target.clone()),
    ));
    let matcher = |name: &str, value: ValueMatch| HeaderMatcher {
        name: http::HeaderName::try_from(name).unwrap_or(http::header::COOKIE),
        value,
    };
    if let Some(h) = &c.canary.header {
        if let Some(v) = &c.canary.header_value {
            add_entry(
                builder,
                only_canary,
                vec![matcher(h, ValueMatch::Exact(v.as_str().into()))],
            );
        } else if let Some(pattern) = c
            .canary
            .header_pattern
            .as_deref()
            .and_then(|s| Pattern::new(s).ok())
        {
            add_entry(
                builder,
                only_canary,
                vec![matcher(h, ValueMatch::Regex(pattern))],
            );
        } else {
            add_entry(
                builder,
                only_canary,
                vec![matcher(h, ValueMatch::Exact("always".into()))],
            );
            add_entry(
                builder,
                only_main,
                vec![matcher(h, ValueMatch::Exact("never".into()))],
            );
        }
    }
    if let Some(cookie) = &c.canary.cookie {
        for (value, index) in [("always", only_canary), ("never", only_main)] {
            if let Ok(pattern) = Pattern::new(&cookie_pattern(cookie, value)) {
                add_entry(
                    builder,
                    index,
                    vec![matcher("cookie", ValueMatch::Regex(pattern))],
                );
            }
        }
    }
}

/// A whole-value pattern for a `Cookie` header carrying `name=value`.
pub(crate) fn cookie_pattern(name: &str, value: &str) -> String {
    format!(
        r"(?:.*;)?\s*{}={}\s*(?:;.*)?",
        regex_escape(name),
        regex_escape(value)
    )
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `force-ssl-redirect`: every host of the rules that `spec.tls` does
/// not already cover is served on HTTPS (default certificate) and
/// redirected there from HTTP.
fn force_https(
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
