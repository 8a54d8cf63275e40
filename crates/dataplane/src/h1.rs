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
//! keep hyper's client (see `pool.rs`).
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
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::body::{BoxError, UpstreamBody};
use crate::headers::Forwarding;
use crate::upstream::{UpstreamConfig, UpstreamError, connect_tcp, lock};
use crate::workers::PerWorker;

/// Largest response head (status line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most response headers accepted.
const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILER_BYTES: usize = 16 * 1024;
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

/// Reads more from `io` into `buf`, making room for `chunk` bytes when
/// little is left; `Ok(0)` at the end of the stream. (Through
/// `AsyncRead`, which takes a short read as the socket being drained: the
/// next read waits for readiness instead of trying a read that would
/// block.)
pub(crate) fn poll_fill<R: AsyncRead + Unpin>(
    io: &mut R,
    buf: &mut BytesMut,
    chunk: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    if buf.capacity() - buf.len() < chunk / 4 {
        buf.reserve(chunk);
    }
    tokio_util::io::poll_read_buf(Pin::new(io), cx, buf)
}

/// Where a header's name and value sit in a parsed head (start and end
/// offsets), so the values can share the head's bytes once it is split
/// off the read buffer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Field {
    name: (usize, usize),
    value: (usize, usize),
}

impl Field {
    /// The place of `header`, parsed from `buf`.
    pub(crate) fn of(buf: &[u8], header: &httparse::Header<'_>) -> Self {
        Self {
            name: place(buf, header.name.as_bytes()),
            value: place(buf, header.value),
        }
    }
}

/// Start and end of `part`, a slice of `buf`, as offsets into `buf`.
pub(crate) fn place(buf: &[u8], part: &[u8]) -> (usize, usize) {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    (start, start + part.len())
}

