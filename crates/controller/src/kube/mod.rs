//! Kubernetes mode: reflectors for every kind Gatehouse reads, the debounced
//! translate-and-publish loop, and (on the leader only) status and events.
//!
//! Secrets are not all held in memory: two reflectors take only the ones
//! Gatehouse can use, TLS Secrets (field selector
//! `type=kubernetes.io/tls`) and Secrets labelled `gatehouse.dev/secret`
//! (for authentication data).

mod leader;
mod status;

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use api::{ApiRoute, RateLimitPolicy};
use futures_util::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ObjectReference, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass, IngressLoadBalancerIngress};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use translate::{Diagnostic, ObjectRef, Reason, ResourceSet, Severity};

pub use leader::LeaderConfig;

use crate::pipeline::Pipeline;
use crate::standalone::{Debounce, settle};

/// Where Ingresses say they can be reached.
#[derive(Clone, Debug, Default)]
pub enum PublishTarget {
    /// Leave `status.loadBalancer` alone.
    #[default]
    None,
    /// Copy the load balancer addresses of this Service (namespace, name).
    Service(String, String),
    /// These IP addresses or hostnames.
    Addresses(Vec<String>),
}

/// Settings of Kubernetes mode.
#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Coalescing of bursts of changes.
    pub debounce: Debounce,
    /// What Ingress status reports.
    pub publish: PublishTarget,
    /// Leader election for status writing.
    pub leader: LeaderConfig,
    /// Automatic certificates, ordered by the leader; with the live
    /// snapshot getter the manager reads its work from.
    pub acme: Option<(crate::acme::AcmeConfig, crate::acme::CurrentSnapshot)>,
}

/// Retry delays for a failing watch: 250 ms doubling to at most 5 s, with
/// jitter so replicas do not reconnect in lockstep; back to 250 ms after
/// any success. Short enough that an API server that comes back is seen
/// within seconds, long enough not to hammer one that is struggling.
pub(super) struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const MIN: Duration = Duration::from_millis(250);
    const MAX: Duration = Duration::from_secs(5);
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: Self::MIN }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (base * 2).min(Self::MAX);
        // 75% to 125% of the base delay.
        Some(base.mul_f64(0.75 + fastrand::f64() * 0.5))
    }
}

impl kube::runtime::utils::Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::MIN;
    }
}

/// A store per watched namespace (or one for all).
struct Stores<K: kube::Resource<DynamicType = ()> + Clone + 'static>(Vec<Store<K>>);

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Stores<K> {
    fn state(&self) -> Vec<Arc<K>> {
        self.0.iter().flat_map(Store::state).collect()
    }

    async fn ready(&self) {
        for s in &self.0 {
            let _ = s.wait_until_ready().await;
        }
    }
}

/// Where reflectors report: the change signal, and the watch metrics.
#[derive(Clone)]
struct Changes {
    tx: mpsc::UnboundedSender<()>,
    telemetry: Arc<telemetry::Telemetry>,
}

fn reflect<K>(api: Api<K>, config: watcher::Config, changes: Changes) -> Store<K>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).into_owned();
    let stream = reflector::reflector(
        writer,
        watcher(api, config)
            .backoff(WatchBackoff::default())
            .modify(trim),
    );
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        let mut failing = false;
        let labels = telemetry::metrics::ResourceLabels {
            resource: kind.clone(),
        };
        let metrics = &changes.telemetry.metrics;
        let events = metrics.watch_events.get_or_create_owned(&labels);
        let errors = metrics.watch_errors.get_or_create_owned(&labels);
        let restarts = metrics.watch_restarts.get_or_create_owned(&labels);
        let mut listed = false;
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    events.inc();
                    // A list after the first one is a restarted watch
                    // (expired resource version, lost connection).
                    if matches!(event, watcher::Event::Init) {
                        if listed {
                            restarts.inc();
                        }
                        listed = true;
                    }
                    if failing {
                        tracing::info!(kind, "watch recovered");
                        failing = false;
                    }
                    let _ = changes.tx.send(());
                }
                Err(e) => {
                    errors.inc();
                    // The watcher backs off and retries; say so once per
                    // outage, not once per attempt.
                    if !failing {
                        tracing::warn!(kind, error = %e, "watch failed; serving the last configuration while retrying");
                        failing = true;
                    } else {
                        tracing::debug!(kind, error = %e, "watch still failing");
                    }
                }
            }
        }
    });
    reader
}

