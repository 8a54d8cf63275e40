//! What every serving mode shares: runtime, listeners, admin endpoints,
//! signals and graceful shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use controller::Publish;
use controller::acme::{AcmeConfig, CurrentSnapshot};
use dataplane::{Gateway, ListenerConfig, Proxy, ProxyConfig};
use telemetry::Telemetry;

use crate::cli::{Scheduler, ServeArgs};
use crate::shutdown::{self, Shutdown};

/// Data-plane worker threads: as `--worker-threads` says, else one per
/// CPU this process may run on.
fn worker_count(args: &ServeArgs) -> anyhow::Result<usize> {
    match args.worker_threads {
        Some(0) => anyhow::bail!("--worker-threads must be at least 1"),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism().map_or(1, std::num::NonZero::get)),
    }
}

/// Whether the data plane runs on worker threads of its own, a runtime
/// each (`workers.rs`), rather than on the main runtime.
fn per_thread(args: &ServeArgs, workers: usize) -> bool {
    workers > 1 && args.scheduler == Scheduler::PerThread
}

/// Builds the process's main runtime. With one worker thread it serves
/// everything on one thread (no work stealing: no cross-thread wakeups on
/// any request); with a runtime per worker thread it runs the control
/// plane only, also on one thread; with work stealing it has all the
/// worker threads.
pub(crate) fn runtime(args: &ServeArgs) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = worker_count(args)?;
    let mut builder = if workers == 1 || per_thread(args, workers) {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder
        .thread_name("gatehouse-worker")
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The data plane's listening sockets.
enum Listeners {
    /// Served on the main runtime.
    Shared {
        http: tokio::net::TcpListener,
        https: Option<tokio::net::TcpListener>,
    },
    /// A socket of each address per worker thread.
    PerThread(Vec<crate::workers::Sockets>),
}

/// Metrics, access log and tracer, as the flags say. Inside the runtime:
/// the span exporter is a task.
fn telemetry(args: &ServeArgs) -> Telemetry {
    let metrics = telemetry::Metrics::new();
    let access_log = telemetry::AccessLog::stdout(
        telemetry::access_log::Config {
            format: args.access_log,
            sample: args.access_log_sample,
        },
        metrics.access_log_dropped.clone(),
    );
    let tracer = match &args.otlp_endpoint {
        None => telemetry::Tracer::propagate_only(),
        Some(endpoint) => {
            tracing::info!(%endpoint, ratio = args.trace_sample_ratio, "exporting traces");
            telemetry::Tracer::exporting(
                args.trace_sample_ratio,
                telemetry::trace::ExportConfig {
                    endpoint: endpoint.clone(),
                    service_name: args.service_name.clone(),
                    flush_interval: Duration::from_millis(500),
                },
                metrics.spans_exported.clone(),
                metrics.spans_dropped.clone(),
            )
        }
    };
    Telemetry {
        metrics,
        access_log,
        tracer,
    }
}

/// Binds the listeners, starts `source` (which publishes snapshots through
/// the function it is given), serves until SIGTERM or SIGINT, drains, and
/// returns. An error from `source` stops the process with that error.
pub(crate) async fn serve<S, F>(args: &ServeArgs, source: S) -> anyhow::Result<()>
where
    S: FnOnce(Publish, Shutdown, CurrentSnapshot, Arc<Telemetry>) -> F,
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let workers = worker_count(args)?;
    let per_thread = per_thread(args, workers);
    let https_addr = (!args.no_https).then_some(args.https_addr);
    let listeners = if per_thread {
        Listeners::PerThread(crate::workers::bind(workers, args.http_addr, https_addr)?)
    } else {
        let http = dataplane::bind(args.http_addr).await?;
        let https = match https_addr {
            Some(addr) => Some(dataplane::bind(addr).await?),
            None => None,
        };
        Listeners::Shared { http, https }
    };
    let admin = dataplane::bind(args.admin_addr).await?;
    tracing::info!(
        http = %args.http_addr,
        https = ?https_addr,
        admin = %args.admin_addr,
        workers,
        scheduler = if per_thread { "per-thread" } else { "one runtime" },
        "listening"
    );

    let (shutdown, trigger) = shutdown::on_signals()?;
    let telemetry = Arc::new(telemetry(args));
    // Built in order: the gateway's state with its response cache, then
    // the proxy over it; nothing is wired back afterwards.
    let gateway = Arc::new(
        Gateway::with_telemetry(telemetry.clone())
            .with_cache(dataplane::ResponseCache::new(args.cache_max_bytes)),
    );
    if https_addr.is_some() {
        let (chain, key) = default_certificate(args)?;
        gateway
            .set_default_certificate(&chain, &key)
            .context("the default certificate")?;
    }
    // The upstream pools keep a share per worker runtime (and one for
    // the threads of any other).
    let pool_shares = if per_thread { workers } else { 0 };
    let mut limiter = dataplane::RateLimiter::new(args.rate_limit_max_keys);
    if let Some(url) = &args.redis_url {
        limiter = limiter
            .with_redis(url, args.redis_timeout)
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    let proxy = Arc::new(
        Proxy::new(
            gateway.clone(),
            ProxyConfig {
                default_timeout: args.upstream_timeout,
                connect_timeout: args.connect_timeout,
                max_body_match_bytes: args.max_body_match_bytes,
                max_request_body_bytes: args.max_request_body_bytes,
                trusted_proxies: args.trusted_proxies.clone(),
                tunnel_idle_timeout: args.tunnel_idle_timeout,
                https_redirect_port: args.https_redirect_port,
                workers: pool_shares,
                ..ProxyConfig::default()
            },
        )
        .with_rate_limiter(limiter),
    );
    // Active health checks follow every publish on a task of their own.
    tokio::spawn(proxy.health_checks());

    // The admin listener outlives the data listener's drain, so probes
    // keep answering (readiness fails) while requests finish.
    let (admin_stop, admin_stopped) = tokio::sync::watch::channel(false);
    let admin_task = tokio::spawn(dataplane::admin::serve(
        admin,
        gateway.clone(),
        async move {
            let mut rx = admin_stopped;
            let _ = rx.wait_for(|&s| s).await;
        },
    ));

    let publisher = gateway.clone();
    let publish: Publish = Arc::new(move |snapshot| publisher.publish(snapshot));
    let reader = gateway.clone();
    let current = CurrentSnapshot(Arc::new(move || reader.snapshot()));
    let source_future = source(publish, shutdown.clone(), current, telemetry.clone());
    let source_trigger = trigger.clone();
    let source_task = tokio::spawn(async move {
        let result = source_future.await;
        if let Err(e) = &result {
            tracing::error!("configuration source failed: {e:#}");
            let _ = source_trigger.send(true);
        }
        result
    });

    let listener_config = ListenerConfig {
        header_read_timeout: args.header_read_timeout,
        drain_timeout: args.drain_timeout,
        proxy_protocol: args.proxy_protocol,
        send_timeout: args.send_timeout,
        ..ListenerConfig::default()
    };
    // On the signal the gateway reports not ready, serves on for the
    // shutdown delay, and then its listeners stop accepting and drain.
    let stop = Arc::new(tokio::sync::watch::channel(false).0);
    let drain_gateway = gateway.clone();
    let on_shutdown = shutdown.clone();
    let delay = args.shutdown_delay;
    let stopper = stop.clone();
    tokio::spawn(async move {
        on_shutdown.wait().await;
        drain_gateway.begin_drain();
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "not ready; serving on until the shutdown delay is over"
            );
            tokio::time::sleep(delay).await;
        }
        stopper.send_replace(true);
    });
    let stopped = || {
        let mut stop = stop.subscribe();
        async move {
            let _ = stop.wait_for(|&s| s).await;
        }
    };
    let served = match listeners {
        Listeners::Shared { http, https } => {
            let https_task = https.map(|listener| {
                tokio::spawn(dataplane::serve_tls(
                    listener,
                    proxy.clone(),
                    listener_config.clone(),
                    stopped(),
                ))
            });
            dataplane::serve(http, proxy, listener_config, stopped()).await;
            if let Some(task) = https_task {
                let _ = task.await;
            }
            Ok(())
        }
        Listeners::PerThread(sockets) => {
            crate::workers::serve(
                sockets,
                proxy,
                listener_config,
                stop.clone(),
                trigger.clone(),
            )
            .await
        }
    };

    // What the last requests left behind goes out before the process
    // does.
    telemetry.access_log.flush(Duration::from_secs(2)).await;
    telemetry.tracer.flush(Duration::from_secs(3)).await;

    let _ = admin_stop.send(true);
    let _ = admin_task.await;
    let _ = trigger.send(true);
    let source = match tokio::time::timeout(Duration::from_secs(5), source_task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(anyhow::anyhow!("configuration source panicked: {join}")),
        Err(_) => {
            tracing::warn!("configuration source did not stop in time");
            Ok(())
        }
    };
    served.and(source)
}