/// The header map of a head split off as `raw`, its values sharing
/// `raw`'s bytes, with room for `room` more headers; `names` holds the
/// names of the connection's previous head.
pub(crate) fn header_map(
    raw: &Bytes,
    fields: &[Field],
    room: usize,
    names: &mut Names,
) -> Result<HeaderMap, http::Error> {
    let mut headers = crate::headers::empty_map(fields.len() + room);
    for (i, f) in fields.iter().enumerate() {
        let name = names.name(i, &raw[f.name.0..f.name.1])?;
        let value = HeaderValue::from_maybe_shared(raw.slice(f.value.0..f.value.1))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The header names of the last head read on one connection, by position,
/// with their bytes as they were sent. A keep-alive peer sends the same
/// names in the same order message after message: a name found again is
/// one comparison of bytes, where making it anew means lowercasing,
/// checking every byte and looking it up among the standard names (and an
/// allocation for any other name).
#[derive(Debug, Default)]
pub(crate) struct Names {
    seen: Vec<Seen>,
}

/// Positions remembered: a head's first few headers, the ones a client
/// repeats (at most about 1 KiB a connection).
const NAMES_KEPT: usize = 16;

/// The longest name remembered, in bytes.
const NAME_KEPT_BYTES: usize = 32;

#[derive(Debug)]
struct Seen {
    raw: [u8; NAME_KEPT_BYTES],
    len: u8,
    name: HeaderName,
}

impl Names {
    /// The name sent as `raw` at position `i` of a head.
    pub(crate) fn name(
        &mut self,
        i: usize,
        raw: &[u8],
    ) -> Result<HeaderName, http::header::InvalidHeaderName> {
        if let Some(seen) = self.seen.get(i)
            && usize::from(seen.len) == raw.len()
            && seen.raw[..raw.len()] == *raw
        {
            return Ok(seen.name.clone());
        }
        let name = HeaderName::from_bytes(raw)?;
        if raw.len() <= NAME_KEPT_BYTES && i <= self.seen.len() && i < NAMES_KEPT {
            let mut kept = [0; NAME_KEPT_BYTES];
            kept[..raw.len()].copy_from_slice(raw);
            let seen = Seen {
                raw: kept,
                len: raw.len() as u8,
                name: name.clone(),
            };
            if i == self.seen.len() {
                self.seen.push(seen);
            } else {
                self.seen[i] = seen;
            }
        }
        Ok(name)
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

/// How a response body is delimited, and whether the connection can carry
/// another request afterwards.
#[derive(Debug)]
pub(crate) struct Framing {
    kind: Kind,
    reuse: bool,
}

#[derive(Debug)]
enum Kind {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Close,
    Done,
}

#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// At a chunk-size line.
    Size,
    /// Inside a chunk: bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: trailers (or just the final CRLF).
    Trailers,
}

/// The framing of a response (RFC 9112 section 6.3), fixing the headers
/// where they disagree with it.
fn framing(
    headers: &mut HeaderMap,
    version: Version,
    status: StatusCode,
    bodiless_answer: bool,
) -> Result<Framing, String> {
    let said = Said::of(headers);
    let mut reuse = !said.close && (version == Version::HTTP_11 || said.keep_alive);
    let chunked = said.transfer_encoding.map(|te| {
        te.to_str()
            .unwrap_or("")
            .rsplit(',')
            .map(str::trim)
            .find(|t| !t.is_empty())
            .unwrap_or("")
            .eq_ignore_ascii_case("chunked")
    });
    let length = said.length;
    let kind = if bodiless_answer
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Kind::Done
    } else if let Some(chunked) = chunked {
        if length.is_some() {
            // Both: the length is ignored, and the connection is not to be
            // trusted with another request.
            headers.remove(header::CONTENT_LENGTH);
            reuse = false;
        }
        if chunked {
            Kind::Chunked(Chunk::Size)
        } else {
            Kind::Close
        }
    } else if let Some(length) = length {
        match length? {
            0 => Kind::Done,
            n => Kind::Length(n),
        }
    } else {
        Kind::Close
    };
    if matches!(kind, Kind::Close) {
        reuse = false;
    }
    Ok(Framing { kind, reuse })
}

/// What a message's framing and connection headers say, read in one pass
/// over its headers: a lookup for each name would cost a hash each, more
/// than walking the few headers a message has.
#[derive(Debug, Default)]
pub(crate) struct Said<'a> {
    /// `Connection` names `close`.
    pub(crate) close: bool,
    /// `Connection` names `keep-alive`.
    pub(crate) keep_alive: bool,
    /// The last `Transfer-Encoding` value.
    pub(crate) transfer_encoding: Option<&'a HeaderValue>,
    /// The length all `Content-Length` values agree on, or why there is
    /// none; `None` without the header.
    pub(crate) length: Option<Result<u64, String>>,
    /// There is a `Date` header.
    pub(crate) dated: bool,
}

impl<'a> Said<'a> {
    pub(crate) fn of(headers: &'a HeaderMap) -> Self {
        let mut said = Self::default();
        for (name, value) in headers {
            if *name == header::CONNECTION {
                // A value that is not plain text is taken as `close`.
                said.close |= value.to_str().is_err();
                for token in value.as_bytes().split(|b| *b == b',') {
                    let token = token.trim_ascii();
                    said.close |= token.eq_ignore_ascii_case(b"close");
                    said.keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            } else if *name == header::TRANSFER_ENCODING {
                said.transfer_encoding = Some(value);
            } else if *name == header::CONTENT_LENGTH {
                said.length = Some(match said.length {
                    None => add_length(None, value),
                    Some(Ok(n)) => add_length(Some(n), value),
                    Some(Err(e)) => Err(e),
                });
            } else if *name == header::DATE {
                said.dated = true;
            }
        }
        said
    }
}

/// The length one `Content-Length` value gives (a list must repeat one
/// number), checked against the length earlier values gave.
fn add_length(mut length: Option<u64>, value: &HeaderValue) -> Result<u64, String> {
    for part in value.as_bytes().split(|b| *b == b',') {
        let part = part.trim_ascii();
        if part.is_empty() || part.len() > 19 || !part.iter().all(u8::is_ascii_digit) {
            return Err("invalid content-length from upstream".into());
        }
        let n = part.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        if length.is_some_and(|l| l != n) {
            return Err("conflicting content-length values from upstream".into());
        }
        length = Some(n);
    }
    length.ok_or_else(|| "invalid content-length from upstream".into())
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

/// What decoding a chunked body from the buffer gave.
enum Decoded {
    /// A frame to pass on, and the state after it.
    Frame(Frame<Bytes>, Chunk),
    /// Progress without a frame (a size line or a CRLF consumed).
    Next(Chunk),
    /// The body is complete, with its trailers if any.
    End(Option<HeaderMap>),
    /// More bytes are needed.
    More,
}

/// One step of decoding a chunked body (RFC 9112 section 7.1) from the
/// start of `buf`.
fn decode_chunk(buf: &mut BytesMut, state: Chunk) -> Result<Decoded, &'static str> {
    match state {
        Chunk::Size => {
            let Some(end) = buf.iter().position(|b| *b == b'\n') else {
                return if buf.len() > MAX_CHUNK_LINE {
                    Err("chunk-size line too long")
                } else {
                    Ok(Decoded::More)
                };
            };
            if end > MAX_CHUNK_LINE {
                return Err("chunk-size line too long");
            }
            let line = buf.split_to(end + 1);
            let line = line
                .strip_suffix(b"\r\n")
                .ok_or("chunk-size line not ended by CRLF")?;
            let digits = line
                .iter()
                .position(|b| !b.is_ascii_hexdigit())
                .unwrap_or(line.len());
            if digits == 0 || digits > 16 {
                return Err("invalid chunk size");
            }
            // After the size, only extensions (`;name=value`), possibly
            // after whitespace.
            let rest = line[digits..].trim_ascii_start();
            if !rest.is_empty() && rest[0] != b';' {
                return Err("invalid chunk size");
            }
            let size = line[..digits].iter().fold(0u64, |n, d| {
                let v = match d {
                    b'0'..=b'9' => d - b'0',
                    b'a'..=b'f' => d - b'a' + 10,
                    _ => d - b'A' + 10,
                };
                (n << 4) | u64::from(v)
            });
            Ok(Decoded::Next(if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            }))
        }
        Chunk::Data(left) => {
            if buf.is_empty() {
                return Ok(Decoded::More);
            }
            let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let data = buf.split_to(n).freeze();
            let left = left - n as u64;
            let next = if left == 0 {
                Chunk::DataEnd
            } else {
                Chunk::Data(left)
            };
            Ok(Decoded::Frame(Frame::data(data), next))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Decoded::More);
            }
            if &buf[..2] != b"\r\n" {
                return Err("chunk data not followed by CRLF");
            }
            let _ = buf.split_to(2);
            Ok(Decoded::Next(Chunk::Size))
        }
        Chunk::Trailers => {
            if buf.len() < 2 {
                return Ok(Decoded::More);
            }
            if buf.starts_with(b"\r\n") {
                let _ = buf.split_to(2);
                return Ok(Decoded::End(None));
            }
            let mut slots = [httparse::EMPTY_HEADER; 32];
            match httparse::parse_headers(buf, &mut slots) {
                Ok(httparse::Status::Complete((len, parsed))) => {
                    let mut trailers = HeaderMap::with_capacity(parsed.len());
                    for h in parsed {
                        let name = HeaderName::from_bytes(h.name.as_bytes())
                            .map_err(|_| "invalid trailer")?;
                        let value =
                            HeaderValue::from_bytes(h.value).map_err(|_| "invalid trailer")?;
                        trailers.append(name, value);
                    }
                    let _ = buf.split_to(len);
                    Ok(Decoded::End(Some(trailers)))
                }
                Ok(httparse::Status::Partial) if buf.len() > MAX_TRAILER_BYTES => {
                    Err("trailers too large")
                }
                Ok(httparse::Status::Partial) => Ok(Decoded::More),
                Err(_) => Err("invalid trailers"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use http_body_util::{BodyExt, Empty};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::AsyncReadExt;

    /// What the scripted upstream saw.
    #[derive(Default)]
    struct Seen {
        connections: AtomicUsize,
        heads: Mutex<Vec<String>>,
    }

    /// An upstream answering request heads with `script` in order (across
    /// connections); each answer is raw bytes and whether to close the
    /// connection after it.
    async fn upstream(script: Vec<(&'static [u8], bool)>) -> (SocketAddr, Arc<Seen>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let script = Arc::new(Mutex::new(std::collections::VecDeque::from(script)));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                record.connections.fetch_add(1, Ordering::SeqCst);
                let (record, script) = (record.clone(), script.clone());
                tokio::spawn(async move {
                    let mut pending = Vec::new();
                    let mut buf = [0u8; 4096];
                    loop {
                        let end = loop {
                            if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                                break i + 4;
                            }
                            match s.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => pending.extend_from_slice(&buf[..n]),
                            }
                        };
                        let head: Vec<u8> = pending.drain(..end).collect();
                        lock(&record.heads).push(String::from_utf8(head).unwrap());
                        let Some((answer, close)) = lock(&script).pop_front() else {
                            return;
                        };
                        if s.write_all(answer).await.is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn pool() -> Arc<Pool> {
        Arc::new(Pool::new(&UpstreamConfig::for_tests(
            Duration::from_secs(60),
            8,
            0,
        )))
    }

    fn request(method: Method, target: &str) -> Request<UpstreamBody> {
        Request::builder()
            .method(method)
            .uri(target)
            .header("host", "example.test")
            .header("x-two", "a")
            .header("x-two", "b")
            .body(UpstreamBody::Empty(Empty::new()))
            .unwrap()
    }

    /// Sends a GET to `addr` and reads the whole response.
    async fn get(
        pool: &Arc<Pool>,
        addr: SocketAddr,
    ) -> Result<(Response<()>, Bytes, Option<HeaderMap>), BoxError> {
        let resp = pool
            .send(addr, &mut request(Method::GET, "/"), None)
            .await?;
        let (parts, body) = resp.into_parts();
        let collected = body.collect().await?;
        let trailers = collected.trailers().cloned();
        Ok((
            Response::from_parts(parts, ()),
            collected.to_bytes(),
            trailers,
        ))
    }

    #[test]
    fn remembered_names_are_found_again_by_their_exact_bytes() {
        let mut names = Names::default();
        let first = names.name(0, b"X-Custom").unwrap();
        assert_eq!(first, "x-custom");
        assert_eq!(names.name(0, b"X-Custom").unwrap(), first);
        // The same name in another case, another name of the same length,
        // the same name at another place: each made and checked anew.
        assert_eq!(names.name(0, b"x-custom").unwrap(), "x-custom");
        assert_eq!(names.name(0, b"x-custon").unwrap(), "x-custon");
        assert_eq!(names.name(1, b"x-custom").unwrap(), "x-custom");
        // What is not a name is refused wherever it comes.
        assert!(names.name(0, b"x custom").is_err());
        assert!(names.name(1, b"").is_err());
        assert_eq!(names.name(1, b"x-custom").unwrap(), "x-custom");
        // Long names and late places are made every time, not kept.
        let long = "x-".repeat(40);
        assert_eq!(names.name(2, long.as_bytes()).unwrap(), long.as_str());
        assert_eq!(names.name(2, long.as_bytes()).unwrap(), long.as_str());
        assert_eq!(names.name(40, b"Host").unwrap(), header::HOST);
        assert!(names.seen.len() <= NAMES_KEPT);
        assert!(names.seen.len() == 2, "{:?}", names.seen);
    }

    #[tokio::test]
    async fn writes_the_head_as_given_and_reuses_the_connection() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Up: 1\r\n\r\nhello";
        let (addr, seen) = upstream(vec![(ok, false), (ok, false), (ok, false)]).await;
        let pool = pool();
        for _ in 0..2 {
            let (resp, body, _) = get(&pool, addr).await.unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.headers()["x-up"], "1");
            assert_eq!(&body[..], b"hello");
        }
        let resp = pool
            .send(addr, &mut request(Method::POST, "/submit?a=1&b=2"), None)
            .await
            .unwrap();
        let _ = resp.into_body().collect().await.unwrap();
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
        let heads = lock(&seen.heads).clone();
        assert_eq!(
            heads[0],
            "GET / HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\n\r\n"
        );
        assert_eq!(
            heads[2],
            "POST /submit?a=1&b=2 HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\ncontent-length: 0\r\n\r\n"
        );
        assert_eq!(pool.pooled(addr), 1);
    }

    /// Each worker's requests reuse the connections that worker opened
    /// (registered with its runtime), never another worker's.
    #[test]
    fn each_worker_keeps_its_own_connections() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let upstream_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (addr, seen) = upstream_runtime.block_on(upstream(vec![(ok, false); 4]));
        let pool = Arc::new(Pool::new(&UpstreamConfig::for_tests(
            Duration::from_secs(60),
            8,
            2,
        )));
        let workers: Vec<tokio::runtime::Runtime> = (0..2)
            .map(|_| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
            })
            .collect();
        for round in 0..2 {
            for (i, runtime) in workers.iter().enumerate() {
                crate::workers::set_worker(i);
                // A connection of the other runtime would never be
                // answered here: that runtime is not being driven.
                let (resp, body, _) = runtime
                    .block_on(async {
                        tokio::time::timeout(Duration::from_secs(5), get(&pool, addr)).await
                    })
                    .unwrap_or_else(|_| panic!("round {round}, worker {i}: no answer"))
                    .unwrap();
                assert_eq!(resp.status(), 200, "round {round}, worker {i}");
                assert_eq!(&body[..], b"ok");
            }
        }
        crate::workers::unset_worker();
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
        assert_eq!(pool.pooled(addr), 2);
    }

    #[tokio::test]
    async fn writes_the_gateways_headers_in_place_of_the_clients() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        let (addr, seen) = upstream(vec![(ok, false)]).await;
        let mut req = request(Method::GET, "/");
        let h = req.headers_mut();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-host", HeaderValue::from_static("forged"));
        h.insert("traceparent", HeaderValue::from_static("forged"));
        let forwarding = Forwarding {
            forwarded_for: Some(HeaderValue::from_static("192.0.2.1")),
            request_id: Some(HeaderValue::from_static("id-1")),
            ..Forwarding::default()
        };
        let resp = pool()
            .send(addr, &mut req, Some(&forwarding))
            .await
            .unwrap();
        let _ = resp.into_body().collect().await.unwrap();
        // The client's values under the gateway's names are gone, those
        // without a value here (the forwarded host) included; the
        // gateway's follow the request's own headers.
        assert_eq!(
            lock(&seen.heads)[0],
            "GET / HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\n\
             x-forwarded-for: 192.0.2.1\r\nx-request-id: id-1\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn decodes_chunked_bodies_with_extensions_and_trailers() {
        let chunked: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;name=value\r\nhello\r\n7\r\n, world\r\nA \r\n0123456789\r\n0\r\nx-checksum: abc\r\n\r\n";
        let plain: &[u8] =
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        let (addr, seen) = upstream(vec![(chunked, false), (plain, false)]).await;
        let pool = pool();
        let (_, body, trailers) = get(&pool, addr).await.unwrap();
        assert_eq!(&body[..], b"hello, world0123456789");
        assert_eq!(trailers.unwrap()["x-checksum"], "abc");
        let (_, body, trailers) = get(&pool, addr).await.unwrap();
        assert_eq!(&body[..], b"abc");
        assert!(trailers.is_none());
        assert_eq!(
            seen.connections.load(Ordering::SeqCst),
            1,
            "reused after chunked bodies"
        );
    }

    #[tokio::test]
    async fn bodies_delimited_by_close_are_read_to_the_end_and_not_reused() {
        let close: &[u8] = b"HTTP/1.1 200 OK\r\n\r\nuntil the end";
        let (addr, seen) = upstream(vec![(close, true), (close, true)]).await;
        let pool = pool();
        for _ in 0..2 {
            let (_, body, _) = get(&pool, addr).await.unwrap();
            assert_eq!(&body[..], b"until the end");
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
        assert_eq!(pool.pooled(addr), 0);
    }

    #[tokio::test]
    async fn responses_without_bodies_end_at_their_heads() {
        // HEAD announces a length it does not send; 204 and 304 carry none;
        // interim responses come before the final one.
        let head: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
        let no_content: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
        let not_modified: &[u8] = b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n";
        let interim: &[u8] =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, seen) = upstream(vec![
            (head, false),
            (no_content, false),
            (not_modified, false),
            (interim, false),
        ])
        .await;
        let pool = pool();
        let resp = pool
            .send(addr, &mut request(Method::HEAD, "/"), None)
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-length"], "1000");
        assert!(resp.body().is_end_stream());
        assert_eq!(pool.pooled(addr), 1, "back in the pool at once");
        drop(resp);
        let (resp, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!((resp.status().as_u16(), body.len()), (204, 0));
        let (resp, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!((resp.status().as_u16(), body.len()), (304, 0));
        let (resp, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            !resp.headers().contains_key("link"),
            "interim headers dropped"
        );
        assert_eq!(&body[..], b"ok");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connections_the_upstream_ends_are_not_reused() {
        let close: &[u8] = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na";
        let old: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb";
        let old_kept: &[u8] =
            b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nc";
        let both: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nd\r\n0\r\n\r\n";
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\ne";
        let (addr, seen) = upstream(vec![
            (close, false),
            (old, false),
            (old_kept, false),
            (ok, false),
            (both, false),
            (ok, false),
        ])
        .await;
        let pool = pool();
        let mut bodies = Vec::new();
        for _ in 0..6 {
            let (resp, body, _) = get(&pool, addr).await.unwrap();
            if body[..] == *b"d" {
                assert!(!resp.headers().contains_key("content-length"));
            }
            bodies.push(String::from_utf8(body.to_vec()).unwrap());
        }
        assert_eq!(bodies, ["a", "b", "c", "e", "d", "e"]);
        // close → new; 1.0 → new; 1.0 keep-alive → reused; both framings
        // → new.
        assert_eq!(seen.connections.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_pooled_connection_closed_by_the_upstream_is_replaced_unnoticed() {
        // The upstream closes after every answer without saying so.
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, seen) = upstream(vec![(ok, true); 4]).await;
        let pool = pool();
        let (_, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!(&body[..], b"ok");
        // Seen closed before use (the runtime has had time to see it).
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!(&body[..], b"ok");
        // Found closed on use (no time to notice): sent again.
        let (_, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!(&body[..], b"ok");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_non_idempotent_request_is_not_sent_twice() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, seen) = upstream(vec![(ok, true), (ok, true)]).await;
        let pool = pool();
        let _ = get(&pool, addr).await.unwrap();
        // The pooled connection is closed, but maybe not seen as such yet:
        // a POST that finds it dead fails rather than being repeated.
        let result = pool.send(addr, &mut request(Method::POST, "/"), None).await;
        let heads = lock(&seen.heads).len();
        match result {
            Ok(resp) => {
                assert_eq!(resp.status(), 200);
                assert_eq!(heads, 2);
            }
            Err(e) => {
                assert!(matches!(e, UpstreamError::Reset(_)), "{e}");
                assert_eq!(heads, 1, "never written twice");
            }
        }
    }

    #[tokio::test]
    async fn malformed_responses_are_errors_and_close_the_connection() {
        let conflicting: &[u8] =
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc";
        let bad_length: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nab";
        let garbage: &[u8] = b"HTTP/1.1 2OO OK\r\n\r\n";
        let bad_chunk: &[u8] =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n";
        let unasked_switch: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
        let (addr, seen) = upstream(vec![
            (conflicting, false),
            (bad_length, false),
            (garbage, false),
            (bad_chunk, false),
            (unasked_switch, false),
        ])
        .await;
        let pool = pool();
        for i in 0..5 {
            let result = get(&pool, addr).await;
            assert!(
                result.is_err(),
                "answer {i} accepted: {:?}",
                result.map(|r| r.1)
            );
        }
        assert_eq!(seen.connections.load(Ordering::SeqCst), 5);
        assert_eq!(pool.pooled(addr), 0);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let short: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nonly5";
        let short_chunk: &[u8] = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nabc";
        let (addr, _) = upstream(vec![(short, true), (short_chunk, true)]).await;
        let pool = pool();
        for _ in 0..2 {
            let resp = pool
                .send(addr, &mut request(Method::GET, "/"), None)
                .await
                .unwrap();
            let err = resp.into_body().collect().await.unwrap_err();
            assert!(
                err.to_string().contains("before the end of the body"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn oversized_heads_are_refused() {
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..2000 {
            huge.extend_from_slice(format!("x-filler-{i}: {}\r\n", "v".repeat(40)).as_bytes());
        }
        huge.extend_from_slice(b"\r\n");
        let huge: &'static [u8] = Vec::leak(huge);
        let (addr, _) = upstream(vec![(huge, false)]).await;
        let err = get(&pool(), addr).await.unwrap_err();
        assert!(
            err.to_string().contains("too many headers") || err.to_string().contains("larger than"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_complete_head_over_the_limit_is_refused() {
        // Few headers, so the count limit does not apply: only the size.
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..3 {
            huge.extend_from_slice(format!("x-big-{i}: {}\r\n", "v".repeat(22_000)).as_bytes());
        }
        huge.extend_from_slice(b"content-length: 0\r\n\r\n");
        let huge: &'static [u8] = Vec::leak(huge);
        let (addr, _) = upstream(vec![(huge, false)]).await;
        let err = get(&pool(), addr).await.unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[tokio::test]
    async fn a_body_dropped_early_closes_its_connection() {
        let slow: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial";
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (addr, seen) = upstream(vec![(slow, false), (ok, false)]).await;
        let pool = pool();
        let resp = pool
            .send(addr, &mut request(Method::GET, "/"), None)
            .await
            .unwrap();
        let mut body = resp.into_body();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"partial");
        drop(body);
        let (_, body, _) = get(&pool, addr).await.unwrap();
        assert_eq!(&body[..], b"ok");
        assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_body_held_in_full_goes_out_with_its_head() {
        let ok: &[u8] = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let (addr, seen) = upstream(vec![(ok, false), (ok, false)]).await;
        let pool = pool();
        let mut req = request(Method::POST, "/orders");
        *req.body_mut() =
            UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"{\"id\":7}")));
        assert!(handles(&req));
        let resp = pool.send(addr, &mut req, None).await.unwrap();
        assert_eq!(resp.status(), 201);
        let _ = resp.into_body().collect().await.unwrap();
        // The client's own Content-Length, when it agrees, is kept as is.
        let mut req = request(Method::PUT, "/orders/7");
        req.headers_mut()
            .insert("content-length", HeaderValue::from_static("2"));
        *req.body_mut() =
            UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"{}")));
        assert!(handles(&req));
        let _ = pool
            .send(addr, &mut req, None)
            .await
            .unwrap()
            .into_body()
            .collect()
            .await;
        // The scripted upstream reads heads only: the bodies arrive as the
        // start of the next "head" or after it, so look at the raw bytes.
        let heads = lock(&seen.heads).join("");
        assert!(
            heads.starts_with(
                "POST /orders HTTP/1.1\r\nhost: example.test\r\nx-two: a\r\nx-two: b\r\ncontent-length: 8\r\n\r\n"
            ),
            "{heads}"
        );
        assert!(
            heads.contains("\r\n\r\n{\"id\":7}PUT /orders/7 HTTP/1.1\r\n"),
            "{heads}"
        );
        assert_eq!(seen.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn only_plain_requests_without_a_streamed_body_are_taken() {
        let with = |f: fn(&mut Request<UpstreamBody>)| {
            let mut r = request(Method::GET, "/");
            f(&mut r);
            handles(&r)
        };
        assert!(with(|_| {}));
        assert!(with(|r| {
            r.headers_mut()
                .insert("content-length", HeaderValue::from_static("0"));
        }));
        // A small body held in full is taken; a large one, or one whose
        // Content-Length disagrees, is not.
        assert!(with(|r| {
            *r.body_mut() =
                UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"x")));
        }));
        assert!(!with(|r| {
            let large = Bytes::from(vec![b'x'; MAX_WHOLE_BODY + 1]);
            *r.body_mut() = UpstreamBody::Buffered(crate::body::Whole::new(large));
        }));
        assert!(!with(|r| {
            r.headers_mut()
                .insert("content-length", HeaderValue::from_static("5"));
            *r.body_mut() =
                UpstreamBody::Buffered(crate::body::Whole::new(Bytes::from_static(b"x")));
        }));
        assert!(!with(|r| {
            r.headers_mut()
                .insert("upgrade", HeaderValue::from_static("websocket"));
        }));
        assert!(!with(|r| {
            r.headers_mut()
                .insert("expect", HeaderValue::from_static("100-continue"));
        }));
        assert!(!with(|r| *r.method_mut() = Method::CONNECT));
        assert!(!with(|r| {
            r.headers_mut()
                .insert("content-length", HeaderValue::from_static("3"));
        }));
    }

    #[tokio::test]
    async fn idle_connections_are_released_without_traffic() {
        let ok: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (a, _) = upstream(vec![(ok, true)]).await;
        let (b, _) = upstream(vec![(ok, false)]).await;
        let pool = Arc::new(Pool::new(&UpstreamConfig::for_tests(
            Duration::from_millis(200),
            8,
            0,
        )));
        pool.sweep_in_background();
        let _ = get(&pool, a).await.unwrap();
        let _ = get(&pool, b).await.unwrap();
        assert_eq!((pool.pooled(a), pool.pooled(b)), (1, 1));
        // a's upstream closed its end: released at the next sweep.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!((pool.pooled(a), pool.pooled(b)), (0, 1));
        // b's connection expires after the idle timeout.
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(pool.pooled(b), 0);
    }

    #[tokio::test]
    async fn connect_failures_are_connect_errors() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(matches!(
            pool()
                .send(addr, &mut request(Method::GET, "/"), None)
                .await,
            Err(UpstreamError::Connect(_))
        ));
    }
}