/// Drops what Gatehouse never reads before an object is stored: the
/// field-manager bookkeeping and kubectl's copy of the last applied
/// object, which together are often larger than the object itself.
fn trim<K: kube::Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(a) = meta.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

fn namespaced<K>(
    client: &Client,
    namespaces: &[String],
    config: &watcher::Config,
    changes: &Changes,
) -> Stores<K>
where
    K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    if namespaces.is_empty() {
        return Stores(vec![reflect(
            Api::<K>::all(client.clone()),
            config.clone(),
            changes.clone(),
        )]);
    }
    Stores(
        namespaces
            .iter()
            .map(|ns| {
                reflect(
                    Api::<K>::namespaced(client.clone(), ns),
                    config.clone(),
                    changes.clone(),
                )
            })
            .collect(),
    )
}

/// Everything watched.
struct Sources {
    classes: Stores<IngressClass>,
    ingresses: Stores<Ingress>,
    services: Stores<Service>,
    slices: Stores<EndpointSlice>,
    tls_secrets: Stores<Secret>,
    labelled_secrets: Stores<Secret>,
    routes: Stores<ApiRoute>,
    policies: Stores<RateLimitPolicy>,
    publish_service: Option<Store<Service>>,
}

impl Sources {
    fn start(client: &Client, options: &KubeOptions, changes: &Changes) -> Self {
        let all = watcher::Config::default();
        let ns = &options.namespaces;
        let publish_service = match &options.publish {
            PublishTarget::Service(namespace, name) => Some(reflect(
                Api::<Service>::namespaced(client.clone(), namespace),
                watcher::Config::default().fields(&format!("metadata.name={name}")),
                changes.clone(),
            )),
            _ => None,
        };
        Self {
            classes: Stores(vec![reflect(
                Api::<IngressClass>::all(client.clone()),
                all.clone(),
                changes.clone(),
            )]),
            ingresses: namespaced(client, ns, &all, changes),
            services: namespaced(client, ns, &all, changes),
            slices: namespaced(client, ns, &all, changes),
            tls_secrets: namespaced(
                client,
                ns,
                &all.clone().fields("type=kubernetes.io/tls"),
                changes,
            ),
            labelled_secrets: namespaced(
                client,
                ns,
                &all.clone().labels("gatehouse.dev/secret"),
                changes,
            ),
            routes: namespaced(client, ns, &all, changes),
            policies: namespaced(client, ns, &all, changes),
            publish_service,
        }
    }

    async fn ready(&self) {
        self.classes.ready().await;
        self.ingresses.ready().await;
        self.services.ready().await;
        self.slices.ready().await;
        self.tls_secrets.ready().await;
        self.labelled_secrets.ready().await;
        self.routes.ready().await;
        self.policies.ready().await;
        if let Some(s) = &self.publish_service {
            let _ = s.wait_until_ready().await;
        }
    }

    fn resources(&self) -> ResourceSet {
        let mut secrets = self.tls_secrets.state();
        for s in self.labelled_secrets.state() {
            if !secrets.iter().any(|x| x.metadata.uid == s.metadata.uid) {
                secrets.push(s);
            }
        }
        ResourceSet {
            ingress_classes: self.classes.state(),
            ingresses: self.ingresses.state(),
            services: self.services.state(),
            endpoint_slices: self.slices.state(),
            secrets,
            api_routes: self.routes.state(),
            rate_limit_policies: self.policies.state(),
        }
    }

    fn publish_addresses(&self, target: &PublishTarget) -> Option<Vec<IngressLoadBalancerIngress>> {
        match target {
            PublishTarget::None => None,
            PublishTarget::Addresses(list) => Some(
                list.iter()
                    .map(|a| match a.parse::<std::net::IpAddr>() {
                        Ok(_) => IngressLoadBalancerIngress {
                            ip: Some(a.clone()),
                            ..IngressLoadBalancerIngress::default()
                        },
                        Err(_) => IngressLoadBalancerIngress {
                            hostname: Some(a.clone()),
                            ..IngressLoadBalancerIngress::default()
                        },
                    })
                    .collect(),
            ),
            PublishTarget::Service(..) => {
                let svc = self.publish_service.as_ref()?.state().into_iter().next()?;
                Some(service_addresses(&svc))
            }
        }
    }
}

