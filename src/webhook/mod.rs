//! Flotilla's receiver for Distribution notifications.
//!
//! A registry POSTs an envelope `{"events":[...]}` (content type
//! `application/vnd.docker.distribution.events.v1+json`) with the `Authorization: Bearer <token>`
//! header Flotilla configured. The receiver checks the token in constant time (401 otherwise,
//! nothing forwarded), parses the envelope (400 when malformed, nothing forwarded), reduces it to
//! manifest pushes and deletes (blob events, pulls and mounts are dropped) and forwards those to
//! the caller's channel, all of an envelope or none (503 when the channel is full or closed, so
//! the registry retries the whole envelope; copies are idempotent, duplicates are harmless).

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

/// Path the registries post to.
pub const EVENTS_PATH: &str = "/v1/events";
/// Content type of Distribution's notification envelopes.
pub const EVENTS_CONTENT_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
/// Largest envelope accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Errors parsing an envelope.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not a notification envelope.
    #[error("malformed notification envelope: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// What happened to a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestAction {
    /// A manifest (or index) was pushed, with `tag` when pushed by tag.
    Push,
    /// A manifest was deleted by digest, or a tag was deleted (`tag` set).
    Delete,
}

/// One manifest event, as forwarded to the replication layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestEvent {
    /// Identity of the token that authenticated the post (which Registry sent it).
    pub sender: String,
    /// Push or delete.
    pub action: ManifestAction,
    /// Repository, e.g. `team/app`.
    pub repository: String,
    /// Tag, when the event concerns one.
    pub tag: Option<String>,
    /// Manifest digest, when known.
    pub digest: Option<String>,
    /// Manifest media type (pushes only; Distribution 2.8 sends none for deletes).
    pub media_type: Option<String>,
    /// URL of the manifest as the registry saw it.
    pub url: Option<String>,
    /// `request.host`: the host the client addressed.
    pub request_host: Option<String>,
    /// `source.addr`: the registry instance that emitted the event.
    pub source_addr: Option<String>,
    /// Event id (for logs and de-duplication).
    pub id: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    events: Vec<RawEvent>,
}

#[derive(Deserialize)]
struct RawEvent {
    #[serde(default)]
    id: Option<String>,
    action: String,
    target: Target,
    #[serde(default)]
    request: Option<Request>,
    #[serde(default)]
    source: Option<Source>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    digest: Option<String>,
    repository: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Deserialize)]
struct Request {
    #[serde(default)]
    host: Option<String>,
}

#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    addr: Option<String>,
}

/// Whether a media type is a manifest or index (as opposed to a blob: layer, config, or the
/// `application/octet-stream` Distribution 2.8 reports for every blob).
pub fn is_manifest_media_type(media_type: &str) -> bool {
    const MANIFESTS: [&str; 7] = [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.artifact.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
    ];
    MANIFESTS.contains(&media_type)
}

/// Parses an envelope and keeps its manifest pushes and deletes. Blob pushes, pulls and mounts
/// are dropped. Deletes are kept whatever their target (Distribution 2.8 does not tell a
/// manifest delete from a blob delete; a blob digest deleted at a destination is a no-op).
pub fn parse_envelope(body: &[u8], sender: &str) -> Result<Vec<ManifestEvent>, WebhookError> {
    let envelope: Envelope = serde_json::from_slice(body)?;
    Ok(envelope
        .events
        .into_iter()
        .filter_map(|e| {
            let action = match e.action.as_str() {
                "push"
                    if e.target
                        .media_type
                        .as_deref()
                        .is_some_and(is_manifest_media_type) =>
                {
                    ManifestAction::Push
                }
                "delete" => ManifestAction::Delete,
                _ => return None,
            };
            Some(ManifestEvent {
                sender: sender.to_string(),
                action,
                repository: e.target.repository,
                tag: e.target.tag.filter(|t| !t.is_empty()),
                digest: e.target.digest.filter(|d| !d.is_empty()),
                media_type: e.target.media_type,
                url: e.target.url,
                request_host: e.request.and_then(|r| r.host),
                source_addr: e.source.and_then(|s| s.addr),
                id: e.id,
            })
        })
        .collect())
}

/// The valid bearer tokens, each with the identity of its holder (e.g. `namespace/registry`).
/// Cheap to clone; the reconciler adds and removes tokens while the receiver runs. Only
/// SHA-256 hashes of the tokens are kept.
#[derive(Clone, Default)]
pub struct Tokens {
    inner: Arc<RwLock<Vec<TokenEntry>>>,
}

/// An identity and the SHA-256 of its token.
type TokenEntry = (String, [u8; 32]);

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.len())
            .finish()
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two digests in time independent of where they differ.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

