//! `networking.k8s.io/v1` Ingress semantics.
//!
//! * Every path of every rule becomes one route with one entry under its
//!   host (or the catch-all host when the rule names none).
//! * `Exact` matches the whole path; `Prefix` matches element by element
//!   (`/foo` takes `/foo`, `/foo/` and `/foo/bar`, never `/foobar`);
//!   `ImplementationSpecific` is defined as `Prefix`.
//! * `spec.defaultBackend` takes requests for the Ingress's hosts (and the
//!   catch-all host) that match no path of any route there.
//! * A backend that does not resolve keeps its place and answers 503, as a
//!   missing upstream would.

mod canary;
mod compat;
mod paths;
mod rules;
mod tls;

pub(crate) use self::canary::{Canaries, cookie_pattern};
pub(crate) use self::paths::add_global_default;

use self::compat::{Extras, compat_settings, report_ignored_nginx, with_nginx_settings};
use self::rules::IngressRoutes;
use self::tls::{force_https, propose_tls};

use k8s_openapi::api::networking::v1::Ingress;

use crate::annotations::{self, BackendProtocol};
use crate::backends::Backends;
use crate::builder::Builder;
use crate::class::{Classes, LEGACY_CLASS_ANNOTATION};
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::nginx;
use crate::{ResourceSet, created_seconds};

pub(crate) fn translate_all(
    resources: &ResourceSet,
    classes: &Classes<'_>,
    backends: &Backends<'_>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
    ignored: &mut Vec<ObjectRef>,
    nginx_compat: bool,
) {
    let mut canaries = Canaries::default();
    let served = |ingress: &Ingress| {
        let class_name = ingress
            .spec
            .as_ref()
            .and_then(|s| s.ingress_class_name.as_deref());
        let legacy = ingress
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(LEGACY_CLASS_ANNOTATION))
            .map(String::as_str);
        classes.serves_ingress(class_name, legacy)
    };
    if nginx_compat {
        for ingress in crate::sorted(&resources.ingresses, |i| &i.metadata) {
            if served(ingress) {
                canaries.collect(ingress);
            }
        }
    }
    for ingress in crate::sorted(&resources.ingresses, |i| &i.metadata) {
        if served(ingress) {
            let policy_exists = |name: &str| {
                resources.rate_limit_policies.iter().any(|p| {
                    p.metadata.name.as_deref() == Some(name)
                        && p.metadata.namespace == ingress.metadata.namespace
                })
            };
            let compat = nginx_compat.then_some(&canaries);
            translate_one(
                ingress,
                resources,
                backends,
                &policy_exists,
                compat,
                builder,
                diags,
            );
        } else {
            ignored.push(crate::identity("Ingress", &ingress.metadata).0);
        }
    }
    canaries.report_unused(diags);
}

fn translate_one(
    ingress: &Ingress,
    resources: &ResourceSet,
    backends: &Backends<'_>,
    policy_exists: &dyn Fn(&str) -> bool,
    compat: Option<&Canaries>,
    builder: &mut Builder,
    diags: &mut Diagnostics,
) {
    let (object, origin) = crate::identity("Ingress", &ingress.metadata);
    if compat.is_some_and(|c| c.is_canary(&object)) {
        // Served by the Ingress it shadows; report its findings only.
        let _ = compat_settings(ingress, &object, diags);
        return;
    }
    let (namespace, name) = (origin.namespace.clone(), origin.name.clone());
    let created = created_seconds(&ingress.metadata);
    let Some(spec) = &ingress.spec else {
        diags.error(
            &object,
            "spec",
            Reason::InvalidField,
            "an Ingress needs a spec",
        );
        return;
    };
    let Ok(annotations) = annotations::parse(
        ingress.metadata.annotations.as_ref(),
        &object,
        policy_exists,
        diags,
    ) else {
        return;
    };
    let settings = if compat.is_some() {
        let Some(settings) = compat_settings(ingress, &object, diags) else {
            return;
        };
        settings
    } else {
        report_ignored_nginx(ingress, &object, diags);
        nginx::Settings::default()
    };
    let Some(extras) = Extras::compile(&settings, &namespace, &name, resources, &object, diags)
    else {
        return;
    };
    let annotations = with_nginx_settings(annotations, &settings);
    if settings.force_ssl_redirect {
        force_https(
            spec, &object, created, &namespace, resources, builder, diags,
        );
    }
    propose_tls(
        spec,
        &object,
        created,
        &namespace,
        &annotations,
        resources,
        builder,
        diags,
    );
    let protocol = annotations.backend_protocol.map(|p| match p {
        BackendProtocol::Http => api::BackendProtocol::HTTP,
        BackendProtocol::Https => api::BackendProtocol::HTTPS,
        BackendProtocol::H2c => api::BackendProtocol::H2C,
        BackendProtocol::Grpc => api::BackendProtocol::GRPC,
        BackendProtocol::Grpcs => api::BackendProtocol::GRPCS,
    });
    let routes = IngressRoutes {
        object: &object,
        origin: &origin,
        created,
        settings: &settings,
        annotations: &annotations,
        extras: &extras,
        protocol,
        compat,
        backends,
    };
    let hosts = routes.add_rules(spec, builder, diags);
    if let Some(root) = &settings.app_root {
        routes.add_app_root(root, &hosts, builder);
    }
    routes.add_default_backend(spec, hosts, builder, diags);
}
