//! TLS settings of an ApiRoute.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// HTTPS for the route's hostnames.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// A `kubernetes.io/tls` Secret in the route's namespace whose
    /// certificate is served for the route's hostnames (chosen by SNI: an
    /// exact name beats a wildcard). When empty, the default certificate
    /// is served. A Secret that cannot be used (bad PEM, a key that does
    /// not match, an expired certificate) is reported in the route's
    /// status and the default certificate is served instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_ref: Option<SecretRef>,

    /// Redirect plain-HTTP requests for the route's hostnames to HTTPS
    /// with a 308. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,

    /// Send `Strict-Transport-Security` on HTTPS responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hsts: Option<Hsts>,

    /// Verify client certificates (mutual TLS) for the route's hostnames.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_validation: Option<ClientValidation>,

    /// Obtain and renew the certificate automatically from the ACME
    /// server Gatehouse is configured with (`--acme-directory`), proving
    /// control of each hostname with an HTTP-01 challenge that Gatehouse
    /// answers itself. The certificate is stored in the Secret named by
    /// `certificateRef` (default `<route name>-tls`) and renewed when two
    /// thirds of its lifetime have passed. Hostnames must be exact names
    /// (HTTP-01 cannot prove a wildcard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme: Option<Acme>,
}

/// Automatic certificates.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Acme {
    /// Contact e-mail for the certificate's ACME account. Default: the
    /// one Gatehouse is configured with (`--acme-email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 254))]
    pub email: Option<String>,
}

/// A Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// `Strict-Transport-Security` settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hsts {
    /// `max-age` in seconds.
    #[schemars(range(min = 0, max = 63_072_000))]
    pub max_age_seconds: u32,
    /// Add `includeSubDomains`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_subdomains: bool,
    /// Add `preload`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preload: bool,
}

/// Client certificate verification.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientValidation {
    /// A Secret in the route's namespace with the PEM CA bundle under the
    /// key `ca.crt`. Label it `gatehouse.dev/secret` unless it is of type
    /// `kubernetes.io/tls`: Gatehouse only watches those Secrets.
    pub ca_certificate_ref: SecretRef,

    /// `Require` (default): the handshake fails without a valid client
    /// certificate. `Optional`: a client may send none, but an invalid one
    /// still fails the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClientValidationMode>,

    /// Header that carries the verified client certificate's subject to
    /// the backends. Any value the client sent is removed first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
    )]
    pub forward_subject_header: Option<String>,
}

/// Whether a client certificate is required.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClientValidationMode {
    /// The handshake fails without a valid client certificate.
    #[default]
    Require,
    /// Clients may connect without a certificate.
    Optional,
}

/// TLS to a rule's backends. It applies to backends whose protocol is
/// `HTTPS` or `GRPCS` (by `protocol` or the Service port's
/// `appProtocol`); such backends without these settings are verified
/// against the system's CAs with the Service's DNS name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackendTls {
    /// A Secret in the route's namespace with the PEM CA bundle the
    /// backends' certificates must chain to, under `ca.crt` (label it
    /// `gatehouse.dev/secret` unless it is a `kubernetes.io/tls` Secret).
    /// Default: the system's CAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificate_ref: Option<SecretRef>,

    /// Name sent as SNI and checked against the backends' certificates.
    /// Default: the Service's DNS name, `name.namespace.svc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub server_name: Option<String>,

    /// A `kubernetes.io/tls` Secret whose certificate the gateway presents
    /// to the backends (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate_ref: Option<SecretRef>,
}
