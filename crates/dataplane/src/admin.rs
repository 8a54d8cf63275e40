//! The admin listener: health, readiness and the live configuration.
//!
//! Bind it to loopback (the default) or a private interface: it reveals
//! the routing configuration.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::state::Gateway;

/// Serves `/healthz`, `/readyz` and `/debug/snapshot` until `shutdown`
/// completes.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let gateway = gateway.clone();
        let service = service_fn(move |req| {
            let gateway = gateway.clone();
            async move { Ok::<_, Infallible>(handle(&gateway, &req)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

fn handle(gateway: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.uri().path() == "/cache/purge" {
        return purge(gateway, req);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if gateway.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "waiting for the first configuration\n",
        ),
        "/debug/snapshot" => {
            let body = serde_json::json!({
                "generation": gateway.generation(),
                "snapshot": &*gateway.snapshot(),
            });
            match serde_json::to_vec_pretty(&body) {
                Ok(bytes) => {
                    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/json"),
                    );
                    resp
                }
                Err(_) => text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot render the snapshot\n",
                ),
            }
        }
        "/metrics" => metrics(gateway),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// `POST /cache/purge?host=H&prefix=/P`: removes cached responses for
/// host `H` whose path starts with `/P` (default `/`).
fn purge(gateway: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let params: Vec<(String, String)> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), snapshot::percent_decode(v).into_owned()))
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(host) = get("host") else {
        return text(
            StatusCode::BAD_REQUEST,
            "give ?host= (and optionally &prefix=)\n",
        );
    };
    let prefix = get("prefix").unwrap_or("/");
    let removed = gateway
        .cache()
        .map_or(0, |c| c.purge(&host.to_ascii_lowercase(), prefix));
    tracing::info!(host, prefix, removed, "cache purged");
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "{{\"removed\":{removed}}}\n"
    ))));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The metrics the gateway keeps so far, in the OpenMetrics text format.
fn metrics(gateway: &Gateway) -> Response<Full<Bytes>> {
    use std::fmt::Write;
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# TYPE {name} counter\n# HELP {name} {help}\n{name}_total {value}\n"
        );
    };
    counter(
        "gatehouse_snapshot_publishes",
        "Snapshots published.",
        gateway.generation(),
    );
    if let Some(c) = gateway.rate_limit_counters() {
        counter(
            "gatehouse_ratelimit_rejected",
            "Requests rejected by a rate limit.",
            c.rejected.load(Relaxed),
        );
        counter(
            "gatehouse_ratelimit_redis_failures",
            "Global rate-limit checks that could not reach Redis in time.",
            c.redis_failures.load(Relaxed),
        );
        counter(
            "gatehouse_ratelimit_failed_open",
            "Requests let through because Redis could not be checked (failureMode Open).",
            c.failed_open.load(Relaxed),
        );
    }
    if let Some(c) = gateway.cache() {
        counter(
            "gatehouse_cache_hits",
            "Responses served from the cache.",
            c.counters.hits.load(Relaxed),
        );
        counter(
            "gatehouse_cache_misses",
            "Cache lookups that went upstream.",
            c.counters.misses.load(Relaxed),
        );
    }
    out.push_str("# EOF\n");
    let mut resp = Response::new(Full::new(Bytes::from(out)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
