//! What the phases share: the per-request context, the request as it
//! moves through the phases, and the target the client asked for.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderName, HeaderValue};
use hyper::upgrade::OnUpgrade;

use crate::body::ClientBody;
use crate::connection::Connection;
use crate::deadline::RequestClock;
use crate::grpc::GrpcKind;
use crate::observe::Observation;
use crate::ratelimit::{ClientSlot, Decision};

/// One request's context: who asked, and what every response to it gets
/// whichever phase ends the request (its log record, HSTS, CORS and
/// rate-limit headers, the client's in-flight slot). Phases add to it;
/// the finish phase (`finish.rs`) applies it to the response.
pub(super) struct RequestCtx<'a> {
    /// The connection the request came in on.
    pub(super) conn: &'a Connection,
    /// The connection's clock, which keeps the request's time limit.
    pub(super) clock: Option<&'a RequestClock>,
    /// The request's ID: the client's `X-Request-Id`, or a new one.
    pub(super) request_id: HeaderValue,
    /// gRPC flavour and content-type suffix, when the request is gRPC.
    pub(super) grpc: Option<(GrpcKind, String)>,
    /// The client's address (the peer's, or a trusted proxy's word).
    pub(super) client_ip: IpAddr,
    /// The peer is a trusted proxy.
    pub(super) peer_trusted: bool,
    /// What the log phase records; on the heap from the start, so handing
    /// it to the response body at the end moves a pointer, not the record.
    pub(super) obs: Box<Observation>,
    /// `Strict-Transport-Security` for the host.
    pub(super) hsts: Option<HeaderValue>,
    /// The capacity and decision of the rate limit to report.
    pub(super) rate_limit: Option<(u32, Decision)>,
    /// CORS policy and the request's `Origin`.
    pub(super) cors: Option<(Arc<snapshot::CorsPolicy>, HeaderValue)>,
    /// The client's in-flight slot, held until the response body ends.
    pub(super) slot: Option<ClientSlot>,
    /// The header that carries the verified client certificate's subject
    /// upstream, and that subject (none: the header is removed).
    pub(super) client_subject: Option<(HeaderName, Option<HeaderValue>)>,
}

impl RequestCtx<'_> {
    /// The gRPC flavour and suffix, borrowed.
    pub(super) fn grpc(&self) -> Option<(GrpcKind, &str)> {
        self.grpc.as_ref().map(|(k, s)| (*k, s.as_str()))
    }
}

/// The request body as the pipeline holds it.
pub(super) enum ReqBody {
    /// Not read yet: streamed upstream as it arrives.
    Streamed(ClientBody),
    /// Read in full (for body conditions, validation or retries).
    Buffered(Bytes),
}

impl ReqBody {
    /// The body, leaving an empty one in its place (for a phase that
    /// reads it and puts back what it read).
    pub(super) fn take(&mut self) -> Self {
        std::mem::replace(self, Self::Buffered(Bytes::new()))
    }
}

/// The request as it moves through the phases, which change it on its
/// way upstream.
pub(super) struct Downstream {
    /// Method, URI, version and headers.
    pub(super) parts: Parts,
    /// The body.
    pub(super) body: ReqBody,
    /// The client's side of a protocol switch, when it asks for one.
    pub(super) on_upgrade: Option<OnUpgrade>,
}

/// What the client asked for, normalized: host, port, path and query.
/// Borrowed from the request as it arrived, and never changed.
pub(super) struct Target<'r> {
    /// Host, lowercase, without port or trailing dot.
    pub(super) host: Cow<'r, str>,
    /// The port the client named, if any.
    pub(super) port: Option<u16>,
    /// The normalized path.
    pub(super) path: Cow<'r, str>,
    /// The query, as sent.
    pub(super) query: Option<&'r str>,
}
