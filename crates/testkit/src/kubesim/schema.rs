//! Validation of custom resources against their CRD schema, as the API
//! server does it on create and update: structural checks (types, enums,
//! patterns, bounds, required fields), defaults, then CEL rules.

use serde_json::Value;

/// Applies schema defaults, then checks the object. Returns the defaulted
/// object or every violation found.
pub(crate) fn validate(schema: &Value, object: &Value) -> Result<Value, Vec<String>> {
    let mut pruned = object.clone();
    prune(schema, &mut pruned, true);
    let defaulted = kube_cel::apply_defaults(schema, &pruned);
    let mut errors = Vec::new();
    check(schema, &defaulted, "", &mut errors);
    if errors.is_empty()
        && let Err(cel) = kube_cel::Validator::new().validate(schema, &defaulted, None)
    {
        errors.extend(cel.into_vec().into_iter().map(|e| {
            if e.field_path.is_empty() {
                e.message
            } else {
                format!("{}: Invalid value: {}", e.field_path, e.message)
            }
        }));
    }
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let field = if path.is_empty() { "<root>" } else { path };
    if value.is_null() && schema.get("nullable") == Some(&Value::Bool(true)) {
        return;
    }
    let ty = schema.get("type").and_then(Value::as_str);
    let type_ok = match (ty, value) {
        (Some("object"), Value::Object(_))
        | (Some("array"), Value::Array(_))
        | (Some("string"), Value::String(_))
        | (Some("boolean"), Value::Bool(_))
        | (Some("number"), Value::Number(_))
        | (None, _) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    };
    if !type_ok {
        errors.push(format!(
            "{field}: Invalid value: \"{}\": {field} in body must be of type {}",
            short(value),
            ty.unwrap_or("?")
        ));
        return;
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        let list: Vec<String> = allowed
            .iter()
            .map(|v| format!("\"{}\"", short(v)))
            .collect();
        errors.push(format!(
            "{field}: Unsupported value: \"{}\": supported values: {}",
            short(value),
            list.join(", ")
        ));
    }
    match value {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                errors.push(format!(
                    "{field}: Too long: may not be more than {max} bytes"
                ));
            }
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                errors.push(format!("{field}: Invalid value: \"{s}\": {field} in body should be at least {min} chars long"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
                && let Ok(re) = regex::Regex::new(pattern)
                && !re.is_match(s)
            {
                errors.push(format!(
                    "{field}: Invalid value: \"{s}\": {field} in body should match '{pattern}'"
                ));
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && x > max
            {
                errors.push(format!("{field}: Invalid value: {n}: {field} in body should be less than or equal to {max}"));
            }
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && x < min
            {
                errors.push(format!("{field}: Invalid value: {n}: {field} in body should be greater than or equal to {min}"));
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                errors.push(format!(
                    "{field}: Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!(
                    "{field}: Invalid value: {field} in body should have at least {min} items"
                ));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item_schema, item, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            if let Some(Value::Array(required)) = schema.get("required") {
                for r in required.iter().filter_map(Value::as_str) {
                    if !map.contains_key(r) {
                        errors.push(format!("{}: Required value", join(path, r)));
                    }
                }
            }
            for (k, v) in map {
                // Metadata is the API server's business, not the schema's.
                if path.is_empty() && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                    continue;
                }
                match props.and_then(|p| p.get(k)) {
                    Some(s) => check(s, v, &join(path, k), errors),
                    None => {
                        if let Some(extra) =
                            schema.get("additionalProperties").filter(|a| a.is_object())
                        {
                            check(extra, v, &join(path, k), errors);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.len() > 64 {
        format!("{}...", &s[..64])
    } else {
        s
    }
}

/// Drops fields the schema does not know, as the API server does for
/// structural schemas.
fn prune(schema: &Value, value: &mut Value, root: bool) {
    if schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        return;
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let extra = schema.get("additionalProperties").filter(|a| a.is_object());
            map.retain(|k, v| {
                if root && matches!(k.as_str(), "metadata" | "apiVersion" | "kind") {
                    return true;
                }
                match (props.and_then(|p| p.get(k)), extra) {
                    (Some(s), _) | (None, Some(s)) => {
                        prune(s, v, false);
                        true
                    }
                    (None, None) => props.is_none(),
                }
            });
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    prune(item_schema, item, false);
                }
            }
        }
        _ => {}
    }
}
