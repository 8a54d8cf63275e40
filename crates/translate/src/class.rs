//! Which Ingresses and ApiRoutes are Gatehouse's to serve.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::networking::v1::IngressClass;

use crate::Options;

/// The annotation that marks an IngressClass as the cluster default.
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";
/// The annotation older Ingresses use instead of `spec.ingressClassName`.
pub(crate) const LEGACY_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// The IngressClasses of the cluster as seen from Gatehouse.
pub(crate) struct Classes<'a> {
    /// Class name → whether its controller is ours.
    by_name: HashMap<&'a str, bool>,
    our_class: &'a str,
    ours_is_default: bool,
    serve_classless: bool,
}

impl<'a> Classes<'a> {
    pub(crate) fn new(classes: &'a [Arc<IngressClass>], options: &'a Options) -> Self {
        let mut by_name = HashMap::new();
        let mut ours_is_default = false;
        for class in classes {
            let Some(name) = class.metadata.name.as_deref() else {
                continue;
            };
            let ours = class.spec.as_ref().and_then(|s| s.controller.as_deref())
                == Some(options.controller_name.as_str());
            let is_default = class
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                .is_some_and(|v| v == "true");
            ours_is_default |= ours && is_default;
            by_name.insert(name, ours);
        }
        Self {
            by_name,
            our_class: &options.ingress_class,
            ours_is_default,
            serve_classless: options.watch_ingress_without_class,
        }
    }

    /// Whether a class name is ours: an IngressClass of that name has our
    /// controller, or no IngressClass of that name exists and it is the
    /// class name Gatehouse was started with.
    pub(crate) fn is_ours(&self, name: &str) -> bool {
        match self.by_name.get(name) {
            Some(&ours) => ours,
            None => name == self.our_class,
        }
    }

    /// Whether an Ingress with this `spec.ingressClassName` and legacy
    /// annotation value is ours.
    pub(crate) fn serves_ingress(&self, class_name: Option<&str>, legacy: Option<&str>) -> bool {
        match (class_name, legacy) {
            (Some(name), _) | (None, Some(name)) => self.is_ours(name),
            (None, None) => self.ours_is_default || self.serve_classless,
        }
    }

    /// Whether an ApiRoute with this `spec.ingressClassName` is ours: the
    /// same rules as for an Ingress without the legacy annotation.
    pub(crate) fn serves_route(&self, class_name: Option<&str>) -> bool {
        self.serves_ingress(class_name, None)
    }
}
