//! Bearer-token authentication against real Distribution registries (`auth: token:`): a token
//! server written here issues RS256 JWTs (signed by `openssl dgst -sha256 -sign` with a
//! certificate a test CA issued, in the `x5c` header; the CA is the registries'
//! `rootcertbundle`). `flotilla sync`
//! follows the challenges of both the source and the destination, fetches one token per scope
//! and client (counted here), and reports wrong credentials in one line.

use crate::support::registry;

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use registry::*;

const ISSUER: &str = "flotilla-test-issuer";

struct TokenServer {
    key: std::path::PathBuf,
    /// Base64 DER of the signing certificate (the `x5c` header).
    x5c: String,
    /// Every token request: (service, scopes), and whether it was granted.
    requests: Mutex<Vec<(String, Vec<String>, bool)>>,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// `repository:a/b:pull,push` → a Distribution access entry.
fn access(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some(
        serde_json::json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}),
    )
}

async fn sign(key: &std::path::Path, input: &str) -> Vec<u8> {
    use tokio::io::AsyncWriteExt as _;
    let mut child = tokio::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("openssl: {e}: {OPENSSL_HINT}"));
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input.as_bytes()).await.expect("write");
    drop(stdin);
    let out = child.wait_with_output().await.expect("openssl output");
    assert!(out.status.success(), "openssl dgst -sign failed");
    out.stdout
}

async fn token(
    State(ts): State<Arc<TokenServer>>,
    Query(q): Query<Vec<(String, String)>>,
    h: HeaderMap,
) -> Response {
    let service = q
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let mut scopes: Vec<String> = q
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string))
        .collect();
    scopes.sort();
    // alice:s3cret
    let granted =
        h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Basic YWxpY2U6czNjcmV0");
    ts.requests
        .lock()
        .expect("lock")
        .push((service.clone(), scopes.clone(), granted));
    if !granted {
        return (StatusCode::UNAUTHORIZED, "bad credentials").into_response();
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [ts.x5c]});
    let claims = serde_json::json!({
        "iss": ISSUER, "sub": "alice", "aud": service,
        "exp": now + 300, "nbf": now - 1, "iat": now,
        "jti": format!("{}", rand::random::<u64>()),
        "access": scopes.iter().filter_map(|s| access(s)).collect::<Vec<_>>(),
    });
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let sig = sign(&ts.key, &input).await;
    let jwt = format!("{input}.{}", b64url(&sig));
    axum::Json(serde_json::json!({"token": jwt, "expires_in": 300})).into_response()
}

struct Setup {
    _dir: TempDir,
    ts: Arc<TokenServer>,
    src: Registry,
    dst: Registry,
    task: tokio::task::JoinHandle<()>,
    realm: String,
}

