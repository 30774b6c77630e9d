//! The real supply-chain tools of the signature tests: olareg (a registry serving the OCI 1.1
//! referrers API, which Distribution 2.8 lacks), cosign (key-based signatures and
//! attestations, no transparency log) and oras (`oras attach` of referrers). All three are
//! built from their Go modules by e2e/build-tools.sh and found by e2e/tool-path.sh; a
//! missing one fails the test with how to build it.
#![allow(dead_code)]

use super::tools;
pub use tools::tool;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::registry::{Pusher, TempDir, free_port, layer, sha256};

/// How to get the tools.
pub const TOOLS_HINT: &str = "run e2e/build-tools.sh (builds olareg, cosign and oras from their Go modules into ~/.cache/flotilla/bin)";

/// The password of every test key pair.
const PASSWORD: &str = "flotilla-test-password";

/// Runs `cmd`; panics with its output when it fails. Returns stdout.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start ({e}): {TOOLS_HINT}"));
    assert!(
        out.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// An olareg process on a loopback port with its own directory; killed on drop.
pub struct Olareg {
    pub port: u16,
    dir: TempDir,
    child: Child,
}

impl Olareg {
    /// Starts olareg (disk storage, push and referrers APIs on, garbage collection off) and
    /// waits until `/v2/` answers.
    pub async fn start() -> Self {
        let bin = tool("olareg");
        let dir = TempDir::new("olareg");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("olareg.log")).expect("log");
        let child = Command::new(&bin)
            .args(["serve", "--addr", "127.0.0.1", "--gc-frequency", "-1s"])
            .arg("--port")
            .arg(port.to_string())
            .arg("--dir")
            .arg(dir.path().join("data"))
            .env_clear()
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): {TOOLS_HINT}", bin.display()));
        let mut r = Olareg { port, dir, child };
        let url = format!("{}/v2/", r.url());
        let start = Instant::now();
        loop {
            if let Ok(resp) = reqwest::get(&url).await
                && resp.status().is_success()
            {
                return r;
            }
            if let Ok(Some(status)) = r.child.try_wait() {
                panic!("olareg exited ({status}): {}", r.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "olareg did not answer on {url}: {}",
                r.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("olareg.log")).unwrap_or_default()
    }
}

impl Drop for Olareg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cosign key pair made by `cosign generate-key-pair`.
pub struct KeyPair {
    /// `NAME.key` (encrypted with the test password).
    pub key: PathBuf,
    /// `NAME.pub`.
    pub public: PathBuf,
}

impl KeyPair {
    /// The public key PEM.
    pub fn public_pem(&self) -> String {
        std::fs::read_to_string(&self.public).expect("public key")
    }
}

/// Where signatures go: cosign's tag scheme (`sha256-<hex>.sig`) or OCI 1.1 referrers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Tags,
    Referrers,
}

/// The real cosign, key-based, never talking to a transparency log.
pub struct Cosign {
    bin: PathBuf,
    home: TempDir,
}

impl Default for Cosign {
    fn default() -> Self {
        Self::new()
    }
}

impl Cosign {
    pub fn new() -> Self {
        Cosign {
            bin: tool("cosign"),
            home: TempDir::new("cosign"),
        }
    }

    fn cmd(&self, scheme: Scheme) -> Command {
        let mut c = Command::new(&self.bin);
        c.env("COSIGN_PASSWORD", PASSWORD)
            .env("HOME", self.home.path())
            .env("DOCKER_CONFIG", self.home.path().join("docker"))
            .current_dir(self.home.path());
        if scheme == Scheme::Referrers {
            c.env("COSIGN_EXPERIMENTAL", "1");
        }
        c
    }

    /// `cosign generate-key-pair` into files `NAME.key` / `NAME.pub`.
    pub fn key_pair(&self, name: &str) -> KeyPair {
        run(
            self.cmd(Scheme::Tags)
                .args(["generate-key-pair", "--output-key-prefix", name]),
            "cosign generate-key-pair",
        );
        let dir = self.home.path();
        KeyPair {
            key: dir.join(format!("{name}.key")),
            public: dir.join(format!("{name}.pub")),
        }
    }

