//! Command-line interface.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Gatehouse: a Kubernetes ingress controller and API gateway.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,

    /// Log level or filter (`error`, `warn`, `info`, `debug`, `trace`, or a
    /// `tracing` filter such as `info,dataplane=debug`). `RUST_LOG`
    /// overrides it.
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "GATEHOUSE_LOG_LEVEL"
    )]
    pub(crate) log_level: String,

    /// Log format of the process's own logs.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "GATEHOUSE_LOG_FORMAT")]
    pub(crate) log_format: LogFormat,
}

/// Output format of the process's own logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// How the data plane's worker threads share the connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Scheduler {
    /// A runtime per thread; the kernel spreads new connections over the
    /// threads' sockets (`SO_REUSEPORT`).
    PerThread,
    /// One runtime; idle threads steal queued tasks from busy ones.
    WorkStealing,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run as the cluster's ingress controller: watch the Kubernetes API,
    /// serve what it says, and (on the elected leader) report status.
    Run(Box<RunArgs>),
    /// Serve traffic configured by a directory of Kubernetes manifests,
    /// without a cluster. The directory is watched and changes apply
    /// without a restart.
    Standalone(Box<StandaloneArgs>),
    /// Translate manifests offline and report every problem. Exits with
    /// status 1 when any object has an error.
    Validate(ValidateArgs),
    /// Report what ingress-nginx Ingresses become in Gatehouse (per
    /// annotation: same, differs, unsupported) and, with --emit apiroute,
    /// write equivalent ApiRoute and RateLimitPolicy manifests. Exits with
    /// status 1 when an Ingress could not be served as it is.
    Migrate(MigrateArgs),
    /// Write the CustomResourceDefinitions. Without --out-dir, print them.
    Crdgen(CrdgenArgs),
    /// List the routes a running gateway serves (from its admin endpoint).
    Routes(RoutesArgs),
    /// Ask a running gateway where a request would go, and why.
    Explain(ExplainArgs),
}

/// How inspection commands print.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// A table or text for people.
    Text,
    /// The admin endpoint's JSON, unchanged.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct RoutesArgs {
    /// The gateway's admin address.
    #[arg(long, default_value = "127.0.0.1:9901", env = "GATEHOUSE_ADMIN_ADDR")]
    pub(crate) admin_addr: SocketAddr,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// The gateway's admin address.
    #[arg(long, default_value = "127.0.0.1:9901", env = "GATEHOUSE_ADMIN_ADDR")]
    pub(crate) admin_addr: SocketAddr,

    /// Host of the request (a port is ignored).
    #[arg(long)]
    pub(crate) host: String,

    /// Path of the request.
    #[arg(long, default_value = "/")]
    pub(crate) path: String,

    /// Method of the request.
    #[arg(long, short = 'X', default_value = "GET")]
    pub(crate) method: String,

    /// A request header, `Name: value`; repeatable.
    #[arg(long = "header", short = 'H')]
    pub(crate) headers: Vec<String>,

    /// The request's query string, without `?`.
    #[arg(long)]
    pub(crate) query: Option<String>,

    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Kubeconfig file. Default: the in-cluster service account, else
    /// `$KUBECONFIG` or `~/.kube/config`.
    #[arg(long, env = "GATEHOUSE_KUBECONFIG")]
    pub(crate) kubeconfig: Option<PathBuf>,

    /// Namespace to watch; repeatable. Default: every namespace.
    #[arg(
        long = "watch-namespace",
        env = "GATEHOUSE_WATCH_NAMESPACES",
        value_delimiter = ','
    )]
    pub(crate) watch_namespaces: Vec<String>,

    /// Service (`namespace/name`) whose load balancer addresses Ingresses
    /// report in `status.loadBalancer`.
    #[arg(long, conflicts_with = "publish_address")]
    pub(crate) publish_service: Option<String>,

    /// IP addresses or hostnames Ingresses report in
    /// `status.loadBalancer`; repeatable or comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) publish_address: Vec<String>,

    /// Namespace of the leader-election Lease. Default: `$POD_NAMESPACE`,
    /// else `default`.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    pub(crate) leader_election_namespace: String,

    /// Name of the leader-election Lease.
    #[arg(long, default_value = "gatehouse-leader")]
    pub(crate) leader_election_name: String,

    /// This replica's identity in the Lease and in events. Default:
    /// `$POD_NAME`, else the host name and process id.
    #[arg(long, env = "POD_NAME")]
    pub(crate) instance: Option<String>,

    /// How long the leader's Lease is valid without renewal.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub(crate) lease_duration: Duration,

    /// How often the leader renews (and others try to take over).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) lease_renew_interval: Duration,

    /// Publish after changes stop arriving for this long...
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub(crate) debounce_quiet: Duration,

    /// ...but never later than this after the first change.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub(crate) debounce_max: Duration,

    #[command(flatten)]
    pub(crate) serve: ServeArgs,

    #[command(flatten)]
    pub(crate) translate: TranslateArgs,
}