async fn setup() -> Setup {
    require_tools();
    let dir = TempDir::new("token");
    // The registries trust a test CA; tokens are signed by a certificate it issued.
    let ca = TestCa::new(dir.path(), "flotilla-token-ca");
    let (signer_crt, signer_key) = ca.server_cert("flotilla-token-signer");
    let der = openssl(
        dir.path(),
        &[
            "x509",
            "-in",
            signer_crt.to_str().expect("path"),
            "-outform",
            "DER",
        ],
    );
    let ts = Arc::new(TokenServer {
        key: signer_key,
        x5c: base64::engine::general_purpose::STANDARD.encode(der),
        requests: Mutex::new(Vec::new()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let realm = format!(
        "http://127.0.0.1:{}/token",
        listener.local_addr().expect("addr").port()
    );
    let app = axum::Router::new()
        .route("/token", axum::routing::get(token))
        .with_state(ts.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let src = Registry::start_token_auth(&realm, "src-registry", ISSUER, &ca.cert).await;
    let dst = Registry::start_token_auth(&realm, "dst-registry", ISSUER, &ca.cert).await;
    Setup {
        _dir: dir,
        ts,
        src,
        dst,
        task,
        realm,
    }
}

fn token_policy(dir: &std::path::Path, src: &str, dst: &str, password: &str) -> std::path::PathBuf {
    let s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: creds}}\nstringData: {{username: alice, password: {password}}}\n---\napiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: token}}\nspec:\n  source: {{url: \"{src}\", insecure: true, credentialsSecretRef: {{name: creds}}}}\n  destinations:\n    - {{name: d, url: \"{dst}\", insecure: true, credentialsSecretRef: {{name: creds}}}}\n"
    );
    let p = dir.join(format!("policy-{}.yaml", rand::random::<u32>()));
    std::fs::write(&p, s).expect("write policy");
    p
}

/// A JWT for pushing the test content through the registry's own token check.
async fn push_token(s: &Setup, repo: &str) -> String {
    let url = format!(
        "{}?service=src-registry&scope=repository:{repo}:pull,push",
        s.realm
    );
    let v: serde_json::Value = reqwest::Client::new()
        .get(url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    v["token"].as_str().expect("token").to_string()
}

async fn push_with_token(s: &Setup, repo: &str, tag: &str, m: &[u8], mt: &str, blobs: &[&[u8]]) {
    let tok = push_token(s, repo).await;
    let c = reqwest::Client::new();
    for b in blobs {
        let r = c
            .post(format!("{}/v2/{repo}/blobs/uploads/", s.src.url()))
            .bearer_auth(&tok)
            .send()
            .await
            .expect("start upload");
        assert_eq!(r.status().as_u16(), 202, "{}", s.src.log());
        let loc = r.headers()["location"].to_str().expect("loc").to_string();
        let mut url = reqwest::Url::parse(&s.src.url())
            .and_then(|u| u.join(&loc))
            .expect("url");
        url.query_pairs_mut().append_pair("digest", &sha256(b));
        let r = c
            .put(url)
            .bearer_auth(&tok)
            .body(b.to_vec())
            .send()
            .await
            .expect("put");
        assert_eq!(r.status().as_u16(), 201);
    }
    let r = c
        .put(format!("{}/v2/{repo}/manifests/{tag}", s.src.url()))
        .bearer_auth(&tok)
        .header("content-type", mt)
        .body(m.to_vec())
        .send()
        .await
        .expect("put manifest");
    assert_eq!(r.status().as_u16(), 201, "{:?}", r.text().await);
}

/// An image manifest over `layers` (gzip bytes), with its config.
fn image(layers: &[&[u8]]) -> (Vec<u8>, Vec<u8>) {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": layers.iter().map(|l| desc(OCI_LAYER, l)).collect::<Vec<_>>(),
    }))
    .expect("manifest");
    (m, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_challenges_are_answered_once_per_scope() {
    let s = setup().await;
    let shared = layer(&[("etc/base", b"shared by both repositories")]).0;
    let a = layer(&[("bin/a", &pseudo_random(21, 50_000))]).0;
    let b = layer(&[("bin/b", &pseudo_random(22, 50_000))]).0;
    let (ma, ca) = image(&[&shared, &a]);
    let (mb, cb) = image(&[&shared, &b]);
    push_with_token(&s, "team/a", "v1", &ma, OCI_MANIFEST, &[&ca, &shared, &a]).await;
    push_with_token(&s, "team/b", "v1", &mb, OCI_MANIFEST, &[&cb, &shared, &b]).await;
    s.ts.requests.lock().expect("lock").clear();

    let dir = TempDir::new("token-policy");
    let pol = token_policy(dir.path(), &s.src.url(), &s.dst.url(), "s3cret");
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(
        ok,
        "{report:#} {stderr}\nsource log: {}\ndestination log: {}",
        s.src.log(),
        s.dst.log()
    );
    assert_eq!(report["copied"], 2, "{report:#}");

    // What flotilla asked the token server (skopeo below asks too).
    let reqs = s.ts.requests.lock().expect("lock").clone();

    // The oracle: skopeo, doing its own token flow, reads the source's bytes back.
    for (repo, m) in [("team/a", &ma), ("team/b", &mb)] {
        let image = format!("{}/{repo}:v1", s.dst.host());
        assert_eq!(&registry::skopeo_raw_as("alice:s3cret", &image), m);
    }

    // One token per (registry, scope set): cached, never fetched twice.
    assert!(reqs.iter().all(|r| r.2), "all granted: {reqs:?}");
    for (service, scopes, _) in &reqs {
        let mut resources: Vec<&str> = scopes
            .iter()
            .filter_map(|s| s.rsplit_once(':').map(|r| r.0))
            .collect();
        let n = resources.len();
        resources.sort();
        resources.dedup();
        assert_eq!(
            resources.len(),
            n,
            "one resource asked twice at {service}: {scopes:?}"
        );
    }
    let mut keys: Vec<(String, Vec<String>)> =
        reqs.iter().map(|r| (r.0.clone(), r.1.clone())).collect();
    let n = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(
        keys.len(),
        n,
        "a scope's token was fetched twice: {reqs:#?}"
    );
    let has = |service: &str, scope: &str| {
        keys.iter()
            .any(|(s, scopes)| s == service && scopes.iter().any(|x| x == scope))
    };
    assert!(has("src-registry", "registry:catalog:*"), "{keys:#?}");
    assert!(has("src-registry", "repository:team/a:pull"), "{keys:#?}");
    assert!(
        has("dst-registry", "repository:team/b:pull,push"),
        "{keys:#?}"
    );
    // Bounded: per registry, the base scope plus a few per repository, not one per request.
    assert!(n <= 12, "{n} token requests: {keys:#?}");
    s.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_at_the_token_server_is_one_clear_line() {
    let s = setup().await;
    let dir = TempDir::new("token-bad");
    let pol = token_policy(dir.path(), &s.src.url(), &s.dst.url(), "wrong");
    let out = flotilla(&["sync", "-f", pol.to_str().expect("path")]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("rejected the credentials"), "{err}");
    assert!(!err.contains("  "), "no empty part in the message: {err}");
    assert!(
        err.contains(&s.src.host()) || err.contains(&s.dst.host()),
        "{err}"
    );
    let reqs = s.ts.requests.lock().expect("lock").clone();
    assert!(!reqs.is_empty() && reqs.iter().all(|r| !r.2), "{reqs:?}");
    s.task.abort();
}

/// A cross-repository mount the registry refuses (the `from` repository lacks the blob) opens
/// an upload session under the mount's token; the upload into that session must carry a
/// token allowing the push, though none was fetched for the push scope alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_after_a_refused_mount_carries_the_mounts_token() {
    use flotilla::engine::auth::Credentials;
    use flotilla::engine::backoff::RetryConfig;
    use flotilla::engine::client::Mount;
    use flotilla::engine::digest::Digest;
    use flotilla::engine::{EndpointConfig, RegistryClient};

    let s = setup().await;
    let client = RegistryClient::new(
        &EndpointConfig {
            url: s.dst.url(),
            credentials: Some(Credentials {
                username: "alice".into(),
                password: "s3cret".into(),
            }),
            ca_pem: None,
            insecure: true,
            token_realm: None,
        },
        RetryConfig::default(),
    )
    .expect("client");
    let blob = pseudo_random(31, 70_000);
    let digest: Digest = sha256(&blob).parse().expect("digest");
    let session = match client
        .mount("team/c", &digest, "team/a")
        .await
        .expect("mount request")
    {
        Mount::Upload(session) => session,
        Mount::Mounted => panic!("team/a holds nothing: the mount must be refused"),
    };
    client
        .put_stream(
            "team/c",
            session,
            &digest,
            reqwest::Body::from(blob.clone()),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "upload into the refused mount's session: {e}\n{}",
                s.dst.log()
            )
        });
    assert!(
        client.blob_exists("team/c", &digest).await.expect("HEAD"),
        "the blob is in team/c after the upload"
    );
    s.task.abort();
}
