//! The one place where failures become HTTP responses.
//!
//! Every error a request can meet is a [`ProxyError`], which records where
//! it came from (the client, the configuration, the upstream). This module
//! alone decides the status code and body for each, so the mapping is
//! consistent and easy to audit.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::error::BoxError;
use crate::grpc;
use crate::proxy_body::ProxyBody;

/// Why a request could not be proxied.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    /// No route matches the request.
    #[error("no route matches the request")]
    NoRoute,
    /// The request has no usable Host.
    #[error("the request has no valid Host header")]
    BadHost,
    /// The request path cannot be normalized safely.
    #[error("invalid request path: {0}")]
    BadPath(snapshot::PathError),
    /// Body conditions need the body, and it is larger than the limit.
    #[error("request body larger than the body-matching limit")]
    BodyTooLarge,
    /// The client's body could not be read.
    #[error("reading the request body failed: {0}")]
    BodyRead(String),
    /// The matched route has no backend with a weight above zero.
    #[error("the route has no backends")]
    NoBackends,
    /// The chosen backend did not resolve when the configuration was built.
    #[error("backend unavailable: {reason}")]
    Unresolved {
        /// Status configured for the unresolved share.
        status: u16,
        /// What did not resolve.
        reason: String,
    },
    /// The cluster has no ready endpoint.
    #[error("no healthy upstream for {cluster}")]
    NoEndpoints {
        /// The cluster's name.
        cluster: String,
    },
    /// Connecting to the upstream failed.
    #[error("upstream connect error: {0}")]
    UpstreamConnect(#[source] BoxError),
    /// The upstream failed after the connection was made.
    #[error("upstream error: {0}")]
    Upstream(#[source] BoxError),
    /// The request body is larger than the route allows.
    #[error("request body larger than the route's limit")]
    BodyLimit,
    /// The upstream did not answer in time.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// The request names a host whose TLS settings (client certificates)
    /// differ from those of the host the connection was made for.
    #[error("the request's host needs its own TLS connection")]
    Misdirected,
    /// A rate limit rejected the request.
    #[error("rate limited")]
    RateLimited,
    /// The external authorization service said no: its answer.
    #[error("denied by the authorization service ({})", .0.0)]
    AuthDenied(Box<(StatusCode, http::HeaderMap, Bytes)>),
    /// The external authorization service could not be asked.
    #[error("the authorization service is unavailable")]
    AuthUnavailable,
    /// The request failed validation; the problem document.
    #[error("the request is invalid")]
    Invalid(Bytes),
    /// The request's media type is not accepted.
    #[error("unsupported media type")]
    UnsupportedMediaType,
    /// The client address is not allowed.
    #[error("the client address is not allowed")]
    Forbidden,
    /// Credentials are missing or wrong; the value is the challenge.
    #[error("authentication required")]
    Unauthorized(HeaderValue),
    /// The client has as many requests in flight on the route as it may.
    #[error("too many requests in flight from this client")]
    TooManyInFlight,
    /// A global rate limit could not be checked and fails closed.
    #[error("the rate limit could not be checked")]
    RateLimitUnavailable,
}

impl ProxyError {
    /// The status code the client receives.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::NoRoute => StatusCode::NOT_FOUND,
            Self::BadHost | Self::BadPath(_) | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge | Self::BodyLimit => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NoBackends => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unresolved { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Self::NoEndpoints { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamConnect(_) | Self::Upstream(_) => StatusCode::BAD_GATEWAY,
            Self::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Misdirected => StatusCode::MISDIRECTED_REQUEST,
            Self::RateLimited | Self::TooManyInFlight => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::AuthDenied(a) => a.0,
            Self::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::RateLimitUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// A short body that says what happened without echoing anything the
    /// client sent or naming internal addresses.
    fn body(&self) -> &'static str {
        match self {
            Self::NoRoute => "no route matches this request\n",
            Self::BadHost => "the request has no valid Host header\n",
            Self::BadPath(_) => "invalid request path\n",
            Self::BodyRead(_) => "the request body could not be read\n",
            Self::BodyTooLarge | Self::BodyLimit => "request body too large\n",
            Self::NoBackends | Self::Unresolved { .. } => {
                "the backend for this route is not available\n"
            }
            Self::NoEndpoints { .. } => "no healthy upstream\n",
            Self::UpstreamConnect(_) => "upstream connect error\n",
            Self::Upstream(_) => "upstream error\n",
            Self::UpstreamTimeout => "upstream request timeout\n",
            Self::Misdirected => "open a new connection for this host\n",
            Self::RateLimited | Self::TooManyInFlight => "too many requests\n",
            Self::Forbidden | Self::AuthDenied(_) => "forbidden\n",
            Self::AuthUnavailable => "authorization unavailable\n",
            Self::Invalid(_) => "invalid request\n",
            Self::UnsupportedMediaType => "unsupported media type\n",
            Self::Unauthorized(_) => "authentication required\n",
            Self::RateLimitUnavailable => "rate limit unavailable\n",
        }
    }

    /// The gRPC status for this error, as the gRPC HTTP/2 mapping
    /// prescribes.
    fn grpc_code(&self) -> grpc::Code {
        match self {
            Self::NoRoute => grpc::Code::Unimplemented,
            Self::UpstreamTimeout => grpc::Code::DeadlineExceeded,
            Self::BodyTooLarge | Self::BodyLimit | Self::RateLimited | Self::TooManyInFlight => {
                grpc::Code::ResourceExhausted
            }
            Self::RateLimitUnavailable => grpc::Code::Unavailable,
            Self::Forbidden | Self::AuthDenied(_) => grpc::Code::PermissionDenied,
            Self::AuthUnavailable => grpc::Code::Unavailable,
            Self::Invalid(_) | Self::UnsupportedMediaType => grpc::Code::Internal,
            Self::Unauthorized(_) => grpc::Code::Unauthenticated,
            Self::BadHost | Self::BadPath(_) | Self::BodyRead(_) | Self::Misdirected => {
                grpc::Code::Internal
            }
            Self::NoBackends
            | Self::Unresolved { .. }
            | Self::NoEndpoints { .. }
            | Self::UpstreamConnect(_)
            | Self::Upstream(_) => grpc::Code::Unavailable,
        }
    }

    /// The response for this error: plain text, or for gRPC clients a
    /// trailers-only gRPC answer they can read.
    pub(crate) fn into_response(self, grpc: Option<(grpc::GrpcKind, &str)>) -> Response<ProxyBody> {
        if let (Self::AuthDenied(answer), None) = (&self, &grpc) {
            let (status, headers, body) = &**answer;
            let mut resp = Response::new(ProxyBody::full(body.clone()));
            *resp.status_mut() = *status;
            *resp.headers_mut() = headers.clone();
            return resp;
        }
        if let (Self::Invalid(doc), None) = (&self, &grpc) {
            let mut resp = Response::new(ProxyBody::full(doc.clone()));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            return resp;
        }
        let challenge = match &self {
            Self::Unauthorized(c) => Some(c.clone()),
            _ => None,
        };
        let Some((kind, suffix)) = grpc else {
            let mut resp = plain(self.status(), self.body());
            if let Some(c) = challenge {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, c);
            }
            return resp;
        };
        let mut resp = Response::new(ProxyBody::full(Bytes::new()));
        let headers = resp.headers_mut();
        let base = match kind {
            grpc::GrpcKind::Grpc => "application/grpc",
            grpc::GrpcKind::Web => "application/grpc-web",
            grpc::GrpcKind::WebText => "application/grpc-web-text",
        };
        if let Ok(ct) = HeaderValue::try_from(format!("{base}{suffix}")) {
            headers.insert(header::CONTENT_TYPE, ct);
        }
        headers.insert("grpc-status", HeaderValue::from(self.grpc_code() as u16));
        if let Ok(msg) = HeaderValue::try_from(self.body().trim_end()) {
            headers.insert("grpc-message", msg);
        }
        resp
    }
}

/// A plain-text response generated by the gateway.
pub(crate) fn plain(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
