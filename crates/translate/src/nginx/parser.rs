//! Reading the annotations into settings and findings.

use std::collections::BTreeMap;

use api::{
    BackendProtocol, BasicAuth, ConsistentHash, Cors, ExternalAuth, LoadBalancerPolicy, SecretRef,
    SessionAffinity,
};

use super::model::{Canary, Finding, PREFIX, Parsed, UrlRedirect, Verdict};
use super::tables::{NO_EFFECT, REFUSED, UNSUPPORTED};

/// Reads the `nginx.ingress.kubernetes.io/` annotations of one Ingress.
/// `namespace` is the Ingress's, for Secret references.
pub fn parse(annotations: Option<&BTreeMap<String, String>>, namespace: &str) -> Parsed {
    let mut p = Parser {
        all: annotations,
        namespace,
        out: Parsed::default(),
    };
    p.out.settings.burst_multiplier = 5;
    let Some(all) = annotations else {
        return p.out;
    };
    let mut cors = false;
    for (key, value) in all.range(PREFIX.to_owned()..) {
        let Some(name) = key.strip_prefix(PREFIX) else {
            break;
        };
        if name == "enable-cors" {
            cors = boolean(value) == Some(true);
        }
        p.one(key, name, value.trim());
    }
    if cors {
        let mut c = p.cors();
        if c.allow_credentials && c.allow_origins.iter().any(|o| o == "*") {
            // ingress-nginx sends `Access-Control-Allow-Origin: *` with
            // `Allow-Credentials: true`, a pair browsers refuse for
            // credentialed requests: only uncredentialed ones ever worked.
            c.allow_credentials = false;
            let key = format!("{PREFIX}cors-allow-credentials");
            p.note(&key, Verdict::Differs, "not sent with any origin (*): browsers refuse that pair, so under ingress-nginx only requests without credentials succeeded, as they do here; list the origins to allow credentials");
        }
        p.out.settings.cors = Some(c);
    }
    p.check_combinations();
    p.out
}

struct Parser<'a> {
    all: Option<&'a BTreeMap<String, String>>,
    namespace: &'a str,
    out: Parsed,
}

