//! Config conformance: the exact `config.yml` and environment Flotilla's builders give a
//! registry pod, handed to the real `docker-registry` (Distribution 2.8) as local processes over a
//! real MinIO, with skopeo as the independent client. Only addresses and paths are adapted.

use crate::support::registry_proc;
use crate::support::s3;

use std::path::{Path, PathBuf};
use std::time::Duration;

use flotilla::api::Registry;
use flotilla::fleet::{BuildContext, Children, GeneratedSecrets, build};
use flotilla::notifications::{self, EVENTS_PATH, ManifestAction, ManifestEvent, Tokens};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use registry_proc::RegistryProc;
use s3::Minio;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const REDIS_PASSWORD: &str = "redis-test-password";

/// A real `redis-server` on a free loopback port, requiring [`REDIS_PASSWORD`]; killed on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
    /// `127.0.0.1:PORT`.
    address: String,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Redis {
    fn start() -> Redis {
        let port = registry_proc::free_port();
        let child = std::process::Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--requirepass",
                REDIS_PASSWORD,
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server not found: install it (apt-get install redis-server)");
        let redis = Redis {
            child,
            port,
            address: format!("127.0.0.1:{port}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while redis.cli(&["PING"]).trim() != "PONG" {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let anonymous = std::process::Command::new("redis-cli")
            .args(["-p", &port.to_string(), "PING"])
            .output()
            .expect("redis-cli");
        assert!(
            String::from_utf8_lossy(&anonymous.stdout).contains("NOAUTH"),
            "redis must require the password"
        );
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("redis-cli")
            .args([
                "-p",
                &self.port.to_string(),
                "-a",
                REDIS_PASSWORD,
                "--no-auth-warning",
            ])
            .args(args)
            .output()
            .expect("redis-cli not found: install it (apt-get install redis-server)");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Keys matching a glob pattern.
    fn keys(&self, pattern: &str) -> Vec<String> {
        self.cli(&["--scan", "--pattern", pattern])
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn skopeo() -> PathBuf {
    let bin = PathBuf::from("/usr/bin/skopeo");
    assert!(
        bin.is_file(),
        "skopeo not found: install it (apt-get install skopeo)"
    );
    bin
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn registry(name: &str, spec: serde_json::Value) -> Registry {
    let spec = serde_json::from_value(spec).expect("valid spec");
    let mut r = Registry::new(name, spec);
    r.metadata.namespace = Some("conformance".into());
    r.metadata.uid = Some(format!("uid-{name}"));
    r
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.data = Some(
        data.iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect(),
    );
    s
}

/// The environment the kubelet would give the registry container of `children`.
fn pod_env(children: &Children, secrets: &[Secret]) -> Vec<(String, String)> {
    let pod = children
        .deployment
        .spec
        .template
        .spec
        .as_ref()
        .expect("pod spec");
    registry_proc::pod_env(pod, secrets)
}

fn config_yml(children: &Children) -> String {
    children
        .config_map
        .data
        .as_ref()
        .and_then(|d| d.get("config.yml"))
        .expect("config.yml")
        .clone()
}

fn assert_no_secret_in_config(config: &str, env: &[(String, String)]) {
    for (name, value) in env {
        let probe = value.lines().next().unwrap_or(value);
        if name == "REGISTRY_NOTIFICATIONS_ENDPOINTS" {
            assert!(!config.contains("Bearer"), "token header in config.yml");
        } else {
            assert!(
                !config.contains(probe),
                "{name} value appears in config.yml"
            );
        }
    }
}

/// An OCI image layout with one single-layer image tagged `tag`.
struct Image {
    dir: PathBuf,
    manifest: Vec<u8>,
    manifest_digest: String,
    layer: Vec<u8>,
    layer_digest: String,
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn write_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    let hex = digest.trim_start_matches("sha256:");
    std::fs::write(dir.join("blobs/sha256").join(hex), bytes).expect("blob");
    digest
}

fn oci_image(dir: &Path, tag: &str, seed: &str) -> Image {
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("layout");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    let layer: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i ^ seed.len() as u32).to_le_bytes())
        .chain(seed.bytes())
        .collect();
    let layer_digest = write_blob(dir, &layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "config": {"Labels": {"seed": seed}}
    })
    .to_string();
    let config_digest = write_blob(dir, config.as_bytes());
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}]
    }))
    .expect("manifest");
    let manifest_digest = write_blob(dir, &manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": OCI_MANIFEST, "digest": manifest_digest,
                       "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    Image {
        dir: dir.to_path_buf(),
        manifest,
        manifest_digest,
        layer,
        layer_digest,
    }
}

