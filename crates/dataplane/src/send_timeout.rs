//! A client connection that fails its writes when the client stops
//! reading.
//!
//! A client that requests a large answer and then reads nothing (or a
//! byte a minute) would otherwise hold its connection, its upstream
//! connection and the response's buffers for as long as it likes. Under
//! every server (the gateway's own HTTP/1.1 server, hyper's HTTP/1.1 and
//! HTTP/2 servers, TLS) the socket is wrapped in [`SendTimeout`]: a write
//! that makes no progress for the send timeout fails with `TimedOut`, and
//! the server closes the connection. The limit is on progress, not on the
//! whole response: a slow reader that keeps reading keeps its download.
//!
//! The timer costs nothing while writes go through: it is armed only when
//! a write would block, and allocated only the first time one does.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner`, whose writes fail after `limit` without progress.
#[derive(Debug)]
pub(crate) struct SendTimeout<S> {
    inner: S,
    limit: Duration,
    /// Allocated on the first write that has to wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether the timer counts for the write now waiting.
    armed: bool,
}

impl<S> SendTimeout<S> {
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
            armed: false,
        }
    }

    /// Turns a write's poll into the timed one: progress (or an error)
    /// disarms the timer; waiting arms it, and fails once it fires.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        let deadline = Instant::now() + self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.armed {
            timer.as_mut().reset(deadline);
            self.armed = true;
        }
        ready!(timer.as_mut().poll(cx));
        self.armed = false;
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {:?}", self.limit),
        )))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.timed(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.timed(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.timed(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.timed(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A reader that stops reading stalls the writer, which fails after
    /// the limit; a reader that keeps reading, however slowly, does not.
    #[tokio::test(start_paused = true)]
    async fn writes_fail_only_without_progress() {
        let (near, mut far) = tokio::io::duplex(1024);
        let mut near = SendTimeout::new(near, Duration::from_secs(5));
        let chunk = vec![b'x'; 4096];

        // A slow reader: 512 bytes every 4 s keeps every write within 5 s
        // of the last progress.
        let slow = tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let mut read = 0;
            while read < 8192 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                read += far.read(&mut buf).await.unwrap();
            }
            far
        });
        near.write_all(&chunk).await.unwrap();
        near.write_all(&chunk).await.unwrap();
        let far = slow.await.unwrap();

        // Nobody reads: the write fails after the limit, not before.
        let started = Instant::now();
        let err = near.write_all(&chunk).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(5) && waited < Duration::from_secs(6),
            "{waited:?}"
        );
        drop(far);
    }
}
