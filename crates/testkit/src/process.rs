//! Running the real `gatehouse` binary in tests.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::client::HttpClient;

/// Where cargo put the workspace's binaries for this test run: next to the
/// test executable's `deps/` directory. `GATEHOUSE_BIN_DIR` overrides it.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("GATEHOUSE_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("test executables live in a directory");
    let dir = if deps.ends_with("deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    dir.to_owned()
}

/// Path of a workspace binary, failing with a hint when it was not built.
pub fn binary(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.exists(),
        "{} does not exist: build the binaries first (`cargo build --workspace --bins`, which `make test` does)",
        path.display()
    );
    path
}

/// A loopback address with a port that was free a moment ago.
///
/// Ports are drawn below Linux's ephemeral range (32768–60999), where the
/// kernel hands out the local ports of outgoing connections: a port taken
/// from there could be reused by some test's client socket before the
/// process under test binds it.
pub fn free_addr() -> SocketAddr {
    for _ in 0..1000 {
        let port = fastrand::u16(10_000..32_000);
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            return listener
                .local_addr()
                .expect("bound listener has an address");
        }
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener
        .local_addr()
        .expect("bound listener has an address")
}

/// Polls `check` every 20 ms until it returns true, panicking with `what`
/// after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A running `gatehouse` process; killed when dropped.
#[derive(Debug)]
pub struct GatewayProcess {
    child: Child,
    /// The plain HTTP listener.
    pub http: SocketAddr,
    /// The admin listener.
    pub admin: SocketAddr,
    /// The HTTPS listener.
    pub https: SocketAddr,
    log: PathBuf,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl GatewayProcess {
    /// Starts `gatehouse standalone --manifests <dir>` on free ports with
    /// `extra` arguments, and waits until it is ready.
    pub async fn standalone(manifests: &Path, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "standalone".into(),
            "--manifests".into(),
            manifests.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        Self::start(&args, Duration::from_secs(20)).await
    }

    /// Starts `gatehouse` with `args` on free ports and waits until it is
    /// ready. When a port was taken between choosing and binding it (a
    /// race with other tests), starts again on new ports.
    pub async fn start(args: &[String], timeout: Duration) -> Self {
        for _ in 0..5 {
            let mut gw = Self::spawn(args);
            let client = HttpClient::new();
            let deadline = Instant::now() + timeout;
            loop {
                if let Ok(r) = client.get(gw.admin, "localhost", "/readyz").await
                    && r.status == 200
                {
                    return gw;
                }
                if let Ok(Some(_)) = gw.child.try_wait() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "gatehouse was not ready within {timeout:?}; its log:\n{}",
                    gw.logs()
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let logs = gw.logs();
            assert!(
                logs.contains("Address already in use"),
                "gatehouse exited before it was ready; its log:\n{logs}"
            );
        }
        panic!("no free ports for gatehouse after 5 attempts");
    }

    /// Starts `gatehouse` with `args` plus `--http-addr` and
    /// `--admin-addr` on free ports, without waiting.
    pub fn spawn(args: &[String]) -> Self {
        let http = free_addr();
        let admin = free_addr();
        let https = free_addr();
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = dir.path().join("gatehouse.log");
        let out_path = dir.path().join("stdout.log");
        let err = std::fs::File::create(&log).expect("log file");
        let out = std::fs::File::create(&out_path).expect("stdout file");
        let child = Command::new(binary("gatehouse"))
            .args(args)
            .arg("--http-addr")
            .arg(http.to_string())
            .arg("--admin-addr")
            .arg(admin.to_string())
            .arg("--https-addr")
            .arg(https.to_string())
            .env(
                "RUST_LOG",
                std::env::var("GATEHOUSE_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start gatehouse");
        Self {
            child,
            http,
            admin,
            https,
            log,
            out: out_path,
            _dir: dir,
        }
    }

    /// Waits for `/readyz` to answer 200.
    pub async fn wait_ready(&self, timeout: Duration) {
        let client = HttpClient::new();
        let admin = self.admin;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(r) = client.get(admin, "localhost", "/readyz").await
                && r.status == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gatehouse was not ready within {timeout:?}; its log:\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a signal (`TERM`, `INT`, `KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the process wrote to stderr (its own log) and stdout
    /// (the access log) so far.
    pub fn logs(&self) -> String {
        let mut text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.push_str(&self.stdout());
        text
    }

    /// Everything the process wrote to stdout so far: the access log.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `gatehouse` with `args` to completion and returns its exit status
/// and combined output.
pub fn run_gatehouse(args: &[&str]) -> (ExitStatus, String) {
    let out = Command::new(binary("gatehouse"))
        .args(args)
        .output()
        .expect("run gatehouse");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status, text)
}
