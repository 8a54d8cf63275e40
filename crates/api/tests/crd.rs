//! The generated CRDs: structural, CEL rules that compile and reject what
//! they should, and checked-in YAML that matches the code.

use std::path::PathBuf;

use serde_json::{Value, json};

fn schema_of(kind: &str) -> Value {
    let crd = api::crd::all()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .expect("kind is defined");
    let version = &crd.spec.versions[0];
    let schema = version
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("schema present");
    serde_json::to_value(schema).expect("schema serializes")
}

/// Checks the rules the API server applies to CRD schemas
/// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema).
fn structural_errors(node: &Value, path: &str, errors: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        errors.push(format!("{path}: schema node is not an object"));
        return;
    };
    for junctor in [
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "$ref",
        "definitions",
        "$defs",
    ] {
        if obj.contains_key(junctor) {
            errors.push(format!("{path}: uses {junctor}"));
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    match obj.get("type").and_then(Value::as_str) {
        Some("object" | "array" | "string" | "integer" | "number" | "boolean") => {}
        Some(other) => errors.push(format!("{path}: unknown type {other}")),
        None if preserve || int_or_string => {}
        None => errors.push(format!("{path}: missing type")),
    }
    if let Some(Value::Array(types)) = obj.get("type") {
        errors.push(format!("{path}: type is a list {types:?}"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errors.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (name, child) in props {
            if path.is_empty() && name == "metadata" {
                let keys: Vec<_> = child
                    .as_object()
                    .map(|o| o.keys().collect())
                    .unwrap_or_default();
                if keys.iter().any(|k| *k != "type") {
                    errors.push("metadata: only `type: object` is allowed".into());
                }
                continue;
            }
            structural_errors(child, &format!("{path}.{name}"), errors);
        }
    }
    if let Some(items) = obj.get("items") {
        structural_errors(items, &format!("{path}[]"), errors);
    }
    if let Some(add @ Value::Object(_)) = obj.get("additionalProperties") {
        structural_errors(add, &format!("{path}{{}}"), errors);
    }
}

#[test]
fn schemas_are_structural() {
    for kind in ["ApiRoute", "RateLimitPolicy"] {
        let mut errors = Vec::new();
        structural_errors(&schema_of(kind), "", &mut errors);
        assert!(
            errors.is_empty(),
            "{kind} schema is not structural: {errors:#?}"
        );
    }
}

#[test]
fn crds_have_status_subresource_short_names_and_columns() {
    for crd in api::crd::all() {
        let v = &crd.spec.versions[0];
        assert!(v.served && v.storage);
        assert!(
            v.subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{} needs a status subresource",
            crd.spec.names.kind
        );
        let columns: Vec<_> = v
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|c| c.name.as_str())
            .collect();
        assert!(columns.contains(&"Accepted") && columns.contains(&"Age"));
        assert_eq!(
            crd.spec.names.categories,
            Some(vec!["gatehouse".to_owned()])
        );
    }
    let route = api::crd::all().remove(0);
    assert_eq!(route.spec.names.short_names, Some(vec!["ar".to_owned()]));
    let policy = api::crd::all().remove(1);
    assert_eq!(policy.spec.names.short_names, Some(vec!["rlp".to_owned()]));
}

/// Every schema node that carries CEL rules, with its rules.
fn nodes_with_rules<'a>(node: &'a Value, out: &mut Vec<(&'a Value, Vec<String>)>) {
    match node {
        Value::Object(map) => {
            if let Some(Value::Array(rules)) = map.get("x-kubernetes-validations") {
                let rules = rules
                    .iter()
                    .map(|r| r["rule"].as_str().unwrap_or_default().to_owned())
                    .collect();
                out.push((node, rules));
            }
            map.values().for_each(|v| nodes_with_rules(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| nodes_with_rules(v, out)),
        _ => {}
    }
}

#[test]
fn cel_rules_compile_and_fit_the_cost_budget() {
    for kind in ["ApiRoute", "RateLimitPolicy"] {
        let schema = schema_of(kind);
        let compiled = kube_cel::compile_schema(&schema);
        assert!(
            !compiled.has_errors(),
            "{kind}: {:?}",
            compiled.compilation_errors()
        );
        let mut nodes = Vec::new();
        nodes_with_rules(&schema, &mut nodes);
        assert!(!nodes.is_empty(), "{kind} has CEL rules");
        for (node, rules) in nodes {
            // Costs depend on the bounds (maxItems, maxLength) of the node
            // the rule sits on, as the API server estimates them.
            let compiled = kube_cel::compile_schema(node);
            for rule in &rules {
                let warnings = kube_cel::estimate_rule_cost(rule, &compiled);
                assert!(warnings.is_empty(), "{kind}: rule {rule:?}: {warnings:?}");
            }
        }
    }
}

fn validate(kind: &str, object: &Value) -> Result<(), String> {
    kube_cel::Validator::new()
        .validate(&schema_of(kind), object, None)
        .map_err(|e| e.to_string())
}

fn route(spec: &Value) -> Value {
    json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "ApiRoute",
        "metadata": {"name": "r", "namespace": "default"},
        "spec": spec,
    })
}

#[test]
fn cel_accepts_a_complete_route() {
    let ok = route(&json!({
        "hostnames": ["api.example.com", "*.example.org"],
        "rules": [
            {
                "name": "v1",
                "matches": [{
                    "path": {"type": "PathPrefix", "value": "/v1"},
                    "method": "GET",
                    "headers": [{"name": "x-version", "value": "2"}, {"type": "Present", "name": "x-tenant"}],
                    "queryParams": [{"type": "Present", "name": "debug"}]
                }],
                "filters": [
                    {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": [{"name": "x-a", "value": "1"}]}},
                    {"type": "URLRewrite", "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}
                ],
                "backends": [{"name": "orders", "port": 8000, "weight": 90}, {"name": "orders-v2", "port": 8000, "weight": 10}]
            },
            {
                "name": "old",
                "matches": [{"path": {"type": "Exact", "value": "/old"}}],
                "filters": [{"type": "RequestRedirect", "requestRedirect": {"scheme": "https", "statusCode": 301}}]
            },
            {"matches": [{"path": {"type": "RegularExpression", "value": "^/x/[0-9]+$"}}], "backends": [{"name": "x", "port": 80}]}
        ]
    }));
    validate("ApiRoute", &ok).expect("valid route is accepted");
}

#[test]
fn cel_rejects_broken_routes_with_a_message() {
    let cases = [
        (
            json!({"rules": [{"name": "a", "backends": [{"name": "s", "port": 80}]}, {"name": "a", "backends": [{"name": "s", "port": 80}]}]}),
            "rule names must be unique",
        ),
        (
            json!({"rules": [{"matches": [{"path": {"type": "Exact", "value": "nope"}}], "backends": [{"name": "s", "port": 80}]}]}),
            "must start with '/'",
        ),
        (
            json!({"rules": [{"matches": [{"path": {"value": "relative"}}], "backends": [{"name": "s", "port": 80}]}]}),
            "must start with '/'",
        ),
        (
            json!({"rules": [{"matches": [{"headers": [{"name": "x-a"}]}], "backends": [{"name": "s", "port": 80}]}]}),
            "value is required unless type is Present",
        ),
        (
            json!({"rules": [{"filters": [{"type": "RequestRedirect"}]}]}),
            "requestRedirect must be set",
        ),
        (
            json!({"rules": [{"filters": [{"type": "RequestHeaderModifier", "requestHeaderModifier": {}, "urlRewrite": {}}]}]}),
            "urlRewrite must be set exactly when",
        ),
        (
            json!({"rules": [{"filters": [{"type": "RequestRedirect", "requestRedirect": {"statusCode": 304}}]}]}),
            "statusCode must be one of",
        ),
        (
            json!({"rules": [{"filters": [{"type": "DirectResponse", "directResponse": {"statusCode": 200}}], "backends": [{"name": "s", "port": 80}]}]}),
            "must not list backends",
        ),
    ];
    for (spec, expected) in cases {
        let err =
            validate("ApiRoute", &route(&spec)).expect_err(&format!("{spec} should be rejected"));
        assert!(err.contains(expected), "{spec}: got {err}");
    }
}

#[test]
fn cel_checks_rate_limit_keys() {
    let policy = |key: Value, target: Value| {
        json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "RateLimitPolicy",
            "metadata": {"name": "p", "namespace": "default"},
            "spec": {
                "targetRefs": [target],
                "limits": [{"name": "l", "key": key, "rate": {"requests": 10, "per": "1s"}}]
            }
        })
    };
    let route = json!({"kind": "ApiRoute", "name": "r", "rule": "v1"});
    validate(
        "RateLimitPolicy",
        &policy(
            json!({"type": "Header", "name": "x-api-key"}),
            route.clone(),
        ),
    )
    .expect("header key with a name is valid");
    validate(
        "RateLimitPolicy",
        &policy(json!({"type": "ClientIP"}), route.clone()),
    )
    .expect("client ip key is valid");
    let err = validate("RateLimitPolicy", &policy(json!({"type": "Header"}), route))
        .expect_err("header key without a name");
    assert!(err.contains("name is required"), "{err}");
    let err = validate(
        "RateLimitPolicy",
        &policy(
            json!({"type": "Route"}),
            json!({"kind": "Ingress", "name": "i", "rule": "x"}),
        ),
    )
    .expect_err("rule on an Ingress target");
    assert!(err.contains("rule can only be set"), "{err}");
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn checked_in_crds_are_current() {
    for dir in ["charts/gatehouse/crds", "deploy/crds"] {
        for (name, text) in api::crd::rendered().expect("CRDs render") {
            let path = repo_root().join(dir).join(&name);
            let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                on_disk == text,
                "{} is stale or missing: run `make crds` and commit the result",
                path.display()
            );
        }
    }
}

#[test]
fn the_configuration_reference_is_current() {
    let path = repo_root().join("docs/reference.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == api::reference::markdown(),
        "{} is stale or missing: run `make crds` and commit the result",
        path.display()
    );
}
