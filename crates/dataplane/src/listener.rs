//! Accepting connections and serving them until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::pin::Pin;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use snapshot::Scheme;

use rustls::server::Acceptor;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::body::FromClient;
use crate::connection::{Connection, TlsInfo};
use crate::http1::server::{self as h1_server, Outcome};
use crate::pipeline::Proxy;
use crate::proxy_protocol::{self, Prefixed};
use crate::send_timeout::SendTimeout;
use crate::tls::Choice;
use telemetry::metrics::HandshakeLabels;

/// A client's socket, as every server reads and writes it.
type ClientStream = SendTimeout<TcpStream>;

/// Limits applied to every downstream connection.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// Time a client has to send complete request headers; protects
    /// against slow-header (slowloris) clients.
    pub header_read_timeout: Duration,
    /// Largest request head (request line plus headers), in bytes.
    pub max_header_bytes: usize,
    /// Most request headers.
    pub max_headers: usize,
    /// How long in-flight requests may run after shutdown begins.
    pub drain_timeout: Duration,
    /// Expect a PROXY protocol (v1 or v2) header on every connection and
    /// take the client address from it.
    pub proxy_protocol: bool,
    /// How long a write to a client may wait for the client to read
    /// before the connection is closed (see `send_timeout.rs`).
    pub send_timeout: Duration,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 128,
            drain_timeout: Duration::from_secs(30),
            proxy_protocol: false,
            send_timeout: Duration::from_secs(60),
        }
    }
}

/// Serves plain-text HTTP/1.1 (and HTTP/2 with prior knowledge) on
/// `listener` until `shutdown` completes, then stops accepting and waits up
/// to the drain timeout for open requests to finish.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    config: ListenerConfig,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, proxy, config, shutdown, Scheme::Http).await;
}

/// Serves HTTPS (HTTP/1.1 and HTTP/2 by ALPN) on `listener`, with the
/// certificates of the live snapshot; otherwise as [`serve`]. The gateway
/// must have a default certificate
/// ([`crate::Gateway::set_default_certificate`]).
pub async fn serve_tls(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    config: ListenerConfig,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, proxy, config, shutdown, Scheme::Https).await;
}

async fn serve_with(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    config: ListenerConfig,
    shutdown: impl Future<Output = ()>,
    scheme: Scheme,
) {
    let mut http1 = http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        // The head limit is checked on every parsed head, however the
        // bytes arrived; the buffer bound alone is not (a head read in
        // one large read passes it).
        .max_header_size(config.max_header_bytes)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let limits = h1_server::Limits {
        header_timeout: config.header_read_timeout,
        max_head: config.max_header_bytes,
        max_headers: config.max_headers,
    };
    let servers = Arc::new(Servers {
        http1,
        http2,
        limits,
    });
    let drain = Drain::new();
    let connections = proxy.gateway().telemetry().metrics.listener(match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    });
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of
                    // spinning, and keep serving open connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let open = connections.accept();
        let conn = Accepted {
            peer,
            proxy: proxy.clone(),
            servers: servers.clone(),
            draining: drain.watcher(),
            proxy_protocol: config.proxy_protocol,
            header_timeout: config.header_read_timeout,
            send_timeout: config.send_timeout,
        };
        // The task's own future stays small: Tokio copies a task's whole
        // future when it starts and ends, and a connection's state (with
        // its request's future in place) is several KiB. That state is
        // boxed once, when the task first runs, and built in its box.
        tokio::spawn(async move {
            let _open = open;
            match scheme {
                Scheme::Http => boxed_in_place(|| conn.serve_plain(stream)).await,
                Scheme::Https => boxed_in_place(|| conn.serve_tls(stream)).await,
            }
        });
    }
    drop(listener);

    let name = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    tracing::info!(listener = name, "listener closed; draining open requests");
    tokio::select! {
        () = drain.shutdown() => tracing::info!(listener = name, "all connections drained"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!(listener = name, timeout = ?config.drain_timeout, "drain timeout reached; closing remaining connections");
        }
    }
}

