//! Certificates for Gatehouse.
//!
//! One concern: turning PEM text (from Secrets or files) into checked
//! rustls material, and rustls material into server configurations. The
//! translator uses [`check_pair`] and [`check_ca_bundle`] to report broken
//! Secrets as diagnostics; the data plane uses [`certified_key`],
//! [`client_verifier`] and [`server_config`] to serve them.
//!
//! The crypto provider is `ring`: it is already in the dependency tree (the
//! Kubernetes client uses it), builds without cmake, and offers every
//! cipher suite we serve. Only rustls' default suites are enabled — TLS 1.3
//! AES-GCM and ChaCha20-Poly1305, TLS 1.2 ECDHE with AES-GCM or
//! ChaCha20-Poly1305 — so there is no CBC, no RSA key exchange, no SHA-1.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

/// Why a certificate or CA bundle cannot be used.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum CertError {
    /// No `CERTIFICATE` block in the chain.
    #[error("no PEM certificate found")]
    NoCertificate,
    /// A `CERTIFICATE` block is not valid PEM or DER.
    #[error("the certificate is not valid PEM: {0}")]
    BadCertificate(String),
    /// No private key block.
    #[error("no PEM private key found (PKCS#8, PKCS#1 or SEC1)")]
    NoKey,
    /// The key is of a type rustls cannot sign with.
    #[error("the private key is not usable: {0}")]
    BadKey(String),
    /// The key does not belong to the first certificate.
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    /// The certificate's validity ended (Unix seconds).
    #[error("the certificate expired on {}", date(*.0))]
    Expired(i64),
    /// The certificate's validity has not begun (Unix seconds).
    #[error("the certificate is not valid before {}", date(*.0))]
    NotYetValid(i64),
}

/// What [`check_pair`] learned about a usable certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// DNS names of the subject alternative name extension.
    pub dns_names: Vec<String>,
    /// The subject, as text.
    pub subject: String,
}

impl CertInfo {
    /// Whether the certificate names `host` (exactly, or by a one-label
    /// wildcard).
    pub fn covers(&self, host: &str) -> bool {
        self.dns_names.iter().any(|n| {
            n.eq_ignore_ascii_case(host)
                || n.strip_prefix("*.").is_some_and(|suffix| {
                    host.split_once('.').is_some_and(|(label, rest)| {
                        !label.is_empty() && rest.eq_ignore_ascii_case(suffix)
                    })
                })
                || (host.starts_with("*.") && n.eq_ignore_ascii_case(host))
        })
    }
}

/// The crypto provider every configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate);
    }
    Ok(certs)
}

/// The signing key and chain of a PEM certificate chain and key, checked
/// to belong together.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<CertifiedKey, CertError> {
    let certs = chain(chain_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => CertError::NoKey,
        other => CertError::BadKey(other.to_string()),
    })?;
    let provider = provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::BadKey(e.to_string()))?;
    let certified = CertifiedKey::new(certs, signing);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // Keys whose public half cannot be derived cannot be checked;
        // rustls would then fail the handshake, so refuse them here.
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertError::KeyMismatch),
        Err(e) => Err(CertError::BadKey(e.to_string())),
    }
}

fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// A Unix time as an RFC 2822 date (`Wed, 01 Jan 2020 00:00:00 +0000`).
fn date(unix: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(unix)
        .ok()
        .and_then(|t| t.to_rfc2822().ok())
        .unwrap_or_else(|| format!("{unix} (Unix time)"))
}

/// Reads the first certificate of a chain: validity and names.
pub fn cert_info(chain_pem: &[u8]) -> Result<CertInfo, CertError> {
    let certs = chain(chain_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0])
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    let validity = cert.validity();
    let dns_names = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(CertInfo {
        not_after: validity.not_after.timestamp(),
        not_before: validity.not_before.timestamp(),
        dns_names,
        subject: cert.subject().to_string(),
    })
}

/// The subject of a DER certificate, as text (`CN=client,O=Example`).
pub fn subject_of(der: &[u8]) -> Option<String> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, cert)| cert.subject().to_string())
}

/// Checks that a certificate chain and key can be served at `now`: both
/// parse, the key belongs to the certificate, and the certificate is
/// within its validity.
pub fn check_pair(
    chain_pem: &[u8],
    key_pem: &[u8],
    now: SystemTime,
) -> Result<CertInfo, CertError> {
    certified_key(chain_pem, key_pem)?;
    let info = cert_info(chain_pem)?;
    let now = unix(now);
    if now > info.not_after {
        return Err(CertError::Expired(info.not_after));
    }
    if now < info.not_before {
        return Err(CertError::NotYetValid(info.not_before));
    }
    Ok(info)
}

/// The trust anchors of a PEM CA bundle (at least one certificate).
pub fn ca_bundle(pem: &[u8]) -> Result<RootCertStore, CertError> {
    let mut roots = RootCertStore::empty();
    for cert in chain(pem)? {
        roots
            .add(cert)
            .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    }
    Ok(roots)
}

