//! Translate and publish: the step every source ends in.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snapshot::Snapshot;
use telemetry::Telemetry;
use telemetry::metrics::DiagnosticLabels;
use translate::{Diagnostic, ObjectRef, Options, Output, ResourceSet, Severity, translate};

/// Where snapshots go: the data plane's publish function. It must be
/// cheap (one atomic swap).
pub type Publish = Arc<dyn Fn(Arc<Snapshot>) + Send + Sync>;

/// What one pass through the pipeline did.
#[derive(Debug)]
pub struct Applied {
    /// The snapshot live afterwards: the new one, or the equal one that
    /// was already live.
    pub snapshot: Arc<Snapshot>,
    /// Findings about the objects.
    pub diagnostics: Vec<Diagnostic>,
    /// Objects left to other controllers.
    pub ignored: Vec<ObjectRef>,
    /// Whether a new snapshot was published (false when it equalled the
    /// live one).
    pub published: bool,
    /// Time spent translating.
    pub translate_time: Duration,
}

/// Turns resource sets into published snapshots, skipping snapshots that
/// equal the live one and logging each diagnostic once when it appears.
pub struct Pipeline {
    options: Options,
    publish: Publish,
    live: Option<Arc<Snapshot>>,
    reported: BTreeSet<Diagnostic>,
    telemetry: Arc<Telemetry>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("options", &self.options)
            .field("published", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline translating with `options` and publishing through
    /// `publish`.
    pub fn new(options: Options, publish: Publish) -> Self {
        Self {
            options,
            publish,
            live: None,
            reported: BTreeSet::new(),
            telemetry: Arc::new(Telemetry::quiet()),
        }
    }

    /// The same pipeline, reporting into `telemetry` (build times,
    /// diagnostics, and through the sources, watch events).
    #[must_use]
    pub fn with_telemetry(mut self, telemetry: Arc<Telemetry>) -> Self {
        self.telemetry = telemetry;
        self
    }

    /// Where the pipeline and its sources report.
    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// How long until the live configuration must be translated again
    /// although nothing changed: just after its first certificate expires
    /// (so its hosts fall back to the default certificate, with a
    /// diagnostic), and at least daily.
    pub fn recheck_in(&self) -> Duration {
        const DAY: Duration = Duration::from_secs(86_400);
        let Some(expiry) = self.live.as_ref().and_then(|s| s.tls.earliest_expiry()) else {
            return DAY;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        // One second past the last valid one.
        let wait = u64::try_from(expiry.saturating_sub(now).saturating_add(1)).unwrap_or(0);
        Duration::from_secs(wait).clamp(Duration::from_secs(1), DAY)
    }

    /// Translates `resources` off the async worker threads and publishes
    /// the snapshot if it differs from the live one.
    pub async fn apply(&mut self, resources: ResourceSet) -> Applied {
        let options = self.options.clone();
        let started = Instant::now();
        let output = tokio::task::spawn_blocking(move || translate(&resources, &options)).await;
        let output = match output {
            Ok(output) => output,
            // A panic in the translator is a bug; keep serving what is
            // live and say so loudly rather than take the process down.
            Err(e) => {
                tracing::error!(error = %e, "translation failed; keeping the live configuration");
                return Applied {
                    snapshot: self.live.clone().unwrap_or_default(),
                    diagnostics: Vec::new(),
                    ignored: Vec::new(),
                    published: false,
                    translate_time: started.elapsed(),
                };
            }
        };
        let translate_time = started.elapsed();
        self.telemetry
            .metrics
            .snapshot_build_duration
            .observe(translate_time);
        self.report(&output.diagnostics);
        let Output {
            snapshot,
            diagnostics,
            ignored,
        } = output;

        if let Some(live) = self.live.as_ref().filter(|live| ***live == snapshot) {
            return Applied {
                snapshot: live.clone(),
                diagnostics,
                ignored,
                published: false,
                translate_time,
            };
        }
        let snapshot = Arc::new(snapshot);
        let publishing = Instant::now();
        (self.publish)(snapshot.clone());
        tracing::info!(
            routes = snapshot.routes.len(),
            entries = snapshot.entry_count(),
            clusters = snapshot.clusters.len(),
            translate_ms = translate_time.as_secs_f64() * 1e3,
            publish_ms = publishing.elapsed().as_secs_f64() * 1e3,
            "configuration published"
        );
        self.live = Some(snapshot.clone());
        Applied {
            snapshot,
            diagnostics,
            ignored,
            published: true,
            translate_time,
        }
    }

    /// Logs diagnostics that were not there last time, and notes the ones
    /// that went away.
    fn report(&mut self, diagnostics: &[Diagnostic]) {
        let current: BTreeSet<Diagnostic> = diagnostics.iter().cloned().collect();
        for d in current.difference(&self.reported) {
            match d.severity {
                Severity::Error => tracing::warn!(
                    object = %d.object, field = %d.field, reason = d.reason.as_str(),
                    "rejected: {}", d.message
                ),
                Severity::Warning => tracing::warn!(
                    object = %d.object, field = %d.field, reason = d.reason.as_str(),
                    "{}", d.message
                ),
            }
        }
        let gauge = &self.telemetry.metrics.diagnostics;
        gauge.clear();
        for d in &current {
            gauge
                .get_or_create(&DiagnosticLabels {
                    kind: d.object.kind.to_string(),
                    severity: match d.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    },
                })
                .inc();
        }
        let resolved = self.reported.difference(&current).count();
        if resolved > 0 {
            tracing::info!(resolved, "earlier configuration problems are resolved");
        }
        self.reported = current;
    }
}
