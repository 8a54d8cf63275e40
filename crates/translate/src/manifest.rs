//! Reading Kubernetes manifests (YAML or JSON text) into typed objects.
//!
//! This is the parsing half of standalone mode and of `gatehouse
//! validate`; it does no I/O, so the same code serves files, tests and
//! anything else that holds manifest text.

use std::fmt;
use std::sync::Arc;

use api::{ApiRoute, RateLimitPolicy};
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// One object Gatehouse understands.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    /// `networking.k8s.io/v1` IngressClass.
    IngressClass(Arc<IngressClass>),
    /// `networking.k8s.io/v1` Ingress.
    Ingress(Arc<Ingress>),
    /// `v1` Service.
    Service(Arc<Service>),
    /// `discovery.k8s.io/v1` EndpointSlice.
    EndpointSlice(Arc<EndpointSlice>),
    /// `v1` Secret.
    Secret(Arc<Secret>),
    /// `gatehouse.dev/v1alpha1` ApiRoute.
    ApiRoute(Arc<ApiRoute>),
    /// `gatehouse.dev/v1alpha1` RateLimitPolicy.
    RateLimitPolicy(Arc<RateLimitPolicy>),
}

/// A document of a kind Gatehouse does not use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Line where the document starts (1-based).
    pub line: usize,
    /// Its `apiVersion`.
    pub api_version: String,
    /// Its `kind`.
    pub kind: String,
}

/// The objects of one manifest text.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Parsed {
    /// Objects Gatehouse uses, in document order.
    pub objects: Vec<Object>,
    /// Documents of other kinds, skipped.
    pub skipped: Vec<Skipped>,
}

/// Why a manifest text could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line of the problem (or of the document that has it).
    pub line: usize,
    /// 1-based column, when the parser knows it.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.column {
            Some(c) => write!(f, "line {}, column {c}: {}", self.line, self.message),
            None => write!(f, "line {}: {}", self.line, self.message),
        }
    }
}

/// Namespace given to namespaced objects that do not name one, as
/// `kubectl apply` would.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Parses a YAML (or JSON) text holding any number of documents, and
/// `List` documents holding items. Empty documents are ignored; documents
/// of kinds Gatehouse does not use are returned as [`Skipped`]. Any
/// syntax or type error fails the whole text: callers keep their previous
/// objects for it.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let mut parsed = Parsed::default();
    for (start, doc) in documents(text) {
        let value: Value = serde_saphyr::from_str(doc).map_err(|e| {
            let location = e.location();
            ParseError {
                line: start
                    + location.map_or(0, |l| {
                        usize::try_from(l.line()).unwrap_or(0).saturating_sub(1)
                    }),
                column: location.and_then(|l| usize::try_from(l.column()).ok()),
                message: first_line(&e.to_string()),
            }
        })?;
        add_value(value, start, &mut parsed)?;
    }
    Ok(parsed)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().trim().to_owned()
}

/// Splits a text at `---` document markers, with the 1-based line each
/// document starts on.
fn documents(text: &str) -> Vec<(usize, &str)> {
    let mut docs = Vec::new();
    let mut start_line = 1;
    let mut start_byte = 0;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker =
            bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || bare == "...";
        if is_marker {
            docs.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start_byte..]));
    docs.retain(|(_, d)| {
        d.lines().any(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        })
    });
    docs
}

fn add_value(value: Value, line: usize, parsed: &mut Parsed) -> Result<(), ParseError> {
    let err = |message: String| ParseError {
        line,
        column: None,
        message,
    };
    if value.is_null() {
        return Ok(());
    }
    let Value::Object(map) = &value else {
        return Err(err(
            "a manifest document must be a mapping with apiVersion and kind".into(),
        ));
    };
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = map
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if api_version.is_empty() || kind.is_empty() {
        return Err(err("document has no apiVersion or kind".into()));
    }
    if kind == "List" || (kind.ends_with("List") && map.contains_key("items")) {
        let items = match map.get("items") {
            Some(Value::Array(items)) => items.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(err(format!("{kind}: items must be a list"))),
        };
        for item in items {
            add_value(item, line, parsed)?;
        }
        return Ok(());
    }
    let object = match (api_version.as_str(), kind.as_str()) {
        ("networking.k8s.io/v1", "IngressClass") => {
            Object::IngressClass(typed(value, &kind, line, false)?)
        }
        ("networking.k8s.io/v1", "Ingress") => Object::Ingress(typed(value, &kind, line, true)?),
        ("v1", "Service") => Object::Service(typed(value, &kind, line, true)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            Object::EndpointSlice(typed(value, &kind, line, true)?)
        }
        ("v1", "Secret") => Object::Secret(typed(value, &kind, line, true)?),
        (api::API_VERSION, "ApiRoute") => Object::ApiRoute(typed(value, &kind, line, true)?),
        (api::API_VERSION, "RateLimitPolicy") => {
            Object::RateLimitPolicy(typed(value, &kind, line, true)?)
        }
        (v, k) if v.starts_with("gatehouse.dev/") => {
            return Err(err(format!(
                "{k} in {v} is not a Gatehouse resource (known: ApiRoute and RateLimitPolicy in {})",
                api::API_VERSION
            )));
        }
        _ => {
            parsed.skipped.push(Skipped {
                line,
                api_version,
                kind,
            });
            return Ok(());
        }
    };
    parsed.objects.push(object);
    Ok(())
}

