//! The request pipeline.
//!
//! Phases, in order (see `docs/request-phases.md`):
//! 1. **load** the live configuration (one atomic load, kept until the
//!    response is sent);
//! 2. **normalize** host and path, and work out the client address;
//! 3. **match** host and route (reading the body, within a limit, only
//!    when the deciding route has body conditions);
//! 4. **answer** redirects and fixed responses;
//! 5. **rewrite** the request: hop-by-hop headers out, header filters,
//!    URL rewrite, forwarding headers in, gRPC-Web into gRPC;
//! 6. **forward**: pick a backend by weight and an endpoint by the route's
//!    balancer, send, and retry within the route's policy and budget;
//!    mirrors start on the first attempt; upgrades become tunnels;
//! 7. **respond**: hop-by-hop headers out, response header filter,
//!    affinity cookie, gRPC-Web and compression, streamed back. Failures go
//!    through [`crate::respond`].

use std::borrow::Cow;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use snapshot::{
    Action, BackendTarget, Body, Forward, HashKey, LoadBalance, Lookup, RateLimitKey, RedirectFrom,
    RequestInfo, Route, Scheme, normalize_path,
};

use crate::body::{ClientBody, FromClient, FromUpstream, ProxyBody, TeeBody, UpstreamBody};
use crate::cache::CacheCounters;
use crate::cache::ResponseCache;
use crate::clientinfo::{self, Cidr};
use crate::deadline::RequestClock;
use crate::grpc::{self, GrpcKind};
use crate::headers::{Forwarding, strip_hop_by_hop};
use crate::lb::{EndpointState, InFlight, Outcome, stable_hash};
use crate::observe::Observation;
use crate::ratelimit::RateLimitCounters;
use crate::ratelimit::RateLimiter;
use crate::respond::ProxyError;
use telemetry::SpanKind;
use telemetry::trace::TRACEPARENT;

/// Bytes of responses the cache holds unless configured.
const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// Most keys held per local rate limit before new keys share a budget.
const DEFAULT_RATE_LIMIT_KEYS: usize = 100_000;
use crate::retry;
use crate::state::{Active, Gateway};
use crate::upstream::{Transport, UpstreamConfig, UpstreamError, Upstreams};

/// Settings of the request pipeline.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Time limit for the upstream response headers when the route sets
    /// none.
    pub default_timeout: Duration,
    /// Time limit for establishing an upstream connection.
    pub connect_timeout: Duration,
    /// How long idle upstream connections are kept for reuse.
    pub upstream_idle_timeout: Duration,
    /// Most idle connections kept per upstream endpoint.
    pub upstream_max_idle: usize,
    /// Most body bytes read to evaluate body conditions; a larger body is
    /// answered with 413.
    pub max_body_match_bytes: usize,
    /// Largest request body for routes that set no limit; `None`: no limit.
    pub max_request_body_bytes: Option<u64>,
    /// Peers allowed to name the client in `X-Forwarded-For`.
    pub trusted_proxies: Vec<Cidr>,
    /// Idle limit of upgraded connections for routes that set none.
    pub tunnel_idle_timeout: Duration,
    /// Largest request body kept in memory so a retry can send it again.
    pub retry_buffer_bytes: usize,
    /// Port in the `Location` of HTTP-to-HTTPS redirects (443 is left
    /// out of the URL).
    pub https_redirect_port: u16,
    /// Data-plane worker threads with a runtime each (see
    /// [`crate::set_worker`]): the upstream pools keep a share per
    /// worker and one for every other thread. 0 when one runtime serves
    /// everything, however many threads it has.
    pub workers: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            default_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            upstream_idle_timeout: Duration::from_secs(90),
            upstream_max_idle: 256,
            max_body_match_bytes: 64 * 1024,
            max_request_body_bytes: None,
            trusted_proxies: Vec::new(),
            tunnel_idle_timeout: Duration::from_secs(3600),
            retry_buffer_bytes: 64 * 1024,
            https_redirect_port: 443,
            workers: 0,
        }
    }
}

/// Where a request came in.
#[derive(Clone, Debug)]
pub struct Connection {
    /// The client's address (from the PROXY header when one was sent).
    pub peer: SocketAddr,
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The peer's address as a header value, made once per connection.
    peer_value: HeaderValue,
    /// What the TLS handshake settled, on HTTPS connections.
    pub(crate) tls: Option<TlsInfo>,
}

/// What the TLS handshake of a connection settled.
#[derive(Clone, Debug)]
pub(crate) struct TlsInfo {
    /// The TLS host entry the certificate was chosen for (`None`: the
    /// default certificate).
    pub(crate) host: Option<snapshot::HostPattern>,
    /// Subject of the verified client certificate.
    pub(crate) client_subject: Option<HeaderValue>,
}

impl Connection {
    /// Describes a connection from `peer` on a listener.
    pub fn new(peer: SocketAddr, scheme: Scheme) -> Self {
        let peer_value = HeaderValue::try_from(peer.ip().to_canonical().to_string())
            .expect("an IP address is a valid header value");
        Self {
            peer,
            scheme,
            peer_value,
            tls: None,
        }
    }

    pub(crate) fn with_tls(mut self, info: TlsInfo) -> Self {
        self.tls = Some(info);
        self
    }
}

/// The proxy: the live configuration plus the upstream connections.
#[derive(Debug)]
pub struct Proxy {
    gateway: Arc<Gateway>,
    upstreams: Arc<Upstreams>,
    config: ProxyConfig,
    rate_limiter: Arc<RateLimiter>,
    in_flight_per_client: Arc<crate::ratelimit::InFlightPerClient>,
    basic_cache: Arc<crate::policy::BasicCache>,
    auth_client: crate::policy::AuthClient,
    cache: Arc<ResponseCache>,
    jwks: crate::policy::JwksCache,
    validators: crate::validate::Validators,
    telemetry: Arc<telemetry::Telemetry>,
}

/// What the response phase adds whatever the outcome.
struct Extras<'a> {
    /// What the log phase records; on the heap from the start, so handing
    /// it to the response body at the end moves a pointer, not the record.
    obs: Box<Observation>,
    hsts: Option<HeaderValue>,
    /// The capacity and decision of the rate limit to report.
    rate_limit: Option<(u32, crate::ratelimit::Decision)>,
    /// CORS policy and the request's `Origin`.
    cors: Option<(Arc<snapshot::CorsPolicy>, HeaderValue)>,
    /// The client's in-flight slot, held until the response body ends.
    slot: Option<crate::ratelimit::ClientSlot>,
    /// The connection's clock, which keeps the request's time limit.
    clock: Option<&'a RequestClock>,
}

/// Paths an ACME server fetches over plain HTTP to validate a domain;
/// never redirected to HTTPS.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// A 308 to the same URL over HTTPS.
fn https_redirect(host: &str, port: u16, original: Option<&PathAndQuery>) -> Response<ProxyBody> {
    let path = original.map_or("/", PathAndQuery::as_str);
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    let mut resp = Response::new(ProxyBody::full(Bytes::new()));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::try_from(location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp
}

/// The request body as the pipeline holds it.
enum ReqBody {
    Streamed(ClientBody),
    Buffered(Bytes),
}

/// The parts of the upstream request that every attempt repeats.
struct Head {
    method: Method,
    path_and_query: PathAndQuery,
    headers: HeaderMap,
    /// The headers the gateway sets, sent beside `headers`.
    forwarding: Forwarding,
}

impl Head {
    fn request(&self, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = Uri::from(self.path_and_query.clone());
        *req.headers_mut() = self.headers.clone();
        req
    }

    /// The request for the last attempt: the headers move instead of
    /// being copied.
    fn take_request(&mut self, body: UpstreamBody) -> Request<UpstreamBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = Uri::from(self.path_and_query.clone());
        *req.headers_mut() = std::mem::take(&mut self.headers);
        req
    }
}

/// A response from an endpoint, with what the response phase needs.
struct Answer {
    response: Response<FromUpstream>,
    endpoint: Arc<EndpointState>,
    in_flight: InFlight,
    /// Time to the response head.
    took: Duration,
}