#[derive(Debug, Args)]
pub(crate) struct StandaloneArgs {
    /// Directory (or file) of manifests: IngressClass, Ingress, Service,
    /// EndpointSlice, Secret, ApiRoute and RateLimitPolicy, in `.yaml`,
    /// `.yml` or `.json` files, read recursively. Repeatable.
    #[arg(
        long,
        required = true,
        env = "GATEHOUSE_MANIFESTS",
        value_delimiter = ','
    )]
    pub(crate) manifests: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) serve: ServeArgs,

    #[command(flatten)]
    pub(crate) translate: TranslateArgs,
}

/// Listener and process settings shared by every serving mode.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address of the plain HTTP listener.
    #[arg(long, default_value = "0.0.0.0:8080", env = "GATEHOUSE_HTTP_ADDR")]
    pub(crate) http_addr: SocketAddr,

    /// Address of the HTTPS listener (TLS 1.2 and 1.3, HTTP/2 and
    /// HTTP/1.1 by ALPN).
    #[arg(long, default_value = "0.0.0.0:8443", env = "GATEHOUSE_HTTPS_ADDR")]
    pub(crate) https_addr: SocketAddr,

    /// Do not open the HTTPS listener.
    #[arg(long)]
    pub(crate) no_https: bool,

    /// PEM certificate chain served to clients that send no SNI and for
    /// hosts without a certificate of their own. Default: a self-signed
    /// certificate generated at start.
    #[arg(long, requires = "default_key", env = "GATEHOUSE_DEFAULT_CERTIFICATE")]
    pub(crate) default_certificate: Option<PathBuf>,

    /// PEM private key of `--default-certificate`.
    #[arg(long, requires = "default_certificate", env = "GATEHOUSE_DEFAULT_KEY")]
    pub(crate) default_key: Option<PathBuf>,

    /// Port in the `Location` of HTTP-to-HTTPS redirects: the port clients
    /// reach the HTTPS listener on (the Service's, not the container's).
    #[arg(long, default_value_t = 443)]
    pub(crate) https_redirect_port: u16,

    /// Redis for `Global` rate limits (`redis://host:port/db`, or
    /// `rediss://` for TLS). Without it, global limits follow their
    /// policy's failure mode.
    #[arg(long, env = "GATEHOUSE_REDIS_URL")]
    pub(crate) redis_url: Option<String>,

    /// Longest wait for one global rate-limit check.
    #[arg(long, default_value = "50ms", value_parser = parse_duration)]
    pub(crate) redis_timeout: Duration,

    /// Bytes of responses the cache holds in all (rules may set a smaller
    /// `cache.maxTotalBytes` of their own).
    #[arg(long, default_value_t = 256 << 20)]
    pub(crate) cache_max_bytes: u64,

    /// Most keys (clients, header values) a local rate limit tracks; more
    /// share one budget.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) rate_limit_max_keys: usize,

    /// ACME directory URL; enables `spec.tls.acme` on ApiRoutes (for
    /// example `https://acme-v02.api.letsencrypt.org/directory`).
    #[arg(long, env = "GATEHOUSE_ACME_DIRECTORY")]
    pub(crate) acme_directory: Option<String>,

    /// Contact e-mail of the ACME account.
    #[arg(long, env = "GATEHOUSE_ACME_EMAIL")]
    pub(crate) acme_email: Option<String>,

    /// PEM CA certificate the ACME server's own HTTPS is verified against
    /// (private or test ACME servers).
    #[arg(long)]
    pub(crate) acme_ca_bundle: Option<PathBuf>,

    /// Standalone mode: directory where ACME keeps its account,
    /// certificates and state (as Secret manifests, read like
    /// `--manifests`). Created if missing; keep it private.
    #[arg(long)]
    pub(crate) acme_storage: Option<PathBuf>,

    /// First retry delay after a failed ACME order; doubles up to 1h.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) acme_retry_min: Duration,

    /// Address of the admin listener (`/healthz`, `/readyz`,
    /// `/debug/snapshot`). Keep it on loopback or a private network.
    #[arg(long, default_value = "127.0.0.1:9901", env = "GATEHOUSE_ADMIN_ADDR")]
    pub(crate) admin_addr: SocketAddr,

    /// After SIGTERM or SIGINT, keep accepting connections this long with
    /// `/readyz` failing, so load balancers and kube-proxy stop sending new
    /// ones before the listeners close (a pre-stop delay inside the
    /// process). Then in-flight requests drain.
    #[arg(long, default_value = "0s", value_parser = parse_duration, env = "GATEHOUSE_SHUTDOWN_DELAY")]
    pub(crate) shutdown_delay: Duration,

    /// How long in-flight requests may run after SIGTERM or SIGINT before
    /// their connections are closed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) drain_timeout: Duration,

    /// Time limit for the upstream response headers on routes that set no
    /// timeout (`0s` means none).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) upstream_timeout: Duration,

    /// Time limit for connecting to an upstream endpoint.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub(crate) connect_timeout: Duration,

    /// Time a client has to send complete request headers.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub(crate) header_read_timeout: Duration,

    /// How long a write to a client may wait without the client reading
    /// before its connection is closed (a limit on progress, not on a
    /// whole download).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub(crate) send_timeout: Duration,

    /// Most request body bytes read to evaluate ApiRoute body conditions;
    /// a larger body sent to such a route is answered with 413.
    #[arg(long, default_value_t = 64 * 1024)]
    pub(crate) max_body_match_bytes: usize,

    /// Largest request body for routes that set no `limits.maxBodyBytes`;
    /// larger bodies are answered with 413. Default: no limit.
    #[arg(long)]
    pub(crate) max_request_body_bytes: Option<u64>,

    /// Peers (CIDRs, comma-separated) allowed to name the client in
    /// `X-Forwarded-For`; from anyone else the header is replaced.
    #[arg(long, value_delimiter = ',', env = "GATEHOUSE_TRUSTED_PROXIES")]
    pub(crate) trusted_proxies: Vec<dataplane::Cidr>,

    /// Expect a PROXY protocol (v1 or v2) header on every connection of the
    /// HTTP listener, as cloud load balancers send it.
    #[arg(long)]
    pub(crate) proxy_protocol: bool,

    /// Idle limit of upgraded connections (WebSocket) for routes that set
    /// no `timeouts.idle`.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub(crate) tunnel_idle_timeout: Duration,

    /// Worker threads of the data plane (default: one per CPU core).
    #[arg(long, env = "GATEHOUSE_WORKER_THREADS")]
    pub(crate) worker_threads: Option<usize>,

    /// How several worker threads share the connections: `per-thread`
    /// (each thread runs its own runtime and accepts on its own socket of
    /// the listening address, so a connection is served on one thread
    /// from start to end) or `work-stealing` (one runtime whose threads
    /// take each other's tasks).
    #[arg(long, value_enum, default_value_t = Scheduler::PerThread, env = "GATEHOUSE_SCHEDULER")]
    pub(crate) scheduler: Scheduler,

    /// Access log on stdout: `json` (one object per line), `common` (the
    /// Common Log Format) or `off`.
    #[arg(long, default_value = "json", env = "GATEHOUSE_ACCESS_LOG")]
    pub(crate) access_log: telemetry::AccessLogFormat,

    /// Share of requests below status 400 that are logged (0.0–1.0);
    /// responses of 400 and above are always logged.
    #[arg(long, default_value_t = 1.0, value_parser = parse_ratio, env = "GATEHOUSE_ACCESS_LOG_SAMPLE")]
    pub(crate) access_log_sample: f64,

    /// OpenTelemetry collector (OTLP over HTTP, `http://host:4318`) that
    /// receives spans. Without it, trace context is still propagated to
    /// upstreams but no spans are exported.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<http::Uri>,

    /// Share of new traces sampled (0.0–1.0). Requests that arrive with a
    /// `traceparent` follow the caller's sampling decision.
    #[arg(long, default_value_t = 1.0, value_parser = parse_ratio, env = "GATEHOUSE_TRACE_SAMPLE_RATIO")]
    pub(crate) trace_sample_ratio: f64,

    /// The `service.name` of exported spans.
    #[arg(long, default_value = "gatehouse", env = "OTEL_SERVICE_NAME")]
    pub(crate) service_name: String,
}

