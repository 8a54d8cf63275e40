//! `gatehouse.dev/v1alpha1` ApiRoute semantics.
//!
//! * Each rule becomes one route; each of its matches becomes one entry
//!   under every hostname of the ApiRoute (or the catch-all host when it
//!   lists none), ranked on its own.
//! * A rule with an invalid match, filter or timeout is not served at all
//!   (serving it without the broken part could send requests where the
//!   author did not mean them to go); the other rules are.
//! * A backend that does not resolve keeps its weight and answers its
//!   share with 500, as the Gateway API specifies.

use std::sync::Arc;

use http::HeaderValue;

use api::{
    ApiRoute, BackendRef, HeaderMatch, PathMatchType, QueryParamMatch, RouteMatch, RouteRule,
    StringMatchType,
};
use snapshot::{
    Action, BackendTarget, BodyMatcher, Forward, HeaderMatcher, HostPattern, Origin, PathMatch,
    Pattern, QueryMatcher, Route, RouteEntry, RouteIndex, ValueMatch, WeightedBackend,
};

use crate::backends::{Backends, PortRef, Use};
use crate::builder::{Builder, Provenance, Tier};
use crate::class::Classes;
use crate::diagnostics::{Diagnostics, FieldError, ObjectRef, Reason};
use crate::filters::{self, RuleCtx};
use crate::traffic::ClusterSettings;
use crate::values::{check_header_name, check_hostname, normalize_rule_path, parse_duration};
use crate::{ResourceSet, created_seconds};

/// Status for the share of a backend that does not resolve.
const UNRESOLVED_STATUS: u16 = 500;
/// Largest backend weight.
const MAX_WEIGHT: i32 = 1_000_000;

pub(crate) fn translate_all(
    resources: &ResourceSet,
    classes: &Classes<'_>,
    backends: &Backends<'_>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
    ignored: &mut Vec<ObjectRef>,
) {
    for route in crate::sorted(&resources.api_routes, |r| &r.metadata) {
        if classes.serves_route(route.spec.ingress_class_name.as_deref()) {
            translate_one(route, resources, backends, builder, diags);
        } else {
            ignored.push(crate::identity("ApiRoute", &route.metadata).0);
        }
    }
}

/// The parts of an ApiRoute every rule needs.
struct Ctx<'a> {
    object: ObjectRef,
    origin: Origin,
    namespace: Arc<str>,
    created: Option<i64>,
    backends: &'a Backends<'a>,
    resources: &'a ResourceSet,
}

fn translate_one(
    route: &ApiRoute,
    resources: &ResourceSet,
    backends: &Backends<'_>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let (object, origin) = crate::identity("ApiRoute", &route.metadata);
    let ctx = Ctx {
        namespace: origin.namespace.clone(),
        object,
        origin,
        created: created_seconds(&route.metadata),
        backends,
        resources,
    };

    let mut hosts = Vec::new();
    for (i, host) in route.spec.hostnames.iter().enumerate() {
        match check_hostname(host) {
            Ok(()) => {
                let pattern = HostPattern::parse(host);
                if !hosts.contains(&pattern) {
                    hosts.push(pattern);
                }
            }
            Err(msg) => diags.error(
                &ctx.object,
                format!("spec.hostnames[{i}]"),
                Reason::InvalidField,
                msg,
            ),
        }
    }
    if route.spec.hostnames.is_empty() {
        hosts.push(HostPattern::Any);
    } else if hosts.is_empty() {
        diags.error(
            &ctx.object,
            "spec.hostnames",
            Reason::InvalidField,
            "no valid hostname is left: the route serves nothing",
        );
        return;
    }
    if let Some(tls) = &route.spec.tls {
        if route.spec.hostnames.is_empty() {
            diags.error(
                &ctx.object,
                "spec.tls",
                Reason::InvalidField,
                "TLS settings need spec.hostnames: a certificate is chosen by host name",
            );
        } else {
            propose_tls(&ctx, tls, &hosts, resources, builder, diags);
        }
    }
    if route.spec.rules.is_empty() {
        diags.warning(
            &ctx.object,
            "spec.rules",
            Reason::InvalidField,
            "the route has no rules: it serves nothing",
        );
    }

    let mut names = std::collections::HashSet::new();
    for (i, rule) in route.spec.rules.iter().enumerate() {
        let field = format!("spec.rules[{i}]");
        if let Some(n) = &rule.name
            && !names.insert(n.as_str())
        {
            diags.error(
                &ctx.object,
                format!("{field}.name"),
                Reason::InvalidField,
                format!("rule name {n:?} is used twice: rule names must be unique; this rule is not served"),
            );
            continue;
        }
        translate_rule(&ctx, i, rule, &field, &hosts, builder, diags);
    }
}

