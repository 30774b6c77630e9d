//! The bearer-token challenge flow of the registry client against a mock registry: the token
//! is fetched with the credentials, cached per scope, and `Link` pagination is followed.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use flotilla::engine::auth::Credentials;
use flotilla::engine::backoff::RetryConfig;
use flotilla::engine::client::{ClientError, EndpointConfig, RegistryClient};

struct Mock {
    base: String,
    token_requests: AtomicU64,
}

fn challenge(m: &Mock, scope: Option<&str>) -> Response {
    let scope = scope.map(|s| format!(",scope=\"{s}\"")).unwrap_or_default();
    (
        StatusCode::UNAUTHORIZED,
        [(
            "www-authenticate",
            format!("Bearer realm=\"{}/token\",service=\"mock\"{scope}", m.base),
        )],
        "{}",
    )
        .into_response()
}

fn bearer(h: &HeaderMap) -> Option<String> {
    h.get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_string)
}

async fn token(
    State(m): State<Arc<Mock>>,
    Query(q): Query<Vec<(String, String)>>,
    h: HeaderMap,
) -> Response {
    m.token_requests.fetch_add(1, Ordering::Relaxed);
    // alice:s3cret
    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("Basic YWxpY2U6czNjcmV0") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let scopes: Vec<&str> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect();
    let tok = if scopes.contains(&"repository:team/app:pull") {
        "tok-app"
    } else {
        "tok-base"
    };
    axum::Json(serde_json::json!({"token": tok})).into_response()
}

async fn base(State(m): State<Arc<Mock>>, h: HeaderMap) -> Response {
    match bearer(&h) {
        Some(_) => axum::Json(serde_json::json!({})).into_response(),
        None => challenge(&m, None),
    }
}

async fn tags(
    State(m): State<Arc<Mock>>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
) -> Response {
    if bearer(&h).as_deref() != Some("tok-app") {
        return challenge(&m, Some("repository:team/app:pull"));
    }
    match q.get("last").map(String::as_str) {
        None => (
            [("link", "</v2/team/app/tags/list?n=1&last=a>; rel=\"next\"")],
            axum::Json(serde_json::json!({"name": "team/app", "tags": ["a"]})),
        )
            .into_response(),
        Some("a") => (
            [("link", "</v2/team/app/tags/list?n=1&last=b>; rel=\"next\"")],
            axum::Json(serde_json::json!({"name": "team/app", "tags": ["b"]})),
        )
            .into_response(),
        Some(_) => {
            axum::Json(serde_json::json!({"name": "team/app", "tags": ["c"]})).into_response()
        }
    }
}

async fn start() -> (Arc<Mock>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mock = Arc::new(Mock {
        base: format!("http://127.0.0.1:{port}"),
        token_requests: AtomicU64::new(0),
    });
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .route("/v2/", axum::routing::get(base))
        .route("/v2/team/app/tags/list", axum::routing::get(tags))
        .with_state(mock.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (mock, task)
}

fn client(m: &Mock, password: &str) -> RegistryClient {
    RegistryClient::new(
        &EndpointConfig {
            url: m.base.clone(),
            credentials: Some(Credentials {
                username: "alice".into(),
                password: password.into(),
            }),
            ca_pem: None,
            insecure: true,
            token_realm: None,
        },
        RetryConfig::default(),
    )
    .expect("client")
}

#[tokio::test]
async fn bearer_tokens_are_fetched_once_per_scope_and_pages_followed() {
    let (mock, task) = start().await;
    let c = client(&mock, "s3cret");
    c.ping().await.expect("ping");
    let tags = c.tags("team/app").await.expect("tags");
    assert_eq!(tags, vec!["a", "b", "c"]);
    // One token for the base scope, one for the repository scope; the three pages reuse it.
    assert_eq!(mock.token_requests.load(Ordering::Relaxed), 2);
    let again = c.tags("team/app").await.expect("tags");
    assert_eq!(again.len(), 3);
    assert_eq!(
        mock.token_requests.load(Ordering::Relaxed),
        2,
        "token cached"
    );
    task.abort();
}

#[tokio::test]
async fn wrong_password_is_reported_as_rejected_credentials() {
    let (mock, task) = start().await;
    let err = client(&mock, "wrong").ping().await.expect_err("must fail");
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
    assert!(
        err.to_string().contains("rejected the credentials"),
        "{err}"
    );
    task.abort();
}

#[test]
fn plain_http_needs_insecure() {
    let err = RegistryClient::new(
        &EndpointConfig {
            url: "http://127.0.0.1:5000".into(),
            ..Default::default()
        },
        RetryConfig::default(),
    )
    .expect_err("http without insecure");
    assert!(err.to_string().contains("insecure"), "{err}");
}
