//! Where artifacts are read from and written to: a registry or an OCI layout directory.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use tokio::sync::mpsc;
use url::Url;

use super::client::{ClientError, Mount, RegistryClient};
use super::digest::Digest;
use super::layout::{Layout, LayoutError};

/// Errors of either kind of store.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// From a registry.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// From an OCI layout.
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

impl StoreError {
    /// Whether trying again may help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Client(e) if e.is_retryable())
    }
}

/// Chunks handed to an upload; an `Err` aborts it.
pub type ChunkRx = mpsc::Receiver<Result<Bytes, std::io::Error>>;

/// How a blob will reach a destination repository.
#[derive(Debug)]
pub enum Prepared {
    /// Already there (mounted).
    Present,
    /// Must be uploaded; a registry may already have opened the session.
    Upload(Option<Url>),
}

/// A registry or an OCI layout.
#[derive(Clone, Debug)]
pub enum Store {
    /// A registry.
    Registry(Arc<RegistryClient>),
    /// An OCI layout directory (repository names are ignored).
    Layout(Arc<Layout>),
}

impl Store {
    /// For messages.
    pub fn name(&self) -> String {
        match self {
            Store::Registry(c) => c.name().to_string(),
            Store::Layout(l) => format!("oci:{}", l.root().display()),
        }
    }

    /// Tag or digest → digest; `None` when absent.
    pub async fn resolve(&self, repo: &str, reference: &str) -> Result<Option<Digest>, StoreError> {
        Ok(match self {
            Store::Registry(c) => c.head_manifest(repo, reference).await?.map(|h| h.digest),
            Store::Layout(l) => l.resolve(reference).await?.map(|(d, _)| d),
        })
    }

    /// A manifest's exact bytes and media type, by digest.
    pub async fn get_manifest(
        &self,
        repo: &str,
        d: &Digest,
    ) -> Result<(Bytes, String), StoreError> {
        Ok(match self {
            Store::Registry(c) => c.get_manifest(repo, d.as_str()).await?,
            Store::Layout(l) => l.get_manifest(d).await?,
        })
    }

    /// Whether a manifest exists by digest.
    pub async fn has_manifest(&self, repo: &str, d: &Digest) -> Result<bool, StoreError> {
        Ok(match self {
            Store::Registry(c) => c.head_manifest(repo, d.as_str()).await?.is_some(),
            Store::Layout(l) => l.has_blob(d).await,
        })
    }

    /// Stores a manifest under a tag, or by digest when `tag` is `None`.
    pub async fn put_manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), StoreError> {
        match self {
            Store::Registry(c) => {
                let reference = match tag {
                    Some(t) => t.to_string(),
                    None => Digest::of(bytes).to_string(),
                };
                c.put_manifest(repo, &reference, media_type, bytes.clone())
                    .await?
            }
            Store::Layout(l) => l.put_manifest(tag, media_type, bytes).await?,
        }
        Ok(())
    }

    /// Whether a blob exists in a repository.
    pub async fn has_blob(&self, repo: &str, d: &Digest) -> Result<bool, StoreError> {
        Ok(match self {
            Store::Registry(c) => c.blob_exists(repo, d).await?,
            Store::Layout(l) => l.has_blob(d).await,
        })
    }

    /// Mounts from another repository of the same store when possible.
    pub async fn prepare(
        &self,
        repo: &str,
        d: &Digest,
        mount_from: Option<&str>,
    ) -> Result<Prepared, StoreError> {
        match (self, mount_from) {
            (Store::Registry(c), Some(from)) if from != repo => {
                match c.mount(repo, d, from).await? {
                    Mount::Mounted => Ok(Prepared::Present),
                    Mount::Upload(url) => Ok(Prepared::Upload(Some(url))),
                }
            }
            _ => Ok(Prepared::Upload(None)),
        }
    }

    /// A blob's bytes.
    pub async fn open_blob(
        &self,
        repo: &str,
        d: &Digest,
    ) -> Result<BoxStream<'static, Result<Bytes, StoreError>>, StoreError> {
        Ok(match self {
            Store::Registry(c) => c.get_blob(repo, d).await?.map_err(StoreError::from).boxed(),
            Store::Layout(l) => l.open_blob(d).await?.map_err(StoreError::from).boxed(),
        })
    }

    /// Uploads a blob from `rx`; commits only when the stream ends cleanly (the sender
    /// verified the digest first). Returns the bytes written.
    pub async fn upload(
        &self,
        repo: &str,
        d: &Digest,
        session: Option<Url>,
        rx: ChunkRx,
    ) -> Result<u64, StoreError> {
        let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = counted.clone();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
        .inspect_ok(move |b| {
            counter.fetch_add(b.len() as u64, std::sync::atomic::Ordering::Relaxed);
        });
        match self {
            Store::Registry(c) => {
                let location = match session {
                    Some(u) => u,
                    None => c.start_upload(repo).await?,
                };
                c.put_stream(repo, location, d, reqwest::Body::wrap_stream(stream))
                    .await?;
            }
            Store::Layout(l) => {
                l.write_blob(d, stream.boxed()).await?;
            }
        }
        Ok(counted.load(std::sync::atomic::Ordering::Relaxed))
    }
}
