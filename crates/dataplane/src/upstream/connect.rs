//! What every upstream client shares: settings, the error that says
//! whether anything was sent, and the TCP connect. The lowest room of the
//! upstreams; the clients import it, it imports none of them.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::error::BoxError;

/// Why an upstream request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// No connection could be made: nothing was sent, a retry is safe.
    #[error("connect: {0}")]
    Connect(#[source] BoxError),
    /// The connection failed before a complete response arrived.
    #[error("{0}")]
    Reset(#[source] BoxError),
}

/// Settings of upstream connections.
#[derive(Clone, Debug)]
pub(crate) struct UpstreamConfig {
    pub(crate) connect_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_idle: usize,
    /// Data-plane workers with a runtime each, each with its own share of
    /// the pools (0: one runtime for all).
    pub(crate) workers: usize,
}

#[cfg(test)]
impl UpstreamConfig {
    /// Pool settings for tests: a 1 s connect timeout and the rest as
    /// given.
    pub(crate) fn for_tests(idle_timeout: Duration, max_idle: usize, workers: usize) -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            idle_timeout,
            max_idle,
            workers,
        }
    }
}

/// Locks `m`. A poisoned lock only means another request panicked while
/// holding it; the maps and lists behind these locks are still usable.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A TCP connection to `endpoint` within `timeout`, with Nagle off.
pub(crate) async fn connect_tcp(
    endpoint: SocketAddr,
    timeout: Duration,
) -> Result<TcpStream, UpstreamError> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(endpoint))
        .await
        .map_err(|_| {
            UpstreamError::Connect(
                format!("connecting to {endpoint} timed out after {timeout:?}").into(),
            )
        })?
        .map_err(|e| UpstreamError::Connect(Box::new(e)))?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}
