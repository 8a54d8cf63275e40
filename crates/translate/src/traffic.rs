//! Traffic settings of ApiRoute rules, compiled into snapshot policies.

use std::sync::Arc;
use std::time::Duration;

use api::{BackendProtocol, CompressionAlgorithm, LoadBalancerPolicy, RetryOn, RouteRule};
use snapshot::{
    Affinity, CompressionPolicy, Encoding, HashKey, HealthCheckPolicy, LoadBalance, OutlierPolicy,
    RetryPolicy, Traffic, UpstreamProtocol, UpstreamTls,
};

use crate::diagnostics::FieldError;
use crate::values::{check_header_name, normalize_rule_path, parse_duration};

/// Settings that belong to a cluster rather than a route: every route
/// using the cluster shares the endpoints' state.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct ClusterSettings {
    pub(crate) outlier: OutlierPolicy,
    pub(crate) health_check: Option<HealthCheckPolicy>,
    /// What the rule says about TLS to its backends (`backendTls`).
    pub(crate) backend_tls: Option<BackendTlsDraft>,
    /// TLS to the endpoints, settled once the protocol is known.
    pub(crate) tls: Option<Arc<UpstreamTls>>,
}

/// `backendTls` with its Secrets read; the server name defaults to the
/// Service's DNS name once the backend is known.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct BackendTlsDraft {
    pub(crate) server_name: Option<Box<str>>,
    pub(crate) ca_source: Option<Arc<str>>,
    pub(crate) ca_pem: Option<Arc<[u8]>>,
    pub(crate) client_certificate: Option<snapshot::Certificate>,
}

impl BackendTlsDraft {
    /// The settings for the cluster `namespace/service:port`.
    pub(crate) fn finish(self, cluster: &str) -> UpstreamTls {
        let server_name = self.server_name.unwrap_or_else(|| {
            let (ns, rest) = cluster.split_once('/').unwrap_or(("default", cluster));
            let service = rest.split_once(':').map_or(rest, |(s, _)| s);
            format!("{service}.{ns}.svc").into()
        });
        UpstreamTls {
            server_name,
            ca_source: self.ca_source,
            ca_pem: self.ca_pem,
            client_certificate: self.client_certificate,
        }
    }
}

fn duration(
    value: Option<&String>,
    field: String,
    default: Duration,
    errors: &mut Vec<FieldError>,
) -> Duration {
    match value {
        None => default,
        Some(v) => match parse_duration(v) {
            Ok(d) => d,
            Err(msg) => {
                errors.push((field, msg));
                default
            }
        },
    }
}

fn small<T: TryFrom<i32>>(
    value: i32,
    field: String,
    range: std::ops::RangeInclusive<i32>,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    if range.contains(&value) {
        T::try_from(value).ok()
    } else {
        errors.push((
            field,
            format!(
                "{value} is out of range: use {} to {}",
                range.start(),
                range.end()
            ),
        ));
        None
    }
}

/// A rule's retry policy, with defaults: two attempts on connect
/// failures, backoff 25 ms to 250 ms, a budget of 20 %.
fn retry_policy(r: &api::Retry, field: &str, errors: &mut Vec<FieldError>) -> RetryPolicy {
    let f = format!("{field}.retry");
    let attempts = small::<u8>(
        r.attempts.unwrap_or(2),
        format!("{f}.attempts"),
        0..=5,
        errors,
    )
    .unwrap_or(0);
    let on = if r.on.is_empty() {
        vec![RetryOn::ConnectFailure]
    } else {
        r.on.clone()
    };
    let backoff = r.backoff.clone().unwrap_or_default();
    let base = duration(
        backoff.base.as_ref(),
        format!("{f}.backoff.base"),
        Duration::from_millis(25),
        errors,
    );
    let max = duration(
        backoff.max.as_ref(),
        format!("{f}.backoff.max"),
        Duration::from_millis(250),
        errors,
    );
    if base > max {
        errors.push((
            format!("{f}.backoff.base"),
            format!("base ({base:?}) must not exceed max ({max:?})"),
        ));
    }
    RetryPolicy {
        attempts,
        on_connect_failure: on.contains(&RetryOn::ConnectFailure),
        on_reset: on.contains(&RetryOn::Reset),
        on_gateway_error: on.contains(&RetryOn::GatewayError),
        per_try_timeout: r
            .per_try_timeout
            .as_ref()
            .map(|t| {
                duration(
                    Some(t),
                    format!("{f}.perTryTimeout"),
                    Duration::ZERO,
                    errors,
                )
            })
            .filter(|t| !t.is_zero()),
        backoff_base: base,
        backoff_max: max,
        budget_percent: small::<u8>(
            r.budget_percent.unwrap_or(20),
            format!("{f}.budgetPercent"),
            0..=100,
            errors,
        )
        .unwrap_or(20),
    }
}

