//! Automatic certificates over ACME (RFC 8555) with HTTP-01 challenges.
//!
//! The manager reads what to keep issued from the live snapshot
//! (`snapshot.acme.certificates`, compiled from `ApiRoute.spec.tls.acme`)
//! and, while this replica leads, orders a certificate for every entry
//! that has none or has passed two thirds of its lifetime.
//!
//! Everything it produces goes through storage that the configuration
//! source already reads, so every replica serves the same thing through
//! the normal translate-and-publish path:
//! * the HTTP-01 answers and the last error per certificate live in one
//!   state Secret; the translator puts the answers into the snapshot (the
//!   data plane serves them at `/.well-known/acme-challenge/`) and the
//!   errors into the routes' status;
//! * certificates are written as `kubernetes.io/tls` Secrets.
//!
//! In Kubernetes mode those are Secrets in the API; in standalone mode,
//! Secret manifests in the storage directory, which is read like any other
//! manifest directory. Failures are retried with exponential backoff.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use snapshot::{AcmeCertificate, Snapshot};
use tokio::sync::watch;

/// Settings of the ACME manager.
#[derive(Clone, Debug)]
pub struct AcmeConfig {
    /// The ACME server's directory URL.
    pub directory: String,
    /// Default account contact.
    pub email: Option<String>,
    /// PEM CA certificate the ACME server's HTTPS is verified against
    /// (for private or test ACME servers); `None`: the system's roots.
    pub ca_bundle: Option<PathBuf>,
    /// Namespace and name of the state Secret.
    pub state: (String, String),
    /// First retry delay after a failure; doubles up to `retry_max`.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How often the manager looks for work.
    pub interval: Duration,
    /// Time given to other replicas to publish a challenge answer after
    /// this one serves it.
    pub propagation: Duration,
}

/// Where the manager keeps what it produces.
#[derive(Clone)]
pub enum Store {
    /// Secret manifests in a directory (standalone mode).
    Files(PathBuf),
    /// Secrets in the Kubernetes API.
    Kube(kube::Client),
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files(p) => f.debug_tuple("Files").field(p).finish(),
            Self::Kube(_) => f.write_str("Kube"),
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Reads the live snapshot.
#[derive(Clone)]
pub struct CurrentSnapshot(pub Arc<dyn Fn() -> Arc<Snapshot> + Send + Sync>);

impl std::fmt::Debug for CurrentSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CurrentSnapshot")
    }
}

fn secret_manifest(
    namespace: &str,
    name: &str,
    type_: Option<&str>,
    data: &BTreeMap<String, String>,
) -> Secret {
    let mut value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"gatehouse.dev/secret": "true", "gatehouse.dev/acme": "true"},
        },
        // `data`, not `stringData`: the API server keeps only `data`, so
        // a replaced Secret holds exactly these keys.
        "data": data
            .iter()
            .map(|(k, v)| (k.clone(), base64::engine::general_purpose::STANDARD.encode(v)))
            .collect::<BTreeMap<String, String>>(),
    });
    if let Some(t) = type_ {
        value["type"] = serde_json::Value::from(t);
    }
    serde_json::from_value(value).expect("a Secret built from known fields")
}

/// Writes `text` to `path` atomically with owner-only permissions. The
/// temporary name is hidden, so the manifest reader never sees half a
/// file.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Store {
    async fn put_secret(&self, secret: Secret, file: &str) -> Result<(), BoxError> {
        match self {
            Self::Files(dir) => {
                let text = serde_json::to_string_pretty(&secret)?;
                write_private(&dir.join(format!("{file}.json")), &text)?;
                Ok(())
            }
            Self::Kube(client) => {
                let ns = secret.metadata.namespace.clone().unwrap_or_default();
                let name = secret.metadata.name.clone().unwrap_or_default();
                let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
                match api.get_opt(&name).await? {
                    Some(existing) => {
                        let mut updated = secret;
                        updated.metadata.resource_version = existing.metadata.resource_version;
                        api.replace(&name, &PostParams::default(), &updated).await?;
                    }
                    None => {
                        api.create(&PostParams::default(), &secret).await?;
                    }
                }
                Ok(())
            }
        }
    }

    async fn account(&self, state: &(String, String)) -> Result<Option<String>, BoxError> {
        match self {
            Self::Files(dir) => match std::fs::read_to_string(dir.join("account.credentials")) {
                Ok(text) => Ok(Some(text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            },
            Self::Kube(client) => {
                let api: Api<Secret> = Api::namespaced(client.clone(), &state.0);
                let secret = api.get_opt(&format!("{}-account", state.1)).await?;
                Ok(secret
                    .and_then(|s| s.data)
                    .and_then(|d| d.get("credentials.json").cloned())
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned()))
            }
        }
    }

    async fn save_account(&self, state: &(String, String), json: &str) -> Result<(), BoxError> {
        match self {
            Self::Files(dir) => Ok(write_private(&dir.join("account.credentials"), json)?),
            Self::Kube(_) => {
                let data = BTreeMap::from([("credentials.json".to_owned(), json.to_owned())]);
                let mut secret =
                    secret_manifest(&state.0, &format!("{}-account", state.1), None, &data);
                // The account key is not configuration: keep it out of the
                // watched set.
                secret.metadata.labels = None;
                self.put_secret(secret, "account").await
            }
        }
    }
}

