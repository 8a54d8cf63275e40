//! Objects, resource versions, watch history and the resource registry.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A kind of resource the simulator serves.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ResourceType {
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) kind: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    pub(crate) namespaced: bool,
    pub(crate) status_subresource: bool,
    /// OpenAPI v3 schema of a custom resource.
    pub(crate) schema: Option<Value>,
    /// `additionalPrinterColumns` of a custom resource.
    pub(crate) columns: Vec<Value>,
    /// Whether a CustomResourceDefinition made it.
    pub(crate) custom: bool,
}

impl ResourceType {
    fn builtin(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        status: bool,
    ) -> Self {
        Self {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            short_names: Vec::new(),
            categories: Vec::new(),
            namespaced,
            status_subresource: status,
            schema: None,
            columns: Vec::new(),
            custom: false,
        }
    }

    /// `group/version`, or `version` for the core group.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// The resources every simulated cluster has.
pub(crate) fn builtins() -> Vec<ResourceType> {
    let r = ResourceType::builtin;
    let mut list = vec![
        r("", "v1", "Namespace", "namespaces", false, true),
        r("", "v1", "Service", "services", true, true),
        r("", "v1", "Endpoints", "endpoints", true, false),
        r("", "v1", "Secret", "secrets", true, false),
        r("", "v1", "ConfigMap", "configmaps", true, false),
        r("", "v1", "ServiceAccount", "serviceaccounts", true, false),
        r("", "v1", "Pod", "pods", true, true),
        r("", "v1", "Event", "events", true, false),
        r(
            "discovery.k8s.io",
            "v1",
            "EndpointSlice",
            "endpointslices",
            true,
            false,
        ),
        r(
            "networking.k8s.io",
            "v1",
            "Ingress",
            "ingresses",
            true,
            true,
        ),
        r(
            "networking.k8s.io",
            "v1",
            "IngressClass",
            "ingressclasses",
            false,
            false,
        ),
        r(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
            false,
        ),
        r("coordination.k8s.io", "v1", "Lease", "leases", true, false),
        r("events.k8s.io", "v1", "Event", "events", true, false),
        r(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            true,
        ),
        r("apps", "v1", "Deployment", "deployments", true, true),
        r("apps", "v1", "DaemonSet", "daemonsets", true, true),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            false,
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            false,
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            false,
        ),
        r(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            false,
        ),
        r(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
            true,
        ),
        r(
            "autoscaling",
            "v2",
            "HorizontalPodAutoscaler",
            "horizontalpodautoscalers",
            true,
            true,
        ),
    ];
    let short = |list: &mut Vec<ResourceType>, plural: &str, names: &[&str]| {
        for t in list.iter_mut().filter(|t| t.plural == plural) {
            t.short_names = names.iter().map(|n| (*n).to_owned()).collect();
        }
    };
    short(&mut list, "services", &["svc"]);
    short(&mut list, "namespaces", &["ns"]);
    short(&mut list, "ingresses", &["ing"]);
    short(&mut list, "customresourcedefinitions", &["crd", "crds"]);
    short(&mut list, "configmaps", &["cm"]);
    short(&mut list, "deployments", &["deploy"]);
    list
}

/// Identity of a stored object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Key {
    pub(crate) group: String,
    pub(crate) plural: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

/// One change, as watches report it.
#[derive(Clone, Debug)]
pub(crate) struct Change {
    pub(crate) rv: u64,
    pub(crate) kind: &'static str,
    pub(crate) key: Key,
    pub(crate) object: Arc<Value>,
}

/// How many changes are kept for watches that resume from a resource
/// version; older ones get 410 Gone.
const HISTORY: usize = 10_000;

/// Everything the simulated API server holds.
#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) types: Vec<ResourceType>,
    pub(crate) objects: BTreeMap<Key, Value>,
    pub(crate) rv: u64,
    pub(crate) history: VecDeque<Change>,
    /// Oldest resource version a watch may resume from.
    pub(crate) compacted: u64,
    pub(crate) changes: broadcast::Sender<Change>,
    uid: u64,
}

