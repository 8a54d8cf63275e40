//! The translator: a pure function from the objects Gatehouse watches to
//! the routing snapshot the data plane serves.
//!
//! In the data flow of `DESIGN.md` this is the middle box:
//! `ResourceSet -> (Snapshot, Diagnostics)`. All Ingress and ApiRoute
//! semantics live here and nowhere else. Translation never fails as a
//! whole: a bad object, rule or reference becomes a [`Diagnostic`] naming
//! the object and field, and everything else is served.

mod annotations;
mod apiroute;
mod backends;
mod builder;
mod class;
mod diagnostics;
mod filters;
mod ingress;
pub mod manifest;
pub mod migrate;
pub mod nginx;
mod policy;
mod ratelimit;
mod tls;
mod traffic;
mod values;

use std::sync::Arc;

use api::{ApiRoute, RateLimitPolicy};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::Serialize;
use snapshot::Snapshot;

pub use diagnostics::{Diagnostic, ObjectRef, Reason, Severity};
pub use manifest::Object;
pub use values::parse_duration;

/// The controller name Gatehouse claims IngressClasses with by default.
pub const DEFAULT_CONTROLLER_NAME: &str = "gatehouse.dev/ingress-controller";
/// The IngressClass name Gatehouse answers to by default.
pub const DEFAULT_INGRESS_CLASS: &str = "gatehouse";

/// Everything the translator reads: the objects of one moment.
#[derive(Clone, Debug, Default)]
pub struct ResourceSet {
    /// IngressClasses (cluster-scoped).
    pub ingress_classes: Vec<Arc<IngressClass>>,
    /// Ingresses.
    pub ingresses: Vec<Arc<Ingress>>,
    /// Services.
    pub services: Vec<Arc<Service>>,
    /// EndpointSlices.
    pub endpoint_slices: Vec<Arc<EndpointSlice>>,
    /// Secrets the configuration refers to.
    pub secrets: Vec<Arc<Secret>>,
    /// ApiRoutes.
    pub api_routes: Vec<Arc<ApiRoute>>,
    /// RateLimitPolicies.
    pub rate_limit_policies: Vec<Arc<RateLimitPolicy>>,
}

impl ResourceSet {
    /// Adds one object to the set.
    pub fn insert(&mut self, object: Object) {
        match object {
            Object::IngressClass(o) => self.ingress_classes.push(o),
            Object::Ingress(o) => self.ingresses.push(o),
            Object::Service(o) => self.services.push(o),
            Object::EndpointSlice(o) => self.endpoint_slices.push(o),
            Object::Secret(o) => self.secrets.push(o),
            Object::ApiRoute(o) => self.api_routes.push(o),
            Object::RateLimitPolicy(o) => self.rate_limit_policies.push(o),
        }
    }

    /// Number of objects in the set.
    pub fn len(&self) -> usize {
        self.ingress_classes.len()
            + self.ingresses.len()
            + self.services.len()
            + self.endpoint_slices.len()
            + self.secrets.len()
            + self.api_routes.len()
            + self.rate_limit_policies.len()
    }

    /// Whether the set holds no object.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl FromIterator<Object> for ResourceSet {
    fn from_iter<I: IntoIterator<Item = Object>>(iter: I) -> Self {
        let mut set = Self::default();
        iter.into_iter().for_each(|o| set.insert(o));
        set
    }
}

/// A Service port named by namespace, name and port number.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePortRef {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// `spec.ports[].port` of the Service.
    pub port: i32,
}