/// The future `make` returns, in a box allocated before it is made: the
/// compiler then builds it in the box, where `Box::pin(make())` builds it
/// on the stack and copies the whole of it (a connection's state, several
/// KiB, for every new connection).
fn boxed_in_place<F: Future>(make: impl FnOnce() -> F) -> Pin<Box<F>> {
    let slot = Box::<F>::new_uninit();
    Box::into_pin(Box::write(slot, make()))
}

/// An accepted connection, before anything has been read from it.
struct Accepted {
    peer: SocketAddr,
    proxy: Arc<Proxy>,
    servers: Arc<Servers>,
    draining: Draining,
    proxy_protocol: bool,
    header_timeout: Duration,
    send_timeout: Duration,
}

impl Accepted {
    /// The stream and client address, after the PROXY header when the
    /// listener expects one; `None` when the connection is refused.
    async fn start(&self, stream: TcpStream) -> Option<(Prefixed<ClientStream>, SocketAddr)> {
        let peer = self.peer;
        let stream = SendTimeout::new(stream, self.send_timeout);
        if !self.proxy_protocol {
            return Some((Prefixed::new(Vec::new(), stream), peer));
        }
        match tokio::time::timeout(self.header_timeout, read_proxy_header(stream, peer)).await {
            Ok(Ok(accepted)) => Some(accepted),
            Ok(Err(e)) => {
                tracing::debug!(client = %peer, error = %e, "connection refused");
                None
            }
            Err(_) => {
                tracing::debug!(client = %peer, "no PROXY header in time");
                None
            }
        }
    }

    /// Serves a plain-text connection: HTTP/1.1, or HTTP/2 with prior
    /// knowledge.
    async fn serve_plain(self, stream: TcpStream) {
        let Some((stream, peer)) = self.start(stream).await else {
            return;
        };
        let conn_info = Arc::new(Connection::new(peer, Scheme::Http));
        let Some((protocol, stream)) = sniff(stream, peer, self.header_timeout).await else {
            return;
        };
        self.servers
            .serve(stream, protocol, &self.proxy, conn_info, self.draining)
            .await;
    }

    /// Serves an HTTPS connection: the handshake, then HTTP/2 or HTTP/1.1
    /// as ALPN says (sniffed like plain text when the client negotiated
    /// none).
    async fn serve_tls(self, stream: TcpStream) {
        let Some((stream, peer)) = self.start(stream).await else {
            return;
        };
        let Some((stream, tls_info)) =
            handshake(&self.proxy, stream, peer, self.header_timeout).await
        else {
            return;
        };
        let negotiated = match stream.get_ref().1.alpn_protocol() {
            Some(b"h2") => Some(Protocol::Http2),
            Some(_) => Some(Protocol::Http1),
            None => None,
        };
        let conn_info = Arc::new(Connection::new(peer, Scheme::Https).with_tls(tls_info));
        let stream = Prefixed::new(Vec::new(), stream);
        let (protocol, stream) = match negotiated {
            Some(protocol) => (protocol, stream),
            None => match sniff(stream, peer, self.header_timeout).await {
                Some(sniffed) => sniffed,
                None => return,
            },
        };
        self.servers
            .serve(stream, protocol, &self.proxy, conn_info, self.draining)
            .await;
    }
}