/// The addresses a published Service is reached at: its load balancer's,
/// else its external IPs (bare-metal and kind setups), else its cluster IP.
fn service_addresses(svc: &Service) -> Vec<IngressLoadBalancerIngress> {
    let lb: Vec<IngressLoadBalancerIngress> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .into_iter()
        .flatten()
        .map(|i| IngressLoadBalancerIngress {
            hostname: i.hostname.clone(),
            ip: i.ip.clone(),
            ..IngressLoadBalancerIngress::default()
        })
        .collect();
    if !lb.is_empty() {
        return lb;
    }
    let spec = svc.spec.as_ref();
    let ips = spec
        .and_then(|s| s.external_ips.clone())
        .filter(|v| !v.is_empty())
        .or_else(|| {
            spec.and_then(|s| s.cluster_ip.clone())
                .filter(|ip| !ip.is_empty() && ip != "None")
                .map(|ip| vec![ip])
        })
        .unwrap_or_default();
    ips.into_iter()
        .map(|ip| IngressLoadBalancerIngress {
            ip: Some(ip),
            ..IngressLoadBalancerIngress::default()
        })
        .collect()
}

/// What the status writer works from.
struct Published {
    snapshot: Arc<snapshot::Snapshot>,
    diagnostics: Vec<Diagnostic>,
    ignored: Vec<ObjectRef>,
    resources: ResourceSet,
    addresses: Option<Vec<IngressLoadBalancerIngress>>,
}

/// Watches the cluster and publishes a snapshot on every change until
/// `shutdown` completes. The first snapshot is published only once every
/// reflector has its initial list, so the data plane is not ready before.
pub async fn run(
    client: Client,
    options: KubeOptions,
    mut pipeline: Pipeline,
    shutdown: impl Future<Output = ()>,
) {
    let (changes, mut changed) = mpsc::unbounded_channel();
    let changes = Changes {
        tx: changes,
        telemetry: pipeline.telemetry().clone(),
    };
    let sources = Sources::start(&client, &options, &changes);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (leading_tx, leading_rx) = watch::channel(false);
    let (published_tx, published_rx) = watch::channel::<Option<Arc<Published>>>(None);
    tokio::spawn(leader::run(
        Api::<Lease>::namespaced(client.clone(), &options.leader.namespace),
        options.leader.clone(),
        leading_tx,
        stop_rx.clone(),
    ));
    if let Some((config, current)) = options.acme.clone() {
        let mut stop = stop_rx.clone();
        tokio::spawn(crate::acme::run(
            config,
            crate::acme::Store::Kube(client.clone()),
            current,
            leading_rx.clone(),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        ));
    }
    tokio::spawn(write_status(
        client.clone(),
        options.leader.identity.clone(),
        leading_rx,
        published_rx,
        stop_rx,
    ));

    tokio::pin!(shutdown);
    tracing::info!(namespaces = ?options.namespaces, "waiting for the initial lists from the API server");
    tokio::select! {
        () = &mut shutdown => {
            let _ = stop_tx.send(true);
            return;
        }
        () = sources.ready() => {}
    }
    tracing::info!("initial lists complete");
    loop {
        let resources = sources.resources();
        let applied = pipeline.apply(resources.clone()).await;
        let _ = published_tx.send(Some(Arc::new(Published {
            snapshot: applied.snapshot,
            diagnostics: applied.diagnostics,
            ignored: applied.ignored,
            resources,
            addresses: sources.publish_addresses(&options.publish),
        })));
        tokio::select! {
            () = &mut shutdown => break,
            event = changed.recv() => {
                if event.is_none() {
                    break;
                }
                settle(&mut changed, options.debounce).await;
            }
            () = tokio::time::sleep(pipeline.recheck_in()) => {
                tracing::info!("re-checking certificate validity (a certificate expired, or a day passed)");
            }
        }
    }
    let _ = stop_tx.send(true);
    // Give the election a moment to release the lease.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

/// Writes status and events while this replica leads: on every new
/// translation, on becoming leader, and every 30 s to repair drift.
async fn write_status(
    client: Client,
    identity: String,
    mut leading: watch::Receiver<bool>,
    mut published: watch::Receiver<Option<Arc<Published>>>,
    mut stop: watch::Receiver<bool>,
) {
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "gatehouse".into(),
            instance: Some(identity),
        },
    );
    let mut events = EventLimiter::default();
    loop {
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            _ = leading.changed() => {}
            _ = published.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
        if !*leading.borrow() {
            continue;
        }
        let Some(current) = published.borrow().clone() else {
            continue;
        };
        reconcile(&client, &current).await;
        emit_events(&recorder, &mut events, &current).await;
    }
}