fn translate_rule(
    ctx: &Ctx<'_>,
    index: usize,
    rule: &RouteRule,
    field: &str,
    hosts: &[HostPattern],
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let mut errors: Vec<FieldError> = Vec::new();

    // Conditions first: an entry list that cannot be built means the rule
    // cannot be served.
    let default_match = [RouteMatch::default()];
    let matches = if rule.matches.is_empty() {
        &default_match[..]
    } else {
        &rule.matches
    };
    let mut entries = Vec::with_capacity(matches.len());
    for (m, route_match) in matches.iter().enumerate() {
        match entry_for(
            route_match,
            &format!("{field}.matches[{m}]"),
            diags,
            &ctx.object,
        ) {
            Ok(e) => entries.push((m, e)),
            Err(e) => errors.push(e),
        }
    }
    let all_prefix = matches.iter().all(|m| {
        m.path
            .as_ref()
            .is_none_or(|p| p.type_ == PathMatchType::PathPrefix)
    });

    let mut timeouts = (None, None);
    if let Some(t) = &rule.timeouts {
        for (name, value, slot) in [
            ("request", &t.request, &mut timeouts.0),
            ("backendRequest", &t.backend_request, &mut timeouts.1),
        ] {
            if let Some(v) = value {
                match parse_duration(v) {
                    // Zero means "no limit", as in the Gateway API; it is
                    // kept so the data plane can tell it from "not set".
                    Ok(d) => *slot = Some(d),
                    Err(msg) => errors.push((format!("{field}.timeouts.{name}"), msg)),
                }
            }
        }
        if let (Some(req), Some(backend)) = timeouts
            && !req.is_zero()
            && !backend.is_zero()
            && backend > req
        {
            errors.push((
                format!("{field}.timeouts.backendRequest"),
                format!("backendRequest ({backend:?}) must not exceed request ({req:?})"),
            ));
        }
    }

    let policies =
        crate::policy::route_policies(rule, field, &ctx.namespace, ctx.resources, &mut errors);
    let traffic = crate::traffic::route_traffic(rule, field, &mut errors);
    let mut cluster_settings = crate::traffic::cluster_settings(rule, field, &mut errors);
    if let Some(tls) = &rule.backend_tls {
        cluster_settings.backend_tls = Some(crate::tls::backend_tls(
            tls,
            &ctx.object,
            &ctx.namespace,
            &format!("{field}.backendTls"),
            ctx.resources,
            builder.tls.now(),
            diags,
        ));
    }

    // Filters and backends are checked even when the rule is already
    // rejected, so one run reports every problem of the rule; clusters are
    // only registered for a rule that will be served.
    let filter_ctx = RuleCtx {
        object: &ctx.object,
        namespace: &ctx.namespace,
        backends: ctx.backends,
        all_prefix,
    };
    let servable = errors.is_empty();
    let compiled = match filters::compile(
        &filter_ctx,
        &rule.filters,
        &format!("{field}.filters"),
        if servable { Some(&mut *builder) } else { None },
        diags,
    ) {
        Ok(c) => Some(c),
        Err(mut e) => {
            errors.append(&mut e);
            None
        }
    };
    let answers_itself = compiled.as_ref().is_some_and(|c| c.answer.is_some());
    if answers_itself && !rule.backends.is_empty() {
        errors.push((
            format!("{field}.backends"),
            "a rule with a RequestRedirect or DirectResponse filter answers by itself and must not list backends".into(),
        ));
    }
    let servable = errors.is_empty();
    let mut weighted = Vec::with_capacity(rule.backends.len());
    for (b, backend) in rule.backends.iter().enumerate() {
        let register = if servable { Some(&mut *builder) } else { None };
        if let Some(w) = backend_for(
            ctx,
            backend,
            &format!("{field}.backends[{b}]"),
            &cluster_settings,
            register,
            diags,
        ) {
            weighted.push(w);
        }
    }
    if !servable {
        for (f, msg) in errors {
            diags.error(
                &ctx.object,
                f,
                Reason::InvalidField,
                format!("{msg}; this rule is not served"),
            );
        }
        return;
    }
    let compiled = compiled.unwrap_or_default();
    if rule.backends.is_empty() && !answers_itself {
        diags.warning(
            &ctx.object,
            format!("{field}.backends"),
            Reason::InvalidField,
            "the rule has no backends: its requests are answered with 500",
        );
    }

    let rule_id = rule.name.clone().unwrap_or_else(|| index.to_string());
    let action = compiled
        .answer
        .unwrap_or_else(|| Action::Forward(Forward::new(weighted)));
    let route_index: RouteIndex = builder.add_route(Route {
        id: format!(
            "apiroute/{}/{}/rule/{rule_id}",
            ctx.namespace, ctx.origin.name
        )
        .into(),
        origin: ctx.origin.clone(),
        action,
        request_timeout: timeouts.0,
        backend_timeout: timeouts.1,
        filters: compiled.filters,
        traffic,
        rate_limits: Vec::new(),
        policies,
    });
    for host in hosts {
        for (m, entry) in &entries {
            let mut entry = entry.clone();
            entry.route = route_index;
            builder.add_entry(
                host.clone(),
                entry,
                Tier::Rule,
                Provenance {
                    object: ctx.object.clone(),
                    created: ctx.created,
                    field: format!("{field}.matches[{m}]"),
                },
            );
        }
    }
}

