//! The routes of one Ingress: a route per path of every rule, the
//! `app-root` redirect, and the default backend.

use snapshot::{HostPattern, Origin, PathMatch, RouteEntry};

use super::canary::Canaries;
use super::compat::{Extras, app_root_route, path_filters};
use super::paths::{
    PathRoutes, add_catch_all, add_path_routes, backend_target, forwarding_route, path_match,
};
use crate::annotations::IngressAnnotations;
use crate::backends::Backends;
use crate::builder::{Builder, Provenance, Tier};
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};
use crate::nginx;
use crate::values::check_hostname;

/// What turning one Ingress into routes reads throughout.
pub(super) struct IngressRoutes<'a> {
    pub(super) object: &'a ObjectRef,
    pub(super) origin: &'a Origin,
    pub(super) created: Option<i64>,
    pub(super) settings: &'a nginx::Settings,
    pub(super) annotations: &'a IngressAnnotations,
    pub(super) extras: &'a Extras,
    pub(super) protocol: Option<api::BackendProtocol>,
    pub(super) compat: Option<&'a Canaries>,
    pub(super) backends: &'a Backends<'a>,
}

impl IngressRoutes<'_> {
    fn provenance(&self, field: String) -> Provenance {
        Provenance {
            object: self.object.clone(),
            created: self.created,
            field,
        }
    }

    /// A route per path of every rule; the rules' hosts.
    pub(super) fn add_rules(
        &self,
        spec: &k8s_openapi::api::networking::v1::IngressSpec,
        builder: &mut Builder,
        diags: &mut Diagnostics,
    ) -> Vec<HostPattern> {
        let mut hosts: Vec<HostPattern> = Vec::new();
        for (i, rule) in spec.rules.iter().flatten().enumerate() {
            let host = match rule.host.as_deref() {
                None | Some("") => HostPattern::Any,
                Some(h) => {
                    if let Err(msg) = check_hostname(h) {
                        diags.error(
                            self.object,
                            format!("spec.rules[{i}].host"),
                            Reason::InvalidField,
                            msg,
                        );
                        continue;
                    }
                    HostPattern::parse(h)
                }
            };
            if !hosts.contains(&host) {
                hosts.push(host.clone());
            }
            let Some(http) = &rule.http else { continue };
            for (j, path) in http.paths.iter().enumerate() {
                let field = format!("spec.rules[{i}].http.paths[{j}]");
                let written = path.path.as_deref().unwrap_or("/");
                let Some(path_match) = path_match(
                    path,
                    written,
                    self.settings.use_regex,
                    self.object,
                    &field,
                    diags,
                ) else {
                    continue;
                };
                let filters =
                    match path_filters(self.settings, self.annotations, &path_match, written) {
                        Ok(f) => f,
                        Err(msg) => {
                            diags.error(
                                self.object,
                                format!("metadata.annotations[{}rewrite-target]", nginx::PREFIX),
                                Reason::InvalidAnnotation,
                                format!("{msg}; the path is not served"),
                            );
                            continue;
                        }
                    };
                let target = backend_target(
                    &path.backend,
                    &self.origin.namespace,
                    self.protocol,
                    self.object,
                    &format!("{field}.backend"),
                    self.backends,
                    builder,
                    diags,
                );
                let canary = self.compat.and_then(|c| {
                    c.find(
                        &self.origin.namespace,
                        rule.host.as_deref().unwrap_or_default(),
                        written,
                    )
                });
                add_path_routes(
                    &PathRoutes {
                        id: format!(
                            "ingress/{}/{}/rule/{i}/path/{j}",
                            self.origin.namespace, self.origin.name
                        ),
                        origin: self.origin,
                        host: &host,
                        path_match,
                        target,
                        filters,
                        extras: self.extras,
                        canary,
                        namespace: &self.origin.namespace,
                        protocol: self.protocol,
                        backends: self.backends,
                        provenance: self.provenance(field),
                    },
                    builder,
                    diags,
                );
            }
        }
        hosts
    }

    /// `app-root`: an exact `/` on every host of the Ingress redirects.
    pub(super) fn add_app_root(&self, root: &str, hosts: &[HostPattern], builder: &mut Builder) {
        {
            let route = builder.add_route(app_root_route(
                root,
                &self.origin.namespace,
                &self.origin.name,
                self.origin,
            ));
            let mut root_hosts = hosts.to_vec();
            if root_hosts.is_empty() {
                root_hosts.push(HostPattern::Any);
            }
            for host in root_hosts {
                builder.add_entry(
                    host,
                    RouteEntry {
                        path: PathMatch::Exact("/".into()),
                        method: None,
                        headers: Vec::new(),
                        query: Vec::new(),
                        body: Vec::new(),
                        route,
                    },
                    Tier::Rule,
                    self.provenance(format!("metadata.annotations[{}app-root]", nginx::PREFIX)),
                );
            }
        }
    }

    /// The default backend as the catch-all of the Ingress's hosts; an
    /// Ingress with neither rules nor a default backend is reported.
    pub(super) fn add_default_backend(
        &self,
        spec: &k8s_openapi::api::networking::v1::IngressSpec,
        hosts: Vec<HostPattern>,
        builder: &mut Builder,
        diags: &mut Diagnostics,
    ) {
        if let Some(default) = &spec.default_backend {
            let field = "spec.defaultBackend";
            let target = backend_target(
                default,
                &self.origin.namespace,
                self.protocol,
                self.object,
                field,
                self.backends,
                builder,
                diags,
            );
            let id = format!(
                "ingress/{}/{}/default-backend",
                self.origin.namespace, self.origin.name
            );
            let route = builder.add_route(forwarding_route(id.into(), self.origin.clone(), target));
            add_catch_all(
                builder,
                hosts,
                route,
                Tier::ObjectDefault,
                &self.provenance(field.to_owned()),
            );
        } else if spec.rules.as_ref().is_none_or(Vec::is_empty) {
            diags.warning(
                self.object,
                "spec",
                Reason::InvalidField,
                "the Ingress has neither rules nor a defaultBackend: it serves nothing",
            );
        }
    }
}
