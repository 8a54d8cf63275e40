//! HTTP/1.1 connections from clients, served in the connection's own task.
//!
//! Nearly every request a gateway sees is an HTTP/1.1 request without a
//! body. For those this module does what hyper's server would, with less
//! machinery between the socket and the pipeline: the head is parsed with
//! `httparse` (header values share the read buffer), the pipeline runs in
//! the connection's task, and the response head goes out in the same
//! write as a short body. Pipelined requests are answered in order.
//!
//! Anything else — a request with a body, an upgrade, `Expect`, HTTP/1.0,
//! `CONNECT`, a head that does not parse or breaks a limit — hands the
//! connection, with every byte read so far, to hyper's HTTP/1.1 server for
//! the rest of its life. The uncommon and the hostile cases keep hyper's
//! well-tried handling (and its exact error answers: 400, 431, ...).
//!
//! Limits: the whole head must arrive within the header timeout (which so
//! also bounds how long an idle keep-alive connection is kept); a client
//! that closes its side while its request is in flight cancels the
//! request, as with hyper's default. Responses are framed by their
//! `Content-Length` when they have one, by the body's known length, and
//! otherwise chunked (trailers included); HEAD, 1xx, 204 and 304 answers
//! carry no body.

use std::future::Future;
use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Buf, Bytes, BytesMut};
use http::header::{self, HeaderMap};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::time::Instant;

use super::codec::{Field, Names, Said, header_map, place, poll_fill};
use crate::body::FromClient;
use crate::connection::Connection;
use crate::deadline::RequestClock;
use crate::pipeline::Proxy;
use crate::proxy_body::ProxyBody;
use crate::proxy_protocol::Prefixed;

/// The most headers parsed here; a request with more goes to hyper's
/// server, which applies the configured limit.
const PARSED_HEADERS: usize = 128;
/// How much room a read asks for.
const READ_CHUNK: usize = 8 * 1024;
/// Body chunks up to this size are copied next to what is already
/// waiting to be written (usually the head), so both go in one write;
/// larger ones are queued as they are and go out in one vectored write
/// with the rest.
const COPY_LIMIT: usize = 4096;
/// Queued bytes that are written without waiting for more of the body.
const FLUSH_BYTES: usize = 64 * 1024;
/// Queued pieces that are written without waiting for more of the body.
const MAX_PIECES: usize = 32;

/// The limits a connection is served with.
#[derive(Clone, Debug)]
pub(crate) struct Limits {
    /// Time from waiting for a request to having its whole head.
    pub(crate) header_timeout: Duration,
    /// Largest request head, in bytes.
    pub(crate) max_head: usize,
    /// Most request headers.
    pub(crate) max_headers: usize,
}

/// How a connection's time in this server ended.
pub(crate) enum Outcome<S> {
    /// The connection is finished: closed by either side, timed out, or
    /// drained.
    Done,
    /// The rest of the connection is for hyper's server: the stream with
    /// every byte read and not yet served put back in front.
    HandOver(Prefixed<S>),
}

