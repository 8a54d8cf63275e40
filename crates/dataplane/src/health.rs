//! Active health checks: a task per cluster that has them, probing each
//! endpoint with a GET and marking it healthy or not after enough results
//! in a row. The task holds only a weak reference and ends when its
//! cluster leaves the configuration (or is rebuilt, which starts a new
//! task over the same endpoint state).
//!
//! Publishing a snapshot starts nothing: [`follow`] runs on a task of its
//! own, wakes when a new generation is published, and starts a checker
//! for every cluster state that has health checks and none yet.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use http::{Method, Request, header};
use snapshot::HealthCheckPolicy;

use crate::body::UpstreamBody;
use crate::lb::{ClusterState, EndpointState};
use crate::state::Gateway;
use crate::upstream::{Transport, Upstreams};

/// Follows `gateway`'s publishes and keeps a checker running for each
/// cluster with health checks, until the gateway is gone.
pub(crate) async fn follow(gateway: Weak<Gateway>, upstreams: Arc<Upstreams>) {
    let Some(mut published) = gateway.upgrade().map(|g| g.follow()) else {
        return;
    };
    // The state each running checker watches, by cluster name.
    let mut checking: HashMap<Arc<str>, Weak<ClusterState>> = HashMap::new();
    loop {
        published.borrow_and_update();
        let Some(gateway) = gateway.upgrade() else {
            return;
        };
        let active = gateway.load();
        drop(gateway);
        checking.retain(|_, state| state.strong_count() > 0);
        for (cluster, state) in active.snapshot.clusters.iter().zip(&active.clusters) {
            let Some(policy) = &cluster.health_check else {
                continue;
            };
            let current = checking
                .get(&cluster.name)
                .and_then(Weak::upgrade)
                .is_some_and(|s| Arc::ptr_eq(&s, state));
            if !current {
                spawn(
                    state,
                    policy.clone(),
                    Transport::of(cluster),
                    upstreams.clone(),
                );
                checking.insert(cluster.name.clone(), Arc::downgrade(state));
            }
        }
        drop(active);
        if published.changed().await.is_err() {
            return;
        }
    }
}

fn spawn(
    cluster: &Arc<ClusterState>,
    policy: HealthCheckPolicy,
    transport: Transport,
    upstreams: Arc<Upstreams>,
) {
    let weak: Weak<ClusterState> = Arc::downgrade(cluster);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(policy.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            let endpoints: Vec<Arc<EndpointState>> = cluster.endpoints.clone();
            let name = cluster.name.clone();
            drop(cluster);
            let probes = endpoints
                .iter()
                .map(|e| probe(e, &policy, &transport, &upstreams));
            let results = futures_util::future::join_all(probes).await;
            for (endpoint, ok) in endpoints.iter().zip(results) {
                update(&name, endpoint, ok, &policy);
            }
        }
    });
}

async fn probe(
    endpoint: &EndpointState,
    policy: &HealthCheckPolicy,
    transport: &Transport,
    upstreams: &Upstreams,
) -> bool {
    let req = Request::builder()
        .method(Method::GET)
        .uri(&*policy.path)
        .header(header::HOST, endpoint.authority.as_str())
        .header(header::USER_AGENT, "gatehouse-health-check")
        .body(UpstreamBody::Buffered(
            crate::body::Whole::new(Bytes::new()),
        ));
    let Ok(req) = req else { return false };
    let sent = upstreams.send(transport, endpoint.addr, &endpoint.authority, req, None);
    match tokio::time::timeout(policy.timeout, sent).await {
        Ok(Ok(resp)) => {
            let ok = resp.status().is_success() || resp.status().is_redirection();
            // Read the body so the connection can be reused.
            let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
            ok
        }
        _ => false,
    }
}

fn update(cluster: &str, endpoint: &EndpointState, ok: bool, policy: &HealthCheckPolicy) {
    if ok {
        endpoint.check_failures.store(0, Ordering::Relaxed);
        let n = endpoint.check_successes.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= policy.healthy_threshold && !endpoint.healthy.swap(true, Ordering::Relaxed) {
            tracing::info!(cluster, endpoint = %endpoint.addr, "endpoint passes its health checks again");
        }
    } else {
        endpoint.check_successes.store(0, Ordering::Relaxed);
        let n = endpoint.check_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= policy.unhealthy_threshold && endpoint.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(cluster, endpoint = %endpoint.addr, failures = n, "endpoint fails its health checks");
        }
    }
}