impl Proxy {
    /// A proxy serving `gateway`'s live configuration.
    pub fn new(gateway: Arc<Gateway>, config: ProxyConfig) -> Self {
        let upstreams = Arc::new(Upstreams::new(&UpstreamConfig {
            connect_timeout: config.connect_timeout,
            idle_timeout: config.upstream_idle_timeout,
            max_idle: config.upstream_max_idle,
            workers: config.workers,
        }));
        gateway.set_upstreams(upstreams.clone());
        let telemetry = gateway.telemetry().clone();
        let cache = Arc::new(
            ResponseCache::new(DEFAULT_CACHE_BYTES)
                .with_counters(CacheCounters::registered(&telemetry.metrics)),
        );
        gateway.set_cache(cache.clone());
        let mut rate_limiter = RateLimiter::new(DEFAULT_RATE_LIMIT_KEYS);
        rate_limiter.counters = Arc::new(RateLimitCounters::registered(&telemetry.metrics));
        let rate_limiter = Arc::new(rate_limiter);
        Self {
            telemetry,
            gateway,
            upstreams,
            config,
            rate_limiter,
            in_flight_per_client: Arc::default(),
            basic_cache: Arc::default(),
            auth_client: crate::policy::auth_client(),
            jwks: crate::policy::JwksCache::new(),
            validators: crate::validate::Validators::default(),
            cache,
        }
    }

    /// Uses `cache` for responses (shared with the admin endpoints).
    #[must_use]
    pub fn with_cache(mut self, cache: ResponseCache) -> Self {
        let cache =
            Arc::new(cache.with_counters(CacheCounters::registered(&self.telemetry.metrics)));
        self.gateway.set_cache(cache.clone());
        self.cache = cache;
        self
    }

    /// Uses `limiter` for rate limits (for example one with Redis).
    #[must_use]
    pub fn with_rate_limiter(mut self, mut limiter: RateLimiter) -> Self {
        limiter.counters = Arc::new(RateLimitCounters::registered(&self.telemetry.metrics));
        self.rate_limiter = Arc::new(limiter);
        self
    }

    /// The live configuration this proxy serves.
    pub fn gateway(&self) -> &Arc<Gateway> {
        &self.gateway
    }

    /// The peers trusted to name the client.
    pub fn trusted_proxies(&self) -> &[Cidr] {
        &self.config.trusted_proxies
    }

