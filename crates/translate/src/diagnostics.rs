//! Diagnostics: what the translator says about the objects it read.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

/// A problem with one field of an object: the field's path and what is
/// wrong with it.
pub(crate) type FieldError = (String, String);

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Part or all of the object is not served.
    Error,
    /// The object is served, but something about it deserves attention.
    Warning,
}

/// Why a diagnostic was raised, as a CamelCase reason that status
/// conditions and events can carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Reason {
    /// A field has a value that is not allowed.
    InvalidField,
    /// A referenced Service does not exist.
    BackendNotFound,
    /// A referenced Service exists but has no such port.
    PortNotFound,
    /// A reference points at something Gatehouse cannot use.
    UnsupportedBackend,
    /// The feature is recognised but not supported.
    Unsupported,
    /// Another object already claims the same host, path and conditions.
    Conflict,
    /// An annotation is malformed or unknown.
    InvalidAnnotation,
    /// A policy's target does not exist.
    TargetNotFound,
    /// A referenced Secret does not exist (or is not visible to Gatehouse).
    SecretNotFound,
    /// A referenced Secret holds no usable certificate, key or CA bundle.
    InvalidCertificate,
}

impl Reason {
    /// The reason as written in status conditions and events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidField => "InvalidField",
            Self::BackendNotFound => "BackendNotFound",
            Self::PortNotFound => "PortNotFound",
            Self::UnsupportedBackend => "UnsupportedBackend",
            Self::Unsupported => "Unsupported",
            Self::Conflict => "Conflict",
            Self::InvalidAnnotation => "InvalidAnnotation",
            Self::TargetNotFound => "TargetNotFound",
            Self::SecretNotFound => "SecretNotFound",
            Self::InvalidCertificate => "InvalidCertificate",
        }
    }

    /// Whether the reason concerns a reference to another object (the
    /// `ResolvedRefs` condition) rather than the object's own content.
    pub fn is_reference(self) -> bool {
        matches!(
            self,
            Self::BackendNotFound
                | Self::PortNotFound
                | Self::UnsupportedBackend
                | Self::TargetNotFound
                | Self::SecretNotFound
                | Self::InvalidCertificate
        )
    }
}

/// The object a diagnostic is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    /// Kind, such as `Ingress` or `ApiRoute`.
    pub kind: Arc<str>,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: Arc<str>,
    /// Name.
    pub name: Arc<str>,
}

impl ObjectRef {
    /// A reference to `kind namespace/name`.
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind, self.name)
        } else {
            write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// One finding about one field of one object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    /// The object concerned.
    pub object: ObjectRef,
    /// Path of the field, such as `spec.rules[0].matches[1].path.value`.
    pub field: String,
    /// How serious it is.
    pub severity: Severity,
    /// Machine-readable reason.
    pub reason: Reason,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{level}: {}: {}: {}",
            self.object, self.field, self.message
        )
    }
}

/// Collects diagnostics for one object at a time.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Errors so far about objects' own content (not about references to
    /// other objects).
    pub(crate) fn error_count(&self) -> usize {
        self.list
            .iter()
            .filter(|d| d.severity == Severity::Error && !d.reason.is_reference())
            .count()
    }

    pub(crate) fn error(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.push(object, field, Severity::Error, reason, message);
    }

    pub(crate) fn warning(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.push(object, field, Severity::Warning, reason, message);
    }

    fn push(
        &mut self,
        object: &ObjectRef,
        field: impl Into<String>,
        severity: Severity,
        reason: Reason,
        message: impl Into<String>,
    ) {
        self.list.push(Diagnostic {
            object: object.clone(),
            field: field.into(),
            severity,
            reason,
            message: message.into(),
        });
    }

    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.list.sort();
        self.list.dedup();
        self.list
    }
}
