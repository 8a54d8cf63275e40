//! `gatehouse-kubesim [KUBECONFIG-DIR]`: runs the Kubernetes API simulator
//! until interrupted and writes a kubeconfig for it (default: the current
//! directory), so `kubectl --kubeconfig ./kubeconfig` talks to it.

use std::path::PathBuf;

#[tokio::main]
async fn main() {
    let dir = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let sim = testkit::kubesim::KubeSim::start().await;
    let path = sim.kubeconfig(&dir);
    eprintln!(
        "Kubernetes API simulator on http://{}; kubeconfig: {}",
        sim.addr,
        path.display()
    );
    let _ = tokio::signal::ctrl_c().await;
}
