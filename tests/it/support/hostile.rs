//! A registry that misbehaves on purpose: the one test double of the project (no real registry
//! misbehaves on demand). It is a [`Proxy`] in front of a real `docker-registry` that answers
//! some requests itself — huge bodies, endless or foreign pagination, names that escape the
//! repository, failed or cut listings, endless `Retry-After`, a slow drip, redirects to
//! another host — and forwards everything else.
#![allow(dead_code)]

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

use super::registry::{Answer, Faults, Proxy, Pusher, Registry, layer};

/// 64 MiB: the size of a hostile body (Flotilla reads at most 4 MiB of a manifest).
pub const HUGE: usize = 64 << 20;

/// How the registry misbehaves.
#[derive(Clone, Debug)]
pub enum Misbehaviour {
    /// Every manifest of `repo` is 64 MiB (HEAD answers a digest, GET streams the bytes
    /// without a `Content-Length`).
    HugeManifest { repo: String },
    /// The tag listing of `repo` is one 64 MiB page.
    HugeTagPage { repo: String },
    /// The tag listing of `repo` names itself as the next page.
    SelfLink { repo: String },
    /// The tag listing of `repo` names a page on another host as the next one.
    ForeignLink { repo: String, to: String },
    /// The catalog lists these names (path escapes among them) instead of the real ones.
    Catalog { names: Vec<String> },
    /// The tag listing of `repo` answers `status`.
    ListingStatus { repo: String, status: u16 },
    /// The tag listing of `repo` breaks off in the middle of its body.
    TruncatedListing { repo: String },
    /// Every request about `repo` answers 503 with `Retry-After: secs`.
    RetryAfter { repo: String, secs: u64 },
    /// Manifest GETs of `repo` answer one byte a second.
    SlowDrip { repo: String },
    /// Blob GETs of `repo` answer an endless stream of bytes.
    EndlessBlobs { repo: String },
    /// Blob GETs of `repo` redirect to the same path on `to`.
    RedirectBlobs { repo: String, to: String },
}

/// A hostile registry in front of the real registry at `upstream`.
pub async fn start(upstream: &str, m: Misbehaviour) -> Proxy {
    Proxy::start(
        upstream,
        Faults {
            answer: Some(answer(m)),
            ..Default::default()
        },
    )
    .await
}

fn response(status: u16, headers: &[(&str, String)], body: Body) -> Response {
    let mut b = Response::builder().status(status);
    for (k, v) in headers {
        b = b.header(*k, v);
    }
    b.body(body).expect("response")
}

/// `size` bytes that start like JSON and never end it.
fn endless_json(prefix: &'static str, size: usize) -> Body {
    let chunk = Bytes::from(vec![b' '; 1 << 20]);
    let chunks = size / chunk.len();
    let head =
        futures::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(prefix)) });
    let rest = futures::stream::iter((0..chunks).map(move |_| Ok(chunk.clone())));
    Body::from_stream(head.chain(rest))
}

fn tags_path(repo: &str) -> String {
    format!("/v2/{repo}/tags/list")
}