impl Parser<'_> {
    fn note(&mut self, key: &str, verdict: Verdict, message: impl Into<String>) {
        self.out.findings.push(Finding {
            annotation: key.to_owned(),
            verdict,
            message: message.into(),
        });
    }

    fn same(&mut self, key: &str, message: impl Into<String>) {
        self.note(key, Verdict::Same, message);
    }

    fn malformed(&mut self, key: &str, message: impl Into<String>) {
        self.note(key, Verdict::Malformed, message);
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.all?.get(&format!("{PREFIX}{name}")).map(|v| v.trim())
    }

    fn flag(&mut self, key: &str, value: &str) -> Option<bool> {
        let b = boolean(value);
        if b.is_none() {
            self.malformed(
                key,
                format!("{value:?} is not a boolean: use \"true\" or \"false\""),
            );
        }
        b
    }

    fn count(&mut self, key: &str, value: &str, min: u32, max: u32) -> Option<u32> {
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.malformed(
                    key,
                    format!("{value:?} is not a whole number from {min} to {max}"),
                );
                None
            }
        }
    }

    fn cidrs(&mut self, key: &str, value: &str) -> Option<Vec<String>> {
        let mut out = Vec::new();
        for part in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if part.parse::<snapshot::Cidr>().is_err() {
                self.malformed(key, format!("{part:?} is not an IP address or CIDR"));
                return None;
            }
            out.push(part.to_owned());
        }
        if out.is_empty() {
            self.malformed(key, "lists no address");
            return None;
        }
        Some(out)
    }

    /// Reads one annotation into the settings, with its finding.
    fn one(&mut self, key: &str, name: &str, value: &str) {
        let served = self.paths(key, name, value)
            || self.limits(key, name, value)
            || self.cors_annotation(key, name, value)
            || self.auth(key, name, value)
            || self.balancing(key, name, value);
        if !served {
            self.unserved(key, name);
        }
    }

    /// Paths, redirects, TLS redirects and the backend protocol. Whether `name` is one of them.
    fn paths(&mut self, key: &str, name: &str, value: &str) -> bool {
        let s = &mut self.out.settings;
        match name {
            "use-regex" => {
                if let Some(b) = self.flag(key, value) {
                    self.out.settings.use_regex |= b;
                    self.note(key, Verdict::Differs, "paths of this Ingress are case-insensitive regular expressions anchored at the start (ingress-nginx applies it to every Ingress of the host)");
                }
            }
            "rewrite-target" => {
                if value.is_empty() || !(value.starts_with('/') || value.starts_with('$')) {
                    self.malformed(key, format!("{value:?} is not a path (it must start with '/' or a capture such as $1)"));
                } else if value.contains(['?', '#']) {
                    self.malformed(
                        key,
                        format!("{value:?}: a query or fragment in the target is not supported"),
                    );
                } else {
                    s.rewrite_target = Some(value.to_owned());
                    s.use_regex = true;
                    self.same(key, "the whole path is replaced when the path regex matches; $1..$9 are its captures; the query is kept");
                }
            }
            "ssl-redirect" => {
                if let Some(b) = self.flag(key, value) {
                    self.out.settings.ssl_redirect = Some(b);
                    self.note(
                        key,
                        Verdict::Same,
                        "HTTP requests for the TLS hosts are redirected to HTTPS with 308",
                    );
                }
            }
            "force-ssl-redirect" => {
                if let Some(b) = self.flag(key, value) {
                    self.out.settings.force_ssl_redirect = b;
                    self.note(key, Verdict::Differs, "every host of the Ingress is redirected to HTTPS and served there with the default certificate unless spec.tls names one; X-Forwarded-Proto from a load balancer is not consulted");
                }
            }
            "backend-protocol" => match value.to_ascii_uppercase().as_str() {
                "HTTP" => self.protocol(key, BackendProtocol::HTTP),
                "HTTPS" => self.protocol(key, BackendProtocol::HTTPS),
                "GRPC" => self.protocol(key, BackendProtocol::GRPC),
                "GRPCS" => self.protocol(key, BackendProtocol::GRPCS),
                "H2C" => self.protocol(key, BackendProtocol::H2C),
                "AUTO_HTTP" | "FCGI" => self.note(
                    key,
                    Verdict::Refused,
                    format!("{value} backends are not supported; the Ingress is not served"),
                ),
                _ => self.malformed(
                    key,
                    format!(
                        "{value:?} is not a backend protocol: use HTTP, HTTPS, GRPC, GRPCS or H2C"
                    ),
                ),
            },
            "permanent-redirect" | "temporal-redirect" => {
                let code_key = if name == "permanent-redirect" {
                    "permanent-redirect-code"
                } else {
                    "temporal-redirect-code"
                };
                let default = if name == "permanent-redirect" {
                    301
                } else {
                    302
                };
                let status = match self.get(code_key).map(str::parse::<u16>) {
                    None => Some(default),
                    Some(Ok(c)) if [301, 302, 303, 307, 308].contains(&c) => Some(c),
                    Some(_) => None,
                };
                match (parse_redirect(value), status) {
                    (Ok(mut r), Some(status)) => {
                        r.status = status;
                        self.out.settings.redirect = Some(r);
                        self.note(key, Verdict::Same, format!("every request is answered with {status} to this URL (with $request_uri: the request's path and query follow the host)"));
                    }
                    (Err(msg), _) => self.malformed(key, msg),
                    (_, None) => {
                        self.malformed(key, format!("{code_key} must be 301, 302, 303, 307 or 308"))
                    }
                }
            }
            "permanent-redirect-code" | "temporal-redirect-code" => {
                if matches!(value.parse::<u16>(), Ok(301 | 302 | 303 | 307 | 308)) {
                    self.same(key, "status of the redirect");
                } else {
                    self.malformed(key, format!("{value:?} is not 301, 302, 303, 307 or 308"));
                }
            }
            "app-root" => {
                if value.starts_with('/')
                    && value.len() > 1
                    && crate::values::normalize_rule_path(value).is_ok()
                {
                    self.out.settings.app_root = Some(value.to_owned());
                    self.same(key, "requests for / are answered with 302 to this path");
                } else {
                    self.malformed(key, format!("{value:?} is not a path other than /"));
                }
            }
            _ => return false,
        }
        true
    }

    /// Body size, timeouts, rate and connection limits, address lists. Whether `name` is one of them.
    fn limits(&mut self, key: &str, name: &str, value: &str) -> bool {
        let s = &mut self.out.settings;
        match name {
            "proxy-body-size" => match parse_size(value) {
                Some(n) => {
                    s.max_body_bytes = Some(n);
                    self.same(key, if n == 0 { "no limit on the request body".to_owned() } else { format!("bodies over {n} bytes are refused with 413") });
                }
                None => self.malformed(key, format!("{value:?} is not a size: use a number of bytes with an optional k, m or g suffix")),
            },
            "proxy-connect-timeout" | "proxy-send-timeout" => {
                if self.seconds(key, value).is_some() {
                    let what = if name == "proxy-connect-timeout" { "connections to backends time out after --connect-timeout (default 5 s, as in ingress-nginx), a gateway-wide setting" } else { "sending to a backend is bounded by the request timeout instead" };
                    self.note(key, Verdict::Differs, what);
                }
            }
            "proxy-read-timeout" => {
                if let Some(n) = self.seconds(key, value) {
                    self.out.settings.read_timeout = Some(n);
                    self.note(key, Verdict::Differs, format!("a backend must start its response within {n} s (504 otherwise); nginx also bounds each pause while the body streams"));
                }
            }
            "limit-rps" | "limit-rpm" => {
                if let Some(n) = self.count(key, value, 1, 1_000_000) {
                    if name == "limit-rps" {
                        self.out.settings.limit_rps = Some(n);
                    } else {
                        self.out.settings.limit_rpm = Some(n);
                    }
                    self.note(key, Verdict::Differs, "per client address, with nginx's limit_req burst semantics (burst = rate x limit-burst-multiplier, nodelay); rejections are 429 with Retry-After, where ingress-nginx answers 503 by default");
                }
            }
            "limit-connections" => {
                if let Some(n) = self.count(key, value, 1, 1_000_000) {
                    self.out.settings.limit_connections = Some(n);
                    self.note(key, Verdict::Differs, "counts each client address's requests in flight per path (nginx counts its connections with a request in progress, per Ingress); the excess is answered with 429 where ingress-nginx answers 503");
                }
            }
            "limit-burst-multiplier" => {
                if let Some(n) = self.count(key, value, 1, 1000) {
                    self.out.settings.burst_multiplier = n;
                    self.same(key, "burst = rate x multiplier");
                }
            }
            "whitelist-source-range" | "allowlist-source-range" => {
                if let Some(list) = self.cidrs(key, value) {
                    self.out.settings.allow.extend(list);
                    self.same(key, "other client addresses are refused with 403");
                }
            }
            "denylist-source-range" => {
                if let Some(list) = self.cidrs(key, value) {
                    self.out.settings.deny.extend(list);
                    self.same(key, "these client addresses are refused with 403");
                }
            }
            _ => return false,
        }
        true
    }

    /// CORS. Whether `name` is one of them.
    fn cors_annotation(&mut self, key: &str, name: &str, value: &str) -> bool {
        match name {
            "enable-cors" => {
                if boolean(value).is_none() {
                    self.malformed(
                        key,
                        format!("{value:?} is not a boolean: use \"true\" or \"false\""),
                    );
                } else {
                    self.note(key, Verdict::Same, "preflights are answered by the gateway; the cors-* annotations and their ingress-nginx defaults apply");
                }
            }
            "cors-allow-origin"
            | "cors-allow-methods"
            | "cors-allow-headers"
            | "cors-expose-headers"
            | "cors-allow-credentials"
            | "cors-max-age" => {
                let ok = match name {
                    "cors-allow-credentials" => boolean(value).is_some(),
                    "cors-max-age" => value.parse::<u32>().is_ok(),
                    "cors-allow-origin" => value
                        .split(',')
                        .map(str::trim)
                        .all(|o| o == "*" || o.starts_with("http://") || o.starts_with("https://")),
                    _ => value.split(',').map(str::trim).all(|t| {
                        !t.is_empty()
                            && t.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    }),
                };
                if !ok {
                    self.malformed(key, format!("{value:?} is not a valid value"));
                } else if self.get("enable-cors") == Some("true") {
                    self.same(key, "applied with enable-cors");
                } else {
                    self.note(
                        key,
                        Verdict::Differs,
                        "ignored: enable-cors is not \"true\" (as in ingress-nginx)",
                    );
                }
            }
            _ => return false,
        }
        true
    }

    /// Authentication: basic and external. Whether `name` is one of them.
    fn auth(&mut self, key: &str, name: &str, value: &str) -> bool {
        match name {
            "auth-type" => match value {
                "basic" => {
                    if self.get("auth-secret").is_none() {
                        self.malformed(key, "auth-type basic needs auth-secret");
                    } else {
                        self.same(key, "401 with WWW-Authenticate: Basic unless the credentials match the htpasswd file (bcrypt entries only)");
                    }
                }
                "digest" => self.note(key, Verdict::Refused, "digest authentication is not supported; the Ingress is not served"),
                _ => self.malformed(key, format!("{value:?} is not an auth type: use basic")),
            },
            "auth-secret" => {
                let secret = match value.split_once('/') {
                    None => Some(value),
                    Some((ns, name)) if ns == self.namespace => Some(name),
                    Some(_) => None,
                };
                match secret {
                    Some(name) if !name.is_empty() => {
                        if self.get("auth-type") == Some("basic") {
                            let realm = self.get("auth-realm").map(str::to_owned);
                            self.out.settings.basic_auth = Some(BasicAuth {
                                secret_ref: SecretRef { name: name.to_owned() },
                                realm,
                                forward_user_header: None,
                            });
                            self.same(key, "the Secret's `auth` key is an htpasswd file");
                        } else {
                            self.note(key, Verdict::Differs, "ignored: auth-type is not basic");
                        }
                    }
                    _ => self.malformed(key, format!("{value:?}: the Secret must be in the Ingress's namespace {}", self.namespace)),
                }
            }
            "auth-secret-type" => match value {
                "auth-file" => self.same(key, "the Secret's `auth` key is an htpasswd file"),
                _ => self.note(key, Verdict::Refused, format!("{value:?} Secrets are not supported (use auth-file: one `auth` key with htpasswd lines); the Ingress is not served")),
            },
            "auth-realm" => self.same(key, "the realm of WWW-Authenticate"),
            "auth-url" => {
                if (value.starts_with("http://") || value.starts_with("https://"))
                    && value.parse::<http::Uri>().is_ok()
                    && !value.contains('$')
                {
                    let upstream_headers = self
                        .get("auth-response-headers")
                        .map(|v| v.split(',').map(|h| h.trim().to_owned()).filter(|h| !h.is_empty()).collect())
                        .unwrap_or_default();
                    self.out.settings.external_auth = Some(ExternalAuth {
                        url: value.to_owned(),
                        request_headers: Vec::new(),
                        upstream_headers,
                        timeout: None,
                    });
                    self.note(key, Verdict::Differs, "a 2xx answer lets the request through; any other answer goes back to the client. The service receives Authorization and Cookie (not every header) and X-Forwarded-Uri/-Method/-Host");
                } else {
                    self.malformed(key, format!("{value:?} is not an http:// or https:// URL without nginx variables"));
                }
            }
            "auth-response-headers" => {
                if value.split(',').map(str::trim).all(|h| http::HeaderName::try_from(h).is_ok()) {
                    self.same(key, "copied from the auth service's 2xx answer into the upstream request");
                } else {
                    self.malformed(key, format!("{value:?} is not a list of header names"));
                }
            }
            "auth-method" => {
                if value.eq_ignore_ascii_case("GET") {
                    self.same(key, "the auth service is asked with GET");
                } else {
                    self.note(key, Verdict::Differs, "the auth service is always asked with GET");
                }
            }
            _ => return false,
        }
        true
    }

    /// Canaries, session affinity and load balancing. Whether `name` is one of them.
    fn balancing(&mut self, key: &str, name: &str, value: &str) -> bool {
        match name {
            "canary" => {
                if let Some(b) = self.flag(key, value) {
                    if b {
                        self.out.settings.canary = Some(self.canary());
                    }
                    self.same(
                        key,
                        "merged into the Ingress that serves the same host and path",
                    );
                }
            }
            "canary-weight" | "canary-weight-total" => {
                let (min, max) = if name == "canary-weight" {
                    (0, 1_000_000)
                } else {
                    (1, 1_000_000)
                };
                if self.count(key, value, min, max).is_some() {
                    self.same(key, "share of requests sent to the canary");
                }
            }
            "canary-by-header" | "canary-by-header-value" | "canary-by-cookie" => {
                let valid = match name {
                    "canary-by-header-value" => {
                        http::HeaderValue::from_str(value).is_ok() && !value.is_empty()
                    }
                    "canary-by-cookie" => {
                        !value.is_empty()
                            && value
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                    }
                    _ => http::HeaderName::try_from(value).is_ok(),
                };
                if valid {
                    self.same(
                        key,
                        "takes precedence as in ingress-nginx: header, then cookie, then weight",
                    );
                } else {
                    self.malformed(key, format!("{value:?} is not valid here"));
                }
            }
            "canary-by-header-pattern" => match snapshot::Pattern::new(value) {
                Ok(_) => self.same(
                    key,
                    "the header value must match the regular expression as a whole (RE2 syntax)",
                ),
                Err(e) => self.malformed(key, e.to_string()),
            },
            "affinity" => match value {
                "cookie" => {
                    let name = self
                        .get("session-cookie-name")
                        .unwrap_or("INGRESSCOOKIE")
                        .to_owned();
                    let ttl = self
                        .get("session-cookie-max-age")
                        .or_else(|| self.get("session-cookie-expires"))
                        .and_then(|v| v.parse::<u32>().ok())
                        .map(|n| format!("{n}s"));
                    self.out.settings.affinity = Some(SessionAffinity {
                        cookie_name: Some(name),
                        ttl,
                    });
                    self.note(key, Verdict::Differs, "a cookie pins each client to an endpoint; its value is Gatehouse's own, not nginx's hash");
                }
                _ => self.malformed(
                    key,
                    format!("{value:?} is not an affinity type: use cookie"),
                ),
            },
            "session-cookie-name" => {
                if !value.is_empty()
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                {
                    self.same(key, "name of the affinity cookie");
                } else {
                    self.malformed(key, format!("{value:?} is not a cookie name"));
                }
            }
            "session-cookie-max-age" | "session-cookie-expires" => {
                if self.count(key, value, 1, u32::MAX).is_some() {
                    self.same(key, "lifetime of the affinity cookie, seconds");
                }
            }
            "session-cookie-path" | "affinity-mode" | "affinity-canary-behavior" => {
                self.note(
                    key,
                    Verdict::Differs,
                    "the affinity cookie's path is the route's; affinity is persistent",
                );
            }
            "upstream-hash-by" => {
                let hash = if value == "$remote_addr" || value == "$binary_remote_addr" {
                    Some(ConsistentHash {
                        source_ip: Some(true),
                        ..ConsistentHash::default()
                    })
                } else if let Some(h) = value.strip_prefix("$http_") {
                    Some(ConsistentHash {
                        header: Some(h.replace('_', "-")),
                        ..ConsistentHash::default()
                    })
                } else {
                    value.strip_prefix("$cookie_").map(|c| ConsistentHash {
                        cookie: Some(c.to_owned()),
                        ..ConsistentHash::default()
                    })
                };
                match hash {
                    Some(h) if h.header.as_deref().is_none_or(|n| http::HeaderName::try_from(n).is_ok()) => {
                        self.out.settings.hash_by = Some(h);
                        self.note(key, Verdict::Differs, "consistent hashing on the same key; the ring is Gatehouse's, so keys map to different endpoints than under nginx");
                    }
                    _ => self.note(key, Verdict::Unsupported, format!("{value:?}: only $remote_addr, $http_<header> and $cookie_<name> can be hashed; round robin is used")),
                }
            }
            "upstream-hash-by-subset" | "upstream-hash-by-subset-size" => {
                self.note(
                    key,
                    Verdict::Unsupported,
                    "subset hashing is not implemented",
                );
            }
            "load-balance" => match value {
                "round_robin" => self.lb(key, LoadBalancerPolicy::RoundRobin),
                "ewma" => self.lb(key, LoadBalancerPolicy::PeakEwma),
                _ => self.note(
                    key,
                    Verdict::Unsupported,
                    format!("{value:?} is not supported (round_robin, ewma); round robin is used"),
                ),
            },
            _ => return false,
        }
        true
    }

    /// An annotation not served as a setting: why, and whether the
    /// Ingress is still served.
    fn unserved(&mut self, key: &str, name: &str) {
        if let Some((_, why)) = NO_EFFECT.iter().find(|(n, _)| *n == name) {
            self.note(key, Verdict::Differs, format!("no effect: {why}"));
        } else if let Some((_, why)) = UNSUPPORTED.iter().find(|(n, _)| *n == name) {
            self.note(key, Verdict::Unsupported, format!("not applied: {why}"));
        } else if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == name) {
            self.note(
                key,
                Verdict::Refused,
                format!("{why}; the Ingress is not served"),
            );
        } else if name.starts_with("auth-") {
            self.note(
                key,
                Verdict::Refused,
                "an authentication setting Gatehouse does not implement; the Ingress is not served",
            );
        } else {
            self.note(
                key,
                Verdict::Unknown,
                "not an annotation Gatehouse understands; ignored",
            );
        }
    }

    fn protocol(&mut self, key: &str, p: BackendProtocol) {
        self.out.settings.backend_protocol = Some(p);
        if matches!(p, BackendProtocol::HTTPS | BackendProtocol::GRPCS) {
            self.note(key, Verdict::Differs, "the backend's certificate is verified (system CAs, name <service>.<namespace>.svc), where ingress-nginx does not verify by default: a self-signed backend answers 502 until an ApiRoute backendTls names its CA");
        } else {
            self.same(key, "backends are spoken to this way");
        }
    }

    fn lb(&mut self, key: &str, p: LoadBalancerPolicy) {
        self.out.settings.load_balance = Some(p);
        self.same(key, "endpoint selection policy");
    }

    fn seconds(&mut self, key: &str, value: &str) -> Option<u32> {
        let digits = value.strip_suffix('s').unwrap_or(value);
        self.count(key, digits, 1, 86_400)
    }

    fn canary(&self) -> Canary {
        Canary {
            weight: self
                .get("canary-weight")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            weight_total: self
                .get("canary-weight-total")
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(100),
            header: self.get("canary-by-header").map(str::to_owned),
            header_value: self.get("canary-by-header-value").map(str::to_owned),
            header_pattern: self.get("canary-by-header-pattern").map(str::to_owned),
            cookie: self.get("canary-by-cookie").map(str::to_owned),
        }
    }

    /// CORS with ingress-nginx's defaults for what is not set.
    fn cors(&self) -> Cors {
        let list = |name: &str, default: &str| -> Vec<String> {
            self.get(name)
                .unwrap_or(default)
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        };
        Cors {
            allow_origins: list("cors-allow-origin", "*"),
            allow_methods: list(
                "cors-allow-methods",
                "GET, PUT, POST, DELETE, PATCH, OPTIONS",
            ),
            allow_headers: list(
                "cors-allow-headers",
                "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,Cache-Control,Content-Type,Range,Authorization",
            ),
            expose_headers: list("cors-expose-headers", ""),
            allow_credentials: self.get("cors-allow-credentials") != Some("false"),
            max_age_seconds: Some(
                self.get("cors-max-age")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1_728_000),
            ),
        }
    }

    fn check_combinations(&mut self) {
        if self.out.settings.redirect.is_some() && self.out.settings.rewrite_target.is_some() {
            let key = format!("{PREFIX}rewrite-target");
            self.note(
                &key,
                Verdict::Differs,
                "no effect: the Ingress answers every request with a redirect",
            );
        }
        if self
            .out
            .settings
            .canary
            .as_ref()
            .is_some_and(|c| c.header.is_none() && c.header_value.is_some())
        {
            let key = format!("{PREFIX}canary-by-header-value");
            self.note(&key, Verdict::Differs, "no effect without canary-by-header");
        }
    }
}