/// Converts a document into its typed form, naming the failing field.
fn typed<T: DeserializeOwned>(
    mut value: Value,
    kind: &str,
    line: usize,
    namespaced: bool,
) -> Result<Arc<T>, ParseError> {
    let name = match value.pointer("/metadata/name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(ParseError {
                line,
                column: None,
                message: format!("{kind} has no metadata.name"),
            });
        }
        Some(other) => {
            return Err(ParseError {
                line,
                column: None,
                message: format!(
                    "{kind} metadata.name must be a string, not {other}; quote it (YAML reads y, yes, no, on, off and numbers as other types)"
                ),
            });
        }
    };
    if namespaced {
        let meta = value
            .get_mut("metadata")
            .and_then(Value::as_object_mut)
            .expect("metadata.name was found, so metadata is a mapping");
        let has_ns = meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if !has_ns {
            meta.insert("namespace".into(), Value::String(DEFAULT_NAMESPACE.into()));
        }
    }
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(|n| format!("{n}/"))
        .unwrap_or_default();
    let is_secret = kind == "Secret";
    serde_path_to_error::deserialize(value)
        .map(Arc::new)
        .map_err(|e| {
            // A Secret's values must never reach a log line, and serde's
            // messages may quote the offending value.
            let detail = if is_secret {
                "invalid value".to_owned()
            } else {
                e.inner().to_string()
            };
            ParseError {
                line,
                column: None,
                message: format!("{kind} {namespace}{name}: {}: {detail}", e.path()),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_and_fills_namespaces() {
        let text = "\
# leading comment
apiVersion: v1
kind: Service
metadata: {name: a}
---
---
apiVersion: v1
kind: ConfigMap
metadata: {name: c}
--- # trailing comment
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: b, namespace: shop}
";
        let parsed = parse(text).unwrap();
        assert_eq!(parsed.objects.len(), 2);
        let Object::Service(a) = &parsed.objects[0] else {
            panic!()
        };
        assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
        let Object::Service(b) = &parsed.objects[1] else {
            panic!()
        };
        assert_eq!(b.metadata.namespace.as_deref(), Some("shop"));
        assert_eq!(
            parsed.skipped,
            vec![Skipped {
                line: 7,
                api_version: "v1".into(),
                kind: "ConfigMap".into()
            }]
        );
    }

    #[test]
    fn syntax_errors_carry_the_line_of_the_whole_text() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n";
        let err = parse(text).unwrap_err();
        assert!(err.line >= 8, "{err:?}");
    }

    #[test]
    fn type_errors_name_the_object_and_field() {
        let text = "\
apiVersion: gatehouse.dev/v1alpha1
kind: ApiRoute
metadata: {name: r, namespace: shop}
spec:
  rules:
  - matches:
    - path: {type: Glob, value: /x}
";
        let err = parse(text).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(
            err.message.starts_with(
                "ApiRoute shop/r: spec.rules[0].matches[0].path.type: unknown variant `Glob`"
            ),
            "{}",
            err.message
        );
    }

    #[test]
    fn secret_errors_do_not_quote_values() {
        let text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata:\n  key: [not-base64-hunter2]\n";
        let err = parse(text).unwrap_err();
        assert!(!err.message.contains("hunter2"), "{}", err.message);
        assert!(
            err.message.contains("Secret default/s: data.key"),
            "{}",
            err.message
        );
    }

    #[test]
    fn unquoted_names_that_yaml_reads_as_other_types_are_explained() {
        let err = parse("apiVersion: v1\nkind: Service\nmetadata: {name: yes}\n").unwrap_err();
        assert!(err.message.contains("must be a string"), "{err}");
        assert!(parse("apiVersion: v1\nkind: Service\nmetadata: {name: \"yes\"}\n").is_ok());
    }

    #[test]
    fn rejects_documents_without_kind_and_unknown_gatehouse_kinds() {
        assert!(parse("metadata: {name: x}\n").is_err());
        assert!(parse("- 1\n- 2\n").is_err());
        let err =
            parse("apiVersion: gatehouse.dev/v1\nkind: Route\nmetadata: {name: x}\n").unwrap_err();
        assert!(err.message.contains("not a Gatehouse resource"), "{err}");
    }
}
