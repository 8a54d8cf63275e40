//! Why a request goes where it goes: the matcher's decision, step by step,
//! for the admin endpoint `/debug/explain` and `gatehouse explain`.
//!
//! This walks the same data the matcher uses, in the same order, but
//! linearly and recording a reason for every entry it passes over. It is
//! for people, not for the request path.

use serde::Serialize;

use crate::matcher::{PathMatch, RouteEntry};
use crate::request::{Body, RequestInfo};
use crate::route::{Action, BackendTarget, Route};
use crate::{HostPattern, Snapshot};

/// The answer to "where would this request go, and why".
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// The request, as routing saw it.
    pub request: ExplainedRequest,
    /// The virtual host chosen by the host, and how.
    pub virtual_host: Option<ChosenHost>,
    /// The entries of that host considered, in precedence order, up to the
    /// one that matched.
    pub entries: Vec<ConsideredEntry>,
    /// The route that takes the request, when one does.
    pub route: Option<RouteSummary>,
    /// One sentence: the outcome.
    pub summary: String,
}

/// The request being explained.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ExplainedRequest {
    /// Host, lowercase and without port.
    pub host: String,
    /// Normalized path.
    pub path: String,
    /// Method.
    pub method: String,
}

/// The virtual host a host selects.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChosenHost {
    /// Its pattern.
    pub pattern: String,
    /// `exact`, `wildcard` or `catch-all`.
    pub matched_by: &'static str,
    /// Number of entries it has.
    pub entries: usize,
}

/// One entry and what it made of the request.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConsideredEntry {
    /// Route id the entry leads to.
    pub route: String,
    /// The path condition, as text (`exact /a`, `prefix /api`, `regex ...`).
    pub path: String,
    /// `matched`, `skipped` or `needs-body`.
    pub result: &'static str,
    /// Why it did not match, for skipped entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What the matched route does.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteSummary {
    /// Route id.
    pub id: String,
    /// The object it came from (`ApiRoute shop/orders`).
    pub origin: String,
    /// `forward`, `redirect` or `respond`.
    pub action: &'static str,
    /// Backends with weights and endpoints, for `forward`.
    pub backends: Vec<BackendSummary>,
    /// Policies that apply, by name (`apiKey`, `rateLimit <id>`, ...).
    pub policies: Vec<String>,
}

/// One backend of a route.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BackendSummary {
    /// Cluster name, or why it is unresolved.
    pub name: String,
    /// Relative weight.
    pub weight: u32,
    /// Ready endpoint addresses.
    pub endpoints: Vec<String>,
}

fn path_text(p: &PathMatch) -> String {
    match p {
        PathMatch::Exact(s) => format!("exact {s}"),
        PathMatch::Prefix(s) => format!("prefix {s}"),
        PathMatch::Regex(r) => format!(
            "regex {}",
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ),
    }
}

/// Why `entry` does not take `req` (`None`: it does, or it needs the
/// body).
fn mismatch(entry: &RouteEntry, req: &RequestInfo<'_>) -> Option<String> {
    if !entry.path.matches(req.path) {
        return Some(format!("path {} does not match", req.path));
    }
    if let Some(m) = &entry.method
        && m != req.method
    {
        return Some(format!("method is {}, the entry wants {m}", req.method));
    }
    for h in &entry.headers {
        if !h.matches(req) {
            return Some(match req.headers.get(&h.name) {
                None => format!("header {} is missing", h.name),
                Some(_) => format!("header {} has another value", h.name),
            });
        }
    }
    for q in &entry.query {
        if !q.matches(req) {
            return Some(format!("query parameter {} does not match", q.name));
        }
    }
    if !entry.body.is_empty() {
        return match req.body {
            Body::Unread => None,
            Body::NotJson => Some("the body is not JSON".into()),
            Body::Json(json) => entry
                .body
                .iter()
                .any(|b| !b.matches(json))
                .then(|| "a body condition does not hold".into()),
        };
    }
    None
}

