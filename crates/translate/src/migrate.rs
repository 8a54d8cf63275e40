//! `gatehouse migrate`: what each ingress-nginx Ingress becomes in
//! Gatehouse, and the equivalent ApiRoute and RateLimitPolicy manifests.
//!
//! The conversion reads the annotations through the same parser the
//! compatibility layer serves from ([`crate::nginx`]), so the report, the
//! emitted manifests and `--nginx-compat` can never disagree about what an
//! annotation means.

use std::collections::BTreeMap;
use std::sync::Arc;

use api::{
    ApiRoute, ApiRouteSpec, BackendRef, FailureMode, HeaderMatch, PathMatch, PathMatchType,
    PolicyTargetRef, Rate, RateLimit, RateLimitKey, RateLimitKeyType, RateLimitPolicy,
    RateLimitPolicySpec, RateLimitScope, RouteMatch, RouteRule, RouteTls, SecretRef,
    StringMatchType, TargetKind,
};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend, IngressSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::ingress::Canaries;
use crate::nginx::{self, Finding, Verdict};

/// The outcome for one Ingress.
#[derive(Clone, Debug)]
pub struct Migration {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// One finding per ingress-nginx annotation, plus findings about the
    /// Ingress itself (canaries, named ports, default backends).
    pub findings: Vec<Finding>,
    /// The ApiRoutes that serve what the Ingress served (one per host);
    /// empty when a finding blocks the migration or the Ingress is a
    /// canary (its paths are in the main Ingress's ApiRoutes).
    pub api_routes: Vec<ApiRoute>,
    /// The RateLimitPolicy for `limit-rps` / `limit-rpm`.
    pub rate_limit_policy: Option<RateLimitPolicy>,
}

impl Migration {
    /// Whether the Ingress cannot be served as it is.
    pub fn blocked(&self) -> bool {
        self.findings.iter().any(|f| f.verdict.blocks())
    }
}

/// Converts every Ingress in `ingresses`. `services` resolve ports named
/// by name; `class` is the IngressClass name the ApiRoutes ask for.
pub fn migrate(
    ingresses: &[Arc<Ingress>],
    services: &[Arc<Service>],
    class: &str,
) -> Vec<Migration> {
    let mut list: Vec<&Ingress> = ingresses.iter().map(|i| &**i).collect();
    list.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    // Canaries first, by the namespace, host and path they shadow: the
    // same collection the translator serves them from.
    let mut canaries = Canaries::default();
    for ingress in &list {
        canaries.collect(ingress);
    }
    list.into_iter()
        .map(|ingress| one(ingress, services, class, &canaries))
        .collect()
}

fn finding(verdict: Verdict, annotation: &str, message: impl Into<String>) -> Finding {
    Finding {
        annotation: annotation.to_owned(),
        verdict,
        message: message.into(),
    }
}

fn one(
    ingress: &Ingress,
    services: &[Arc<Service>],
    class: &str,
    canaries: &Canaries,
) -> Migration {
    let ns = ingress.metadata.namespace.clone().unwrap_or_default();
    let name = ingress.metadata.name.clone().unwrap_or_default();
    let parsed = nginx::parse(ingress.metadata.annotations.as_ref(), &ns);
    let mut out = Migration {
        ingress: format!("{ns}/{name}"),
        findings: parsed.findings.clone(),
        api_routes: Vec::new(),
        rate_limit_policy: None,
    };
    for (key, _) in ingress.metadata.annotations.iter().flatten() {
        if key.starts_with(crate::annotations::PREFIX) {
            out.findings.push(finding(
                Verdict::Same,
                key,
                "Gatehouse's own annotation; carried into the ApiRoute where it has a field",
            ));
        }
    }
    if parsed.blocked() {
        return out;
    }
    let settings = &parsed.settings;
    if settings.canary.is_some() {
        out.findings.push(finding(Verdict::Same, "spec", "a canary: its paths become header, cookie and weighted rules of the main Ingress's ApiRoute"));
        return out;
    }
    let Some(spec) = &ingress.spec else {
        return out;
    };
    let convert = Convert {
        ns,
        name,
        services,
        settings,
        canaries,
        template: settings.rule_template(),
    };
    let mut by_host = convert.rules_by_host(spec, &mut out.findings);
    convert.default_backend(spec, &mut by_host, &mut out.findings);
    if let Some(root) = &settings.app_root {
        app_root(root, &mut by_host);
    }
    out.api_routes = convert.api_routes(spec, class, by_host);
    out.rate_limit_policy = convert.rate_limit_policy(&out.api_routes);
    out
}

