//! An ApiRoute rule's edge policies: address lists, API keys, basic auth
//! and CORS, with their Secrets read. Any problem makes the rule
//! unservable (reported as a field error): serving it without the policy
//! would open what the user meant to close.

use std::sync::Arc;

use api::RouteRule;
use http::HeaderName;
use snapshot::{AccessList, ApiKeys, BasicUsers, Cidr, CorsPolicy, RoutePolicies};

use crate::ResourceSet;
use crate::diagnostics::FieldError;

fn secret_entries(
    resources: &ResourceSet,
    namespace: &str,
    name: &str,
) -> Option<Vec<(String, Vec<u8>)>> {
    let s = resources.secrets.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace)
            && s.metadata.name.as_deref() == Some(name)
    })?;
    let mut out: Vec<(String, Vec<u8>)> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    out.extend(
        s.string_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec())),
    );
    Some(out)
}

fn header(
    value: Option<&String>,
    field: String,
    errors: &mut Vec<FieldError>,
) -> Option<HeaderName> {
    let v = value?;
    match HeaderName::try_from(v.as_str()) {
        Ok(h) => Some(h),
        Err(_) => {
            errors.push((field, format!("{v:?} is not a valid header name")));
            None
        }
    }
}

/// SHA-256 of an API key: keys are looked up by digest, so a lookup's
/// timing says nothing about how much of a guessed key was right.
pub(crate) fn key_digest(key: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The edge policies of an ApiRoute rule, with their Secrets read.
pub(crate) fn route_policies(
    rule: &RouteRule,
    field: &str,
    namespace: &str,
    resources: &ResourceSet,
    errors: &mut Vec<FieldError>,
) -> RoutePolicies {
    // In the rule's field order, so errors are reported in that order.
    let mut out = RoutePolicies {
        access: rule.access.as_ref().map(|a| access_list(a, field, errors)),
        ..RoutePolicies::default()
    };
    if let Some(auth) = &rule.authentication {
        authentication(auth, &mut out, field, namespace, resources, errors);
    }
    out.cors = rule.cors.as_ref().map(|c| cors_policy(c, field, errors));
    out.validation = rule
        .validation
        .as_ref()
        .map(|v| request_validation(v, field, errors));
    out.cache = rule
        .cache
        .as_ref()
        .map(|c| cache_policy(c, rule, field, errors));
    out
}

fn access_list(
    a: &api::AccessControl,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Arc<AccessList> {
    let mut list = AccessList::default();
    for (name, src, dst) in [
        ("allow", &a.allow, &mut list.allow),
        ("deny", &a.deny, &mut list.deny),
    ] {
        for (i, c) in src.iter().enumerate() {
            match c.parse::<Cidr>() {
                Ok(c) => dst.push(c),
                Err(msg) => errors.push((format!("{field}.access.{name}[{i}]"), msg)),
            }
        }
    }
    Arc::new(list)
}

/// The credentials a rule checks, into `out`.
fn authentication(
    auth: &api::Authentication,
    out: &mut RoutePolicies,
    field: &str,
    namespace: &str,
    resources: &ResourceSet,
    errors: &mut Vec<FieldError>,
) {
    let f = format!("{field}.authentication");
    if auth.api_key.is_none()
        && auth.basic.is_none()
        && auth.external.is_none()
        && auth.jwt.is_none()
    {
        errors.push((
            f.clone(),
            "name at least one method (apiKey, basic, jwt, external)".into(),
        ));
    }
    if let Some(j) = &auth.jwt {
        out.jwt = jwt_policy(j, &f, namespace, resources, errors);
    }
    if let Some(x) = &auth.external {
        out.external = external_auth(x, &f, errors);
    }
    if let Some(k) = &auth.api_key {
        out.api_keys = api_keys(k, &f, namespace, resources, errors);
    }
    if let Some(b) = &auth.basic {
        out.basic = basic_users(b, &f, namespace, resources, errors);
    }
}

fn external_auth(
    x: &api::ExternalAuth,
    f: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Arc<snapshot::ExternalAuth>> {
    let fx = format!("{f}.external");
    let url = match x.url.parse::<http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.authority().is_some() => Some(u),
        Ok(_) => {
            errors.push((
                format!("{fx}.url"),
                "use http://host:port/path (https is not supported for the auth service yet)"
                    .into(),
            ));
            None
        }
        Err(e) => {
            errors.push((format!("{fx}.url"), format!("not a URL: {e}")));
            None
        }
    };
    let names = |list: &[String], name: &str, errors: &mut Vec<FieldError>| -> Vec<HeaderName> {
        list.iter()
            .enumerate()
            .filter_map(|(i, h)| header(Some(h), format!("{fx}.{name}[{i}]"), errors))
            .collect()
    };
    let mut request_headers = names(&x.request_headers, "requestHeaders", errors);
    if x.request_headers.is_empty() {
        request_headers = vec![http::header::AUTHORIZATION, http::header::COOKIE];
    }
    let upstream_headers = names(&x.upstream_headers, "upstreamHeaders", errors);
    let timeout = match x.timeout.as_deref().map(crate::values::parse_duration) {
        None => std::time::Duration::from_secs(2),
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            errors.push((format!("{fx}.timeout"), "must be longer than zero".into()));
            std::time::Duration::from_secs(2)
        }
        Some(Err(msg)) => {
            errors.push((format!("{fx}.timeout"), msg));
            std::time::Duration::from_secs(2)
        }
    };
    url.map(|url| {
        Arc::new(snapshot::ExternalAuth {
            url,
            request_headers,
            upstream_headers,
            timeout,
        })
    })
}

fn api_keys(
    k: &api::ApiKeyAuth,
    f: &str,
    namespace: &str,
    resources: &ResourceSet,
    errors: &mut Vec<FieldError>,
) -> Option<Arc<ApiKeys>> {
    let source: Arc<str> = format!("{namespace}/{}", k.secret_ref.name).into();
    match secret_entries(resources, namespace, &k.secret_ref.name) {
        None => {
            errors.push((
                format!("{f}.apiKey.secretRef"),
                format!("Secret {source} does not exist (or is not labelled gatehouse.dev/secret)"),
            ));
            None
        }
        Some(entries) => {
            let keys: Vec<([u8; 32], Arc<str>)> = entries
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(name, v)| {
                    let v = v.strip_suffix(b"\n").unwrap_or(v);
                    (key_digest(v), Arc::from(name.as_str()))
                })
                .collect();
            if keys.is_empty() {
                errors.push((
                    format!("{f}.apiKey.secretRef"),
                    format!("Secret {source} holds no keys"),
                ));
            }
            let query_parameter = k.query_parameter.as_deref().map(Into::into);
            let default_header = query_parameter.is_none().then(|| "x-api-key".to_owned());
            Some(Arc::new(ApiKeys {
                source,
                header: header(
                    k.header.as_ref().or(default_header.as_ref()),
                    format!("{f}.apiKey.header"),
                    errors,
                ),
                query_parameter,
                forward_name_header: header(
                    k.forward_name_header.as_ref(),
                    format!("{f}.apiKey.forwardNameHeader"),
                    errors,
                ),
                keys,
            }))
        }
    }
}

