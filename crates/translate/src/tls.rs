//! TLS settings per host, from `Ingress.spec.tls` and `ApiRoute.spec.tls`.
//!
//! Each object proposes settings for its hosts; when two objects propose
//! different settings for the same host pattern, the older object wins
//! (then namespace/name order) and the other gets a `Conflict` warning.
//! A Secret that cannot be used is reported on the object that names it,
//! and the host is served with the default certificate: a broken
//! certificate never takes a host off HTTPS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};
use k8s_openapi::api::core::v1::Secret;
use snapshot::{AcmeCertificate, Certificate, ClientValidation, HostPattern, TlsHost, TlsHosts};

use crate::ResourceSet;
use crate::diagnostics::{Diagnostics, ObjectRef, Reason};

/// One object's proposal for one host pattern.
struct Proposal {
    settings: TlsHost,
    object: ObjectRef,
    created: Option<i64>,
    field: String,
}

/// Gathers proposals while objects are translated.
pub(crate) struct Collector {
    proposals: BTreeMap<HostPattern, Vec<Proposal>>,
    /// The time certificates are checked against.
    now: SystemTime,
    /// Certificates to keep issued by ACME.
    acme: Vec<AcmeCertificate>,
    /// The ACME manager's last error per certificate Secret
    /// (`namespace/name`).
    acme_errors: BTreeMap<String, String>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::at(SystemTime::now())
    }
}

/// What an object asks for, before Secrets are read.
pub(crate) struct Request<'a> {
    pub(crate) object: &'a ObjectRef,
    pub(crate) created: Option<i64>,
    pub(crate) namespace: &'a str,
    /// The field holding the certificate reference, for diagnostics.
    pub(crate) field: String,
    pub(crate) secret: Option<&'a str>,
    /// The Secret is written by the ACME manager: its absence means
    /// "not issued yet", not an error.
    pub(crate) acme: Option<AcmeRequest>,
    pub(crate) redirect: bool,
    pub(crate) hsts: Option<HeaderValue>,
    pub(crate) client: Option<ClientRequest<'a>>,
}

/// An ACME-managed certificate, before its Secret is read.
pub(crate) struct AcmeRequest {
    pub(crate) secret: String,
    pub(crate) email: Option<String>,
}

/// A client-certificate requirement, before the CA Secret is read.
pub(crate) struct ClientRequest<'a> {
    pub(crate) field: String,
    pub(crate) secret: &'a str,
    pub(crate) required: bool,
    pub(crate) forward_header: Option<HeaderName>,
}

fn secret<'r>(resources: &'r ResourceSet, namespace: &str, name: &str) -> Option<&'r Secret> {
    resources.secrets.iter().map(AsRef::as_ref).find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace)
            && s.metadata.name.as_deref() == Some(name)
    })
}

/// A key of a Secret, from `data` or (in standalone manifests)
/// `stringData`.
fn secret_value(secret: &Secret, key: &str) -> Option<Arc<[u8]>> {
    if let Some(v) = secret.data.as_ref().and_then(|d| d.get(key)) {
        return Some(Arc::from(v.0.as_slice()));
    }
    secret
        .string_data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|v| Arc::from(v.as_bytes()))
}

impl Collector {
    /// The time certificates are checked against (`Options.now`).
    pub(crate) fn now(&self) -> SystemTime {
        self.now
    }

    /// A collector checking certificate validity at `now`.
    pub(crate) fn at(now: SystemTime) -> Self {
        Self {
            proposals: BTreeMap::new(),
            now,
            acme: Vec::new(),
            acme_errors: BTreeMap::new(),
        }
    }

