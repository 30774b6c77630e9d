//! Runs the token-service sidecar of a Registry's Deployment as a local process, as the
//! kubelet would: the container's own arguments, its Secret volumes written to local
//! directories (whole Secrets, or the volume's `items`), only the listen address and the
//! mount paths adapted. [`TokenProc::refresh`] plays the kubelet's refresh of those volumes.
//!
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, PodSpec, Secret};

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
