//! gRPC and gRPC-Web at the edge.
//!
//! * gRPC requests that fail at the gateway get a gRPC answer (HTTP 200,
//!   `grpc-status` and `grpc-message` in a trailers-only response) instead
//!   of an HTTP error a gRPC client cannot read.
//! * `grpc-timeout` bounds the wait for the response headers.
//! * gRPC-Web requests (`application/grpc-web[-text][+proto]`, the
//!   browser protocol over HTTP/1.1) are turned into gRPC for the upstream,
//!   and the answer back into gRPC-Web: trailers become a final body frame
//!   (flag `0x80`), and the `-text` variants are base64 on the wire.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http_body::{Body, Frame};

use crate::error::BoxError;

/// What kind of gRPC a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GrpcKind {
    /// Plain gRPC.
    Grpc,
    /// gRPC-Web, binary.
    Web,
    /// gRPC-Web, base64 text.
    WebText,
}

/// The gRPC kind of a request, from its content type.
pub(crate) fn kind(content_type: Option<&HeaderValue>) -> Option<(GrpcKind, &str)> {
    let ct = content_type?.to_str().ok()?;
    let base = ct.split(';').next().unwrap_or_default().trim();
    if let Some(rest) = base.strip_prefix("application/grpc-web-text") {
        return Some((GrpcKind::WebText, rest));
    }
    if let Some(rest) = base.strip_prefix("application/grpc-web") {
        return Some((GrpcKind::Web, rest));
    }
    if let Some(rest) = base.strip_prefix("application/grpc") {
        return (rest.is_empty() || rest.starts_with('+')).then_some((GrpcKind::Grpc, rest));
    }
    None
}

/// gRPC status codes the gateway produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Code {
    DeadlineExceeded = 4,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// Parses `grpc-timeout` (`<up to 8 digits><H|M|S|m|u|n>`).
pub(crate) fn timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Turns a gRPC-Web request head into a gRPC one.
pub(crate) fn web_request_headers(headers: &mut HeaderMap, suffix: &str) {
    let ct = format!("application/grpc{suffix}");
    if let Ok(v) = HeaderValue::try_from(ct) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::TE, HeaderValue::from_static("trailers"));
    // The body may change length (base64 decoding); gRPC frames carry
    // their own lengths.
    headers.remove(header::CONTENT_LENGTH);
    headers.remove("x-grpc-web");
}

/// Turns a gRPC response head into a gRPC-Web one.
pub(crate) fn web_response_headers(headers: &mut HeaderMap, kind: GrpcKind, suffix: &str) {
    let base = if kind == GrpcKind::WebText {
        "application/grpc-web-text"
    } else {
        "application/grpc-web"
    };
    if let Ok(v) = HeaderValue::try_from(format!("{base}{suffix}")) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.remove(header::CONTENT_LENGTH);
}

/// A gRPC-Web-text request body, base64-decoded for the upstream.
#[derive(Debug)]
pub(crate) struct DecodeText<B> {
    inner: B,
    pending: Vec<u8>,
    done: bool,
}

impl<B> DecodeText<B> {
    pub(crate) fn new(inner: B) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            done: false,
        }
    }
}

impl<B> Body for DecodeText<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
                Poll::Ready(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.pending
                        .extend(data.iter().filter(|b| !b.is_ascii_whitespace()));
                    // Decode whole quanta; keep the rest for the next chunk.
                    let whole = this.pending.len() / 4 * 4;
                    if whole == 0 {
                        continue;
                    }
                    let decoded =
                        decode_segments(&this.pending[..whole]).map_err(BoxError::from)?;
                    this.pending.drain(..whole);
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(decoded)))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    if this.pending.is_empty() {
                        return Poll::Ready(None);
                    }
                    let decoded = decode_segments(&this.pending).map_err(BoxError::from)?;
                    this.pending.clear();
                    return Poll::Ready(Some(Ok(Frame::data(Bytes::from(decoded)))));
                }
            }
        }
    }
}

/// Decodes base64 that may be several padded segments one after another
/// (clients may encode each message separately).
fn decode_segments(input: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    for quantum in input.chunks(4) {
        STANDARD
            .decode_vec(quantum, &mut out)
            .map_err(|e| format!("invalid grpc-web-text body: {e}"))?;
    }
    Ok(out)
}

