//! Which backend of a rule takes an attempt, and the cluster it names.

use snapshot::{BackendTarget, Cluster, Forward};

use crate::respond::ProxyError;
use crate::state::Active;

/// A backend by weight; with an affinity cookie, the backend whose cluster
/// holds the client's endpoint while that endpoint is available and the
/// backend keeps a share (so a client stays on one side of a split, and
/// moves only when its side goes away or is weighted out).
pub(super) fn pick_backend<'a>(
    forward: &'a Forward,
    active: &Active,
    pinned: Option<u64>,
) -> Result<&'a BackendTarget, ProxyError> {
    if let Some(id) = pinned
        && forward.backends.len() > 1
        && let Some(b) = forward.backends.iter().find(|b| {
            b.weight > 0
                && matches!(&b.target, BackendTarget::Cluster { index, .. }
                    if active.clusters[index.0].has_available(id))
        })
    {
        return Ok(&b.target);
    }
    let backend = match forward.backends.len() {
        0 => None,
        1 => forward.backends.first(),
        _ => forward.pick(fastrand::u64(..forward.total_weight())),
    };
    backend.map(|b| &b.target).ok_or(ProxyError::NoBackends)
}

/// The cluster a target names, and its index.
pub(super) fn cluster_of<'a>(
    active: &'a Active,
    target: &BackendTarget,
) -> Result<(usize, &'a Cluster), ProxyError> {
    match target {
        BackendTarget::Cluster { index, .. } => Ok((index.0, active.snapshot.cluster(*index))),
        BackendTarget::Unresolved { status, reason } => Err(ProxyError::Unresolved {
            status: *status,
            reason: reason.to_string(),
        }),
    }
}