    /// Handles one request, with a timer of its own for its time limit.
    pub(crate) fn handle<'a>(
        &'a self,
        req: Request<FromClient>,
        conn: &'a Connection,
    ) -> impl Future<Output = Response<ProxyBody>> + 'a {
        self.handle_on(req, conn, None)
    }

    /// Handles one request; with `clock`, its time limit is kept by the
    /// connection's timer (see `deadline.rs`).
    pub(crate) async fn handle_on(
        &self,
        req: Request<FromClient>,
        conn: &Connection,
        clock: Option<&RequestClock>,
    ) -> Response<ProxyBody> {
        let sent = Sent::of(req.headers());
        let grpc = grpc::kind(sent.content_type).map(|(k, s)| (k, s.to_owned()));
        let request_id = clientinfo::request_id(sent.request_id);
        let asked = sent.asked();
        let mut extras = Extras {
            obs: Box::new(Observation::start(
                &self.telemetry,
                req.method(),
                req.version(),
                sent.traceparent,
            )),
            hsts: None,
            rate_limit: None,
            cors: None,
            slot: None,
            clock,
        };
        // Inline, not boxed: the gateway's own HTTP/1.1 server builds this
        // future in place in its connection's state, so nothing is copied
        // or allocated per request for it (hyper's servers box it; see
        // `listener.rs`).
        let mut resp = match self
            .proxy(req, conn, asked, &request_id, grpc.as_ref(), &mut extras)
            .await
        {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(client = %conn.peer.ip(), request_id = ?request_id, error = %e, "request failed");
                if extras.obs.recording {
                    extras.obs.error = Some(e.to_string());
                }
                e.into_response(grpc.as_ref().map(|(k, s)| (*k, s.as_str())))
            }
        };
        if extras.obs.detailed() {
            extras.obs.request_id = Some(request_id.clone());
        }
        resp.headers_mut()
            .insert(clientinfo::request_id_header().clone(), request_id);
        if let Some(value) = extras.hsts {
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, value);
        }
        if let Some((cors, origin)) = &extras.cors {
            crate::policy::response_headers(cors, origin, resp.headers_mut());
        }
        if let Some((capacity, decision)) = extras.rate_limit {
            let h = resp.headers_mut();
            let secs = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
            h.insert(RATELIMIT_LIMIT.clone(), HeaderValue::from(capacity));
            h.insert(
                RATELIMIT_REMAINING.clone(),
                HeaderValue::from(decision.remaining),
            );
            h.insert(
                RATELIMIT_RESET.clone(),
                HeaderValue::from(secs(decision.reset)),
            );
            if !decision.allowed {
                h.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(secs(decision.retry_after).max(1)),
                );
            }
        }
        // Phase 8: log, once the body is done.
        let status = resp.status().as_u16();
        resp.body_mut().observe(extras.obs, status);
        if let Some(slot) = extras.slot {
            resp.body_mut().hold(slot);
        }
        resp
    }

    async fn proxy(
        &self,
        mut req: Request<FromClient>,
        conn: &Connection,
        asked: Asked,
        request_id: &HeaderValue,
        grpc: Option<&(GrpcKind, String)>,
        extras: &mut Extras<'_>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        // Phase 1: load. This Arc keeps the configuration this request
        // started with alive until it is done, whatever is published.
        let active = self.gateway.load();
        let on_upgrade = asked.upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, incoming) = req.into_parts();
        let (incoming, bytes_in) = ClientBody::new(incoming);
        extras.obs.bytes_in = bytes_in;

        // Phase 2: normalize.
        let trusted = &self.config.trusted_proxies;
        let peer_trusted = trusted.iter().any(|c| c.contains(conn.peer.ip()));
        let client_ip = clientinfo::client_ip(conn.peer.ip(), &parts.headers, trusted);
        extras.obs.client = Some(client_ip);
        let original = parts.uri.path_and_query().cloned();
        let raw_path = original.as_ref().map_or("/", PathAndQuery::path);
        if extras.obs.detailed() {
            raw_path.clone_into(&mut extras.obs.path);
        }
        let (host, host_port) = request_host(&parts, &asked).ok_or(ProxyError::BadHost)?;
        if extras.obs.detailed() {
            host.as_ref().clone_into(&mut extras.obs.host);
        }
        let path = normalize_path(raw_path).map_err(ProxyError::BadPath)?;
        let query = original.as_ref().and_then(PathAndQuery::query);

        // Phase 2a: ACME HTTP-01 answers, for any host, before routing.
        if let Some(token) = path.strip_prefix(ACME_CHALLENGE_PREFIX)
            && let Some(answer) = active.snapshot.acme.challenges.get(token)
        {
            let mut resp = Response::new(ProxyBody::full(Bytes::from(answer.to_string())));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            return Ok(resp);
        }
        let mut client_subject = None;
        // Phase 2b: transport security. Hosts with TLS settings get their
        // HTTP requests redirected, their HSTS header, and — when they
        // verify client certificates — only requests on a connection made
        // for them.
        if let Some(tls) = active.snapshot.tls.find(&host) {
            match conn.scheme {
                Scheme::Http if tls.redirect && !path.starts_with(ACME_CHALLENGE_PREFIX) => {
                    return Ok(https_redirect(
                        &host,
                        self.config.https_redirect_port,
                        original.as_ref(),
                    ));
                }
                Scheme::Http => {}
                Scheme::Https => {
                    if let Some(value) = &tls.hsts {
                        extras.hsts = HeaderValue::from_str(value).ok();
                    }
                    if let Some(validation) = &tls.client_validation {
                        let info = conn.tls.as_ref();
                        if info.and_then(|i| i.host.as_ref()) != Some(&tls.host) {
                            return Err(ProxyError::Misdirected);
                        }
                        if let Some(name) = &validation.forward_header {
                            client_subject =
                                Some((name.clone(), info.and_then(|i| i.client_subject.clone())));
                        }
                    }
                }
            }
        }

        // Phase 3: match.
        let mut body = ReqBody::Streamed(incoming);
        let mut info = RequestInfo {
            host: &host,
            path: &path,
            query,
            method: &parts.method,
            headers: &parts.headers,
            body: Body::Unread,
        };
        let mut lookup = active.snapshot.route(&info);
        let json;
        if let Lookup::NeedBody = lookup {
            let ReqBody::Streamed(incoming) = body else {
                unreachable!("the body is read at most once")
            };
            let bytes = Box::pin(read_limited(
                incoming,
                &parts.headers,
                self.config.max_body_match_bytes,
                ProxyError::BodyTooLarge,
            ))
            .await?;
            json = is_json(&parts.headers)
                .then(|| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .flatten();
            info.body = match &json {
                Some(v) => Body::Json(v),
                None => Body::NotJson,
            };
            lookup = active.snapshot.route(&info);
            body = ReqBody::Buffered(bytes);
        }
        let matched = match lookup {
            Lookup::Matched(m) => m,
            Lookup::NotFound => return Err(ProxyError::NoRoute),
            Lookup::NeedBody => unreachable!("the body was supplied"),
        };
        let route = matched.route;
        let route_state = active.routes[matched.entry.route.0].clone();
        extras.obs.route = Some((route.id.clone(), route_state.clone()));

        // Phase 3a: edge policies — addresses, CORS preflight, credentials.
        crate::policy::check_access(&route.policies, client_ip)?;
        if let Some(cors) = &route.policies.cors {
            if let Some(resp) = crate::policy::preflight(cors, &parts.method, &parts.headers) {
                return Ok(resp);
            }
            if let Some(origin) = parts.headers.get(header::ORIGIN) {
                extras.cors = Some((cors.clone(), origin.clone()));
            }
        }
        let policies = &route.policies;
        let checks_credentials =
            policies.api_keys.is_some() || policies.basic.is_some() || policies.jwt.is_some();
        let span_start = (extras.obs.recording && checks_credentials).then(SystemTime::now);
        // Futures of steps most requests skip are boxed: the request's
        // own future stays small, and it is moved several times per
        // request on its way into the connection task.
        let passed = if checks_credentials {
            Box::pin(crate::policy::authenticate(
                policies,
                &parts.headers,
                query,
                &host,
                &self.basic_cache,
                &self.jwks,
            ))
            .await
        } else {
            Ok(crate::policy::Passed::default())
        };
        if let Some(start) = span_start {
            let error = passed.as_ref().err().map(ToString::to_string);
            extras.obs.child_span(
                "authenticate",
                SpanKind::Internal,
                start,
                None,
                Vec::new(),
                error,
            );
        }
        let mut passed = passed?;
        let authorized_headers = match &route.policies.external {
            None => Vec::new(),
            Some(ext) => {
                let uri = original.as_ref().map_or("/", PathAndQuery::as_str);
                let start = extras.obs.recording.then(SystemTime::now);
                let answer = Box::pin(crate::policy::external(
                    ext,
                    &self.auth_client,
                    &parts.method,
                    &parts.headers,
                    &host,
                    uri,
                ))
                .await;
                if let Some(start) = start {
                    let error = answer.as_ref().err().map(ToString::to_string);
                    extras.obs.child_span(
                        "external authorization",
                        SpanKind::Internal,
                        start,
                        None,
                        Vec::new(),
                        error,
                    );
                }
                answer?
            }
        };

        // Phase 3b: rate limits, in the snapshot's order. An allowed
        // request is counted by every limit; the first that rejects
        // decides, and the request is counted by none.
        let client = if route.rate_limits.is_empty() {
            String::new()
        } else {
            client_ip.to_string()
        };
        let span_start =
            (extras.obs.recording && !route.rate_limits.is_empty()).then(SystemTime::now);
        let mut limited = None;
        for (i, limit) in route.rate_limits.iter().enumerate() {
            let key = rate_limit_key(&limit.key, &client, &parts.headers, &route.id, &passed);
            // Local limits answer at once; only a global one (a Redis
            // round trip) is awaited, boxed.
            let decision = match self.rate_limiter.check_local(limit, &key) {
                Some(decision) => decision,
                None => Box::pin(self.rate_limiter.check(limit, &key))
                    .await
                    .map_err(|()| ProxyError::RateLimitUnavailable)?,
            };
            // Report the tightest budget (or the one that rejects).
            if (!decision.allowed || limit.headers_on_success)
                && extras
                    .rate_limit
                    .is_none_or(|(_, d)| !decision.allowed || decision.remaining < d.remaining)
            {
                extras.rate_limit = Some((limit.capacity(), decision));
            }
            if !decision.allowed {
                tracing::debug!(limit = %limit.id, client = %client_ip, "rate limited");
                limited = Some(limit.id.clone());
                // A rejected request spends no budget: give back what the
                // limits before this one took.
                for earlier in &route.rate_limits[..i] {
                    let key =
                        rate_limit_key(&earlier.key, &client, &parts.headers, &route.id, &passed);
                    Box::pin(self.rate_limiter.refund(earlier, &key)).await;
                }
                break;
            }
        }
        if let Some(start) = span_start {
            let attributes = vec![
                (
                    "gatehouse.rate_limits",
                    (route.rate_limits.len() as i64).into(),
                ),
                ("gatehouse.rate_limited", limited.is_some().into()),
            ];
            let error = limited.as_ref().map(|id| format!("rejected by {id}"));
            extras.obs.child_span(
                "rate limit",
                SpanKind::Internal,
                start,
                None,
                attributes,
                error,
            );
        }
        if limited.is_some() {
            return Err(ProxyError::RateLimited);
        }
        if let Some(max) = route.traffic.max_in_flight_per_client {
            extras.slot = Some(
                self.in_flight_per_client
                    .acquire(&route.id, client_ip, max)
                    .ok_or(ProxyError::TooManyInFlight)?,
            );
        }

        // Phase 4: answer.
        let forward = match &route.action {
            Action::Forward(f) => f,
            Action::Respond(d) => {
                let mut resp = Response::new(ProxyBody::full(d.body.clone()));
                *resp.status_mut() =
                    StatusCode::from_u16(d.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                if let Ok(ct) = HeaderValue::from_str(&d.content_type) {
                    resp.headers_mut().insert(header::CONTENT_TYPE, ct);
                }
                return Ok(resp);
            }
            Action::Redirect(r) => {
                let from = RedirectFrom {
                    scheme: conn.scheme,
                    host: &host,
                    // A Host without a port names the scheme's default
                    // (RFC 9110 §7.2); the listener's own port is not
                    // what the client dialled behind a Service.
                    port: host_port.unwrap_or(conn.scheme.default_port()),
                    path: &path,
                    query,
                };
                let location = r.location(&from, &matched.entry.path);
                let mut resp = Response::new(ProxyBody::full(Bytes::new()));
                *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
                if let Ok(v) = HeaderValue::try_from(location) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                return Ok(resp);
            }
        };
        // Phase 4b: the response cache.
        let mut cache_fill = None;
        if let Some(policy) = &route.policies.cache
            && on_upgrade.is_none()
            && grpc.is_none()
            && crate::cache::cacheable_request(&parts.method, &parts.headers)
        {
            let key = ResponseCache::key(policy, &route.id, &host, &path, query, &parts.headers);
            let wait = self.timeout_for(route).unwrap_or(Duration::from_secs(30));
            match Box::pin(self.cache.lookup(key, &parts.headers, wait)).await {
                crate::cache::Lookup::Hit(stored) => {
                    let body = if parts.method == Method::HEAD {
                        Bytes::new()
                    } else {
                        stored.body.clone()
                    };
                    let mut resp = Response::new(ProxyBody::full(body));
                    *resp.status_mut() = stored.status;
                    *resp.headers_mut() = stored.headers.clone();
                    resp.headers_mut()
                        .insert(header::AGE, HeaderValue::from(stored.age()));
                    resp.headers_mut()
                        .insert(X_CACHE.clone(), HeaderValue::from_static("HIT"));
                    return Ok(resp);
                }
                crate::cache::Lookup::Fetch(guard) => {
                    cache_fill = (parts.method == Method::GET)
                        .then(|| (guard, policy.clone(), parts.headers.clone()));
                }
            }
        }
        let traffic = &route.traffic;
        let validation = route.policies.validation.as_deref();
        let body_limit = match (
            traffic
                .max_body_bytes
                .or(self.config.max_request_body_bytes),
            validation.and_then(|v| v.max_body_bytes),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(limit) = body_limit
            && declared_length(&parts.headers).is_some_and(|n| n > limit)
        {
            return Err(ProxyError::BodyLimit);
        }

        // Phase 5a: request validation.
        if let Some(v) = validation {
            for h in &v.required_headers {
                if !parts.headers.contains_key(h) {
                    return Err(ProxyError::Invalid(crate::validate::problem(
                        "A required header is missing",
                        &[(String::new(), format!("header {h} is required"))],
                    )));
                }
            }
            let has_body = declared_length(&parts.headers).is_none_or(|n| n > 0)
                && (parts.headers.contains_key(header::CONTENT_LENGTH)
                    || parts.headers.contains_key(header::TRANSFER_ENCODING)
                    || matches!(body, ReqBody::Buffered(ref b) if !b.is_empty()));
            if has_body && !crate::validate::content_type_allowed(v, &parts.headers) {
                return Err(ProxyError::UnsupportedMediaType);
            }
            if let Some(schema) = &v.json_schema
                && has_body
                && is_json(&parts.headers)
            {
                let limit =
                    body_limit.map_or(1 << 20, |l| usize::try_from(l).unwrap_or(usize::MAX));
                let bytes = match body {
                    ReqBody::Streamed(incoming) => {
                        Box::pin(read_limited(
                            incoming,
                            &parts.headers,
                            limit,
                            ProxyError::BodyLimit,
                        ))
                        .await?
                    }
                    ReqBody::Buffered(b) => b,
                };
                body = ReqBody::Buffered(bytes.clone());
                self.validators.check(schema, &bytes)?;
            }
        }

        // Keys read from the request as the client sent it.
        let hash = match &traffic.load_balance {
            LoadBalance::ConsistentHash(key) => hash_key(key, &parts.headers, client_ip),
            _ => None,
        };
        let pinned = traffic
            .affinity
            .as_ref()
            .and_then(|a| cookie(&parts.headers, &a.cookie))
            .and_then(|v| u64::from_str_radix(v, 16).ok());
        // Read only for a route that compresses.
        let accept_encoding = traffic
            .compression
            .as_ref()
            .and_then(|_| parts.headers.get(header::ACCEPT_ENCODING).cloned());
        let idempotent = matches!(
            parts.method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        );

        // Phase 5: rewrite. Credentials checked by the gateway go no
        // further; the verified client identity replaces whatever the
        // client sent under that name.
        let auth_query = passed.query.take();
        passed.apply(&mut parts.headers);
        for (name, value) in authorized_headers {
            parts.headers.insert(name, value);
        }
        if let Some((name, subject)) = client_subject {
            parts.headers.remove(&name);
            if let Some(subject) = subject {
                parts.headers.insert(name, subject);
            }
        }
        // The host the client asked for: an absolute target's authority
        // (HTTP/2's `:authority`, or an HTTP/1.1 absolute-form target,
        // whose Host header it replaces), else the Host header.
        let original_host = match parts.uri.authority() {
            Some(a) => {
                let value = HeaderValue::from_str(without_userinfo(a)).ok();
                if let Some(v) = &value {
                    parts.headers.insert(header::HOST, v.clone());
                }
                value
            }
            None => asked.host.clone(),
        };
        let keep_te = grpc.is_some() || asked.te_trailers;
        let upgrade_headers = on_upgrade.as_ref().map(|_| {
            (
                parts.headers.get(header::UPGRADE).cloned(),
                HeaderValue::from_static("upgrade"),
            )
        });
        strip_hop_by_hop(&mut parts.headers);
        if keep_te {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
        let filters = &route.filters;
        if let Some(m) = &filters.request_headers {
            m.apply(&mut parts.headers);
        }
        let mut upstream_path = None;
        if let Some(rewrite) = &filters.rewrite {
            if let Some(p) = &rewrite.path {
                upstream_path = Some(p.apply(&path, &matched.entry.path));
            }
            if let Some(h) = &rewrite.hostname {
                parts.headers.insert(header::HOST, h.clone());
            }
        }
        if !parts.headers.contains_key(header::HOST)
            && let Some(h) = &original_host
        {
            parts.headers.insert(header::HOST, h.clone());
        }
        if let Some((upgrade, connection)) = upgrade_headers {
            if let Some(u) = upgrade {
                parts.headers.insert(header::UPGRADE, u);
            }
            parts.headers.insert(header::CONNECTION, connection);
        }
        if let Some((GrpcKind::Web | GrpcKind::WebText, suffix)) = grpc {
            grpc::web_request_headers(&mut parts.headers, suffix);
        }
        // The upstream continues the trace under the gateway's span (each
        // attempt's own span, when spans are recorded).
        let trace = extras.obs.trace;
        let recording = extras.obs.recording;
        let forwarding = forwarding(
            &parts.headers,
            conn,
            peer_trusted,
            client_ip,
            original_host,
            request_id,
            trace.traceparent(&trace.span_id),
        );
        let path_and_query = match (upstream_path, &path) {
            // Unchanged: reuse the request's own bytes.
            (None, Cow::Borrowed(_)) => original.unwrap_or_else(|| PathAndQuery::from_static("/")),
            (new, _) => {
                let p = new.as_deref().unwrap_or(&path);
                let text = match query {
                    Some(q) => format!("{p}?{q}"),
                    None => p.to_owned(),
                };
                PathAndQuery::try_from(text)
                    .map_err(|_| ProxyError::BadPath(snapshot::PathError::BadEscape))?
            }
        };
        let path_and_query = match auth_query {
            None => path_and_query,
            Some(q) => {
                let text = if q.is_empty() {
                    path_and_query.path().to_owned()
                } else {
                    format!("{}?{q}", path_and_query.path())
                };
                PathAndQuery::try_from(text)
                    .map_err(|_| ProxyError::BadPath(snapshot::PathError::BadEscape))?
            }
        };
        let mut head = Head {
            method: parts.method.clone(),
            path_and_query,
            headers: parts.headers,
            forwarding,
        };

        // The body every attempt sends: kept in memory when a retry may
        // need it again and it is small, streamed otherwise.
        let retry_policy = traffic.retry.as_ref();
        let web_text = matches!(grpc, Some((GrpcKind::WebText, _)));
        let body = match body {
            ReqBody::Streamed(incoming) if http_body::Body::is_end_stream(&incoming) => {
                ReqBody::Buffered(Bytes::new())
            }
            ReqBody::Streamed(incoming)
                if retry_policy.is_some_and(|r| r.attempts > 0)
                    && !web_text
                    && declared_length(&head.headers)
                        .is_some_and(|n| n <= self.config.retry_buffer_bytes as u64) =>
            {
                let limit = body_limit.map_or(self.config.retry_buffer_bytes, |l| {
                    l.min(usize::MAX as u64) as usize
                });
                ReqBody::Buffered(
                    Box::pin(read_limited(
                        incoming,
                        &head.headers,
                        limit,
                        ProxyError::BodyLimit,
                    ))
                    .await?,
                )
            }
            other => other,
        };
        if let (Some(limit), ReqBody::Buffered(b)) = (body_limit, &body)
            && b.len() as u64 > limit
        {
            return Err(ProxyError::BodyLimit);
        }
        let replay = match &body {
            ReqBody::Buffered(b) => Some(b.clone()),
            ReqBody::Streamed(_) => None,
        };
        let first_body = match body {
            ReqBody::Buffered(b) => UpstreamBody::Buffered(crate::body::Whole::new(b)),
            ReqBody::Streamed(incoming) if web_text => {
                UpstreamBody::Decoded(grpc::DecodeText::new(incoming))
            }
            ReqBody::Streamed(incoming) => match body_limit {
                Some(limit) => UpstreamBody::Limited(Limited::new(
                    incoming,
                    usize::try_from(limit).unwrap_or(usize::MAX),
                )),
                None => UpstreamBody::Streamed(incoming),
            },
        };
        let first_body = self.start_mirrors(&active, route, &head, first_body, replay.as_ref());

        let mut timeout = self.timeout_for(route);
        if grpc.is_some()
            && let Some(t) = grpc::timeout(&head.headers)
        {
            timeout = Some(timeout.map_or(t, |r| r.min(t)));
        }

        // Phase 6: forward (an upgrade is a single attempt).
        if let Some(on_upgrade) = on_upgrade {
            // Boxed: upgrades are rare and their state is large.
            return Box::pin(self.upgrade(
                &active,
                forward,
                &head,
                first_body,
                on_upgrade,
                timeout,
                traffic.idle_timeout,
            ))
            .await;
        }
        if let Some(r) = retry_policy {
            route_state.budget.deposit(r.budget_percent);
        }
        let method = head.method.clone();
        let metrics = &self.telemetry.metrics;
        // One reading of the clock starts both the request's time limit
        // and its first attempt.
        let forwarded = Instant::now();
        let clock = extras.clock;
        let obs = &mut extras.obs;
        let attempts = async {
            let mut body = Some(first_body);
            let mut avoid = None;
            let mut attempt: u32 = 0;
            loop {
                let target = pick_backend(forward, &active, pinned)?;
                let (index, cluster) = cluster_of(&active, target)?;
                let state = &active.clusters[index];
                let endpoint = state
                    .pick(&traffic.load_balance, hash, pinned, avoid)
                    .ok_or_else(|| ProxyError::NoEndpoints {
                        cluster: cluster.name.to_string(),
                    })?
                    .clone();
                let in_flight = InFlight::new(endpoint.clone());
                let attempt_body = match (&replay, body.take()) {
                    (Some(bytes), _) if attempt > 0 => {
                        UpstreamBody::Buffered(crate::body::Whole::new(bytes.clone()))
                    }
                    (_, Some(b)) => b,
                    (_, None) => UpstreamBody::Empty(Empty::new()),
                };
                let started = if attempt == 0 {
                    forwarded
                } else {
                    Instant::now()
                };
                let last = retry_policy.is_none_or(|r| attempt >= u32::from(r.attempts));
                let request = if last {
                    head.take_request(attempt_body)
                } else {
                    head.request(attempt_body)
                };
                let span = recording.then(|| (telemetry::trace::new_span_id(), SystemTime::now()));
                if let Some((id, _)) = &span {
                    head.forwarding.traceparent = Some(trace.traceparent(id));
                }
                let transport = Transport::of(cluster);
                let per_try = retry_policy
                    .and_then(|r| r.per_try_timeout)
                    .or(route.backend_timeout)
                    .filter(|t| !t.is_zero());
                let result = {
                    // Pinned where it is built: moving the exchange's
                    // future into the await would copy its 2 KiB.
                    let sent = std::pin::pin!(self.upstreams.send(
                        &transport,
                        endpoint.addr,
                        &endpoint.authority,
                        request,
                        Some(&head.forwarding),
                    ));
                    match per_try {
                        Some(t) if retry_policy.is_some() => {
                            tokio::time::timeout(t, sent).await.map_err(|_| ())
                        }
                        _ => Ok(sent.await),
                    }
                };
                // What happened, and whether a retry may fix it. A gateway
                // error that will not be retried goes to the client as the
                // upstream sent it.
                let retry_allowed = |retryable: bool| {
                    retryable
                        && self.may_retry(retry_policy, &route_state, attempt, replay.is_some())
                };
                let took = started.elapsed();
                if let Some((id, start)) = span {
                    let mut attributes = vec![
                        ("server.address", endpoint.addr.ip().to_string().into()),
                        ("server.port", i64::from(endpoint.addr.port()).into()),
                        ("gatehouse.backend", cluster.name.to_string().into()),
                    ];
                    if attempt > 0 {
                        attributes.push(("http.request.resend_count", i64::from(attempt).into()));
                    }
                    let error = match &result {
                        Ok(Ok(r)) => {
                            attributes.push((
                                "http.response.status_code",
                                i64::from(r.status().as_u16()).into(),
                            ));
                            (r.status().as_u16() >= 500)
                                .then(|| format!("upstream answered {}", r.status()))
                        }
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(()) => Some("attempt timed out".to_owned()),
                    };
                    obs.child_span(
                        "upstream attempt",
                        SpanKind::Client,
                        start,
                        Some(id),
                        attributes,
                        error,
                    );
                }
                if let Some(m) = &state.metrics {
                    match &result {
                        Ok(Ok(_)) => m.observe(took),
                        Ok(Err(UpstreamError::Connect(_))) => {
                            m.connect_error();
                        }
                        _ => {}
                    }
                }
                let failure = match result {
                    Ok(Ok(response)) => {
                        endpoint.observe_latency(took, crate::lb::millis(started + took));
                        let gateway_error = matches!(response.status().as_u16(), 502..=504);
                        state.record(
                            &endpoint,
                            if gateway_error {
                                Outcome::GatewayError
                            } else {
                                Outcome::Success
                            },
                        );
                        let retryable = gateway_error
                            && idempotent
                            && retry_policy.is_some_and(|r| r.on_gateway_error);
                        if !retry_allowed(retryable) {
                            return Ok(Answer {
                                response,
                                endpoint,
                                in_flight,
                                took,
                            });
                        }
                        ProxyError::Upstream(
                            format!("upstream answered {}", response.status()).into(),
                        )
                    }
                    Ok(Err(UpstreamError::Connect(e))) => {
                        state.record(&endpoint, Outcome::GatewayError);
                        if !retry_allowed(retry_policy.is_some_and(|r| r.on_connect_failure)) {
                            return Err(ProxyError::UpstreamConnect(e));
                        }
                        ProxyError::UpstreamConnect(e)
                    }
                    Ok(Err(UpstreamError::Reset(e))) => {
                        if is_body_limit(&*e) {
                            return Err(ProxyError::BodyLimit);
                        }
                        state.record(&endpoint, Outcome::GatewayError);
                        if !retry_allowed(idempotent && retry_policy.is_some_and(|r| r.on_reset)) {
                            return Err(ProxyError::Upstream(e));
                        }
                        ProxyError::Upstream(e)
                    }
                    Err(()) => {
                        state.record(&endpoint, Outcome::GatewayError);
                        if !retry_allowed(
                            idempotent && retry_policy.is_some_and(|r| r.on_gateway_error),
                        ) {
                            return Err(ProxyError::UpstreamTimeout);
                        }
                        ProxyError::UpstreamTimeout
                    }
                };
                attempt += 1;
                route_state.metrics.retry(metrics);
                avoid = Some(endpoint.addr);
                if let Some(r) = retry_policy {
                    tokio::time::sleep(retry::backoff(r, attempt)).await;
                }
                tracing::debug!(route = %route.id, attempt, error = %failure, "retrying");
            }
        };
        // Pinned where it is, not boxed: the attempts (the upstream
        // exchange, the largest part of a request's state) are built in
        // place and never copied.
        let answer = {
            let attempts = std::pin::pin!(attempts);
            // A limit too far ahead to represent is none.
            match (timeout.and_then(|t| forwarded.checked_add(t)), clock) {
                (Some(deadline), Some(clock)) => clock
                    .limit(deadline.into(), attempts)
                    .await
                    .map_err(|_| ProxyError::UpstreamTimeout)??,
                (Some(deadline), None) => tokio::time::timeout_at(deadline.into(), attempts)
                    .await
                    .map_err(|_| ProxyError::UpstreamTimeout)??,
                (None, _) => attempts.await?,
            }
        };

        // Phase 7: respond.
        let Answer {
            response,
            endpoint,
            in_flight,
            took,
        } = answer;
        extras.obs.upstream = Some((endpoint.addr, took));
        let (mut resp_parts, resp_body) = response.into_parts();
        strip_hop_by_hop(&mut resp_parts.headers);
        if let Some(m) = &filters.response_headers {
            m.apply(&mut resp_parts.headers);
        }
        if let Some(a) = &traffic.affinity
            && pinned != Some(endpoint.id)
        {
            let mut cookie = format!(
                "{}={:016x}; Path=/; HttpOnly; SameSite=Lax",
                a.cookie, endpoint.id
            );
            if let Some(ttl) = a.ttl {
                cookie.push_str(&format!("; Max-Age={}", ttl.as_secs()));
            }
            if let Ok(v) = HeaderValue::try_from(cookie) {
                resp_parts.headers.append(header::SET_COOKIE, v);
            }
        }
        if let Some((guard, policy, request_headers)) = cache_fill {
            resp_parts
                .headers
                .insert(X_CACHE.clone(), HeaderValue::from_static("MISS"));
            let body =
                match Box::pin(crate::cache::read_up_to(resp_body, policy.max_entry_bytes)).await {
                    Ok(bytes) => {
                        self.cache.store(
                            &guard.key,
                            &policy,
                            &request_headers,
                            resp_parts.status,
                            &resp_parts.headers,
                            bytes.clone(),
                        );
                        drop(in_flight);
                        ProxyBody::full(bytes)
                    }
                    Err(stream) => ProxyBody::boxed(stream, Some(in_flight)),
                };
            drop(guard);
            return Ok(Response::from_parts(resp_parts, body));
        }
        let body = match grpc {
            Some((kind @ (GrpcKind::Web | GrpcKind::WebText), suffix)) => {
                grpc::web_response_headers(&mut resp_parts.headers, *kind, suffix);
                ProxyBody::grpc_web(grpc::EncodeWeb::new(resp_body, *kind), Some(in_flight))
            }
            _ => match traffic.compression.as_ref().and_then(|p| {
                crate::compress::choose(
                    p,
                    &method,
                    accept_encoding.as_ref(),
                    resp_parts.status,
                    &resp_parts.headers,
                )
            }) {
                Some(encoding) => ProxyBody::boxed(
                    crate::compress::compress(resp_body, encoding, &mut resp_parts.headers),
                    Some(in_flight),
                ),
                None => ProxyBody::upstream(resp_body, Some(in_flight)),
            },
        };
        Ok(Response::from_parts(resp_parts, body))
    }

    /// Whether another attempt is allowed: attempts left, a body that can
    /// be sent again, and room in the route's retry budget.
    fn may_retry(
        &self,
        policy: Option<&snapshot::RetryPolicy>,
        route: &crate::state::RouteState,
        attempt: u32,
        replayable: bool,
    ) -> bool {
        let Some(policy) = policy else { return false };
        attempt < u32::from(policy.attempts) && replayable && route.budget.withdraw()
    }

    /// The route's time limit for the upstream response headers. A zero
    /// limit means "no limit"; no limit set at all means the default.
    fn timeout_for(&self, route: &Route) -> Option<Duration> {
        match (route.request_timeout, route.backend_timeout) {
            (None, None) => Some(self.config.default_timeout),
            (r, b) => [r, b].into_iter().flatten().filter(|t| !t.is_zero()).min(),
        }
    }

    /// Forwards an upgrade request and, when the upstream switches
    /// protocols, relays the two connections on a task of their own (which
    /// holds no configuration, so it outlives any swap).
    #[allow(clippy::too_many_arguments)]
    async fn upgrade(
        &self,
        active: &Arc<Active>,
        forward: &Forward,
        head: &Head,
        body: UpstreamBody,
        downstream: hyper::upgrade::OnUpgrade,
        timeout: Option<Duration>,
        idle: Option<Duration>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let target = pick_backend(forward, active, None)?;
        let (index, cluster) = cluster_of(active, target)?;
        let state = &active.clusters[index];
        let endpoint = state
            .pick(&LoadBalance::RoundRobin, None, None, None)
            .ok_or_else(|| ProxyError::NoEndpoints {
                cluster: cluster.name.to_string(),
            })?
            .clone();
        let in_flight = InFlight::new(endpoint.clone());
        // Upgrades are an HTTP/1.1 mechanism whatever the cluster speaks.
        let transport = Transport {
            protocol: snapshot::UpstreamProtocol::Http1,
            tls: cluster.tls.clone(),
        };
        let sent = self.upstreams.send(
            &transport,
            endpoint.addr,
            &endpoint.authority,
            head.request(body),
            Some(&head.forwarding),
        );
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, sent)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)?,
            None => sent.await,
        };
        let mut response = result.map_err(|e| match e {
            UpstreamError::Connect(e) => ProxyError::UpstreamConnect(e),
            UpstreamError::Reset(e) => ProxyError::Upstream(e),
        })?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (parts, body) = response.into_parts();
            return Ok(Response::from_parts(
                parts,
                ProxyBody::upstream(body, Some(in_flight)),
            ));
        }
        let upstream = hyper::upgrade::on(&mut response);
        let idle = idle.unwrap_or(self.config.tunnel_idle_timeout);
        let addr = endpoint.addr;
        tokio::spawn(async move {
            let _in_flight = in_flight;
            match tokio::try_join!(downstream, upstream) {
                Ok((down, up)) => {
                    match crate::tunnel::relay(TokioIo::new(down), TokioIo::new(up), idle).await {
                        Ok((sent, received)) => {
                            tracing::debug!(endpoint = %addr, sent, received, "upgraded connection closed")
                        }
                        Err(e) => {
                            tracing::debug!(endpoint = %addr, error = %e, "upgraded connection ended")
                        }
                    }
                }
                Err(e) => tracing::debug!(endpoint = %addr, error = %e, "upgrade failed"),
            }
        });
        let (parts, _) = response.into_parts();
        Ok(Response::from_parts(parts, ProxyBody::full(Bytes::new())))
    }

    /// Sends sampled copies of the request to the route's mirrors, and
    /// returns the body for the main request (teed when mirrors need a
    /// streamed copy). Mirrors never delay the main request: they run on
    /// their own tasks, and a mirror that falls behind is cut off.
    fn start_mirrors(
        &self,
        active: &Arc<Active>,
        route: &Route,
        head: &Head,
        body: UpstreamBody,
        buffered: Option<&Bytes>,
    ) -> UpstreamBody {
        if route.filters.mirrors.is_empty() {
            return body;
        }
        let targets: Vec<(Arc<EndpointState>, Transport)> = route
            .filters
            .mirrors
            .iter()
            .filter(|m| m.percent >= 100 || fastrand::u8(..100) < m.percent)
            .filter_map(|m| {
                let (index, cluster) = cluster_of(active, &m.target).ok()?;
                let endpoint =
                    active.clusters[index].pick(&LoadBalance::RoundRobin, None, None, None)?;
                Some((endpoint.clone(), Transport::of(cluster)))
            })
            .collect();
        if targets.is_empty() {
            return body;
        }
        let (main, mut copies): (UpstreamBody, Vec<UpstreamBody>) = match (body, buffered) {
            (body @ UpstreamBody::Buffered(_), Some(bytes)) => (
                body,
                targets
                    .iter()
                    .map(|_| UpstreamBody::Buffered(crate::body::Whole::new(bytes.clone())))
                    .collect(),
            ),
            (UpstreamBody::Streamed(incoming), _) => {
                let (tee, mirrors) = TeeBody::new(incoming, targets.len());
                (
                    UpstreamBody::Tee(tee),
                    mirrors.into_iter().map(UpstreamBody::Mirror).collect(),
                )
            }
            // Transformed bodies (limits, decoding) are not mirrored.
            (other, _) => return other,
        };
        let timeout = self
            .timeout_for(route)
            .unwrap_or(self.config.default_timeout);
        for (endpoint, protocol) in targets.into_iter().rev() {
            let Some(copy) = copies.pop() else { break };
            let upstreams = self.upstreams.clone();
            let req = head.request(copy);
            let forwarding = head.forwarding.clone();
            tokio::spawn(async move {
                let sent = upstreams.send(
                    &protocol,
                    endpoint.addr,
                    &endpoint.authority,
                    req,
                    Some(&forwarding),
                );
                match tokio::time::timeout(timeout, sent).await {
                    Ok(Ok(resp)) => {
                        // Read the answer so the connection can be reused.
                        let _ = resp.into_body().collect().await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "mirror request failed"),
                    Err(_) => tracing::debug!("mirror request timed out"),
                }
            });
        }
        main
    }
}

