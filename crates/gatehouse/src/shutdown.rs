//! Turning SIGTERM and SIGINT into a shutdown signal every task can await.

use tokio::sync::watch;

/// A shutdown signal: cloned into each task, resolved once for all.
#[derive(Clone, Debug)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Completes when shutdown has begun.
    pub(crate) async fn wait(mut self) {
        let _ = self.0.wait_for(|&stop| stop).await;
    }
}

/// Returns the signal and spawns the task that fires it on SIGTERM or
/// SIGINT.
pub(crate) fn on_signals() -> anyhow::Result<(Shutdown, watch::Sender<bool>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = watch::channel(false);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let fire = tx.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        let _ = fire.send(true);
    });
    Ok((Shutdown(rx), tx))
}
