//! `flotilla run`: the controller manager.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::controller::{self, Scope, Settings};
use crate::metrics::Metrics;
use crate::server::{self, Probes};
use crate::telemetry::{self, LogFormat};

/// Arguments of `flotilla run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Address of `/healthz`, `/readyz` and `/metrics`.
    #[arg(long, env = "FLOTILLA_PROBE_ADDR", default_value = "0.0.0.0:8080")]
    pub probe_addr: SocketAddr,
    /// Watch only this namespace (default: every namespace).
    #[arg(long, env = "FLOTILLA_NAMESPACE")]
    pub namespace: Option<String>,
    /// URL under which registry pods reach Flotilla's event receiver (e.g.
    /// `http://flotilla.flotilla-system.svc:8081/v1/events`); unset: Registries send no
    /// notifications.
    #[arg(long, env = "FLOTILLA_RECEIVER_URL")]
    pub receiver_url: Option<String>,
    /// Image that runs `flotilla token-service` beside Registries with `spec.access`: the
    /// operator's own image (the Helm chart passes it). Unset: such Registries are marked
    /// `TokenServiceImageUnknown`.
    #[arg(long, env = "FLOTILLA_TOKEN_SERVICE_IMAGE")]
    pub token_service_image: Option<String>,
    /// Address of the receiver of registry notifications (`POST /v1/events`).
    #[arg(long, env = "FLOTILLA_RECEIVER_ADDR", default_value = "0.0.0.0:8081")]
    pub receiver_addr: SocketAddr,
    /// Bearer token that registries Flotilla does not run send with their notifications
    /// (their events trigger policies whose `source.url` has the same host and port).
    /// Prefer the environment variable: a flag shows in process listings.
    #[arg(long, env = "FLOTILLA_RECEIVER_TOKEN", hide_env_values = true)]
    pub receiver_token: Option<String>,
    /// Syncs running at once across all policies.
    #[arg(long, env = "FLOTILLA_MAX_CONCURRENT_SYNCS", default_value_t = 4)]
    pub max_concurrent_syncs: usize,
    /// Run only while holding the Lease `flotilla-leader` (for several replicas).
    #[arg(long, env = "FLOTILLA_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Namespace of the leader Lease (default: the kubeconfig's namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Reach Registry `NAMESPACE/NAME` at URL instead of its in-cluster Service URL, for an
    /// operator running outside the cluster (e.g. through `kubectl port-forward`).
    /// Repeatable: `--registry-url fleet/hq=http://127.0.0.1:5000`.
    #[arg(long = "registry-url", value_name = "NAMESPACE/NAME=URL", value_parser = parse_registry_url)]
    pub registry_urls: Vec<(String, String)>,
    /// Log line format.
    #[arg(long, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Why the controller manager could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot reach Kubernetes ({0}); set KUBECONFIG or run inside a cluster")]
    Kubernetes(#[source] kube::Error),
    #[error("cannot listen on {flag} {addr}: {source}")]
    Listen {
        flag: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the controllers until SIGTERM/SIGINT. Kubeconfig is found the standard way
/// (`KUBECONFIG`, `~/.kube/config`, in-cluster service account).
pub async fn run(args: RunArgs) -> ExitCode {
    telemetry::init(args.log_format);
    match start(args).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn start(args: RunArgs) -> Result<ExitCode, StartError> {
    let client = kube::Client::try_default()
        .await
        .map_err(StartError::Kubernetes)?;
    let probes = bind("--probe-addr", args.probe_addr).await?;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let app = server::router(Probes {
        ready: ready.clone(),
        metrics: metrics.clone(),
    });
    tracing::info!(addr = %args.probe_addr, "serving /healthz, /readyz, /metrics");
    let http = tokio::spawn(async move { axum::serve(probes, app).await });
    let elector = args.leader_elect.then(|| elector(&args, &client));
    if let Some(elector) = &elector {
        // A standby is healthy and ready: it serves probes while it waits.
        ready.store(true, std::sync::atomic::Ordering::Relaxed);
        if !lead(elector).await {
            http.abort();
            return Ok(ExitCode::SUCCESS);
        }
    }
    metrics.leader.set(1);
    // The receiver listens only on the leader: a standby refuses connections, so registries
    // retry and reach the leader instead of handing events to a replica that would not act.
    let (tokens, events, receiver_task) =
        receive(args.receiver_addr, args.receiver_token.as_deref()).await?;
    let settings = Settings {
        receiver_url: args.receiver_url,
        token_service_image: args.token_service_image,
        max_concurrent_syncs: args.max_concurrent_syncs,
        tokens,
        events: Some(events),
        registry_urls: args.registry_urls.into_iter().collect(),
    };
    let scope = Scope {
        namespace: args.namespace,
    };
    let controllers = controller::run(client, scope, settings, metrics, ready);
    let code = run_while_leading(controllers, elector.as_ref()).await;
    http.abort();
    receiver_task.abort();
    Ok(code)
}

async fn bind(flag: &'static str, addr: SocketAddr) -> Result<tokio::net::TcpListener, StartError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { flag, addr, source })
}

/// The leader elector for the Lease in `--leader-election-namespace` (default: the
/// kubeconfig's namespace), with the pod's name as identity.
fn elector(args: &RunArgs, client: &kube::Client) -> crate::leader::Elector {
    let ns = args
        .leader_election_namespace
        .clone()
        .unwrap_or_else(|| client.default_namespace().to_string());
    let identity =
        std::env::var("POD_NAME").unwrap_or_else(|_| format!("flotilla-{}", std::process::id()));
    crate::leader::Elector::new(
        kube::Api::namespaced(client.clone(), &ns),
        LEASE_NAME,
        &identity,
    )
}

/// Waits for the Lease; `false` when a shutdown signal came first.
async fn lead(elector: &crate::leader::Elector) -> bool {
    tracing::info!("waiting for the leader Lease {LEASE_NAME}");
    tokio::select! {
        () = elector.acquire() => {
            tracing::info!("became the leader");
            true
        }
        () = shutdown_signal() => false,
    }
}

type Events = tokio::sync::mpsc::Receiver<crate::notifications::ManifestEvent>;

/// Starts the receiver of registry notifications on `addr`, with connections bounded (a
/// client that never finishes its headers cannot hold one for ever).
async fn receive(
    addr: SocketAddr,
    external_token: Option<&str>,
) -> Result<
    (
        crate::notifications::Tokens,
        Events,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ),
    StartError,
> {
    let tokens = crate::notifications::Tokens::default();
    if let Some(token) = external_token.filter(|t| !t.is_empty()) {
        tokens.insert(crate::replication::routing::EXTERNAL_IDENTITY, token);
    }
    let (events_tx, events_rx) = tokio::sync::mpsc::channel(4096);
    let listener = bind("--receiver-addr", addr).await?;
    let receiver = crate::notifications::Receiver {
        tokens: tokens.clone(),
        events: events_tx,
    };
    tracing::info!(addr = %addr, "receiving registry notifications on /v1/events");
    let task = tokio::spawn(async move { crate::notifications::serve(listener, receiver).await });
    Ok((tokens, events_rx, task))
}

/// Runs the controllers to their end, or (with leader election) until the Lease is lost:
/// then the process exits 1 so that a new leader takes over.
async fn run_while_leading(
    controllers: impl std::future::Future<Output = ()>,
    elector: Option<&crate::leader::Elector>,
) -> ExitCode {
    let Some(elector) = elector else {
        controllers.await;
        return ExitCode::SUCCESS;
    };
    tokio::select! {
        () = controllers => {
            elector.release().await;
            ExitCode::SUCCESS
        }
        () = elector.hold() => {
            tracing::error!("lost the leader Lease; exiting so that a new leader takes over");
            ExitCode::from(1)
        }
    }
}

/// Name of the leader-election Lease.
pub const LEASE_NAME: &str = "flotilla-leader";

pub(crate) async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// Parses `NAMESPACE/NAME=URL`.
fn parse_registry_url(arg: &str) -> Result<(String, String), String> {
    let (key, url) = arg
        .split_once('=')
        .ok_or_else(|| format!("{arg:?} is not NAMESPACE/NAME=URL"))?;
    let valid_key = key
        .split_once('/')
        .is_some_and(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'));
    if !valid_key {
        return Err(format!(
            "{key:?} is not NAMESPACE/NAME (the Registry's namespace and name)"
        ));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("{url:?} must start with http:// or https://"));
    }
    Ok((key.to_string(), url.trim_end_matches('/').to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_url_overrides_parse_and_explain_mistakes() {
        assert_eq!(
            parse_registry_url("fleet/hq=http://127.0.0.1:5000/"),
            Ok(("fleet/hq".into(), "http://127.0.0.1:5000".into()))
        );
        for (bad, says) in [
            ("fleet/hq", "NAMESPACE/NAME=URL"),
            ("hq=http://x", "namespace and name"),
            ("fleet/hq=ftp://x", "http://"),
            ("fleet/hq=not a url", "not a URL"),
        ] {
            let e = parse_registry_url(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