/// A backend by weight; with an affinity cookie, the backend whose cluster
/// holds the client's endpoint while that endpoint is available and the
/// backend keeps a share (so a client stays on one side of a split, and
/// moves only when its side goes away or is weighted out).
fn pick_backend<'a>(
    forward: &'a Forward,
    active: &Active,
    pinned: Option<u64>,
) -> Result<&'a BackendTarget, ProxyError> {
    if let Some(id) = pinned
        && forward.backends.len() > 1
        && let Some(b) = forward.backends.iter().find(|b| {
            b.weight > 0
                && matches!(&b.target, BackendTarget::Cluster { index, .. }
                    if active.clusters[index.0].has_available(id))
        })
    {
        return Ok(&b.target);
    }
    let backend = match forward.backends.len() {
        0 => None,
        1 => forward.backends.first(),
        _ => forward.pick(fastrand::u64(..forward.total_weight())),
    };
    backend.map(|b| &b.target).ok_or(ProxyError::NoBackends)
}

/// The cluster a target names.
fn cluster_of<'a>(
    active: &'a Active,
    target: &BackendTarget,
) -> Result<(usize, &'a snapshot::Cluster), ProxyError> {
    match target {
        BackendTarget::Cluster { index, .. } => Ok((index.0, active.snapshot.cluster(*index))),
        BackendTarget::Unresolved { status, reason } => Err(ProxyError::Unresolved {
            status: *status,
            reason: reason.to_string(),
        }),
    }
}