    /// Records what `request` asks for on `hosts`, reading and checking
    /// the Secrets it names.
    pub(crate) fn propose(
        &mut self,
        hosts: &[HostPattern],
        request: Request<'_>,
        resources: &ResourceSet,
        diags: &mut Diagnostics,
    ) {
        let now = self.now;
        let object = request.object;
        let certificate = request.secret.and_then(|name| {
            let source: Arc<str> = format!("{}/{name}", request.namespace).into();
            let Some(s) = secret(resources, request.namespace, name) else {
                if request.acme.is_some() {
                    diags.warning(
                        object,
                        "spec.tls.acme",
                        Reason::SecretNotFound,
                        format!("the certificate is not issued yet (ACME, Secret {source}); the default certificate is served until it is"),
                    );
                    return None;
                }
                diags.error(
                    object,
                    request.field.clone(),
                    Reason::SecretNotFound,
                    format!("Secret {source} does not exist (or is not of type kubernetes.io/tls nor labelled gatehouse.dev/secret); the default certificate is served instead"),
                );
                return None;
            };
            let (Some(chain_pem), Some(key_pem)) = (secret_value(s, "tls.crt"), secret_value(s, "tls.key")) else {
                diags.error(
                    object,
                    request.field.clone(),
                    Reason::InvalidCertificate,
                    format!("Secret {source} needs the keys tls.crt and tls.key; the default certificate is served instead"),
                );
                return None;
            };
            match tls::check_pair(&chain_pem, &key_pem, now) {
                Ok(info) => {
                    for host in hosts {
                        let name = host.to_string();
                        if !info.covers(&name) {
                            diags.warning(
                                object,
                                request.field.clone(),
                                Reason::InvalidCertificate,
                                format!("the certificate in Secret {source} does not name {name}; clients will reject it"),
                            );
                        }
                    }
                    Some(Certificate {
                        source,
                        not_after: info.not_after,
                        chain_pem,
                        key_pem,
                    })
                }
                Err(e) => {
                    diags.error(
                        object,
                        request.field.clone(),
                        Reason::InvalidCertificate,
                        format!("Secret {source}: {e}; the default certificate is served instead"),
                    );
                    None
                }
            }
        });
        if let Some(acme) = request.acme {
            let source = format!("{}/{}", request.namespace, acme.secret);
            if let Some(e) = self.acme_errors.get(&source) {
                diags.error(
                    object,
                    "spec.tls.acme",
                    Reason::InvalidCertificate,
                    format!("obtaining the certificate failed (retrying with backoff): {e}"),
                );
            }
            let mut names: Vec<Box<str>> = hosts.iter().map(|h| h.to_string().into()).collect();
            names.sort();
            self.acme.push(AcmeCertificate {
                namespace: request.namespace.into(),
                secret: acme.secret.into(),
                names,
                email: acme.email.map(Into::into),
                origin: object.to_string().into(),
                // A stored certificate that misses a name (hostnames were
                // added) counts as none: a new one is ordered.
                current: certificate.as_ref().and_then(|c| {
                    tls::cert_info(&c.chain_pem)
                        .ok()
                        .filter(|i| hosts.iter().all(|h| i.covers(&h.to_string())))
                        .map(|i| (i.not_before, i.not_after))
                }),
            });
        }
        let client_validation = match request.client {
            None => None,
            Some(c) => {
                let source: Arc<str> = format!("{}/{}", request.namespace, c.secret).into();
                let ca = secret(resources, request.namespace, c.secret)
                    .and_then(|s| secret_value(s, "ca.crt"));
                let problem = match &ca {
                    None if secret(resources, request.namespace, c.secret).is_none() => Some((
                        Reason::SecretNotFound,
                        format!(
                            "Secret {source} does not exist (or is not labelled gatehouse.dev/secret)"
                        ),
                    )),
                    None => Some((
                        Reason::InvalidCertificate,
                        format!("Secret {source} has no ca.crt key"),
                    )),
                    Some(pem) => tls::check_ca_bundle(pem)
                        .err()
                        .map(|e| (Reason::InvalidCertificate, format!("Secret {source}: {e}"))),
                };
                if let Some((reason, msg)) = problem {
                    // Failing closed: without the CA no client can be
                    // verified, so the hosts accept no HTTPS request
                    // rather than serving them unauthenticated.
                    diags.error(
                        object,
                        c.field,
                        reason,
                        format!(
                            "{msg}; HTTPS requests for these hosts are refused until it is fixed"
                        ),
                    );
                }
                Some(ClientValidation {
                    source,
                    // Empty when unusable: the data plane then refuses
                    // every handshake for these hosts.
                    ca_pem: ca
                        .filter(|pem| tls::check_ca_bundle(pem).is_ok())
                        .unwrap_or_else(|| Arc::from(&[][..])),
                    required: c.required,
                    forward_header: c.forward_header,
                })
            }
        };
        for host in hosts {
            self.proposals
                .entry(host.clone())
                .or_default()
                .push(Proposal {
                    settings: TlsHost {
                        host: host.clone(),
                        certificate: certificate.clone(),
                        redirect: request.redirect,
                        hsts: request.hsts.clone(),
                        client_validation: client_validation.clone(),
                        origin: object.to_string().into(),
                    },
                    object: object.clone(),
                    created: request.created,
                    field: request.field.clone(),
                });
        }
    }

    /// The winning settings per host, with a warning on every loser that
    /// asked for something different.
    /// Reads the ACME manager's state Secret: HTTP-01 answers
    /// (`challenge.<token>`) and last errors (`error.<namespace>.<name>`).
    pub(crate) fn read_acme_state(
        &mut self,
        resources: &ResourceSet,
        state: Option<&(String, String)>,
    ) -> BTreeMap<Box<str>, Box<str>> {
        let mut challenges = BTreeMap::new();
        let Some(s) = state.and_then(|(ns, name)| secret(resources, ns, name)) else {
            return challenges;
        };
        let mut keys: Vec<String> = s.data.iter().flatten().map(|(k, _)| k.clone()).collect();
        keys.extend(s.string_data.iter().flatten().map(|(k, _)| k.clone()));
        for key in keys {
            let Some(value) = secret_value(s, &key) else {
                continue;
            };
            let value = String::from_utf8_lossy(&value).into_owned();
            if let Some(token) = key.strip_prefix("challenge.") {
                challenges.insert(token.into(), value.into());
            } else if let Some(rest) = key.strip_prefix("error.")
                && let Some((ns, name)) = rest.split_once('.')
            {
                self.acme_errors.insert(format!("{ns}/{name}"), value);
            }
        }
        challenges
    }

