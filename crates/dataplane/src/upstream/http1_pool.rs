//! HTTP/1.1 keep-alive connections to plain-HTTP upstream endpoints,
//! pooled per endpoint address, through hyper's client: for the requests
//! `http1/client.rs` does not take (those with a body, upgrades, `Expect`).
//!
//! A connection goes back into the pool as soon as its response head
//! arrives, while the body may still be streaming; a checkout takes the
//! most recently used connection that is idle (hyper's `is_ready`: its
//! connection task is waiting for the next request) and leaves busy ones
//! where they are. So a request costs one lock, a short scan and no task
//! of its own, and an endpoint holds about as many connections as it has
//! concurrent requests (at most `max_idle` are kept). Closed connections
//! and ones idle longer than `idle_timeout` are dropped when met, and all
//! endpoints' lists (those of endpoints no longer used too) are swept as
//! requests pass, at most every `idle_timeout / 2` (10 s at most).
//!
//! A connection the upstream closed while it sat in the pool hands the
//! request back unsent; it is sent again on another connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use super::connect::{UpstreamConfig, UpstreamError, connect_tcp, lock};
use crate::body::UpstreamBody;
use crate::workers::PerWorker;

type Sender = http1::SendRequest<UpstreamBody>;

#[derive(Default)]
struct Endpoints {
    by_addr: HashMap<SocketAddr, Vec<Idle>>,
    /// When every endpoint's list was last cleaned.
    swept: Option<Instant>,
}

impl Endpoints {
    /// Drops closed and expired connections of every endpoint (also of
    /// endpoints no request goes to any more), at most once per `every`.
    fn sweep(&mut self, now: Instant, idle_timeout: Duration, every: Duration) {
        if self.swept.is_some_and(|t| now.duration_since(t) < every) {
            return;
        }
        self.swept = Some(now);
        self.by_addr.retain(|_, list| {
            list.retain(|i| !i.sender.is_closed() && now.duration_since(i.since) <= idle_timeout);
            !list.is_empty()
        });
    }
}

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The HTTP/1.1 connections of the process, by endpoint, a share per
/// data-plane worker (a connection's task runs on the runtime of the
/// worker that opened it; see `workers.rs`).
pub(crate) struct Http1Pool {
    endpoints: PerWorker<Endpoints>,
    connect_timeout: Duration,
    idle_timeout: Duration,
    max_idle: usize,
}

impl std::fmt::Debug for Http1Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http1Pool")
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_idle", &self.max_idle)
            .finish_non_exhaustive()
    }
}

/// How many pooled connections that turn out closed are tried before a
/// new one is made.
const STALE_RETRIES: usize = 2;

impl Http1Pool {
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