/// The headers the gateway sets on the upstream request (see
/// [`Forwarding`]); `headers` is the request's map, read for a trusted
/// peer's `X-Forwarded-For`.
fn forwarding(
    headers: &HeaderMap,
    conn: &Connection,
    peer_trusted: bool,
    client_ip: IpAddr,
    original_host: Option<HeaderValue>,
    request_id: &HeaderValue,
    traceparent: HeaderValue,
) -> Forwarding {
    let forwarded_for = if peer_trusted {
        clientinfo::forwarded_for(headers, conn.peer.ip(), true)
    } else {
        Some(conn.peer_value.clone())
    };
    let real_ip = if client_ip == conn.peer.ip() {
        Some(conn.peer_value.clone())
    } else {
        HeaderValue::try_from(client_ip.to_canonical().to_string()).ok()
    };
    Forwarding {
        forwarded_for,
        real_ip,
        forwarded_proto: Some(HeaderValue::from_static(conn.scheme.as_str())),
        forwarded_host: original_host,
        request_id: Some(request_id.clone()),
        traceparent: Some(traceparent),
    }
}

/// The headers the pipeline reads from a request as the client sent it,
/// found in one pass over them: a lookup for each would cost a hash each,
/// more than walking the few headers a request has. The first value of
/// each counts, as a lookup would give.
#[derive(Default)]
struct Sent<'a> {
    content_type: Option<&'a HeaderValue>,
    request_id: Option<&'a HeaderValue>,
    traceparent: Option<&'a HeaderValue>,
    /// An `Upgrade` header.
    upgrade_header: bool,
    /// A `Connection` header naming `upgrade`.
    connection_upgrade: bool,
    host: Option<&'a HeaderValue>,
    /// More than one `Host` header.
    several_hosts: bool,
    te: Option<&'a HeaderValue>,
}