/// The HTTP version a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// The first bytes of an HTTP/2 connection with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads the start of a connection to tell HTTP/2 with prior knowledge
/// (its preface) from HTTP/1.x, within `timeout` (a client that sends
/// nothing is let go then). One read of up to 8 KiB usually decides and
/// usually holds the whole request head; what was read is replayed to the
/// chosen protocol's server, so no byte is read twice from the socket.
/// `None` when the client went away or said nothing in time.
async fn sniff<S>(
    mut stream: Prefixed<S>,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<(Protocol, Prefixed<S>)>
where
    S: AsyncRead + Unpin,
{
    let read = async {
        let mut start = Vec::with_capacity(8192);
        loop {
            if stream.read_buf(&mut start).await? == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            let seen = start.len().min(H2_PREFACE.len());
            if start[..seen] != H2_PREFACE[..seen] {
                return Ok(Some((Protocol::Http1, start)));
            }
            if seen == H2_PREFACE.len() {
                return Ok(Some((Protocol::Http2, start)));
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(Some((protocol, start)))) => Some((protocol, stream.replay(start))),
        Ok(Ok(None)) => None,
        Ok(Err(e)) => {
            tracing::debug!(client = %peer, error = %e, "connection failed before a request");
            None
        }
        Err(_) => {
            tracing::debug!(client = %peer, "no request in time");
            None
        }
    }
}

/// The HTTP/1.1 and HTTP/2 servers of a listener: HTTP/1.1 connections
/// start on the gateway's own server (`http1/server.rs`), which hands them to
/// hyper's when a request needs it.
struct Servers {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
    limits: h1_server::Limits,
}

impl Servers {
    /// Serves one connection until it closes, or until the listener
    /// drains (then in-flight requests finish and the connection closes).
    async fn serve<S>(
        &self,
        stream: Prefixed<S>,
        protocol: Protocol,
        proxy: &Arc<Proxy>,
        conn_info: Arc<Connection>,
        mut draining: Draining,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let stream = match protocol {
            Protocol::Http1 => {
                match h1_server::serve(
                    stream,
                    proxy,
                    &conn_info,
                    &self.limits,
                    &mut draining.signal,
                )
                .await
                {
                    Outcome::Done => return,
                    Outcome::HandOver(stream) => stream,
                }
            }
            Protocol::Http2 => stream,
        };
        let peer = conn_info.peer;
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            let conn_info = conn_info.clone();
            // Boxed: hyper moves the future it is given on its way in, and
            // the pipeline's state is a few KiB.
            async move {
                let handling = Box::pin(proxy.handle(req.map(FromClient::Hyper), &conn_info));
                Ok::<_, Infallible>(handling.await)
            }
        });
        let io = TokioIo::new(stream);
        let result = match protocol {
            Protocol::Http1 => {
                let conn = self.http1.serve_connection(io, service).with_upgrades();
                draining.watch(conn).await
            }
            Protocol::Http2 => {
                let conn = self.http2.serve_connection(io, service);
                draining.watch(conn).await
            }
        };
        if let Err(e) = result {
            tracing::debug!(client = %peer, error = %e, "connection ended with an error");
        }
    }
}

/// A connection type that can be asked to finish its in-flight requests
/// and close.
trait GracefulConnection: Future<Output = Result<(), hyper::Error>> {
    fn begin_shutdown(self: Pin<&mut Self>);
}

impl<I, S, B> GracefulConnection for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, B, E> GracefulConnection for http2::Connection<I, S, E>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, B>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// The listener's side of a graceful shutdown: connections watch it, and
/// [`Drain::shutdown`] asks them all to finish and waits until they have.
struct Drain {
    signal: watch::Sender<bool>,
}

/// A connection's side of a [`Drain`].
struct Draining {
    signal: watch::Receiver<bool>,
}

impl Drain {
    fn new() -> Self {
        Self {
            signal: watch::Sender::new(false),
        }
    }

    fn watcher(&self) -> Draining {
        Draining {
            signal: self.signal.subscribe(),
        }
    }

    /// Asks every connection to close after its in-flight requests, and
    /// completes when all of them have.
    async fn shutdown(self) {
        let _ = self.signal.send(true);
        self.signal.closed().await;
    }
}

impl Draining {
    /// Drives `conn`; when the listener drains, the connection finishes
    /// what it is doing and closes.
    async fn watch<C: GracefulConnection>(mut self, conn: C) -> Result<(), hyper::Error> {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            biased;
            done = conn.as_mut() => return done,
            _ = self.signal.wait_for(|draining| *draining) => conn.as_mut().begin_shutdown(),
        }
        conn.await
    }
}

