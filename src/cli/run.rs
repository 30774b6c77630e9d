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
    /// Log line format.
    #[arg(long, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Runs the controllers until SIGTERM/SIGINT. Kubeconfig is found the standard way
/// (`KUBECONFIG`, `~/.kube/config`, in-cluster service account).
pub async fn run(args: RunArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let client = match kube::Client::try_default().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: cannot reach Kubernetes ({e}); set KUBECONFIG or run inside a cluster"
            );
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.probe_addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "error: cannot listen on --probe-addr {}: {e}",
                args.probe_addr
            );
            return ExitCode::from(2);
        }
    };
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));
    let app = server::router(Probes {
        ready: ready.clone(),
        metrics: metrics.clone(),
    });
    tracing::info!(addr = %args.probe_addr, "serving /healthz, /readyz, /metrics");
    let http = tokio::spawn(async move { axum::serve(listener, app).await });
    let settings = Settings {
        receiver_url: args.receiver_url,
    };
    controller::run(
        client,
        Scope {
            namespace: args.namespace,
        },
        settings,
        metrics,
        ready,
    )
    .await;
    http.abort();
    ExitCode::SUCCESS
}