/// Serves requests on `io` until the connection ends or a request needs
/// hyper's server. When `draining` turns true, an idle connection closes
/// and a busy one closes after its response.
pub(crate) async fn serve<S>(
    io: Prefixed<S>,
    proxy: &Proxy,
    conn: &Connection,
    limits: &Limits,
    draining: &mut watch::Receiver<bool>,
) -> Outcome<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut c = Conn {
        io,
        buf: BytesMut::with_capacity(READ_CHUNK),
        out: BytesMut::with_capacity(1024),
        pieces: Vec::new(),
        queued: 0,
        fields: Vec::new(),
        names: Names::default(),
    };
    // One timer for the connection: the header timeout while a head is
    // awaited, the request's time limit while it runs (`deadline.rs`).
    let mut deadline = pin!(tokio::time::sleep(limits.header_timeout));
    let clock = RequestClock::new();
    loop {
        // A request head, whole, within the header timeout. The timer is
        // left as it is and re-armed only when it goes off before this
        // head's time is up (it was set for an earlier head, so it never
        // goes off late): moving it in the runtime's timer wheel for every
        // request costs more than a rare early wake. Only a request that
        // ran past the header timeout leaves it set later.
        let head_deadline = Instant::now() + limits.header_timeout;
        if deadline.deadline() > head_deadline {
            deadline.as_mut().reset(head_deadline);
        }
        let mut scanned = 0;
        let head = loop {
            // A head that trickles in is parsed again only once its blank
            // line may have arrived, not from its start for every read.
            let parsed = if scanned == 0 || ends_head(&c.buf, scanned) {
                parse(&c.buf, limits, &mut c.fields)
            } else {
                Parsed::Partial
            };
            scanned = c.buf.len();
            match parsed {
                Parsed::Complete(head) => break head,
                Parsed::Other => return Outcome::HandOver(c.hand_over(None)),
                Parsed::Partial if c.buf.len() >= limits.max_head => {
                    return Outcome::HandOver(c.hand_over(None));
                }
                Parsed::Partial => {}
            }
            let idle = c.buf.is_empty();
            tokio::select! {
                biased;
                read = c.fill() => match read {
                    Ok(0) | Err(_) => return Outcome::Done,
                    Ok(_) => {}
                },
                () = &mut deadline => {
                    if Instant::now() < head_deadline {
                        deadline.as_mut().reset(head_deadline);
                        continue;
                    }
                    if !idle {
                        tracing::debug!(client = %conn.peer, "no complete request head in time");
                    }
                    return Outcome::Done;
                }
                _ = draining.wait_for(|d| *d), if idle => return Outcome::Done,
            }
        };
        let bytes = c.buf.split_to(head.len).freeze();
        let Some(req) = head.request(&bytes, &c.fields, &mut c.names) else {
            // Something the http types refuse although httparse took it:
            // hyper's server gives the answer.
            return Outcome::HandOver(c.hand_over(Some(&bytes)));
        };
        drop(bytes);
        let head_only = req.method() == Method::HEAD;

        // The pipeline, in this task; a client that goes away meanwhile
        // cancels it. The connection's timer keeps its time limit.
        let resp = {
            let mut handling = pin!(proxy.handle_on(req, conn, Some(&clock)));
            loop {
                tokio::select! {
                    biased;
                    resp = &mut handling => break resp,
                    () = clock.alarm(deadline.as_mut()) => {
                        clock.fired(deadline.as_mut(), limits.header_timeout);
                    }
                    read = c.fill(), if c.buf.len() < limits.max_head => match read {
                        Ok(0) | Err(_) => {
                            tracing::debug!(client = %conn.peer, "client went away before its response");
                            return Outcome::Done;
                        }
                        Ok(_) => {}
                    },
                }
            }
        };
        let close = head.close || *draining.borrow();
        match c.respond(resp, head_only, close).await {
            Ok(true) => {}
            Ok(false) => {
                let _ = c.io.shutdown().await;
                return Outcome::Done;
            }
            Err(e) => {
                tracing::debug!(client = %conn.peer, error = %e, "response not delivered");
                return Outcome::Done;
            }
        }
    }
}