fn basic_users(
    b: &api::BasicAuth,
    f: &str,
    namespace: &str,
    resources: &ResourceSet,
    errors: &mut Vec<FieldError>,
) -> Option<Arc<BasicUsers>> {
    let source: Arc<str> = format!("{namespace}/{}", b.secret_ref.name).into();
    let entries = secret_entries(resources, namespace, &b.secret_ref.name);
    let htpasswd = entries
        .as_ref()
        .and_then(|e| e.iter().find(|(k, _)| k == "auth"));
    match htpasswd {
        None => {
            errors.push((
                format!("{f}.basic.secretRef"),
                format!("Secret {source} does not exist or has no `auth` key (an htpasswd file)"),
            ));
            None
        }
        Some((_, text)) => {
            let mut users = Vec::new();
            for (n, line) in String::from_utf8_lossy(text).lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                match line.split_once(':') {
                    Some((user, hash))
                        if hash.starts_with("$2y$")
                            || hash.starts_with("$2b$")
                            || hash.starts_with("$2a$") =>
                    {
                        users.push((user.into(), hash.into()));
                    }
                    _ => errors.push((
                        format!("{f}.basic.secretRef"),
                        format!("Secret {source}, line {}: only bcrypt entries (htpasswd -B) are accepted", n + 1),
                    )),
                }
            }
            Some(Arc::new(BasicUsers {
                source,
                realm: b.realm.as_deref().map(Into::into),
                forward_user_header: header(
                    b.forward_user_header.as_ref(),
                    format!("{f}.basic.forwardUserHeader"),
                    errors,
                ),
                users,
            }))
        }
    }
}

