//! What the HTTPS listener serves per host: certificate, client
//! certificate policy, redirect and HSTS.
//!
//! Certificates are carried as PEM text, checked by the translator; the
//! data plane turns them into rustls configurations. The private key never
//! appears in a serialized snapshot (`/debug/snapshot`).

use std::fmt;
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use serde::{Serialize, Serializer};

use crate::host::{HostIndex, HostPattern};

/// A certificate chain and its private key.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Where it came from: `namespace/secret` or a file name.
    pub source: Arc<str>,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// PEM certificate chain, leaf first.
    #[serde(skip)]
    pub chain_pem: Arc<[u8]>,
    /// PEM private key.
    #[serde(skip)]
    pub key_pem: Arc<[u8]>,
}

impl fmt::Debug for Certificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the key.
        f.debug_struct("Certificate")
            .field("source", &self.source)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// Client certificate verification for a host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientValidation {
    /// Where the CA bundle came from.
    pub source: Arc<str>,
    /// PEM CA certificates a client certificate must chain to.
    #[serde(skip)]
    pub ca_pem: Arc<[u8]>,
    /// Refuse handshakes without a valid client certificate.
    pub required: bool,
    /// Header that carries the verified client certificate's subject
    /// upstream (any value the client sent is removed first).
    #[serde(serialize_with = "header_name")]
    pub forward_header: Option<HeaderName>,
}

fn header_name<S: Serializer>(h: &Option<HeaderName>, s: S) -> Result<S::Ok, S::Error> {
    match h {
        Some(h) => s.serialize_str(h.as_str()),
        None => s.serialize_none(),
    }
}

/// The TLS settings of one host pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsHost {
    /// The host names this applies to (SNI and Host header).
    pub host: HostPattern,
    /// Its certificate; `None` serves the default certificate.
    pub certificate: Option<Certificate>,
    /// Plain HTTP requests for this host are redirected to HTTPS.
    pub redirect: bool,
    /// `Strict-Transport-Security` value added to HTTPS responses.
    #[serde(serialize_with = "crate::filters::ser_opt_value")]
    pub hsts: Option<HeaderValue>,
    /// Client certificate verification.
    pub client_validation: Option<ClientValidation>,
    /// The object that configured it (`kind/namespace/name`).
    pub origin: Arc<str>,
}

/// Every host's TLS settings, found by exact name, then one-label
/// wildcard.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TlsHosts {
    /// Sorted by host pattern.
    pub hosts: Vec<TlsHost>,
    #[serde(skip)]
    index: HostIndex,
}

impl TlsHosts {
    /// Indexes `hosts` (sorted here).
    pub fn new(mut hosts: Vec<TlsHost>) -> Self {
        hosts.sort_by(|a, b| a.host.cmp(&b.host));
        let index = HostIndex::build(hosts.iter().map(|h| &h.host));
        Self { hosts, index }
    }

    /// The position of the settings for `host` (lowercase, no port).
    pub fn position(&self, host: &str) -> Option<usize> {
        self.index.find(host)
    }

    /// The settings for `host` (lowercase, no port).
    pub fn find(&self, host: &str) -> Option<&TlsHost> {
        self.position(host).map(|i| &self.hosts[i])
    }

    /// The earliest end of validity (Unix seconds) of the certificates
    /// served: when the configuration must be checked again.
    pub fn earliest_expiry(&self) -> Option<i64> {
        self.hosts
            .iter()
            .filter_map(|h| h.certificate.as_ref())
            .map(|c| c.not_after)
            .min()
    }

    /// Whether no host has TLS settings.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }
}

/// A certificate the ACME manager keeps issued: which names, stored where.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeCertificate {
    /// Namespace of the Secret the certificate is stored in.
    pub namespace: Box<str>,
    /// Name of that Secret.
    pub secret: Box<str>,
    /// The DNS names to certify, sorted.
    pub names: Vec<Box<str>>,
    /// Account contact, if the route names one.
    pub email: Option<Box<str>>,
    /// The object that asked for it.
    pub origin: Arc<str>,
    /// Validity of the certificate stored now, Unix seconds (`None`: none
    /// stored or unusable).
    pub current: Option<(i64, i64)>,
}

/// ACME state every replica serves: pending HTTP-01 answers (token → key
/// authorization) and the last error per certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeState {
    /// Certificates to keep issued.
    pub certificates: Vec<AcmeCertificate>,
    /// HTTP-01 answers, served at `/.well-known/acme-challenge/<token>`.
    pub challenges: std::collections::BTreeMap<Box<str>, Box<str>>,
}