/// A client connection: what has been read and not yet served, and what
/// is waiting to be written.
struct Conn<S> {
    io: Prefixed<S>,
    buf: BytesMut,
    /// Bytes to write after `pieces`: the head, framing, short chunks.
    out: BytesMut,
    /// What is queued to be written, in order; long body chunks are
    /// queued as they are, not copied.
    pieces: Vec<Bytes>,
    /// Bytes in `pieces` and `out`.
    queued: usize,
    /// Where the last parsed head's header names and values are.
    fields: Vec<Field>,
    /// The header names of the last request head.
    names: Names,
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Reads more; `Ok(0)` at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| poll_fill(&mut self.io, &mut self.buf, READ_CHUNK, cx)).await
    }

    /// The stream for hyper's server, with `head` (already taken from the
    /// buffer) and the rest of what was read put back.
    fn hand_over(self, head: Option<&Bytes>) -> Prefixed<S> {
        let mut unread = Vec::with_capacity(head.map_or(0, Bytes::len) + self.buf.len());
        if let Some(head) = head {
            unread.extend_from_slice(head);
        }
        unread.extend_from_slice(&self.buf);
        self.io.replay(unread)
    }

    /// Writes `resp`; whether the connection can carry another request.
    async fn respond(
        &mut self,
        resp: Response<ProxyBody>,
        head_only: bool,
        mut close: bool,
    ) -> io::Result<bool> {
        let (mut parts, body) = resp.into_parts();
        let status = parts.status;
        let bodiless = head_only
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        // One pass over the headers for what the head and framing need.
        let said = Said::of(&parts.headers);
        let declared = said.length.and_then(Result::ok);
        let dated = said.dated;
        close |= said.close;
        let mut framing = if bodiless {
            Framing::None
        } else if let Some(n) = declared {
            Framing::Length(n)
        } else if let Some(n) = body.size_hint().exact() {
            Framing::Length(n)
        } else {
            Framing::Chunked
        };
        self.out.clear();
        write_head(
            &mut self.out,
            status,
            &parts.headers,
            &framing,
            declared,
            dated,
            close,
        );
        // The head is written: its map can serve the next message.
        crate::headers::recycle_map(std::mem::take(&mut parts.headers));
        if bodiless {
            // The body (an upstream's, say) is dropped unread; it knows
            // what to do with its connection.
            drop(body);
            self.flush().await?;
            return Ok(!close);
        }
        let mut body = pin!(body);
        loop {
            // Wait for the body only with nothing left to write, so a head
            // never waits on a slow upstream's first byte.
            let frame = match poll_now(body.as_mut().frame()).await {
                Some(frame) => frame,
                None => {
                    self.flush().await?;
                    body.as_mut().frame().await
                }
            };
            let frame = match frame {
                None => break,
                Some(Ok(frame)) => frame,
                Some(Err(e)) => {
                    // Nothing more can be said on this connection.
                    let _ = self.flush().await;
                    return Err(io::Error::other(e));
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    self.data(&mut framing, data);
                    if self.queued >= FLUSH_BYTES || self.pieces.len() >= MAX_PIECES {
                        self.flush().await?;
                    }
                }
                Err(frame) => {
                    if let (Framing::Chunked, Ok(trailers)) = (&framing, frame.into_trailers()) {
                        self.out.extend_from_slice(b"0\r\n");
                        write_fields(&mut self.out, &trailers);
                        self.out.extend_from_slice(b"\r\n");
                        framing = Framing::Ended;
                    }
                }
            }
        }
        let complete = match framing {
            Framing::Chunked => {
                self.out.extend_from_slice(b"0\r\n\r\n");
                true
            }
            Framing::Length(left) => left == 0,
            Framing::None | Framing::Ended => true,
        };
        self.flush().await?;
        // A body shorter than its announced length: the client learns of
        // it by the connection closing.
        Ok(complete && !close)
    }

    /// Queues one chunk of body.
    fn data(&mut self, framing: &mut Framing, mut data: Bytes) {
        match framing {
            Framing::Length(left) => {
                // More than announced is cut off; the connection then
                // closes, as the body is short of nothing but wrong.
                let take = usize::try_from(*left).unwrap_or(usize::MAX).min(data.len());
                if take < data.len() {
                    data.truncate(take);
                }
                *left -= take as u64;
                self.queue(data);
            }
            Framing::Chunked if !data.is_empty() => {
                let mut digits = [0u8; 16];
                self.out.extend_from_slice(hex(data.len(), &mut digits));
                self.out.extend_from_slice(b"\r\n");
                self.queue(data);
                self.out.extend_from_slice(b"\r\n");
            }
            Framing::Chunked | Framing::None | Framing::Ended => {}
        }
    }

    /// Queues `data` after what is waiting: copied when short, as it is
    /// otherwise.
    fn queue(&mut self, data: Bytes) {
        self.queued += data.len();
        if data.len() <= COPY_LIMIT {
            self.out.extend_from_slice(&data);
            return;
        }
        if !self.out.is_empty() {
            self.pieces.push(self.out.split().freeze());
        }
        self.pieces.push(data);
    }

    /// Writes everything queued, in order, in as few writes as the stream
    /// takes (one vectored write, usually).
    async fn flush(&mut self) -> io::Result<()> {
        if self.pieces.is_empty() {
            if !self.out.is_empty() {
                self.io.write_all(&self.out).await?;
                self.out.clear();
            }
            self.queued = 0;
            return Ok(());
        }
        if !self.out.is_empty() {
            self.pieces.push(self.out.split().freeze());
        }
        let mut first = 0;
        while first < self.pieces.len() {
            let mut slices = [IoSlice::new(&[]); MAX_PIECES + 1];
            let count = (self.pieces.len() - first).min(slices.len());
            for (slot, piece) in slices.iter_mut().zip(&self.pieces[first..first + count]) {
                *slot = IoSlice::new(piece);
            }
            let mut written = self.io.write_vectored(&slices[..count]).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            while written > 0 {
                let piece = &mut self.pieces[first];
                if written >= piece.len() {
                    written -= piece.len();
                    first += 1;
                } else {
                    piece.advance(written);
                    written = 0;
                }
            }
        }
        self.pieces.clear();
        self.queued = 0;
        Ok(())
    }
}