impl Tokens {
    /// Sets the token of `identity` (replacing its previous one).
    pub fn insert(&self, identity: &str, token: &str) {
        let mut v = self.inner.write().unwrap_or_else(|e| e.into_inner());
        v.retain(|(id, _)| id != identity);
        v.push((identity.to_string(), hash(token)));
    }

    /// Forgets the token of `identity`.
    pub fn remove(&self, identity: &str) {
        let mut v = self.inner.write().unwrap_or_else(|e| e.into_inner());
        v.retain(|(id, _)| id != identity);
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .map_or_else(|e| e.into_inner().len(), |v| v.len())
    }

    /// Whether no token is configured (then every post is rejected).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The identity holding `presented`, comparing against every token in constant time.
    pub fn verify(&self, presented: &str) -> Option<String> {
        let presented = hash(presented);
        let v = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut found = None;
        for (identity, expected) in v.iter() {
            if constant_time_eq(expected, &presented) && found.is_none() {
                found = Some(identity.clone());
            }
        }
        found
    }
}

/// The bearer token of an `Authorization` header value.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

fn content_type_ok(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case(EVENTS_CONTENT_TYPE)
        || essence.eq_ignore_ascii_case("application/json")
}

/// State of the receiver.
#[derive(Clone, Debug)]
pub struct Receiver {
    /// Valid tokens.
    pub tokens: Tokens,
    /// Where accepted events go.
    pub events: mpsc::Sender<ManifestEvent>,
}

