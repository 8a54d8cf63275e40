//! The PROXY protocol (versions 1 and 2), which cloud load balancers put
//! in front of a TCP connection to say who the real client is.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_MAX: usize = 107;

/// The result of reading a PROXY header.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The client's address, or `None` for a `LOCAL`/`UNKNOWN` connection
    /// (a health check by the load balancer itself).
    pub(crate) source: Option<SocketAddr>,
    /// Bytes read past the header: the start of the HTTP stream.
    pub(crate) rest: Vec<u8>,
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("PROXY protocol: {msg}"))
}

/// Reads and parses the PROXY header at the start of `stream`.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Header> {
    let mut buf = Vec::with_capacity(256);
    loop {
        if let Some(parsed) = parse(&buf)? {
            return Ok(parsed);
        }
        if buf.len() > 16 + 65_535 {
            return Err(bad("header too long"));
        }
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(bad("connection closed before the header ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a complete header from `buf`; `Ok(None)` when more bytes are
/// needed.
fn parse(buf: &[u8]) -> io::Result<Option<Header>> {
    let common = buf.len().min(V2_SIGNATURE.len());
    if buf[..common] == V2_SIGNATURE[..common] {
        return parse_v2(buf);
    }
    if b"PROXY "[..buf.len().min(6)] != buf[..buf.len().min(6)] {
        return Err(bad("no PROXY header"));
    }
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(bad("v1 header too long"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| bad("v1 header is not text"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let source = match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => None,
        ["PROXY", proto @ ("TCP4" | "TCP6"), src, _dst, sport, _dport] => {
            let ip: IpAddr = src.parse().map_err(|_| bad("bad source address"))?;
            if (*proto == "TCP4") != ip.is_ipv4() {
                return Err(bad("address family does not match"));
            }
            let port: u16 = sport.parse().map_err(|_| bad("bad source port"))?;
            Some(SocketAddr::new(ip, port))
        }
        _ => return Err(bad("malformed v1 header")),
    };
    Ok(Some(Header {
        source,
        rest: buf[end + 2..].to_vec(),
    }))
}

fn parse_v2(buf: &[u8]) -> io::Result<Option<Header>> {
    if buf.len() < 16 {
        return Ok(None);
    }
    let version = buf[12] >> 4;
    let command = buf[12] & 0x0f;
    if version != 2 {
        return Err(bad("unknown version"));
    }
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if buf.len() < 16 + len {
        return Ok(None);
    }
    let body = &buf[16..16 + len];
    let source = match (command, buf[13]) {
        // LOCAL: the load balancer's own connection.
        (0x0, _) => None,
        (0x1, 0x11) if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([body[8], body[9]]),
            ))
        }
        (0x1, 0x21) if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                u16::from_be_bytes([body[32], body[33]]),
            ))
        }
        (0x1, 0x00) => None,
        (0x1, _) => return Err(bad("unsupported address family")),
        _ => return Err(bad("unknown command")),
    };
    Ok(Some(Header {
        source,
        rest: buf[16 + len..].to_vec(),
    }))
}

/// A stream with some already-read bytes put back in front.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    offset: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            offset: 0,
            inner,
        }
    }

    /// The same stream with `read` (bytes just read from it) put back in
    /// front of whatever it still had to give.
    pub(crate) fn replay(self, mut read: Vec<u8>) -> Self {
        read.extend_from_slice(&self.prefix[self.offset..]);
        Self::new(read, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset < self.prefix.len() {
            let n = buf.remaining().min(self.prefix.len() - self.offset);
            let start = self.offset;
            buf.put_slice(&self.prefix[start..start + n]);
            self.offset += n;
            if self.offset == self.prefix.len() {
                // Replayed in full: the buffer is not needed any more.
                self.prefix = Vec::new();
                self.offset = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_headers() {
        let h = parse(b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("203.0.113.7:51234".parse().unwrap()));
        assert_eq!(h.rest, b"GET / HTTP/1.1\r\n");
        let h = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 4000 443\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.source, Some("[2001:db8::1]:4000".parse().unwrap()));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n").unwrap().unwrap().source, None);
        assert!(
            parse(b"PROXY TCP4 1.2.3.4").unwrap().is_none(),
            "incomplete"
        );
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 x 80\r\n",
            b"PROXY SCTP\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn v2_headers() {
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend_from_slice(&[
            0x21, 0x11, 0, 12, 198, 51, 100, 4, 10, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        v2.extend_from_slice(b"GET");
        assert!(parse(&v2[..20]).unwrap().is_none(), "incomplete");
        let h = parse(&v2).unwrap().unwrap();
        assert_eq!(h.source, Some("198.51.100.4:8080".parse().unwrap()));
        assert_eq!(h.rest, b"GET");
        let mut local = V2_SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&local).unwrap().unwrap().source, None);
    }

    #[tokio::test]
    async fn reads_across_chunks_and_keeps_the_rest() {
        let (mut client, mut server) = tokio::io::duplex(8);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            client
                .write_all(b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 80\r\nhello")
                .await
                .unwrap();
        });
        let h = read_header(&mut server).await.unwrap();
        writer.await.unwrap();
        assert_eq!(h.source, Some("1.2.3.4:1111".parse().unwrap()));
        let mut stream = Prefixed::new(h.rest, server);
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"hello");
    }
}