fn cors_policy(c: &api::Cors, field: &str, errors: &mut Vec<FieldError>) -> Arc<CorsPolicy> {
    let f = format!("{field}.cors");
    let mut policy = CorsPolicy {
        origins: Vec::new(),
        wildcard_origins: Vec::new(),
        any_origin: false,
        allow_methods: if c.allow_methods.is_empty() {
            "GET, HEAD, POST".into()
        } else {
            c.allow_methods.join(", ").to_ascii_uppercase().into()
        },
        allow_headers: c.allow_headers.join(", ").into(),
        expose_headers: c.expose_headers.join(", ").into(),
        allow_credentials: c.allow_credentials,
        max_age: c.max_age_seconds,
    };
    for (i, o) in c.allow_origins.iter().enumerate() {
        let o = o.to_ascii_lowercase();
        if o == "*" {
            policy.any_origin = true;
        } else if let Some((scheme, rest)) = o.split_once("://*.") {
            policy
                .wildcard_origins
                .push((format!("{scheme}://").into(), format!(".{rest}").into()));
        } else if o.contains("://") && !o.ends_with('/') {
            policy.origins.push(o.into());
        } else {
            errors.push((
                format!("{f}.allowOrigins[{i}]"),
                format!("{o:?} is not an origin (scheme://host[:port], no path)"),
            ));
        }
    }
    if policy.any_origin && policy.allow_credentials {
        errors.push((
            format!("{f}.allowCredentials"),
            "credentials cannot be allowed for any origin (*): list the origins".into(),
        ));
    }
    for (name, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, h) in list.iter().enumerate() {
            if HeaderName::try_from(h.as_str()).is_err() {
                errors.push((
                    format!("{f}.{name}[{i}]"),
                    format!("{h:?} is not a header name"),
                ));
            }
        }
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if http::Method::from_bytes(m.as_bytes()).is_err() {
            errors.push((
                format!("{f}.allowMethods[{i}]"),
                format!("{m:?} is not a method"),
            ));
        }
    }
    Arc::new(policy)
}

fn request_validation(
    v: &api::Validation,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Arc<snapshot::RequestValidation> {
    let f = format!("{field}.validation");
    let required_headers = v
        .required_headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| header(Some(h), format!("{f}.requiredHeaders[{i}]"), errors))
        .collect();
    let mut content_types = Vec::new();
    for (i, t) in v.content_types.iter().enumerate() {
        let t = t
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        if t.split_once('/')
            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty())
        {
            content_types.push(t.into());
        } else {
            errors.push((
                format!("{f}.contentTypes[{i}]"),
                format!("{t:?} is not a media type (type/subtype)"),
            ));
        }
    }
    let json_schema =
        v.json_schema
            .as_ref()
            .and_then(|text| match snapshot::JsonSchema::compile(text) {
                Ok(schema) => Some(schema),
                Err(e) => {
                    errors.push((format!("{f}.jsonSchema"), e));
                    None
                }
            });
    Arc::new(snapshot::RequestValidation {
        max_body_bytes: v.max_body_bytes,
        required_headers,
        content_types,
        json_schema,
    })
}