impl Store {
    pub(crate) fn new() -> Self {
        let (changes, _) = broadcast::channel(65_536);
        let mut store = Self {
            types: builtins(),
            objects: BTreeMap::new(),
            rv: 1,
            history: VecDeque::new(),
            compacted: 1,
            changes,
            uid: 0,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}});
            let _ = store.create(
                &Key {
                    group: String::new(),
                    plural: "namespaces".into(),
                    namespace: String::new(),
                    name: ns.into(),
                },
                obj,
            );
        }
        store
    }

    pub(crate) fn find_type(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, kind: &'static str, key: &Key, object: Value) {
        let change = Change {
            rv: self.rv,
            kind,
            key: key.clone(),
            object: Arc::new(object),
        };
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.changes.send(change);
    }

    /// Stores a new object, filling in server-set metadata.
    pub(crate) fn create(&mut self, key: &Key, mut object: Value) -> Result<Value, (u16, String)> {
        if self.objects.contains_key(key) {
            return Err((
                409,
                format!("{} \"{}\" already exists", key.plural, key.name),
            ));
        }
        let rv = self.next_rv();
        self.uid += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.uid);
        let meta = meta_mut(&mut object);
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
        meta.insert("uid".into(), Value::String(uid));
        meta.insert("generation".into(), json!(1));
        meta.insert(
            "creationTimestamp".into(),
            Value::String(
                jiff::Timestamp::now()
                    .round(jiff::Unit::Second)
                    .unwrap_or_else(|_| jiff::Timestamp::now())
                    .to_string(),
            ),
        );
        if !key.namespace.is_empty() {
            meta.insert("namespace".into(), Value::String(key.namespace.clone()));
        }
        meta.remove("deletionTimestamp");
        self.objects.insert(key.clone(), object.clone());
        self.record("ADDED", key, object.clone());
        Ok(object)
    }

    /// Replaces an object. `expected_rv` (from the request body) must match
    /// the stored one when given. `status_only` keeps everything but the
    /// status; otherwise a resource with a status subresource keeps its
    /// status. The generation grows when anything but metadata and status
    /// changed.
    pub(crate) fn update(
        &mut self,
        key: &Key,
        mut object: Value,
        status_only: bool,
        has_status_subresource: bool,
    ) -> Result<Value, (u16, String)> {
        let Some(current) = self.objects.get(key).cloned() else {
            return Err((404, format!("{} \"{}\" not found", key.plural, key.name)));
        };
        let current_rv = current
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(expected) = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && !expected.is_empty()
            && expected != current_rv
        {
            return Err((
                409,
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    key.plural, key.name
                ),
            ));
        }
        if status_only {
            let status = object.get("status").cloned();
            object = current.clone();
            match status {
                Some(s) => {
                    object["status"] = s;
                }
                None => {
                    if let Some(o) = object.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        } else if has_status_subresource {
            match current.get("status") {
                Some(s) => object["status"] = s.clone(),
                None => {
                    if let Some(o) = object.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
        }
        let spec_changed = strip(&current) != strip(&object);
        let mut generation = current
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        if spec_changed && !status_only {
            generation += 1;
        }
        // Server-set metadata is kept whatever the client sent.
        let current_meta = current.get("metadata").cloned().unwrap_or_default();
        let meta = meta_mut(&mut object);
        for k in ["uid", "creationTimestamp", "namespace", "name"] {
            if let Some(v) = current_meta.get(k) {
                meta.insert(k.into(), v.clone());
            }
        }
        meta.insert("generation".into(), json!(generation));
        meta.insert("resourceVersion".into(), Value::String(current_rv));
        // A write that changes nothing changes no version, as in the real
        // API server.
        if object == current {
            return Ok(current);
        }
        let rv = self.next_rv();
        meta_mut(&mut object).insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.objects.insert(key.clone(), object.clone());
        self.record("MODIFIED", key, object.clone());
        Ok(object)
    }

    pub(crate) fn delete(&mut self, key: &Key) -> Result<Value, (u16, String)> {
        let Some(mut object) = self.objects.remove(key) else {
            return Err((404, format!("{} \"{}\" not found", key.plural, key.name)));
        };
        let rv = self.next_rv();
        meta_mut(&mut object).insert("resourceVersion".into(), Value::String(rv.to_string()));
        self.record("DELETED", key, object.clone());
        Ok(object)
    }

    /// Pretends a compaction happened: every watch that resumes from a
    /// version before now gets 410 Gone.
    pub(crate) fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }
}

/// Everything of an object except metadata and status, to tell whether
/// its generation grows.
fn strip(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    v
}

pub(crate) fn meta_mut(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// Parses a label selector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
/// `a notin (x)`) and tests it against labels.
pub(crate) fn labels_match(selector: &str, labels: &HashMap<String, String>) -> bool {
    split_selector(selector).iter().all(|req| {
        let req = req.trim();
        if req.is_empty() {
            return true;
        }
        if let Some((k, rest)) = req.split_once(" notin ") {
            let set = parse_set(rest);
            return labels.get(k.trim()).is_none_or(|v| !set.contains(v));
        }
        if let Some((k, rest)) = req.split_once(" in ") {
            let set = parse_set(rest);
            return labels.get(k.trim()).is_some_and(|v| set.contains(v));
        }
        if let Some((k, v)) = req.split_once("!=") {
            return labels.get(k.trim()).is_none_or(|x| x != v.trim());
        }
        if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            return labels.get(k.trim()).is_some_and(|x| x == v.trim());
        }
        if let Some(k) = req.strip_prefix('!') {
            return !labels.contains_key(k.trim());
        }
        labels.contains_key(req)
    })
}

fn parse_set(s: &str) -> Vec<String> {
    s.trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .map(|v| v.trim().to_owned())
        .collect()
}

/// Splits on commas that are not inside parentheses.
fn split_selector(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

/// Field selectors: `path=value` and `path!=value` on dotted paths.
pub(crate) fn fields_match(selector: &str, object: &Value) -> bool {
    selector
        .split(',')
        .filter(|r| !r.trim().is_empty())
        .all(|req| {
            let (path, value, negate) = match req.split_once("!=") {
                Some((p, v)) => (p, v, true),
                None => match req.split_once("==").or_else(|| req.split_once('=')) {
                    Some((p, v)) => (p, v, false),
                    None => return true,
                },
            };
            let pointer = format!("/{}", path.trim().replace('.', "/"));
            let actual = object
                .pointer(&pointer)
                .and_then(Value::as_str)
                .unwrap_or_default();
            (actual == value.trim()) != negate
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        let labels: HashMap<String, String> = [("app", "web"), ("tier", "front")]
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert!(labels_match("app=web", &labels));
        assert!(labels_match("app==web,tier", &labels));
        assert!(!labels_match("app=db", &labels));
        assert!(labels_match("app in (web,db)", &labels));
        assert!(!labels_match("app notin (web)", &labels));
        assert!(labels_match("!missing", &labels));
        assert!(labels_match("tier!=back", &labels));
        let obj = json!({"metadata": {"name": "x", "namespace": "n"}, "type": "kubernetes.io/tls"});
        assert!(fields_match("metadata.name=x,metadata.namespace=n", &obj));
        assert!(fields_match("type=kubernetes.io/tls", &obj));
        assert!(!fields_match("metadata.name!=x", &obj));
    }
}