/// Settings that change how objects are read.
#[derive(Clone, Debug)]
pub struct Options {
    /// The `spec.controller` value of IngressClasses Gatehouse serves.
    pub controller_name: String,
    /// The IngressClass name Gatehouse answers to even when no
    /// IngressClass object of that name exists.
    pub ingress_class: String,
    /// Serve Ingresses that name no class at all, whether or not our
    /// IngressClass is the cluster default.
    pub watch_ingress_without_class: bool,
    /// Where requests go that match no rule of any route.
    pub default_backend: Option<ServicePortRef>,
    /// The time certificates are checked against; `None`: now.
    pub now: Option<std::time::SystemTime>,
    /// The ACME manager's state Secret (`namespace`, `name`): HTTP-01
    /// answers and errors to report. `None`: ACME is off.
    pub acme_state: Option<(String, String)>,
    /// Honour the commonly used `nginx.ingress.kubernetes.io/*`
    /// annotations of Ingresses (see the `nginx` module).
    pub nginx_compat: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            controller_name: DEFAULT_CONTROLLER_NAME.to_owned(),
            ingress_class: DEFAULT_INGRESS_CLASS.to_owned(),
            watch_ingress_without_class: false,
            default_backend: None,
            now: None,
            acme_state: None,
            nginx_compat: false,
        }
    }
}

/// What the translator produces.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Output {
    /// The routing snapshot to publish.
    pub snapshot: Snapshot,
    /// Findings about the objects, sorted by object, field and severity.
    pub diagnostics: Vec<Diagnostic>,
    /// Ingresses and ApiRoutes left alone because their class belongs to
    /// another controller (or they have none and Gatehouse's class is not
    /// the default), sorted.
    pub ignored: Vec<ObjectRef>,
}

impl Output {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Translates a resource set into a snapshot and diagnostics.
pub fn translate(resources: &ResourceSet, options: &Options) -> Output {
    let mut diags = diagnostics::Diagnostics::default();
    let mut builder = builder::Builder::default();
    builder.tls = tls::Collector::at(options.now.unwrap_or_else(std::time::SystemTime::now));
    let challenges = builder
        .tls
        .read_acme_state(resources, options.acme_state.as_ref());
    let backends = backends::Backends::index(resources);
    let classes = class::Classes::new(&resources.ingress_classes, options);

    let mut ignored = Vec::new();
    ingress::translate_all(
        resources,
        &classes,
        &backends,
        &mut builder,
        &mut diags,
        &mut ignored,
        options.nginx_compat,
    );
    apiroute::translate_all(
        resources,
        &classes,
        &backends,
        &mut builder,
        &mut diags,
        &mut ignored,
    );
    ignored.sort();
    let policies = ratelimit::check_all(resources, &mut diags);
    ratelimit::attach(&policies, resources, builder.routes_mut());
    if let Some(default) = &options.default_backend {
        ingress::add_global_default(default, &backends, &mut builder, &mut diags);
    }

    let snapshot = builder.finish(challenges, &mut diags);
    Output {
        snapshot,
        diagnostics: diags.into_sorted(),
        ignored,
    }
}

/// Reads `metadata.creationTimestamp` as seconds since the epoch.
fn created_seconds(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<i64> {
    meta.creation_timestamp.as_ref().map(|t| t.0.as_second())
}

/// Objects in namespace/name order, so that the snapshot does not depend
/// on the order objects arrived in.
fn sorted<T>(
    objects: &[Arc<T>],
    meta: impl Fn(&T) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<&T> {
    let mut list: Vec<&T> = objects.iter().map(|o| &**o).collect();
    list.sort_by(|a, b| {
        let (a, b) = (meta(a), meta(b));
        (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name))
    });
    list
}

/// The diagnostic reference and the snapshot origin of an object.
fn identity(
    kind: &'static str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> (ObjectRef, snapshot::Origin) {
    let namespace: Arc<str> = meta.namespace.as_deref().unwrap_or_default().into();
    let name: Arc<str> = meta.name.as_deref().unwrap_or_default().into();
    let object = ObjectRef {
        kind: kind.into(),
        namespace: namespace.clone(),
        name: name.clone(),
    };
    (
        object,
        snapshot::Origin {
            kind,
            namespace,
            name,
        },
    )
}
