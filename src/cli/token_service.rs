//! `flotilla token-service`: the token service of a Registry with `spec.access`, run as a
//! sidecar of every registry pod.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::access::service::{self, Service};
use crate::telemetry::{self, LogFormat};

/// Arguments of `flotilla token-service`.
#[derive(clap::Args, Debug)]
pub struct TokenServiceArgs {
    /// Address to serve `GET /token` and `/healthz` on.
    #[arg(long, default_value = "0.0.0.0:5002")]
    pub listen: SocketAddr,
    /// Directory holding `access.json` and `htpasswd` (the mounted `<name>-access` Secret),
    /// re-read when they change.
    #[arg(long)]
    pub access_dir: PathBuf,
    /// Directory holding `token-key.pem` and `token-cert.pem`.
    #[arg(long)]
    pub key_dir: PathBuf,
    /// Directory holding `tls.crt` and `tls.key`: serve HTTPS (the Registry's `spec.tls`).
    #[arg(long)]
    pub tls_dir: Option<PathBuf>,
    /// Log line format.
    #[arg(long, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Serves tokens until SIGTERM/SIGINT.
pub async fn run(args: TokenServiceArgs) -> ExitCode {
    telemetry::init(args.log_format);
    let service = match Service::new(&args.access_dir, &args.key_dir) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: cannot listen on --listen {}: {e}", args.listen);
            return ExitCode::from(2);
        }
    };
    let tls = match args.tls_dir.as_deref().map(crate::access::tls::acceptor) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    tracing::info!(addr = %args.listen, https = tls.is_some(), "serving tokens on /token");
    let watcher = tokio::spawn(service::watch(service.clone()));
    let router = service::router(service);
    let shutdown = super::run::shutdown_signal();
    let served = match tls {
        Some(acceptor) => crate::access::tls::serve(listener, acceptor, router, shutdown).await,
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
    };
    watcher.abort();
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: serving tokens: {e}");
            ExitCode::FAILURE
        }
    }
}
