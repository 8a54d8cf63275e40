//! Server-side printing: what `kubectl get` shows, as a `meta.k8s.io/v1`
//! Table with the CRD's printer columns.

use serde_json::{Value, json};

use super::store::ResourceType;

/// Renders `objects` as a Table.
pub(crate) fn table(rt: &ResourceType, objects: &[Value], resource_version: u64) -> Value {
    let mut columns = vec![
        json!({"name": "Name", "type": "string", "format": "name", "description": "Name", "priority": 0}),
    ];
    let mut paths = Vec::new();
    let custom_age = rt.columns.iter().any(|c| c["name"] == "Age");
    for c in &rt.columns {
        columns.push(json!({
            "name": c["name"],
            "type": c["type"],
            "format": c.get("format").cloned().unwrap_or(Value::String(String::new())),
            "description": c.get("description").cloned().unwrap_or(Value::String(String::new())),
            "priority": c.get("priority").cloned().unwrap_or(json!(0)),
        }));
        paths.push((
            c["jsonPath"].as_str().unwrap_or_default().to_owned(),
            c["type"].as_str().unwrap_or("string").to_owned(),
        ));
    }
    if !custom_age {
        columns.push(json!({"name": "Age", "type": "date", "format": "", "description": "Age", "priority": 0}));
        paths.push((".metadata.creationTimestamp".to_owned(), "date".to_owned()));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let mut cells = vec![o.pointer("/metadata/name").cloned().unwrap_or_default()];
            for (path, ty) in &paths {
                let found = jsonpath(o, path);
                let cell = match (ty.as_str(), found.as_slice()) {
                    (_, []) => Value::Null,
                    ("date", [Value::String(ts), ..]) => Value::String(age(ts)),
                    (_, [single]) => match single {
                        Value::String(_) | Value::Number(_) | Value::Bool(_) => single.clone(),
                        other => Value::String(other.to_string()),
                    },
                    (_, many) => Value::String(
                        many.iter()
                            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                            .collect::<Vec<_>>()
                            .join(","),
                    ),
                };
                cells.push(cell);
            }
            json!({
                "cells": cells,
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or_default(),
                },
            })
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// A human age like kubectl prints (`42s`, `5m`, `3h`, `2d`).
fn age(timestamp: &str) -> String {
    let Ok(then) = timestamp.parse::<jiff::Timestamp>() else {
        return "<unknown>".into();
    };
    let secs = (jiff::Timestamp::now().as_second() - then.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

/// A small JSONPath subset: `.a.b`, `.a[0]`, `.a[*]` and
/// `.a[?(@.key=="value")].b`.
pub(crate) fn jsonpath(root: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![root.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.');
    while !rest.is_empty() {
        let (step, next) = split_step(rest);
        rest = next;
        let mut out = Vec::new();
        for v in current {
            if let Some(inner) = step.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                let items = v.as_array().cloned().unwrap_or_default();
                if inner == "*" {
                    out.extend(items);
                } else if let Some(filter) =
                    inner.strip_prefix("?(@.").and_then(|f| f.strip_suffix(')'))
                {
                    let (key, want) = filter.split_once("==").unwrap_or((filter, ""));
                    let want = want.trim().trim_matches('"').trim_matches('\'');
                    out.extend(
                        items
                            .into_iter()
                            .filter(|i| i.get(key.trim()).and_then(Value::as_str) == Some(want)),
                    );
                } else if let Ok(i) = inner.parse::<usize>()
                    && let Some(item) = items.get(i)
                {
                    out.push(item.clone());
                }
            } else if let Some(child) = v.get(step) {
                out.push(child.clone());
            }
        }
        current = out;
    }
    current
}

/// The next step of a path: a field name or a bracket expression.
fn split_step(path: &str) -> (&str, &str) {
    let path = path.trim_start_matches('.');
    if path.starts_with('[') {
        let end = path.find(']').map_or(path.len(), |i| i + 1);
        return (&path[..end], &path[end..]);
    }
    let end = path.find(['.', '[']).unwrap_or(path.len());
    (&path[..end], &path[end..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonpath_subset() {
        let o = json!({"spec": {"hostnames": ["a", "b"]}, "status": {"conditions": [
            {"type": "Accepted", "status": "True"}, {"type": "Programmed", "status": "False"}]}});
        assert_eq!(jsonpath(&o, ".spec.hostnames"), vec![json!(["a", "b"])]);
        assert_eq!(jsonpath(&o, ".spec.hostnames[1]"), vec![json!("b")]);
        assert_eq!(
            jsonpath(&o, r#".status.conditions[?(@.type=="Accepted")].status"#),
            vec![json!("True")]
        );
        assert_eq!(jsonpath(&o, ".status.conditions[*].type").len(), 2);
        assert!(jsonpath(&o, ".missing.field").is_empty());
    }
}