/// The TLS handshake: reads the ClientHello, picks the configuration for
/// its SNI from the live snapshot and completes the handshake, all within
/// `timeout`. `None` when the handshake fails or is refused.
async fn handshake(
    proxy: &Proxy,
    stream: Prefixed<ClientStream>,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<(TlsStream<Prefixed<ClientStream>>, TlsInfo)> {
    let work = async {
        let start = LazyConfigAcceptor::new(Acceptor::default(), stream)
            .await
            .map_err(|e| format!("reading the ClientHello: {e}"))?;
        let sni = start
            .client_hello()
            .server_name()
            .map(str::to_ascii_lowercase);
        let active = proxy.gateway().load();
        let state = active
            .tls
            .as_ref()
            .ok_or_else(|| "HTTPS has no default certificate".to_owned())?;
        let (config, host) = match state.choose(&active.snapshot, sni.as_deref()) {
            Choice::Serve { config, host } => (config, host),
            Choice::Refuse => {
                return Err(format!(
                    "{} requires client certificates but its CA bundle is unusable",
                    sni.as_deref().unwrap_or("")
                ));
            }
        };
        drop(active);
        let stream = start
            .into_stream(config)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let client_subject = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| tls::subject_of(leaf))
            .and_then(|s| http::HeaderValue::try_from(s).ok());
        Ok::<_, String>((
            stream,
            TlsInfo {
                host,
                client_subject,
            },
        ))
    };
    let metrics = &proxy.gateway().telemetry().metrics;
    let failed = || {
        metrics
            .tls_handshakes
            .get_or_create(&HandshakeLabels {
                result: "failure",
                version: "",
            })
            .inc();
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(done)) => {
            let version = match done.0.get_ref().1.protocol_version() {
                Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
                Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
                _ => "other",
            };
            metrics
                .tls_handshakes
                .get_or_create(&HandshakeLabels {
                    result: "success",
                    version,
                })
                .inc();
            Some(done)
        }
        Ok(Err(e)) => {
            failed();
            tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            failed();
            tracing::debug!(client = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Reads the PROXY header, returning the stream (with any bytes read past
/// the header put back) and the client address it names. A header for a
/// local connection (the load balancer's own health check) keeps the
/// peer's address.
async fn read_proxy_header(
    mut stream: ClientStream,
    peer: SocketAddr,
) -> std::io::Result<(Prefixed<ClientStream>, SocketAddr)> {
    let header = proxy_protocol::read_header(&mut stream).await?;
    Ok((
        Prefixed::new(header.rest, stream),
        header.source.unwrap_or(peer),
    ))
}

/// Binds a TCP listener, with a message that names the address on failure.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))
}

/// Binds `count` sockets to `addr` that share it (`SO_REUSEPORT`): the
/// kernel spreads new connections over them, by a hash of each
/// connection's addresses. Each one listens once
/// [`tokio::net::TcpSocket::listen`] is called inside the runtime that is
/// to serve it. Fails, naming the address, when anything listens there
/// already (also another process that would share it), and resolves port
/// 0 to one port for all.
pub fn bind_shared(addr: SocketAddr, count: usize) -> std::io::Result<Vec<TcpSocket>> {
    let named =
        |e: std::io::Error| std::io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}"));
    // An exclusive bind first: sockets that share the address would also
    // join another process's (a second gateway started by mistake would
    // quietly take half of the connections).
    let probe = std::net::TcpListener::bind(addr).map_err(named)?;
    let bound = probe.local_addr().map_err(named)?;
    drop(probe);
    (0..count.max(1))
        .map(|_| {
            let socket = if bound.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.set_reuseaddr(true)?;
            socket.set_reuseport(true)?;
            socket.bind(bound)?;
            Ok(socket)
        })
        .collect::<std::io::Result<_>>()
        .map_err(named)
}
