//! RateLimitPolicy checks: its targets exist and its limits are well
//! formed. (Enforcement compiles the limits into the routes they target.)

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use api::{
    FailureMode, PolicyTargetRef, RateLimitKeyType, RateLimitPolicy, RateLimitScope, TargetKind,
};
use snapshot::{RateLimit, RateLimitKey, Route};

use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::values::{check_header_name, parse_duration};
use crate::{ResourceSet, identity, sorted};

/// A checked policy: its limits, ready to attach to the routes it targets.
pub(crate) struct Compiled {
    namespace: String,
    name: String,
    limits: Vec<Arc<RateLimit>>,
    targets: Vec<PolicyTargetRef>,
}

/// Checks every policy, reporting problems, and compiles the sound ones.
pub(crate) fn check_all(resources: &ResourceSet, diags: &mut Diagnostics) -> Vec<Compiled> {
    let mut compiled = Vec::new();
    // ApiRoute rule names by namespace/name, and Ingress names.
    let mut routes: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
    for r in &resources.api_routes {
        let (Some(ns), Some(name)) = (r.metadata.namespace.as_deref(), r.metadata.name.as_deref())
        else {
            continue;
        };
        routes.insert(
            (ns, name),
            r.spec
                .rules
                .iter()
                .filter_map(|rule| rule.name.as_deref())
                .collect(),
        );
    }
    let ingresses: HashSet<(&str, &str)> = resources
        .ingresses
        .iter()
        .filter_map(|i| {
            Some((
                i.metadata.namespace.as_deref()?,
                i.metadata.name.as_deref()?,
            ))
        })
        .collect();
    for policy in sorted(&resources.rate_limit_policies, |p| &p.metadata) {
        let before = diags.error_count();
        check_one(policy, &routes, &ingresses, diags);
        if diags.error_count() == before
            && let Some(c) = compile(policy)
        {
            compiled.push(c);
        }
    }
    compiled
}

fn compile(policy: &RateLimitPolicy) -> Option<Compiled> {
    let namespace = policy.metadata.namespace.clone().unwrap_or_default();
    let name = policy.metadata.name.clone()?;
    let spec = &policy.spec;
    let limits = spec
        .limits
        .iter()
        .map(|l| {
            let key = match (l.key.type_, &l.key.name) {
                (RateLimitKeyType::ClientIp, _) => RateLimitKey::ClientIp,
                (RateLimitKeyType::Route, _) => RateLimitKey::Route,
                (RateLimitKeyType::ApiKey, _) => RateLimitKey::ApiKey,
                (RateLimitKeyType::Header, Some(h)) => {
                    RateLimitKey::Header(http::HeaderName::try_from(h.as_str()).ok()?)
                }
                (RateLimitKeyType::JwtClaim, Some(c)) => RateLimitKey::JwtClaim(c.as_str().into()),
                _ => return None,
            };
            Some(Arc::new(RateLimit {
                id: format!("{namespace}/{name}/{}", l.name).into(),
                key,
                requests: u32::try_from(l.rate.requests).ok()?,
                per: parse_duration(&l.rate.per).ok()?,
                burst: u32::try_from(l.burst.unwrap_or(0)).ok()?,
                scope: match l.scope {
                    Some(RateLimitScope::Global) => snapshot::RateLimitScope::Global,
                    _ => snapshot::RateLimitScope::Local,
                },
                fail_open: spec.failure_mode != Some(FailureMode::Closed),
                headers_on_success: spec.response_headers.unwrap_or(false),
            }))
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Compiled {
        namespace,
        name,
        limits,
        targets: spec.target_refs.clone(),
    })
}

/// Attaches each compiled policy's limits to the routes it targets: an
/// ApiRoute (every rule, or the named one), an Ingress, or an Ingress that
/// names the policy in `gatehouse.dev/rate-limit-policy`.
pub(crate) fn attach(compiled: &[Compiled], resources: &ResourceSet, routes: &mut [Route]) {
    let mut by_annotation: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for ingress in &resources.ingresses {
        let (Some(ns), Some(name)) = (
            ingress.metadata.namespace.as_deref(),
            ingress.metadata.name.as_deref(),
        ) else {
            continue;
        };
        if let Some(value) = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::annotations::RATE_LIMIT_POLICY))
        {
            by_annotation.insert(
                (ns, name),
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .collect(),
            );
        }
    }
    for route in routes.iter_mut() {
        let o = &route.origin;
        for c in compiled {
            if *o.namespace != *c.namespace {
                continue;
            }
            let targeted = c.targets.iter().any(|t| match t.kind {
                TargetKind::ApiRoute => {
                    o.kind == "ApiRoute"
                        && *o.name == *t.name
                        && t.rule
                            .as_ref()
                            .is_none_or(|rule| route.id.ends_with(&format!("/rule/{rule}")))
                }
                TargetKind::Ingress => o.kind == "Ingress" && *o.name == *t.name,
            }) || (o.kind == "Ingress"
                && by_annotation
                    .get(&(&*o.namespace, &*o.name))
                    .is_some_and(|names| names.contains(&c.name.as_str())));
            if targeted {
                route.rate_limits.extend(c.limits.iter().cloned());
            }
        }
    }
}