fn parse_ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!("{s:?} is not a ratio between 0.0 and 1.0")),
    }
}

/// Settings that change how objects are translated.
#[derive(Debug, Args)]
pub(crate) struct TranslateArgs {
    /// The IngressClass name Gatehouse answers to when no IngressClass
    /// object of that name exists.
    #[arg(long, default_value = translate::DEFAULT_INGRESS_CLASS)]
    pub(crate) ingress_class: String,

    /// The `spec.controller` value of the IngressClasses Gatehouse serves.
    #[arg(long, default_value = translate::DEFAULT_CONTROLLER_NAME)]
    pub(crate) controller_name: String,

    /// Also serve Ingresses that name no class, even when Gatehouse's
    /// IngressClass is not the cluster default.
    #[arg(long)]
    pub(crate) watch_ingress_without_class: bool,

    /// Service port that takes requests no route matches, as
    /// `namespace/name:port`.
    #[arg(long, value_parser = parse_service_port)]
    pub(crate) default_backend_service: Option<translate::ServicePortRef>,

    /// Honour the commonly used `nginx.ingress.kubernetes.io/*`
    /// annotations on Ingresses (see docs/migration.md). Off: they are
    /// reported as ignored.
    #[arg(long)]
    pub(crate) nginx_compat: bool,
}