/// An ApiRoute's rules by host, in the order the Ingress names the hosts.
type RulesByHost = Vec<(Option<String>, Vec<RouteRule>)>;

/// What converting one (non-canary, unblocked) Ingress reads throughout.
struct Convert<'a> {
    ns: String,
    name: String,
    services: &'a [Arc<Service>],
    settings: &'a nginx::Settings,
    canaries: &'a Canaries,
    /// The rule every path starts from (the annotations' policies).
    template: RouteRule,
}

impl Convert<'_> {
    /// The backend an Ingress backend names; a port named by a Service
    /// that is not among the manifests is a finding and no backend.
    fn backend_ref(&self, b: &IngressBackend, findings: &mut Vec<Finding>) -> Option<BackendRef> {
        let svc = b.service.as_ref()?;
        let port = svc.port.as_ref()?;
        let number = port.number.or_else(|| {
            let wanted = port.name.as_deref()?;
            self.services
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(self.ns.as_str())
                        && s.metadata.name.as_deref() == Some(svc.name.as_str())
                })
                .and_then(|s| s.spec.as_ref())
                .and_then(|s| s.ports.as_ref())
                .and_then(|ports| ports.iter().find(|p| p.name.as_deref() == Some(wanted)))
                .map(|p| p.port)
        });
        let Some(number) = number else {
            findings.push(finding(Verdict::Unsupported, "spec", format!("Service {}: port {:?} is named and the Service is not among the manifests; an ApiRoute names ports by number", svc.name, port.name.as_deref().unwrap_or_default())));
            return None;
        };
        Some(BackendRef {
            name: svc.name.clone(),
            port: number,
            weight: None,
            protocol: self.settings.backend_protocol,
        })
    }

    /// One ApiRoute's rules per host, in the order the rules name them.
    fn rules_by_host(&self, spec: &IngressSpec, findings: &mut Vec<Finding>) -> RulesByHost {
        let mut by_host: RulesByHost = Vec::new();
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().map(|h| h.to_ascii_lowercase());
            let index = match by_host.iter().position(|(h, _)| *h == host) {
                Some(i) => i,
                None => {
                    by_host.push((host.clone(), Vec::new()));
                    by_host.len() - 1
                }
            };
            for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let rules = self.path_rules(host.as_deref(), path, findings);
                by_host[index].1.extend(rules);
            }
        }
        by_host
    }

    /// The rules of one Ingress path: one rule, or with a canary Ingress
    /// on the same path, its header, cookie and weighted rules too.
    fn path_rules(
        &self,
        host: Option<&str>,
        path: &HTTPIngressPath,
        findings: &mut Vec<Finding>,
    ) -> Vec<RouteRule> {
        let settings = self.settings;
        let written = path.path.clone().unwrap_or_else(|| "/".into());
        let path_match = if settings.use_regex {
            PathMatch {
                type_: PathMatchType::RegularExpression,
                value: nginx::Settings::path_regex(&written),
            }
        } else if path.path_type == "Exact" {
            PathMatch {
                type_: PathMatchType::Exact,
                value: written.clone(),
            }
        } else {
            PathMatch {
                type_: PathMatchType::PathPrefix,
                value: written.clone(),
            }
        };
        let mut base = self.template.clone();
        base.filters = settings.filters();
        if base.filters.is_empty() {
            base.filters.extend(settings.rewrite_for(&written));
        }
        base.matches = vec![RouteMatch {
            path: Some(path_match),
            ..RouteMatch::default()
        }];
        let main = if settings.redirect.is_some() {
            None
        } else {
            self.backend_ref(&path.backend, findings)
        };
        if settings.redirect.is_none() && main.is_none() {
            return Vec::new();
        }
        let canary = self
            .canaries
            .find(&self.ns, host.unwrap_or_default(), &written);
        let canary_ref = canary.and_then(|c| self.backend_ref(&c.backend, findings));
        if let (Some(found), Some(canary_ref), Some(main)) = (canary, canary_ref, main.clone()) {
            findings.push(finding(
                Verdict::Same,
                "spec",
                format!(
                    "path {written:?} takes the canary Ingress {}/{} as extra rules",
                    self.ns, found.object.name
                ),
            ));
            return canary_rules(&found.canary, &base, main, canary_ref);
        }
        base.backends = main.into_iter().collect();
        vec![base]
    }

    /// The default backend as a `PathPrefix /` rule of every host.
    fn default_backend(
        &self,
        spec: &IngressSpec,
        by_host: &mut RulesByHost,
        findings: &mut Vec<Finding>,
    ) {
        let Some(b) = spec
            .default_backend
            .as_ref()
            .and_then(|d| self.backend_ref(d, findings))
        else {
            return;
        };
        findings.push(finding(Verdict::Differs, "spec.defaultBackend", "becomes a PathPrefix / rule: it takes what no more specific rule of the host takes, but competes with other routes' / rules by age"));
        let mut r = self.template.clone();
        r.matches = vec![RouteMatch {
            path: Some(PathMatch {
                type_: PathMatchType::PathPrefix,
                value: "/".into(),
            }),
            ..RouteMatch::default()
        }];
        r.backends = vec![b];
        let hosts: Vec<Option<String>> = if by_host.is_empty() {
            vec![None]
        } else {
            by_host.iter().map(|(h, _)| h.clone()).collect()
        };
        for h in hosts {
            match by_host.iter_mut().find(|(x, _)| *x == h) {
                Some((_, rules)) => rules.push(r.clone()),
                None => by_host.push((h, vec![r.clone()])),
            }
        }
    }

    /// An ApiRoute per host, with the TLS settings of the Ingress's TLS
    /// entries for that host.
    fn api_routes(&self, spec: &IngressSpec, class: &str, by_host: RulesByHost) -> Vec<ApiRoute> {
        let settings = self.settings;
        let tls_secret = |host: &str| -> Option<Option<String>> {
            spec.tls.iter().flatten().find_map(|t| {
                let listed = t.hosts.as_ref().is_none_or(Vec::is_empty)
                    || t.hosts
                        .iter()
                        .flatten()
                        .any(|h| h.eq_ignore_ascii_case(host));
                listed.then(|| t.secret_name.clone().filter(|s| !s.is_empty()))
            })
        };
        let redirect = settings
            .ssl_redirect
            .or(settings.force_ssl_redirect.then_some(true));
        let many = by_host.len() > 1;
        let (ns, name) = (&self.ns, &self.name);
        let mut routes = Vec::new();
        for (i, (host, rules)) in by_host.into_iter().enumerate() {
            let route_name = if many {
                format!("{name}-{i}")
            } else {
                name.clone()
            };
            let tls = host.as_deref().and_then(|h| {
                let secret = tls_secret(h);
                (secret.is_some() || settings.force_ssl_redirect).then(|| RouteTls {
                    certificate_ref: secret.flatten().map(|name| SecretRef { name }),
                    https_redirect: redirect,
                    ..RouteTls::default()
                })
            });
            let mut annotations = BTreeMap::new();
            annotations.insert(
                "gatehouse.dev/migrated-from".to_owned(),
                format!("Ingress {ns}/{name}"),
            );
            routes.push(ApiRoute {
                metadata: ObjectMeta {
                    name: Some(route_name),
                    namespace: Some(ns.clone()),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                },
                spec: ApiRouteSpec {
                    ingress_class_name: Some(class.to_owned()),
                    hostnames: host.into_iter().collect(),
                    rules,
                    tls,
                },
                status: None,
            });
        }
        routes
    }

    /// The RateLimitPolicy for `limit-rps` / `limit-rpm`, over `routes`.
    fn rate_limit_policy(&self, routes: &[ApiRoute]) -> Option<RateLimitPolicy> {
        let settings = self.settings;
        let mut limits = Vec::new();
        for (which, requests, per) in [
            ("rps", settings.limit_rps, "1s"),
            ("rpm", settings.limit_rpm, "1m"),
        ] {
            if let Some(requests) = requests {
                limits.push(RateLimit {
                    name: format!("limit-{which}"),
                    key: RateLimitKey {
                        type_: RateLimitKeyType::ClientIp,
                        name: None,
                    },
                    rate: Rate {
                        requests: i32::try_from(requests).unwrap_or(i32::MAX),
                        per: per.into(),
                    },
                    burst: Some(
                        i32::try_from(requests.saturating_mul(settings.burst_multiplier))
                            .unwrap_or(i32::MAX),
                    ),
                    scope: Some(RateLimitScope::Local),
                });
            }
        }
        if limits.is_empty() {
            return None;
        }
        Some(RateLimitPolicy {
            metadata: ObjectMeta {
                name: Some(format!("{}-limits", self.name)),
                namespace: Some(self.ns.clone()),
                ..ObjectMeta::default()
            },
            spec: RateLimitPolicySpec {
                target_refs: routes
                    .iter()
                    .map(|r| PolicyTargetRef {
                        kind: TargetKind::ApiRoute,
                        name: r.metadata.name.clone().unwrap_or_default(),
                        rule: None,
                    })
                    .collect(),
                limits,
                failure_mode: Some(FailureMode::Open),
                response_headers: None,
            },
            status: None,
        })
    }
}

