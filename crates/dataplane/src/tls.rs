//! The HTTPS listener's certificates: one rustls server configuration per
//! distinct (certificate, client-certificate policy) of the live snapshot,
//! chosen per connection by SNI — exact name, then one-label wildcard, then
//! the default certificate.
//!
//! The configurations are rebuilt with every publish (reusing those whose
//! inputs did not change) and swapped in with the snapshot, so a rotated
//! certificate is served to the next handshake while established
//! connections keep the one they negotiated.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::sign::CertifiedKey;
use snapshot::{HostPattern, Snapshot, TlsHost};

/// What a handshake picks.
pub(crate) enum Choice {
    /// Serve with this configuration; `host` is the TLS host entry it was
    /// chosen for (`None`: the default certificate, no entry).
    Serve {
        config: Arc<ServerConfig>,
        host: Option<HostPattern>,
    },
    /// The host requires client certificates but its CA bundle is unusable:
    /// refuse rather than serve it unauthenticated.
    Refuse,
}

/// The server configurations of one snapshot.
#[derive(Debug)]
pub(crate) struct TlsState {
    /// Index for index with `snapshot.tls.hosts`; `None`: refuse.
    per_host: Vec<Option<Arc<ServerConfig>>>,
    default: Arc<ServerConfig>,
}

/// Material shared by every configuration the gateway builds.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) default_cert: Arc<CertifiedKey>,
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
}

impl Shared {
    pub(crate) fn new(default_cert: Arc<CertifiedKey>) -> Self {
        Self {
            default_cert,
            sessions: rustls::server::ServerSessionMemoryCache::new(4096),
            // Falls back to no tickets (full handshakes) if the system
            // cannot supply randomness for the ticket key.
            tickets: rustls::crypto::ring::Ticketer::new().unwrap_or_else(|_| Arc::new(NoTickets)),
        }
    }

    fn config(
        &self,
        cert: Arc<CertifiedKey>,
        client: Option<&tls::ClientAuth>,
    ) -> Result<Arc<ServerConfig>, tls::CertError> {
        let mut config = tls::server_config(cert, client)?;
        // Resumption is shared only between configurations without client
        // certificates: a session must not carry one host's client
        // verification over to another's.
        if client.is_none() {
            config.session_storage = self.sessions.clone();
            config.ticketer = self.tickets.clone();
        }
        Ok(Arc::new(config))
    }
}

#[derive(Debug)]
struct NoTickets;

impl ProducesTickets for NoTickets {
    fn enabled(&self) -> bool {
        false
    }
    fn lifetime(&self) -> u32 {
        0
    }
    fn encrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
    fn decrypt(&self, _: &[u8]) -> Option<Vec<u8>> {
        None
    }
}

/// Identifies the inputs of a configuration, to reuse it across publishes.
type Key = (Arc<[u8]>, Arc<[u8]>, Option<(Arc<[u8]>, bool)>);

fn key(host: &TlsHost) -> Option<Key> {
    let cert = host.certificate.as_ref();
    Some((
        cert.map_or_else(|| Arc::from(&[][..]), |c| c.chain_pem.clone()),
        cert.map_or_else(|| Arc::from(&[][..]), |c| c.key_pem.clone()),
        host.client_validation
            .as_ref()
            .map(|v| (v.ca_pem.clone(), v.required)),
    ))
}

impl TlsState {
    /// Configurations for `snapshot`, reusing those of `previous` (built
    /// for `previous_snapshot`) whose inputs are unchanged.
    pub(crate) fn build(
        shared: &Shared,
        snapshot: &Snapshot,
        previous: Option<(&TlsState, &Snapshot)>,
    ) -> Self {
        let mut reuse: HashMap<Key, Option<Arc<ServerConfig>>> = HashMap::new();
        if let Some((state, old)) = previous {
            for (host, config) in old.tls.hosts.iter().zip(&state.per_host) {
                if let Some(k) = key(host) {
                    reuse.insert(k, config.clone());
                }
            }
        }
        let default = match previous {
            Some((state, _)) => state.default.clone(),
            None => shared
                .config(shared.default_cert.clone(), None)
                .unwrap_or_else(|e| panic!("the default certificate was checked at start: {e}")),
        };
        let per_host = snapshot
            .tls
            .hosts
            .iter()
            .map(|host| {
                let k = key(host);
                if let Some(config) = k.as_ref().and_then(|k| reuse.get(k)) {
                    return config.clone();
                }
                let built = build_one(shared, host);
                if let Some(k) = k {
                    reuse.insert(k, built.clone());
                }
                built
            })
            .collect();
        Self { per_host, default }
    }

    /// The configuration for a ClientHello naming `sni` (lowercase).
    pub(crate) fn choose(&self, snapshot: &Snapshot, sni: Option<&str>) -> Choice {
        let position = sni.and_then(|name| snapshot.tls.position(name));
        match position {
            Some(i) => match &self.per_host[i] {
                Some(config) => Choice::Serve {
                    config: config.clone(),
                    host: Some(snapshot.tls.hosts[i].host.clone()),
                },
                None => Choice::Refuse,
            },
            None => Choice::Serve {
                config: self.default.clone(),
                host: None,
            },
        }
    }
}

fn build_one(shared: &Shared, host: &TlsHost) -> Option<Arc<ServerConfig>> {
    let cert = match &host.certificate {
        None => shared.default_cert.clone(),
        Some(c) => match tls::certified_key(&c.chain_pem, &c.key_pem) {
            Ok(ck) => Arc::new(ck),
            Err(e) => {
                // The translator checked it; this is defence in depth.
                tracing::warn!(host = %host.host, source = %c.source, error = %e, "certificate unusable; serving the default certificate");
                shared.default_cert.clone()
            }
        },
    };
    let client = match &host.client_validation {
        None => None,
        Some(v) => match tls::ca_bundle(&v.ca_pem) {
            Ok(roots) => Some(tls::ClientAuth {
                roots: Arc::new(roots),
                required: v.required,
            }),
            Err(_) => return None,
        },
    };
    match shared.config(cert, client.as_ref()) {
        Ok(config) => Some(config),
        Err(e) => {
            tracing::warn!(host = %host.host, error = %e, "cannot build the TLS configuration; handshakes for this host are refused");
            None
        }
    }
}
