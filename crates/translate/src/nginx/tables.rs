//! The annotations that are not served as settings, each with why: no
//! effect in Gatehouse, unsupported, or refused.

/// Annotations known to be about nginx's own buffering or logging: they
/// have no counterpart because Gatehouse streams and logs by itself.
pub(super) const NO_EFFECT: &[(&str, &str)] = &[
    (
        "ssl-ciphers",
        "Gatehouse offers modern cipher suites only (TLS 1.2 and 1.3)",
    ),
    (
        "ssl-prefer-server-ciphers",
        "Gatehouse offers modern cipher suites only (TLS 1.2 and 1.3)",
    ),
    (
        "preserve-trailing-slash",
        "HTTPS redirects keep the path as it was requested",
    ),
    (
        "connection-proxy-header",
        "Gatehouse manages upstream connections itself",
    ),
    (
        "upstream-keepalive-connections",
        "upstream connections are pooled per endpoint automatically",
    ),
    (
        "upstream-keepalive-timeout",
        "upstream connections are pooled per endpoint automatically",
    ),
    (
        "upstream-keepalive-requests",
        "upstream connections are pooled per endpoint automatically",
    ),
    (
        "enable-opentracing",
        "tracing is set for the whole gateway (--otlp-endpoint)",
    ),
    (
        "enable-rewrite-log",
        "rewrites show in the access log's upstream path",
    ),
    ("http2-push-preload", "HTTP/2 server push is not used"),
    (
        "proxy-buffering",
        "Gatehouse streams responses; there is no buffering to switch",
    ),
    (
        "proxy-buffer-size",
        "Gatehouse streams responses; there are no proxy buffers",
    ),
    (
        "proxy-buffers-number",
        "Gatehouse streams responses; there are no proxy buffers",
    ),
    (
        "proxy-max-temp-file-size",
        "Gatehouse never spools responses to disk",
    ),
    (
        "proxy-request-buffering",
        "Gatehouse streams request bodies (except where a body match or validation needs them)",
    ),
    (
        "client-body-buffer-size",
        "Gatehouse never spools request bodies to disk",
    ),
    (
        "proxy-http-version",
        "Gatehouse speaks HTTP/1.1 to HTTP backends (backend-protocol chooses others)",
    ),
    (
        "enable-access-log",
        "access logging is set for the whole gateway (--access-log)",
    ),
    (
        "proxy-next-upstream",
        "retries are configured on ApiRoutes (spec.rules[].retry)",
    ),
    (
        "proxy-next-upstream-tries",
        "retries are configured on ApiRoutes (spec.rules[].retry)",
    ),
    (
        "proxy-next-upstream-timeout",
        "retries are configured on ApiRoutes (spec.rules[].retry)",
    ),
    (
        "service-upstream",
        "Gatehouse balances over the Service's endpoints itself",
    ),
];

