//! Request mirrors: sampled copies of the request sent to other backends
//! on tasks of their own. Mirrors never delay the main request, and a
//! mirror that falls behind is cut off.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use snapshot::{LoadBalance, Route};

use super::backends::cluster_of;
use super::proxy::Proxy;
use super::rewrite::Head;
use crate::body::{TeeBody, UpstreamBody, Whole};
use crate::lb::EndpointState;
use crate::state::Active;
use crate::upstream::Transport;

impl Proxy {
    /// Starts the route's mirrors, and returns the body for the main
    /// request (teed when mirrors need a streamed copy).
    #[inline]
    pub(super) fn start_mirrors(
        &self,
        active: &Active,
        route: &Route,
        head: &Head,
        body: UpstreamBody,
        buffered: Option<&Bytes>,
    ) -> UpstreamBody {
        if route.filters.mirrors.is_empty() {
            return body;
        }
        let targets: Vec<(Arc<EndpointState>, Transport)> = route
            .filters
            .mirrors
            .iter()
            .filter(|m| m.percent >= 100 || fastrand::u8(..100) < m.percent)
            .filter_map(|m| {
                let (index, cluster) = cluster_of(active, &m.target).ok()?;
                let endpoint =
                    active.clusters[index].pick(&LoadBalance::RoundRobin, None, None, None)?;
                Some((endpoint.clone(), Transport::of(cluster)))
            })
            .collect();
        if targets.is_empty() {
            return body;
        }
        let (main, mut copies): (UpstreamBody, Vec<UpstreamBody>) = match (body, buffered) {
            (body @ UpstreamBody::Buffered(_), Some(bytes)) => (
                body,
                targets
                    .iter()
                    .map(|_| UpstreamBody::Buffered(Whole::new(bytes.clone())))
                    .collect(),
            ),
            (UpstreamBody::Streamed(incoming), _) => {
                let (tee, mirrors) = TeeBody::new(incoming, targets.len());
                (
                    UpstreamBody::Tee(tee),
                    mirrors.into_iter().map(UpstreamBody::Mirror).collect(),
                )
            }
            // Transformed bodies (limits, decoding) are not mirrored.
            (other, _) => return other,
        };
        let timeout = self
            .timeout_for(route)
            .unwrap_or(self.config.default_timeout);
        for (endpoint, protocol) in targets.into_iter().rev() {
            let Some(copy) = copies.pop() else { break };
            let upstreams = self.upstreams.clone();
            let req = head.request(copy);
            let forwarding = head.forwarding.clone();
            tokio::spawn(async move {
                let sent = upstreams.send(
                    &protocol,
                    endpoint.addr,
                    &endpoint.authority,
                    req,
                    Some(&forwarding),
                );
                match tokio::time::timeout(timeout, sent).await {
                    Ok(Ok(resp)) => {
                        // Read the answer so the connection can be reused.
                        let _ = resp.into_body().collect().await;
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "mirror request failed"),
                    Err(_) => tracing::debug!("mirror request timed out"),
                }
            });
        }
        main
    }
}