/// A gRPC response body made into gRPC-Web: trailers become a final
/// frame, and in text mode everything is base64.
#[derive(Debug)]
pub(crate) struct EncodeWeb<B> {
    inner: B,
    text: bool,
    /// Bytes not yet encoded in text mode (fewer than 3).
    carry: Vec<u8>,
    done: bool,
}

impl<B> EncodeWeb<B> {
    pub(crate) fn new(inner: B, kind: GrpcKind) -> Self {
        Self {
            inner,
            text: kind == GrpcKind::WebText,
            carry: Vec::new(),
            done: false,
        }
    }

    fn out(&mut self, data: &[u8], last: bool) -> Bytes {
        if !self.text {
            return Bytes::copy_from_slice(data);
        }
        self.carry.extend_from_slice(data);
        let whole = if last {
            self.carry.len()
        } else {
            self.carry.len() / 3 * 3
        };
        let encoded = STANDARD.encode(&self.carry[..whole]);
        self.carry.drain(..whole);
        Bytes::from(encoded)
    }
}

/// The gRPC-Web trailer frame for `trailers`.
pub(crate) fn trailer_frame(trailers: &HeaderMap) -> Bytes {
    let mut block = Vec::new();
    for (name, value) in trailers {
        block.extend_from_slice(name.as_str().as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    let mut frame = BytesMut::with_capacity(5 + block.len());
    frame.put_u8(0x80);
    frame.put_u32(u32::try_from(block.len()).unwrap_or(u32::MAX));
    frame.extend_from_slice(&block);
    frame.freeze()
}

impl<B> Body for EncodeWeb<B>
where
    B: Body<Data = Bytes, Error = BoxError> + Unpin,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = this.out(&data, false);
                        if out.is_empty() {
                            continue;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                    Err(frame) => {
                        let Ok(trailers) = frame.into_trailers() else {
                            continue;
                        };
                        this.done = true;
                        let out = this.out(&trailer_frame(&trailers), true);
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                },
                Poll::Ready(None) => {
                    this.done = true;
                    let out = this.out(&[], true);
                    if out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_kinds() {
        let mut h = HeaderMap::new();
        let mut check = |ct: &'static str, want: Option<(GrpcKind, &str)>| {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
            assert_eq!(kind(h.get(header::CONTENT_TYPE)), want, "{ct}");
        };
        check("application/grpc", Some((GrpcKind::Grpc, "")));
        check("application/grpc+proto", Some((GrpcKind::Grpc, "+proto")));
        check("application/grpc-web", Some((GrpcKind::Web, "")));
        check(
            "application/grpc-web+proto",
            Some((GrpcKind::Web, "+proto")),
        );
        check(
            "application/grpc-web-text+proto",
            Some((GrpcKind::WebText, "+proto")),
        );
        check("application/grpcx", None);
        check("application/json", None);
    }

    #[test]
    fn grpc_timeouts() {
        let mut h = HeaderMap::new();
        for (v, want) in [
            ("5S", Some(Duration::from_secs(5))),
            ("100m", Some(Duration::from_millis(100))),
            ("2M", Some(Duration::from_secs(120))),
            ("1H", Some(Duration::from_secs(3600))),
            ("250u", Some(Duration::from_micros(250))),
            ("123456789S", None),
            ("5", None),
            ("S", None),
            ("5x", None),
        ] {
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            assert_eq!(timeout(&h), want, "{v}");
        }
    }

    #[test]
    fn trailer_frames_and_segmented_base64() {
        let mut t = HeaderMap::new();
        t.insert("grpc-status", HeaderValue::from_static("0"));
        t.insert("grpc-message", HeaderValue::from_static("ok"));
        let frame = trailer_frame(&t);
        assert_eq!(frame[0], 0x80);
        let len = u32::from_be_bytes([frame[1], frame[2], frame[3], frame[4]]) as usize;
        assert_eq!(&frame[5..], b"grpc-status: 0\r\ngrpc-message: ok\r\n");
        assert_eq!(len, frame.len() - 5);
        // Two separately padded segments decode as one stream.
        let joined = format!("{}{}", STANDARD.encode(b"ab"), STANDARD.encode(b"cde"));
        assert_eq!(decode_segments(joined.as_bytes()).unwrap(), b"abcde");
    }
}