/// The receiver's router: `POST /v1/events`.
pub fn router(receiver: Receiver) -> Router {
    Router::new()
        .route(EVENTS_PATH, post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(receiver)
}

fn reject(status: StatusCode, message: &'static str) -> Response {
    if status == StatusCode::UNAUTHORIZED {
        return (
            status,
            [(header::WWW_AUTHENTICATE, "Bearer realm=\"flotilla\"")],
            message,
        )
            .into_response();
    }
    (status, message).into_response()
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(sender) = bearer(&headers).and_then(|t| r.tokens.verify(t)) else {
        tracing::warn!("rejected notification post: missing or invalid bearer token");
        return reject(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token\n",
        );
    };
    if !content_type_ok(&headers) {
        return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/vnd.docker.distribution.events.v1+json\n",
        );
    }
    let events = match parse_envelope(&body, &sender) {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(%sender, error = %e, "rejected notification post");
            return reject(StatusCode::BAD_REQUEST, "malformed notification envelope\n");
        }
    };
    if events.is_empty() {
        return StatusCode::OK.into_response();
    }
    let permits = match r.events.try_reserve_many(events.len()) {
        Ok(permits) => permits,
        Err(_) => {
            return reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "event queue full or closed; retry\n",
            );
        }
    };
    let count = events.len();
    for (permit, event) in permits.zip(events) {
        permit.send(event);
    }
    tracing::debug!(%sender, count, "accepted notification events");
    StatusCode::OK.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = "application/vnd.oci.image.index.v1+json";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    /// An envelope shaped like what Distribution 2.8.2 posts for a pushed 2-platform index.
    fn envelope() -> String {
        let event = |action: &str, media: &str, digest: &str, tag: Option<&str>| {
            let mut target = serde_json::json!({
                "mediaType": media, "size": 10, "digest": digest, "length": 10,
                "repository": "team/app",
                "url": format!("http://r:5000/v2/team/app/manifests/{digest}"),
            });
            if let Some(tag) = tag {
                target["tag"] = tag.into();
            }
            serde_json::json!({
                "id": format!("id-{digest}"), "timestamp": "2026-11-22T00:00:00Z",
                "action": action, "target": target,
                "request": {"id": "r", "addr": "10.0.0.1:1234", "host": "reg.example:5000",
                            "method": "PUT", "useragent": "skopeo"},
                "actor": {}, "source": {"addr": "pod-1:5000", "instanceID": "i"}
            })
        };
        serde_json::json!({"events": [
            event("push", "application/octet-stream", "sha256:blob", None),
            event("push", MANIFEST, "sha256:child1", None),
            event("push", MANIFEST, "sha256:child2", None),
            event("push", INDEX, "sha256:index", Some("v1")),
            event("pull", INDEX, "sha256:index", Some("v1")),
            event("mount", "application/octet-stream", "sha256:blob", None),
            {"action": "delete", "target": {"repository": "team/app", "digest": "sha256:gone"}},
            {"action": "delete", "target": {"repository": "team/app", "tag": "old"}},
        ]})
        .to_string()
    }

    #[test]
    fn reduces_to_manifest_pushes_and_deletes() {
        let events = parse_envelope(envelope().as_bytes(), "fleet/hq").expect("parses");
        let summary: Vec<(ManifestAction, Option<&str>, Option<&str>)> = events
            .iter()
            .map(|e| (e.action, e.digest.as_deref(), e.tag.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (ManifestAction::Push, Some("sha256:child1"), None),
                (ManifestAction::Push, Some("sha256:child2"), None),
                (ManifestAction::Push, Some("sha256:index"), Some("v1")),
                (ManifestAction::Delete, Some("sha256:gone"), None),
                (ManifestAction::Delete, None, Some("old")),
            ]
        );
        let index = &events[2];
        assert_eq!(index.sender, "fleet/hq");
        assert_eq!(index.repository, "team/app");
        assert_eq!(index.media_type.as_deref(), Some(INDEX));
        assert_eq!(index.request_host.as_deref(), Some("reg.example:5000"));
        assert_eq!(index.source_addr.as_deref(), Some("pod-1:5000"));
        assert_eq!(
            index.url.as_deref(),
            Some("http://r:5000/v2/team/app/manifests/sha256:index")
        );
    }

    #[test]
    fn malformed_envelopes_are_errors() {
        for body in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"events\": {}}",
            b"{\"events\": [{\"action\": \"push\"}]}",
        ] {
            assert!(parse_envelope(body, "x").is_err(), "{body:?}");
        }
        assert_eq!(parse_envelope(b"{\"events\": []}", "x").expect("ok"), []);
    }

    #[test]
    fn tokens_verify_identity() {
        let tokens = Tokens::default();
        assert_eq!(tokens.verify("a"), None);
        tokens.insert("fleet/hq", "secret-a");
        tokens.insert("fleet/east", "secret-b");
        assert_eq!(tokens.verify("secret-a").as_deref(), Some("fleet/hq"));
        assert_eq!(tokens.verify("secret-b").as_deref(), Some("fleet/east"));
        assert_eq!(tokens.verify("secret-"), None);
        assert_eq!(tokens.verify(""), None);
        tokens.insert("fleet/hq", "rotated");
        assert_eq!(tokens.verify("secret-a"), None);
        assert_eq!(tokens.len(), 2);
        tokens.remove("fleet/east");
        assert_eq!(tokens.verify("secret-b"), None);
        assert!(!format!("{tokens:?}").contains("rotated"));
    }

    #[test]
    fn bearer_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("hv"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer ".parse().expect("hv"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "bearer tok".parse().expect("hv"));
        assert_eq!(bearer(&h), Some("tok"));
    }

    struct Running {
        url: String,
        rx: mpsc::Receiver<ManifestEvent>,
        server: tokio::task::JoinHandle<()>,
    }

    async fn serve(capacity: usize) -> Running {
        let tokens = Tokens::default();
        tokens.insert("fleet/hq", "good-token");
        let (tx, rx) = mpsc::channel(capacity);
        let app = router(Receiver { tokens, events: tx });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Running {
            url: format!("http://{addr}{EVENTS_PATH}"),
            rx,
            server,
        }
    }

    fn client() -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::new()
    }

    async fn post(url: &str, token: Option<&str>, body: String) -> reqwest::StatusCode {
        let mut req = client()
            .post(url)
            .header(header::CONTENT_TYPE, EVENTS_CONTENT_TYPE)
            .body(body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send().await.expect("post").status()
    }

    #[tokio::test]
    async fn router_checks_token_and_body_then_forwards() {
        let mut r = serve(16).await;
        assert_eq!(post(&r.url, None, envelope()).await, 401);
        assert_eq!(post(&r.url, Some("bad-token"), envelope()).await, 401);
        assert_eq!(
            post(&r.url, Some("good-token"), "{not json".into()).await,
            400
        );
        assert!(r.rx.try_recv().is_err(), "rejected posts forward nothing");
        assert_eq!(post(&r.url, Some("good-token"), envelope()).await, 200);
        let mut got = Vec::new();
        while let Ok(e) = r.rx.try_recv() {
            got.push(e);
        }
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|e| e.sender == "fleet/hq"));
        let wrong_type = client()
            .post(&r.url)
            .bearer_auth("good-token")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(envelope())
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(wrong_type, 415);
        r.server.abort();
    }

    #[tokio::test]
    async fn full_queue_answers_503_and_forwards_nothing() {
        let mut r = serve(2).await;
        assert_eq!(post(&r.url, Some("good-token"), envelope()).await, 503);
        assert!(r.rx.try_recv().is_err());
        r.server.abort();
    }
}
