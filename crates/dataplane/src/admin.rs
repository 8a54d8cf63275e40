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

use crate::cache::Purge;
use crate::state::Gateway;

/// Serves the admin endpoints until `shutdown` completes: `/healthz`,
/// `/readyz`, `/metrics`, `/debug/snapshot`, `/debug/routes`,
/// `/debug/explain` and `POST /cache/purge`.
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
        "/debug/snapshot" => json(&serde_json::json!({
            "generation": gateway.generation(),
            "snapshot": &*gateway.snapshot(),
        })),
        "/metrics" => metrics(gateway),
        "/debug/explain" => explain(gateway, req),
        "/debug/routes" => json(&gateway.snapshot().route_table()),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// The query parameters of a request, percent-decoded.
/// The first value of query parameter `name`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn query_params(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .map(|(k, v)| {
            let decode = |s: &str| snapshot::percent_decode(&s.replace('+', " ")).into_owned();
            (decode(k), decode(v))
        })
        .collect()
}

/// `GET /debug/explain?host=H&path=/P&method=M&header=Name:Value&query=Q`:
/// where that request would go and why. `header` may repeat; `query` is
/// the request's query string.
fn explain(gateway: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let params = query_params(req);
    let get = |name: &str| param(&params, name);
    let Some(host) = get("host") else {
        return text(
            StatusCode::BAD_REQUEST,
            "give ?host= (and optionally &path=, &method=, &header=Name:Value, &query=)\n",
        );
    };
    let Some((host, _)) = crate::connection::split_host(host) else {
        return text(
            StatusCode::BAD_REQUEST,
            "host has a port that is not a number\n",
        );
    };
    let Ok(method) = Method::from_bytes(get("method").unwrap_or("GET").as_bytes()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "method is not a valid HTTP method\n",
        );
    };
    let Ok(path) = snapshot::normalize_path(get("path").unwrap_or("/")) else {
        return text(StatusCode::BAD_REQUEST, "path cannot be normalized\n");
    };
    let mut headers = http::HeaderMap::new();
    for (_, h) in params.iter().filter(|(k, _)| k == "header") {
        let parsed = h.split_once(':').and_then(|(n, v)| {
            Some((
                http::HeaderName::from_bytes(n.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(v.trim()).ok()?,
            ))
        });
        match parsed {
            Some((n, v)) => {
                headers.append(n, v);
            }
            None => {
                return text(StatusCode::BAD_REQUEST, "header must be Name:Value\n");
            }
        }
    }
    let snapshot = gateway.snapshot();
    let info = snapshot::RequestInfo {
        host: &host,
        path: &path,
        query: get("query"),
        method: &method,
        headers: &headers,
        body: snapshot::Body::Unread,
    };
    json(&snapshot.explain(&info))
}

fn json(value: &impl serde::Serialize) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            let mut resp = Response::new(Full::new(Bytes::from(bytes)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp
        }
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot render the answer\n",
        ),
    }
}

/// `POST /cache/purge?host=H&prefix=/P` removes cached responses for host
/// `H` whose path starts with `/P` (default `/`); `&path=/P[&query=Q]`
/// instead removes those of exactly one path (and query).
fn purge(gateway: &Gateway, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::POST {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n");
    }
    let params = query_params(req);
    let get = |name: &str| param(&params, name);
    let Some(host) = get("host") else {
        return text(
            StatusCode::BAD_REQUEST,
            "give ?host= and either &prefix=/p or &path=/p (with &query=q for one key)\n",
        );
    };
    let which = match (get("prefix"), get("path"), get("query")) {
        (Some(_), Some(_), _) | (Some(_), None, Some(_)) => {
            return text(
                StatusCode::BAD_REQUEST,
                "give &prefix= or &path= (and &query= only with &path=), not both\n",
            );
        }
        (prefix, None, None) => Purge::Prefix(prefix.unwrap_or("/").into()),
        (None, path, query) => Purge::Key {
            path: path.unwrap_or("/").into(),
            query: query.map(Into::into),
        },
    };
    let removed = gateway.cache().purge(&host.to_ascii_lowercase(), &which);
    tracing::info!(host, ?which, removed, "cache purged");
    let mut resp = Response::new(Full::new(Bytes::from(format!(
        "{{\"removed\":{removed}}}\n"
    ))));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Every metric family, in the OpenMetrics text format.
fn metrics(gateway: &Gateway) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(gateway.telemetry().metrics.encode())));
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