/// Checks a PEM CA bundle.
pub fn check_ca_bundle(pem: &[u8]) -> Result<usize, CertError> {
    ca_bundle(pem).map(|r| r.len())
}

/// A self-signed certificate and key (ECDSA P-256, PEM) for `names`,
/// valid from a day ago for a year: the default certificate when none is
/// configured, so HTTPS works out of the box (clients see a certificate
/// they do not trust, never a failed handshake).
pub fn self_signed(names: &[String]) -> Result<(String, String), rcgen::Error> {
    let mut params = rcgen::CertificateParams::new(names.to_vec())?;
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(86_400)).into();
    params.not_after = (now + Duration::from_secs(365 * 86_400)).into();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Gatehouse default certificate");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// How a host verifies client certificates.
#[derive(Clone, Debug)]
pub struct ClientAuth {
    /// The CAs a client certificate must chain to.
    pub roots: Arc<RootCertStore>,
    /// Refuse the handshake without a valid client certificate; otherwise
    /// a client may send none (but an invalid one is still refused).
    pub required: bool,
}

/// A client-certificate verifier for `auth`.
pub fn client_verifier(
    auth: &ClientAuth,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, CertError> {
    let builder = WebPkiClientVerifier::builder_with_provider(auth.roots.clone(), provider());
    let builder = if auth.required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    builder
        .build()
        .map_err(|e| CertError::BadCertificate(e.to_string()))
}

/// The system's trusted CAs (read once; empty when none are installed,
/// so verification then fails rather than trusting anything).
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!("no system CA certificates found; HTTPS backends need a CA bundle");
            }
            Arc::new(roots)
        })
        .clone()
}

/// A client configuration for TLS to upstreams: verified against
/// `ca_pem` (else the system's CAs), presenting `client` (PEM chain and
/// key) when given, offering `alpn`.
pub fn client_config(
    ca_pem: Option<&[u8]>,
    client: Option<(&[u8], &[u8])>,
    alpn: &[&[u8]],
) -> Result<rustls::ClientConfig, CertError> {
    let roots = match ca_pem {
        Some(pem) => Arc::new(ca_bundle(pem)?),
        None => system_roots(),
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CertError::BadKey(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match client {
        Some((chain_pem, key_pem)) => {
            let certs = chain(chain_pem)?;
            let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| CertError::NoKey)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| CertError::BadKey(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// Always presents one certificate.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A server configuration presenting `cert`, optionally verifying client
/// certificates: TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
pub fn server_config(
    cert: Arc<CertifiedKey>,
    client_auth: Option<&ClientAuth>,
) -> Result<ServerConfig, CertError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| CertError::BadKey(e.to_string()))?;
    let builder = match client_auth {
        Some(auth) => builder.with_client_cert_verifier(client_verifier(auth)?),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(Fixed(cert)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

    use super::*;

    #[test]
    fn a_self_signed_pair_checks_and_covers_its_names() {
        let (cert, key) = self_signed(&["a.example.com".into(), "*.b.example.com".into()]).unwrap();
        let info = check_pair(cert.as_bytes(), key.as_bytes(), SystemTime::now()).unwrap();
        assert!(info.covers("a.example.com"));
        assert!(info.covers("x.b.example.com"));
        assert!(!info.covers("x.y.b.example.com"));
        assert!(!info.covers("b.example.com"));
        assert!(info.not_after > unix(SystemTime::now()));
    }

    #[test]
    fn broken_pairs_are_named() {
        let (cert, key) = self_signed(&["a.example.com".into()]).unwrap();
        let (_, other_key) = self_signed(&["a.example.com".into()]).unwrap();
        let now = SystemTime::now();
        assert_eq!(
            check_pair(cert.as_bytes(), other_key.as_bytes(), now),
            Err(CertError::KeyMismatch)
        );
        assert_eq!(
            check_pair(b"not pem", key.as_bytes(), now),
            Err(CertError::NoCertificate)
        );
        assert_eq!(check_pair(cert.as_bytes(), b"", now), Err(CertError::NoKey));
        let later = now + Duration::from_secs(2 * 365 * 86_400);
        assert!(matches!(
            check_pair(cert.as_bytes(), key.as_bytes(), later),
            Err(CertError::Expired(_))
        ));
        assert_eq!(
            CertError::Expired(1_577_836_800).to_string(),
            "the certificate expired on Wed, 01 Jan 2020 00:00:00 +0000"
        );
        assert!(matches!(
            check_ca_bundle(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            Err(CertError::BadCertificate(_))
        ));
    }

    #[test]
    fn server_configs_offer_h2_then_http1() {
        let (cert, key) = self_signed(&["a.example.com".into()]).unwrap();
        let ck = Arc::new(certified_key(cert.as_bytes(), key.as_bytes()).unwrap());
        let config = server_config(ck.clone(), None).unwrap();
        assert_eq!(
            config.alpn_protocols,
            [b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        let roots = Arc::new(ca_bundle(cert.as_bytes()).unwrap());
        server_config(
            ck,
            Some(&ClientAuth {
                roots,
                required: true,
            }),
        )
        .unwrap();
    }
}
