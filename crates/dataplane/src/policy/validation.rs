//! Request validation: required headers, media types, and JSON bodies
//! checked against a JSON Schema, with failures as RFC 9457 problem
//! details.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use snapshot::{JsonSchema, RequestValidation};

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

/// Checks a JSON body against the route's compiled schema.
pub(crate) fn check(schema: &JsonSchema, body: &[u8]) -> Result<(), ProxyError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ProxyError::Invalid(problem(
            "The request body is not valid JSON",
            &[(String::new(), e.to_string())],
        ))
    })?;
    let violations: Vec<(String, String)> = schema
        .validator()
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
