//! Configuration the translator compiles once so requests never do: JSON
//! Schemas and JSON Web Key Sets. Each keeps the text it was made from
//! and compares by it, so two snapshots built from the same objects are
//! equal (and an equal snapshot is not published again).

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, Serializer};

/// A compiled JSON Schema.
#[derive(Clone)]
pub struct JsonSchema {
    source: Arc<str>,
    validator: Arc<jsonschema::Validator>,
}

impl JsonSchema {
    /// Parses and compiles `source`; the error says what is wrong.
    pub fn compile(source: &str) -> Result<Self, String> {
        let value: serde_json::Value =
            serde_json::from_str(source).map_err(|e| format!("not JSON: {e}"))?;
        let validator = jsonschema::validator_for(&value)
            .map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        Ok(Self {
            source: source.into(),
            validator: Arc::new(validator),
        })
    }

    /// The compiled validator.
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    /// The schema's text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl PartialEq for JsonSchema {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for JsonSchema {}

impl fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonSchema").field(&self.source).finish()
    }
}

impl Serialize for JsonSchema {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

/// One verification key of a JWKS, with the algorithm it verifies.
#[derive(Clone)]
pub struct JwtKey {
    /// The key's `kid`.
    pub kid: Option<String>,
    /// The algorithm its type implies (RS256, ES256, EdDSA, HS256).
    pub alg: jsonwebtoken::Algorithm,
    /// The decoding key.
    pub key: jsonwebtoken::DecodingKey,
}

impl fmt::Debug for JwtKey {
    // The key may be a shared secret (HS256): never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

/// A parsed JSON Web Key Set: the keys Gatehouse can verify with (keys
/// of other types and curves are left out).
#[derive(Clone)]
pub struct Jwks {
    source: Arc<str>,
    keys: Arc<[JwtKey]>,
    /// Keys the document listed, usable or not.
    listed: usize,
}

impl Jwks {
    /// Parses a JWKS document; the error says what is wrong. A set with
    /// no usable key parses (to no keys): callers decide whether that is
    /// an error.
    pub fn parse(source: &str) -> Result<Self, String> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(source).map_err(|e| format!("not a JWKS: {e}"))?;
        Ok(Self {
            source: source.into(),
            keys: usable_keys(&set).into(),
            listed: set.keys.len(),
        })
    }

    /// The keys.
    pub fn keys(&self) -> &[JwtKey] {
        &self.keys
    }

    /// Whether the document listed no key at all.
    pub fn is_empty(&self) -> bool {
        self.listed == 0
    }
}

impl PartialEq for Jwks {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Jwks {}

impl fmt::Debug for Jwks {
    // The set may hold shared secrets (HS256): never printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwks")
            .field("keys", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// The keys of `set` that verify an algorithm Gatehouse accepts.
fn usable_keys(set: &jsonwebtoken::jwk::JwkSet) -> Vec<JwtKey> {
    use jsonwebtoken::Algorithm;
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve};
    set.keys
        .iter()
        .filter_map(|jwk| {
            let alg = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                AlgorithmParameters::OctetKey(_) => Algorithm::HS256,
                _ => return None,
            };
            Some(JwtKey {
                kid: jwk.common.key_id.clone(),
                alg,
                key: jsonwebtoken::DecodingKey::from_jwk(jwk).ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_compile_once_and_compare_by_text() {
        let a = JsonSchema::compile(r#"{"type":"object","required":["id"]}"#).unwrap();
        let b = JsonSchema::compile(r#"{"type":"object","required":["id"]}"#).unwrap();
        assert_eq!(a, b);
        assert!(a.validator().is_valid(&serde_json::json!({"id": 1})));
        assert!(!a.validator().is_valid(&serde_json::json!({})));
        assert!(
            JsonSchema::compile("{")
                .unwrap_err()
                .starts_with("not JSON")
        );
        assert!(
            JsonSchema::compile(r#"{"type": 12}"#)
                .unwrap_err()
                .starts_with("not a valid JSON Schema")
        );
    }

    #[test]
    fn key_sets_keep_the_keys_they_can_verify_with() {
        let set = r#"{"keys":[
            {"kty":"oct","kid":"h","k":"c2VjcmV0"},
            {"kty":"EC","crv":"P-384","x":"AA","y":"AA"}
        ]}"#;
        let jwks = Jwks::parse(set).unwrap();
        assert_eq!(jwks.keys().len(), 1);
        assert_eq!(jwks.keys()[0].kid.as_deref(), Some("h"));
        assert_eq!(jwks.keys()[0].alg, jsonwebtoken::Algorithm::HS256);
        assert!(!format!("{jwks:?}").contains("c2VjcmV0"));
        assert!(Jwks::parse("[]").is_err());
        assert!(Jwks::parse(r#"{"keys":[]}"#).unwrap().is_empty());
    }
}
