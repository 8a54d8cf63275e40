//! Standalone mode: a manifest directory, watched for changes.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::manifests::{FileError, ManifestSet};
use crate::pipeline::Pipeline;

/// How changes are coalesced before a new snapshot is built.
#[derive(Clone, Copy, Debug)]
pub struct Debounce {
    /// Wait until no change has arrived for this long...
    pub quiet: Duration,
    /// ...but never longer than this after the first change.
    pub max_delay: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Self {
            quiet: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
        }
    }
}

/// Settings of the standalone source.
#[derive(Clone, Debug)]
pub struct StandaloneConfig {
    /// Files and directories to read.
    pub roots: Vec<PathBuf>,
    /// Coalescing of bursts of changes.
    pub debounce: Debounce,
    /// A full rescan runs this often even without change events, in case a
    /// file system does not report them.
    pub resync: Duration,
}

/// Errors that stop the standalone source from starting.
#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    /// The file watcher could not be set up.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// The path that could not be watched.
        path: PathBuf,
        /// The watcher's error.
        #[source]
        source: notify::Error,
    },
}

/// Reads the manifests, publishes the first snapshot, then republishes on
/// every change until `shutdown` completes.
pub async fn run(
    config: StandaloneConfig,
    mut pipeline: Pipeline,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StandaloneError> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let labels = telemetry::metrics::ResourceLabels {
        resource: "files".to_owned(),
    };
    let metrics = &pipeline.telemetry().metrics;
    let events = metrics.watch_events.get_or_create_owned(&labels);
    let errors = metrics.watch_errors.get_or_create_owned(&labels);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Our own reads show up as access events; they change nothing.
        let relevant = match &event {
            Ok(e) => !matches!(e.kind, EventKind::Access(_)),
            Err(_) => {
                errors.inc();
                true
            }
        };
        if relevant {
            events.inc();
            let _ = tx.send(());
        }
    })
    .map_err(|source| StandaloneError::Watch {
        path: PathBuf::new(),
        source,
    })?;
    for root in &config.roots {
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|source| StandaloneError::Watch {
                path: root.clone(),
                source,
            })?;
    }

    let mut set = ManifestSet::new(config.roots.clone());
    let mut logged_errors = BTreeSet::new();
    reload(&mut set, &mut pipeline, &mut logged_errors, true).await;

    tokio::pin!(shutdown);
    let mut resync = tokio::time::interval(config.resync);
    resync.tick().await;
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            event = rx.recv() => {
                if event.is_none() {
                    break;
                }
                settle(&mut rx, config.debounce).await;
                reload(&mut set, &mut pipeline, &mut logged_errors, false).await;
            }
            _ = resync.tick() => {
                reload(&mut set, &mut pipeline, &mut logged_errors, false).await;
            }
            () = tokio::time::sleep(pipeline.recheck_in()) => {
                tracing::info!("re-checking certificate validity (a certificate expired, or a day passed)");
                reload(&mut set, &mut pipeline, &mut logged_errors, true).await;
            }
        }
    }
    drop(watcher);
    Ok(())
}

/// Waits for a burst of events to end: until `quiet` passes without one,
/// or `max_delay` after the first.
pub(crate) async fn settle(rx: &mut mpsc::UnboundedReceiver<()>, debounce: Debounce) {
    let deadline = Instant::now() + debounce.max_delay;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        let wait = debounce.quiet.min(deadline - now);
        match tokio::time::timeout(wait, rx.recv()).await {
            Ok(Some(())) => continue,
            Ok(None) | Err(_) => return,
        }
    }
}

async fn reload(
    set: &mut ManifestSet,
    pipeline: &mut Pipeline,
    logged_errors: &mut BTreeSet<String>,
    force: bool,
) {
    let report = set.rescan();
    for (path, skipped) in &report.skipped {
        tracing::warn!(
            file = %path.display(), line = skipped.line,
            "skipping {} {}: Gatehouse does not use this kind", skipped.api_version, skipped.kind
        );
    }
    let current: Vec<&FileError> = set.errors().collect();
    let current_text: BTreeSet<String> = current.iter().map(|e| e.to_string()).collect();
    for e in current_text.difference(logged_errors) {
        tracing::error!("manifest error, keeping the file's last good objects: {e}");
    }
    // Errors that are not about a file's content (a missing root, an
    // unreadable directory) come only from the scan itself.
    for e in &report.new_errors {
        let text = e.to_string();
        if !current_text.contains(&text) && !logged_errors.contains(&text) {
            tracing::error!("manifest error: {text}");
        }
    }
    *logged_errors = current_text;
    logged_errors.extend(report.new_errors.iter().map(ToString::to_string));

    if !(force || report.changed) {
        return;
    }
    let (resources, warnings) = set.resources();
    for w in warnings {
        tracing::warn!("{w}");
    }
    tracing::debug!(
        files = set.file_count(),
        objects = resources.len(),
        "manifests read"
    );
    pipeline.apply(resources).await;
}
