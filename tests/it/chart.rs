//! The Helm chart: linted, rendered with several values files, checked for
//! what a cluster operator relies on (security context, RBAC verbs,
//! probes, ports, drain timing), applied to the Kubernetes API simulator
//! with the real kubectl, and its arguments run by the real binary.
//!
//! helm comes from `$HELM`, else `.tools/bin/helm` (`make tools`), else
//! `PATH`.

#![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use testkit::GatewayProcess;
use testkit::kubesim::{KubeSim, Kubectl};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn helm() -> PathBuf {
    if let Some(h) = std::env::var_os("HELM") {
        return h.into();
    }
    let local = repo(".tools/bin/helm");
    if local.exists() { local } else { "helm".into() }
}

/// `helm template` of the chart in namespace `gatehouse` with the values
/// files (relative to the chart) and `--set`s given.
fn render(values: &[&str], sets: &[&str]) -> Result<String, String> {
    let chart = repo("charts/gatehouse");
    let mut cmd = Command::new(helm());
    cmd.args(["template", "gh"])
        .arg(&chart)
        .args(["--namespace", "gatehouse"]);
    for v in values {
        cmd.arg("-f").arg(chart.join(v));
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}; run `make tools`"));
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The objects of a multi-document YAML stream.
fn objects(yaml: &str) -> Vec<Value> {
    let mut docs = Vec::new();
    let mut current = String::new();
    for line in yaml.lines().chain(std::iter::once("---")) {
        if line == "---" {
            let v: Value = serde_saphyr::from_str(&current)
                .unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{current}"));
            if !v.is_null() {
                docs.push(v);
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    docs
}

fn rendered(values: &[&str]) -> Vec<Value> {
    objects(&render(values, &[]).unwrap_or_else(|e| panic!("helm template failed: {e}")))
}

fn kinds(objs: &[Value]) -> BTreeSet<String> {
    objs.iter()
        .map(|o| o["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn one<'a>(objs: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = objs.iter().filter(|o| o["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} expected");
    found[0]
}

fn workload(objs: &[Value]) -> &Value {
    objs.iter()
        .find(|o| o["kind"] == "Deployment" || o["kind"] == "DaemonSet")
        .expect("a Deployment or DaemonSet")
}

fn container(objs: &[Value]) -> &Value {
    &workload(objs)["spec"]["template"]["spec"]["containers"][0]
}

fn args(objs: &[Value]) -> Vec<String> {
    container(objs)["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn flag(args: &[String], name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix).map(str::to_owned))
}

fn seconds(text: &str) -> u64 {
    text.strip_suffix('s').unwrap().parse().unwrap()
}

/// Every (API group, resource, verb) the ClusterRole and Roles grant,
/// with the namespace they hold in (`*` for cluster-wide).
fn grants(objs: &[Value]) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for o in objs
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        let ns = o["metadata"]["namespace"].as_str().unwrap_or("*");
        for rule in o["rules"].as_array().unwrap() {
            for g in rule["apiGroups"].as_array().unwrap() {
                for r in rule["resources"].as_array().unwrap() {
                    for v in rule["verbs"].as_array().unwrap() {
                        let t = |x: &Value| x.as_str().unwrap().to_owned();
                        out.insert((ns.to_owned(), t(g), t(r), t(v)));
                    }
                }
            }
        }
    }
    out
}

fn expand(
    ns: &str,
    table: &[(&str, &[&str], &[&str])],
) -> BTreeSet<(String, String, String, String)> {
    let mut out = BTreeSet::new();
    for (group, resources, verbs) in table {
        for r in *resources {
            for v in *verbs {
                out.insert((
                    ns.to_owned(),
                    (*group).to_owned(),
                    (*r).to_owned(),
                    (*v).to_owned(),
                ));
            }
        }
    }
    out
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE_STATUS: &[&str] = &["patch", "update"];

/// The namespaced rules of docs/kubernetes.md's RBAC table.
fn namespaced(ns: &str) -> BTreeSet<(String, String, String, String)> {
    expand(
        ns,
        &[
            ("networking.k8s.io", &["ingresses"], READ),
            ("networking.k8s.io", &["ingresses/status"], WRITE_STATUS),
            ("", &["services", "secrets"], READ),
            ("discovery.k8s.io", &["endpointslices"], READ),
            ("gatehouse.dev", &["apiroutes", "ratelimitpolicies"], READ),
            (
                "gatehouse.dev",
                &["apiroutes/status", "ratelimitpolicies/status"],
                WRITE_STATUS,
            ),
            ("events.k8s.io", &["events"], &["create", "patch"]),
        ],
    )
}

fn leader(ns: &str) -> BTreeSet<(String, String, String, String)> {
    expand(
        ns,
        &[
            (
                "coordination.k8s.io",
                &["leases"],
                &["get", "list", "watch", "create", "update"],
            ),
            ("", &["services"], READ),
        ],
    )
}

/// The pod runs as a non-root user, with a read-only root filesystem, no
/// privilege escalation, no capabilities and the runtime's seccomp
/// profile: the Kubernetes `restricted` pod security standard.
fn assert_hardened(objs: &[Value]) {
    let pod = &workload(objs)["spec"]["template"]["spec"];
    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], true);
    assert!(psc["runAsUser"].as_u64().unwrap() > 0);
    assert_eq!(psc["seccompProfile"]["type"], "RuntimeDefault");
    for c in pod["containers"].as_array().unwrap() {
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"], true, "{c}");
        assert_eq!(sc["allowPrivilegeEscalation"], false, "{c}");
        assert_eq!(sc["privileged"], false, "{c}");
        assert_eq!(
            sc["capabilities"]["drop"],
            serde_json::json!(["ALL"]),
            "{c}"
        );
        assert!(sc["capabilities"]["add"].is_null(), "{c}");
        // No capabilities: every port is unprivileged.
        for p in c["ports"].as_array().unwrap() {
            assert!(p["containerPort"].as_u64().unwrap() >= 1024, "{p}");
        }
    }
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null());
}

/// Probes, ports and listener flags agree with each other.
fn assert_ports_and_probes(objs: &[Value]) {
    let c = container(objs);
    let args = args(objs);
    let port = |name: &str| -> u64 {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    for (name, flag_name) in [
        ("http", "--http-addr"),
        ("https", "--https-addr"),
        ("admin", "--admin-addr"),
    ] {
        assert_eq!(
            flag(&args, flag_name),
            Some(format!("0.0.0.0:{}", port(name))),
            "{flag_name}"
        );
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    // Long enough to finish the shutdown delay and the drain.
    let pod = &workload(objs)["spec"]["template"]["spec"];
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
    let delay = seconds(&flag(&args, "--shutdown-delay").unwrap());
    let drain = seconds(&flag(&args, "--drain-timeout").unwrap());
    assert!(delay > 0, "a shutdown delay is set");
    assert!(grace > delay + drain, "{grace} <= {delay} + {drain}");
}

#[test]
fn lint_strict_with_every_values_file() {
    for values in [
        None,
        Some("ci/namespaced-values.yaml"),
        Some("ci/full-values.yaml"),
    ] {
        let mut cmd = Command::new(helm());
        cmd.args(["lint", "--strict"]).arg(repo("charts/gatehouse"));
        if let Some(v) = values {
            cmd.arg("-f").arg(repo("charts/gatehouse").join(v));
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "helm lint {values:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn defaults() {
    let objs = rendered(&[]);
    let want: BTreeSet<String> = [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "IngressClass",
        "PodDisruptionBudget",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(kinds(&objs), want);
    assert_hardened(&objs);
    assert_ports_and_probes(&objs);

    let deploy = one(&objs, "Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let args = args(&objs);
    assert_eq!(args[0], "run");
    assert_eq!(flag(&args, "--ingress-class").as_deref(), Some("gatehouse"));
    assert!(
        !args.iter().any(|a| a == "--nginx-compat"),
        "the ingress-nginx layer is off by default"
    );
    assert_eq!(
        flag(&args, "--publish-service").as_deref(),
        Some("gatehouse/gh-gatehouse")
    );
    let env = container(&objs)["env"].as_array().unwrap();
    for name in ["POD_NAME", "POD_NAMESPACE"] {
        assert!(env.iter().any(|e| e["name"] == name), "{name}");
    }

    // The Service maps 80 and 443 onto the named container ports.
    let svc = one(&objs, "Service");
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    let ports = svc["spec"]["ports"].as_array().unwrap();
    assert_eq!(ports.len(), 2, "only traffic ports are exposed");
    for (port, target) in [(80, "http"), (443, "https")] {
        assert!(
            ports
                .iter()
                .any(|p| p["port"] == port && p["targetPort"] == target),
            "{port} -> {target}"
        );
    }
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );

    let class = one(&objs, "IngressClass");
    assert_eq!(class["metadata"]["name"], "gatehouse");
    assert_eq!(
        class["spec"]["controller"],
        "gatehouse.dev/ingress-controller"
    );
    assert!(class["metadata"]["annotations"].is_null());

    // Exactly the documented verbs: cluster-wide reads, status writes,
    // events; the Lease in the release namespace. Nothing else, no
    // wildcards, and no Secret writes without ACME.
    let mut want = expand("*", &[("networking.k8s.io", &["ingressclasses"], READ)]);
    want.extend(namespaced("*"));
    want.extend(leader("gatehouse"));
    assert_eq!(grants(&objs), want);

    let pdb = one(&objs, "PodDisruptionBudget");
    assert_eq!(pdb["spec"]["selector"], deploy["spec"]["selector"]);
}

#[test]
fn watched_namespaces_get_roles_and_a_daemonset() {
    let objs = rendered(&["ci/namespaced-values.yaml"]);
    assert_hardened(&objs);
    assert_ports_and_probes(&objs);
    let ds = one(&objs, "DaemonSet");
    assert!(ds["spec"]["replicas"].is_null());
    assert!(!kinds(&objs).contains("Deployment"));
    assert!(!kinds(&objs).contains("PodDisruptionBudget"));
    assert_eq!(
        flag(&args(&objs), "--watch-namespace").as_deref(),
        Some("shop,payments")
    );
    // Cluster-wide: IngressClasses only. Everything else per namespace.
    let mut want = expand("*", &[("networking.k8s.io", &["ingressclasses"], READ)]);
    want.extend(namespaced("shop"));
    want.extend(namespaced("payments"));
    want.extend(leader("gatehouse"));
    assert_eq!(grants(&objs), want);
    let bindings: BTreeSet<_> = objs
        .iter()
        .filter(|o| o["kind"] == "RoleBinding")
        .map(|o| o["metadata"]["namespace"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        bindings,
        ["gatehouse", "payments", "shop"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect()
    );

    let svc = one(&objs, "Service");
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["externalTrafficPolicy"], "Local");
    let node_ports: Vec<_> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["nodePort"].as_u64().unwrap())
        .collect();
    assert_eq!(node_ports, [30080, 30443]);
    let class = one(&objs, "IngressClass");
    assert_eq!(
        class["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"],
        "true"
    );
}

#[test]
fn everything_optional() {
    let objs = rendered(&["ci/full-values.yaml"]);
    assert_hardened(&objs);
    assert_ports_and_probes(&objs);
    let args = args(&objs);
    assert!(
        args.iter().any(|a| a == "--nginx-compat"),
        "controller.nginxCompat turns the ingress-nginx layer on: {args:?}"
    );
    assert!(
        args.iter().any(|a| a == "--scheduler=work-stealing"),
        "controller.scheduler is passed on: {args:?}"
    );

    // Scaled by the autoscaler, not by a replica count.
    let deploy = one(&objs, "Deployment");
    assert!(deploy["spec"]["replicas"].is_null());
    let hpa = one(&objs, "HorizontalPodAutoscaler");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deploy["metadata"]["name"]
    );
    assert_eq!(hpa["spec"]["metrics"].as_array().unwrap().len(), 2);

    // The ServiceMonitor scrapes the admin port through a Service of its
    // own, which selects the gateway's pods.
    let sm = one(&objs, "ServiceMonitor");
    assert_eq!(sm["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(sm["spec"]["endpoints"][0]["port"], "admin");
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    let metrics_svc = objs
        .iter()
        .find(|o| o["kind"] == "Service" && o["spec"]["type"] == "ClusterIP")
        .expect("the metrics Service");
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&metrics_svc["metadata"]["labels"][k], v, "{k}");
    }
    assert_eq!(metrics_svc["spec"]["ports"][0]["name"], "admin");
    assert_eq!(metrics_svc["spec"]["ports"][0]["targetPort"], "admin");
    for (k, v) in metrics_svc["spec"]["selector"].as_object().unwrap() {
        assert_eq!(
            &deploy["spec"]["template"]["metadata"]["labels"][k], v,
            "{k}"
        );
    }

    // The dashboard ConfigMap carries the sidecar label and valid JSON.
    let cm = one(&objs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let dashboard: Value =
        serde_json::from_str(cm["data"]["gatehouse.json"].as_str().unwrap()).unwrap();
    assert!(!dashboard["panels"].as_array().unwrap().is_empty());

    // ACME adds Secret writes, nowhere else.
    let g = grants(&objs);
    for verb in ["create", "update"] {
        assert!(g.contains(&("*".into(), String::new(), "secrets".into(), verb.into())));
    }
    assert_eq!(
        flag(&args, "--acme-email").as_deref(),
        Some("ops@example.com")
    );

    // The Redis URL comes from a Secret, never from the arguments.
    assert!(!args.iter().any(|a| a.contains("redis://")));
    let env = container(&objs)["env"].as_array().unwrap();
    let redis = env
        .iter()
        .find(|e| e["name"] == "GATEHOUSE_REDIS_URL")
        .unwrap();
    assert_eq!(
        redis["valueFrom"]["secretKeyRef"]["name"],
        "gatehouse-redis"
    );

    // The default certificate is mounted read-only from its Secret.
    let mounts = container(&objs)["volumeMounts"].as_array().unwrap();
    let tls = mounts.iter().find(|m| m["name"] == "default-tls").unwrap();
    assert_eq!(tls["readOnly"], true);
    assert_eq!(
        flag(&args, "--default-certificate").as_deref(),
        Some(format!("{}/tls.crt", tls["mountPath"].as_str().unwrap()).as_str())
    );

    let pod = &deploy["spec"]["template"]["spec"];
    let tsc = &pod["topologySpreadConstraints"][0];
    assert_eq!(
        tsc["labelSelector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(pod["tolerations"][0]["key"], "dedicated");

    let np = one(&objs, "NetworkPolicy");
    let rules = np["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert!(rules[0]["from"].is_null(), "traffic ports are open to all");
    assert_eq!(rules[1]["ports"][0]["port"], "admin");
    assert!(!rules[1]["from"].as_array().unwrap().is_empty());
    let traffic = objs
        .iter()
        .find(|o| o["kind"] == "Service" && o["spec"]["type"] == "LoadBalancer")
        .unwrap();
    assert_eq!(
        traffic["spec"]["loadBalancerSourceRanges"][0],
        "203.0.113.0/24"
    );
    assert_eq!(
        traffic["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"],
        "nlb"
    );
}

#[test]
fn bad_values_fail_at_render_time_with_a_reason() {
    let cases = [
        ("controller.kind=Pod", "controller/kind"),
        ("service.type=External", "service/type"),
        ("controller.containerPorts.http=80", "containerPorts/http"),
        ("controler.replicaCount=3", "controler"),
        ("controller.accessLog.sample=2", "sample"),
        ("controller.drainTimeout=1m", "drainTimeout"),
        (
            "controller.terminationGracePeriodSeconds=20",
            "must exceed shutdownDelay + drainTimeout",
        ),
        ("rateLimit.redis.url=localhost:6379", "redis/url"),
    ];
    for (set, reason) in cases {
        let err = render(&[], &[set]).expect_err(set);
        assert!(err.contains(reason), "--set {set}: {err}");
    }
}

/// The rendered objects are well-formed: kubectl applies every one of them
/// to the API simulator. Then the binary runs with the Deployment's own
/// arguments (listener addresses aside) against the simulator and becomes
/// ready, so every flag the chart passes exists and parses.
#[tokio::test(flavor = "multi_thread")]
async fn rendered_objects_apply_and_their_arguments_run() {
    let sim = KubeSim::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubectl = Kubectl::new(&sim, dir.path());
    let crds = repo("charts/gatehouse/crds").display().to_string();
    kubectl
        .ok(&["apply", "--validate=false", "-f", &crds])
        .await;
    // The Prometheus Operator's CRD, as far as the ServiceMonitor needs.
    kubectl
        .apply(
            "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: servicemonitors.monitoring.coreos.com}
spec:
  group: monitoring.coreos.com
  scope: Namespaced
  names: {kind: ServiceMonitor, plural: servicemonitors, singular: servicemonitor, listKind: ServiceMonitorList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
",
        )
        .await;
    kubectl
        .apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: gatehouse}\n")
        .await;
    for values in [&[][..], &["ci/full-values.yaml"][..]] {
        let yaml = render(values, &[]).unwrap();
        let out = kubectl.apply(&yaml).await;
        for kind in kinds(&objects(&yaml)) {
            assert!(
                out.to_lowercase().contains(&kind.to_lowercase()),
                "{kind} not applied:\n{out}"
            );
        }
    }
    let deployed = kubectl
        .ok(&["-n", "gatehouse", "get", "deployment,service,serviceaccount,role,rolebinding,poddisruptionbudget,horizontalpodautoscaler,servicemonitor,networkpolicy,configmap", "-o", "name"])
        .await;
    for name in [
        "deployment.apps/gh-gatehouse",
        "service/gh-gatehouse",
        "service/gh-gatehouse-metrics",
        "horizontalpodautoscaler.autoscaling/gh-gatehouse",
        "servicemonitor.monitoring.coreos.com/gh-gatehouse",
        "networkpolicy.networking.k8s.io/gh-gatehouse",
        "configmap/gh-gatehouse-dashboard",
    ] {
        assert!(deployed.contains(name), "{name} missing:\n{deployed}");
    }

    let objs = rendered(&[]);
    let mut run: Vec<String> = args(&objs)
        .into_iter()
        .filter(|a| {
            !a.starts_with("--http-addr")
                && !a.starts_with("--https-addr")
                && !a.starts_with("--admin-addr")
        })
        .collect();
    run.push("--kubeconfig".into());
    run.push(kubectl.kubeconfig().display().to_string());
    let gw = GatewayProcess::start(&run, Duration::from_secs(30)).await;
    // The chart's IngressClass is the one the controller serves.
    let class = kubectl
        .ok(&["get", "ingressclass", "gatehouse", "-o", "json"])
        .await;
    let class: Value = serde_json::from_str(&class).unwrap();
    assert_eq!(
        Some(class["spec"]["controller"].as_str().unwrap()),
        flag(&run, "--controller-name").as_deref()
    );
    drop(gw);
}

/// `deploy/gatehouse.yaml` is the chart rendered with its defaults; it
/// must not drift from the chart (`make manifests` rewrites it).
#[test]
fn static_manifests_are_current() {
    let out = Command::new(repo("hack/render-manifests.sh"))
        .env("HELM", helm())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = String::from_utf8(out.stdout).unwrap();
    let have = std::fs::read_to_string(repo("deploy/gatehouse.yaml")).unwrap_or_default();
    assert!(
        have == want,
        "deploy/gatehouse.yaml is stale: run `make manifests`"
    );
    // And it is what the Namespace and the chart's defaults say.
    let objs = objects(&have);
    assert_eq!(objs[0]["kind"], "Namespace");
    assert!(objs[1..].iter().all(|o| o["kind"] == "ClusterRole"
        || o["kind"] == "ClusterRoleBinding"
        || o["kind"] == "IngressClass"
        || o["metadata"]["namespace"] == "gatehouse"));
}

/// NOTES.txt renders for each Service type and its first ApiRoute is one
/// Gatehouse accepts.
#[test]
fn notes_render_and_their_route_is_valid() {
    for (service_type, hint) in [
        ("LoadBalancer", "status.loadBalancer.ingress"),
        ("NodePort", "nodePort"),
        ("ClusterIP", "port-forward service/gh-gatehouse"),
    ] {
        let out = Command::new(helm())
            .args(["install", "gh"])
            .arg(repo("charts/gatehouse"))
            .args(["--namespace", "gatehouse", "--dry-run=client"])
            .args(["--set", &format!("service.type={service_type}")])
            .env("KUBECONFIG", "/dev/null")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let notes = &text[text.find("NOTES:").expect("NOTES rendered")..];
        assert!(notes.contains(hint), "{service_type}: {notes}");

        // The ApiRoute as printed, plus the Service it names.
        let route: String = notes
            .lines()
            .skip_while(|l| !l.trim_start().starts_with("apiVersion: gatehouse.dev"))
            .take_while(|l| !l.trim().is_empty())
            .map(|l| format!("{}\n", l.strip_prefix("   ").unwrap_or(l)))
            .collect();
        assert!(route.contains("kind: ApiRoute"), "{notes}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("route.yaml"),
            format!(
                "{route}---\napiVersion: v1\nkind: Service\nmetadata: {{name: my-service}}\nspec: {{ports: [{{port: 80}}]}}\n"
            ),
        )
        .unwrap();
        let (status, out) =
            testkit::run_gatehouse(&["validate", "-f", dir.path().to_str().unwrap()]);
        assert!(status.success(), "{out}");
        assert!(
            out.contains("1 routes") && out.contains("0 error(s), 0 warning(s)"),
            "{out}"
        );
    }
}
