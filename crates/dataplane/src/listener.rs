//! Accepting connections and serving them until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use snapshot::Scheme;

use rustls::server::Acceptor;
use tokio_rustls::LazyConfigAcceptor;
use tokio_rustls::server::TlsStream;

use crate::proxy::{Connection, Proxy, TlsInfo};
use crate::proxy_protocol::{self, Prefixed};
use crate::tls::Choice;
use telemetry::metrics::HandshakeLabels;

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
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 128,
            drain_timeout: Duration::from_secs(30),
            proxy_protocol: false,
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
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(config.max_header_bytes.max(8192))
        .max_headers(config.max_headers);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
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
        let proxy = proxy.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let proxy_protocol = config.proxy_protocol;
        let header_timeout = config.header_read_timeout;
        let open = connections.accept();
        tokio::spawn(async move {
            let _open = open;
            let (stream, peer) = if proxy_protocol {
                match tokio::time::timeout(header_timeout, read_proxy_header(stream, peer)).await {
                    Ok(Ok(accepted)) => accepted,
                    Ok(Err(e)) => {
                        tracing::debug!(client = %peer, error = %e, "connection refused");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(client = %peer, "no PROXY header in time");
                        return;
                    }
                }
            } else {
                (Prefixed::new(Vec::new(), stream), peer)
            };
            let conn_info = Connection::new(peer, scheme);
            if scheme == Scheme::Http {
                let conn_info = Arc::new(conn_info);
                let service = service_fn(move |req| {
                    let proxy = proxy.clone();
                    let conn_info = conn_info.clone();
                    async move { Ok::<_, Infallible>(proxy.handle(req, &conn_info).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(client = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            let Some((stream, tls_info)) = handshake(&proxy, stream, peer, header_timeout).await
            else {
                return;
            };
            let conn_info = Arc::new(conn_info.with_tls(tls_info));
            let service = service_fn(move |req| {
                let proxy = proxy.clone();
                let conn_info = conn_info.clone();
                async move { Ok::<_, Infallible>(proxy.handle(req, &conn_info).await) }
            });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);

    tracing::info!("listener closed; draining open requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!(timeout = ?config.drain_timeout, "drain timeout reached; closing remaining connections");
        }
    }
}

/// The TLS handshake: reads the ClientHello, picks the configuration for
/// its SNI from the live snapshot and completes the handshake, all within
/// `timeout`. `None` when the handshake fails or is refused.
async fn handshake(
    proxy: &Proxy,
    stream: Prefixed<TcpStream>,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<(TlsStream<Prefixed<TcpStream>>, TlsInfo)> {
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
    mut stream: TcpStream,
    peer: SocketAddr,
) -> std::io::Result<(Prefixed<TcpStream>, SocketAddr)> {
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
