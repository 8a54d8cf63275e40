//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Every replica serves traffic; only the leader writes status and events.
//! A replica holds the lease by renewing it (optimistic concurrency on the
//! Lease's resource version, so two replicas can never both win); a lease
//! not renewed within its duration may be taken over. A leader that cannot
//! renew steps down before its lease could expire elsewhere, and a replica
//! shutting down releases the lease so another takes over at once.
//!
//! Expiry is judged by this replica's own clock: a lease counts as expired
//! when its record (holder and version) has not changed for the lease
//! duration since this replica first saw it. Comparing the holder's
//! `renewTime` with the local clock instead would let clock skew between
//! nodes produce two leaders. Followers watch the Lease, so they see each
//! renewal as it happens and a dead leader is replaced within one lease
//! duration of its last renewal, not a polling interval later.

use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::{mpsc, watch};

/// Settings of the election.
#[derive(Clone, Debug)]
pub struct LeaderConfig {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This replica's identity (pod name).
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How often the holder renews, and others retry.
    pub renew_interval: Duration,
}

enum Outcome {
    Leading,
    /// Another replica holds the lease; it expires at this instant unless
    /// renewed.
    Following(tokio::time::Instant),
    /// The API server could not be asked.
    Unknown,
}

/// The last lease record seen and when this replica first saw it.
#[derive(Default)]
struct Observed {
    record: Option<(String, String)>,
    since: Option<tokio::time::Instant>,
}

impl Observed {
    /// Notes `record` (holder and resource version) and returns when it
    /// was first seen.
    fn see(&mut self, record: (String, String)) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        if self.record.as_ref() != Some(&record) {
            self.record = Some(record);
            self.since = Some(now);
        }
        self.since.unwrap_or(now)
    }
}

/// Runs the election until `shutdown`, publishing whether this replica
/// leads on `leading`.
pub(crate) async fn run(
    api: Api<Lease>,
    config: LeaderConfig,
    leading: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_renewal: Option<tokio::time::Instant> = None;
    let mut observed = Observed::default();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let watching = tokio::spawn(watch_lease(api.clone(), config.name.clone(), seen_tx));
    'election: loop {
        let outcome = match try_acquire(&api, &config, &mut observed).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::debug!(error = %e, "lease check failed");
                Outcome::Unknown
            }
        };
        let now = tokio::time::Instant::now();
        let lead = match outcome {
            Outcome::Leading => {
                last_renewal = Some(now);
                true
            }
            Outcome::Following(_) => false,
            // Keep leading only while the lease we last renewed is surely
            // still ours: step down with a margin before it could expire.
            Outcome::Unknown => last_renewal
                .is_some_and(|t| now.duration_since(t) < config.lease_duration.mul_f32(0.75)),
        };
        if !lead {
            last_renewal = None;
        }
        if *leading.borrow() != lead {
            if lead {
                tracing::info!(identity = %config.identity, lease = %config.name, "became the leader: writing status");
            } else {
                tracing::info!(identity = %config.identity, lease = %config.name, "not the leader");
            }
            let _ = leading.send(lead);
        }
        // A follower looks again when the holder's lease runs out, if
        // that comes before the next regular check.
        let regular = now + config.renew_interval;
        let mut next = match outcome {
            Outcome::Following(expires) => regular.min(expires.max(now) + EXPIRY_MARGIN),
            Outcome::Leading | Outcome::Unknown => regular,
        };
        loop {
            tokio::select! {
                _ = shutdown.wait_for(|s| *s) => break 'election,
                () = tokio::time::sleep_until(next) => break,
                Some(record) = seen.recv() => {
                    let released = record.0.is_empty();
                    let since = observed.see(record);
                    if !lead {
                        // A released lease is taken at once; a renewed one
                        // pushes the expiry check out.
                        next = if released { tokio::time::Instant::now() } else { regular.min(since + config.lease_duration + EXPIRY_MARGIN) };
                    }
                }
            }
        }
    }
    watching.abort();
    if *leading.borrow() {
        let _ = leading.send(false);
        if let Err(e) = release(&api, &config).await {
            tracing::debug!(error = %e, "could not release the lease");
        } else {
            tracing::info!(identity = %config.identity, "released the lease");
        }
    }
}

/// How long after a lease's expiry a follower checks it.
const EXPIRY_MARGIN: Duration = Duration::from_millis(10);

/// Sends the (holder, version) record of every change to the Lease.
async fn watch_lease(api: Api<Lease>, name: String, seen: mpsc::UnboundedSender<(String, String)>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let stream = watcher(api, config)
        .backoff(super::WatchBackoff::default())
        .applied_objects();
    let mut stream = std::pin::pin!(stream);
    while let Some(event) = stream.next().await {
        if let Ok(lease) = event
            && seen.send(record(&lease)).is_err()
        {
            return;
        }
    }
}

fn record(lease: &Lease) -> (String, String) {
    (
        lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default(),
        lease.metadata.resource_version.clone().unwrap_or_default(),
    )
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Takes or renews the lease when it is free, expired or ours.
async fn try_acquire(
    api: &Api<Lease>,
    config: &LeaderConfig,
    observed: &mut Observed,
) -> Result<Outcome, kube::Error> {
    let duration_secs = i32::try_from(config.lease_duration.as_secs()).unwrap_or(i32::MAX);
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_secs),
                acquire_time: Some(now()),
                renew_time: Some(now()),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(Outcome::Leading),
            // Another replica created it first; look again shortly.
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Ok(Outcome::Following(tokio::time::Instant::now()))
            }
            Err(e) => Err(e),
        };
    };
    let seen_since = observed.see(record(&lease));
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == config.identity;
    let valid_for = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .map_or(config.lease_duration, Duration::from_secs);
    let expires = seen_since + valid_for;
    let expired = spec.renew_time.is_none() || tokio::time::Instant::now() >= expires;
    if !ours && !holder.is_empty() && !expired {
        return Ok(Outcome::Following(expires));
    }
    if !ours {
        spec.holder_identity = Some(config.identity.clone());
        spec.acquire_time = Some(now());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.renew_time = Some(now());
    spec.lease_duration_seconds = Some(duration_secs);
    // The replace carries the resource version we read: if another replica
    // wrote in between, the API server refuses it and nobody is confused.
    match api
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => Ok(Outcome::Leading),
        // Someone else wrote first; their write restarts the clock.
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(Outcome::Following(
            tokio::time::Instant::now() + config.renew_interval,
        )),
        Err(e) => Err(e),
    }
}

/// Gives the lease up so another replica can take it at once.
async fn release(api: &Api<Lease>, config: &LeaderConfig) -> Result<(), kube::Error> {
    let Some(mut lease) = api.get_opt(&config.name).await? else {
        return Ok(());
    };
    let Some(spec) = lease.spec.as_mut() else {
        return Ok(());
    };
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return Ok(());
    }
    spec.holder_identity = None;
    spec.renew_time = None;
    api.replace(&config.name, &PostParams::default(), &lease)
        .await
        .map(|_| ())
}