    pub(crate) fn finish(self, diags: &mut Diagnostics) -> (TlsHosts, Vec<AcmeCertificate>) {
        let acme = self.acme;
        let mut hosts = Vec::with_capacity(self.proposals.len());
        for (host, mut list) in self.proposals {
            list.sort_by(|a, b| {
                (a.created.unwrap_or(i64::MIN), &a.object)
                    .cmp(&(b.created.unwrap_or(i64::MIN), &b.object))
            });
            let mut list = list.into_iter();
            let Some(winner) = list.next() else { continue };
            for other in list {
                let same = TlsHost {
                    origin: winner.settings.origin.clone(),
                    ..other.settings.clone()
                } == winner.settings;
                if !same && other.object != winner.object {
                    diags.warning(
                        &other.object,
                        other.field,
                        Reason::Conflict,
                        format!(
                            "TLS settings for {host} are already given by {} ({}), which takes precedence (older objects win); these are not used",
                            winner.object, winner.field
                        ),
                    );
                }
            }
            hosts.push(winner.settings);
        }
        (TlsHosts::new(hosts), acme)
    }
}

/// `backendTls` with its Secrets read. A Secret that cannot be used is an
/// error; the backend is then verified against the system's CAs (never
/// left unverified), so requests fail closed with 502 rather than trust
/// an unintended peer.
pub(crate) fn backend_tls(
    spec: &api::BackendTls,
    object: &ObjectRef,
    namespace: &str,
    field: &str,
    resources: &ResourceSet,
    now: SystemTime,
    diags: &mut Diagnostics,
) -> crate::traffic::BackendTlsDraft {
    let mut draft = crate::traffic::BackendTlsDraft {
        server_name: spec
            .server_name
            .as_deref()
            .map(|n| n.to_ascii_lowercase().into()),
        ..Default::default()
    };
    if let Some(name) = &draft.server_name
        && rustls_name_invalid(name)
    {
        diags.error(
            object,
            format!("{field}.serverName"),
            Reason::InvalidField,
            format!("{name:?} is not a DNS name or IP address"),
        );
        draft.server_name = None;
    }
    if let Some(r) = &spec.ca_certificate_ref {
        let source: Arc<str> = format!("{namespace}/{}", r.name).into();
        let f = format!("{field}.caCertificateRef");
        match secret(resources, namespace, &r.name) {
            None => diags.error(
                object,
                f,
                Reason::SecretNotFound,
                format!("Secret {source} does not exist (or is not labelled gatehouse.dev/secret); the system's CAs are used instead"),
            ),
            Some(s) => match secret_value(s, "ca.crt") {
                None => diags.error(object, f, Reason::InvalidCertificate, format!("Secret {source} has no ca.crt key; the system's CAs are used instead")),
                Some(pem) => match tls::check_ca_bundle(&pem) {
                    Ok(_) => {
                        draft.ca_source = Some(source);
                        draft.ca_pem = Some(pem);
                    }
                    Err(e) => diags.error(object, f, Reason::InvalidCertificate, format!("Secret {source}: {e}; the system's CAs are used instead")),
                },
            },
        }
    }
    if let Some(r) = &spec.client_certificate_ref {
        let source: Arc<str> = format!("{namespace}/{}", r.name).into();
        let f = format!("{field}.clientCertificateRef");
        let pair = secret(resources, namespace, &r.name)
            .map(|s| (secret_value(s, "tls.crt"), secret_value(s, "tls.key")));
        match pair {
            None => diags.error(
                object,
                f,
                Reason::SecretNotFound,
                format!("Secret {source} does not exist"),
            ),
            Some((Some(chain_pem), Some(key_pem))) => {
                match tls::check_pair(&chain_pem, &key_pem, now) {
                    Ok(info) => {
                        draft.client_certificate = Some(Certificate {
                            source,
                            not_after: info.not_after,
                            chain_pem,
                            key_pem,
                        });
                    }
                    Err(e) => diags.error(
                        object,
                        f,
                        Reason::InvalidCertificate,
                        format!("Secret {source}: {e}"),
                    ),
                }
            }
            Some(_) => diags.error(
                object,
                f,
                Reason::InvalidCertificate,
                format!("Secret {source} needs the keys tls.crt and tls.key"),
            ),
        }
    }
    draft
}

fn rustls_name_invalid(name: &str) -> bool {
    rustls::pki_types::ServerName::try_from(name).is_err()
}