fn answer(m: Misbehaviour) -> Answer {
    std::sync::Arc::new(move |method, path_q| {
        let path = path_q.split('?').next().unwrap_or(path_q);
        let get = method == reqwest::Method::GET;
        match &m {
            Misbehaviour::HugeManifest { repo }
                if path.starts_with(&format!("/v2/{repo}/manifests/")) =>
            {
                let headers = [
                    (
                        "content-type",
                        "application/vnd.oci.image.manifest.v1+json".to_string(),
                    ),
                    (
                        "docker-content-digest",
                        format!("sha256:{}", "a".repeat(64)),
                    ),
                ];
                let body = if get {
                    endless_json("{\"schemaVersion\":2,\"padding\":\"", HUGE)
                } else {
                    Body::empty()
                };
                Some(response(200, &headers, body))
            }
            Misbehaviour::HugeTagPage { repo } if path == tags_path(repo) => Some(response(
                200,
                &[("content-type", "application/json".into())],
                endless_json("{\"name\":\"x\",\"tags\":[\"", HUGE),
            )),
            Misbehaviour::SelfLink { repo } if path == tags_path(repo) => Some(response(
                200,
                &[
                    ("content-type", "application/json".into()),
                    ("link", format!("<{path_q}>; rel=\"next\"")),
                ],
                Body::from(format!("{{\"name\":\"{repo}\",\"tags\":[\"v1\"]}}")),
            )),
            Misbehaviour::ForeignLink { repo, to } if path == tags_path(repo) => Some(response(
                200,
                &[
                    ("content-type", "application/json".into()),
                    ("link", format!("<{to}{path}?n=1000&last=v1>; rel=\"next\"")),
                ],
                Body::from(format!("{{\"name\":\"{repo}\",\"tags\":[\"v1\"]}}")),
            )),
            Misbehaviour::Catalog { names } if path == "/v2/_catalog" => Some(response(
                200,
                &[("content-type", "application/json".into())],
                Body::from(serde_json::json!({ "repositories": names }).to_string()),
            )),
            Misbehaviour::ListingStatus { repo, status } if path == tags_path(repo) => {
                Some(response(
                    *status,
                    &[],
                    Body::from("{\"errors\":[{\"code\":\"NAME_UNKNOWN\"}]}"),
                ))
            }
            Misbehaviour::TruncatedListing { repo } if path == tags_path(repo) => {
                let head = futures::stream::once(async {
                    Ok::<Bytes, std::io::Error>(Bytes::from_static(
                        b"{\"name\":\"app\",\"tags\":[\"v",
                    ))
                });
                let cut = futures::stream::once(async {
                    Err::<Bytes, std::io::Error>(std::io::Error::other("cut"))
                });
                Some(response(
                    200,
                    &[("content-type", "application/json".into())],
                    Body::from_stream(head.chain(cut)),
                ))
            }
            Misbehaviour::RetryAfter { repo, secs }
                if path.starts_with(&format!("/v2/{repo}/")) =>
            {
                Some(response(
                    503,
                    &[("retry-after", secs.to_string())],
                    Body::from("try again tomorrow"),
                ))
            }
            Misbehaviour::SlowDrip { repo }
                if get && path.starts_with(&format!("/v2/{repo}/manifests/")) =>
            {
                let drip = futures::stream::unfold(0u32, |n| async move {
                    if n >= 600 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Some((Ok::<Bytes, std::io::Error>(Bytes::from_static(b" ")), n + 1))
                });
                Some(response(
                    200,
                    &[(
                        "content-type",
                        "application/vnd.oci.image.manifest.v1+json".into(),
                    )],
                    Body::from_stream(drip),
                ))
            }
            Misbehaviour::EndlessBlobs { repo }
                if get && path.starts_with(&format!("/v2/{repo}/blobs/")) =>
            {
                let chunk = Bytes::from(vec![0u8; 256 << 10]);
                let endless = futures::stream::repeat_with(move || {
                    Ok::<Bytes, std::io::Error>(chunk.clone())
                });
                Some(response(
                    200,
                    &[("content-type", "application/octet-stream".into())],
                    Body::from_stream(endless),
                ))
            }
            Misbehaviour::RedirectBlobs { repo, to }
                if get && path.starts_with(&format!("/v2/{repo}/blobs/")) =>
            {
                Some(response(
                    307,
                    &[("location", format!("{to}{path_q}"))],
                    Body::empty(),
                ))
            }
            _ => None,
        }
    })
}

/// A server on another host that records the `Authorization` headers it is sent and answers
/// 404 to everything.
pub struct Thief {
    pub port: u16,
    pub authorizations: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    pub requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Thief {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind thief");
        let port = listener.local_addr().expect("addr").port();
        let authorizations = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (a, r) = (authorizations.clone(), requests.clone());
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let (a, r) = (a.clone(), r.clone());
            async move {
                r.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(v) = req.headers().get("authorization")
                    && let Ok(mut a) = a.lock()
                {
                    a.push(v.to_str().unwrap_or("?").to_string());
                }
                response(404, &[], Body::empty())
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Thief {
            port,
            authorizations,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Thief {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A source that needs `alice`/`s3cret` and holds `app:v1`, behind a hostile registry that
/// redirects its blob GETs to a [`Thief`] on another host.
pub struct RedirectingSource {
    /// The real registry.
    pub registry: Registry,
    /// Where blob GETs are sent.
    pub thief: Thief,
    /// The hostile registry clients are given.
    pub proxy: Proxy,
}

impl RedirectingSource {
    pub async fn start() -> Self {
        let registry = Registry::start_with_auth().await;
        Pusher::with_basic_auth(&registry.url(), "alice", "s3cret")
            .image(
                "app",
                Some("v1"),
                "amd64",
                &[layer(&[("f", b"one")])],
                false,
            )
            .await;
        let thief = Thief::start().await;
        let proxy = start(
            &registry.url(),
            Misbehaviour::RedirectBlobs {
                repo: "app".into(),
                to: thief.url(),
            },
        )
        .await;
        RedirectingSource {
            registry,
            thief,
            proxy,
        }
    }

    /// Requests the thief got, and the `Authorization` headers among them.
    pub fn stolen(&self) -> (u64, Vec<String>) {
        (
            self.thief
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            self.thief
                .authorizations
                .lock()
                .map(|a| a.clone())
                .unwrap_or_default(),
        )
    }
}