/// What the client's own headers said that the pipeline needs later, when
/// the request may have been changed: read in [`Sent`]'s pass rather than
/// looked up.
struct Asked {
    /// The first `Host` header.
    host: Option<HeaderValue>,
    /// More than one `Host` header (refused).
    several_hosts: bool,
    /// The first `TE` header is `trailers` (passed on).
    te_trailers: bool,
    /// The request asks to switch protocols.
    upgrade: bool,
}

impl<'a> Sent<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let mut sent = Self::default();
        for (name, value) in headers {
            if *name == header::CONTENT_TYPE {
                sent.content_type.get_or_insert(value);
            } else if *name == header::UPGRADE {
                sent.upgrade_header = true;
            } else if *name == header::CONNECTION {
                sent.connection_upgrade |= value
                    .as_bytes()
                    .split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"));
            } else if name == clientinfo::request_id_header() {
                sent.request_id.get_or_insert(value);
            } else if *name == TRACEPARENT {
                sent.traceparent.get_or_insert(value);
            } else if *name == header::HOST {
                sent.several_hosts |= sent.host.is_some();
                sent.host.get_or_insert(value);
            } else if *name == header::TE {
                sent.te.get_or_insert(value);
            }
        }
        sent
    }

    /// Whether the request asks to switch protocols (WebSocket and the
    /// like).
    fn upgrade(&self) -> bool {
        self.upgrade_header && self.connection_upgrade
    }

    /// What the pipeline reads of these headers after the request has
    /// left their map.
    fn asked(&self) -> Asked {
        Asked {
            host: self.host.cloned(),
            several_hosts: self.several_hosts,
            te_trailers: self
                .te
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers")),
            upgrade: self.upgrade(),
        }
    }
}

