//! Starts the real `docker-registry` (CNCF Distribution 2.8) as a local process from a rendered
//! `config.yml` and the exact environment a pod would get, adapting only addresses and paths.
//!
#![allow(dead_code)]

use super::ports;
pub use ports::free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Distribution binary, or a panic with an install hint.
pub fn registry_binary() -> PathBuf {
    let bin = std::env::var_os("FLOTILLA_DOCKER_REGISTRY")
        .map_or_else(|| PathBuf::from("/usr/bin/docker-registry"), PathBuf::from);
    assert!(
        bin.is_file(),
        "{} not found: install CNCF Distribution 2.8 (apt-get install docker-registry) or set FLOTILLA_DOCKER_REGISTRY",
        bin.display()
    );
    bin
}

/// The environment the kubelet would give the registry container: each `secretKeyRef` resolved
/// against `secrets` (a missing Secret or key fails the test, as `optional: false` would).
pub fn pod_env(
    pod: &k8s_openapi::api::core::v1::PodSpec,
    secrets: &[k8s_openapi::api::core::v1::Secret],
) -> Vec<(String, String)> {
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| {
            if let Some(v) = &e.value {
                return (e.name.clone(), v.clone());
            }
            let r = e
                .value_from
                .as_ref()
                .and_then(|f| f.secret_key_ref.as_ref())
                .unwrap_or_else(|| panic!("{} is neither a value nor a secretKeyRef", e.name));
            (e.name.clone(), secret_value(secrets, &r.name, &r.key))
        })
        .collect()
}

/// The files the kubelet would mount from Secret volumes, by file name (each volume's `items`
/// path). Only Secret volumes: ConfigMaps and emptyDirs are the caller's business.
pub fn secret_files(
    pod: &k8s_openapi::api::core::v1::PodSpec,
    secrets: &[k8s_openapi::api::core::v1::Secret],
) -> Vec<(String, Vec<u8>)> {
    pod.volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref())
        .flat_map(|s| {
            let name = s
                .secret_name
                .clone()
                .expect("secret volume names its Secret");
            s.items
                .iter()
                .flatten()
                .map(|i| {
                    (
                        i.path.clone(),
                        secret_value(secrets, &name, &i.key).into_bytes(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every Secret the registry container of `pod` reads (its Secret volumes and the
/// `secretKeyRef`s of its environment), fetched by `get`.
pub fn pod_secrets(
    pod: &k8s_openapi::api::core::v1::PodSpec,
    get: &dyn Fn(&str) -> k8s_openapi::api::core::v1::Secret,
) -> Vec<k8s_openapi::api::core::v1::Secret> {
    let volumes = pod
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone());
    let env = pod.containers[0]
        .env
        .iter()
        .flatten()
        .filter_map(|e| Some(e.value_from.as_ref()?.secret_key_ref.as_ref()?.name.clone()));
    volumes.chain(env).map(|n| get(&n)).collect()
}

fn secret_value(secrets: &[k8s_openapi::api::core::v1::Secret], name: &str, key: &str) -> String {
    let s = secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("Secret {name} missing"));
    let v = s
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("key {key} of Secret {name} missing"));
    String::from_utf8(v.0.clone()).expect("utf-8 secret")
}

/// A running registry process; killed and its directory removed on drop.
pub struct RegistryProc {
    child: Option<Child>,
    dir: PathBuf,
    /// `127.0.0.1:PORT` of the API.
    pub host: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `http://127.0.0.1:DEBUG_PORT`.
    pub debug_url: String,
}

impl Drop for RegistryProc {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Rewrites the in-pod addresses and paths of a rendered config to local ones: `http.addr`,
/// `http.debug.addr`, filesystem root directory, htpasswd, token certificate and TLS file
/// paths. Nothing else.
pub fn localize(config: &str, port: u16, debug_port: u16, dir: &Path) -> String {
    let mut v: serde_yaml::Value = serde_yaml::from_str(config).expect("rendered config is YAML");
    let s = |x: String| serde_yaml::Value::String(x);
    v["http"]["addr"] = s(format!("127.0.0.1:{port}"));
    v["http"]["debug"]["addr"] = s(format!("127.0.0.1:{debug_port}"));
    if v["storage"].get("filesystem").is_some() {
        v["storage"]["filesystem"]["rootdirectory"] = s(dir.join("data").display().to_string());
    }
    if v["auth"].get("htpasswd").is_some() {
        v["auth"]["htpasswd"]["path"] = s(dir.join("htpasswd").display().to_string());
    }
    if v["auth"].get("token").is_some() {
        let bundle = v["auth"]["token"]["rootcertbundle"]
            .as_str()
            .and_then(|p| Path::new(p).file_name())
            .expect("rootcertbundle names a file")
            .to_owned();
        v["auth"]["token"]["rootcertbundle"] = s(dir.join(bundle).display().to_string());
    }
    if v["http"].get("tls").is_some() {
        v["http"]["tls"]["certificate"] = s(dir.join("tls.crt").display().to_string());
        v["http"]["tls"]["key"] = s(dir.join("tls.key").display().to_string());
    }
    serde_yaml::to_string(&v).expect("serialize config")
}

impl RegistryProc {
    /// Starts `docker-registry serve` on free loopback ports with a clean environment holding
    /// only `env`, and waits until `/debug/health` answers 200.
    pub async fn start(name: &str, config: &str, env: &[(String, String)]) -> RegistryProc {
        Self::start_with_files(name, config, env, &[]).await
    }

    /// Like [`RegistryProc::start`], first writing `files` (e.g. `htpasswd`, `tls.crt`,
    /// `tls.key`: what the pod gets from Secret volumes) where `localize` points the config.
    pub async fn start_with_files(
        name: &str,
        config: &str,
        env: &[(String, String)],
        files: &[(&str, &[u8])],
    ) -> RegistryProc {
        Self::start_on(free_port(), name, config, env, files).await
    }

    /// Like [`RegistryProc::start_with_files`], serving the API on loopback port `port` (one
    /// chosen in advance, e.g. to pass it to the operator as a Registry's URL).
    pub async fn start_on(
        port: u16,
        name: &str,
        config: &str,
        env: &[(String, String)],
        files: &[(&str, &[u8])],
    ) -> RegistryProc {
        let bin = registry_binary();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "flotilla-registry-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("registry dir");
        for (file, content) in files {
            std::fs::write(dir.join(file), content).expect("write mounted file");
        }
        // `port` is reserved but not bound yet: the OS may hand it out again.
        let debug_port = std::iter::repeat_with(free_port)
            .find(|p| *p != port)
            .expect("a second free port");
        let path = dir.join("config.yml");
        std::fs::write(&path, localize(config, port, debug_port, &dir)).expect("write config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("log");
        let child = Command::new(&bin)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .arg("serve")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let host = format!("127.0.0.1:{port}");
        let mut proc = RegistryProc {
            child: Some(child),
            dir,
            url: format!("http://{host}"),
            host,
            debug_url: format!("http://127.0.0.1:{debug_port}"),
        };
        proc.wait_healthy().await;
        proc
    }

    async fn wait_healthy(&mut self) {
        let health = format!("{}/debug/health", self.debug_url);
        let client = http_client();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("registry exited with {status}: {}", self.log());
            }
            if let Ok(r) = client.get(&health).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "registry not healthy in 30 s: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Path of a file inside the registry's directory (where `localize` points htpasswd/TLS).
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// Kills the process.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A plain-HTTP client (installs the ring crypto provider reqwest's rustls needs).
fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}