fn cache_policy(
    c: &api::Cache,
    rule: &RouteRule,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Arc<snapshot::CachePolicy> {
    let f = format!("{field}.cache");
    let ttl = match crate::values::parse_duration(&c.ttl) {
        Ok(d) if !d.is_zero() => d,
        Ok(_) => {
            errors.push((format!("{f}.ttl"), "must be longer than zero".into()));
            std::time::Duration::from_secs(1)
        }
        Err(msg) => {
            errors.push((format!("{f}.ttl"), msg));
            std::time::Duration::from_secs(1)
        }
    };
    let key = c.key.clone().unwrap_or_default();
    let query = match key.query.unwrap_or(api::CacheQuery::All) {
        api::CacheQuery::All => snapshot::CacheQuery::All,
        api::CacheQuery::None => snapshot::CacheQuery::Ignore,
        api::CacheQuery::Listed => {
            let mut names: Vec<Box<str>> = key
                .query_parameters
                .iter()
                .map(|p| p.as_str().into())
                .collect();
            names.sort();
            snapshot::CacheQuery::Listed(names)
        }
    };
    let headers = key
        .headers
        .iter()
        .enumerate()
        .filter_map(|(i, h)| header(Some(h), format!("{f}.key.headers[{i}]"), errors))
        .collect();
    let statuses = if c.statuses.is_empty() {
        vec![200, 203, 204, 301, 404, 410]
    } else {
        c.statuses.clone()
    };
    // The whole rule's configuration, hashed: any change makes new keys.
    let fingerprint = {
        use std::hash::{BuildHasher, Hasher};
        let text = serde_json::to_string(rule).unwrap_or_default();
        let mut h = foldhash::quality::FixedState::with_seed(0x6761_7465).build_hasher();
        h.write(text.as_bytes());
        h.finish()
    };
    Arc::new(snapshot::CachePolicy {
        ttl,
        query,
        headers,
        max_entry_bytes: c.max_entry_bytes.map_or(1 << 20, |b| b as usize),
        max_total_bytes: c.max_total_bytes,
        statuses,
        fingerprint,
    })
}

fn jwt_policy(
    j: &api::JwtAuth,
    f: &str,
    namespace: &str,
    resources: &ResourceSet,
    errors: &mut Vec<FieldError>,
) -> Option<Arc<snapshot::JwtPolicy>> {
    let fj = format!("{f}.jwt");
    let jwks = match (&j.jwks_secret_ref, &j.jwks_uri) {
        (Some(r), None) => {
            let json = secret_entries(resources, namespace, &r.name)
                .and_then(|e| e.into_iter().find(|(k, _)| k == "jwks.json"))
                .map(|(_, v)| String::from_utf8_lossy(&v).into_owned());
            match json {
                None => {
                    errors.push((
                        format!("{fj}.jwksSecretRef"),
                        format!(
                            "Secret {namespace}/{} does not exist or has no jwks.json key",
                            r.name
                        ),
                    ));
                    None
                }
                Some(text) => match snapshot::Jwks::parse(&text) {
                    Ok(set) if !set.is_empty() => Some(snapshot::JwksSource::Inline(set)),
                    Ok(_) => {
                        errors.push((format!("{fj}.jwksSecretRef"), "the JWKS has no keys".into()));
                        None
                    }
                    Err(e) => {
                        errors.push((format!("{fj}.jwksSecretRef"), format!("jwks.json is {e}")));
                        None
                    }
                },
            }
        }
        (None, Some(uri)) => match uri.parse::<http::Uri>() {
            Ok(u)
                if u.authority().is_some() && matches!(u.scheme_str(), Some("http" | "https")) =>
            {
                Some(snapshot::JwksSource::Uri(u))
            }
            _ => {
                errors.push((
                    format!("{fj}.jwksUri"),
                    format!("{uri:?} is not an http(s) URL"),
                ));
                None
            }
        },
        _ => {
            errors.push((
                fj.clone(),
                "give exactly one of jwksSecretRef and jwksUri".into(),
            ));
            None
        }
    };
    let forward_claims = j
        .forward_claims
        .iter()
        .filter_map(|(claim, h)| {
            header(Some(h), format!("{fj}.forwardClaims.{claim}"), errors)
                .map(|h| (Box::<str>::from(claim.as_str()), h))
        })
        .collect();
    Some(Arc::new(snapshot::JwtPolicy {
        jwks: jwks?,
        issuer: j.issuer.as_deref().map(Into::into),
        audiences: j.audiences.iter().map(|a| a.as_str().into()).collect(),
        required_claims: j
            .required_claims
            .iter()
            .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
            .collect(),
        forward_claims,
        leeway_seconds: j.leeway_seconds.unwrap_or(30),
    }))
}
