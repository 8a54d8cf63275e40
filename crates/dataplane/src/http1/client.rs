//! HTTP/1.1 exchanges with plain-HTTP upstreams, driven by the request's
//! own task.
//!
//! Most proxied requests carry no body (GET, HEAD, DELETE, ...), and some
//! carry a small one the gateway has already read in full (for body
//! matching, validation or retries). For them the gateway writes the
//! request itself with one write, parses the response head with
//! `httparse`, and streams the response body straight from the socket
//! into the response, with no connection task, no channel between the
//! request and its connection, and no wake-up of another task. The
//! connection goes back to the pool the moment the last byte of the body
//! has been read. Streamed request bodies, upgrades and `Expect`
//! keep hyper's client (see `upstream/http1_pool.rs`).
//!
//! Framing follows RFC 9112 section 6.3: no body for HEAD, 1xx, 204 and
//! 304; `Transfer-Encoding` ending in `chunked` (any `Content-Length` is
//! then dropped and the connection not reused); one agreed
//! `Content-Length`; otherwise the body runs until the upstream closes.
//! Interim 1xx responses are skipped. Heads are bounded in size and
//! header count, chunk-size lines and trailers too; anything malformed is
//! an error for this request and the connection is closed.
//!
//! A pooled connection the upstream closed while it was idle is noticed
//! before use when the runtime has already seen its end, and otherwise
//! when the request finds it closed with no byte of response: an
//! idempotent request is then sent again on another connection.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::codec::{
    Decoded, Field, Framing, Kind, Names, decode_chunk, framing, header_map, poll_fill,
};
use crate::body::{BoxError, UpstreamBody};
use crate::headers::Forwarding;
use crate::upstream::connect::{UpstreamConfig, UpstreamError, connect_tcp, lock};
use crate::workers::PerWorker;

/// Largest response head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 128;
/// How much room a read asks for.
const READ_CHUNK: usize = 16 * 1024;
/// How many pooled connections that turn out closed are tried before a
/// new one is made.
const STALE_RETRIES: usize = 2;

/// Largest request body sent through this module: one already read in
/// full (body matching, validation, retries) and small enough to go out
/// with its head in one write. Larger ones stream through hyper's client,
/// which reads an early answer while the body is still being sent.
const MAX_WHOLE_BODY: usize = 64 * 1024;

/// Whether `req` goes through this module: no body or a small one held in
/// full, nothing that needs hyper's connection (upgrades, `Expect`), and
/// no framing that disagrees with the body.
pub(crate) fn handles(req: &Request<UpstreamBody>) -> bool {
    let h = req.headers();
    let length = match req.body() {
        UpstreamBody::Buffered(whole) if whole.len() <= MAX_WHOLE_BODY => whole.len(),
        body if body.is_end_stream() => 0,
        _ => return false,
    };
    if req.method() == Method::CONNECT {
        return false;
    }
    // One pass over the names (standard names compare as numbers) instead
    // of a hash lookup for each name asked about.
    for name in h.keys() {
        if name == header::UPGRADE || name == header::EXPECT || name == header::TRANSFER_ENCODING {
            return false;
        }
        if name == header::CONTENT_LENGTH
            && !h.get_all(name).iter().all(|v| {
                v.to_str().ok().and_then(|v| v.trim().parse::<usize>().ok()) == Some(length)
            })
        {
            return false;
        }
    }
    true
}

/// One connection to an upstream endpoint, with what has been read from
/// it and not yet consumed.
#[derive(Debug)]
struct Conn {
    io: TcpStream,
    buf: BytesMut,
    /// Where the last parsed head's names and values are (kept to reuse
    /// its allocation).
    fields: Vec<Field>,
    /// The names of the last head parsed.
    names: Names,
    /// When its latest exchange began: what its idle time is counted
    /// from once it is back in the pool (a little early, never late, and
    /// no second reading of the clock per request).
    since: Instant,
}

impl Conn {
    /// Reads more into the buffer; `Ok(0)` at the end of the stream.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        poll_fill(&mut self.io, &mut self.buf, READ_CHUNK, cx)
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// Whether the runtime has already seen the upstream close this idle
    /// connection (or send something unasked). Costs no system call when
    /// nothing happened on the socket.
    fn looks_closed(&mut self) -> bool {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.io.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                // Data or end of stream: unusable either way.
                !matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }
}
/// Idle connections by endpoint.
#[derive(Default)]
struct Endpoints {
    /// Hashed with foldhash, not SipHash: looked up twice per request,
    /// keyed by addresses from the snapshot, not by clients.
    #[allow(
        clippy::vec_box,
        reason = "connections are boxed for their whole life and move in and out whole"
    )]
    by_addr: HashMap<SocketAddr, Vec<Box<Conn>>, foldhash::fast::RandomState>,
    /// When every endpoint's list was last cleaned.
    swept: Option<Instant>,
}

