//! Test harness of the engine tests: real `docker-registry` processes on loopback ports, a
//! counting / fault-injecting HTTP proxy, content builders (gzip tar layers, images, indexes,
//! Helm charts, signatures) that push with plain HTTP, and helpers to run `flotilla` and
//! `skopeo`.
#![allow(dead_code)]

use super::ports;
pub use ports::free_port;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest as _, Sha256};

pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const INSTALL_HINT: &str = "apt-get install docker-registry skopeo";

/// Fails (never skips) when the external tools are missing.
pub fn require_tools() {
    assert!(
        Path::new(REGISTRY_BIN).exists(),
        "{REGISTRY_BIN} is missing: {INSTALL_HINT}"
    );
    let ok = Command::new("skopeo")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "skopeo is missing: {INSTALL_HINT}");
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// CPU time (user + system) process `pid` has used so far, in seconds (0 when it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15
    // of the whole line, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    ticks as f64 / 100.0
}

/// Peak resident memory (VmHWM) of process `pid`, in KiB; `None` once it is gone.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!(
            "flotilla-{label}-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits for a condition, polling; panics after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !f().await {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `docker-registry` process with its own root directory; killed on drop.
pub struct Registry {
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
    htpasswd: bool,
    /// Configuration appended to the generated one (e.g. `notifications:`).
    extra: String,
    /// Serve TLS with this certificate and key (PEM files).
    tls: Option<(PathBuf, PathBuf)>,
    /// An `auth:` section replacing the htpasswd one (e.g. `auth: token:`).
    auth_section: Option<String>,
    /// Write Distribution's access log (one line per request, with the bytes served).
    access_log: bool,
}

impl Registry {
    /// An anonymous registry.
    pub async fn start() -> Self {
        Self::start_with(false).await
    }

    /// `N` anonymous registries, started one after the other (e.g. the destinations of a
    /// fan-out).
    pub async fn start_many<const N: usize>() -> [Self; N] {
        let mut all = Vec::with_capacity(N);
        for _ in 0..N {
            all.push(Self::start().await);
        }
        match all.try_into() {
            Ok(a) => a,
            Err(_) => unreachable!("{N} registries were started"),
        }
    }

    /// CPU time (user + system) the registry process has used so far, in seconds (0 when
    /// it is not running).
    pub fn cpu_seconds(&self) -> f64 {
        self.child
            .as_ref()
            .map_or(0.0, |c| process_cpu_seconds(c.id()))
    }

    /// A registry requiring user `alice`, password `s3cret` (htpasswd, Basic auth).
    pub async fn start_with_auth() -> Self {
        Self::start_with(true).await
    }

    /// An anonymous registry that sends push/delete notifications to `receiver_url` with
    /// `Authorization: Bearer <token>` (how a registry Flotilla does not run is wired up).
    pub async fn start_notifying(receiver_url: &str, token: &str) -> Self {
        Self::start_with_config(false, notifications(receiver_url, token)).await
    }

    /// Replaces the configuration appended to the generated one (applied at the next
    /// [`Registry::restart`]). A first line indented by two spaces lands in the `http:`
    /// section (e.g. `  host: http://proxy:port` so that URLs and events name a proxy).
    pub fn set_extra(&mut self, extra: String) {
        self.extra = extra;
    }

    /// An anonymous registry with `extra` appended to its configuration (top-level YAML
    /// sections such as `validation:`).
    pub async fn start_with_extra(extra: &str) -> Self {
        Self::start_with_config(false, extra.to_string()).await
    }

    async fn start_with(htpasswd: bool) -> Self {
        Self::start_with_config(htpasswd, String::new()).await
    }

    /// An anonymous registry with `extra` appended to its configuration that writes an
    /// access log, read by [`Registry::blob_bytes_served`].
    pub async fn start_logging(extra: &str) -> Self {
        Self::start_config(false, extra.to_string(), true).await
    }

    async fn start_with_config(htpasswd: bool, extra: String) -> Self {
        Self::start_config(htpasswd, extra, false).await
    }

    async fn start_config(htpasswd: bool, extra: String, access_log: bool) -> Self {
        require_tools();
        let mut r = Registry {
            port: free_port(),
            dir: TempDir::new("registry"),
            child: None,
            htpasswd,
            extra,
            tls: None,
            auth_section: None,
            access_log,
        };
        r.spawn().await;
        r
    }