/// Whether a certificate valid over `current` (Unix seconds) should be
/// renewed at `now`: when none is stored, or two thirds of its lifetime
/// have passed.
pub fn due(current: Option<(i64, i64)>, now: i64) -> bool {
    match current {
        None => true,
        Some((not_before, not_after)) => now >= not_before + (not_after - not_before) * 2 / 3,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The manager's memory between rounds.
struct Manager {
    config: AcmeConfig,
    store: Store,
    current: CurrentSnapshot,
    account: Option<Account>,
    /// Per certificate (`namespace/name`): when to try again and the delay
    /// after the next failure.
    backoff: HashMap<String, (tokio::time::Instant, Duration)>,
    errors: BTreeMap<String, String>,
    challenges: BTreeMap<String, String>,
}

/// Runs the manager until `shutdown` says so. It works only while
/// `leading` is true (always, in standalone mode).
pub async fn run(
    config: AcmeConfig,
    store: Store,
    current: CurrentSnapshot,
    mut leading: watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut manager = Manager {
        config,
        store,
        current,
        account: None,
        backoff: HashMap::new(),
        errors: BTreeMap::new(),
        challenges: BTreeMap::new(),
    };
    loop {
        if *leading.borrow() {
            manager.round().await;
        }
        tokio::select! {
            () = &mut shutdown => return,
            _ = leading.changed() => {}
            () = tokio::time::sleep(manager.config.interval) => {}
        }
    }
}

impl Manager {
    async fn round(&mut self) {
        let snapshot = (self.current.0)();
        let now = unix_now();
        let mut state_changed = false;
        for cert in &snapshot.acme.certificates {
            let key = format!("{}/{}", cert.namespace, cert.secret);
            if !due(cert.current, now) {
                if self.errors.remove(&key).is_some() {
                    state_changed = true;
                }
                self.backoff.remove(&key);
                continue;
            }
            if self
                .backoff
                .get(&key)
                .is_some_and(|(until, _)| tokio::time::Instant::now() < *until)
            {
                continue;
            }
            tracing::info!(names = ?cert.names, secret = %key, "ordering a certificate");
            let started = tokio::time::Instant::now();
            match self.issue(cert).await {
                Ok(()) => {
                    tracing::info!(names = ?cert.names, secret = %key, elapsed_ms = started.elapsed().as_millis() as u64, "certificate issued");
                    self.backoff.remove(&key);
                    self.errors.remove(&key);
                }
                Err(e) => {
                    let delay = self
                        .backoff
                        .get(&key)
                        .map_or(self.config.retry_min, |(_, d)| *d);
                    tracing::warn!(names = ?cert.names, secret = %key, error = %e, retry_in = ?delay, "obtaining a certificate failed");
                    self.backoff.insert(
                        key.clone(),
                        (
                            tokio::time::Instant::now() + delay,
                            (delay * 2).min(self.config.retry_max),
                        ),
                    );
                    self.errors.insert(key, e.to_string());
                }
            }
            state_changed = true;
        }
        if state_changed && let Err(e) = self.write_state().await {
            tracing::warn!(error = %e, "cannot write the ACME state");
        }
    }

    async fn write_state(&self) -> Result<(), BoxError> {
        let mut data = BTreeMap::new();
        for (token, answer) in &self.challenges {
            data.insert(format!("challenge.{token}"), answer.clone());
        }
        for (key, error) in &self.errors {
            let (ns, name) = key.split_once('/').unwrap_or(("", key));
            data.insert(format!("error.{ns}.{name}"), error.clone());
        }
        let (ns, name) = &self.config.state;
        self.store
            .put_secret(secret_manifest(ns, name, None, &data), "state")
            .await
    }

    async fn account(&mut self, email: Option<&str>) -> Result<Account, BoxError> {
        if let Some(a) = &self.account {
            return Ok(a.clone());
        }
        let builder = || match &self.config.ca_bundle {
            Some(path) => Account::builder_with_root(path),
            None => Account::builder(),
        };
        let account = match self.store.account(&self.config.state).await? {
            Some(json) => {
                let credentials: AccountCredentials = serde_json::from_str(&json)?;
                builder()?.from_credentials(credentials).await?
            }
            None => {
                let contact = email
                    .or(self.config.email.as_deref())
                    .map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder()?
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.config.directory.clone(),
                        None,
                    )
                    .await?;
                self.store
                    .save_account(&self.config.state, &serde_json::to_string(&credentials)?)
                    .await?;
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    async fn issue(&mut self, cert: &AcmeCertificate) -> Result<(), BoxError> {
        let account = self.account(cert.email.as_deref()).await?;
        let identifiers: Vec<Identifier> = cert
            .names
            .iter()
            .map(|n| Identifier::Dns(n.to_string()))
            .collect();
        let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;

        // Publish every answer first, then tell the server to look.
        let mut tokens = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(auth) = authorizations.next().await {
            let mut auth = auth?;
            match auth.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => return Err(format!("authorization is {other:?}").into()),
            }
            let challenge = auth
                .challenge(ChallengeType::Http01)
                .ok_or("the ACME server offers no HTTP-01 challenge")?;
            let answer = challenge.key_authorization().as_str().to_owned();
            tokens.push(challenge.token.clone());
            self.challenges.insert(challenge.token.clone(), answer);
        }
        let result = self.complete(&mut order, &tokens, cert).await;
        for t in &tokens {
            self.challenges.remove(t);
        }
        result
    }

    async fn complete(
        &mut self,
        order: &mut instant_acme::Order,
        tokens: &[String],
        cert: &AcmeCertificate,
    ) -> Result<(), BoxError> {
        if !tokens.is_empty() {
            self.write_state().await?;
            self.wait_served(tokens).await?;
            let mut authorizations = order.authorizations();
            while let Some(auth) = authorizations.next().await {
                let mut auth = auth?;
                if auth.status != AuthorizationStatus::Pending {
                    continue;
                }
                if let Some(mut challenge) = auth.challenge(ChallengeType::Http01) {
                    challenge.set_ready().await?;
                }
            }
        }
        let retries = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(90));
        let status = order.poll_ready(&retries).await?;
        if status != OrderStatus::Ready {
            let detail = order
                .state()
                .error
                .as_ref()
                .map_or_else(|| format!("{status:?}"), |p| p.to_string());
            return Err(format!("the order did not become ready: {detail}").into());
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&retries).await?;
        // Never store something the data plane would refuse.
        tls::check_pair(chain_pem.as_bytes(), key_pem.as_bytes(), SystemTime::now())?;
        let data = BTreeMap::from([
            ("tls.crt".to_owned(), chain_pem),
            ("tls.key".to_owned(), key_pem),
        ]);
        let secret = secret_manifest(
            &cert.namespace,
            &cert.secret,
            Some("kubernetes.io/tls"),
            &data,
        );
        self.store
            .put_secret(
                secret,
                &format!("certificate-{}-{}", cert.namespace, cert.secret),
            )
            .await
    }

    /// Waits until this replica's live snapshot serves every token, then
    /// the propagation time for the others.
    async fn wait_served(&self, tokens: &[String]) -> Result<(), BoxError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let snapshot = (self.current.0)();
            if tokens
                .iter()
                .all(|t| snapshot.acme.challenges.contains_key(t.as_str()))
            {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err("the challenge answers were not published within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(self.config.propagation).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_starts_at_two_thirds_of_the_lifetime() {
        assert!(due(None, 0));
        // 90 days from 0: renew from day 60.
        let life = (0, 90 * 86_400);
        assert!(!due(Some(life), 59 * 86_400));
        assert!(due(Some(life), 60 * 86_400));
        assert!(due(Some(life), 100 * 86_400));
    }
}