/// Keep-alive connections for bodiless HTTP/1.1 requests, by endpoint,
/// a share per data-plane worker (see `workers.rs`).
pub(crate) struct Pool {
    endpoints: PerWorker<Endpoints>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h1::Pool")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

/// Why an exchange failed.
enum Failure {
    /// Nothing came back: the connection was closed or reset before the
    /// first byte of a response (a pooled connection the upstream had
    /// closed).
    Unanswered(io::Error),
    /// Anything else.
    Failed(BoxError),
}

impl Pool {
    /// A pool with a share for each of `config.workers` worker runtimes
    /// and one for other threads; `config.max_idle` bounds each share's
    /// list per endpoint.
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        Self {
            endpoints: PerWorker::new(config.workers),
            connect_timeout: config.connect_timeout,
            idle_timeout: config.idle_timeout,
            max_idle: config.max_idle.max(1),
        }
    }

    /// Sends `req` (see [`handles`]; origin-form URI, Host header set) to
    /// `endpoint`, with `forwarding`'s headers in place of any under their
    /// names in `req`. The request is borrowed, not moved into this
    /// future: only its encoded head is kept, and its header map is taken
    /// for the next message.
    pub(crate) async fn send(
        self: &Arc<Self>,
        endpoint: SocketAddr,
        req: &mut Request<UpstreamBody>,
        forwarding: Option<&Forwarding>,
    ) -> Result<Response<Body>, UpstreamError> {
        let head = encode(req, forwarding);
        // The head is encoded: its map can serve the next message.
        crate::headers::recycle_map(std::mem::take(req.headers_mut()));
        let method = req.method().clone();
        let bodiless_answer = method == Method::HEAD;
        let idempotent = matches!(
            method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        let mut stale = 0;
        let now = Instant::now();
        loop {
            let pooled = if stale < STALE_RETRIES {
                self.checkout(endpoint, now)
            } else {
                None
            };
            let reused = pooled.is_some();
            let mut conn = match pooled {
                Some(c) => c,
                None => self.connect(endpoint).await?,
            };
            conn.since = now;
            match self.exchange(conn, endpoint, &head, bodiless_answer).await {
                Ok(resp) => return Ok(resp),
                Err(Failure::Unanswered(_)) if reused && idempotent => stale += 1,
                Err(Failure::Unanswered(e)) => {
                    return Err(UpstreamError::Reset(
                        format!("upstream closed the connection without a response: {e}").into(),
                    ));
                }
                Err(Failure::Failed(e)) => return Err(UpstreamError::Reset(e)),
            }
        }
    }

    /// Writes `head` on `conn` and reads the response head.
    async fn exchange(
        self: &Arc<Self>,
        mut conn: Box<Conn>,
        endpoint: SocketAddr,
        head: &[u8],
        bodiless_answer: bool,
    ) -> Result<Response<Body>, Failure> {
        conn.io.write_all(head).await.map_err(Failure::Unanswered)?;
        let mut answered = false;
        loop {
            if !conn.buf.is_empty() {
                answered = true;
                if let Some(resp) = self.parse_head(&mut conn, endpoint, bodiless_answer)? {
                    return Ok(resp.map(|framing| Body::new(conn, framing, self.clone(), endpoint)));
                }
                if conn.buf.len() > MAX_HEAD_BYTES {
                    return Err(Failure::Failed(
                        format!("upstream response head is larger than {MAX_HEAD_BYTES} bytes")
                            .into(),
                    ));
                }
            }
            match conn.fill().await {
                Ok(0) if !answered => {
                    return Err(Failure::Unanswered(io::ErrorKind::UnexpectedEof.into()));
                }
                Ok(0) => {
                    return Err(Failure::Failed(
                        "upstream closed the connection in the middle of the response head".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) if !answered => return Err(Failure::Unanswered(e)),
                Err(e) => return Err(Failure::Failed(Box::new(e))),
            }
        }
    }

    /// Parses a response head from the start of `conn.buf`: `None` when
    /// more bytes are needed. Interim (1xx) responses are consumed and
    /// skipped.
    fn parse_head(
        &self,
        conn: &mut Conn,
        endpoint: SocketAddr,
        bodiless_answer: bool,
    ) -> Result<Option<Response<Framing>>, Failure> {
        loop {
            // Uninitialised: filling 128 empty slots for every response
            // costs more than parsing a small head.
            let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut []);
            let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut parsed,
                &conn.buf,
                &mut slots,
            ) {
                // Checked on the parsed head too: a head larger than the
                // limit may arrive in one read.
                Ok(httparse::Status::Complete(len)) if len > MAX_HEAD_BYTES => {
                    return Err(Failure::Failed(
                        format!("upstream response head is larger than {MAX_HEAD_BYTES} bytes")
                            .into(),
                    ));
                }
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(e) => {
                    return Err(Failure::Failed(
                        format!("invalid upstream response head: {e}").into(),
                    ));
                }
            };
            let code = parsed.code.unwrap_or_default();
            let status = StatusCode::from_u16(code).map_err(|e| Failure::Failed(Box::new(e)))?;
            if status == StatusCode::SWITCHING_PROTOCOLS {
                return Err(Failure::Failed(
                    "upstream switched protocols without being asked to".into(),
                ));
            }
            if status.is_informational() {
                let _ = conn.buf.split_to(len);
                if conn.buf.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            let version = if parsed.version == Some(0) {
                Version::HTTP_10
            } else {
                Version::HTTP_11
            };
            conn.fields.clear();
            let buf = &conn.buf[..];
            conn.fields
                .extend(parsed.headers.iter().map(|h| Field::of(buf, h)));
            let raw = conn.buf.split_to(len).freeze();
            // Room for the headers the gateway adds to the response.
            let mut headers = header_map(&raw, &conn.fields, 4, &mut conn.names)
                .map_err(|e| Failure::Failed(Box::new(e)))?;
            let framing = framing(&mut headers, version, status, bodiless_answer)
                .map_err(|e| Failure::Failed(format!("{e} (from {endpoint})").into()))?;
            let mut resp = Response::new(framing);
            *resp.status_mut() = status;
            *resp.version_mut() = version;
            *resp.headers_mut() = headers;
            return Ok(Some(resp));
        }
    }

    /// An idle connection to `endpoint`, dropping closed and expired ones
    /// on the way.
    fn checkout(&self, endpoint: SocketAddr, now: Instant) -> Option<Box<Conn>> {
        let mut endpoints = lock(self.endpoints.here());
        self.sweep(&mut endpoints, now);
        let list = endpoints.by_addr.get_mut(&endpoint)?;
        while let Some(mut conn) = list.pop() {
            if now.saturating_duration_since(conn.since) <= self.idle_timeout
                && !conn.looks_closed()
            {
                return Some(conn);
            }
        }
        None
    }

    /// Puts a connection whose exchange is complete back.
    fn checkin(&self, endpoint: SocketAddr, conn: Box<Conn>) {
        let mut endpoints = lock(self.endpoints.here());
        let list = endpoints.by_addr.entry(endpoint).or_default();
        if list.len() < self.max_idle {
            list.push(conn);
        }
    }

    /// How often the idle lists are cleaned.
    fn sweep_every(&self) -> Duration {
        (self.idle_timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(10))
    }

    /// Drops expired and closed connections of every endpoint (also of
    /// endpoints no request goes to any more), at most every
    /// [`Self::sweep_every`], as requests pass by.
    fn sweep(&self, endpoints: &mut Endpoints, now: Instant) {
        if endpoints
            .swept
            .is_some_and(|t| now.duration_since(t) < self.sweep_every())
        {
            return;
        }
        endpoints.swept = Some(now);
        let idle_timeout = self.idle_timeout;
        endpoints.by_addr.retain(|_, list| {
            list.retain_mut(|conn| {
                now.saturating_duration_since(conn.since) <= idle_timeout && !conn.looks_closed()
            });
            !list.is_empty()
        });
    }

    /// Cleans the idle lists on a timer as well, so connections the
    /// upstreams closed are released while no request passes. Stops with
    /// the pool; does nothing outside a Tokio runtime.
    pub(crate) fn sweep_in_background(self: &Arc<Self>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = Arc::downgrade(self);
        let every = self.sweep_every();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { break };
                for share in pool.endpoints.all() {
                    let mut endpoints = lock(share);
                    endpoints.swept = None;
                    pool.sweep(&mut endpoints, Instant::now());
                }
            }
        });
    }

    /// A new connection. Boxed once for its life: it moves from the pool
    /// into each exchange and response body and back, a pointer instead
    /// of its hundred bytes each time.
    async fn connect(&self, endpoint: SocketAddr) -> Result<Box<Conn>, UpstreamError> {
        Ok(Box::new(Conn {
            io: connect_tcp(endpoint, self.connect_timeout).await?,
            buf: BytesMut::with_capacity(READ_CHUNK),
            fields: Vec::new(),
            names: Names::default(),
            since: Instant::now(),
        }))
    }

    /// Pooled connections to `endpoint` (for tests).
    #[cfg(test)]
    pub(crate) fn pooled(&self, endpoint: SocketAddr) -> usize {
        self.endpoints
            .all()
            .map(|share| lock(share).by_addr.get(&endpoint).map_or(0, Vec::len))
            .sum()
    }
}