impl TranslateArgs {
    pub(crate) fn options(&self) -> translate::Options {
        translate::Options {
            controller_name: self.controller_name.clone(),
            ingress_class: self.ingress_class.clone(),
            watch_ingress_without_class: self.watch_ingress_without_class,
            default_backend: self.default_backend_service.clone(),
            now: None,
            acme_state: None,
            nginx_compat: self.nginx_compat,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Manifest files or directories to check. Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub(crate) files: Vec<PathBuf>,

    #[command(flatten)]
    pub(crate) translate: TranslateArgs,
}

#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Manifest files or directories holding Ingresses (for example the
    /// output of `kubectl get ingress,service -A -o yaml`). Repeatable.
    #[arg(short = 'f', long = "filename", required = true)]
    pub(crate) files: Vec<PathBuf>,

    /// Also write the equivalent manifests to standard output, the report
    /// as YAML comments.
    #[arg(long, value_enum)]
    pub(crate) emit: Option<Emit>,

    /// The IngressClass name the emitted ApiRoutes ask for.
    #[arg(long, default_value = translate::DEFAULT_INGRESS_CLASS)]
    pub(crate) ingress_class: String,
}

/// What `gatehouse migrate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Emit {
    /// ApiRoutes and RateLimitPolicies.
    Apiroute,
}

#[derive(Debug, Args)]
pub(crate) struct CrdgenArgs {
    /// Directory to write one YAML file per CRD into. Repeatable.
    #[arg(long)]
    pub(crate) out_dir: Vec<PathBuf>,

    /// Also write the configuration reference (Markdown, generated from
    /// the same schemas) to this file.
    #[arg(long)]
    pub(crate) reference: Option<PathBuf>,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    translate::parse_duration(text)
}

fn parse_service_port(text: &str) -> Result<translate::ServicePortRef, String> {
    let err = || format!("{text:?} is not namespace/name:port");
    let (namespace, rest) = text.split_once('/').ok_or_else(err)?;
    let (name, port) = rest.rsplit_once(':').ok_or_else(err)?;
    let port: i32 = port.parse().map_err(|_| err())?;
    if namespace.is_empty() || name.is_empty() || !(1..=65535).contains(&port) {
        return Err(err());
    }
    Ok(translate::ServicePortRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn service_ports_parse() {
        let p = parse_service_port("system/fallback:8080").unwrap();
        assert_eq!(
            (p.namespace.as_str(), p.name.as_str(), p.port),
            ("system", "fallback", 8080)
        );
        for bad in ["fallback:80", "a/b", "a/b:x", "/b:80", "a/:80", "a/b:0"] {
            assert!(parse_service_port(bad).is_err(), "{bad}");
        }
    }
}