    /// An anonymous registry serving HTTPS with `cert`/`key` (PEM files).
    pub async fn start_tls(cert: &Path, key: &Path) -> Self {
        Self::start_custom(Some((cert.to_path_buf(), key.to_path_buf())), None).await
    }

    /// A registry with Distribution's token authentication: it sends clients to `realm`
    /// for a JWT issued by `issuer` for audience `service`, signed by a key whose certificate
    /// chains to `root_cert_bundle`.
    pub async fn start_token_auth(
        realm: &str,
        service: &str,
        issuer: &str,
        root_cert_bundle: &Path,
    ) -> Self {
        let auth = format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
            root_cert_bundle.display()
        );
        Self::start_custom(None, Some(auth)).await
    }

    async fn start_custom(tls: Option<(PathBuf, PathBuf)>, auth_section: Option<String>) -> Self {
        require_tools();
        let mut r = Registry {
            port: free_port(),
            dir: TempDir::new("registry"),
            child: None,
            htpasswd: false,
            extra: String::new(),
            tls,
            auth_section,
            access_log: false,
        };
        r.spawn().await;
        r
    }

    fn config(&self) -> String {
        let root = self.dir.path().join("data");
        let auth = if self.htpasswd {
            let file = self.dir.path().join("htpasswd");
            std::fs::write(
                &file,
                "alice:$2a$04$EQGe.ttzezCqfOTfkuzE4eaFOWfbHIG.QpPi0W4D7dNjxZ3TAA8zW\n",
            )
            .expect("htpasswd");
            format!(
                "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
                file.display()
            )
        } else {
            self.auth_section.clone().unwrap_or_default()
        };
        let tls = match &self.tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\nhttp:\n  addr: 127.0.0.1:{}\n  secret: flotilla-test-secret\n  relativeurls: true\n{tls}{auth}{}",
            !self.access_log,
            root.display(),
            self.port,
            self.extra
        )
    }

    async fn spawn(&mut self) {
        let cfg = self.dir.path().join("config.yml");
        std::fs::write(&cfg, self.config()).expect("write config");
        // Appended, so that a restarted registry's log still holds what it did before.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .expect("log");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {REGISTRY_BIN} ({e}): {INSTALL_HINT}"));
        self.child = Some(child);
        let url = format!("{}/v2/", self.url());
        // The readiness probe trusts any certificate: TLS trust is what tests examine.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .expect("probe client");
        let log_path = self.dir.path().join("registry.log");
        let start = Instant::now();
        loop {
            if let Ok(r) = client.get(&url).send().await
                && (r.status().is_success() || r.status() == reqwest::StatusCode::UNAUTHORIZED)
            {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "docker-registry exited ({status}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "docker-registry did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host())
    }

    /// The registry's log (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Body bytes of the successful blob GETs in the access log so far (a registry started
    /// with [`Registry::start_logging`]; 0 otherwise). Survives restarts: the log is appended.
    pub fn blob_bytes_served(&self) -> u64 {
        self.log()
            .lines()
            .filter_map(|l| {
                // `... "GET /v2/<repo>/blobs/sha256:<hex> HTTP/1.1" 200 <bytes> "..." "..."`
                let (request, rest) = l.split_once("\" ")?;
                let path = request.rsplit_once("\"GET ")?.1;
                if !path.contains("/blobs/sha256:") {
                    return None;
                }
                let mut f = rest.split_whitespace();
                (f.next()? == "200").then_some(())?;
                f.next()?.parse::<u64>().ok()
            })
            .sum()
    }

    /// Kills the process (the data stays).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The `notifications:` section that makes a registry post push/delete events to
/// `receiver_url` with `Authorization: Bearer <token>`.
pub fn notifications(receiver_url: &str, token: &str) -> String {
    format!(
        "notifications:\n  endpoints:\n  - name: flotilla\n    url: {receiver_url}\n    headers:\n      Authorization: [\"Bearer {token}\"]\n    timeout: 2s\n    threshold: 3\n    backoff: 200ms\n    ignoredmediatypes: [application/octet-stream]\n    ignore:\n      actions: [pull]\n"
    )
}

/// A response a [`Proxy`] gives itself instead of forwarding the request (method, path
/// with query); `None` forwards it.
pub type Answer =
    Arc<dyn Fn(&reqwest::Method, &str) -> Option<axum::response::Response> + Send + Sync>;

/// Faults a [`Proxy`] injects.
#[derive(Default)]
pub struct Faults {
    /// Answers some requests itself (a registry that misbehaves on purpose:
    /// `support/hostile.rs`).
    pub answer: Option<Answer>,
    /// Flip one byte in the middle of every GET of this blob digest.
    pub flip_blob: Option<String>,
    /// Answer every n-th request with 503 / 429 (alternating) instead of forwarding it.
    pub fail_every: Option<u64>,
}

/// An HTTP proxy in front of one registry: counts bytes and injects faults.
pub struct Proxy {
    pub port: u16,
    pub stats: Arc<ProxyStats>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
pub struct ProxyStats {
    /// Body bytes of GET /v2/.../blobs/... responses.
    pub blob_bytes_served: AtomicU64,
    /// All response body bytes.
    pub bytes_served: AtomicU64,
    /// All request body bytes.
    pub bytes_received: AtomicU64,
    /// Requests answered with an injected 503/429.
    pub injected: AtomicU64,
    requests: AtomicU64,
    pub stopped: AtomicBool,
    /// Method and path (with query) of every request, in order.
    pub seen: std::sync::Mutex<Vec<String>>,
}

struct ProxyState {
    upstream: String,
    client: reqwest::Client,
    stats: Arc<ProxyStats>,
    faults: Faults,
}

impl Proxy {
    pub async fn start(upstream: &str, faults: Faults) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let stats = Arc::new(ProxyStats::default());
        let state = Arc::new(ProxyState {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            stats: stats.clone(),
            faults,
        });
        let app = axum::Router::new().fallback(forward).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Proxy { port, stats, task }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn blob_bytes(&self) -> u64 {
        self.stats.blob_bytes_served.load(Ordering::Relaxed)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const HOP: &[&str] = &[
    "host",
    "connection",
    "transfer-encoding",
    "keep-alive",
    "content-length",
];

async fn forward(
    axum::extract::State(st): axum::extract::State<Arc<ProxyState>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let n = st.stats.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let seen = format!(
        "{} {}",
        req.method(),
        req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("")
    );
    if let Ok(mut s) = st.stats.seen.lock() {
        s.push(seen);
    }
    if let Some(answer) = &st.faults.answer {
        let path_q = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("");
        if let Some(resp) = answer(req.method(), path_q) {
            return resp;
        }
    }
    if let Some(every) = st.faults.fail_every
        && n % every == 0
    {
        st.stats.injected.fetch_add(1, Ordering::Relaxed);
        let code = if (n / every) % 2 == 0 { 429 } else { 503 };
        return axum::response::Response::builder()
            .status(code)
            .header("retry-after", "0")
            .body(axum::body::Body::from("injected fault"))
            .expect("response");
    }
    let method = req.method().clone();
    let path_q = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let is_blob_get = method == reqwest::Method::GET && path_q.contains("/blobs/sha256:");
    let flip = st
        .faults
        .flip_blob
        .as_ref()
        .is_some_and(|d| is_blob_get && path_q.contains(d.as_str()));
    let mut headers = reqwest::header::HeaderMap::new();
    for (k, v) in req.headers() {
        if !HOP.contains(&k.as_str()) {
            headers.append(k.clone(), v.clone());
        }
    }
    let stats = st.stats.clone();
    let body_stream = req.into_body().into_data_stream().map(move |c| {
        if let Ok(b) = &c {
            stats
                .bytes_received
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        c
    });
    let upstream = st
        .client
        .request(method.clone(), format!("{}{path_q}", st.upstream))
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body_stream))
        .send()
        .await;
    let resp = match upstream {
        Ok(r) => r,
        Err(e) => {
            return axum::response::Response::builder()
                .status(502)
                .body(axum::body::Body::from(format!("proxy: {e}")))
                .expect("response");
        }
    };
    let mut builder = axum::response::Response::builder().status(resp.status().as_u16());
    for (k, v) in resp.headers() {
        if k.as_str() != "transfer-encoding" && k.as_str() != "connection" {
            builder = builder.header(k, v);
        }
    }
    let stats = st.stats.clone();
    let total = resp.content_length().unwrap_or(0);
    let mut offset = 0u64;
    let body = resp.bytes_stream().map(move |c| {
        let mut b = c?;
        stats
            .bytes_served
            .fetch_add(b.len() as u64, Ordering::Relaxed);
        if is_blob_get {
            stats
                .blob_bytes_served
                .fetch_add(b.len() as u64, Ordering::Relaxed);
        }
        let mid = total / 2;
        if flip && offset <= mid && mid < offset + b.len() as u64 {
            let mut v = b.to_vec();
            let i = (mid - offset) as usize;
            v[i] ^= 0xff;
            b = Bytes::from(v);
        }
        offset += b.len() as u64;
        Ok::<Bytes, reqwest::Error>(b)
    });
    builder
        .body(axum::body::Body::from_stream(body))
        .expect("response")
}

// ---------------------------------------------------------------- content

pub fn sha256(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

/// Deterministic pseudo-random bytes.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// An uncompressed tar of `files`.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in files {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000644\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        let size = format!("{:011o}\0", data.len());
        h[124..136].copy_from_slice(size.as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[148..156].copy_from_slice(b"        ");
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let chk = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(chk.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

/// A gzip tar layer: (compressed bytes, diff id).
pub fn layer(files: &[(&str, &[u8])]) -> (Vec<u8>, String) {
    let t = tar(files);
    (gzip(&t), sha256(&t))
}

/// A descriptor JSON.
pub fn desc(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({"mediaType": media_type, "digest": sha256(bytes), "size": bytes.len()})
}

/// Pushes content to a registry with plain HTTP (independent of the engine).
pub struct Pusher {
    pub base: String,
    client: reqwest::Client,
    /// Unique blob bytes pushed (by digest).
    pub blobs: std::sync::Mutex<BTreeMap<String, u64>>,
}

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

impl Pusher {
    pub fn new(base: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Pusher {
            base: base.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            blobs: Default::default(),
        }
    }

    /// A pusher that sends `Authorization: Basic` with every request (htpasswd registries).
    pub fn with_basic_auth(base: &str, user: &str, password: &str) -> Self {
        use base64::Engine as _;
        let mut headers = reqwest::header::HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Basic {basic}").parse().expect("header"),
        );
        Pusher {
            client: reqwest::Client::builder()
                .default_headers(headers)
                .build()
                .expect("client"),
            ..Self::new(base)
        }
    }

    pub fn unique_blob_bytes(&self) -> u64 {
        self.blobs.lock().expect("lock").values().sum()
    }

    pub async fn blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        self.blobs
            .lock()
            .expect("lock")
            .insert(digest.clone(), data.len() as u64);
        self.upload(repo, &digest, reqwest::Body::from(data.to_vec()))
            .await;
        digest
    }

    /// Uploads blob `digest` with `body` (one POST, one PUT), not counted in `blobs`.
    pub async fn upload(&self, repo: &str, digest: &str, body: reqwest::Body) {
        let r = self
            .client
            .post(format!("{}/v2/{repo}/blobs/uploads/", self.base))
            .send()
            .await
            .expect("start upload");
        assert_eq!(r.status().as_u16(), 202, "start upload");
        let loc = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_string();
        let mut url = reqwest::Url::parse(&format!("{}/", self.base))
            .and_then(|b| b.join(&loc))
            .expect("url");
        url.query_pairs_mut().append_pair("digest", digest);
        let r = self
            .client
            .put(url)
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .expect("put blob");
        assert_eq!(r.status().as_u16(), 201, "put blob: {:?}", r.text().await);
    }

    /// Uploads a large blob made of `chunks` pseudo-random 1 MiB blocks, generated twice
    /// (once to hash, once to send) so it is never held in memory.
    pub async fn big_blob(&self, repo: &str, chunks: u64) -> (String, u64) {
        let block = Bytes::from(pseudo_random(7, 1 << 20));
        let gen_chunks = move |block: Bytes| {
            futures::stream::iter(0..chunks).map(move |i| {
                let mut v = block.to_vec();
                v[..8].copy_from_slice(&i.to_le_bytes());
                Ok::<Bytes, std::io::Error>(Bytes::from(v))
            })
        };
        let mut h = Sha256::new();
        let mut s = gen_chunks(block.clone());
        while let Some(Ok(c)) = s.next().await {
            h.update(&c);
        }
        let digest = format!("sha256:{}", hex::encode(h.finalize()));
        let size = chunks << 20;
        self.blobs
            .lock()
            .expect("lock")
            .insert(digest.clone(), size);
        self.upload(repo, &digest, reqwest::Body::wrap_stream(gen_chunks(block)))
            .await;
        (digest, size)
    }

    pub async fn manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let r = self
            .client
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("content-type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("put manifest");
        let status = r.status().as_u16();
        assert_eq!(
            status,
            201,
            "put manifest {repo}:{reference}: {:?}",
            r.text().await
        );
        sha256(bytes)
    }

    /// An image: config + gzip tar layers; returns the manifest bytes.
    pub async fn image(
        &self,
        repo: &str,
        tag: Option<&str>,
        arch: &str,
        layers: &[(Vec<u8>, String)],
        docker: bool,
    ) -> Vec<u8> {
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Env": ["PATH=/usr/bin"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>()},
        }))
        .expect("config");
        self.blob(repo, &config).await;
        let mut descs = Vec::new();
        for (gz, _) in layers {
            self.blob(repo, gz).await;
            descs.push(desc(if docker { DOCKER_LAYER } else { OCI_LAYER }, gz));
        }
        let (mt, cmt) = if docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
        };
        let m = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2, "mediaType": mt,
            "config": desc(cmt, &config), "layers": descs,
        }))
        .expect("manifest");
        let reference = tag.map(str::to_string).unwrap_or_else(|| sha256(&m));
        self.manifest(repo, &reference, mt, &m).await;
        m
    }

    /// An index over `children` (manifest bytes, arch).
    pub async fn index(
        &self,
        repo: &str,
        tag: &str,
        children: &[(Vec<u8>, &str)],
        docker: bool,
    ) -> Vec<u8> {
        let (mt, cmt) = if docker {
            (DOCKER_LIST, DOCKER_MANIFEST)
        } else {
            (OCI_INDEX, OCI_MANIFEST)
        };
        let ms: Vec<serde_json::Value> = children
            .iter()
            .map(|(b, arch)| {
                let mut d = desc(cmt, b);
                d["platform"] = serde_json::json!({"os": "linux", "architecture": arch});
                d
            })
            .collect();
        let idx = serde_json::to_vec(
            &serde_json::json!({"schemaVersion": 2, "mediaType": mt, "manifests": ms}),
        )
        .expect("index");
        self.manifest(repo, tag, mt, &idx).await;
        idx
    }

    /// A Helm chart artifact.
    pub async fn helm_chart(&self, repo: &str, tag: &str) -> Vec<u8> {
        let config = br#"{"name":"demo","version":"0.1.0","apiVersion":"v2"}"#.to_vec();
        let (chart, _) = layer(&[(
            "demo/Chart.yaml",
            b"apiVersion: v2\nname: demo\nversion: 0.1.0\n",
        )]);
        self.blob(repo, &config).await;
        self.blob(repo, &chart).await;
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": desc("application/vnd.cncf.helm.config.v1+json", &config),
            "layers": [desc("application/vnd.cncf.helm.chart.content.v1.tar+gzip", &chart)],
        }))
        .expect("helm");
        self.manifest(repo, tag, OCI_MANIFEST, &m).await;
        m
    }

    /// A signature artifact referring to `subject` (OCI 1.1 `subject` + cosign tag scheme).
    pub async fn signature(
        &self,
        repo: &str,
        subject: &[u8],
        subject_mt: &str,
        kind: &str,
    ) -> Vec<u8> {
        let empty = b"{}".to_vec();
        self.blob(repo, &empty).await;
        let payload = format!(
            "{{\"critical\":{{\"image\":{{\"docker-manifest-digest\":\"{}\"}}}},\"kind\":\"{kind}\"}}",
            sha256(subject)
        );
        self.blob(repo, payload.as_bytes()).await;
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
            "config": desc("application/vnd.oci.empty.v1+json", &empty),
            "layers": [desc("application/vnd.dev.cosign.simplesigning.v1+json", payload.as_bytes())],
            "subject": desc(subject_mt, subject),
        }))
        .expect("sig");
        let tag = format!("sha256-{}.{kind}", &sha256(subject)["sha256:".len()..]);
        self.manifest(repo, &tag, OCI_MANIFEST, &m).await;
        m
    }
}

