//! Body types of the data plane.
//!
//! Requests go upstream as an [`UpstreamBody`]: the client's body streamed
//! as it arrives, a body already read (for body matching), or a streamed
//! body that also feeds copies to request mirrors. Every variant is
//! `Unpin` and dispatches without boxing.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{Empty, Limited};
use hyper::body::Incoming;
use tokio::sync::mpsc;

use crate::grpc::DecodeText;

pub(crate) use crate::error::BoxError;

/// A boxed body, for the rare transformed responses (compression).
pub(crate) type UnsyncBody = UnsyncBoxBody<Bytes, BoxError>;

/// A request body as the client sends it: read by hyper's server, or none
/// at all (the requests the gateway's own HTTP/1.1 server parses carry no
/// body; see `http1/server.rs`).
#[derive(Debug)]
pub(crate) enum FromClient {
    Hyper(Incoming),
    Empty,
}

/// The client's request body, counting the bytes read from it (for the
/// access log).
#[derive(Debug)]
pub(crate) struct ClientBody {
    inner: FromClient,
    /// `None` for bodies that are empty from the start.
    read: Option<Arc<AtomicU64>>,
}

impl ClientBody {
    /// Wraps `inner`; returns the counter of bytes read, when it has a
    /// body at all.
    pub(crate) fn new(inner: FromClient) -> (Self, Option<Arc<AtomicU64>>) {
        let read = match &inner {
            FromClient::Hyper(b) if !b.is_end_stream() => Some(Arc::new(AtomicU64::new(0))),
            _ => None,
        };
        (
            Self {
                inner,
                read: read.clone(),
            },
            read,
        )
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let FromClient::Hyper(inner) = &mut this.inner else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(read)) = (&polled, &this.read)
            && let Some(data) = frame.data_ref()
        {
            read.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            FromClient::Hyper(b) => b.is_end_stream(),
            FromClient::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            FromClient::Hyper(b) => b.size_hint(),
            FromClient::Empty => SizeHint::with_exact(0),
        }
    }
}

/// Frames a mirror may fall behind before it is cut off, so a slow mirror
/// never holds back the main request.
const MIRROR_QUEUE: usize = 64;

/// A request body on its way upstream.
#[derive(Debug)]
pub(crate) enum UpstreamBody {
    /// The client's body, streamed.
    Streamed(ClientBody),
    /// A body read in full (for body matching) or a copy of one.
    Buffered(Whole),
    /// No body.
    Empty(Empty<Bytes>),
    /// The client's body, streamed, with each chunk also queued to mirrors.
    Tee(TeeBody),
    /// A mirror's copy of a streamed body.
    Mirror(MirrorBody),
    /// The client's body, failing once it passes a size limit.
    Limited(Limited<ClientBody>),
    /// A gRPC-Web-text body, base64-decoded.
    Decoded(DecodeText<ClientBody>),
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            Self::Streamed(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Self::Buffered(b) => Poll::Ready(b.0.take().map(|d| Ok(Frame::data(d)))),
            Self::Empty(b) => Pin::new(b).poll_frame(cx).map_err(|never| match never {}),
            Self::Tee(b) => Pin::new(b).poll_frame(cx),
            Self::Mirror(b) => Pin::new(b).poll_frame(cx),
            Self::Limited(b) => Pin::new(b).poll_frame(cx),
            Self::Decoded(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Streamed(b) => b.is_end_stream(),
            Self::Buffered(b) => b.0.is_none(),
            Self::Empty(b) => b.is_end_stream(),
            Self::Tee(b) => b.inner.is_end_stream(),
            Self::Mirror(_) | Self::Decoded(_) => false,
            Self::Limited(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Streamed(b) => b.size_hint(),
            Self::Buffered(b) => SizeHint::with_exact(b.len() as u64),
            Self::Empty(b) => b.size_hint(),
            Self::Tee(b) => b.inner.size_hint(),
            Self::Mirror(b) => b.size_hint,
            Self::Limited(b) => b.size_hint(),
            Self::Decoded(_) => SizeHint::default(),
        }
    }
}

/// A request body held in full, sent as one frame.
#[derive(Debug)]
pub(crate) struct Whole(Option<Bytes>);

impl Whole {
    pub(crate) fn new(bytes: Bytes) -> Self {
        Self((!bytes.is_empty()).then_some(bytes))
    }

    /// The bytes not yet sent.
    pub(crate) fn bytes(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.bytes().len()
    }
}

/// A streamed body whose data chunks are also offered to mirrors.
#[derive(Debug)]
pub(crate) struct TeeBody {
    inner: ClientBody,
    mirrors: Vec<(mpsc::Sender<Bytes>, Arc<AtomicBool>)>,
}

/// One mirror's end of a [`TeeBody`].
#[derive(Debug)]
pub(crate) struct MirrorBody {
    rx: mpsc::Receiver<Bytes>,
    /// Set when the mirror fell behind and was cut off: the copy then ends
    /// with an error instead of looking complete.
    cut: Arc<AtomicBool>,
    size_hint: SizeHint,
}

impl TeeBody {
    /// Splits `inner` into the main body and `copies` mirror bodies.
    pub(crate) fn new(inner: ClientBody, copies: usize) -> (Self, Vec<MirrorBody>) {
        let size_hint = inner.size_hint();
        let mut mirrors = Vec::with_capacity(copies);
        let mut bodies = Vec::with_capacity(copies);
        for _ in 0..copies {
            let (tx, rx) = mpsc::channel(MIRROR_QUEUE);
            let cut = Arc::new(AtomicBool::new(false));
            mirrors.push((tx, cut.clone()));
            bodies.push(MirrorBody { rx, cut, size_hint });
        }
        (Self { inner, mirrors }, bodies)
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(e))) => {
                this.cut_all();
                return Poll::Ready(Some(Err(e.into())));
            }
            Poll::Ready(None) => {
                // Dropping the senders ends every mirror body cleanly.
                this.mirrors.clear();
                return Poll::Ready(None);
            }
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            this.mirrors
                .retain(|(tx, cut)| match tx.try_send(data.clone()) {
                    Ok(()) => true,
                    Err(_) => {
                        cut.store(true, Ordering::Release);
                        false
                    }
                });
        }
        Poll::Ready(Some(Ok(frame)))
    }
}

impl TeeBody {
    fn cut_all(&mut self) {
        for (_, cut) in self.mirrors.drain(..) {
            cut.store(true, Ordering::Release);
        }
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        // The main request went away before its body ended: the copies are
        // incomplete.
        if !self.inner.is_end_stream() {
            self.cut_all();
        }
    }
}

/// The mirror could not keep up, or the main body failed.
#[derive(Debug)]
struct MirrorCut;

impl std::fmt::Display for MirrorCut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mirror copy cut off")
    }
}

impl std::error::Error for MirrorCut {}

impl Body for MirrorBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(data)) => Poll::Ready(Some(Ok(Frame::data(data)))),
            Poll::Ready(None) if self.cut.load(Ordering::Acquire) => {
                Poll::Ready(Some(Err(Box::new(MirrorCut))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}