async fn reconcile(client: &Client, p: &Published) {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let diags = status::by_object(&p.diagnostics);
    let ignored: Vec<&ObjectRef> = p.ignored.iter().collect();
    for route in &p.resources.api_routes {
        let object = obj_ref("ApiRoute", &route.metadata);
        if ignored.contains(&&object) {
            continue;
        }
        let existing = route
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let programmed = status::programmed(&p.snapshot, &object);
        let found = diags.get(&object).cloned().unwrap_or_default();
        let wanted = status::conditions(
            route.metadata.generation,
            &found,
            false,
            programmed,
            &existing,
            &now,
        );
        patch_conditions::<ApiRoute>(client, &route.metadata, &existing, wanted).await;
    }
    for policy in &p.resources.rate_limit_policies {
        let object = obj_ref("RateLimitPolicy", &policy.metadata);
        let existing = policy
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default();
        let found = diags.get(&object).cloned().unwrap_or_default();
        let wanted = status::conditions(
            policy.metadata.generation,
            &found,
            true,
            status::programmed(&p.snapshot, &object),
            &existing,
            &now,
        );
        patch_conditions::<RateLimitPolicy>(client, &policy.metadata, &existing, wanted).await;
    }
    if let Some(published) = &p.addresses {
        for ingress in &p.resources.ingresses {
            let object = obj_ref("Ingress", &ingress.metadata);
            if ignored.contains(&&object) {
                continue;
            }
            // An Ingress whose annotations keep it from being served gets
            // no address: `kubectl get ingress` shows it is not served.
            let refused = p.diagnostics.iter().any(|d| {
                d.object == object
                    && d.severity == Severity::Error
                    && d.field.starts_with("metadata.annotations")
            });
            let none = Vec::new();
            let addresses = if refused { &none } else { published };
            let current = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|l| l.ingress.clone())
                .unwrap_or_default();
            if current == *addresses {
                continue;
            }
            let (Some(ns), Some(name)) = (&ingress.metadata.namespace, &ingress.metadata.name)
            else {
                continue;
            };
            let patch = json!({"status": {"loadBalancer": {"ingress": addresses}}});
            if let Err(e) = Api::<Ingress>::namespaced(client.clone(), ns)
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                tracing::debug!(ingress = %object, error = %e, "could not write Ingress status");
            }
        }
    }
}

fn obj_ref(kind: &str, meta: &ObjectMeta) -> ObjectRef {
    ObjectRef::new(
        kind,
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default(),
    )
}

async fn patch_conditions<K>(
    client: &Client,
    meta: &ObjectMeta,
    existing: &[Condition],
    wanted: Vec<Condition>,
) where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    if status::same(existing, &wanted) {
        return;
    }
    let (Some(ns), Some(name)) = (&meta.namespace, &meta.name) else {
        return;
    };
    let patch = json!({"status": {"conditions": wanted}});
    match Api::<K>::namespaced(client.clone(), ns)
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => tracing::debug!(kind = %K::kind(&()), %ns, %name, "status written"),
        Err(e) => {
            tracing::debug!(kind = %K::kind(&()), %ns, %name, error = %e, "could not write status")
        }
    }
}

/// Keeps a broken object from flooding the API with events: each problem
/// is reported at most once per ten minutes, and at most twenty events go
/// out per minute in all.
#[derive(Default)]
struct EventLimiter {
    last: HashMap<(ObjectRef, String, &'static str), tokio::time::Instant>,
    window: Option<tokio::time::Instant>,
    sent_in_window: u32,
}

impl EventLimiter {
    fn allow(&mut self, d: &Diagnostic) -> bool {
        let now = tokio::time::Instant::now();
        let key = (d.object.clone(), d.field.clone(), d.reason.as_str());
        if self
            .last
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < Duration::from_secs(600))
        {
            return false;
        }
        if self
            .window
            .is_none_or(|w| now.duration_since(w) >= Duration::from_secs(60))
        {
            self.window = Some(now);
            self.sent_in_window = 0;
        }
        if self.sent_in_window >= 20 {
            return false;
        }
        self.sent_in_window += 1;
        // Forget problems older than the quiet period, so objects that
        // were fixed or deleted do not accumulate.
        if self.last.len() >= 4096 {
            self.last
                .retain(|_, t| now.duration_since(*t) < Duration::from_secs(600));
        }
        self.last.insert(key, now);
        true
    }
}