fn run_skopeo(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new(skopeo())
        .env_remove("AWS_CA_BUNDLE")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn push(image: &Image, tag: &str, dest: &str) {
    run_skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:{tag}", image.dir.display()),
        &format!("docker://{dest}"),
    ]);
}

fn raw_manifest(src: &str) -> Vec<u8> {
    run_skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{src}"),
    ])
}

/// Pulls `src` into a fresh OCI layout with skopeo and returns the bytes of blob `digest`.
fn pull_blob(src: &str, dir: &Path, digest: &str) -> Vec<u8> {
    run_skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{src}"),
        &format!("oci:{}:pulled", dir.display()),
    ]);
    std::fs::read(
        dir.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("pulled blob")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "flotilla-conformance-{name}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("scratch");
    dir
}

/// Runs Flotilla's event receiver on a loopback port.
async fn receiver(
    tokens: Tokens,
) -> (
    String,
    mpsc::Receiver<ManifestEvent>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::channel(256);
    let app = notifications::router(notifications::Receiver { tokens, events: tx });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve receiver");
    });
    (format!("http://{addr}{EVENTS_PATH}"), rx, task)
}

fn absolute(base: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{base}{location}")
    } else {
        location.to_string()
    }
}

/// Moves an upload URL from one replica to another (same path and state, other host).
fn rehost(location: &str, from: &RegistryProc, to: &RegistryProc) -> String {
    absolute(&from.url, location).replacen(&from.host, &to.host, 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_one_minio_bucket_share_images_uploads_and_notify() {
    skopeo();
    let minio = Minio::start().await;
    minio.create_bucket("registry").await;
    let redis = Redis::start();

    let generated = GeneratedSecrets::reuse_or_generate(None, true);
    let token = generated.notification_token.clone().expect("token");
    let tokens = Tokens::default();
    tokens.insert("conformance/hq", &token);
    let (receiver_url, mut events, receiver_task) = receiver(tokens).await;

    let hq = registry(
        "hq",
        serde_json::json!({
            "replicas": 2,
            "storage": {"s3": {"bucket": "registry", "region": s3::REGION,
                               "endpoint": minio.endpoint, "forcePathStyle": true,
                               "rootDirectory": "/fleet", "encrypt": true,
                               "credentialsSecretRef": {"name": "s3-creds"}}},
            "cache": {"redis": {"address": redis.address,
                                "passwordSecretRef": {"name": "redis", "key": "password"}}},
            "notifications": true
        }),
    );
    let ctx = BuildContext {
        receiver_url: Some(receiver_url),
        read_only_window: false,
        token_service_image: None,
    };
    let children = build(&hq, &ctx, &generated).expect("build");
    let s3_creds = secret(
        "s3-creds",
        &[("accessKey", s3::ACCESS_KEY), ("secretKey", s3::SECRET_KEY)],
    );
    let config = config_yml(&children);
    let redis_secret = secret("redis", &[("password", REDIS_PASSWORD)]);
    let env = pod_env(
        &children,
        &[children.generated_secret.clone(), s3_creds, redis_secret],
    );
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "REGISTRY_HTTP_SECRET",
            "REGISTRY_STORAGE_S3_ACCESSKEY",
            "REGISTRY_STORAGE_S3_SECRETKEY",
            "REGISTRY_REDIS_PASSWORD",
            "REGISTRY_NOTIFICATIONS_ENDPOINTS"
        ]
    );
    assert_no_secret_in_config(&config, &env);

    let a = RegistryProc::start("hq-a", &config, &env).await;
    let b = RegistryProc::start("hq-b", &config, &env).await;

    // An image pushed through one replica is pulled, byte for byte, through the other.
    let work = scratch("replicas");
    let image = oci_image(&work.join("src"), "v1", "replicas");
    push(&image, "v1", &format!("{}/team/app:v1", a.host));
    let via_b = raw_manifest(&format!("{}/team/app:v1", b.host));
    assert_eq!(
        via_b, image.manifest,
        "manifest served by the other replica"
    );
    let layer = pull_blob(
        &format!("{}/team/app:v1", b.host),
        &work.join("pulled"),
        &image.layer_digest,
    );
    assert_eq!(layer, image.layer, "layer served by the other replica");
    let listing = minio.list("registry", "fleet/docker/registry/v2/").await;
    assert!(
        listing.contains("fleet/docker/registry/v2/"),
        "objects under rootDirectory: {listing}"
    );
    // `encrypt: true` reaches S3: the layer is stored with server-side encryption.
    let hex = image.layer_digest.trim_start_matches("sha256:");
    let layer_key = format!(
        "fleet/docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    );
    assert_eq!(
        minio
            .object_encryption("registry", &layer_key)
            .await
            .as_deref(),
        Some("AES256"),
        "layer object {layer_key} not encrypted"
    );
    // The blob-descriptor cache is the password-protected redis: it now describes the layer.
    let cached = redis.keys(&format!("*{}*", image.layer_digest));
    assert!(
        !cached.is_empty(),
        "no redis key mentions the layer {}",
        image.layer_digest
    );

    // A blob upload started on one replica (POST + PATCH) is finished on the other (PUT).
    let http = client();
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let digest = sha256(&blob);
    let (first, second) = blob.split_at(120_000);
    let started = http
        .post(format!("{}/v2/team/upload/blobs/uploads/", a.url))
        .send()
        .await
        .expect("POST");
    assert_eq!(started.status(), 202, "start upload on A");
    let location = started.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let patched = http
        .patch(absolute(&a.url, &location))
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("0-{}", first.len() - 1))
        .body(first.to_vec())
        .send()
        .await
        .expect("PATCH");
    assert_eq!(patched.status(), 202, "first chunk on A");
    let location = patched.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();

    // Negative control: a registry with a different http.secret cannot resume the upload.
    let mut stranger_env = env.clone();
    stranger_env[0].1 = flotilla::fleet::generate_http_secret();
    let stranger = RegistryProc::start("stranger", &config, &stranger_env).await;
    let refused = http
        .put(format!(
            "{}&digest={digest}",
            rehost(&location, &a, &stranger)
        ))
        .header("content-type", "application/octet-stream")
        .body(second.to_vec())
        .send()
        .await
        .expect("PUT on stranger");
    assert!(
        refused.status().is_client_error(),
        "a replica without the shared secret must refuse the upload, got {}",
        refused.status()
    );

    let finished = http
        .put(format!("{}&digest={digest}", rehost(&location, &a, &b)))
        .header("content-type", "application/octet-stream")
        .body(second.to_vec())
        .send()
        .await
        .expect("PUT");
    assert_eq!(
        finished.status(),
        201,
        "finish on B: {}",
        finished.text().await.unwrap_or_default()
    );
    for r in [&a, &b] {
        let got = http
            .get(format!("{}/v2/team/upload/blobs/{digest}", r.url))
            .send()
            .await
            .expect("GET blob");
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.expect("body").as_ref(), blob.as_slice());
    }

    // The notifications config delivers the push, with the bearer token, to the receiver.
    let pushed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = events.recv().await.expect("receiver open");
            if e.action == ManifestAction::Push && e.tag.as_deref() == Some("v1") {
                return e;
            }
        }
    })
    .await
    .expect("push event within 30 s");
    assert_eq!(pushed.sender, "conformance/hq");
    assert_eq!(pushed.repository, "team/app");
    assert_eq!(
        pushed.digest.as_deref(),
        Some(image.manifest_digest.as_str())
    );
    assert_eq!(pushed.media_type.as_deref(), Some(OCI_MANIFEST));
    // Only manifest events reach the channel (blob pushes and pulls are filtered twice:
    // by the registry's ignore settings and by the receiver).
    while let Ok(e) = events.try_recv() {
        assert!(e.media_type.as_deref() != Some("application/octet-stream"));
    }
    receiver_task.abort();
    let _ = std::fs::remove_dir_all(work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_cache_serves_an_upstream_image() {
    skopeo();
    let ctx = BuildContext::default();
    let none = GeneratedSecrets::reuse_or_generate(None, false);

    let upstream_spec = registry(
        "upstream",
        serde_json::json!({"storage": {"emptyDir": {}}, "notifications": false}),
    );
    let up = build(&upstream_spec, &ctx, &none).expect("build upstream");
    let up_env = pod_env(&up, std::slice::from_ref(&up.generated_secret));
    let mut upstream = RegistryProc::start("upstream", &config_yml(&up), &up_env).await;

    let work = scratch("proxy");
    let image = oci_image(&work.join("src"), "1.0", "proxy");
    push(
        &image,
        "1.0",
        &format!("{}/library/tool:1.0", upstream.host),
    );

    let cache_spec = registry(
        "cache",
        serde_json::json!({
            "storage": {"emptyDir": {}},
            "proxy": {"remoteURL": upstream.url, "credentialsSecretRef": {"name": "upstream-creds"}},
            "notifications": false
        }),
    );
    let cache_objects = build(&cache_spec, &ctx, &none).expect("build cache");
    let creds = secret(
        "upstream-creds",
        &[("username", "puller"), ("password", "pull-secret-pw")],
    );
    let cache_config = config_yml(&cache_objects);
    let cache_env = pod_env(
        &cache_objects,
        &[cache_objects.generated_secret.clone(), creds],
    );
    assert!(
        cache_env
            .iter()
            .any(|(k, v)| k == "REGISTRY_PROXY_PASSWORD" && v == "pull-secret-pw")
    );
    assert_no_secret_in_config(&cache_config, &cache_env);
    let cache = RegistryProc::start("cache", &cache_config, &cache_env).await;

    let reference = format!("{}/library/tool:1.0", cache.host);
    assert_eq!(raw_manifest(&reference), image.manifest);
    let layer = pull_blob(&reference, &work.join("first"), &image.layer_digest);
    assert_eq!(layer, image.layer);

    // Served from the cache once fetched: the upstream is gone, the blob is still there.
    upstream.stop();
    let got = client()
        .get(format!(
            "{}/v2/library/tool/blobs/{}",
            cache.url, image.layer_digest
        ))
        .send()
        .await
        .expect("GET cached blob");
    assert_eq!(got.status(), 200);
    assert_eq!(
        got.bytes().await.expect("body").as_ref(),
        image.layer.as_slice()
    );
    let _ = std::fs::remove_dir_all(work);
}

/// One notification post as the registry sent it.
struct Post {
    authorization: Option<String>,
    content_type: Option<String>,
    body: serde_json::Value,
}

/// A raw capture endpoint standing in for the receiver, to see exactly what the registry's
/// notification config makes it send.
async fn capture() -> (
    String,
    mpsc::UnboundedReceiver<Post>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        EVENTS_PATH,
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let header = |name| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let _ = tx.send(Post {
                        authorization: header("authorization"),
                        content_type: header("content-type"),
                        body: serde_json::from_slice(&body).unwrap_or_default(),
                    });
                    axum::http::StatusCode::OK
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve capture");
    });
    (format!("http://{addr}{EVENTS_PATH}"), rx, task)
}