/// Whether the bytes of `buf` past `scanned` (or just before) may end a
/// head: a line feed followed by an empty line.
fn ends_head(buf: &[u8], scanned: usize) -> bool {
    let from = scanned.saturating_sub(3);
    buf[from..].iter().enumerate().any(|(i, b)| {
        *b == b'\n' && {
            let rest = &buf[from + i + 1..];
            rest.starts_with(b"\n") || rest.starts_with(b"\r\n")
        }
    })
}

/// Polls `fut` once: its output if it is ready now.
async fn poll_now<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    std::future::poll_fn(|cx: &mut Context<'_>| match fut.as_mut().poll(cx) {
        Poll::Ready(out) => Poll::Ready(Some(out)),
        Poll::Pending => Poll::Ready(None),
    })
    .await
}

/// How the response body is delimited on the wire.
#[derive(Debug)]
enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// This many bytes still to go.
    Length(u64),
    Chunked,
    /// Chunked, with the last chunk and trailers already queued.
    Ended,
}

/// The response head: status line, headers (framing headers replaced by
/// the framing chosen), `date` when the response has none, and
/// `connection: close` when the connection ends after it.
fn write_head(
    out: &mut BytesMut,
    status: StatusCode,
    headers: &HeaderMap,
    framing: &Framing,
    declared: Option<u64>,
    dated: bool,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut has_close = false;
    for (name, value) in headers {
        // Framing is the server's to write, from what it chose.
        if *name == header::TRANSFER_ENCODING || *name == header::CONTENT_LENGTH {
            continue;
        }
        if *name == header::CONNECTION {
            has_close |= value.as_bytes().eq_ignore_ascii_case(b"close");
        }
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
    let mut digits = itoa::Buffer::new();
    match (framing, declared.as_ref()) {
        (Framing::Length(n), _) | (Framing::None | Framing::Ended, Some(n)) => {
            field(out, b"content-length", digits.format(*n).as_bytes());
        }
        (Framing::Chunked, _) => field(out, b"transfer-encoding", b"chunked"),
        (Framing::None | Framing::Ended, None) => {}
    }
    if !dated {
        DATE.with(|date| field(out, b"date", &date.now()));
    }
    if close && !has_close {
        field(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

fn write_fields(out: &mut BytesMut, headers: &HeaderMap) {
    for (name, value) in headers {
        field(out, name.as_str().as_bytes(), value.as_bytes());
    }
}

fn field(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `n` in lower-case hex, written at the end of `buf`.
fn hex(mut n: usize, buf: &mut [u8; 16]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        buf[start] = b"0123456789abcdef"[n & 15];
        n >>= 4;
        if n == 0 {
            return &buf[start..];
        }
    }
}

/// A request head this server serves.
#[derive(Debug)]
struct Head {
    /// Its length in the buffer.
    len: usize,
    method: (usize, usize),
    target: (usize, usize),
    /// The client asked to close the connection after the response.
    close: bool,
}

enum Parsed {
    Complete(Head),
    Partial,
    /// Not a request served here (see the module comment).
    Other,
}

/// Parses the head at the start of `buf`, recording its fields' places in
/// `fields`.
fn parse(buf: &[u8], limits: &Limits, fields: &mut Vec<Field>) -> Parsed {
    if buf.is_empty() {
        return Parsed::Partial;
    }
    // Uninitialised: filling 128 empty slots for every request costs more
    // than parsing a small head.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; PARSED_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_request_with_uninit_headers(
        &mut req,
        buf,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    if len > limits.max_head || req.headers.len() > limits.max_headers || req.version != Some(1) {
        return Parsed::Other;
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Parsed::Other;
    };
    if method == "CONNECT" {
        return Parsed::Other;
    }
    fields.clear();
    let mut close = false;
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            return Parsed::Other;
        }
        if name.eq_ignore_ascii_case(b"content-length") && h.value.trim_ascii() != b"0" {
            return Parsed::Other;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for token in h.value.split(|b| *b == b',') {
                let token = token.trim_ascii();
                if token.eq_ignore_ascii_case(b"upgrade") {
                    return Parsed::Other;
                }
                close |= token.eq_ignore_ascii_case(b"close");
            }
        }
        fields.push(Field::of(buf, h));
    }
    Parsed::Complete(Head {
        len,
        method: place(buf, method.as_bytes()),
        target: place(buf, target.as_bytes()),
        close,
    })
}

impl Head {
    /// The request, its values sharing `bytes` (the head); `None` when the
    /// http types refuse part of it.
    fn request(
        &self,
        bytes: &Bytes,
        fields: &[Field],
        names: &mut Names,
    ) -> Option<Request<FromClient>> {
        let method = Method::from_bytes(&bytes[self.method.0..self.method.1]).ok()?;
        let uri = Uri::from_maybe_shared(bytes.slice(self.target.0..self.target.1)).ok()?;
        // Room for a few headers the pipeline may add (the gateway's
        // forwarding headers travel beside the map).
        let headers = header_map(bytes, fields, 2, names).ok()?;
        let mut req = Request::new(FromClient::Empty);
        *req.method_mut() = method;
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        Some(req)
    }
}

/// The `date` header value, made at most once a second per thread.
struct Date {
    cache: std::cell::Cell<(u64, [u8; 29])>,
}

thread_local! {
    static DATE: Date = const {
        Date {
            cache: std::cell::Cell::new((u64::MAX, [0; 29])),
        }
    };
}

impl Date {
    fn now(&self) -> [u8; 29] {
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let (cached, text) = self.cache.get();
        if cached == secs {
            return text;
        }
        let mut text = [0u8; 29];
        let formatted = httpdate::fmt_http_date(now);
        if formatted.len() == text.len() {
            text.copy_from_slice(formatted.as_bytes());
        }
        self.cache.set((secs, text));
        text
    }
}

#[cfg(test)]
mod tests {
    use http::header::{HeaderName, HeaderValue};

    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            max_head: 1024,
            max_headers: 8,
        }
    }

    fn parsed(head: &[u8]) -> Parsed {
        parse(head, &limits(), &mut Vec::new())
    }

    #[test]
    fn bodiless_http11_requests_are_served_here_and_the_rest_handed_over() {
        let served = |head: &[u8]| matches!(parsed(head), Parsed::Complete(_));
        assert!(served(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        assert!(served(b"DELETE /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n"));
        assert!(served(b"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"));
        for other in [
            &b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\nConnection: keep-alive, upgrade\r\n\r\n",
            b"PUT / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
            b"GET / HTTP/1.0\r\n\r\n",
            b"CONNECT a:443 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: zero\r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\ni: 1\r\n\r\n",
        ] {
            assert!(
                matches!(parsed(other), Parsed::Other),
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
        // A complete head over the size limit, however it arrived.
        let big = format!("GET / HTTP/1.1\r\nx: {}\r\n\r\n", "a".repeat(2000));
        assert!(matches!(parsed(big.as_bytes()), Parsed::Other));
        assert!(matches!(parsed(b"GET / HTTP/1.1\r\nHost"), Parsed::Partial));
        assert!(matches!(parsed(b""), Parsed::Partial));
    }

    #[test]
    fn the_request_shares_the_head_and_keeps_every_field() {
        let raw = b"GET /p?q=1 HTTP/1.1\r\nHost: a.example\r\nX-Two: 1\r\nx-two: 2\r\nConnection: Close\r\n\r\nGET /next";
        let mut fields = Vec::new();
        let Parsed::Complete(head) = parse(raw, &limits(), &mut fields) else {
            panic!("not parsed");
        };
        assert!(head.close);
        assert_eq!(&raw[head.len..], b"GET /next");
        let bytes = Bytes::copy_from_slice(&raw[..head.len]);
        let req = head
            .request(&bytes, &fields, &mut Names::default())
            .unwrap();
        assert_eq!(req.method(), Method::GET);
        assert_eq!(req.uri().path(), "/p");
        assert_eq!(req.uri().query(), Some("q=1"));
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.headers()["host"], "a.example");
        let two: Vec<_> = req.headers().get_all("x-two").iter().collect();
        assert_eq!(two, ["1", "2"]);
        // A target httparse takes and the URI type refuses is not served
        // here.
        let raw = b"GET /a<b> HTTP/1.1\r\n\r\n";
        let Parsed::Complete(head) = parse(raw, &limits(), &mut fields) else {
            panic!("httparse refused it");
        };
        let bytes = Bytes::copy_from_slice(&raw[..head.len]);
        assert!(
            head.request(&bytes, &fields, &mut Names::default())
                .is_none()
        );
    }

    #[test]
    fn successive_heads_on_a_connection_keep_their_own_names() {
        // The connection's remembered names must never stand in for a
        // different name at the same place, of the same length or not.
        let mut names = Names::default();
        let mut fields = Vec::new();
        let heads: [&[u8]; 4] = [
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Api-Key: k\r\nAccept: */*\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Api-Key: k\r\nAccept: */*\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Api-Kez: k\r\nAccepted: */*\r\n\r\n",
            b"GET / HTTP/1.1\r\nhost: a\r\n\r\n",
        ];
        let mut seen = Vec::new();
        for raw in heads {
            let Parsed::Complete(head) = parse(raw, &limits(), &mut fields) else {
                panic!("not parsed");
            };
            let bytes = Bytes::copy_from_slice(&raw[..head.len]);
            let req = head.request(&bytes, &fields, &mut names).unwrap();
            let mut keys: Vec<_> = req
                .headers()
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect();
            keys.sort();
            seen.push(keys);
        }
        assert_eq!(seen[0], ["accept", "host", "x-api-key"]);
        assert_eq!(seen[1], seen[0]);
        assert_eq!(seen[2], ["accepted", "host", "x-api-kez"]);
        assert_eq!(seen[3], ["host"]);
    }

    #[test]
    fn a_blank_line_is_found_across_reads() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        // Every split point: the part before has no end, the whole has.
        for cut in 1..head.len() {
            let before = ends_head(&head[..cut], 0);
            let after = ends_head(head, cut);
            assert!(after, "missed with the cut at {cut}");
            if cut < head.len() - 1 {
                assert!(!before, "found too early at {cut}");
            }
        }
        assert!(ends_head(b"GET / HTTP/1.1\n\n", 10));
        assert!(!ends_head(b"GET / HTTP/1.1\r\nHost: a\r\n", 0));
    }

    #[test]
    fn response_heads_carry_the_chosen_framing() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        let mut out = BytesMut::new();
        write_head(
            &mut out,
            StatusCode::OK,
            &headers,
            &Framing::Chunked,
            None,
            Said::of(&headers).dated,
            false,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("content-type: text/plain\r\n"));
        assert!(text.contains("transfer-encoding: chunked\r\n"));
        assert!(!text.contains("gzip"));
        assert!(text.contains("\r\ndate: "));
        assert!(!text.contains("connection"));
        assert!(text.ends_with("\r\n\r\n"));

        // A known length, closing after; a date of the response's own.
        let mut headers = HeaderMap::new();
        headers.insert(header::DATE, HeaderValue::from_static("then"));
        let mut out = BytesMut::new();
        write_head(
            &mut out,
            StatusCode::NOT_FOUND,
            &headers,
            &Framing::Length(12),
            None,
            Said::of(&headers).dated,
            true,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("content-length: 12\r\n"));
        assert!(text.contains("date: then\r\n"));
        assert_eq!(text.matches("date:").count(), 1);
        assert!(text.contains("connection: close\r\n"));

        // A bodiless answer (HEAD) keeps the length it declares, written
        // once however the response repeated it.
        let mut headers = HeaderMap::new();
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("1000"));
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("1000"));
        let mut out = BytesMut::new();
        write_head(
            &mut out,
            StatusCode::OK,
            &headers,
            &Framing::None,
            Some(1000),
            Said::of(&headers).dated,
            false,
        );
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert_eq!(
            text.matches("content-length: 1000\r\n").count(),
            1,
            "{text}"
        );
        assert!(!text.contains("transfer-encoding"));

        // The response's own valid length is kept; an invalid one is
        // dropped. A `Connection` header that names `close` among others
        // closes.
        let declared = |h: &HeaderMap| Said::of(h).length.and_then(Result::ok);
        assert_eq!(declared(&one(header::CONTENT_LENGTH, "42")), Some(42));
        assert_eq!(declared(&one(header::CONTENT_LENGTH, "4x")), None);
        assert_eq!(declared(&one(header::CONTENT_LENGTH, "7, 7")), Some(7));
        assert_eq!(declared(&one(header::CONTENT_LENGTH, "7, 8")), None);
        let mut two = one(header::CONTENT_LENGTH, "7");
        two.append(header::CONTENT_LENGTH, HeaderValue::from_static("8"));
        assert_eq!(declared(&two), None, "values that disagree");
        assert_eq!(declared(&HeaderMap::new()), None);
        assert!(Said::of(&one(header::CONNECTION, "keep-alive, Close")).close);
        assert!(!Said::of(&one(header::CONNECTION, "keep-alive")).close);
        let mut odd = HeaderMap::new();
        odd.insert(
            header::CONNECTION,
            HeaderValue::from_bytes(b"keep-alive\xff").unwrap(),
        );
        assert!(Said::of(&odd).close, "a value that is not text closes");
    }

    fn one(name: HeaderName, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn chunk_sizes_are_lower_case_hex() {
        let mut digits = [0u8; 16];
        assert_eq!(hex(0, &mut digits), b"0");
        assert_eq!(hex(255, &mut digits), b"ff");
        assert_eq!(hex(16384, &mut digits), b"4000");
        assert_eq!(hex(usize::MAX, &mut digits), b"ffffffffffffffff");
    }

    #[test]
    fn the_date_is_an_http_date() {
        let date = DATE.with(Date::now);
        let text = std::str::from_utf8(&date).unwrap();
        assert!(httpdate::parse_http_date(text).is_ok(), "{text}");
    }
}