/// The rules a canary Ingress adds to a path, `base` being the path's own
/// rule: header and cookie rules that force one side, then the weighted
/// split.
fn canary_rules(
    c: &nginx::Canary,
    base: &RouteRule,
    main: BackendRef,
    canary: BackendRef,
) -> Vec<RouteRule> {
    let mut rules = Vec::new();
    let header = |name: &str, type_: StringMatchType, value: &str| HeaderMatch {
        type_,
        name: name.to_owned(),
        value: Some(value.to_owned()),
    };
    let mut add = |header: HeaderMatch, backend: &BackendRef| {
        let mut r = base.clone();
        for m in &mut r.matches {
            m.headers = vec![header.clone()];
        }
        r.backends = vec![backend.clone()];
        rules.push(r);
    };
    if let Some(h) = &c.header {
        if let Some(v) = &c.header_value {
            add(header(h, StringMatchType::Exact, v), &canary);
        } else if let Some(p) = &c.header_pattern {
            add(header(h, StringMatchType::RegularExpression, p), &canary);
        } else {
            add(header(h, StringMatchType::Exact, "always"), &canary);
            add(header(h, StringMatchType::Exact, "never"), &main);
        }
    }
    if let Some(cookie) = &c.cookie {
        let pattern = |side| crate::ingress::cookie_pattern(cookie, side);
        let cookie = |side| header("Cookie", StringMatchType::RegularExpression, &pattern(side));
        add(cookie("always"), &canary);
        add(cookie("never"), &main);
    }
    let total = c.weight_total.max(1);
    let weight = c.weight.min(total);
    let mut r = base.clone();
    r.backends = vec![
        BackendRef {
            weight: Some(i32::try_from(total - weight).unwrap_or(i32::MAX)),
            ..main
        },
        BackendRef {
            weight: Some(i32::try_from(weight).unwrap_or(i32::MAX)),
            ..canary
        },
    ];
    rules.push(r);
    rules
}