/// The consistent-hashing key of a request.
fn hash_key(key: &HashKey, headers: &HeaderMap, client_ip: IpAddr) -> Option<u64> {
    match key {
        HashKey::Header(name) => headers.get(name).map(|v| stable_hash(v.as_bytes())),
        HashKey::Cookie(name) => cookie(headers, name).map(|v| stable_hash(v.as_bytes())),
        HashKey::SourceIp => Some(stable_hash(client_ip.to_canonical().to_string().as_bytes())),
    }
}

/// The value of a cookie, if the request carries it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Whether an upstream failure was our own body limit tripping.
fn is_body_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Reads the body in full, failing with `too_large` past `limit` (checked
/// against `Content-Length` first, so an honest client is refused before
/// sending).
async fn read_limited(
    body: ClientBody,
    headers: &HeaderMap,
    limit: usize,
    too_large: ProxyError,
) -> Result<Bytes, ProxyError> {
    if declared_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(too_large);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large),
        Err(e) => Err(ProxyError::BodyRead(e.to_string())),
    }
}

/// Whether the request declares a JSON body (`application/json` or any
/// `+json` type).
fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime
            .rsplit_once('+')
            .is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

/// The request's host, lowercase and without trailing dot, and its port
/// if one was given: the authority of an absolute URI (as HTTP/2 sends
/// it), else the Host header. `None` when the Host header is not valid
/// text, its port is not a number, there is more than one Host header
/// (RFC 9112 §3.2), or an HTTP/2 or HTTP/3 request's Host names another
/// authority than its `:authority` (RFC 9113 §8.3.1). An HTTP/1.1
/// absolute-form target's authority wins over its Host header, which is
/// replaced on the way upstream (RFC 9112 §3.2.2). The Host headers are
/// those the client sent, from `asked`.
fn request_host<'a>(
    parts: &'a http::request::Parts,
    asked: &'a Asked,
) -> Option<(Cow<'a, str>, Option<u16>)> {
    if asked.several_hosts {
        return None;
    }
    let host_header = asked.host.as_ref();
    let raw = match parts.uri.authority() {
        Some(a) => {
            let a = without_userinfo(a);
            if parts.version >= Version::HTTP_2
                && host_header.is_some_and(|h| !h.as_bytes().eq_ignore_ascii_case(a.as_bytes()))
            {
                return None;
            }
            a
        }
        None => match host_header {
            Some(v) => v.to_str().ok()?,
            None => "",
        },
    };
    split_host(raw)
}

/// An authority's host and port (no `user@`).
fn without_userinfo(a: &http::uri::Authority) -> &str {
    a.as_str().rsplit_once('@').map_or(a.as_str(), |(_, h)| h)
}