/// `"true"` or `"false"`, as ingress-nginx spells booleans.
fn boolean(value: &str) -> Option<bool> {
    match value.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// An nginx size: bytes, or a number with a `k`, `m` or `g` suffix (any
/// case); `0` means no limit.
pub fn parse_size(value: &str) -> Option<u64> {
    let (digits, unit) = match value.as_bytes().last()? {
        b'k' | b'K' => (&value[..value.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&value[..value.len() - 1], 1 << 20),
        b'g' | b'G' => (&value[..value.len() - 1], 1 << 30),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// A redirect target: an absolute `http(s)://` URL, optionally ending in
/// `$request_uri` (the request's path and query follow the host).
fn parse_redirect(value: &str) -> Result<UrlRedirect, String> {
    let (base, keep_path) = match value.strip_suffix("$request_uri") {
        Some(b) => (b, true),
        None => (value, false),
    };
    if base.contains('$') {
        return Err(format!(
            "{value:?}: only $request_uri, at the end, is understood of nginx variables"
        ));
    }
    let uri: http::Uri = base
        .parse()
        .map_err(|_| format!("{value:?} is not an absolute URL"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{value:?} is not an http:// or https:// URL")),
    };
    let host = uri
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{value:?} names no host"))?;
    if uri.query().is_some() {
        return Err(format!(
            "{value:?}: a query in the redirect target is not supported"
        ));
    }
    let path = uri.path();
    if keep_path && !path.is_empty() && path != "/" {
        return Err(format!(
            "{value:?}: $request_uri must follow the host directly"
        ));
    }
    Ok(UrlRedirect {
        https,
        host: Some(host.to_ascii_lowercase()),
        port: uri.port_u16(),
        path: if keep_path {
            None
        } else if path.is_empty() {
            Some("/".to_owned())
        } else {
            Some(path.to_owned())
        },
        status: 301,
    })
}
