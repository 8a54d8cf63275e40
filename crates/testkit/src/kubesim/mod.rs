//! A Kubernetes API server simulator, good enough for the real `kubectl`
//! and for kube-rs controllers, with fault injection.
//!
//! It speaks the API server's HTTP protocol: discovery (`/version`,
//! `/api`, `/apis` and the group-version resource lists), list with a
//! `resourceVersion`, watch as a stream of JSON events (bookmarks,
//! `timeoutSeconds`, `410 Gone` for versions older than its history),
//! get/create/update/delete, JSON merge patch (strategic merge patch and
//! server-side apply are treated as merge patches), JSON patch, the status
//! subresource, label and field selectors, optimistic concurrency
//! (`409 Conflict`), Tables for `kubectl get`, and CustomResourceDefinition
//! registration: a created CRD is served, listed in discovery, and its
//! objects are validated (schema and CEL rules) and defaulted.
//!
//! Faults: [`KubeSim::drop_watches`], [`KubeSim::expire_history`] (the next
//! resumed watches get 410), [`KubeSim::fail_next`] (answer N requests
//! with a status such as 500 or 429), [`KubeSim::set_latency`],
//! [`KubeSim::stop`] and [`KubeSim::restart`] (go away, come back on the
//! same port with the same state).

mod kubectl;
mod schema;
mod store;
mod table;

pub use kubectl::{Kubectl, Output as KubectlOutput};

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use store::{Change, Key, ResourceType, Store, meta_mut};

type Body = http_body_util::Either<
    Full<Bytes>,
    StreamBody<tokio_stream::wrappers::ReceiverStream<Result<Frame<Bytes>, Infallible>>>,
>;

/// One request the simulator received (for tests that check who wrote).
#[derive(Clone, Debug)]
pub struct Logged {
    /// HTTP method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// `User-Agent` of the client.
    pub user_agent: String,
}

#[derive(Debug, Default)]
struct Faults {
    fail_next: AtomicU32,
    fail_status: AtomicU16,
    latency_ms: AtomicU64,
}

#[derive(Debug)]
struct Shared {
    store: Mutex<Store>,
    faults: Faults,
    /// Bumped to end every open watch.
    watch_epoch: watch::Sender<u64>,
    log: Mutex<Vec<Logged>>,
}

