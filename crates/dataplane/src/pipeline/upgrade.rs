//! The forward phase for upgrades: a single attempt over HTTP/1.1; when the
//! upstream switches protocols, the two connections are relayed on a
//! task of their own (which holds no configuration, so it outlives any
//! swap).

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use snapshot::{Forward, LoadBalance};

use super::backends::{cluster_of, pick_backend};
use super::proxy::Proxy;
use super::rewrite::Head;
use crate::body::UpstreamBody;
use crate::lb::InFlight;
use crate::proxy_body::ProxyBody;
use crate::respond::ProxyError;
use crate::state::Active;
use crate::upstream::{Transport, UpstreamError};

impl Proxy {
    /// Forwards an upgrade request and relays the connections once the
    /// upstream agrees.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn upgrade(
        &self,
        active: &Active,
        forward: &Forward,
        head: &Head,
        body: UpstreamBody,
        downstream: OnUpgrade,
        timeout: Option<Duration>,
        idle: Option<Duration>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let target = pick_backend(forward, active, None)?;
        let (index, cluster) = cluster_of(active, target)?;
        let state = &active.clusters[index];
        let endpoint = state
            .pick(&LoadBalance::RoundRobin, None, None, None)
            .ok_or_else(|| ProxyError::NoEndpoints {
                cluster: cluster.name.to_string(),
            })?
            .clone();
        let in_flight = InFlight::new(endpoint.clone());
        // Upgrades are an HTTP/1.1 mechanism whatever the cluster speaks.
        let transport = Transport {
            protocol: snapshot::UpstreamProtocol::Http1,
            tls: cluster.tls.clone(),
        };
        let sent = self.upstreams.send(
            &transport,
            endpoint.addr,
            &endpoint.authority,
            head.request(body),
            Some(&head.forwarding),
        );
        let result = match timeout {
            Some(t) => tokio::time::timeout(t, sent)
                .await
                .map_err(|_| ProxyError::UpstreamTimeout)?,
            None => sent.await,
        };
        let mut response = result.map_err(|e| match e {
            UpstreamError::Connect(e) => ProxyError::UpstreamConnect(e),
            UpstreamError::Reset(e) => ProxyError::Upstream(e),
        })?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            let (parts, body) = response.into_parts();
            return Ok(Response::from_parts(
                parts,
                ProxyBody::upstream(body, Some(in_flight)),
            ));
        }
        let upstream = hyper::upgrade::on(&mut response);
        let idle = idle.unwrap_or(self.config.tunnel_idle_timeout);
        let addr = endpoint.addr;
        tokio::spawn(async move {
            let _in_flight = in_flight;
            match tokio::try_join!(downstream, upstream) {
                Ok((down, up)) => {
                    match crate::tunnel::relay(TokioIo::new(down), TokioIo::new(up), idle).await {
                        Ok((sent, received)) => {
                            tracing::debug!(endpoint = %addr, sent, received, "upgraded connection closed")
                        }
                        Err(e) => {
                            tracing::debug!(endpoint = %addr, error = %e, "upgraded connection ended")
                        }
                    }
                }
                Err(e) => tracing::debug!(endpoint = %addr, error = %e, "upgrade failed"),
            }
        });
        let (parts, _) = response.into_parts();
        Ok(Response::from_parts(parts, ProxyBody::full(Bytes::new())))
    }
}
