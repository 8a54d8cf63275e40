//! Request validation: required headers, media types, and JSON bodies
//! checked against a JSON Schema, with failures as RFC 9457 problem
//! details.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::header::{self, HeaderMap};
use snapshot::RequestValidation;

use crate::respond::ProxyError;

/// Most violations listed in one problem document.
const MAX_VIOLATIONS: usize = 50;

/// A problem document (`application/problem+json`) with `violations`:
/// `(JSON pointer, message)` pairs.
pub(crate) fn problem(title: &str, violations: &[(String, String)]) -> Bytes {
    let doc = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": 400,
        "violations": violations
            .iter()
            .map(|(pointer, message)| serde_json::json!({"pointer": pointer, "message": message}))
            .collect::<Vec<_>>(),
    });
    Bytes::from(doc.to_string())
}

/// Whether the request's media type is one the rule accepts.
pub(crate) fn content_type_allowed(v: &RequestValidation, headers: &HeaderMap) -> bool {
    if v.content_types.is_empty() {
        return true;
    }
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    let media = ct
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    v.content_types.iter().any(|t| **t == *media)
}

/// Compiled schemas by their text, shared across configuration swaps.
#[derive(Default)]
pub(crate) struct Validators {
    compiled: Mutex<HashMap<Arc<str>, Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for Validators {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Validators")
    }
}

impl Validators {
    fn get(&self, schema: &Arc<str>) -> Option<Arc<jsonschema::Validator>> {
        let mut m = self
            .compiled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(v) = m.get(schema) {
            return Some(v.clone());
        }
        let value: serde_json::Value = serde_json::from_str(schema).ok()?;
        let v = Arc::new(jsonschema::validator_for(&value).ok()?);
        if m.len() > 1000 {
            m.clear();
        }
        m.insert(schema.clone(), v.clone());
        Some(v)
    }

    /// Checks a JSON body against `schema`.
    pub(crate) fn check(&self, schema: &Arc<str>, body: &[u8]) -> Result<(), ProxyError> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ProxyError::Invalid(problem(
                "The request body is not valid JSON",
                &[(String::new(), e.to_string())],
            ))
        })?;
        let Some(validator) = self.get(schema) else {
            // The translator checked it compiles; refuse rather than skip.
            return Err(ProxyError::Invalid(problem(
                "The schema cannot be used",
                &[],
            )));
        };
        let violations: Vec<(String, String)> = validator
            .iter_errors(&value)
            .take(MAX_VIOLATIONS)
            .map(|e| (e.instance_path().to_string(), e.to_string()))
            .collect();
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ProxyError::Invalid(problem(
                "The request body does not match the schema",
                &violations,
            )))
        }
    }
}
