//! ApiRoute filters, compiled into the snapshot's filter data.

use api::{
    DirectResponse as ApiDirectResponse, FilterType, HeaderModifier as ApiHeaderModifier,
    PathModifier, PathModifierType, RedirectScheme, RequestRedirect, RouteFilter,
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use snapshot::{
    Action, BackendTarget, DirectResponse, Filters, HeaderModifier, Mirror, PathRewrite, Redirect,
    Rewrite, Scheme,
};

use crate::backends::{Backends, PortRef, Use};
use crate::builder::Builder;
use crate::diagnostics::{Diagnostics, FieldError, ObjectRef};
use crate::traffic::ClusterSettings;
use crate::values::{check_header_name, check_hostname, normalize_rule_path};

/// What a rule's filters amount to.
#[derive(Debug, Default)]
pub(crate) struct Compiled {
    pub(crate) filters: Filters,
    /// A redirect or fixed response that replaces forwarding.
    pub(crate) answer: Option<Action>,
}

/// Request headers a filter may not touch: the gateway owns them (framing,
/// connection management, and the Host, which `URLRewrite` changes).
const RESERVED_REQUEST: &[&str] = &[
    "host",
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];
/// Response headers a filter may not touch (framing and connection
/// management).
const RESERVED_RESPONSE: &[&str] = &[
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Largest fixed response body.
const MAX_DIRECT_BODY: usize = 64 * 1024;

/// The rule context the filters need.
pub(crate) struct RuleCtx<'a> {
    pub(crate) object: &'a ObjectRef,
    pub(crate) namespace: &'a str,
    pub(crate) backends: &'a Backends<'a>,
    /// Whether every match of the rule is a `PathPrefix` match, which
    /// `ReplacePrefixMatch` requires.
    pub(crate) all_prefix: bool,
}

/// Compiles a rule's filters. Errors make the rule unservable; a
/// mirror whose Service does not resolve is reported and left out.
pub(crate) fn compile(
    ctx: &RuleCtx<'_>,
    filters: &[RouteFilter],
    field: &str,
    builder: Option<&mut Builder>,
    diags: &mut Diagnostics,
) -> Result<Compiled, Vec<FieldError>> {
    let mut out = Compiled::default();
    let mut errors = Vec::new();
    let mut seen: Vec<FilterType> = Vec::new();
    let mut builder = builder;
    for (i, filter) in filters.iter().enumerate() {
        let f = format!("{field}[{i}]");
        if filter.type_ != FilterType::RequestMirror && seen.contains(&filter.type_) {
            errors.push((
                format!("{f}.type"),
                format!("{:?} appears twice; each filter type except RequestMirror may appear once per rule", filter.type_),
            ));
            continue;
        }
        seen.push(filter.type_);
        let result = match filter.type_ {
            FilterType::RequestHeaderModifier => {
                required(&filter.request_header_modifier, &f, "requestHeaderModifier").and_then(
                    |m| {
                        header_modifier(m, &format!("{f}.requestHeaderModifier"), RESERVED_REQUEST)
                            .map(|m| out.filters.request_headers = Some(m))
                    },
                )
            }
            FilterType::ResponseHeaderModifier => required(
                &filter.response_header_modifier,
                &f,
                "responseHeaderModifier",
            )
            .and_then(|m| {
                header_modifier(m, &format!("{f}.responseHeaderModifier"), RESERVED_RESPONSE)
                    .map(|m| out.filters.response_headers = Some(m))
            }),
            FilterType::UrlRewrite => {
                required(&filter.url_rewrite, &f, "urlRewrite").and_then(|r| {
                    let ff = format!("{f}.urlRewrite");
                    let hostname = match &r.hostname {
                        Some(h) => Some(
                            plain_hostname(h)
                                .and_then(|()| HeaderValue::from_str(h).map_err(|e| e.to_string()))
                                .map_err(|msg| vec![(format!("{ff}.hostname"), msg)])?,
                        ),
                        None => None,
                    };
                    let path = match &r.path {
                        Some(p) => Some(path_modifier(p, &format!("{ff}.path"), ctx.all_prefix)?),
                        None => None,
                    };
                    out.filters.rewrite = Some(Rewrite { hostname, path });
                    Ok(())
                })
            }
            FilterType::RequestRedirect => {
                required(&filter.request_redirect, &f, "requestRedirect")
                    .and_then(|r| redirect(r, &format!("{f}.requestRedirect"), ctx.all_prefix))
                    .map(|r| out.answer = Some(Action::Redirect(r)))
            }
            FilterType::DirectResponse => required(&filter.direct_response, &f, "directResponse")
                .and_then(|d| direct_response(d, &format!("{f}.directResponse")))
                .map(|d| out.answer = Some(Action::Respond(d))),
            FilterType::RequestMirror => required(&filter.request_mirror, &f, "requestMirror")
                .and_then(|m| {
                    let ff = format!("{f}.requestMirror");
                    let percent = m.percent.unwrap_or(100);
                    let percent = u8::try_from(percent)
                        .ok()
                        .filter(|p| *p <= 100)
                        .ok_or_else(|| {
                            vec![(
                                format!("{ff}.percent"),
                                format!("percent {percent} is out of range: use 0 to 100"),
                            )]
                        })?;
                    if !(1..=65535).contains(&m.backend.port) {
                        return Err(vec![(
                            format!("{ff}.backend.port"),
                            format!("port {} is out of range: use 1 to 65535", m.backend.port),
                        )]);
                    }
                    let resolved = ctx.backends.resolve(
                        ctx.namespace,
                        &m.backend.name,
                        PortRef::Number(m.backend.port),
                    );
                    let usage = Use {
                        protocol: None,
                        settings: ClusterSettings::default(),
                        object: ctx.object,
                        field: &format!("{ff}.backend"),
                        name_field: "name",
                        port_field: "port",
                        unresolved_status: 500,
                    };
                    let registering = builder.is_some();
                    let target =
                        crate::backends::target(resolved, usage, builder.as_deref_mut(), diags);
                    // An unresolved mirror is reported and left out; the
                    // rule itself is still served.
                    if registering && matches!(target, BackendTarget::Cluster { .. }) {
                        out.filters.mirrors.push(Mirror { target, percent });
                    }
                    Ok(())
                }),
        };
        if let Err(mut e) = result {
            errors.append(&mut e);
        }
    }
    if out.answer.is_some() && out.filters.rewrite.is_some() {
        errors.push((
            field.to_owned(),
            "URLRewrite cannot be combined with RequestRedirect or DirectResponse".to_owned(),
        ));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn required<'a, T>(
    value: &'a Option<T>,
    field: &str,
    name: &str,
) -> Result<&'a T, Vec<FieldError>> {
    value.as_ref().ok_or_else(|| {
        vec![(
            format!("{field}.{name}"),
            format!("{name} must be set for this filter type"),
        )]
    })
}

fn header_modifier(
    m: &ApiHeaderModifier,
    field: &str,
    reserved: &[&str],
) -> Result<HeaderModifier, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut out = HeaderModifier::default();
    let mut names: Vec<HeaderName> = Vec::new();
    let mut check_name =
        |raw: &str, f: String, errors: &mut Vec<FieldError>| -> Option<HeaderName> {
            let name = match check_header_name(raw) {
                Ok(n) => n,
                Err(msg) => {
                    errors.push((f, msg));
                    return None;
                }
            };
            if reserved.contains(&name.as_str()) {
                errors.push((
                    f,
                    format!("{name:?} is managed by the gateway and cannot be changed by a filter"),
                ));
                return None;
            }
            if names.contains(&name) {
                errors.push((
                    f,
                    format!("{name:?} appears more than once in this modifier"),
                ));
                return None;
            }
            names.push(name.clone());
            Some(name)
        };
    for (kind, list, dest) in [("set", &m.set, &mut out.set), ("add", &m.add, &mut out.add)] {
        for (i, h) in list.iter().enumerate() {
            let f = format!("{field}.{kind}[{i}]");
            let Some(name) = check_name(&h.name, format!("{f}.name"), &mut errors) else {
                continue;
            };
            match HeaderValue::from_str(&h.value) {
                Ok(v) => dest.push((name, v)),
                Err(_) => errors.push((
                    format!("{f}.value"),
                    "the value has characters a header cannot carry (control characters)".into(),
                )),
            }
        }
    }
    for (i, raw) in m.remove.iter().enumerate() {
        if let Some(name) = check_name(raw, format!("{field}.remove[{i}]"), &mut errors) {
            out.remove.push(name);
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn plain_hostname(h: &str) -> Result<(), String> {
    if h.starts_with("*.") {
        return Err(format!("{h:?}: a wildcard cannot be a target hostname"));
    }
    check_hostname(h)
}

fn path_modifier(
    p: &PathModifier,
    field: &str,
    all_prefix: bool,
) -> Result<PathRewrite, Vec<FieldError>> {
    let (value, which) = match p.type_ {
        PathModifierType::ReplaceFullPath => (p.replace_full_path.as_deref(), "replaceFullPath"),
        PathModifierType::ReplacePrefixMatch => {
            (p.replace_prefix_match.as_deref(), "replacePrefixMatch")
        }
        PathModifierType::ReplaceRegexMatch => return regex_rewrite(p, field),
    };
    let Some(value) = value else {
        return Err(vec![(
            format!("{field}.{which}"),
            format!("{which} must be set when type is {which:?}"),
        )]);
    };
    let normalized =
        normalize_rule_path(value).map_err(|msg| vec![(format!("{field}.{which}"), msg)])?;
    match p.type_ {
        PathModifierType::ReplaceFullPath => Ok(PathRewrite::Full(normalized.into())),
        PathModifierType::ReplacePrefixMatch if !all_prefix => Err(vec![(
            format!("{field}.type"),
            "ReplacePrefixMatch needs every match of the rule to use a PathPrefix path".to_owned(),
        )]),
        PathModifierType::ReplacePrefixMatch => Ok(PathRewrite::Prefix(normalized.into())),
        PathModifierType::ReplaceRegexMatch => unreachable!("handled above"),
    }
}

/// `ReplaceRegexMatch`: the pattern must compile, the replacement must be
/// a path and name only groups the pattern has.
pub(crate) fn regex_rewrite(p: &PathModifier, field: &str) -> Result<PathRewrite, Vec<FieldError>> {
    let mut errors = Vec::new();
    let pattern = match p.regex.as_deref().map(snapshot::Pattern::search) {
        None => {
            errors.push((
                format!("{field}.regex"),
                "regex must be set when type is ReplaceRegexMatch".to_owned(),
            ));
            None
        }
        Some(Err(e)) => {
            errors.push((format!("{field}.regex"), e.to_string()));
            None
        }
        Some(Ok(pattern)) => Some(pattern),
    };
    let replacement = p.replacement.as_deref().unwrap_or_default();
    if replacement.is_empty() {
        errors.push((
            format!("{field}.replacement"),
            "replacement must be set when type is ReplaceRegexMatch".to_owned(),
        ));
    } else if !replacement.starts_with('/') && !replacement.starts_with('$') {
        errors.push((
            format!("{field}.replacement"),
            format!("{replacement:?} must start with '/' (or a capture group such as $1)"),
        ));
    } else if replacement.contains(['?', '#']) {
        errors.push((
            format!("{field}.replacement"),
            format!("{replacement:?}: the replacement is a path; it cannot contain '?' or '#'"),
        ));
    }
    if let Some(pattern) = &pattern {
        let groups = pattern.captures_len();
        let bytes = replacement.as_bytes();
        let mut i = 0;
        while i + 1 < bytes.len() {
            if bytes[i] == b'$' && bytes[i + 1] == b'$' {
                i += 2;
                continue;
            }
            if bytes[i] == b'$' && bytes[i + 1].is_ascii_digit() {
                let n = usize::from(bytes[i + 1] - b'0');
                if n > groups {
                    errors.push((
                        format!("{field}.replacement"),
                        format!(
                            "${n} names a capture group the regex does not have (it has {groups})"
                        ),
                    ));
                }
            }
            i += 1;
        }
    }
    match (pattern, errors.is_empty()) {
        (Some(pattern), true) => Ok(PathRewrite::Regex {
            pattern,
            replacement: replacement.into(),
        }),
        _ => Err(errors),
    }
}

fn redirect(
    r: &RequestRedirect,
    field: &str,
    all_prefix: bool,
) -> Result<Redirect, Vec<FieldError>> {
    let mut errors = Vec::new();
    let status = r.status_code.unwrap_or(302);
    if ![301, 302, 303, 307, 308].contains(&status) {
        errors.push((
            format!("{field}.statusCode"),
            format!("{status} is not a redirect status: use 301, 302, 303, 307 or 308"),
        ));
    }
    if let Some(h) = &r.hostname
        && let Err(msg) = plain_hostname(h)
    {
        errors.push((format!("{field}.hostname"), msg));
    }
    let port = match r.port {
        Some(p) => match u16::try_from(p).ok().filter(|p| *p > 0) {
            Some(p) => Some(p),
            None => {
                errors.push((
                    format!("{field}.port"),
                    format!("port {p} is out of range: use 1 to 65535"),
                ));
                None
            }
        },
        None => None,
    };
    let path = match &r.path {
        Some(p) => match path_modifier(p, &format!("{field}.path"), all_prefix) {
            Ok(p) => Some(p),
            Err(mut e) => {
                errors.append(&mut e);
                None
            }
        },
        None => None,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Redirect {
        scheme: r.scheme.map(|s| match s {
            RedirectScheme::Http => Scheme::Http,
            RedirectScheme::Https => Scheme::Https,
        }),
        hostname: r.hostname.as_deref().map(Into::into),
        port,
        path,
        drop_query: r.drop_query,
        status: u16::try_from(status).unwrap_or(302),
    })
}

fn direct_response(d: &ApiDirectResponse, field: &str) -> Result<DirectResponse, Vec<FieldError>> {
    let mut errors = Vec::new();
    let status = u16::try_from(d.status_code)
        .ok()
        .filter(|s| (200..=599).contains(s));
    if status.is_none() {
        errors.push((
            format!("{field}.statusCode"),
            format!("{} is out of range: use 200 to 599", d.status_code),
        ));
    }
    let body = d.body.clone().unwrap_or_default();
    if body.len() > MAX_DIRECT_BODY {
        errors.push((
            format!("{field}.body"),
            format!(
                "the body is {} bytes; at most {MAX_DIRECT_BODY} are allowed",
                body.len()
            ),
        ));
    }
    let content_type = d
        .content_type
        .clone()
        .unwrap_or_else(|| "text/plain; charset=utf-8".to_owned());
    let content_type = HeaderValue::from_str(&content_type).ok();
    if content_type.is_none() {
        errors.push((
            format!("{field}.contentType"),
            "the content type has characters a header cannot carry".into(),
        ));
    }
    match (status, content_type) {
        (Some(status), Some(content_type)) if errors.is_empty() => Ok(DirectResponse {
            status,
            content_type,
            body: Bytes::from(body),
        }),
        _ => Err(errors),
    }
}