/// Host (lowercase, without trailing dot; IPv6 literals keep their
/// brackets) and port of an authority or a Host header value. `None` when
/// the port is not a number.
pub(crate) fn split_host(raw: &str) -> Option<(Cow<'_, str>, Option<u16>)> {
    // One backward pass over the bytes (these strings are short, and every
    // request has one): where the user info ends, the last colon, and
    // whether any letter needs lowercasing (one in the port fails its
    // parse below anyway).
    let mut start = 0;
    let mut colon = None;
    let mut upper = false;
    for (i, &c) in raw.as_bytes().iter().enumerate().rev() {
        match c {
            b'@' => {
                start = i + 1;
                break;
            }
            b':' if colon.is_none() => colon = Some(i),
            b'A'..=b'Z' => upper = true,
            _ => {}
        }
    }
    let raw = &raw[start..];
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        // An IPv6 literal keeps its brackets.
        let end = rest.bytes().position(|c| c == b']')? + 2;
        let port = raw[end..].strip_prefix(':');
        (&raw[..end], port)
    } else {
        // The colon was found after the user info, in the part kept.
        match colon.map(|c| c - start) {
            Some(colon) => (&raw[..colon], Some(&raw[colon + 1..])),
            None => (raw, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let host = if upper {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    };
    Some((host, port))
}

/// The budget a request counts in under a limit keyed by `key`: the
/// client address, a header's value, the route, the authenticating API
/// key's name or a verified JWT claim (empty when the request has none).
fn rate_limit_key<'a>(
    key: &RateLimitKey,
    client: &'a str,
    headers: &'a HeaderMap,
    route: &'a str,
    passed: &'a crate::policy::Passed,
) -> Cow<'a, [u8]> {
    match key {
        RateLimitKey::ClientIp => Cow::Borrowed(client.as_bytes()),
        RateLimitKey::Header(name) => {
            Cow::Borrowed(headers.get(name).map_or(&[][..], HeaderValue::as_bytes))
        }
        RateLimitKey::Route => Cow::Borrowed(route.as_bytes()),
        RateLimitKey::ApiKey => {
            Cow::Borrowed(passed.key_name.as_deref().map_or(&[][..], str::as_bytes))
        }
        RateLimitKey::JwtClaim(name) => Cow::Owned(
            passed
                .claims
                .as_ref()
                .and_then(|c| c.get(&**name))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .unwrap_or_default()
                .into_bytes(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host_of(uri: &str, host: Option<&str>) -> Option<(String, Option<u16>)> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        let (parts, ()) = b.body(()).unwrap().into_parts();
        let asked = Sent::of(&parts.headers).asked();
        request_host(&parts, &asked).map(|(h, p)| (h.into_owned(), p))
    }

    #[test]
    fn host_is_normalized() {
        assert_eq!(
            host_of("/", Some("Example.COM:8080")),
            Some(("example.com".into(), Some(8080)))
        );
        assert_eq!(
            host_of("/", Some("example.com.")),
            Some(("example.com".into(), None))
        );
        assert_eq!(
            host_of("/", Some("[::1]:80")),
            Some(("[::1]".into(), Some(80)))
        );
        assert_eq!(host_of("/", None), Some((String::new(), None)));
        assert_eq!(host_of("/", Some("example.com:http")), None);
        // The absolute form wins over the Host header.
        assert_eq!(
            host_of("http://a.example/x", Some("b.example")),
            Some(("a.example".into(), None))
        );
        assert_eq!(
            host_of("http://user:secret@a.example:81/x", None),
            Some(("a.example".into(), Some(81)))
        );
    }

    #[test]
    fn hosts_and_ports_are_split() {
        let split = |raw: &str| split_host(raw).map(|(h, p)| (h.into_owned(), p));
        let some = |h: &str, p: Option<u16>| Some((h.to_owned(), p));
        assert_eq!(split("example.com"), some("example.com", None));
        assert_eq!(split("Example.COM:8080"), some("example.com", Some(8080)));
        assert_eq!(split("example.com.:80"), some("example.com", Some(80)));
        assert_eq!(
            split("User:Pa:ss@Example.com:81"),
            some("example.com", Some(81))
        );
        assert_eq!(split("a@b@c.example"), some("c.example", None));
        assert_eq!(split("[::1]"), some("[::1]", None));
        assert_eq!(split("[::1]:443"), some("[::1]", Some(443)));
        assert_eq!(split("[FE80::1]:443"), some("[fe80::1]", Some(443)));
        assert_eq!(split("[::1"), None);
        assert_eq!(split("example.com:"), None);
        assert_eq!(split("example.com:8O"), None);
        assert_eq!(split("example.com:65536"), None);
        assert_eq!(split(""), some("", None));
        // Nothing to lowercase: the host is borrowed, not copied.
        assert!(matches!(
            split_host("a.example:1"),
            Some((Cow::Borrowed(_), _))
        ));
    }

    #[test]
    fn ambiguous_hosts_are_refused() {
        let parts = |version: Version, uri: &str, hosts: &[&str]| {
            let mut b = Request::builder().version(version).uri(uri);
            for h in hosts {
                b = b.header("host", *h);
            }
            b.body(()).unwrap().into_parts().0
        };
        let host = |p: &http::request::Parts| {
            request_host(p, &Sent::of(&p.headers).asked()).map(|(h, _)| h.into_owned())
        };
        // Two Host headers, whether they agree or not (RFC 9112 §3.2).
        for hosts in [["a.example", "b.example"], ["a.example", "a.example"]] {
            assert_eq!(host(&parts(Version::HTTP_11, "/", &hosts)), None);
            assert_eq!(
                host(&parts(Version::HTTP_2, "http://a.example/", &hosts)),
                None
            );
        }
        // HTTP/2: a Host beside `:authority` must name the same (RFC 9113
        // §8.3.1); HTTP/1.1's absolute form replaces its Host.
        let h2 = |h: &str| host(&parts(Version::HTTP_2, "https://a.example/", &[h]));
        assert_eq!(h2("b.example"), None);
        assert_eq!(h2("A.Example"), Some("a.example".to_owned()));
        assert_eq!(
            host(&parts(
                Version::HTTP_11,
                "http://a.example/",
                &["b.example"]
            )),
            Some("a.example".to_owned())
        );
    }

    #[test]
    fn json_content_types() {
        let mut h = HeaderMap::new();
        for (ct, want) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/merge-patch+json", true),
            ("text/plain", false),
            ("application/jsonp", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(is_json(&h), want, "{ct}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn cookies_and_upgrades() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; session=abc"));
        h.append(header::COOKIE, HeaderValue::from_static("other=2"));
        assert_eq!(cookie(&h, "session"), Some("abc"));
        assert_eq!(cookie(&h, "other"), Some("2"));
        assert_eq!(cookie(&h, "missing"), None);
        assert!(!Sent::of(&h).upgrade());
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(!Sent::of(&h).upgrade(), "without Connection: upgrade");
        h.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        h.append(header::CONNECTION, HeaderValue::from_static("x, Upgrade"));
        assert!(Sent::of(&h).upgrade(), "named in a later value");
    }

    #[test]
    fn the_first_value_of_each_header_read_counts() {
        let mut h = HeaderMap::new();
        h.append(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        h.append("x-request-id", HeaderValue::from_static("one"));
        h.append("x-request-id", HeaderValue::from_static("two"));
        h.append(&TRACEPARENT, HeaderValue::from_static("first"));
        h.append(&TRACEPARENT, HeaderValue::from_static("second"));
        h.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        h.append(header::TE, HeaderValue::from_static("Trailers"));
        h.append(header::TE, HeaderValue::from_static("gzip"));
        h.insert(header::HOST, HeaderValue::from_static("a.example"));
        let sent = Sent::of(&h);
        assert_eq!(sent.content_type, h.get(header::CONTENT_TYPE));
        assert_eq!(sent.request_id.unwrap(), "one");
        assert_eq!(sent.traceparent.unwrap(), "first");
        let asked = sent.asked();
        assert_eq!(asked.host.unwrap(), "a.example");
        assert!(!asked.several_hosts && asked.te_trailers && !asked.upgrade);
        // A second Host is noted whatever it says; a TE other than
        // `trailers` first is not kept.
        h.append(header::HOST, HeaderValue::from_static("a.example"));
        let mut te = h.clone();
        te.remove(header::TE);
        te.append(header::TE, HeaderValue::from_static("gzip"));
        te.append(header::TE, HeaderValue::from_static("trailers"));
        let asked = Sent::of(&te).asked();
        assert_eq!(asked.host.unwrap(), "a.example");
        assert!(asked.several_hosts && !asked.te_trailers);
        let none = HeaderMap::new();
        let sent = Sent::of(&none);
        assert!(sent.content_type.is_none() && sent.request_id.is_none());
        assert!(sent.traceparent.is_none() && !sent.upgrade());
        let asked = sent.asked();
        assert!(asked.host.is_none() && !asked.several_hosts && !asked.te_trailers);
    }
}

#[cfg(test)]
mod future_size {
    //! A request's future lives in its connection's state: the gateway's
    //! own HTTP/1.1 server builds it there in place, so it is neither
    //! copied nor allocated per request, but its size is memory every
    //! connection holds (hyper's servers box it once per request). With
    //! the pipeline and the upstream exchange inline it is about 7 KiB in
    //! a debug build (less optimised); the bound keeps it from creeping.
    use super::*;

    /// The size of the future `f` would return (it is never called).
    fn handle_size<'a, Fut>(
        _f: impl FnOnce(&'a Proxy, Request<FromClient>, &'a Connection) -> Fut,
    ) -> usize {
        std::mem::size_of::<Fut>()
    }

    #[test]
    fn request_futures_stay_small() {
        let handle = handle_size(|p, req, conn| p.handle(req, conn));
        assert!(handle <= 8192, "Proxy::handle's future is {handle} bytes");
    }

    /// A response moves through every stage on its way to the client:
    /// rare parts of its body (the upstream connection, a client's
    /// in-flight slot) are boxed to keep each move short.
    #[test]
    fn responses_stay_small() {
        let size = std::mem::size_of::<Response<ProxyBody>>();
        assert!(size <= 256, "a response is {size} bytes");
    }
}