// ---------------------------------------------------------------- commands

pub fn flotilla_bin() -> &'static str {
    env!("CARGO_BIN_EXE_flotilla")
}

/// Runs `flotilla` to completion.
pub async fn flotilla(args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(flotilla_bin())
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .expect("run flotilla")
}

/// `flotilla sync -f <policy> -o json`, parsed; also returns the exit success.
pub async fn sync_json(policy: &Path) -> (bool, serde_json::Value, String) {
    let p = policy.to_str().expect("path");
    let out = flotilla(&["sync", "-f", p, "-o", "json"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sync output is not JSON ({e}); stdout: {} stderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.success(), v, stderr)
}

/// Writes a ReplicationPolicy file: `dests` are (name, url, from).
pub fn policy(
    dir: &Path,
    source: &str,
    dests: &[(&str, String, Option<&str>)],
    extra: &str,
) -> PathBuf {
    let mut s = format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata:\n  name: test\nspec:\n  source:\n    url: {source}\n    insecure: true\n  destinations:\n"
    );
    for (name, url, from) in dests {
        s.push_str(&format!(
            "    - name: {name}\n      url: {url}\n      insecure: true\n"
        ));
        if let Some(f) = from {
            s.push_str(&format!("      from: {f}\n"));
        }
    }
    s.push_str(extra);
    let p = dir.join(format!("policy-{}.yaml", rand::random::<u32>()));
    std::fs::write(&p, s).expect("write policy");
    p
}

