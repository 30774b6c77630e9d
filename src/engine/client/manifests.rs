//! Manifests as exact bytes: look up, read, write, delete, and the referrers of one.

use bytes::Bytes;
use reqwest::StatusCode;

use super::RegistryClient;
use super::error::ClientError;
use super::request::{self, content_type};
use crate::engine::digest::Digest;
use crate::engine::manifest;

/// The most Flotilla reads of one manifest or index: Distribution's own limit.
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// What a `HEAD` of a manifest told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    /// Digest.
    pub digest: Digest,
    /// Content type.
    pub media_type: String,
}

impl RegistryClient {
    /// `HEAD` a manifest by tag or digest; `None` when absent.
    pub async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ManifestHead>, ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&request::manifest_path(repo, reference))?;
        let resp = self
            .send(&request::pull(repo), |c| {
                request::manifest_read(c, &url, true)
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let what = format!("manifest {repo}:{reference}");
        let resp = self.expect(resp, &[StatusCode::OK], &what).await?;
        let media_type = content_type(resp.headers());
        match resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            Some(digest) => Ok(Some(ManifestHead { digest, media_type })),
            None => {
                // No digest header: fall back to reading the manifest.
                let (bytes, media_type) = self.get_manifest(repo, reference).await?;
                Ok(Some(ManifestHead {
                    digest: Digest::of(&bytes),
                    media_type,
                }))
            }
        }
    }

    /// `GET` a manifest: exact bytes and content type.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<(Bytes, String), ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&request::manifest_path(repo, reference))?;
        let what = format!("manifest {repo}:{reference}");
        let resp = self
            .send(&request::pull(repo), |c| {
                request::manifest_read(c, &url, false)
            })
            .await?;
        let resp = self.expect(resp, &[StatusCode::OK], &what).await?;
        let mt = content_type(resp.headers());
        let bytes = self.read_limited(resp, MAX_MANIFEST_BYTES, &what).await?;
        Ok((bytes, mt))
    }

    /// `PUT` a manifest's exact bytes under a tag or digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&request::manifest_path(repo, reference))?;
        let what = format!("push of manifest {repo}:{reference}");
        let resp = self
            .send(&request::push(repo), |c| {
                request::manifest_write(c, &url, media_type, bytes.clone())
            })
            .await?;
        self.expect(resp, &[StatusCode::CREATED, StatusCode::OK], &what)
            .await
            .map(drop)
    }

    /// `DELETE` a manifest by tag or digest. Returns `false` when the registry does not support
    /// deleting that way (400/405 UNSUPPORTED).
    pub async fn delete_manifest(&self, repo: &str, reference: &str) -> Result<bool, ClientError> {
        self.check_manifest_ref(repo, reference)?;
        let url = self.url(&request::manifest_path(repo, reference))?;
        let resp = self
            .send(&request::delete(repo), |c| c.delete(url.clone()))
            .await?;
        match resp.status() {
            StatusCode::ACCEPTED | StatusCode::OK | StatusCode::NOT_FOUND => Ok(true),
            StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED => Ok(false),
            _ => Err(self
                .status_error(resp, &format!("delete of {repo}:{reference}"))
                .await),
        }
    }

    /// OCI 1.1 referrers of a manifest; `None` when the registry has no referrers API.
    pub async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<Digest>>, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&request::referrers_path(repo, digest))?;
        let resp = self
            .send(&request::pull(repo), |c| request::referrers_read(c, &url))
            .await?;
        if resp.status() != StatusCode::OK {
            return Ok(None);
        }
        let is_index = content_type(resp.headers()).starts_with(manifest::OCI_INDEX);
        let bytes = self
            .read_limited(
                resp,
                MAX_MANIFEST_BYTES,
                &format!("referrers of {repo}@{digest}"),
            )
            .await?;
        if !is_index {
            return Ok(None);
        }
        match manifest::parse(manifest::OCI_INDEX, &bytes) {
            Ok(manifest::Parsed::Index { manifests }) => {
                Ok(Some(manifests.into_iter().map(|d| d.digest).collect()))
            }
            _ => Ok(None),
        }
    }
}
