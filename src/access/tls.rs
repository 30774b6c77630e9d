//! HTTPS for the token service, with the Registry's own certificate (`spec.tls`): clients
//! send passwords to it, so it serves TLS wherever the registry does.

use std::path::Path;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The TLS files cannot be used (their content is never shown).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// `tls.crt` holds no PEM certificate.
    #[error("{0}/tls.crt holds no PEM certificate")]
    Certificate(String),
    /// `tls.key` holds no PEM private key.
    #[error("{0}/tls.key holds no PEM private key")]
    Key(String),
    /// rustls refuses the pair.
    #[error("the certificate and key in {dir} do not make a TLS configuration: {source}")]
    Config {
        /// The directory.
        dir: String,
        /// Why.
        source: rustls::Error,
    },
}

/// An acceptor serving `tls.crt` and `tls.key` of `dir`.
pub fn acceptor(dir: &Path) -> Result<TlsAcceptor, TlsError> {
    let shown = dir.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("tls.crt"))
        .map_err(|_| TlsError::Certificate(shown.clone()))?
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::Certificate(shown.clone()))?;
    if certs.is_empty() {
        return Err(TlsError::Certificate(shown));
    }
    let key = PrivateKeyDer::from_pem_file(dir.join("tls.key"))
        .map_err(|_| TlsError::Key(shown.clone()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|source| TlsError::Config { dir: shown, source })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `router` over TLS until `shutdown` completes. A failed handshake ends only that
/// connection; one that does not finish within 10 s is dropped.
pub async fn serve(
    listener: tokio::net::TcpListener,
    acceptor: TlsAcceptor,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => return Ok(()),
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let handshake =
                tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream));
            let Ok(Ok(tls)) = handshake.await else {
                return;
            };
            let service = TowerToHyperService::new(router);
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