/// Known annotations Gatehouse does not implement; the Ingress is served
/// without them.
pub(super) const UNSUPPORTED: &[(&str, &str)] = &[
    (
        "ssl-passthrough",
        "TLS passthrough is not implemented: Gatehouse terminates TLS for the host",
    ),
    (
        "proxy-ssl-secret",
        "set TLS to backends with ApiRoute backendTls",
    ),
    (
        "proxy-ssl-verify",
        "set TLS to backends with ApiRoute backendTls (Gatehouse verifies by default)",
    ),
    (
        "proxy-ssl-name",
        "set TLS to backends with ApiRoute backendTls.serverName",
    ),
    (
        "proxy-ssl-server-name",
        "set TLS to backends with ApiRoute backendTls.serverName",
    ),
    (
        "proxy-ssl-protocols",
        "set TLS to backends with ApiRoute backendTls",
    ),
    (
        "proxy-ssl-ciphers",
        "set TLS to backends with ApiRoute backendTls",
    ),
    (
        "proxy-redirect-from",
        "Location headers of backends are passed as they are",
    ),
    (
        "proxy-redirect-to",
        "Location headers of backends are passed as they are",
    ),
    (
        "proxy-cookie-domain",
        "Set-Cookie headers of backends are passed as they are",
    ),
    (
        "proxy-cookie-path",
        "Set-Cookie headers of backends are passed as they are",
    ),
    (
        "from-to-www-redirect",
        "add a RequestRedirect rule for the other host",
    ),
    (
        "custom-headers",
        "set the headers with an ApiRoute ResponseHeaderModifier filter",
    ),
    (
        "enable-global-auth",
        "there is no global external auth; set it per route",
    ),
    (
        "configuration-snippet",
        "raw nginx configuration is never executed",
    ),
    (
        "server-snippet",
        "raw nginx configuration is never executed",
    ),
    (
        "stream-snippet",
        "raw nginx configuration is never executed",
    ),
    (
        "modsecurity-snippet",
        "raw nginx configuration is never executed",
    ),
    (
        "enable-modsecurity",
        "no web application firewall is built in",
    ),
    (
        "enable-owasp-core-rules",
        "no web application firewall is built in",
    ),
    (
        "limit-rate",
        "response bandwidth limits are not implemented",
    ),
    (
        "limit-rate-after",
        "response bandwidth limits are not implemented",
    ),
    (
        "limit-whitelist",
        "rate-limit exemptions by address are not implemented",
    ),
    (
        "limit-allowlist",
        "rate-limit exemptions by address are not implemented",
    ),
    (
        "server-alias",
        "list the extra hosts as rules of the Ingress",
    ),
    (
        "upstream-vhost",
        "set the upstream Host with an ApiRoute URLRewrite filter",
    ),
    (
        "x-forwarded-prefix",
        "set the header with an ApiRoute RequestHeaderModifier filter",
    ),
    (
        "custom-http-errors",
        "custom error pages are not implemented",
    ),
    ("default-backend", "use spec.defaultBackend of the Ingress"),
    ("mirror-target", "use an ApiRoute RequestMirror filter"),
    ("mirror-uri", "use an ApiRoute RequestMirror filter"),
    (
        "enable-opentelemetry",
        "tracing is set for the whole gateway (--otlp-endpoint)",
    ),
    (
        "session-cookie-samesite",
        "the affinity cookie is always SameSite=Lax",
    ),
    (
        "session-cookie-secure",
        "the affinity cookie is Secure on HTTPS requests",
    ),
    (
        "session-cookie-change-on-failure",
        "an affinity cookie for a failed endpoint is always re-issued",
    ),
    (
        "auth-signin",
        "no sign-in redirect: the auth service's own answer goes to the client",
    ),
    ("auth-cache-key", "external auth answers are not cached"),
    (
        "auth-cache-duration",
        "external auth answers are not cached",
    ),
    (
        "auth-request-redirect",
        "the auth service receives X-Forwarded-Uri instead",
    ),
    (
        "auth-keepalive",
        "connections to the auth service are always kept alive",
    ),
];

/// Known annotations that guard access and are not implemented: serving
/// the Ingress without them would open what they close.
pub(super) const REFUSED: &[(&str, &str)] = &[
    (
        "auth-snippet",
        "raw nginx configuration is never executed, and it guards access",
    ),
    (
        "auth-tls-secret",
        "client certificates are verified per host by ApiRoute spec.tls.clientValidation",
    ),
    (
        "auth-tls-verify-client",
        "client certificates are verified per host by ApiRoute spec.tls.clientValidation",
    ),
    (
        "auth-tls-verify-depth",
        "client certificates are verified per host by ApiRoute spec.tls.clientValidation",
    ),
    (
        "auth-tls-pass-certificate-to-upstream",
        "client certificates are verified per host by ApiRoute spec.tls.clientValidation",
    ),
    (
        "satisfy",
        "Gatehouse requires every configured check to pass",
    ),
    (
        "global-rate-limit",
        "use a RateLimitPolicy with scope Global",
    ),
    (
        "global-rate-limit-window",
        "use a RateLimitPolicy with scope Global",
    ),
];