    /// `cosign sign --key` of `image` (`host/repo@sha256:…`), without the transparency log.
    pub fn sign(&self, key: &KeyPair, image: &str, scheme: Scheme) {
        let mut c = self.cmd(scheme);
        c.arg("sign")
            .arg("--key")
            .arg(&key.key)
            .args(["--tlog-upload=false", "-y", "--allow-http-registry"])
            .arg("--allow-insecure-registry");
        if scheme == Scheme::Referrers {
            c.arg("--registry-referrers-mode=oci-1-1");
        }
        run(c.arg(image), "cosign sign");
    }

    /// `cosign attest --key` of a predicate file of `predicate_type` (e.g. `spdxjson`).
    pub fn attest(&self, key: &KeyPair, image: &str, predicate: &Path, predicate_type: &str) {
        let mut c = self.cmd(Scheme::Tags);
        c.arg("attest")
            .arg("--key")
            .arg(&key.key)
            .arg("--predicate")
            .arg(predicate)
            .args(["--type", predicate_type])
            .args(["--tlog-upload=false", "-y", "--allow-http-registry"])
            .arg("--allow-insecure-registry");
        run(c.arg(image), "cosign attest");
    }

    /// `cosign verify --key` of `image`: `Ok(stdout)` when it verifies, `Err(stderr)` when not.
    pub fn verify(&self, public: &Path, image: &str, scheme: Scheme) -> Result<String, String> {
        let mut c = self.cmd(scheme);
        c.arg("verify").arg("--key").arg(public).args([
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            "--allow-insecure-registry",
        ]);
        if scheme == Scheme::Referrers {
            c.arg("--experimental-oci11");
        }
        let out = c
            .arg(image)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cosign verify: {e}: {TOOLS_HINT}"));
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).to_string())
        }
    }
}

/// `oras attach --artifact-type TYPE` of `file` to `subject` (`host/repo@sha256:…`) over
/// plain HTTP; returns the referrer's digest.
pub fn oras_attach(dir: &Path, subject: &str, artifact_type: &str, file: &str) -> String {
    let out = run(
        Command::new(tool("oras"))
            .current_dir(dir)
            .env("HOME", dir)
            .args(["attach", "--plain-http", "--format", "go-template"])
            .args(["--template", "{{.digest}}"])
            .args(["--artifact-type", artifact_type])
            .arg(subject)
            .arg(file),
        "oras attach",
    );
    out.trim().to_string()
}

/// The referrers the OCI 1.1 API of `base` lists for `repo@digest`: (digest, artifactType).
pub async fn referrers(base: &str, repo: &str, digest: &str) -> Vec<(String, String)> {
    let r = reqwest::get(format!("{base}/v2/{repo}/referrers/{digest}"))
        .await
        .expect("referrers");
    assert!(
        r.status().is_success(),
        "referrers of {repo}@{digest}: {}",
        r.status()
    );
    let v: serde_json::Value = r.json().await.expect("json");
    let mut out: Vec<(String, String)> = v["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["digest"].as_str().unwrap_or_default().to_string(),
                m["artifactType"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Pushes `repo:tag`, a one-layer image unique to the tag; returns its digest.
pub async fn push_image(p: &Pusher, repo: &str, tag: &str) -> String {
    let m = p
        .image(
            repo,
            Some(tag),
            "amd64",
            &[layer(&[("f", tag.as_bytes())])],
            false,
        )
        .await;
    sha256(&m)
}

/// Appends to the policy file `path` a `kind` (Secret or ConfigMap) document `name` holding
/// `key`'s public PEM under `cosign.pub`.
pub fn append_key_document(path: &Path, kind: &str, name: &str, key: &KeyPair) {
    let section = if kind == "Secret" {
        "stringData"
    } else {
        "data"
    };
    let pem: String = key
        .public_pem()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    let mut text = std::fs::read_to_string(path).expect("policy");
    text.push_str(&format!(
        "---\napiVersion: v1\nkind: {kind}\nmetadata: {{name: {name}}}\n{section}:\n  cosign.pub: |\n{pem}"
    ));
    std::fs::write(path, text).expect("policy");
}

/// (artifact, reason) of each artifact a JSON report says was held back, sorted.
pub fn held_back(report: &serde_json::Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = report["unverifiedDetails"]
        .as_array()
        .expect("unverifiedDetails")
        .iter()
        .map(|h| {
            (
                h["artifact"].as_str().unwrap_or_default().to_string(),
                h["reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}