/// `skopeo inspect --raw` of `host/repo:tag` (the independent oracle).
pub fn skopeo_raw(host: &str, repo_ref: &str) -> Option<Vec<u8>> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{host}/{repo_ref}"))
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}: {INSTALL_HINT}"));
    out.status.success().then_some(out.stdout)
}

/// `skopeo inspect --raw --creds CREDS` of `docker://image` (plain HTTP or unverified TLS);
/// panics when skopeo fails.
pub fn skopeo_raw_as(creds: &str, image: &str) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false", "--creds", creds])
        .arg(format!("docker://{image}"))
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}: {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "skopeo inspect {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// (digest, architecture) of each child of an index.
pub fn index_children(raw: &[u8]) -> Vec<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(raw).expect("index JSON");
    v["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().expect("digest").to_string(),
                m["platform"]["architecture"]
                    .as_str()
                    .expect("arch")
                    .to_string(),
            )
        })
        .collect()
}

/// Whether image manifest `digest` exists in `repo` (plain HTTP).
pub async fn has_manifest(base: &str, repo: &str, digest: &str) -> bool {
    reqwest::Client::new()
        .head(format!("{base}/v2/{repo}/manifests/{digest}"))
        .header("accept", format!("{OCI_MANIFEST}, {DOCKER_MANIFEST}"))
        .send()
        .await
        .expect("head")
        .status()
        .is_success()
}

