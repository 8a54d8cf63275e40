//! The settings as ApiRoute rule fields.

use api::{
    AccessControl, Authentication, LoadBalancer, LoadBalancerPolicy, RequestLimits, RouteRule,
    RouteTimeouts,
};

use super::model::Settings;

impl Settings {
    /// The ApiRoute rule these settings amount to, without matches,
    /// backends or filters (see [`Settings::filters`]).
    pub fn rule_template(&self) -> RouteRule {
        let mut rule = RouteRule::default();
        if let Some(n) = self.read_timeout {
            rule.timeouts = Some(RouteTimeouts {
                request: Some(format!("{n}s")),
                idle: None,
                backend_request: Some(format!("{n}s")),
            });
        }
        if self.affinity.is_some() || self.hash_by.is_some() || self.load_balance.is_some() {
            rule.load_balancer = Some(LoadBalancer {
                policy: if self.hash_by.is_some() {
                    Some(LoadBalancerPolicy::ConsistentHash)
                } else {
                    self.load_balance
                },
                consistent_hash: self.hash_by.clone(),
                session_affinity: self.affinity.clone(),
            });
        }
        if self.max_body_bytes.is_some() || self.limit_connections.is_some() {
            rule.limits = Some(RequestLimits {
                max_body_bytes: self.max_body_bytes.map(|n| {
                    if n == 0 {
                        i64::MAX
                    } else {
                        i64::try_from(n).unwrap_or(i64::MAX)
                    }
                }),
                max_in_flight_per_client: self
                    .limit_connections
                    .map(|n| i32::try_from(n).unwrap_or(i32::MAX)),
            });
        }
        if !self.allow.is_empty() || !self.deny.is_empty() {
            rule.access = Some(AccessControl {
                allow: self.allow.clone(),
                deny: self.deny.clone(),
            });
        }
        if self.basic_auth.is_some() || self.external_auth.is_some() {
            rule.authentication = Some(Authentication {
                basic: self.basic_auth.clone(),
                external: self.external_auth.clone(),
                ..Authentication::default()
            });
        }
        rule.cors.clone_from(&self.cors);
        rule
    }

    /// The rewrite or redirect filter of a path, written for an ApiRoute
    /// rule whose match is `path` (already a regex when `use_regex`).
    pub fn filters(&self) -> Vec<api::RouteFilter> {
        use api::{FilterType, PathModifier, PathModifierType, RedirectScheme, RequestRedirect};
        if let Some(r) = &self.redirect {
            return vec![api::RouteFilter {
                type_: FilterType::RequestRedirect,
                request_header_modifier: None,
                response_header_modifier: None,
                url_rewrite: None,
                direct_response: None,
                request_mirror: None,
                request_redirect: Some(RequestRedirect {
                    scheme: Some(if r.https {
                        RedirectScheme::Https
                    } else {
                        RedirectScheme::Http
                    }),
                    hostname: r.host.clone(),
                    port: r.port.map(i32::from),
                    path: r.path.as_ref().map(|p| PathModifier {
                        type_: PathModifierType::ReplaceFullPath,
                        replace_full_path: Some(p.clone()),
                        replace_prefix_match: None,
                        regex: None,
                        replacement: None,
                    }),
                    drop_query: r.path.is_some(),
                    status_code: Some(i32::from(r.status)),
                }),
            }];
        }
        Vec::new()
    }

    /// The regex-rewrite filter for one Ingress path (written as in the
    /// Ingress), when `rewrite-target` is set.
    pub fn rewrite_for(&self, ingress_path: &str) -> Option<api::RouteFilter> {
        use api::{FilterType, PathModifier, PathModifierType, RouteFilter, UrlRewrite};
        let target = self.rewrite_target.as_ref()?;
        Some(RouteFilter {
            type_: FilterType::UrlRewrite,
            request_header_modifier: None,
            response_header_modifier: None,
            request_redirect: None,
            direct_response: None,
            request_mirror: None,
            url_rewrite: Some(UrlRewrite {
                hostname: None,
                path: Some(PathModifier {
                    type_: PathModifierType::ReplaceRegexMatch,
                    replace_full_path: None,
                    replace_prefix_match: None,
                    // nginx searches `(?i)<path>` anywhere, but only in
                    // paths its location `^<path>` matched, where the
                    // leftmost match starts at 0: anchoring changes no
                    // result and lets the regex engine take its fast path.
                    regex: Some(format!("(?i)^(?:{ingress_path})")),
                    replacement: Some(target.clone()),
                }),
            }),
        })
    }

    /// The path regex for one Ingress path under `use-regex`: nginx's
    /// `location ~* "^<path>"`, as a whole-path pattern.
    pub fn path_regex(ingress_path: &str) -> String {
        format!("(?i:{ingress_path}).*")
    }
}
