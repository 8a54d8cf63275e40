//! An Ingress path as routes and entries, its backends, and the
//! catch-all and default backends.

use k8s_openapi::api::networking::v1::IngressBackend;
use snapshot::{
    Action, BackendTarget, Filters, Forward, HeaderMatcher, HostPattern, Origin, PathMatch,
    Pattern, Route, RouteEntry, Traffic, ValueMatch, WeightedBackend,
};

use crate::ServicePortRef;
use crate::backends::{Backends, PortRef, Use};
use crate::builder::{Builder, Provenance, Tier};
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::nginx;
use crate::traffic::ClusterSettings;
use crate::values::normalize_rule_path;

use super::canary::{CanaryPath, cookie_pattern};
use super::compat::Extras;

/// Status for the share of a backend that does not resolve.
const UNRESOLVED_STATUS: u16 = 503;

/// The path condition of one Ingress path: a case-insensitive regular
/// expression anchored at the start under `use-regex` (nginx's
/// `location ~* "^<path>"`), else the normalized path by its type.
/// `None` when the path cannot be served (reported).
pub(super) fn path_match(
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
    let origin = Origin {
        kind: "Service",
        namespace: default.namespace.as_str().into(),
        name: default.name.as_str().into(),
    };
    let route = builder.add_route(forwarding_route("default-backend".into(), origin, target));
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
pub(super) fn add_catch_all(
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

pub(super) fn catch_all(route: snapshot::RouteIndex) -> RouteEntry {
    RouteEntry {
        path: PathMatch::prefix("/"),
        method: None,
        headers: Vec::new(),
        query: Vec::new(),
        body: Vec::new(),
        route,
    }
}

pub(super) fn forward_to(target: BackendTarget) -> Action {
    Action::Forward(Forward::new(vec![WeightedBackend { weight: 1, target }]))
}

/// A route that forwards to `target` and does nothing else (no filters,
/// traffic settings, limits or policies): a default backend.
pub(super) fn forwarding_route(
    id: std::sync::Arc<str>,
    origin: Origin,
    target: BackendTarget,
) -> Route {
    Route {
        id,
        origin,
        action: forward_to(target),
        request_timeout: None,
        backend_timeout: None,
        filters: Filters::default(),
        traffic: Traffic::default(),
        rate_limits: Vec::new(),
        policies: snapshot::RoutePolicies::default(),
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn backend_target(
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

/// Everything needed to serve one Ingress path.
pub(super) struct PathRoutes<'a> {
    pub(super) id: String,
    pub(super) origin: &'a Origin,
    pub(super) host: &'a HostPattern,
    pub(super) path_match: PathMatch,
    pub(super) target: BackendTarget,
    pub(super) filters: Filters,
    pub(super) extras: &'a Extras,
    pub(super) canary: Option<&'a CanaryPath>,
    pub(super) namespace: &'a str,
    pub(super) protocol: Option<api::BackendProtocol>,
    pub(super) backends: &'a Backends<'a>,
    pub(super) provenance: Provenance,
}

/// Adds the route of one Ingress path and its entry; with a canary, also
/// the canary-only and main-only routes its header and cookie pick.
pub(super) fn add_path_routes(p: &PathRoutes<'_>, builder: &mut Builder, diags: &mut Diagnostics) {
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