fn check_one(
    policy: &RateLimitPolicy,
    routes: &HashMap<(&str, &str), HashSet<&str>>,
    ingresses: &HashSet<(&str, &str)>,
    diags: &mut Diagnostics,
) {
    let (object, _) = identity("RateLimitPolicy", &policy.metadata);
    let ns = policy.metadata.namespace.as_deref().unwrap_or_default();
    for (i, t) in policy.spec.target_refs.iter().enumerate() {
        let field = format!("spec.targetRefs[{i}]");
        match t.kind {
            TargetKind::ApiRoute => match routes.get(&(ns, t.name.as_str())) {
                None => not_found(diags, &object, &field, &format!("ApiRoute {ns}/{}", t.name)),
                Some(rules) => {
                    if let Some(rule) = &t.rule
                        && !rules.contains(rule.as_str())
                    {
                        not_found(
                            diags,
                            &object,
                            &format!("{field}.rule"),
                            &format!("rule {rule:?} of ApiRoute {ns}/{}", t.name),
                        );
                    }
                }
            },
            TargetKind::Ingress => {
                if t.rule.is_some() {
                    diags.error(
                        &object,
                        format!("{field}.rule"),
                        Reason::InvalidField,
                        "rule can only be set when kind is ApiRoute",
                    );
                }
                if !ingresses.contains(&(ns, t.name.as_str())) {
                    not_found(diags, &object, &field, &format!("Ingress {ns}/{}", t.name));
                }
            }
        }
    }
    if policy.spec.limits.is_empty() {
        diags.error(
            &object,
            "spec.limits",
            Reason::InvalidField,
            "a policy needs at least one limit",
        );
    }
    let mut names = HashSet::new();
    for (i, l) in policy.spec.limits.iter().enumerate() {
        let field = format!("spec.limits[{i}]");
        if !names.insert(l.name.as_str()) {
            diags.error(
                &object,
                format!("{field}.name"),
                Reason::InvalidField,
                format!("limit name {:?} is used twice", l.name),
            );
        }
        if l.rate.requests < 1 {
            diags.error(
                &object,
                format!("{field}.rate.requests"),
                Reason::InvalidField,
                "requests must be at least 1",
            );
        }
        match parse_duration(&l.rate.per) {
            Ok(d) if d.is_zero() => diags.error(
                &object,
                format!("{field}.rate.per"),
                Reason::InvalidField,
                "the period must be longer than zero",
            ),
            Ok(_) => {}
            Err(msg) => diags.error(
                &object,
                format!("{field}.rate.per"),
                Reason::InvalidField,
                msg,
            ),
        }
        if l.burst.is_some_and(|b| b < 0) {
            diags.error(
                &object,
                format!("{field}.burst"),
                Reason::InvalidField,
                "burst must not be negative",
            );
        }
        match (l.key.type_, &l.key.name) {
            (RateLimitKeyType::Header, Some(name)) => {
                if let Err(msg) = check_header_name(name) {
                    diags.error(
                        &object,
                        format!("{field}.key.name"),
                        Reason::InvalidField,
                        msg,
                    );
                }
            }
            (RateLimitKeyType::Header | RateLimitKeyType::JwtClaim, None) => {
                diags.error(
                    &object,
                    format!("{field}.key.name"),
                    Reason::InvalidField,
                    "name is required for Header and JwtClaim keys",
                );
            }
            (
                RateLimitKeyType::ClientIp | RateLimitKeyType::Route | RateLimitKeyType::ApiKey,
                Some(_),
            ) => {
                diags.error(
                    &object,
                    format!("{field}.key.name"),
                    Reason::InvalidField,
                    "name is only used with Header and JwtClaim keys",
                );
            }
            _ => {}
        }
    }
}

fn not_found(diags: &mut Diagnostics, object: &ObjectRef, field: &str, what: &str) {
    diags.error(
        object,
        field.to_owned(),
        Reason::TargetNotFound,
        format!("{what} does not exist in the policy's namespace"),
    );
}
