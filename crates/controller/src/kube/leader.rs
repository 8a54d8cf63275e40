//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Every replica serves traffic; only the leader writes status and events.
//! A replica holds the lease by renewing it (optimistic concurrency on the
//! Lease's resource version, so two replicas can never both win); a lease
//! not renewed within its duration may be taken over. A leader that cannot
//! renew steps down before its lease could expire elsewhere, and a replica
//! shutting down releases the lease so another takes over at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use tokio::sync::watch;

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
    Following,
    /// The API server could not be asked.
    Unknown,
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
    loop {
        let outcome = match try_acquire(&api, &config).await {
            Ok(true) => Outcome::Leading,
            Ok(false) => Outcome::Following,
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
            Outcome::Following => false,
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
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            () = tokio::time::sleep(config.renew_interval) => {}
        }
    }
    if *leading.borrow() {
        let _ = leading.send(false);
        if let Err(e) = release(&api, &config).await {
            tracing::debug!(error = %e, "could not release the lease");
        } else {
            tracing::info!(identity = %config.identity, "released the lease");
        }
    }
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Takes or renews the lease when it is free, expired or ours. Returns
/// whether this replica holds it afterwards.
async fn try_acquire(api: &Api<Lease>, config: &LeaderConfig) -> Result<bool, kube::Error> {
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
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let ours = holder == config.identity;
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(renewed), Some(secs)) => {
            renewed.0 + SignedDuration::from_secs(i64::from(secs)) < Timestamp::now()
        }
        _ => true,
    };
    if !ours && !holder.is_empty() && !expired {
        return Ok(false);
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
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
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
