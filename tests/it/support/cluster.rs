//! Test harness: real Kubernetes control planes (e2e/cluster.sh) and the real operator binary.
//! Everything started here is stopped on drop.
#![allow(dead_code)]

use super::ports;
pub use ports::free_port;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    root().join("e2e/cluster.sh")
}

/// A running control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok).
pub struct Cluster {
    dir: tempdir::TempDir,
    kubectl: PathBuf,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct TempDir(pub std::path::PathBuf);
    impl TempDir {
        pub fn new(prefix: &str) -> Self {
            let base = std::env::var_os("FLOTILLA_E2E_DIR")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            let unique = format!("{prefix}-{}-{}", std::process::id(), super::next_id());
            let p = base.join(unique);
            std::fs::create_dir_all(&p).expect("create temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn run_script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg(script())
        .args(args)
        // The binary under test pushes a real node's images into its bootstrap registry.
        .env("FLOTILLA_BIN", env!("CARGO_BIN_EXE_flotilla"))
        .output()
        .expect("run e2e/cluster.sh")
}

impl Cluster {
    /// Starts a fresh control plane; panics with the script's message (which says how to get
    /// missing binaries) when it cannot.
    pub fn start() -> Self {
        Self::start_args(&[])
    }

    /// Starts a control plane with one real node instead of kwok's (`up DIR --real-node`:
    /// containerd, kubelet, kube-proxy; see e2e/node.sh). Panics with the script's message,
    /// which says what to install or build, when the machine lacks something it needs.
    pub fn start_real_node() -> Self {
        Self::start_args(&["--real-node"])
    }

    fn start_args(extra: &[&str]) -> Self {
        let dir = tempdir::TempDir::new("flotilla-cp");
        let mut args = vec!["up", dir.0.to_str().expect("utf-8 path")];
        args.extend_from_slice(extra);
        let out = run_script(&args);
        if !out.status.success() {
            let _ = run_script(&["down", dir.0.to_str().expect("utf-8 path")]);
            panic!(
                "cannot start a control plane (run e2e/build-tools.sh to build the binaries):\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let bin = run_script(&["bin", "kubectl"]);
        assert!(
            bin.status.success(),
            "no kubectl: {}",
            String::from_utf8_lossy(&bin.stderr)
        );
        let kubectl = PathBuf::from(String::from_utf8_lossy(&bin.stdout).trim());
        Cluster { dir, kubectl }
    }

    /// (Real node) Builds the operator image of the `flotilla` binary under test, pushes it
    /// into the node's bootstrap registry and returns its reference.
    pub fn operator_image(&self) -> String {
        let dir = self.dir.0.to_str().expect("utf-8 path");
        let out = run_script(&["image", dir, "operator", env!("CARGO_BIN_EXE_flotilla")]);
        assert!(
            out.status.success(),
            "cannot build or push the operator image: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The cluster's directory (state, logs, and with a real node `node.env`, `registry.image`).
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Path of the admin kubeconfig.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.0.join("kubeconfig")
    }

    /// Runs kubectl against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// Runs kubectl with `stdin` piped in. The input is written by a thread of its own while
    /// the output is read: kubectl answers as it reads, and a large input would otherwise
    /// fill both pipes and wait forever.
    pub fn kubectl_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run kubectl");
        let mut pipe = child.stdin.take().expect("stdin");
        let input = stdin.to_string();
        let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
        let out = child.wait_with_output().expect("kubectl output");
        writer.join().expect("stdin writer").expect("write stdin");
        out
    }

    /// Runs kubectl and returns stdout, panicking with stderr on failure.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Applies YAML from a string.
    pub fn apply(&self, yaml: &str) {
        let out = self.kubectl_stdin(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Installs the committed CRDs and waits until they are served.
    pub fn install_crds(&self) {
        let crds = root().join("crds");
        self.kubectl_ok(&["apply", "-f", crds.to_str().expect("utf-8 path")]);
        self.kubectl_ok(&[
            "wait",
            "--for=condition=Established",
            "crd",
            "--all",
            "--timeout=60s",
        ]);
    }

    /// Stops one component (e.g. `kube-apiserver`).
    pub fn stop(&self, component: &str) {
        let out = run_script(&["stop", self.dir.0.to_str().expect("utf-8 path"), component]);
        assert!(
            out.status.success(),
            "stop {component}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a stopped component again (waits for the API server to be ready).
    pub fn start_component(&self, component: &str) {
        let out = run_script(&["start", self.dir.0.to_str().expect("utf-8 path"), component]);
        assert!(
            out.status.success(),
            "start {component}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A JSONPath value of an object (empty when absent).
    pub fn jsonpath(&self, resource: &str, path: &str) -> String {
        let out = self.kubectl(&["get", resource, "-o", &format!("jsonpath={path}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// An object (`kind/name`) as `T`; panics when it is missing.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, resource: &str) -> T {
        let json = self.kubectl_ok(&["get", resource, "-o", "json"]);
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{resource}: {e}"))
    }

    /// The value of `key` in Secret `name`, if both exist.
    pub fn secret_key(&self, name: &str, key: &str) -> Option<Vec<u8>> {
        let out = self.kubectl(&["get", &format!("secret/{name}"), "-o", "json"]);
        let secret: k8s_openapi::api::core::v1::Secret =
            serde_json::from_slice(&out.stdout).ok()?;
        secret.data?.remove(key).map(|b| b.0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = run_script(&["down", self.dir.0.to_str().unwrap_or_default()]);
    }
}

/// The operator (`flotilla run`) as a child process against a cluster.
pub struct Operator {
    child: Child,
    /// Address of its probe/metrics endpoint.
    pub probe_port: u16,
    /// Port of its notification receiver.
    pub receiver_port: u16,
    log: PathBuf,
}

impl Operator {
    /// Starts `flotilla run` with the cluster's kubeconfig, logging into `log_dir`.
    pub fn start(cluster: &Cluster, log_dir: &Path) -> Self {
        Self::start_with(cluster, log_dir, &[], &[])
    }

    /// Like [`Operator::start`], with extra arguments and environment variables.
    pub fn start_with(
        cluster: &Cluster,
        log_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        Self::launch(
            Path::new(env!("CARGO_BIN_EXE_flotilla")),
            cluster,
            log_dir,
            free_port(),
            args,
            env,
        )
    }

    /// Starts `bin run` with its notification receiver on `receiver_port` (a restarted
    /// operator on the port its registries post to).
    pub fn launch(
        bin: &Path,
        cluster: &Cluster,
        log_dir: &Path,
        receiver_port: u16,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let probe_port = free_port();
        let log = log_dir.join(format!("operator-{}.log", next_id()));
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin)
            .args(["run", "--probe-addr", &format!("127.0.0.1:{probe_port}")])
            .args(["--receiver-addr", &format!("127.0.0.1:{receiver_port}")])
            .env("KUBECONFIG", cluster.kubeconfig())
            .env("RUST_LOG", "info,flotilla=debug")
            .envs(env.iter().copied())
            .args(args)
            .stdout(file.try_clone().expect("clone log"))
            .stderr(file)
            .spawn()
            .expect("start flotilla run");
        let op = Operator {
            child,
            probe_port,
            receiver_port,
            log,
        };
        wait_for("operator /readyz", Duration::from_secs(60), || {
            op.get("/readyz").is_some_and(|b| b == "ok")
        });
        op
    }

    /// Body of a GET on the probe endpoint, if it answered 200.
    pub fn get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.probe_port)).ok()?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut resp = String::new();
        s.read_to_string(&mut resp).ok()?;
        let (head, body) = resp.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.0 200")
            .then(|| body.to_string())
            .or_else(|| head.starts_with("HTTP/1.1 200").then(|| body.to_string()))
    }

    /// Process id of the operator.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The operator's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        self.child.wait().expect("wait operator")
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds, panicking with `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(50);
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