fn entry_for(
    m: &RouteMatch,
    field: &str,
    diags: &mut Diagnostics,
    object: &ObjectRef,
) -> Result<RouteEntry, FieldError> {
    let path = match &m.path {
        None => PathMatch::prefix("/"),
        Some(p) => {
            let f = format!("{field}.path.value");
            match p.type_ {
                PathMatchType::Exact | PathMatchType::PathPrefix => {
                    let normalized =
                        normalize_rule_path(&p.value).map_err(|msg| (f.clone(), msg))?;
                    if normalized != p.value {
                        diags.warning(
                            object,
                            f,
                            Reason::InvalidField,
                            format!(
                                "{:?} is matched as {normalized:?}: request paths are normalized before matching",
                                p.value
                            ),
                        );
                    }
                    if p.type_ == PathMatchType::Exact {
                        PathMatch::Exact(normalized.into())
                    } else {
                        PathMatch::prefix(&normalized)
                    }
                }
                PathMatchType::RegularExpression => {
                    PathMatch::Regex(Pattern::new(&p.value).map_err(|e| (f, e.to_string()))?)
                }
            }
        }
    };
    let mut headers: Vec<HeaderMatcher> = Vec::new();
    for (h, hm) in m.headers.iter().enumerate() {
        let f = format!("{field}.headers[{h}]");
        let matcher = header_matcher(hm, &f)?;
        if headers.iter().any(|x| x.name == matcher.name) {
            diags.warning(
                object,
                format!("{f}.name"),
                Reason::InvalidField,
                format!(
                    "header {:?} is matched twice; only the first condition applies",
                    hm.name
                ),
            );
            continue;
        }
        headers.push(matcher);
    }
    let mut query: Vec<QueryMatcher> = Vec::new();
    for (q, qm) in m.query_params.iter().enumerate() {
        let f = format!("{field}.queryParams[{q}]");
        let matcher = query_matcher(qm, &f)?;
        if query.iter().any(|x| x.name == matcher.name) {
            diags.warning(
                object,
                format!("{f}.name"),
                Reason::InvalidField,
                format!(
                    "query parameter {:?} is matched twice; only the first condition applies",
                    qm.name
                ),
            );
            continue;
        }
        query.push(matcher);
    }
    let mut body = Vec::with_capacity(m.body.len());
    for (b, bm) in m.body.iter().enumerate() {
        let f = format!("{field}.body[{b}]");
        if !is_json_pointer(&bm.json_pointer) {
            return Err((
                format!("{f}.jsonPointer"),
                format!(
                    "{:?} is not a JSON Pointer: write /key/... with ~0 for '~' and ~1 for '/'",
                    bm.json_pointer
                ),
            ));
        }
        body.push(BodyMatcher {
            json_pointer: bm.json_pointer.as_str().into(),
            value: value_match(bm.type_, bm.value.as_deref(), &f)?,
        });
    }
    Ok(RouteEntry {
        path,
        method: m.method.map(|m| {
            http::Method::from_bytes(m.as_str().as_bytes())
                .expect("every HttpMethod spelling is a valid method token")
        }),
        headers,
        query,
        body,
        route: RouteIndex(usize::MAX),
    })
}

/// RFC 6901: empty, or `/`-separated tokens where `~` is only followed by
/// `0` or `1`.
fn is_json_pointer(p: &str) -> bool {
    p.starts_with('/')
        && p.split('/').skip(1).all(|token| {
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
                    return false;
                }
            }
            true
        })
}

fn value_match(
    type_: StringMatchType,
    value: Option<&str>,
    field: &str,
) -> Result<ValueMatch, FieldError> {
    let need = || {
        (
            format!("{field}.value"),
            "value is required unless type is Present".to_owned(),
        )
    };
    Ok(match type_ {
        StringMatchType::Present => ValueMatch::Present,
        StringMatchType::Exact => ValueMatch::Exact(value.ok_or_else(need)?.into()),
        StringMatchType::RegularExpression => ValueMatch::Regex(
            Pattern::new(value.ok_or_else(need)?)
                .map_err(|e| (format!("{field}.value"), e.to_string()))?,
        ),
    })
}

fn header_matcher(h: &HeaderMatch, field: &str) -> Result<HeaderMatcher, FieldError> {
    let name = check_header_name(&h.name).map_err(|msg| (format!("{field}.name"), msg))?;
    Ok(HeaderMatcher {
        name,
        value: value_match(h.type_, h.value.as_deref(), field)?,
    })
}