/// `app-root`: an exact `/` redirecting to the root, first in every host.
fn app_root(root: &str, by_host: &mut RulesByHost) {
    let redirect = api::RouteFilter {
        type_: api::FilterType::RequestRedirect,
        request_header_modifier: None,
        response_header_modifier: None,
        url_rewrite: None,
        direct_response: None,
        request_mirror: None,
        request_redirect: Some(api::RequestRedirect {
            path: Some(api::PathModifier {
                type_: api::PathModifierType::ReplaceFullPath,
                replace_full_path: Some(root.to_owned()),
                replace_prefix_match: None,
                regex: None,
                replacement: None,
            }),
            status_code: Some(302),
            drop_query: true,
            ..api::RequestRedirect::default()
        }),
    };
    for (_, rules) in by_host {
        rules.insert(
            0,
            RouteRule {
                name: Some("app-root".into()),
                matches: vec![RouteMatch {
                    path: Some(PathMatch {
                        type_: PathMatchType::Exact,
                        value: "/".into(),
                    }),
                    ..RouteMatch::default()
                }],
                filters: vec![redirect.clone()],
                ..RouteRule::default()
            },
        );
    }
}

/// The emitted manifests of one migration as YAML documents.
pub fn manifests_yaml(m: &Migration) -> Result<String, String> {
    let mut out = String::new();
    for route in &m.api_routes {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(route).map_err(|e| e.to_string())?);
    }
    if let Some(policy) = &m.rate_limit_policy {
        out.push_str("---\n");
        out.push_str(&serde_saphyr::to_string(policy).map_err(|e| e.to_string())?);
    }
    Ok(out)
}