/// The route-level traffic settings of a rule.
pub(crate) fn route_traffic(
    rule: &RouteRule,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Traffic {
    let mut traffic = Traffic::default();
    if let Some(lb) = &rule.load_balancer {
        let f = format!("{field}.loadBalancer");
        traffic.load_balance = match lb.policy.unwrap_or(LoadBalancerPolicy::RoundRobin) {
            LoadBalancerPolicy::RoundRobin => LoadBalance::RoundRobin,
            LoadBalancerPolicy::LeastRequest => LoadBalance::LeastRequest,
            LoadBalancerPolicy::PeakEwma => LoadBalance::PeakEwma,
            LoadBalancerPolicy::Random => LoadBalance::Random,
            LoadBalancerPolicy::ConsistentHash => {
                let key = match &lb.consistent_hash {
                    None => Some(HashKey::SourceIp),
                    Some(ch) => match (&ch.header, &ch.cookie, ch.source_ip.unwrap_or(false)) {
                        (Some(h), None, false) => match check_header_name(h) {
                            Ok(name) => Some(HashKey::Header(name)),
                            Err(msg) => {
                                errors.push((format!("{f}.consistentHash.header"), msg));
                                None
                            }
                        },
                        (None, Some(c), false) => Some(HashKey::Cookie(c.as_str().into())),
                        (None, None, true) => Some(HashKey::SourceIp),
                        _ => {
                            errors.push((
                                format!("{f}.consistentHash"),
                                "set exactly one of header, cookie or sourceIP".into(),
                            ));
                            None
                        }
                    },
                };
                key.map_or(LoadBalance::RoundRobin, LoadBalance::ConsistentHash)
            }
        };
        if lb.consistent_hash.is_some()
            && !matches!(lb.policy, Some(LoadBalancerPolicy::ConsistentHash))
        {
            errors.push((
                format!("{f}.consistentHash"),
                "consistentHash is only used with policy ConsistentHash".into(),
            ));
        }
        if let Some(sa) = &lb.session_affinity {
            let name = sa
                .cookie_name
                .clone()
                .unwrap_or_else(|| "gatehouse-affinity".into());
            if check_header_name(&name).is_err() || name.contains(['=', ';', ',']) {
                errors.push((
                    format!("{f}.sessionAffinity.cookieName"),
                    format!("{name:?} is not a valid cookie name"),
                ));
            }
            let ttl = sa.ttl.as_ref().map(|t| {
                duration(
                    Some(t),
                    format!("{f}.sessionAffinity.ttl"),
                    Duration::ZERO,
                    errors,
                )
            });
            traffic.affinity = Some(Affinity {
                cookie: name.into(),
                ttl: ttl.filter(|t| !t.is_zero()),
            });
        }
    }
    traffic.retry = rule.retry.as_ref().map(|r| retry_policy(r, field, errors));
    if let Some(c) = &rule.compression {
        let f = format!("{field}.compression");
        let encodings = if c.algorithms.is_empty() {
            vec![Encoding::Br, Encoding::Zstd, Encoding::Gzip]
        } else {
            let mut list = Vec::new();
            for a in &c.algorithms {
                let e = match a {
                    CompressionAlgorithm::Br => Encoding::Br,
                    CompressionAlgorithm::Zstd => Encoding::Zstd,
                    CompressionAlgorithm::Gzip => Encoding::Gzip,
                };
                if !list.contains(&e) {
                    list.push(e);
                }
            }
            list
        };
        let min_bytes = match c.min_bytes {
            None => 1024,
            Some(n) => u64::try_from(n).unwrap_or_else(|_| {
                errors.push((format!("{f}.minBytes"), format!("{n} is negative")));
                0
            }),
        };
        let content_types = if c.content_types.is_empty() {
            CompressionPolicy::default_content_types()
        } else {
            c.content_types
                .iter()
                .map(|t| t.trim().to_ascii_lowercase().into())
                .collect()
        };
        traffic.compression = Some(CompressionPolicy {
            encodings,
            min_bytes,
            content_types,
        });
    }
    if let Some(limits) = &rule.limits
        && let Some(max) = limits.max_body_bytes
    {
        match u64::try_from(max) {
            Ok(n) => traffic.max_body_bytes = Some(n),
            Err(_) => errors.push((
                format!("{field}.limits.maxBodyBytes"),
                format!("{max} is negative"),
            )),
        }
    }
    if let Some(max) = rule
        .limits
        .as_ref()
        .and_then(|l| l.max_in_flight_per_client)
    {
        match u32::try_from(max) {
            Ok(n) if n > 0 => traffic.max_in_flight_per_client = Some(n),
            _ => errors.push((
                format!("{field}.limits.maxInFlightPerClient"),
                format!("{max} is not a positive number"),
            )),
        }
    }
    if let Some(idle) = rule.timeouts.as_ref().and_then(|t| t.idle.as_ref()) {
        traffic.idle_timeout = Some(duration(
            Some(idle),
            format!("{field}.timeouts.idle"),
            Duration::from_secs(3600),
            errors,
        ))
        .filter(|d| !d.is_zero());
    }
    traffic
}

/// The cluster-level settings a rule asks for.
pub(crate) fn cluster_settings(
    rule: &RouteRule,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> ClusterSettings {
    let mut settings = ClusterSettings::default();
    if let Some(o) = &rule.outlier_detection {
        let f = format!("{field}.outlierDetection");
        let d = OutlierPolicy::default();
        settings.outlier = OutlierPolicy {
            consecutive_failures: o
                .consecutive_failures
                .and_then(|n| small::<u32>(n, format!("{f}.consecutiveFailures"), 0..=1000, errors))
                .unwrap_or(d.consecutive_failures),
            base_ejection: duration(
                o.base_ejection_time.as_ref(),
                format!("{f}.baseEjectionTime"),
                d.base_ejection,
                errors,
            ),
            max_ejection_percent: o
                .max_ejection_percent
                .and_then(|n| small::<u8>(n, format!("{f}.maxEjectionPercent"), 0..=100, errors))
                .unwrap_or(d.max_ejection_percent),
        };
    }
    if let Some(h) = &rule.health_check {
        let f = format!("{field}.healthCheck");
        let path = match normalize_rule_path(&h.path) {
            Ok(p) => p,
            Err(msg) => {
                errors.push((format!("{f}.path"), msg));
                "/".to_owned()
            }
        };
        let interval = duration(
            h.interval.as_ref(),
            format!("{f}.interval"),
            Duration::from_secs(10),
            errors,
        );
        let timeout = duration(
            h.timeout.as_ref(),
            format!("{f}.timeout"),
            Duration::from_secs(2),
            errors,
        );
        if interval < Duration::from_millis(100) {
            errors.push((
                format!("{f}.interval"),
                "the interval must be at least 100ms".into(),
            ));
        }
        settings.health_check = Some(HealthCheckPolicy {
            path: path.into(),
            interval,
            timeout,
            unhealthy_threshold: h
                .unhealthy_threshold
                .and_then(|n| small::<u32>(n, format!("{f}.unhealthyThreshold"), 1..=100, errors))
                .unwrap_or(3),
            healthy_threshold: h
                .healthy_threshold
                .and_then(|n| small::<u32>(n, format!("{f}.healthyThreshold"), 1..=100, errors))
                .unwrap_or(2),
        });
    }
    settings
}

/// The upstream protocol: an explicit choice wins, else the Service port's
/// `appProtocol`, else HTTP/1.1. The second value is a warning to report
/// (an `appProtocol` Gatehouse does not know, treated as HTTP/1.1).
pub(crate) fn protocol(
    explicit: Option<BackendProtocol>,
    app_protocol: Option<&str>,
) -> Result<(UpstreamProtocol, bool, Option<String>), String> {
    match explicit {
        Some(BackendProtocol::HTTP) => return Ok((UpstreamProtocol::Http1, false, None)),
        Some(BackendProtocol::H2C | BackendProtocol::GRPC) => {
            return Ok((UpstreamProtocol::H2c, false, None));
        }
        Some(BackendProtocol::HTTPS) => return Ok((UpstreamProtocol::Http1, true, None)),
        Some(BackendProtocol::GRPCS) => return Ok((UpstreamProtocol::H2c, true, None)),
        None => {}
    }
    match app_protocol.map(str::to_ascii_lowercase).as_deref() {
        None | Some("http" | "http1" | "kubernetes.io/ws") => {
            Ok((UpstreamProtocol::Http1, false, None))
        }
        Some("kubernetes.io/h2c" | "h2c" | "grpc" | "http2") => {
            Ok((UpstreamProtocol::H2c, false, None))
        }
        Some("https" | "kubernetes.io/wss") => Ok((UpstreamProtocol::Http1, true, None)),
        Some("grpcs") => Ok((UpstreamProtocol::H2c, true, None)),
        Some(other) => Ok((
            UpstreamProtocol::Http1,
            false,
            Some(format!(
                "appProtocol {other:?} is not one Gatehouse knows (http, https, kubernetes.io/h2c, grpc); using HTTP/1.1"
            )),
        )),
    }
}