impl Shared {
    fn store(&self) -> MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running simulator.
#[derive(Debug)]
pub struct KubeSim {
    /// Where it listens (the same address across restarts).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Mutex<Option<watch::Sender<bool>>>,
}

impl KubeSim {
    /// Starts a simulator on a free loopback port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let addr = listener.local_addr().expect("bound");
        let (watch_epoch, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new()),
            faults: Faults::default(),
            watch_epoch,
            log: Mutex::new(Vec::new()),
        });
        let sim = Self {
            addr,
            shared,
            stop: Mutex::new(None),
        };
        sim.serve(listener);
        sim
    }

    fn serve(&self, listener: TcpListener) {
        let (stop, stopped) = watch::channel(false);
        *self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(stop);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let mut stopped_accept = stopped.clone();
            loop {
                let stream = tokio::select! {
                    _ = stopped_accept.changed() => return,
                    accepted = listener.accept() => match accepted {
                        Ok((s, _)) => s,
                        Err(_) => continue,
                    },
                };
                let shared = shared.clone();
                let service = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                });
                let conn = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned();
                let mut stopped = stopped.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = conn => {}
                        _ = stopped.changed() => {}
                    }
                });
            }
        });
    }

    /// Writes a kubeconfig for this simulator into `dir` and returns its
    /// path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster: {{server: \"http://{}\"}}\nusers:\n- name: sim\n  user: {{}}\ncontexts:\n- name: sim\n  context: {{cluster: sim, user: sim, namespace: default}}\ncurrent-context: sim\n",
            self.addr
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Ends every open watch (the clients must reconnect).
    pub fn drop_watches(&self) {
        self.shared.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Forgets the change history: watches resuming from an earlier
    /// version get `410 Gone` and must list again. Open watches end.
    pub fn expire_history(&self) {
        self.shared.store().compact();
        self.drop_watches();
    }

    /// Answers the next `n` requests with `status` (for example 500 or
    /// 429).
    pub fn fail_next(&self, n: u32, status: u16) {
        self.shared
            .faults
            .fail_status
            .store(status, Ordering::Relaxed);
        self.shared.faults.fail_next.store(n, Ordering::Relaxed);
    }

    /// Delays every answer.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.faults.latency_ms.store(
            u64::try_from(latency.as_millis()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// Goes away: stops listening and closes every connection.
    pub fn stop(&self) {
        if let Some(stop) = self
            .stop
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            let _ = stop.send(true);
        }
        self.drop_watches();
    }

    /// Comes back on the same address with the same objects.
    pub async fn restart(&self) {
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        self.serve(listener);
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// An object, by API version, plural, namespace and name.
    pub fn get(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let key = Key {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.shared.store().objects.get(&key).cloned()
    }

    /// Every object of a resource.
    pub fn list(&self, api_version: &str, plural: &str) -> Vec<Value> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        self.shared
            .store()
            .objects
            .iter()
            .filter(|(k, _)| k.group == group && k.plural == plural)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates or replaces an object directly (bypassing HTTP and schema
    /// validation), such as an EndpointSlice a test manages. A
    /// CustomResourceDefinition is registered as over HTTP.
    pub fn put(&self, object: Value) -> Result<Value, String> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        let mut store = self.shared.store();
        let rt = store
            .types
            .iter()
            .find(|t| t.api_version() == api_version && t.kind == kind)
            .cloned()
            .ok_or_else(|| format!("unknown kind {api_version} {kind}"))?;
        let namespace = if rt.namespaced {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_owned()
        } else {
            String::new()
        };
        let key = Key {
            group: rt.group.clone(),
            plural: rt.plural.clone(),
            namespace,
            name: object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        };
        let result = if store.objects.contains_key(&key) {
            let mut object = object;
            meta_mut(&mut object).remove("resourceVersion");
            store.update(&key, object, false, rt.status_subresource)
        } else {
            store.create(&key, object)
        };
        if let Ok(created) = &result
            && kind == "CustomResourceDefinition"
        {
            register_crd(&mut store, created);
        }
        result.map_err(|(_, m)| m)
    }

    /// Deletes an object directly.
    pub fn remove(
        &self,
        api_version: &str,
        plural: &str,
        namespace: &str,
        name: &str,
    ) -> Result<(), String> {
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let key = Key {
            group: group.into(),
            plural: plural.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.shared
            .store()
            .delete(&key)
            .map(|_| ())
            .map_err(|(_, m)| m)
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        self.stop();
    }
}

// === request handling ===

/// Decodes a query value (`%XX` and `+`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            out.push(b' ');
        } else if bytes[i] == b'%'
            && let Some(b) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: u16, body: &Value) -> Response<Body> {
    let mut resp = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(
        serde_json::to_vec(body).unwrap_or_default(),
    ))));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    json_response(
        code,
        &json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason, "code": code,
        }),
    )
}

fn reason_for(code: u16) -> &'static str {
    match code {
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        429 => "TooManyRequests",
        405 => "MethodNotAllowed",
        400 => "BadRequest",
        _ => "InternalError",
    }
}

