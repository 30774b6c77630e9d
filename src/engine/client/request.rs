//! Request building, pure: the paths and token scopes of each call, the headers it carries,
//! where an upload goes next, and to whom credentials may be sent.

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Client, RequestBuilder};
use url::Url;

use crate::engine::digest::Digest;
use crate::engine::manifest;

/// The token scope to read a repository.
pub(super) fn pull(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull")]
}

/// The token scope to write a repository.
pub(super) fn push(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:pull,push")]
}

/// The token scope to delete from a repository.
pub(super) fn delete(repo: &str) -> Vec<String> {
    vec![format!("repository:{repo}:delete")]
}

/// The token scopes to mount a blob of `from` into `repo`.
pub(super) fn mount_scopes(repo: &str, from: &str) -> Vec<String> {
    vec![
        format!("repository:{repo}:pull,push"),
        format!("repository:{from}:pull"),
    ]
}

/// The token scope to list the catalog.
pub(super) fn catalog() -> Vec<String> {
    vec!["registry:catalog:*".to_string()]
}

/// Path of a manifest by tag or digest (both checked against the grammar before).
pub(super) fn manifest_path(repo: &str, reference: &str) -> String {
    format!("v2/{repo}/manifests/{reference}")
}

/// Path of a blob.
pub(super) fn blob_path(repo: &str, digest: &Digest) -> String {
    format!("v2/{repo}/blobs/{digest}")
}

/// Path that opens an upload session (or, with [`with_mount`], mounts).
pub(super) fn uploads_path(repo: &str) -> String {
    format!("v2/{repo}/blobs/uploads/")
}

/// Path of the first page of a repository's tags.
pub(super) fn tags_path(repo: &str) -> String {
    format!("v2/{repo}/tags/list?n=1000")
}

/// Path of the first page of the catalog.
pub(super) const CATALOG_PATH: &str = "v2/_catalog?n=1000";

/// Path of the referrers of a manifest.
pub(super) fn referrers_path(repo: &str, digest: &Digest) -> String {
    format!("v2/{repo}/referrers/{digest}")
}

/// The uploads URL asking to mount `digest` from repository `from`.
pub(super) fn with_mount(mut uploads: Url, digest: &Digest, from: &str) -> Url {
    uploads
        .query_pairs_mut()
        .append_pair("mount", digest.as_str())
        .append_pair("from", from);
    uploads
}

/// The URL that commits an upload session under `digest`: its `Location` (which may carry
/// the registry's own state in its query) with `digest=` added.
pub(super) fn commit_url(mut location: Url, digest: &Digest) -> Url {
    location
        .query_pairs_mut()
        .append_pair("digest", digest.as_str());
    location
}

/// Where an upload goes on: the `Location` header resolved against the URL that answered
/// (it may be relative, or absolute on another host, e.g. a storage redirect).
pub(super) fn resolve_location(answered: &Url, location: Option<&str>) -> Result<Url, String> {
    let loc = location.ok_or("upload response without Location")?;
    answered
        .join(loc)
        .map_err(|e| format!("bad Location {loc:?}: {e}"))
}

/// `GET` or `HEAD` of a manifest, accepting every manifest and index type Flotilla copies.
pub(super) fn manifest_read(c: &Client, url: &Url, head: bool) -> RequestBuilder {
    let req = if head {
        c.head(url.clone())
    } else {
        c.get(url.clone())
    };
    req.header(header::ACCEPT, manifest::ACCEPT)
}

/// `PUT` of a manifest's exact bytes with its media type.
pub(super) fn manifest_write(
    c: &Client,
    url: &Url,
    media_type: &str,
    bytes: bytes::Bytes,
) -> RequestBuilder {
    c.put(url.clone())
        .header(header::CONTENT_TYPE, media_type)
        .body(bytes)
}

/// `GET` of the referrers list, which is an OCI index.
pub(super) fn referrers_read(c: &Client, url: &Url) -> RequestBuilder {
    c.get(url.clone())
        .header(header::ACCEPT, manifest::OCI_INDEX)
}

/// `PUT` of a whole blob into an upload session, committing it (`url` from [`commit_url`]).
pub(super) fn blob_write(c: &Client, url: Url, body: reqwest::Body) -> RequestBuilder {
    c.put(url)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
}

/// `PUT` committing an upload session whose bytes were sent before.
pub(super) fn upload_commit(c: &Client, url: &Url) -> RequestBuilder {
    c.put(url.clone()).header(header::CONTENT_LENGTH, "0")
}

/// Whether `a` and `b` have the same scheme, host and port.
pub(super) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

/// Adds `authorization` to `req` only when it goes to the registry's own origin `base`:
/// an upload `Location` or a `Link` elsewhere (a storage backend, another host) never sees
/// the registry's credentials.
pub(super) fn authorize(req: &mut reqwest::Request, base: &Url, authorization: Option<String>) {
    if same_origin(req.url(), base)
        && let Some(h) = authorization
        && let Ok(v) = HeaderValue::from_str(&h)
    {
        req.headers_mut().insert(header::AUTHORIZATION, v);
    }
}

/// The media type of a `Content-Type` header, without parameters.
pub(super) fn content_type(h: &HeaderMap) -> String {
    h.get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
