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
    let mut options = args.translate.options();
    let mut roots = args.manifests.clone();
    let state = ("gatehouse".to_owned(), "gatehouse-acme".to_owned());
    let acme = super::serve::acme_config(&args.serve, state.clone());
    let acme_storage = match (&acme, &args.serve.acme_storage) {
        (None, _) => None,
        (Some(_), None) => {
            anyhow::bail!("--acme-directory needs --acme-storage in standalone mode")
        }
        (Some(_), Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("--acme-storage {}", dir.display()))?;
            roots.push(dir.clone());
            options.acme_state = Some(state);
            Some(dir.clone())
        }
    };
    let config = StandaloneConfig {
        roots,
        debounce: Debounce::default(),
        resync: Duration::from_secs(10),
    };
    runtime.block_on(super::serve::serve(
        &args.serve,
        move |publish, shutdown, current, telemetry| async move {
            if let (Some(config), Some(dir)) = (acme, acme_storage) {
                let (_always, leading) = tokio::sync::watch::channel(true);
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    let _keep = _always;
                    controller::acme::run(
                        config,
                        controller::acme::Store::Files(dir),
                        current,
                        leading,
                        stop.wait(),
                    )
                    .await;
                });
            }
            let pipeline = Pipeline::new(options, publish).with_telemetry(telemetry);
            standalone::run(config, pipeline, shutdown.wait())
                .await
                .context("watching the manifests")
        },
    ))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