/// The request, ready to write: request line, headers (the map's, less
/// those `forwarding` owns, then `forwarding`'s), a `Content-Length` when
/// the body has bytes or the method normally carries content and none was
/// given, then the body.
fn encode(req: &Request<UpstreamBody>, forwarding: Option<&Forwarding>) -> Vec<u8> {
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let headers = req.headers();
    let body = match req.body() {
        UpstreamBody::Buffered(whole) => whole.bytes(),
        _ => &[],
    };
    // Iterated as a plain array: iterator adapters over it cost more than
    // the few headers they would visit.
    let added = forwarding.map(Forwarding::all);
    let mut size = req.method().as_str().len() + target.len() + 48 + body.len();
    for (name, value) in headers {
        size += name.as_str().len() + value.len() + 4;
    }
    for (name, value) in added.iter().flatten() {
        if let Some(value) = value {
            size += name.as_str().len() + value.len() + 4;
        }
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut has_length = false;
    for (name, value) in headers {
        if forwarding.is_some() && Forwarding::owns(name) {
            continue;
        }
        has_length |= *name == header::CONTENT_LENGTH;
        put_line(&mut out, name, value);
    }
    for (name, value) in added.iter().flatten() {
        if let Some(value) = value {
            put_line(&mut out, name, value);
        }
    }
    if !has_length
        && (!body.is_empty() || matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH))
    {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// Appends the header line `name: value`.
#[inline(always)]
fn put_line(out: &mut Vec<u8>, name: &HeaderName, value: &HeaderValue) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}
/// A response body read from the upstream connection as the client's side
/// asks for it. The connection returns to the pool at its end; dropped
/// earlier, the connection is closed.
pub(crate) struct Body {
    conn: Option<Box<Conn>>,
    kind: Kind,
    reuse: bool,
    pool: Arc<Pool>,
    endpoint: SocketAddr,
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("h1::Body")
            .field("kind", &self.kind)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// A response body that could not be read to its end.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BodyError(String);

impl Body {
    fn new(conn: Box<Conn>, framing: Framing, pool: Arc<Pool>, endpoint: SocketAddr) -> Self {
        let mut body = Self {
            conn: Some(conn),
            kind: framing.kind,
            reuse: framing.reuse,
            pool,
            endpoint,
        };
        if matches!(body.kind, Kind::Done) {
            body.finish();
        }
        body
    }

    /// The body has been read to its end: the connection goes back to the
    /// pool when nothing unasked-for follows it.
    fn finish(&mut self) {
        self.kind = Kind::Done;
        if let Some(conn) = self.conn.take()
            && self.reuse
            && conn.buf.is_empty()
        {
            self.pool.checkin(self.endpoint, conn);
        }
    }

    fn fail(&mut self, message: String) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.kind = Kind::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Box::new(BodyError(message)))))
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match this.kind {
                Kind::Done => return Poll::Ready(None),
                Kind::Length(left) => {
                    if !conn.buf.is_empty() {
                        let n = conn
                            .buf
                            .len()
                            .min(usize::try_from(left).unwrap_or(usize::MAX));
                        let data = conn.buf.split_to(n).freeze();
                        let left = left - n as u64;
                        this.kind = Kind::Length(left);
                        if left == 0 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Kind::Close => {
                    if !conn.buf.is_empty() {
                        let data = conn.buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Kind::Chunked(state) => match decode_chunk(&mut conn.buf, state) {
                    Ok(Decoded::Frame(frame, next)) => {
                        this.kind = Kind::Chunked(next);
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    Ok(Decoded::Next(next)) => {
                        this.kind = Kind::Chunked(next);
                        continue;
                    }
                    Ok(Decoded::End(trailers)) => {
                        this.finish();
                        return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
                    }
                    Ok(Decoded::More) => {}
                    Err(e) => return this.fail(format!("invalid chunked body from upstream: {e}")),
                },
            }
            // The buffer holds nothing usable: read.
            match ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    if matches!(this.kind, Kind::Close) {
                        this.kind = Kind::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                    return this
                        .fail("upstream closed the connection before the end of the body".into());
                }
                Ok(_) => {}
                Err(e) => return this.fail(format!("reading the upstream body: {e}")),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.kind, Kind::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.kind {
            Kind::Length(n) => SizeHint::with_exact(n),
            Kind::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests;
