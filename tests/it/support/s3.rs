//! A real S3-compatible server for tests: MinIO (what on-premises users run), built from its Go
//! module by `e2e/build-tools.sh`, started on a free loopback port over a temporary directory.
//!
#![allow(dead_code)]

use super::ports;
pub use ports::free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Access key of the test server's root user.
pub const ACCESS_KEY: &str = "flotilla-test";
/// Secret key of the test server's root user.
pub const SECRET_KEY: &str = "flotilla-test-secret";
/// The test server's static KMS key (`name:base64 of 32 bytes`).
const KMS_KEY: &str = "flotilla-test-key:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// Region the test server is addressed with.
pub const REGION: &str = "us-east-1";

/// A running MinIO server; killed and its directory removed on drop.
pub struct Minio {
    child: Child,
    dir: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl Drop for Minio {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The MinIO binary: `$FLOTILLA_MINIO`, else the newest build in `~/.cache/flotilla/bin/minio-*`,
/// else `minio` on `PATH`. Panics with an install hint when none exists.
pub fn minio_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("FLOTILLA_MINIO") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("FLOTILLA_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/flotilla")));
    if let Some(bin) = cache.map(|c| c.join("bin")) {
        let mut builds: Vec<PathBuf> = std::fs::read_dir(&bin)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("minio-"))
            })
            .map(|p| p.join("minio"))
            .filter(|p| p.is_file())
            .collect();
        builds.sort();
        if let Some(newest) = builds.pop() {
            return newest;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("minio").is_file() {
                return dir.join("minio");
            }
        }
    }
    panic!(
        "MinIO not found: run e2e/build-tools.sh (builds github.com/minio/minio into ~/.cache/flotilla/bin/minio-<version>/), or set FLOTILLA_MINIO"
    );
}

fn temp_dir(prefix: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Minio {
    /// Starts MinIO and waits until it reports ready.
    pub async fn start() -> Minio {
        Self::start_on("127.0.0.1").await
    }

    /// Like [`Minio::start`], listening on `ip` (an address of this host, e.g. a real node's
    /// link address that its pods reach) instead of loopback.
    pub async fn start_on(ip: &str) -> Minio {
        let bin = minio_binary();
        let dir = temp_dir("flotilla-minio");
        let (port, console) = (free_port(), free_port());
        let host = format!("{ip}:{port}");
        let log = std::fs::File::create(dir.join("minio.log")).expect("log file");
        let child = Command::new(&bin)
            .env_clear()
            .env("HOME", &dir)
            .env("MINIO_ROOT_USER", ACCESS_KEY)
            .env("MINIO_ROOT_PASSWORD", SECRET_KEY)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            // A static KMS key: server-side encryption (SSE-S3, what `encrypt: true` asks for)
            // works; without a KMS MinIO refuses such uploads.
            .env("MINIO_KMS_SECRET_KEY", KMS_KEY)
            .arg("server")
            .arg("--quiet")
            .arg("--address")
            .arg(&host)
            .arg("--console-address")
            .arg(format!("127.0.0.1:{console}"))
            .arg("--certs-dir")
            .arg(dir.join("certs"))
            .arg(dir.join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut minio = Minio {
            child,
            endpoint: format!("http://{host}"),
            host,
            dir,
        };
        let ready = format!("{}/minio/health/ready", minio.endpoint);
        let client = http_client();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = minio.child.try_wait() {
                panic!("MinIO exited with {status}: {}", minio.log());
            }
            // Ready means the S3 API answers a signed ListBuckets (the health endpoint can
            // answer before the object layer is initialized).
            if let Ok(r) = client.get(&ready).send().await
                && r.status().is_success()
                && minio
                    .signed("GET", "/", chrono::Utc::now())
                    .await
                    .0
                    .is_success()
            {
                return minio;
            }
            assert!(
                Instant::now() < deadline,
                "MinIO not ready in 60 s: {}",
                minio.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// MinIO's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("minio.log")).unwrap_or_default()
    }

    /// Creates a bucket through the S3 API (`PUT /bucket`, SigV4-signed).
    pub async fn create_bucket(&self, bucket: &str) {
        let path = format!("/{bucket}");
        let now = chrono::Utc::now();
        let (status, body) = self.signed("PUT", &path, now).await;
        assert!(
            status.is_success(),
            "CreateBucket {bucket}: {status} {body}"
        );
    }

    /// Lists the keys under `prefix` of `bucket` (ListObjectsV2, first page).
    pub async fn list(&self, bucket: &str, prefix: &str) -> String {
        let path = format!("/{bucket}");
        let query = format!("list-type=2&prefix={}", uri_encode(prefix, true));
        let (status, body) = self
            .signed_query("GET", &path, &query, chrono::Utc::now())
            .await;
        assert!(status.is_success(), "ListObjectsV2: {status} {body}");
        body
    }

    /// Sizes of the objects under `prefix` in `bucket`, by key (one listing page: panics when
    /// there are more).
    pub async fn sizes(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> std::collections::BTreeMap<String, u64> {
        let xml = self.list(bucket, prefix).await;
        assert!(!xml.contains("<IsTruncated>true"), "more than one page");
        xml.split("<Contents>")
            .skip(1)
            .map(|c| {
                let field = |f: &str| {
                    c.split(&format!("<{f}>"))
                        .nth(1)
                        .and_then(|r| r.split(&format!("</{f}>")).next())
                        .expect("field")
                        .to_string()
                };
                (field("Key"), field("Size").parse().expect("size"))
            })
            .collect()
    }

    /// The server-side encryption MinIO reports for an object (`x-amz-server-side-encryption`
    /// of a HEAD), if any.
    pub async fn object_encryption(&self, bucket: &str, key: &str) -> Option<String> {
        let path = format!("/{bucket}/{}", uri_encode(key, false));
        let resp = self
            .signed_request("HEAD", &path, "", chrono::Utc::now())
            .await;
        assert!(resp.status().is_success(), "HEAD {path}: {}", resp.status());
        resp.headers()
            .get("x-amz-server-side-encryption")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    async fn signed(
        &self,
        method: &str,
        path: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (reqwest::StatusCode, String) {
        self.signed_query(method, path, "", now).await
    }

    async fn signed_query(
        &self,
        method: &str,
        path: &str,
        query: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> (reqwest::StatusCode, String) {
        let resp = self.signed_request(method, path, query, now).await;
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    async fn signed_request(
        &self,
        method: &str,
        path: &str,
        query: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> reqwest::Response {
        let amz_date = now.format("%Y%m%dT%H%M%SZ").to_string();
        let date = now.format("%Y%m%d").to_string();
        let payload = hex::encode(Sha256::digest(b""));
        let signed_headers = "host;x-amz-content-sha256;x-amz-date";
        let canonical = format!(
            "{method}\n{path}\n{query}\nhost:{}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\n{signed_headers}\n{payload}",
            self.host
        );
        let scope = format!("{date}/{REGION}/s3/aws4_request");
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{SECRET_KEY}").as_bytes(), date.as_bytes());
        for part in [REGION, "s3", "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let signature = hex::encode(hmac(&key, to_sign.as_bytes()));
        let url = if query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{query}", self.endpoint)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        http_client()
            .request(method, url)
            .header("x-amz-date", &amz_date)
            .header("x-amz-content-sha256", &payload)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
                ),
            )
            .send()
            .await
            .expect("S3 request")
    }
}

fn uri_encode(s: &str, encode_slash: bool) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b'/' if !encode_slash => "/".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// A plain-HTTP client (installs the ring crypto provider reqwest's rustls needs).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
