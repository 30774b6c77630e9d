//! The HTTP side of the receiver: admission, token check, bounded body, forwarding (see the
//! module above for the order and what each token may trigger).

use std::sync::Arc;

use super::{BoundedListener, ConnectionLimits, ManifestEvent, Tokens, parse_envelope};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures::StreamExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;

/// Path the registries post to.
pub const EVENTS_PATH: &str = "/v1/events";
/// Content type of Distribution's notification envelopes.
pub const EVENTS_CONTENT_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";
/// Largest envelope accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Bounds of the receiver.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest body read (413 beyond).
    pub max_body_bytes: usize,
    /// Time to receive the whole body (408 beyond): a slow drip ends.
    pub read_timeout: Duration,
    /// Time to wait for room in the event queue (503 beyond).
    pub forward_timeout: Duration,
    /// Posts handled at once (503 beyond).
    pub max_concurrent: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: MAX_BODY_BYTES,
            read_timeout: Duration::from_secs(10),
            forward_timeout: Duration::from_secs(5),
            max_concurrent: 32,
        }
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

/// The receiver's router: `POST /v1/events`, with the default [`Limits`].
pub fn router(receiver: Receiver) -> Router {
    router_with(receiver, Limits::default())
}

/// The receiver's router with the given limits.
pub fn router_with(receiver: Receiver, limits: Limits) -> Router {
    let served = Served {
        in_flight: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
        receiver,
        limits,
    };
    Router::new()
        .route(EVENTS_PATH, post(receive))
        .with_state(Arc::new(served))
}

/// Serves the receiver on `listener` with the default [`Limits`] and [`ConnectionLimits`]:
/// what `flotilla run` should use instead of `axum::serve(listener, router(receiver))`, which
/// bounds no connection (a client that never finishes its headers holds one for ever).
pub async fn serve(listener: tokio::net::TcpListener, receiver: Receiver) -> std::io::Result<()> {
    axum::serve(
        BoundedListener::new(listener, ConnectionLimits::default()),
        router(receiver),
    )
    .await
}

/// The receiver with its limits and the posts being handled.
struct Served {
    receiver: Receiver,
    limits: Limits,
    in_flight: Arc<Semaphore>,
}