/// Collects posted events until one is a push of `tag`.
async fn events_until_push(
    rx: &mut mpsc::UnboundedReceiver<Post>,
    tag: &str,
    token: &str,
) -> Vec<serde_json::Value> {
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let post = rx.recv().await.expect("capture open");
            assert_eq!(
                post.authorization,
                Some(format!("Bearer {token}")),
                "bearer header on every post"
            );
            assert_eq!(
                post.content_type.as_deref(),
                Some(notifications::EVENTS_CONTENT_TYPE)
            );
            let events = post.body["events"].as_array().cloned().unwrap_or_default();
            let done = events
                .iter()
                .any(|e| e["action"] == "push" && e["target"]["tag"] == tag);
            seen.extend(events);
            if done {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no push event for {tag} within 30 s"));
    seen
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl not found: install it (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test CA and a server certificate for 127.0.0.1 signed by it: (ca.crt, tls.crt, tls.key).
fn certificates(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ]
        .into_iter()
        .chain([
            "-subj",
            "/CN=flotilla-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ])
        .collect::<Vec<_>>(),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
        ]
        .into_iter()
        .chain(["-keyout", "tls.key", "-out", "tls.csr"])
        .collect::<Vec<_>>(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    openssl(
        dir,
        &[
            "x509", "-req", "-in", "tls.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        ]
        .into_iter()
        .chain([
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "leaf.ext",
            "-out",
            "tls.crt",
        ])
        .collect::<Vec<_>>(),
    );
    let read = |f: &str| std::fs::read(dir.join(f)).expect("certificate file");
    (read("ca.crt"), read("tls.crt"), read("tls.key"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_htpasswd_notification_filters_and_read_only_mode() {
    skopeo();
    let minio = Minio::start().await;
    minio.create_bucket("secure").await;
    let (capture_url, mut posts, capture_task) = capture().await;
    let work = scratch("secure");
    let (ca, crt, key) = certificates(&work);
    let htpasswd = format!("alice:{}\n", bcrypt::hash("wonderland", 4).expect("bcrypt"));

    let storage = serde_json::json!({"s3": {
        "bucket": "secure", "endpoint": minio.endpoint, "forcePathStyle": true,
        "rootDirectory": "/secure", "credentialsSecretRef": {"name": "s3-creds"}}});
    let spec = registry(
        "secure",
        serde_json::json!({
            "storage": storage,
            "tls": {"secretName": "secure-tls"},
            "auth": {"htpasswd": {"realm": "secure", "secretRef": {"name": "users", "key": "htpasswd"}}},
            "notifications": true
        }),
    );
    let mut generated = GeneratedSecrets::reuse_or_generate(None, true);
    generated.operator =
        Some(flotilla::fleet::operator_account::account(&htpasswd, None, None).expect("bcrypt"));
    let token = generated.notification_token.clone().expect("token");
    let ctx = BuildContext {
        receiver_url: Some(capture_url),
        read_only_window: false,
        token_service_image: None,
    };
    let children = build(&spec, &ctx, &generated).expect("build");
    let s3_creds = secret(
        "s3-creds",
        &[("accessKey", s3::ACCESS_KEY), ("secretKey", s3::SECRET_KEY)],
    );
    let config = config_yml(&children);
    let env = pod_env(
        &children,
        &[children.generated_secret.clone(), s3_creds.clone()],
    );
    assert_no_secret_in_config(&config, &env);
    // What the pod mounts from the TLS Secret and the generated Secret (the user's htpasswd
    // entries plus Flotilla's own account), at the paths the config names.
    let generated_data = children.generated_secret.data.clone().expect("data");
    let mounted_htpasswd = generated_data["htpasswd"].0.clone();
    let files: [(&str, &[u8]); 3] = [
        ("tls.crt", &crt),
        ("tls.key", &key),
        ("htpasswd", &mounted_htpasswd),
    ];
    // Healthy means: the debug port (where the probes go) answers in plain HTTP with TLS and
    // auth on.
    let secure = RegistryProc::start_with_files("secure", &config, &env, &files).await;

    // HTTPS with the mounted certificate; htpasswd logins.
    let https = {
        let _ = rustls::crypto::ring::default_provider().install_default();
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
            .build()
            .expect("client")
    };
    let base = format!("https://{}", secure.host);
    let anonymous = https
        .get(format!("{base}/v2/"))
        .send()
        .await
        .expect("GET /v2/");
    assert_eq!(anonymous.status(), 401);
    let challenge = anonymous.headers()["www-authenticate"]
        .to_str()
        .expect("challenge");
    assert!(challenge.contains("realm=\"secure\""), "{challenge}");
    let wrong = https
        .get(format!("{base}/v2/"))
        .basic_auth("alice", Some("queen"))
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let alice = https
        .get(format!("{base}/v2/"))
        .basic_auth("alice", Some("wonderland"))
        .send()
        .await
        .expect("GET");
    assert_eq!(alice.status(), 200);
    let operator = https
        .get(format!("{base}/v2/"))
        .basic_auth(
            String::from_utf8(generated_data["username"].0.clone()).expect("utf-8"),
            Some(String::from_utf8(generated_data["password"].0.clone()).expect("utf-8")),
        )
        .send()
        .await
        .expect("GET");
    assert_eq!(operator.status(), 200, "Flotilla's own account logs in");

    // Push, pull, push again: the posts carry the bearer token and hold neither blob events
    // (ignoredmediatypes) nor pulls (ignore.actions); delivery is in order, so once the second
    // push is seen, an event of the pull in between would have been seen too.
    let image = oci_image(&work.join("src"), "v1", "secure");
    let creds = "alice:wonderland";
    let push_to = |tag: &str| {
        run_skopeo(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &format!("oci:{}:v1", image.dir.display()),
            &format!("docker://{}/team/secure:{tag}", secure.host),
        ])
    };
    push_to("v1");
    let mut events = events_until_push(&mut posts, "v1", &token).await;
    let pulled = run_skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        creds,
        &format!("docker://{}/team/secure:v1", secure.host),
    ]);
    assert_eq!(pulled, image.manifest);
    push_to("v2");
    events.extend(events_until_push(&mut posts, "v2", &token).await);
    for e in &events {
        assert_ne!(e["action"], "pull", "pull events must be ignored: {e}");
        assert_ne!(
            e["target"]["mediaType"], "application/octet-stream",
            "blob events must be ignored: {e}"
        );
    }

    // Maintenance mode on the same bucket: reads work, writes are refused.
    let ro_spec = registry(
        "readonly",
        serde_json::json!({"storage": storage, "readOnly": true, "notifications": false}),
    );
    let ro = build(&ro_spec, &BuildContext::default(), &generated).expect("build");
    let ro_env = pod_env(&ro, &[ro.generated_secret.clone(), s3_creds]);
    let readonly = RegistryProc::start("readonly", &config_yml(&ro), &ro_env).await;
    assert_eq!(
        raw_manifest(&format!("{}/team/secure:v1", readonly.host)),
        image.manifest
    );
    let upload = client()
        .post(format!("{}/v2/team/secure/blobs/uploads/", readonly.url))
        .send()
        .await
        .expect("POST");
    assert_eq!(
        upload.status(),
        405,
        "read-only registry must refuse uploads"
    );
    capture_task.abort();
    let _ = std::fs::remove_dir_all(work);
}
