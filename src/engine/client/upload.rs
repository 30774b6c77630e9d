//! Blob writes: upload sessions, cross-repository mounts, the streamed body and the commit.

use reqwest::{Response, StatusCode};
use url::Url;

use super::RegistryClient;
use super::error::{ClientError, connect_error};
use super::request;
use crate::engine::digest::Digest;

/// Result of a cross-repository mount attempt.
#[derive(Debug)]
pub enum Mount {
    /// The blob is now in the repository.
    Mounted,
    /// Not mounted; an upload session was opened instead.
    Upload(Url),
}

impl RegistryClient {
    fn location(&self, resp: &Response) -> Result<Url, ClientError> {
        let loc = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok());
        request::resolve_location(resp.url(), loc).map_err(|reason| ClientError::Protocol {
            registry: self.name.clone(),
            reason,
        })
    }

    /// Opens an upload session.
    pub async fn start_upload(&self, repo: &str) -> Result<Url, ClientError> {
        self.check_repo(repo)?;
        let url = self.url(&request::uploads_path(repo))?;
        let resp = self
            .send(&request::push(repo), |c| c.post(url.clone()))
            .await?;
        let resp = self
            .expect(resp, &[StatusCode::ACCEPTED], &format!("upload to {repo}"))
            .await?;
        self.location(&resp)
    }

    /// Tries to mount `digest` from `from` into `repo` (same registry).
    pub async fn mount(
        &self,
        repo: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<Mount, ClientError> {
        self.check_repo(repo)?;
        self.check_repo(from)?;
        let url = request::with_mount(self.url(&request::uploads_path(repo))?, digest, from);
        let resp = self
            .send(&request::mount_scopes(repo, from), |c| c.post(url.clone()))
            .await?;
        let resp = self
            .expect(
                resp,
                &[StatusCode::CREATED, StatusCode::ACCEPTED],
                &format!("mount into {repo}"),
            )
            .await?;
        if resp.status() == StatusCode::CREATED {
            Ok(Mount::Mounted)
        } else {
            self.location(&resp).map(Mount::Upload)
        }
    }

    /// Streams the whole blob into an upload session and commits it under `digest` in the
    /// same request (`PUT <location>?digest=` with the body: one round trip instead of
    /// `PATCH` + `PUT`). Not retried: the body cannot be replayed. The registry commits only
    /// when the body ends cleanly, which the caller allows only after verifying the digest.
    pub async fn put_stream(
        &self,
        repo: &str,
        location: Url,
        digest: &Digest,
        body: reqwest::Body,
    ) -> Result<(), ClientError> {
        let url = request::commit_url(location, digest);
        let mut req = request::blob_write(&self.http, url, body)
            .build()
            .map_err(|e| ClientError::Url {
                url: self.base.to_string(),
                reason: super::redact::without_secrets(&e),
            })?;
        let scope = request::push(repo).join(" ");
        request::authorize(&mut req, &self.base, self.auth_header(&scope));
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(|e| connect_error(&self.name, &e))?;
        self.expect(
            resp,
            &[StatusCode::CREATED],
            &format!("upload of blob {repo}@{digest}"),
        )
        .await
        .map(drop)
    }

    /// Commits an upload session under `digest`.
    pub async fn finish_upload(
        &self,
        repo: &str,
        location: Url,
        digest: &Digest,
    ) -> Result<(), ClientError> {
        let url = request::commit_url(location, digest);
        let resp = self
            .send(&request::push(repo), |c| request::upload_commit(c, &url))
            .await?;
        self.expect(
            resp,
            &[StatusCode::CREATED],
            &format!("commit of blob {repo}@{digest}"),
        )
        .await
        .map(drop)
    }
}
