//! `gatehouse run`: the cluster's ingress controller.

use std::process::ExitCode;

use anyhow::Context;
use controller::Pipeline;
use controller::kube::{KubeOptions, LeaderConfig, PublishTarget};
use controller::standalone::Debounce;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::cli::RunArgs;

pub(crate) fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let identity = args.instance.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "gatehouse".into());
        format!("{host}-{}", std::process::id())
    });
    let publish = match (&args.publish_service, args.publish_address.is_empty()) {
        (Some(svc), _) => {
            let (ns, name) = svc
                .split_once('/')
                .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
                .with_context(|| format!("--publish-service {svc:?} is not namespace/name"))?;
            PublishTarget::Service(ns.to_owned(), name.to_owned())
        }
        (None, false) => PublishTarget::Addresses(args.publish_address.clone()),
        (None, true) => PublishTarget::None,
    };
    anyhow::ensure!(
        args.lease_renew_interval < args.lease_duration,
        "--lease-renew-interval must be shorter than --lease-duration"
    );
    let mut options = KubeOptions {
        namespaces: args.watch_namespaces.clone(),
        debounce: Debounce {
            quiet: args.debounce_quiet,
            max_delay: args.debounce_max,
        },
        publish,
        leader: LeaderConfig {
            namespace: args.leader_election_namespace.clone(),
            name: args.leader_election_name.clone(),
            identity: identity.clone(),
            lease_duration: args.lease_duration,
            renew_interval: args.lease_renew_interval,
        },
        acme: None,
    };
    let mut translate_options = args.translate.options();
    let acme_state = (
        args.leader_election_namespace.clone(),
        "gatehouse-acme".to_owned(),
    );
    let acme = super::serve::acme_config(&args.serve, acme_state.clone());
    if acme.is_some() {
        translate_options.acme_state = Some(acme_state);
    }
    let runtime = super::serve::runtime(&args.serve)?;
    let kubeconfig = args.kubeconfig.clone();
    runtime.block_on(super::serve::serve(
        &args.serve,
        move |publish, shutdown, current, telemetry| async move {
            options.acme = acme.map(|config| (config, current));
            let client = client(kubeconfig.as_deref(), &identity).await?;
            let pipeline = Pipeline::new(translate_options, publish).with_telemetry(telemetry);
            controller::kube::run(client, options, pipeline, shutdown.wait()).await;
            Ok(())
        },
    ))?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

/// A client from the kubeconfig flag, else in-cluster, else the default
/// kubeconfig. Making it does not contact the API server: an unreachable
/// server only delays readiness.
async fn client(kubeconfig: Option<&std::path::Path>, identity: &str) -> anyhow::Result<Client> {
    let mut config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("using {}", path.display()))?
        }
        None => match Config::incluster() {
            Ok(c) => c,
            Err(_) => Config::infer()
                .await
                .context("no in-cluster service account and no usable kubeconfig")?,
        },
    };
    if let Ok(agent) = http::HeaderValue::try_from(format!(
        "gatehouse/{} ({identity})",
        env!("CARGO_PKG_VERSION")
    )) {
        config.headers.push((http::header::USER_AGENT, agent));
    }
    Client::try_from(config).context("building the Kubernetes client")
}