fn summarize(snapshot: &Snapshot, route: &Route) -> RouteSummary {
    let (action, backends) = match &route.action {
        Action::Forward(f) => (
            "forward",
            f.backends
                .iter()
                .map(|b| match &b.target {
                    BackendTarget::Cluster { index, name } => BackendSummary {
                        name: name.to_string(),
                        weight: b.weight,
                        endpoints: snapshot
                            .cluster(*index)
                            .endpoints
                            .iter()
                            .map(|e| e.addr.to_string())
                            .collect(),
                    },
                    BackendTarget::Unresolved { status, reason } => BackendSummary {
                        name: format!("unresolved ({reason}; answered {status})"),
                        weight: b.weight,
                        endpoints: Vec::new(),
                    },
                })
                .collect(),
        ),
        Action::Redirect(_) => ("redirect", Vec::new()),
        Action::Respond(_) => ("respond", Vec::new()),
    };
    let p = &route.policies;
    let mut policies: Vec<String> = [
        (p.access.is_some(), "addressList"),
        (p.api_keys.is_some(), "apiKey"),
        (p.basic.is_some(), "basicAuth"),
        (p.jwt.is_some(), "jwt"),
        (p.external.is_some(), "externalAuth"),
        (p.cors.is_some(), "cors"),
        (p.cache.is_some(), "cache"),
        (p.validation.is_some(), "validation"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name.to_owned())
    .collect();
    policies.extend(
        route
            .rate_limits
            .iter()
            .map(|l| format!("rateLimit {}", l.id)),
    );
    RouteSummary {
        id: route.id.to_string(),
        origin: route.origin.to_string(),
        action,
        backends,
        policies,
    }
}

impl Snapshot {
    /// Explains how `req` is routed: the virtual host, every entry
    /// considered and why it was passed over, and the route that takes
    /// the request. Agrees with [`Snapshot::route`].
    pub fn explain(&self, req: &RequestInfo<'_>) -> Explanation {
        let request = ExplainedRequest {
            host: req.host.to_owned(),
            path: req.path.to_owned(),
            method: req.method.to_string(),
        };
        let Some(vh) = self.virtual_host(req.host) else {
            return Explanation {
                request,
                virtual_host: None,
                entries: Vec::new(),
                route: None,
                summary: format!(
                    "no route: no virtual host answers {:?} and there is no catch-all host; the answer is 404",
                    req.host
                ),
            };
        };
        let matched_by = match vh.host {
            HostPattern::Exact(_) => "exact",
            HostPattern::Wildcard(_) => "wildcard",
            HostPattern::Any => "catch-all",
        };
        let mut entries = Vec::new();
        let mut chosen = None;
        for entry in &vh.entries {
            let route = &self.routes[entry.route.0];
            let considered = |result, reason| ConsideredEntry {
                route: route.id.to_string(),
                path: path_text(&entry.path),
                result,
                reason,
            };
            match mismatch(entry, req) {
                Some(reason) => entries.push(considered("skipped", Some(reason))),
                None if !entry.body.is_empty() && matches!(req.body, Body::Unread) => {
                    entries.push(considered("needs-body", None));
                    break;
                }
                None => {
                    entries.push(considered("matched", None));
                    chosen = Some(route);
                    break;
                }
            }
        }
        let virtual_host = Some(ChosenHost {
            pattern: vh.host.to_string(),
            matched_by,
            entries: vh.entries.len(),
        });
        let summary = match (chosen, entries.last()) {
            (Some(route), _) => format!(
                "{} {}{} goes to {} ({}), host matched by {matched_by} pattern {}",
                req.method, req.host, req.path, route.id, route.origin, vh.host
            ),
            (None, Some(last)) if last.result == "needs-body" => format!(
                "decided by the request body: {} has body conditions; send the body to see the outcome",
                last.route
            ),
            (None, _) => format!(
                "no route: host {} has {} entries and none takes {} {}; the answer is 404",
                vh.host,
                vh.entries.len(),
                req.method,
                req.path
            ),
        };
        Explanation {
            request,
            virtual_host,
            entries,
            route: chosen.map(|r| summarize(self, r)),
            summary,
        }
    }
}

/// One line of the route table: a match entry of a virtual host.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteRow {
    /// Host pattern.
    pub host: String,
    /// Path condition.
    pub path: String,
    /// Method condition, or empty.
    pub method: String,
    /// Number of header, query and body conditions.
    pub conditions: usize,
    /// Route id.
    pub route: String,
    /// The object it came from.
    pub origin: String,
    /// `forward`, `redirect` or `respond`.
    pub action: &'static str,
    /// Backends as `name*weight`, with their ready endpoint count.
    pub backends: Vec<String>,
    /// Policies that apply.
    pub policies: Vec<String>,
}

impl Snapshot {
    /// Every match entry, host by host in precedence order: what
    /// `gatehouse routes` prints.
    pub fn route_table(&self) -> Vec<RouteRow> {
        let mut rows = Vec::with_capacity(self.entry_count());
        for vh in &self.virtual_hosts {
            for entry in &vh.entries {
                let route = &self.routes[entry.route.0];
                let summary = summarize(self, route);
                rows.push(RouteRow {
                    host: vh.host.to_string(),
                    path: path_text(&entry.path),
                    method: entry
                        .method
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    conditions: entry.headers.len() + entry.query.len() + entry.body.len(),
                    route: summary.id,
                    origin: summary.origin,
                    action: summary.action,
                    backends: summary
                        .backends
                        .iter()
                        .map(|b| format!("{}*{} ({} ready)", b.name, b.weight, b.endpoints.len()))
                        .collect(),
                    policies: summary.policies,
                });
            }
        }
        rows
    }
}