async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    shared
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(Logged {
            method: req.method().to_string(),
            path: req.uri().to_string(),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        });
    let latency = shared.faults.latency_ms.load(Ordering::Relaxed);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if shared
        .faults
        .fail_next
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        let code = shared.faults.fail_status.load(Ordering::Relaxed);
        return status(code, reason_for(code), "injected failure");
    }
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return status(400, "BadRequest", &e.to_string()),
    };
    let query: HashMap<String, String> = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (!k.is_empty()).then(|| (k.to_owned(), percent_decode(v)))
        })
        .collect();
    let accept = parts
        .headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let segments: Vec<&str> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        ["version"] => json_response(
            200,
            &json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0-gatehouse-sim", "platform": "linux/amd64"}),
        ),
        ["healthz" | "livez" | "readyz"] => json_response(200, &json!("ok")),
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => json_response(200, &group_list(&shared.store())),
        ["api", "v1"] => json_response(200, &resource_list(&shared.store(), "", "v1")),
        ["apis", g, v] => {
            let list = resource_list(&shared.store(), g, v);
            if list["resources"].as_array().is_some_and(Vec::is_empty) {
                status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                )
            } else {
                json_response(200, &list)
            }
        }
        ["openapi", ..] => status(404, "NotFound", "OpenAPI is not served by the simulator"),
        ["api", "v1", rest @ ..] => {
            resource(
                shared,
                &parts.method,
                "",
                "v1",
                rest,
                &query,
                &accept,
                &content_type,
                &body,
            )
            .await
        }
        ["apis", g, v, rest @ ..] => {
            resource(
                shared,
                &parts.method,
                g,
                v,
                rest,
                &query,
                &accept,
                &content_type,
                &body,
            )
            .await
        }
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ),
    }
}

