//! `gatehouse standalone`: serve from a directory of manifests.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use controller::Pipeline;
use controller::standalone::{self, Debounce, StandaloneConfig};

use crate::cli::StandaloneArgs;

pub(crate) fn run(args: &StandaloneArgs) -> anyhow::Result<ExitCode> {
    for path in &args.manifests {
        std::fs::metadata(path)
            .with_context(|| format!("--manifests {}: cannot read it", path.display()))?;
    }
    let runtime = super::serve::runtime(&args.serve)?;
    let options = args.translate.options();
    let config = StandaloneConfig {
        roots: args.manifests.clone(),
        debounce: Debounce::default(),
        resync: Duration::from_secs(10),
    };
    runtime.block_on(super::serve::serve(
        &args.serve,
        move |publish, shutdown| async move {
            let pipeline = Pipeline::new(options, publish);
            standalone::run(config, pipeline, shutdown.wait())
                .await
                .context("watching the manifests")
        },
    ))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
