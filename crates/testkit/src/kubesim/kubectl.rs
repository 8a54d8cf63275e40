//! The real `kubectl`, pointed at a simulator.

use std::path::{Path, PathBuf};

use super::KubeSim;

/// Runs the real `kubectl` against one simulator, with its own kubeconfig
/// and discovery cache so tests do not share state.
#[derive(Clone, Debug)]
pub struct Kubectl {
    program: PathBuf,
    kubeconfig: PathBuf,
    cache: PathBuf,
}

/// What one `kubectl` run printed.
#[derive(Clone, Debug)]
pub struct Output {
    /// Whether it exited with status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Kubectl {
    /// A `kubectl` for `sim`, keeping its files in `dir`. Uses `$KUBECTL`,
    /// else `.tools/bin/kubectl` of this workspace (`make kubectl`), else
    /// `kubectl` on `PATH`.
    pub fn new(sim: &KubeSim, dir: &Path) -> Self {
        let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/bin/kubectl");
        let program = std::env::var_os("KUBECTL").map_or_else(
            || {
                if local.exists() {
                    local
                } else {
                    PathBuf::from("kubectl")
                }
            },
            PathBuf::from,
        );
        Self {
            program,
            kubeconfig: sim.kubeconfig(dir),
            cache: dir.join("kubectl-cache"),
        }
    }

    /// The kubeconfig it uses (for the gateway's `--kubeconfig`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// Runs `kubectl args...` and returns what it printed.
    pub async fn run(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(&self.program)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache)
            .arg("--request-timeout=10s")
            .args(args)
            .output()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run {}: {e}; install kubectl or run `make kubectl`",
                    self.program.display()
                )
            });
        Output {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs `kubectl args...`, panicking with its output if it fails.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args).await;
        assert!(
            out.success,
            "kubectl {} failed:\n{}{}",
            args.join(" "),
            out.stdout,
            out.stderr
        );
        out.stdout
    }

    /// `kubectl apply --validate=false -f <file>`, `manifest` written to a
    /// temporary file first.
    pub async fn apply(&self, manifest: &str) -> String {
        let dir = tempfile::tempdir().expect("temporary directory");
        let path = dir.path().join("manifest.yaml");
        std::fs::write(&path, manifest).expect("write manifest");
        let path = path.display().to_string();
        self.ok(&["apply", "--validate=false", "-f", &path]).await
    }
}