fn query_matcher(q: &QueryParamMatch, field: &str) -> Result<QueryMatcher, FieldError> {
    if q.name.is_empty() {
        return Err((
            format!("{field}.name"),
            "a query parameter name must not be empty".into(),
        ));
    }
    Ok(QueryMatcher {
        name: q.name.as_str().into(),
        value: value_match(q.type_, q.value.as_deref(), field)?,
    })
}

/// Checks and resolves one backend. With a `builder`, its cluster is
/// registered for the snapshot; without one, only diagnostics are made.
fn backend_for(
    ctx: &Ctx<'_>,
    backend: &BackendRef,
    field: &str,
    settings: &ClusterSettings,
    builder: Option<&mut Builder>,
    diags: &mut Diagnostics,
) -> Option<WeightedBackend> {
    let weight = backend.weight.unwrap_or(1);
    if !(0..=MAX_WEIGHT).contains(&weight) {
        diags.error(
            &ctx.object,
            format!("{field}.weight"),
            Reason::InvalidField,
            format!("weight {weight} is out of range: use 0 to {MAX_WEIGHT}; this backend gets no traffic"),
        );
        return None;
    }
    let weight = u32::try_from(weight).ok()?;
    if !(1..=65535).contains(&backend.port) {
        let msg = format!("port {} is out of range: use 1 to 65535", backend.port);
        diags.error(
            &ctx.object,
            format!("{field}.port"),
            Reason::InvalidField,
            msg.clone(),
        );
        return Some(WeightedBackend {
            weight,
            target: BackendTarget::Unresolved {
                status: UNRESOLVED_STATUS,
                reason: msg.into(),
            },
        });
    }
    let resolved =
        ctx.backends
            .resolve(&ctx.namespace, &backend.name, PortRef::Number(backend.port));
    let usage = Use {
        protocol: backend.protocol,
        settings: settings.clone(),
        object: &ctx.object,
        field,
        name_field: "name",
        port_field: "port",
        unresolved_status: UNRESOLVED_STATUS,
    };
    let target = crate::backends::target(resolved, usage, builder, diags);
    Some(WeightedBackend { weight, target })
}

/// Proposes `spec.tls` for the route's hostnames.
fn propose_tls(
    ctx: &Ctx<'_>,
    tls: &api::RouteTls,
    hosts: &[HostPattern],
    resources: &ResourceSet,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let hsts = tls.hsts.as_ref().map(|h| {
        let mut v = format!("max-age={}", h.max_age_seconds);
        if h.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if h.preload {
            v.push_str("; preload");
        }
        HeaderValue::try_from(v).expect("digits and fixed directives are a valid header value")
    });
    let client = tls.client_validation.as_ref().and_then(|c| {
        let forward_header = match c.forward_subject_header.as_deref() {
            None => None,
            Some(h) => match http::HeaderName::try_from(h) {
                Ok(name) => Some(name),
                Err(_) => {
                    diags.error(
                        &ctx.object,
                        "spec.tls.clientValidation.forwardSubjectHeader",
                        Reason::InvalidField,
                        format!("{h:?} is not a valid header name"),
                    );
                    return None;
                }
            },
        };
        Some(crate::tls::ClientRequest {
            field: "spec.tls.clientValidation.caCertificateRef".to_owned(),
            secret: &c.ca_certificate_ref.name,
            required: c.mode.unwrap_or_default() == api::ClientValidationMode::Require,
            forward_header,
        })
    });
    if tls.client_validation.is_some() && client.is_none() {
        return;
    }
    let mut secret = tls.certificate_ref.as_ref().map(|r| r.name.clone());
    let acme = match &tls.acme {
        None => None,
        Some(acme) => {
            if let Some(wild) = hosts.iter().find(|h| !matches!(h, HostPattern::Exact(_))) {
                diags.error(
                    &ctx.object,
                    "spec.tls.acme",
                    Reason::InvalidField,
                    format!("{wild}: HTTP-01 can only prove exact hostnames; use a certificateRef for wildcards"),
                );
                return;
            }
            let name = secret
                .get_or_insert_with(|| format!("{}-tls", ctx.origin.name))
                .clone();
            Some(crate::tls::AcmeRequest {
                secret: name,
                email: acme.email.clone(),
            })
        }
    };
    builder.tls.propose(
        hosts,
        crate::tls::Request {
            object: &ctx.object,
            created: ctx.created,
            namespace: &ctx.namespace,
            field: "spec.tls.certificateRef".to_owned(),
            secret: secret.as_deref(),
            acme,
            redirect: tls.https_redirect.unwrap_or(true),
            hsts,
            client,
        },
        resources,
        diags,
    );
}
