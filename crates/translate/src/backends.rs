//! Resolving Service references into clusters of ready endpoints.

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use snapshot::Endpoint;

use snapshot::BackendTarget;

use crate::ResourceSet;
use crate::builder::Builder;
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::traffic::ClusterSettings;

/// Label EndpointSlices carry to name their Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// How a route names a Service port.
#[derive(Clone, Copy, Debug)]
pub(crate) enum PortRef<'a> {
    /// `spec.ports[].port`.
    Number(i32),
    /// `spec.ports[].name`.
    Name(&'a str),
}

/// A resolution failure, with the reason and a message for the user.
#[derive(Debug)]
pub(crate) struct Unresolved {
    pub(crate) reason: Reason,
    pub(crate) message: String,
}

/// A resolved Service port.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// The cluster's name, `namespace/service:port`.
    pub(crate) name: Arc<str>,
    /// Ready endpoints.
    pub(crate) endpoints: Vec<Endpoint>,
    /// The port's `appProtocol`.
    pub(crate) app_protocol: Option<String>,
}

/// Services and EndpointSlices indexed for lookups by namespace and name.
pub(crate) struct Backends<'a> {
    services: HashMap<(&'a str, &'a str), &'a Service>,
    slices: HashMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>,
}

impl<'a> Backends<'a> {
    pub(crate) fn index(resources: &'a ResourceSet) -> Self {
        let mut services = HashMap::new();
        for svc in &resources.services {
            if let (Some(ns), Some(name)) = (&svc.metadata.namespace, &svc.metadata.name) {
                services.insert((ns.as_str(), name.as_str()), &**svc);
            }
        }
        let mut slices: HashMap<_, Vec<_>> = HashMap::new();
        for slice in &resources.endpoint_slices {
            let service = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL));
            if let (Some(ns), Some(service)) = (&slice.metadata.namespace, service) {
                slices
                    .entry((ns.as_str(), service.as_str()))
                    .or_default()
                    .push(&**slice);
            }
        }
        Self { services, slices }
    }

    /// Resolves a Service port to the cluster name, its ready endpoints
    /// and the port's `appProtocol`.
    pub(crate) fn resolve(
        &self,
        namespace: &str,
        service: &str,
        port: PortRef<'_>,
    ) -> Result<Resolved, Unresolved> {
        let Some(svc) = self.services.get(&(namespace, service)) else {
            return Err(Unresolved {
                reason: Reason::BackendNotFound,
                message: format!("Service {namespace}/{service} does not exist"),
            });
        };
        let spec = svc.spec.as_ref();
        if spec.and_then(|s| s.type_.as_deref()) == Some("ExternalName") {
            return Err(Unresolved {
                reason: Reason::UnsupportedBackend,
                message: format!(
                    "Service {namespace}/{service} is of type ExternalName, which is not supported as a backend"
                ),
            });
        }
        let ports = spec.and_then(|s| s.ports.as_deref()).unwrap_or_default();
        let found = ports.iter().find(|p| match port {
            PortRef::Number(n) => p.port == n,
            PortRef::Name(name) => p.name.as_deref() == Some(name),
        });
        let Some(svc_port) = found else {
            let known: Vec<String> = ports.iter().map(describe_port).collect();
            let wanted = match port {
                PortRef::Number(n) => format!("port {n}"),
                PortRef::Name(name) => format!("port named {name:?}"),
            };
            return Err(Unresolved {
                reason: Reason::PortNotFound,
                message: format!(
                    "Service {namespace}/{service} has no {wanted} (it has: {})",
                    if known.is_empty() {
                        "no ports".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            });
        };
        Ok(Resolved {
            name: format!("{namespace}/{service}:{}", svc_port.port).into(),
            endpoints: self.endpoints(namespace, service, svc_port),
            app_protocol: svc_port.app_protocol.clone(),
        })
    }

    /// Ready endpoints of one Service port: every address of every
    /// endpoint whose `ready` condition is not false and that is not
    /// terminating, on the slice port with the Service port's name.
    fn endpoints(&self, namespace: &str, service: &str, svc_port: &ServicePort) -> Vec<Endpoint> {
        let wanted_name = svc_port.name.as_deref().unwrap_or_default();
        let mut out = BTreeSet::new();
        for slice in self.slices.get(&(namespace, service)).into_iter().flatten() {
            if !matches!(slice.address_type.as_str(), "IPv4" | "IPv6") {
                continue;
            }
            let port = slice
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref().unwrap_or_default() == wanted_name)
                .and_then(|p| p.port)
                .and_then(|p| u16::try_from(p).ok());
            let Some(port) = port else { continue };
            for ep in slice.endpoints.iter().flatten() {
                let cond = ep.conditions.as_ref();
                // Per the EndpointSlice API, an unknown `ready` counts as
                // ready; terminating endpoints never take new requests.
                let ready = cond.and_then(|c| c.ready).unwrap_or(true);
                let terminating = cond.and_then(|c| c.terminating).unwrap_or(false);
                if !ready || terminating {
                    continue;
                }
                for addr in &ep.addresses {
                    if let Ok(ip) = addr.parse::<IpAddr>() {
                        out.insert(Endpoint {
                            addr: SocketAddr::new(ip, port),
                        });
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

fn describe_port(p: &ServicePort) -> String {
    match &p.name {
        Some(name) if !name.is_empty() => format!("{} ({name})", p.port),
        _ => p.port.to_string(),
    }
}

/// What a route asks of the cluster behind one of its backends.
pub(crate) struct Use<'a> {
    /// A protocol named by the route (ApiRoute `protocol`, Ingress
    /// annotation), overriding the Service port's `appProtocol`.
    pub(crate) protocol: Option<api::BackendProtocol>,
    /// Health settings of the route's rule.
    pub(crate) settings: ClusterSettings,
    /// The object making the reference, for diagnostics.
    pub(crate) object: &'a ObjectRef,
    /// Field of the reference, such as `spec.rules[0].backends[1]`.
    pub(crate) field: &'a str,
    /// Subfield naming the Service (`name` or `service.name`).
    pub(crate) name_field: &'a str,
    /// Subfield naming the port.
    pub(crate) port_field: &'a str,
    /// Status that answers the backend's share when it does not resolve.
    pub(crate) unresolved_status: u16,
}

/// Turns a resolution into a backend target: registers the cluster with
/// `builder` (when the route will be served), or reports why the backend
/// cannot be used and answers its share with `unresolved_status`.
pub(crate) fn target(
    resolved: Result<Resolved, Unresolved>,
    usage: Use<'_>,
    builder: Option<&mut Builder>,
    diags: &mut Diagnostics,
) -> BackendTarget {
    let unresolved = |reason: String| BackendTarget::Unresolved {
        status: usage.unresolved_status,
        reason: reason.into(),
    };
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            let sub = match e.reason {
                Reason::PortNotFound => usage.port_field,
                _ => usage.name_field,
            };
            diags.error(
                usage.object,
                format!("{}.{sub}", usage.field),
                e.reason,
                e.message.clone(),
            );
            return unresolved(e.message);
        }
    };
    let mut settings = usage.settings;
    let protocol = match crate::traffic::protocol(usage.protocol, resolved.app_protocol.as_deref())
    {
        Ok((p, tls, warning)) => {
            if let Some(w) = warning {
                diags.warning(usage.object, usage.field.to_owned(), Reason::Unsupported, w);
            }
            let draft = settings.backend_tls.clone();
            if tls {
                settings.tls = Some(Arc::new(draft.unwrap_or_default().finish(&resolved.name)));
            } else if draft.is_some() {
                diags.warning(
                    usage.object,
                    usage.field.to_owned(),
                    Reason::Unsupported,
                    "backendTls applies to HTTPS and GRPCS backends only; this backend speaks plain text",
                );
            }
            p
        }
        Err(msg) => {
            diags.error(
                usage.object,
                usage.field.to_owned(),
                Reason::UnsupportedBackend,
                msg.clone(),
            );
            return unresolved(msg);
        }
    };
    let Some(builder) = builder else {
        return unresolved("the route is not served".into());
    };
    let (target, conflict) = builder.cluster_target(
        resolved.name,
        resolved.endpoints,
        protocol,
        settings,
        format!("{} ({})", usage.object, usage.field),
    );
    if let Some(w) = conflict {
        diags.warning(usage.object, usage.field.to_owned(), Reason::Conflict, w);
    }
    target
}