/// The default certificate: from the files given, else a self-signed one
/// made now.
fn default_certificate(args: &ServeArgs) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    if let (Some(cert), Some(key)) = (&args.default_certificate, &args.default_key) {
        let chain = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let key_pem = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        let info = tls::check_pair(&chain, &key_pem, std::time::SystemTime::now())
            .with_context(|| format!("{} and {}", cert.display(), key.display()))?;
        tracing::info!(subject = %info.subject, not_after = info.not_after, "default certificate loaded");
        return Ok((chain, key_pem));
    }
    let (chain, key) = tls::self_signed(&["gatehouse.invalid".to_owned()])
        .context("generating the self-signed default certificate")?;
    tracing::info!(
        "serving a self-signed default certificate (set --default-certificate for a real one)"
    );
    Ok((chain.into_bytes(), key.into_bytes()))
}

/// The ACME manager's settings, when `--acme-directory` is set. `state`
/// names the state Secret.
pub(crate) fn acme_config(args: &ServeArgs, state: (String, String)) -> Option<AcmeConfig> {
    let directory = args.acme_directory.clone()?;
    Some(AcmeConfig {
        directory,
        email: args.acme_email.clone(),
        ca_bundle: args.acme_ca_bundle.clone(),
        state,
        retry_min: args.acme_retry_min,
        retry_max: Duration::from_secs(3600),
        interval: Duration::from_secs(5),
        propagation: Duration::from_secs(1),
    })
}
