//! `--scheduler per-thread`: the data plane on worker threads with a
//! single-threaded runtime each.
//!
//! Every worker listens on its own socket of each listening address
//! (`SO_REUSEPORT`), so the kernel hands a new connection to one worker,
//! which serves it and makes its upstream requests without another
//! thread ever being woken for it. The control plane (configuration,
//! admin endpoints, signals) runs on the process's main runtime.

use std::sync::Arc;

use anyhow::Context;
use dataplane::{ListenerConfig, Proxy};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{oneshot, watch};

/// One worker's sockets, bound and not yet listening.
pub(crate) struct Sockets {
    http: TcpSocket,
    https: Option<TcpSocket>,
}

/// Binds a socket of each address per worker.
pub(crate) fn bind(
    workers: usize,
    http: std::net::SocketAddr,
    https: Option<std::net::SocketAddr>,
) -> anyhow::Result<Vec<Sockets>> {
    let http = dataplane::bind_shared(http, workers)?;
    let mut https = match https {
        Some(addr) => Some(dataplane::bind_shared(addr, workers)?.into_iter()),
        None => None,
    };
    Ok(http
        .into_iter()
        .map(|http| Sockets {
            http,
            https: https.as_mut().and_then(Iterator::next),
        })
        .collect())
}

impl Sockets {
    /// Listening, registered with the runtime this is called in.
    fn listen(self) -> std::io::Result<(TcpListener, Option<TcpListener>)> {
        Ok((
            self.http.listen(1024)?,
            self.https.map(|s| s.listen(1024)).transpose()?,
        ))
    }
}

/// Serves on a worker thread per entry of `sockets` until `stop` turns
/// true, then lets each drain and returns once all have. A worker that
/// cannot start or that ends early (a panic) fires `stop` and `shutdown`
/// (the whole process's), and is the error returned.
pub(crate) async fn serve(
    sockets: Vec<Sockets>,
    proxy: Arc<Proxy>,
    config: ListenerConfig,
    stop: Arc<watch::Sender<bool>>,
    shutdown: watch::Sender<bool>,
) -> anyhow::Result<()> {
    // Workers keep their runtimes driven until every worker has drained:
    // what one opened (an HTTP/2 upstream connection, the Redis client)
    // may serve another's last requests.
    let (release, released) = watch::channel(false);
    let mut failure = None;
    let mut fail = |index: usize, e: anyhow::Error| {
        tracing::error!(worker = index, "data-plane worker did not start: {e:#}");
        failure.get_or_insert(e.context(format!("data-plane worker {index} did not start")));
        stop.send_replace(true);
        shutdown.send_replace(true);
    };
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let mut threads = Vec::new();
    for (index, sockets) in sockets.into_iter().enumerate() {
        let (started, start) = oneshot::channel();
        let (ended, end) = oneshot::channel();
        let worker = Worker {
            index,
            proxy: proxy.clone(),
            config: config.clone(),
            stop: stop.subscribe(),
            released: released.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name(format!("gatehouse-w{index}"))
            .spawn(move || worker.run(sockets, started, ended));
        match spawned {
            Ok(thread) => {
                threads.push(thread);
                starts.push((index, start));
                ends.push((index, end));
            }
            Err(e) => fail(index, anyhow::Error::new(e).context("starting its thread")),
        }
    }
    for (index, start) in starts {
        let outcome = start
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("its thread ended")));
        if let Err(e) = outcome {
            fail(index, e);
        }
    }
    // Each worker's end is watched on its own, so a worker lost while the
    // others serve stops the process at once.
    let watchers: Vec<_> = ends
        .into_iter()
        .map(|(index, end)| {
            let stop = stop.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                if end.await.is_err() {
                    tracing::error!(
                        worker = index,
                        "data-plane worker stopped unexpectedly; shutting down"
                    );
                    stop.send_replace(true);
                    shutdown.send_replace(true);
                    return Some(index);
                }
                None
            })
        })
        .collect();
    for watcher in watchers {
        if let Ok(Some(index)) = watcher.await
            && failure.is_none()
        {
            failure = Some(anyhow::anyhow!(
                "data-plane worker {index} stopped unexpectedly"
            ));
        }
    }
    release.send_replace(true);
    let joined = tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    });
    joined.await.context("joining the worker threads")?;
    failure.map_or(Ok(()), Err)
}

/// What a worker thread needs besides its sockets.
struct Worker {
    index: usize,
    proxy: Arc<Proxy>,
    config: ListenerConfig,
    stop: watch::Receiver<bool>,
    released: watch::Receiver<bool>,
}

impl Worker {
    /// The thread's body: reports through `started` whether it listens,
    /// serves until stopped and drained, then reports through `ended`
    /// (dropped unsent if the thread panics).
    fn run(
        self,
        sockets: Sockets,
        started: oneshot::Sender<anyhow::Result<()>>,
        ended: oneshot::Sender<()>,
    ) {
        dataplane::set_worker(self.index);
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = started.send(Err(anyhow::Error::new(e).context("starting its runtime")));
                let _ = ended.send(());
                return;
            }
        };
        let Self {
            index,
            proxy,
            config,
            stop,
            mut released,
        } = self;
        let span = tracing::info_span!("worker", index);
        runtime.block_on(tracing::Instrument::instrument(
            async move {
                let (http, https) = match sockets.listen() {
                    Ok(listeners) => listeners,
                    Err(e) => {
                        let _ = started.send(Err(anyhow::Error::new(e).context("listening")));
                        let _ = ended.send(());
                        return;
                    }
                };
                let _ = started.send(Ok(()));
                let stopped = |mut stop: watch::Receiver<bool>| async move {
                    let _ = stop.wait_for(|&s| s).await;
                };
                let tls = async {
                    if let Some(listener) = https {
                        dataplane::serve_tls(
                            listener,
                            proxy.clone(),
                            config.clone(),
                            stopped(stop.clone()),
                        )
                        .await;
                    }
                };
                tokio::join!(
                    dataplane::serve(http, proxy.clone(), config.clone(), stopped(stop.clone())),
                    tls
                );
                let _ = ended.send(());
                let _ = released.wait_for(|&r| r).await;
            },
            span,
        ));
    }
}