fn reject(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
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

/// Why a body was not read.
enum BodyError {
    TooLarge,
    TimedOut,
    Broken,
}

/// Reads at most `max` bytes of `body` by `deadline`.
async fn read_body(body: Body, max: usize, deadline: Instant) -> Result<Bytes, BodyError> {
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .map_err(|_| BodyError::TimedOut)?;
        let Some(chunk) = next else {
            return Ok(Bytes::from(buf));
        };
        let chunk = chunk.map_err(|_| BodyError::Broken)?;
        if buf.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
}

/// Forwards `events` to `tx`: all at once when they fit the channel, else in channel-sized
/// parts, each waiting for room until `deadline`. Returns how many were forwarded when not all.
async fn forward(
    tx: &mpsc::Sender<ManifestEvent>,
    events: Vec<ManifestEvent>,
    deadline: Instant,
) -> Result<(), usize> {
    let part = tx.max_capacity().max(1);
    let mut sent = 0;
    let mut events = events.into_iter().peekable();
    while events.peek().is_some() {
        let chunk: Vec<ManifestEvent> = events.by_ref().take(part).collect();
        let permits = match tokio::time::timeout_at(deadline, tx.reserve_many(chunk.len())).await {
            Ok(Ok(permits)) => permits,
            Ok(Err(_)) | Err(_) => return Err(sent),
        };
        sent += chunk.len();
        for (permit, event) in permits.zip(chunk) {
            permit.send(event);
        }
    }
    Ok(())
}

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn receive(State(served): State<Arc<Served>>, request: Request) -> Response {
    let Ok(_permit) = served.in_flight.clone().try_acquire_owned() else {
        return reject(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many notification posts at once; retry\n",
        );
    };
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    // Authenticate from the headers alone: an unauthenticated body is never read.
    let Some(sender) = bearer(headers).and_then(|t| served.receiver.tokens.verify(t)) else {
        tracing::warn!("rejected notification post: missing or invalid bearer token");
        return reject(
            StatusCode::UNAUTHORIZED,
            "missing or invalid bearer token\n",
        );
    };
    if !content_type_ok(headers) {
        return reject(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "expected application/vnd.docker.distribution.events.v1+json\n",
        );
    }
    let limits = served.limits;
    let too_large = || {
        reject(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "notification envelope larger than {} bytes\n",
                limits.max_body_bytes
            ),
        )
    };
    if declared_length(headers).is_some_and(|n| n > limits.max_body_bytes) {
        return too_large();
    }
    let started = Instant::now();
    let body = match read_body(body, limits.max_body_bytes, started + limits.read_timeout).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::TimedOut) => {
            tracing::warn!(%sender, "notification post timed out while reading its body");
            return reject(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "notification body not received within {:?}\n",
                    limits.read_timeout
                ),
            );
        }
        Err(BodyError::Broken) => {
            return reject(StatusCode::BAD_REQUEST, "notification body broken off\n");
        }
    };
    let parsed = match parse_envelope(&body, &sender) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(%sender, error = %e, "rejected notification post");
            return reject(StatusCode::BAD_REQUEST, "malformed notification envelope\n");
        }
    };
    if parsed.malformed > 0 {
        tracing::warn!(
            %sender,
            skipped = parsed.malformed,
            "skipped malformed notification events (bad shape, or repository, tag or digest outside the Distribution grammar)"
        );
    }
    let count = parsed.events.len();
    if count == 0 {
        return StatusCode::OK.into_response();
    }
    match forward(
        &served.receiver.events,
        parsed.events,
        Instant::now() + limits.forward_timeout,
    )
    .await
    {
        Ok(()) => {
            tracing::debug!(%sender, count, "accepted notification events");
            StatusCode::OK.into_response()
        }
        Err(sent) => reject(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("event queue full or closed: forwarded {sent} of {count} events; retry\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notifications::event::tests::envelope;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        addr: std::net::SocketAddr,
        rx: mpsc::Receiver<ManifestEvent>,
        tx: mpsc::Sender<ManifestEvent>,
        server: tokio::task::JoinHandle<()>,
    }

    fn quick() -> Limits {
        Limits {
            max_body_bytes: 4096,
            read_timeout: Duration::from_millis(300),
            forward_timeout: Duration::from_millis(300),
            max_concurrent: 2,
        }
    }

    async fn serve_with(capacity: usize, limits: Limits) -> Running {
        let tokens = Tokens::default();
        tokens.insert("fleet/hq", "good-token");
        let (tx, rx) = mpsc::channel(capacity);
        let app = router_with(
            Receiver {
                tokens,
                events: tx.clone(),
            },
            limits,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve");
        });
        Running {
            url: format!("http://{addr}{EVENTS_PATH}"),
            addr,
            rx,
            tx,
            server,
        }
    }

    async fn serve(capacity: usize) -> Running {
        serve_with(capacity, Limits::default()).await
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

    fn drain(rx: &mut mpsc::Receiver<ManifestEvent>) -> Vec<ManifestEvent> {
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push(e);
        }
        got
    }

    /// Opens a connection and sends the head of a post declaring `length` body bytes, then
    /// only `sent` of them; the connection is returned open.
    async fn partial_post(
        addr: std::net::SocketAddr,
        token: &str,
        length: usize,
        sent: &[u8],
    ) -> tokio::net::TcpStream {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "POST {EVENTS_PATH} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: {EVENTS_CONTENT_TYPE}\r\nContent-Length: {length}\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        s.write_all(sent).await.expect("write body");
        s
    }

    /// The status code of the response on `s`, waiting at most `within`.
    async fn status_within(s: &mut tokio::net::TcpStream, within: Duration) -> Option<u16> {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(within, s.read(&mut buf))
            .await
            .ok()?
            .ok()?;
        let head = std::str::from_utf8(&buf[..n]).ok()?;
        head.split(' ').nth(1)?.parse().ok()
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
        let got = drain(&mut r.rx);
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
    async fn a_bad_token_is_refused_before_the_body_is_read() {
        let r = serve(16).await;
        // A megabyte announced, ten bytes sent: the answer comes from the headers alone.
        let mut s = partial_post(r.addr, "bad-token", MAX_BODY_BYTES, b"{\"events\":").await;
        assert_eq!(
            status_within(&mut s, Duration::from_secs(5)).await,
            Some(401)
        );
        r.server.abort();
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let r = serve_with(16, quick()).await;
        let big = format!("{{\"events\": [], \"pad\": \"{}\"}}", "x".repeat(5000));
        let mut s = partial_post(r.addr, "good-token", big.len(), big.as_bytes()).await;
        assert_eq!(
            status_within(&mut s, Duration::from_secs(5)).await,
            Some(413)
        );
        // Without a Content-Length (chunked), the limit holds while reading.
        let chunks = futures::stream::iter(
            big.into_bytes()
                .chunks(1000)
                .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
                .collect::<Vec<_>>(),
        );
        let status = client()
            .post(&r.url)
            .bearer_auth("good-token")
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, 413);
        r.server.abort();
    }

    #[tokio::test]
    async fn a_slow_drip_ends_with_408_and_frees_its_slot() {
        let limits = Limits {
            max_concurrent: 1,
            ..quick()
        };
        let mut r = serve_with(16, limits).await;
        let mut slow = partial_post(r.addr, "good-token", 100, b"{\"ev").await;
        // While the slow post holds the only slot, others are turned away at once (before the
        // slow one is admitted, an empty post is answered 400).
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut other = partial_post(r.addr, "good-token", 0, b"").await;
            let status = status_within(&mut other, Duration::from_secs(5)).await;
            if status == Some(503) {
                break;
            }
            assert_eq!(status, Some(400));
            assert!(
                Instant::now() < deadline,
                "the slow post never held the slot"
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(
            status_within(&mut slow, Duration::from_secs(5)).await,
            Some(408)
        );
        assert_eq!(post(&r.url, Some("good-token"), envelope()).await, 200);
        assert_eq!(drain(&mut r.rx).len(), 5);
        r.server.abort();
    }

    #[tokio::test]
    async fn an_envelope_larger_than_the_queue_is_forwarded_in_parts() {
        let mut r = serve_with(2, quick()).await;
        let consumer = tokio::spawn(async move {
            let mut got = Vec::new();
            while got.len() < 5 {
                match r.rx.recv().await {
                    Some(e) => got.push(e),
                    None => break,
                }
            }
            got
        });
        assert_eq!(post(&r.url, Some("good-token"), envelope()).await, 200);
        let got = tokio::time::timeout(Duration::from_secs(5), consumer)
            .await
            .expect("consumer done")
            .expect("consumer");
        let tags: Vec<_> = got.iter().filter_map(|e| e.tag.as_deref()).collect();
        assert_eq!((got.len(), tags), (5, vec!["v1", "old"]));
        r.server.abort();
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_after_the_deadline_and_forwards_nothing() {
        let mut r = serve_with(8, quick()).await;
        let filler = parse_envelope(envelope().as_bytes(), "filler").expect("parses");
        for e in filler.events.iter().take(4) {
            r.tx.try_send(e.clone()).expect("room");
        }
        // 5 events, room for 4: all or nothing.
        let started = Instant::now();
        assert_eq!(post(&r.url, Some("good-token"), envelope()).await, 503);
        assert!(started.elapsed() >= quick().forward_timeout);
        let got = drain(&mut r.rx);
        assert!(
            got.iter().all(|e| e.sender == "filler"),
            "nothing of the refused post"
        );
        assert_eq!(post(&r.url, Some("good-token"), envelope()).await, 200);
        r.server.abort();
    }

    #[tokio::test]
    async fn malformed_events_do_not_break_the_batch() {
        let mut r = serve(16).await;
        let body = serde_json::json!({"events": [
            {"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repository": "../../v2/other", "tag": "v1", "digest": "sha256:ab"}},
            {"action": "push", "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "repository": "apps/web", "tag": "v1", "digest": "sha256:ab"}},
            {"action": "push"},
        ]});
        assert_eq!(
            post(&r.url, Some("good-token"), body.to_string()).await,
            200
        );
        let got = drain(&mut r.rx);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].repository, "apps/web");
        r.server.abort();
    }
}