fn group_list(store: &Store) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for t in store.types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == t.group) {
            Some((_, versions)) => {
                if !versions.contains(&t.version) {
                    versions.push(t.version.clone());
                }
            }
            None => groups.push((t.group.clone(), vec![t.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn resource_list(store: &Store, group: &str, version: &str) -> Value {
    let verbs = json!([
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch"
    ]);
    let mut resources = Vec::new();
    for t in store
        .types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        resources.push(json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced, "kind": t.kind,
            "verbs": verbs, "shortNames": t.short_names, "categories": t.categories,
        }));
        if t.status_subresource {
            resources.push(json!({"name": format!("{}/status", t.plural), "singularName": "", "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// Where a request points: the resource type, namespace, name and
/// subresource.
struct Target {
    rt: ResourceType,
    namespace: String,
    name: Option<String>,
    status: bool,
}

fn target(
    store: &Store,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Result<Target, Box<Response<Body>>> {
    let not_found = || {
        Box::new(status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ))
    };
    let (namespace, rest) = match rest {
        // `/api/v1/namespaces/<name>` is the Namespace object itself.
        ["namespaces", ns, plural, tail @ ..] if !(group.is_empty() && *plural == "status") => {
            (ns.to_string(), {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (String::new(), other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some((*name).to_owned()), None),
        [plural, name, sub] => (*plural, Some((*name).to_owned()), Some(*sub)),
        _ => return Err(not_found()),
    };
    let rt = store
        .find_type(group, version, plural)
        .ok_or_else(not_found)?;
    if rt.namespaced && namespace.is_empty() && name.is_some() {
        return Err(not_found());
    }
    match sub {
        None => {}
        Some("status") if rt.status_subresource => {}
        Some(_) => return Err(not_found()),
    }
    Ok(Target {
        namespace: if rt.namespaced {
            namespace
        } else {
            String::new()
        },
        rt,
        name,
        status: sub.is_some(),
    })
}

#[allow(clippy::too_many_arguments)]
async fn resource(
    shared: &Arc<Shared>,
    method: &Method,
    group: &str,
    version: &str,
    rest: &[&str],
    query: &HashMap<String, String>,
    accept: &str,
    content_type: &str,
    body: &Bytes,
) -> Response<Body> {
    let t = {
        let store = shared.store();
        match target(&store, group, version, rest) {
            Ok(t) => t,
            Err(resp) => return *resp,
        }
    };
    match (method, &t.name) {
        (&Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch_stream(shared, &t, query)
        }
        (&Method::GET, None) => list(shared, &t, query, accept),
        (&Method::GET, Some(name)) => {
            let store = shared.store();
            match store.objects.get(&key(&t, name)) {
                Some(o) if accept.contains("as=Table") => {
                    json_response(200, &table::table(&t.rt, std::slice::from_ref(o), store.rv))
                }
                Some(o) => json_response(200, o),
                None => status(
                    404,
                    "NotFound",
                    &format!("{} \"{name}\" not found", t.rt.plural),
                ),
            }
        }
        (&Method::POST, None) => {
            let Some(object) = parse_body(body, content_type) else {
                return status(400, "BadRequest", "the body is not a JSON or YAML object");
            };
            create(shared, &t, object)
        }
        (&Method::PUT, Some(name)) => {
            let Some(object) = parse_body(body, content_type) else {
                return status(400, "BadRequest", "the body is not a JSON or YAML object");
            };
            write(shared, &t, name, object, None)
        }
        (&Method::PATCH, Some(name)) if content_type.starts_with("application/json-patch+json") => {
            let Ok(ops @ Value::Array(_)) = serde_json::from_slice::<Value>(body) else {
                return status(
                    400,
                    "BadRequest",
                    "the JSON patch is not an array of operations",
                );
            };
            write(shared, &t, name, ops, Some(PatchKind::Json))
        }
        (&Method::PATCH, Some(name)) => {
            let Some(patch) = parse_body(body, content_type) else {
                return status(400, "BadRequest", "the patch is not a JSON or YAML object");
            };
            let kind = if content_type.starts_with("application/apply-patch") {
                PatchKind::Apply
            } else {
                PatchKind::Merge
            };
            write(shared, &t, name, patch, Some(kind))
        }
        (&Method::DELETE, Some(name)) => {
            let mut store = shared.store();
            if t.rt.kind == "CustomResourceDefinition" {
                store
                    .types
                    .retain(|rt| !(rt.custom && format!("{}.{}", rt.plural, rt.group) == *name));
            }
            match store.delete(&key(&t, name)) {
                Ok(o) => json_response(200, &o),
                Err((code, msg)) => status(code, reason_for(code), &msg),
            }
        }
        _ => status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
    }
}

fn key(t: &Target, name: &str) -> Key {
    Key {
        group: t.rt.group.clone(),
        plural: t.rt.plural.clone(),
        namespace: t.namespace.clone(),
        name: name.to_owned(),
    }
}

fn parse_body(body: &Bytes, content_type: &str) -> Option<Value> {
    let value: Value = if content_type.contains("yaml") {
        serde_saphyr::from_slice(body).ok()?
    } else {
        serde_json::from_slice(body).ok()?
    };
    value.is_object().then_some(value)
}

fn matches_selectors(o: &Value, query: &HashMap<String, String>) -> bool {
    let labels: HashMap<String, String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    query
        .get("labelSelector")
        .is_none_or(|s| store::labels_match(s, &labels))
        && query
            .get("fieldSelector")
            .is_none_or(|s| store::fields_match(s, o))
}

fn list(
    shared: &Arc<Shared>,
    t: &Target,
    query: &HashMap<String, String>,
    accept: &str,
) -> Response<Body> {
    let store = shared.store();
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|(k, _)| {
            k.group == t.rt.group
                && k.plural == t.rt.plural
                && (t.namespace.is_empty() || k.namespace == t.namespace)
        })
        .map(|(_, v)| v)
        .filter(|o| matches_selectors(o, query))
        .cloned()
        .collect();
    if accept.contains("as=Table") {
        return json_response(200, &table::table(&t.rt, &items, store.rv));
    }
    json_response(
        200,
        &json!({
            "kind": format!("{}List", t.rt.kind),
            "apiVersion": t.rt.api_version(),
            "metadata": {"resourceVersion": store.rv.to_string()},
            "items": items,
        }),
    )
}

fn create(shared: &Arc<Shared>, t: &Target, mut object: Value) -> Response<Body> {
    let Some(name) = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .map(str::to_owned)
    else {
        if let Some(prefix) = object
            .pointer("/metadata/generateName")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            meta_mut(&mut object).insert(
                "name".into(),
                Value::String(format!("{prefix}{:05x}", fastrand::u32(..0x10_0000))),
            );
            return create(shared, t, object);
        }
        return status(
            422,
            "Invalid",
            "metadata.name: Required value: name or generateName is required",
        );
    };
    object["apiVersion"] = Value::String(t.rt.api_version());
    object["kind"] = Value::String(t.rt.kind.clone());
    let object = match admit(t, object) {
        Ok(o) => o,
        Err(resp) => return *resp,
    };
    let mut store = shared.store();
    if t.rt.kind == "CustomResourceDefinition" {
        let mut object = object;
        object["status"] = json!({"conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": jiff::Timestamp::now().to_string()},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": jiff::Timestamp::now().to_string()},
        ]});
        register_crd(&mut store, &object);
        return match store.create(&key(t, &name), object) {
            Ok(o) => json_response(201, &o),
            Err((code, msg)) => status(code, reason_for(code), &msg),
        };
    }
    match store.create(&key(t, &name), object) {
        Ok(o) => json_response(201, &o),
        Err((code, msg)) => status(code, reason_for(code), &msg),
    }
}

/// Validates and defaults a custom resource against its schema.
fn admit(t: &Target, object: Value) -> Result<Value, Box<Response<Body>>> {
    let Some(schema) = &t.rt.schema else {
        return Ok(object);
    };
    schema::validate(schema, &object).map_err(|errors| -> Box<Response<Body>> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        Box::new(status(
            422,
            "Invalid",
            &format!(
                "{}.{} \"{name}\" is invalid: {}",
                t.rt.kind,
                t.rt.group,
                errors.join(", ")
            ),
        ))
    })
}

/// Makes a CRD's resources served.
fn register_crd(store: &mut Store, crd: &Value) {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for version in spec["versions"].as_array().into_iter().flatten() {
        if version["served"] == Value::Bool(false) {
            continue;
        }
        let v = version["name"].as_str().unwrap_or_default().to_owned();
        let plural = names["plural"].as_str().unwrap_or_default().to_owned();
        store
            .types
            .retain(|t| !(t.group == group && t.version == v && t.plural == plural));
        store.types.push(ResourceType {
            group: group.into(),
            version: v,
            kind: names["kind"].as_str().unwrap_or_default().into(),
            singular: names["singular"].as_str().map_or_else(
                || {
                    names["kind"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase()
                },
                str::to_owned,
            ),
            plural,
            short_names: strings(&names["shortNames"]),
            categories: strings(&names["categories"]),
            namespaced: spec["scope"] == "Namespaced",
            status_subresource: version.pointer("/subresources/status").is_some(),
            schema: version.pointer("/schema/openAPIV3Schema").cloned(),
            columns: version["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            custom: true,
        });
    }
}

/// How a PATCH body applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchKind {
    /// JSON merge patch, and strategic merge patch treated as one.
    Merge,
    /// Server-side apply, treated as a merge patch that may create.
    Apply,
    /// RFC 6902 JSON patch: a list of operations.
    Json,
}

/// PUT (`patch == None`) or PATCH of an object or its status.
fn write(
    shared: &Arc<Shared>,
    t: &Target,
    name: &str,
    body: Value,
    patch: Option<PatchKind>,
) -> Response<Body> {
    let k = key(t, name);
    let current = shared.store().objects.get(&k).cloned();
    let object = match (patch, current) {
        (None, Some(_)) => body,
        (None, None) => {
            return status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", t.rt.plural),
            );
        }
        (Some(PatchKind::Json), Some(mut current)) => {
            if let Err(e) = json_patch(&mut current, &body) {
                return status(
                    422,
                    "Invalid",
                    &format!("the JSON patch does not apply: {e}"),
                );
            }
            current
        }
        (Some(_), Some(mut current)) => {
            merge(&mut current, &body);
            // A merge patch carries no resource version unless the client
            // asked for the check.
            if body.pointer("/metadata/resourceVersion").is_none() {
                meta_mut(&mut current).remove("resourceVersion");
            }
            current
        }
        // Server-side apply creates what does not exist.
        (Some(PatchKind::Apply), None) if !t.status => {
            let mut object = body;
            meta_mut(&mut object).insert("name".into(), Value::String(name.to_owned()));
            return create(shared, t, object);
        }
        (Some(_), None) => {
            return status(
                404,
                "NotFound",
                &format!("{} \"{name}\" not found", t.rt.plural),
            );
        }
    };
    let mut object = object;
    object["apiVersion"] = Value::String(t.rt.api_version());
    object["kind"] = Value::String(t.rt.kind.clone());
    let object = if t.status {
        object
    } else {
        match admit(t, object) {
            Ok(o) => o,
            Err(resp) => return *resp,
        }
    };
    let mut store = shared.store();
    if t.rt.kind == "CustomResourceDefinition" && !t.status {
        register_crd(&mut store, &object);
    }
    match store.update(&k, object, t.status, t.rt.status_subresource) {
        Ok(o) => json_response(200, &o),
        Err((code, msg)) => status(code, reason_for(code), &msg),
    }
}

/// RFC 6902 JSON patch: applies every operation or fails.
fn json_patch(target: &mut Value, ops: &Value) -> Result<(), String> {
    let mut result = target.clone();
    for op in ops.as_array().into_iter().flatten() {
        let path = op["path"].as_str().ok_or("an operation has no path")?;
        match op["op"].as_str().unwrap_or_default() {
            "add" => pointer_insert(&mut result, path, op["value"].clone())?,
            "remove" => {
                pointer_remove(&mut result, path)?;
            }
            "replace" => {
                let slot = result
                    .pointer_mut(path)
                    .ok_or_else(|| format!("{path} does not exist"))?;
                *slot = op["value"].clone();
            }
            "test" => {
                if result.pointer(path) != Some(&op["value"]) {
                    return Err(format!("test of {path} failed"));
                }
            }
            "move" => {
                let from = op["from"].as_str().ok_or("move without from")?;
                let value = pointer_remove(&mut result, from)?;
                pointer_insert(&mut result, path, value)?;
            }
            "copy" => {
                let from = op["from"].as_str().ok_or("copy without from")?;
                let value = result
                    .pointer(from)
                    .cloned()
                    .ok_or_else(|| format!("{from} does not exist"))?;
                pointer_insert(&mut result, path, value)?;
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    *target = result;
    Ok(())
}

/// Splits a JSON pointer into its parent pointer and unescaped last token.
fn split_pointer(path: &str) -> Result<(&str, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    Ok((parent, last.replace("~1", "/").replace("~0", "~")))
}

fn pointer_insert(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    if path.is_empty() {
        *target = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match target.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.insert(last, value);
            Ok(())
        }
        Some(Value::Array(list)) => {
            let index = if last == "-" {
                list.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= list.len())
                    .ok_or_else(|| format!("{path}: bad array index"))?
            };
            list.insert(index, value);
            Ok(())
        }
        _ => Err(format!("{parent} does not exist")),
    }
}

fn pointer_remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split_pointer(path)?;
    let removed = match target.pointer_mut(parent) {
        Some(Value::Object(map)) => map.remove(&last),
        Some(Value::Array(list)) => last
            .parse::<usize>()
            .ok()
            .filter(|i| *i < list.len())
            .map(|i| list.remove(i)),
        _ => None,
    };
    removed.ok_or_else(|| format!("{path} does not exist"))
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("made an object above");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn watch_stream(
    shared: &Arc<Shared>,
    t: &Target,
    query: &HashMap<String, String>,
) -> Response<Body> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(256);
    let from: Option<u64> = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .filter(|v| *v > 0);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|v| v == "true");
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let filter = {
        let t_group = t.rt.group.clone();
        let t_plural = t.rt.plural.clone();
        let t_ns = t.namespace.clone();
        let query = query.clone();
        move |c: &Change| {
            c.key.group == t_group
                && c.key.plural == t_plural
                && (t_ns.is_empty() || c.key.namespace == t_ns)
                && matches_selectors(&c.object, &query)
        }
    };
    let event = |kind: &str, object: &Value| -> Result<Frame<Bytes>, Infallible> {
        let mut line =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Ok(Frame::data(Bytes::from(line)))
    };
    // Catch up from history (or from the current objects when no version
    // was given), then follow live changes, all under the lock so nothing
    // falls between the two.
    let (backlog, mut live, start_rv, gone) = {
        let store = shared.store();
        let live = store.changes.subscribe();
        match from {
            Some(rv) if rv < store.compacted => (Vec::new(), live, store.rv, true),
            Some(rv) => (
                store
                    .history
                    .iter()
                    .filter(|c| c.rv > rv && filter(c))
                    .map(|c| event(c.kind, &c.object))
                    .collect(),
                live,
                store.rv,
                false,
            ),
            None => (
                store
                    .objects
                    .iter()
                    .filter(|(k, o)| {
                        k.group == t.rt.group
                            && k.plural == t.rt.plural
                            && (t.namespace.is_empty() || k.namespace == t.namespace)
                            && matches_selectors(o, query)
                    })
                    .map(|(_, o)| event("ADDED", o))
                    .collect(),
                live,
                store.rv,
                false,
            ),
        }
    };
    let mut epoch = shared.watch_epoch.subscribe();
    let kind = t.rt.kind.clone();
    let api_version = t.rt.api_version();
    tokio::spawn(async move {
        if gone {
            let status = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "too old resource version", "reason": "Expired", "code": 410});
            let _ = tx.send(event("ERROR", &status)).await;
            return;
        }
        for e in backlog {
            if tx.send(e).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_rv = start_rv;
        loop {
            tokio::select! {
                () = &mut deadline => return,
                _ = epoch.changed() => return,
                _ = tick.tick(), if bookmarks => {
                    let mark = json!({"kind": kind, "apiVersion": api_version, "metadata": {"resourceVersion": last_rv.to_string()}});
                    if tx.send(event("BOOKMARK", &mark)).await.is_err() {
                        return;
                    }
                }
                change = live.recv() => match change {
                    Ok(c) if c.rv > start_rv && filter(&c) => {
                        last_rv = c.rv;
                        if tx.send(event(c.kind, &c.object)).await.is_err() {
                            return;
                        }
                    }
                    Ok(c) => last_rv = last_rv.max(c.rv),
                    Err(_) => return,
                },
            }
        }
    });
    let mut resp = Response::new(http_body_util::Either::Right(StreamBody::new(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch() {
        let mut v = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2]});
        merge(&mut v, &json!({"a": null, "b": {"c": 5}, "e": [3]}));
        assert_eq!(v, json!({"b": {"c": 5, "d": 3}, "e": [3]}));
    }

    #[test]
    fn json_patch_operations() {
        let mut v = json!({"spec": {"rules": [{"x": 1}], "a/b": 2}});
        json_patch(
            &mut v,
            &json!([
                {"op": "replace", "path": "/spec/rules/0/x", "value": 5},
                {"op": "add", "path": "/spec/rules/-", "value": {"x": 6}},
                {"op": "copy", "from": "/spec/rules/0", "path": "/spec/first"},
                {"op": "move", "from": "/spec/a~1b", "path": "/spec/moved"},
                {"op": "test", "path": "/spec/moved", "value": 2},
                {"op": "remove", "path": "/spec/rules/0"},
            ]),
        )
        .expect("the patch applies");
        assert_eq!(
            v,
            json!({"spec": {"rules": [{"x": 6}], "first": {"x": 5}, "moved": 2}})
        );

        // A failing operation leaves the object as it was.
        let before = v.clone();
        let failed = json_patch(
            &mut v,
            &json!([
                {"op": "remove", "path": "/spec/first"},
                {"op": "test", "path": "/spec/moved", "value": 3},
            ]),
        );
        assert!(failed.is_err());
        assert_eq!(v, before);
        assert!(
            json_patch(
                &mut v,
                &json!([{"op": "replace", "path": "/nope/x", "value": 1}])
            )
            .is_err()
        );
    }
}
