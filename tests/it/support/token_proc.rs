//! Runs the token-service sidecar of a Registry's Deployment as a local process, as the
//! kubelet would: the container's own arguments, its Secret volumes written to local
//! directories (whole Secrets, or the volume's `items`), only the listen address and the
//! mount paths adapted. [`TokenProc::refresh`] plays the kubelet's refresh of those volumes.
//! [`run_pod`] runs a whole registry pod: the real `docker-registry` beside the sidecar.
//!
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};

use super::cluster::Cluster;
use super::registry_proc::{self, RegistryProc};

/// A running `flotilla token-service`; killed on drop.
pub struct TokenProc {
    child: Option<Child>,
    dir: PathBuf,
    args: Vec<String>,
    /// (Secret, items or every key, local directory) of each mounted Secret volume.
    mounts: Vec<(String, Option<Vec<String>>, PathBuf)>,
    /// `http://127.0.0.1:PORT`, or `https://` when the sidecar serves TLS.
    pub url: String,
    logs: Vec<PathBuf>,
}

fn sidecar(pod: &PodSpec) -> &Container {
    pod.containers
        .iter()
        .find(|c| c.name == "token-service")
        .expect("the pod has a token-service container")
}

impl TokenProc {
    /// Starts the sidecar of `pod` on `port`; `secret` reads a Secret by name.
    pub fn start(
        pod: &PodSpec,
        port: u16,
        dir: PathBuf,
        secret: &dyn Fn(&str) -> Secret,
    ) -> TokenProc {
        let c = sidecar(pod);
        let mut mounts = Vec::new();
        let mut replace = Vec::new();
        for m in c.volume_mounts.iter().flatten() {
            let v = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == m.name)
                .expect("mount of a pod volume");
            let s = v.secret.as_ref().expect("the sidecar mounts Secrets only");
            assert!(m.sub_path.is_none(), "subPath mounts are never refreshed");
            let local = dir.join(&m.name);
            let items = s
                .items
                .as_ref()
                .map(|items| items.iter().map(|i| i.key.clone()).collect());
            mounts.push((s.secret_name.clone().expect("name"), items, local.clone()));
            replace.push((m.mount_path.clone(), local.display().to_string()));
        }
        let args: Vec<String> = c
            .args
            .iter()
            .flatten()
            .map(|a| {
                if a.starts_with("--listen=") {
                    return format!("--listen=127.0.0.1:{port}");
                }
                replace
                    .iter()
                    .fold(a.clone(), |a, (from, to)| a.replace(from.as_str(), to))
            })
            .collect();
        assert_eq!(
            args[0], "token-service",
            "the sidecar runs flotilla token-service"
        );
        let scheme = if args.iter().any(|a| a.starts_with("--tls-dir=")) {
            "https"
        } else {
            "http"
        };
        let mut proc = TokenProc {
            child: None,
            dir,
            args,
            mounts,
            url: format!("{scheme}://127.0.0.1:{port}"),
            logs: Vec::new(),
        };
        proc.refresh(secret);
        proc.spawn();
        proc
    }

    /// Writes the mounted Secrets' current values, each file replaced atomically.
    pub fn refresh(&self, secret: &dyn Fn(&str) -> Secret) {
        for (name, items, local) in &self.mounts {
            std::fs::create_dir_all(local).expect("mount dir");
            let data = secret(name).data.unwrap_or_default();
            let keys: Vec<String> = items
                .clone()
                .unwrap_or_else(|| data.keys().cloned().collect());
            for k in keys {
                let v = data
                    .get(&k)
                    .unwrap_or_else(|| panic!("Secret {name} lacks {k}"));
                let tmp = local.join(format!(".{k}.tmp"));
                std::fs::write(&tmp, &v.0).expect("write");
                std::fs::rename(&tmp, local.join(&k)).expect("rename");
            }
        }
    }

    fn spawn(&mut self) {
        let log = self
            .dir
            .join(format!("token-service-{}.log", self.logs.len()));
        let file = std::fs::File::create(&log).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args(&self.args)
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log"))
            .stderr(file)
            .spawn()
            .expect("start flotilla token-service");
        self.child = Some(child);
        self.logs.push(log);
        let deadline = Instant::now() + Duration::from_secs(30);
        let health = format!("{}/healthz", self.url);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("token service exited with {status}: {}", self.log());
            }
            let ok = Command::new("curl")
                .args(["-skf", "-o", "/dev/null", &health])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "token service not up in 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kills the process and starts it again from the same files (a pod restart).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Every log of every run so far.
    pub fn log(&self) -> String {
        self.logs
            .iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect()
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for TokenProc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where the registry of a [`run_pod`] sends clients for tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Realm {
    /// The rendered realm must be the Service's `<scheme>://<name>.default.svc:5002/token`;
    /// it is pointed at the local token service instead, by name (`localhost`), as in the
    /// cluster: crane refuses a realm that is a private IP literal on another port than the
    /// registry's.
    InCluster,
    /// As rendered (an external URL the test serves, e.g. through a reverse proxy).
    Rendered,
}

/// One registry pod: the registry and its token sidecar.
pub struct Member {
    pub registry: RegistryProc,
    pub token: TokenProc,
}

/// Starts what the kubelet would run for Registry `name` (namespace `default`): the
/// registry on loopback `port` from the ConfigMap, environment and Secret files the operator
/// rendered, and its token sidecar on another free port.
pub async fn run_pod(c: &Cluster, name: &str, port: u16, dir: PathBuf, realm: Realm) -> Member {
    let deployment: Deployment = c.get_json(&format!("deployment/{name}"));
    let pod = deployment.spec.template.spec.expect("pod template");
    let token_port = std::iter::repeat_with(registry_proc::free_port)
        .find(|p| *p != port)
        .expect("a free port");
    let secret = |n: &str| c.get_json::<Secret>(&format!("secret/{n}"));
    let token = TokenProc::start(&pod, token_port, dir, &secret);
    let secrets = registry_proc::pod_secrets(&pod, &secret);
    let rendered = c.jsonpath(&format!("configmap/{name}-config"), "{.data.config\\.yml}");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&rendered).expect("yaml");
    let scheme = if config["http"].get("tls").is_some() {
        "https"
    } else {
        "http"
    };
    assert!(
        token.url.starts_with(scheme),
        "the token service serves {scheme}"
    );
    if realm == Realm::InCluster {
        assert_eq!(
            config["auth"]["token"]["realm"].as_str(),
            Some(format!("{scheme}://{name}.default.svc:5002/token").as_str())
        );
        let local = format!("{}/token", token.url.replace("127.0.0.1", "localhost"));
        config["auth"]["token"]["realm"] = local.into();
    }
    let config = serde_yaml::to_string(&config).expect("yaml");
    let mut registry_pod = pod.clone();
    registry_pod.containers.truncate(1);
    let env = registry_proc::pod_env(&registry_pod, &secrets);
    let files = registry_proc::secret_files(&registry_pod, &secrets);
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let registry = RegistryProc::start_on(port, name, &config, &env, &files).await;
    Member { registry, token }
}