/// `skopeo inspect --raw` of `docker://image` on an HTTPS registry, trusting the CA
/// certificate `ca` (a cert dir made under `dir`); panics when skopeo fails.
pub fn skopeo_raw_trusting(dir: &Path, ca: &Path, image: &str) -> Vec<u8> {
    let certs = dir.join(format!("certs-{}", rand::random::<u32>()));
    std::fs::create_dir_all(&certs).expect("certs dir");
    std::fs::copy(ca, certs.join("ca.crt")).expect("copy ca");
    let out = Command::new("skopeo")
        .args(["inspect", "--raw", "--cert-dir"])
        .arg(&certs)
        .arg(format!("docker://{image}"))
        .output()
        .unwrap_or_else(|e| panic!("skopeo: {e}: {INSTALL_HINT}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Tags of a repository (plain HTTP).
pub async fn list_tags(base: &str, repo: &str) -> Vec<String> {
    let r = reqwest::get(format!("{base}/v2/{repo}/tags/list"))
        .await
        .expect("tags");
    if !r.status().is_success() {
        return Vec::new();
    }
    let v: serde_json::Value = r.json().await.expect("json");
    v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the artifact behind `reference` is complete: every manifest and blob it refers to
/// exists (checked with plain HTTP).
pub async fn complete(base: &str, repo: &str, reference: &str) -> bool {
    let c = reqwest::Client::new();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";
    let mut todo = vec![reference.to_string()];
    while let Some(r) = todo.pop() {
        let resp = c
            .get(format!("{base}/v2/{repo}/manifests/{r}"))
            .header("accept", accept)
            .send()
            .await
            .expect("get manifest");
        if !resp.status().is_success() {
            return false;
        }
        let v: serde_json::Value = resp.json().await.expect("json");
        for m in v["manifests"].as_array().into_iter().flatten() {
            todo.push(m["digest"].as_str().unwrap_or_default().to_string());
        }
        let blobs = v["layers"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(v.get("config"))
            .filter_map(|d| d["digest"].as_str());
        for b in blobs {
            let s = c
                .head(format!("{base}/v2/{repo}/blobs/{b}"))
                .send()
                .await
                .expect("head blob")
                .status();
            if !s.is_success() {
                return false;
            }
        }
    }
    true
}

/// Runs `flotilla` and samples its peak RSS (VmHWM, KiB) until it exits.
pub async fn flotilla_peak_rss(args: &[&str]) -> (std::process::ExitStatus, u64, String) {
    let mut child = tokio::process::Command::new(flotilla_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flotilla");
    let pid = child.id().expect("pid");
    let mut peak = 0u64;
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = tokio::spawn(async move {
        let mut s = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s).await;
        s
    });
    let status = loop {
        if let Some(kb) = peak_rss_kib(pid) {
            peak = peak.max(kb);
        }
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    (status, peak, reader.await.unwrap_or_default())
}

// ---------------------------------------------------------------- certificates

pub const OPENSSL_HINT: &str = "apt-get install openssl";

/// Fails (never skips) when `openssl` is missing.
pub fn require_openssl() {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(ok, "openssl is missing: {OPENSSL_HINT}");
}

/// Runs `openssl` in `dir`; panics with its stderr on failure.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {OPENSSL_HINT}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A test certificate authority made with `openssl` (RSA 2048, valid one day).
pub struct TestCa {
    pub dir: PathBuf,
    /// `ca.crt`, PEM.
    pub cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    /// A new CA with common name `cn`, in files under `dir`.
    pub fn new(dir: &Path, cn: &str) -> Self {
        require_openssl();
        let sub = dir.join(format!("ca-{cn}"));
        std::fs::create_dir_all(&sub).expect("ca dir");
        openssl(
            &sub,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-sha256",
                "-days",
                "1",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa {
            cert: sub.join("ca.crt"),
            key: sub.join("ca.key"),
            dir: sub,
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        std::fs::read_to_string(&self.cert).expect("ca.crt")
    }

    /// A `kubernetes.io/tls` Secret `name` as cert-manager writes it, as YAML: a serving
    /// certificate for 127.0.0.1 and localhost (where tests run pods), its key, and `ca.crt`,
    /// this CA.
    pub fn tls_secret_yaml(&self, name: &str) -> String {
        let (crt, key) = self.server_cert(name);
        let b64 = |f: &Path| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(std::fs::read(f).expect("pem"))
        };
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n  ca.crt: {}\n",
            b64(&crt),
            b64(&key),
            b64(&self.cert)
        )
    }

    /// A server certificate for 127.0.0.1 and localhost signed by this CA: (cert, key).
    pub fn server_cert(&self, name: &str) -> (PathBuf, PathBuf) {
        self.server_cert_for(name, "IP:127.0.0.1,DNS:localhost")
    }

    /// A server certificate for `sans` (openssl's subjectAltName syntax, e.g.
    /// `DNS:hq.fleet.svc`) signed by this CA: (cert, key).
    pub fn server_cert_for(&self, name: &str, sans: &str) -> (PathBuf, PathBuf) {
        let (key, csr, crt, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
            format!("{name}.ext"),
        );
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            self.dir.join(&ext),
            format!("subjectAltName={sans}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"),
        )
        .expect("ext");
        let (ca_crt, ca_key) = (
            self.cert.to_str().expect("path"),
            self.key.to_str().expect("path"),
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                ca_crt,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-days",
                "1",
                "-sha256",
                "-extfile",
                &ext,
                "-out",
                &crt,
            ],
        );
        (self.dir.join(crt), self.dir.join(key))
    }
}
