//! Blob reads: whether one is there, its bytes as a stream, a small one whole and checked.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use reqwest::StatusCode;

use super::RegistryClient;
use super::error::ClientError;
use super::redact::without_secrets;
use super::request;
use crate::engine::digest::Digest;

/// A byte stream of a blob.
pub type BlobStream = BoxStream<'static, Result<Bytes, ClientError>>;

impl RegistryClient {
    /// Whether a blob exists in a repository.
    pub async fn blob_exists(&self, repo: &str, digest: &Digest) -> Result<bool, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&request::blob_path(repo, digest))?;
        let resp = self
            .send(&request::pull(repo), |c| c.head(url.clone()))
            .await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self
                .status_error(resp, &format!("HEAD blob {repo}@{digest}"))
                .await),
        }
    }

    /// A blob's bytes as a stream (the request itself is retried; a broken stream is not).
    pub async fn get_blob(&self, repo: &str, digest: &Digest) -> Result<BlobStream, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&request::blob_path(repo, digest))?;
        let resp = self
            .send_with(&request::pull(repo), None, |c| c.get(url.clone()))
            .await?;
        let resp = self
            .expect(resp, &[StatusCode::OK], &format!("blob {repo}@{digest}"))
            .await?;
        let name = self.name.clone();
        Ok(resp
            .bytes_stream()
            .map_err(move |e| ClientError::Body {
                registry: name.clone(),
                reason: without_secrets(&e),
            })
            .boxed())
    }

    /// A small blob's bytes (a signature payload, an attestation), at most `limit`, checked
    /// against its digest.
    pub async fn get_small_blob(
        &self,
        repo: &str,
        digest: &Digest,
        limit: usize,
    ) -> Result<Bytes, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&request::blob_path(repo, digest))?;
        let what = format!("blob {repo}@{digest}");
        let resp = self
            .send(&request::pull(repo), |c| c.get(url.clone()))
            .await?;
        let resp = self.expect(resp, &[StatusCode::OK], &what).await?;
        let bytes = self.read_limited(resp, limit, &what).await?;
        if &Digest::of(&bytes) != digest {
            return Err(ClientError::Protocol {
                registry: self.name.clone(),
                reason: format!("{what} arrived with other content"),
            });
        }
        Ok(bytes)
    }
}
