//! The HTTP/1.1 codec both sides share: reading into a buffer, header
//! fields that share the read buffer's bytes, header names remembered per
//! connection, what a message's framing headers say, and the chunked
//! decoder (RFC 9112). No sockets of its own and no policy: the server
//! (`server.rs`) and the client (`client.rs`) decide what to do with a
//! message.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use http_body::Frame;
use tokio::io::AsyncRead;

/// Longest chunk-size line (size and extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

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
/// How a response body is delimited, and whether the connection can carry
/// another request afterwards.
#[derive(Debug)]
pub(crate) struct Framing {
    pub(crate) kind: Kind,
    pub(crate) reuse: bool,
}

/// Where a body stands.
#[derive(Debug)]
pub(crate) enum Kind {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Until the upstream closes the connection.
    Close,
    Done,
}

/// Where a chunked body stands.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Chunk {
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
pub(crate) fn framing(
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
/// What decoding a chunked body from the buffer gave.
pub(crate) enum Decoded {
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
pub(crate) fn decode_chunk(buf: &mut BytesMut, state: Chunk) -> Result<Decoded, &'static str> {
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
    use super::*;

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
}