/// The Kubernetes reference of a translated object, for an event.
fn reference(resources: &ResourceSet, object: &ObjectRef) -> Option<ObjectReference> {
    let is = |meta: &ObjectMeta| {
        meta.name.as_deref() == Some(&*object.name)
            && meta.namespace.as_deref().unwrap_or_default() == &*object.namespace
    };
    let (api_version, meta) = match &*object.kind {
        "ApiRoute" => (
            api::API_VERSION,
            resources
                .api_routes
                .iter()
                .map(|r| &r.metadata)
                .find(|m| is(m))?,
        ),
        "RateLimitPolicy" => (
            api::API_VERSION,
            resources
                .rate_limit_policies
                .iter()
                .map(|r| &r.metadata)
                .find(|m| is(m))?,
        ),
        "Ingress" => (
            "networking.k8s.io/v1",
            resources
                .ingresses
                .iter()
                .map(|r| &r.metadata)
                .find(|m| is(m))?,
        ),
        _ => return None,
    };
    Some(ObjectReference {
        api_version: Some(api_version.to_owned()),
        kind: Some(object.kind.to_string()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        resource_version: meta.resource_version.clone(),
        field_path: None,
    })
}

async fn emit_events(recorder: &Recorder, limiter: &mut EventLimiter, p: &Published) {
    // Errors, and the warnings about annotations (unknown, unsupported):
    // an annotation that does nothing must not go unnoticed.
    for d in p.diagnostics.iter().filter(|d| {
        d.severity == Severity::Error
            || matches!(d.reason, Reason::InvalidAnnotation | Reason::Unsupported)
    }) {
        let Some(reference) = reference(&p.resources, &d.object) else {
            continue;
        };
        if !limiter.allow(d) {
            continue;
        }
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: d.reason.as_str().to_owned(),
            note: Some(
                format!("{}: {}", d.field, d.message)
                    .chars()
                    .take(1000)
                    .collect(),
            ),
            action: "Translate".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::debug!(object = %d.object, error = %e, "could not publish an event");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

    use k8s_openapi::api::core::v1::{
        LoadBalancerIngress, LoadBalancerStatus, ServiceSpec, ServiceStatus,
    };

    use super::*;

    fn ips(list: &[IngressLoadBalancerIngress]) -> Vec<String> {
        list.iter()
            .map(|i| i.ip.clone().or_else(|| i.hostname.clone()).unwrap())
            .collect()
    }

    #[test]
    fn published_service_prefers_load_balancer_then_external_then_cluster_ip() {
        let mut svc = Service {
            spec: Some(ServiceSpec {
                cluster_ip: Some("10.96.0.10".into()),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        };
        assert_eq!(ips(&service_addresses(&svc)), ["10.96.0.10"]);
        svc.spec.as_mut().unwrap().external_ips = Some(vec!["192.0.2.4".into()]);
        assert_eq!(ips(&service_addresses(&svc)), ["192.0.2.4"]);
        svc.status = Some(ServiceStatus {
            load_balancer: Some(LoadBalancerStatus {
                ingress: Some(vec![LoadBalancerIngress {
                    hostname: Some("lb.example.com".into()),
                    ..LoadBalancerIngress::default()
                }]),
            }),
            ..ServiceStatus::default()
        });
        assert_eq!(ips(&service_addresses(&svc)), ["lb.example.com"]);
        svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
        svc.spec.as_mut().unwrap().external_ips = None;
        svc.status = None;
        assert!(service_addresses(&svc).is_empty());
    }

    #[test]
    fn trim_drops_managed_fields_and_last_applied() {
        let mut svc = Service::default();
        svc.metadata.managed_fields = Some(vec![Default::default()]);
        svc.metadata.annotations = Some(
            [
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
                    "{}".to_owned(),
                ),
                ("keep".to_owned(), "me".to_owned()),
            ]
            .into(),
        );
        trim(&mut svc);
        assert!(svc.metadata.managed_fields.is_none());
        assert_eq!(
            svc.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["keep"]
        );
    }
}
