//! Client address lists.

use std::net::IpAddr;

use snapshot::RoutePolicies;

use crate::respond::ProxyError;

/// Whether the client address may call the route (403 otherwise).
pub(crate) fn check_access(policies: &RoutePolicies, client: IpAddr) -> Result<(), ProxyError> {
    match &policies.access {
        Some(list) if !list.permits(client) => Err(ProxyError::Forbidden),
        _ => Ok(()),
    }
}
