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
    Action, BackendTarget, Filters, Forward, HostPattern, Origin, PathMatch, PathRewrite, Rewrite,
    Route, RouteEntry, Traffic, WeightedBackend,
};

use crate::annotations::{self, BackendProtocol};
use crate::backends::{Backends, PortRef, Use};
use crate::builder::{Builder, Provenance, Tier};
use crate::class::{Classes, LEGACY_CLASS_ANNOTATION};
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
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
) {
    for ingress in crate::sorted(&resources.ingresses, |i| &i.metadata) {
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
        if classes.serves_ingress(class_name, legacy) {
            let policy_exists = |name: &str| {
                resources.rate_limit_policies.iter().any(|p| {
                    p.metadata.name.as_deref() == Some(name)
                        && p.metadata.namespace == ingress.metadata.namespace
                })
            };
            translate_one(ingress, resources, backends, &policy_exists, builder, diags);
        } else {
            ignored.push(crate::identity("Ingress", &ingress.metadata).0);
        }
    }
}

fn translate_one(
    ingress: &Ingress,
    resources: &ResourceSet,
    backends: &Backends<'_>,
    policy_exists: &dyn Fn(&str) -> bool,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let (object, origin) = crate::identity("Ingress", &ingress.metadata);
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
    let filters = |path: &PathMatch| Filters {
        rewrite: annotations.rewrite_target.as_ref().map(|target| Rewrite {
            hostname: None,
            path: Some(match path {
                PathMatch::Exact(_) => PathRewrite::Full(target.as_str().into()),
                _ => PathRewrite::Prefix(target.as_str().into()),
            }),
        }),
        ..Filters::default()
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
            let value = match normalize_rule_path(written) {
                Ok(v) => v,
                Err(msg) => {
                    diags.error(&object, format!("{field}.path"), Reason::InvalidField, msg);
                    continue;
                }
            };
            if value != written {
                diags.warning(
                    &object,
                    format!("{field}.path"),
                    Reason::InvalidField,
                    format!("{written:?} is matched as {value:?}: request paths are normalized before matching"),
                );
            }
            let path_match = match path.path_type.as_str() {
                "Exact" => PathMatch::Exact(value.as_str().into()),
                "Prefix" | "ImplementationSpecific" => PathMatch::prefix(&value),
                other => {
                    diags.error(
                        &object,
                        format!("{field}.pathType"),
                        Reason::InvalidField,
                        format!(
                            "{other:?} is not a path type: use Exact, Prefix or ImplementationSpecific"
                        ),
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
            let route = builder.add_route(Route {
                id: format!("ingress/{namespace}/{name}/rule/{i}/path/{j}").into(),
                origin: origin.clone(),
                action: forward_to(target),
                request_timeout: None,
                backend_timeout: None,
                filters: filters(&path_match),
                traffic: Traffic::default(),
                rate_limits: Vec::new(),
                policies: snapshot::RoutePolicies::default(),
            });
            builder.add_entry(
                host.clone(),
                RouteEntry {
                    path: path_match,
                    method: None,
                    headers: Vec::new(),
                    query: Vec::new(),
                    body: Vec::new(),
                    route,
                },
                Tier::Rule,
                provenance(field),
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