    /// Sends `req` (origin-form URI, Host header set) to `endpoint`.
    pub(crate) async fn send(
        &self,
        endpoint: SocketAddr,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        for _ in 0..STALE_RETRIES {
            let Some(mut sender) = self.checkout(endpoint) else {
                break;
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.checkin(endpoint, sender, resp.status());
                    return Ok(resp);
                }
                Err(mut e) => match e.take_message() {
                    // Never written: the connection was closed under us.
                    Some(unsent) => req = unsent,
                    None => return Err(UpstreamError::Reset(Box::new(e.into_error()))),
                },
            }
        }
        let mut sender = self.connect(endpoint).await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| UpstreamError::Reset(Box::new(e)))?;
        self.checkin(endpoint, sender, resp.status());
        Ok(resp)
    }

    /// An idle connection to `endpoint`, dropping closed and expired ones
    /// on the way.
    fn checkout(&self, endpoint: SocketAddr) -> Option<Sender> {
        let mut endpoints = lock(self.endpoints.here());
        let now = Instant::now();
        endpoints.sweep(now, self.idle_timeout, self.sweep_every());
        let list = endpoints.by_addr.get_mut(&endpoint)?;
        let mut i = list.len();
        while i > 0 {
            i -= 1;
            let idle = &list[i];
            if idle.sender.is_closed() || now.duration_since(idle.since) > self.idle_timeout {
                list.swap_remove(i);
                continue;
            }
            if idle.sender.is_ready() {
                return Some(list.swap_remove(i).sender);
            }
        }
        None
    }

    /// Puts a connection back (its response body may still be streaming;
    /// it is taken again once idle).
    fn checkin(&self, endpoint: SocketAddr, sender: Sender, status: http::StatusCode) {
        // A switched protocol owns the connection now.
        if sender.is_closed() || status == http::StatusCode::SWITCHING_PROTOCOLS {
            return;
        }
        let mut endpoints = lock(self.endpoints.here());
        let list = endpoints.by_addr.entry(endpoint).or_default();
        if list.len() >= self.max_idle {
            // Make room by dropping a closed connection, else this one.
            match list.iter().position(|i| i.sender.is_closed()) {
                Some(p) => {
                    list.swap_remove(p);
                }
                None => return,
            }
        }
        list.push(Idle {
            sender,
            since: Instant::now(),
        });
    }

    /// How often all endpoints are cleaned (as requests pass by).
    fn sweep_every(&self) -> Duration {
        (self.idle_timeout / 2).min(Duration::from_secs(10))
    }

    async fn connect(&self, endpoint: SocketAddr) -> Result<Sender, UpstreamError> {
        let stream = connect_tcp(endpoint, self.connect_timeout).await?;
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
        // With upgrades: a 101 hands the connection to the WebSocket (or
        // other) tunnel instead of closing it.
        tokio::spawn(async move {
            if let Err(e) = connection.with_upgrades().await {
                tracing::debug!(%endpoint, error = %e, "upstream connection ended");
            }
        });
        Ok(sender)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server that answers `answers` keep-alive requests per connection
    /// and then closes it, counting connections. With `slow`, the last two
    /// bytes of each body come 200 ms after the rest.
    async fn server(answers: usize, slow: bool) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..answers {
                        let mut seen = Vec::new();
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = s.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..n]);
                        }
                        if slow {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nok")
                                .await;
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            let _ = s.write_all(b"!!").await;
                        } else {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                                .await;
                        }
                    }
                    // Closes the connection after its last answer.
                });
            }
        });
        (addr, accepted)
    }

    fn get() -> Request<UpstreamBody> {
        Request::get("/")
            .header("host", "x")
            .body(UpstreamBody::Empty(Empty::<Bytes>::new()))
            .unwrap()
    }

    #[tokio::test]
    async fn reuses_idle_connections_and_replaces_closed_ones() {
        let (addr, accepted) = server(3, false).await;
        let pool = Http1Pool::new(&UpstreamConfig::for_tests(Duration::from_secs(60), 8, 0));
        for i in 0..9 {
            let resp = pool
                .send(addr, get())
                .await
                .unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(resp.status(), 200);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
            // Let the connection task see the end of the response (and
            // the server's close after every third).
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Three answers per connection: nine requests on three connections,
        // each closed by the server and replaced without a failed request.
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        assert!(pool.pooled(addr) <= 1);
    }

    #[tokio::test]
    async fn concurrent_requests_open_their_own_connections_up_to_the_bound() {
        let (addr, accepted) = server(1000, true).await;
        let pool = Arc::new(Http1Pool::new(&UpstreamConfig::for_tests(
            Duration::from_secs(60),
            4,
            0,
        )));
        // Eight requests whose bodies are still arriving: eight
        // connections, since a busy one is never handed out.
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(pool.send(addr, get()).await.unwrap());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 8);
        assert_eq!(pool.pooled(addr), 4, "at most max_idle kept");
        for r in held {
            let _ = r.into_body().collect().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Afterwards the pooled ones serve everything.
        for _ in 0..5 {
            let r = pool.send(addr, get()).await.unwrap();
            let _ = r.into_body().collect().await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            8,
            "idle connections reused"
        );
    }

    #[tokio::test]
    async fn idle_connections_of_unused_endpoints_are_swept() {
        let (a, _) = server(1000, false).await;
        let (b, _) = server(1000, false).await;
        let pool = Http1Pool::new(&UpstreamConfig::for_tests(Duration::from_millis(100), 8, 0));
        let r = pool.send(a, get()).await.unwrap();
        let _ = r.into_body().collect().await.unwrap();
        assert_eq!(pool.pooled(a), 1);
        tokio::time::sleep(Duration::from_millis(150)).await;
        // Only endpoint b is used now; its requests clean a's list.
        let r = pool.send(b, get()).await.unwrap();
        let _ = r.into_body().collect().await.unwrap();
        assert_eq!(pool.pooled(a), 0);
        assert_eq!(pool.pooled(b), 1);
    }

    #[tokio::test]
    async fn connect_failures_are_connect_errors() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let pool = Http1Pool::new(&UpstreamConfig::for_tests(Duration::from_secs(60), 4, 0));
        assert!(matches!(
            pool.send(addr, get()).await,
            Err(UpstreamError::Connect(_))
        ));
    }
}
