//! Pebble, the ACME test server (Debian package `pebble`), with its fake
//! DNS (`pebble-challtestsrv`) answering 127.0.0.1 for every name, so
//! HTTP-01 validation reaches the gateway on loopback.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::free_addr;
use crate::pki::Ca;

/// A running Pebble; both processes are killed when dropped.
#[derive(Debug)]
pub struct Pebble {
    /// The directory URL to give an ACME client.
    pub directory: String,
    /// PEM CA that Pebble's own HTTPS certificate chains to.
    pub api_ca_pem: String,
    /// File holding `api_ca_pem`.
    pub api_ca_file: PathBuf,
    /// Pebble's management address (`/roots/0` serves the issuing root).
    pub management: std::net::SocketAddr,
    pebble: Child,
    dns: Child,
    _dir: tempfile::TempDir,
}

impl Pebble {
    /// Whether the `pebble` binaries are installed.
    pub fn available() -> bool {
        ["pebble", "pebble-challtestsrv"].iter().all(|b| {
            Command::new(b)
                .arg("-h")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
    }

    /// Starts Pebble validating HTTP-01 challenges on `http_port` of
    /// 127.0.0.1, and waits until its directory answers.
    pub async fn start(http_port: u16) -> Self {
        Self::start_on(free_addr(), http_port).await
    }

    /// As [`Pebble::start`], with the ACME API on `listen`.
    pub async fn start_on(listen: std::net::SocketAddr, http_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ca = Ca::new("Pebble API test CA");
        let server = ca.server(&["localhost", "127.0.0.1"]);
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let api_ca_file = dir.path().join("api-ca.pem");
        std::fs::write(&cert, &server.cert).expect("write");
        std::fs::write(&key, &server.key).expect("write");
        std::fs::write(&api_ca_file, ca.pem()).expect("write");
        let management = free_addr();
        let dns = free_addr();
        let dns_mgmt = free_addr();
        let config = serde_json::json!({"pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": cert,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": free_addr().port(),
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_file = dir.path().join("pebble.json");
        std::fs::write(&config_file, config.to_string()).expect("write");
        let log = |name: &str| {
            Stdio::from(std::fs::File::create(dir.path().join(name)).expect("log file"))
        };
        let dns_child = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns.to_string(),
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args([
                "-management",
                &dns_mgmt.to_string(),
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
            ])
            .stdout(log("dns.log"))
            .stderr(log("dns.err"))
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Self {
            directory: format!("https://localhost:{}/dir", listen.port()),
            api_ca_pem: ca.pem(),
            api_ca_file,
            management,
            pebble,
            dns: dns_child,
            _dir: dir,
        }
    }

    /// Pebble's log so far.
    pub fn logs(&self) -> String {
        ["pebble.log", "pebble.err"]
            .iter()
            .map(|f| std::fs::read_to_string(self._dir.path().join(f)).unwrap_or_default())
            .collect()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.pebble.kill();
        let _ = self.dns.kill();
        let _ = self.pebble.wait();
        let _ = self.dns.wait();
    }
}
