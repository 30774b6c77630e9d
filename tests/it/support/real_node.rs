//! Helpers of the tests on a real node (`e2e/cluster.sh up DIR --real-node`): the node's
//! addresses, pods and their readiness, what a failing wait shows, and a pull loop that
//! counts every failed pull through a Service while pods come and go.
//! The including test declares `mod cluster` (support/cluster.rs) at its root.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::cluster::Cluster;

/// `KEY=value` lines of the cluster's `node.env` (slot, addresses, CIDRs).
pub fn node_env(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("node.env")).expect("node.env of a real node");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The Distribution image built for the node (`registry.image` of `cluster.sh --real-node`).
pub fn registry_image(c: &Cluster) -> String {
    std::fs::read_to_string(c.dir().join("registry.image"))
        .expect("registry.image written by cluster.sh --real-node")
        .trim()
        .to_string()
}

/// One pod as the API server reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub name: String,
    pub ip: String,
    pub ready: bool,
    pub restarts: u32,
}

/// The pods of namespace `ns` matching `selector`, terminating ones left out.
pub fn pods(c: &Cluster, ns: &str, selector: &str) -> Vec<Pod> {
    let out = c.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        selector,
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp} |{.status.podIP} {.status.conditions[?(@.type=="Ready")].status} {.status.containerStatuses[0].restartCount}{"\n"}{end}"#,
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (head, tail) = l.split_once('|')?;
            let mut h = head.split_whitespace();
            let name = h.next()?.to_string();
            if h.next().is_some() {
                return None; // has a deletionTimestamp: terminating
            }
            let mut f = tail.split_whitespace();
            Some(Pod {
                name,
                ip: f.next().unwrap_or_default().to_string(),
                ready: f.next() == Some("True"),
                restarts: f.next().and_then(|r| r.parse().ok()).unwrap_or(0),
            })
        })
        .collect()
}

/// Waits until exactly `n` non-terminating pods match and all are Ready with an address.
pub async fn await_ready_pods(
    c: &Cluster,
    ns: &str,
    selector: &str,
    n: usize,
    timeout: Duration,
) -> Vec<Pod> {
    let deadline = Instant::now() + timeout;
    loop {
        let p = pods(c, ns, selector);
        if p.len() == n && p.iter().all(|p| p.ready && !p.ip.is_empty()) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{n} pods ({selector}) not Ready in {timeout:?}: {p:?}\n{}",
            diagnostics(c, ns)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// What a failing wait shows: the namespace's pods and events, the kubelet's last log lines.
pub fn diagnostics(c: &Cluster, ns: &str) -> String {
    let describe = c.kubectl(&["describe", "pods", "-n", ns]);
    let kubelet = std::fs::read_to_string(c.dir().join("kubelet.log")).unwrap_or_default();
    let tail: Vec<&str> = kubelet.lines().rev().take(30).collect();
    format!(
        "{}\n--- kubelet.log (last lines, newest first) ---\n{}",
        String::from_utf8_lossy(&describe.stdout),
        tail.join("\n")
    )
}

/// The route the host takes to `ip`.
pub fn route(ip: &str) -> String {
    let out = Command::new("ip")
        .args(["route", "get", ip])
        .output()
        .expect("ip route get");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host's default gateway (where a leaked packet would go), or a documentation address.
pub fn default_gateway() -> String {
    let out = Command::new("ip")
        .args(["route", "show", "default"])
        .output()
        .expect("ip route show default");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .unwrap_or("192.0.2.1")
        .to_string()
}

/// An HTTP client for the node's addresses (short connect timeout, no proxy).
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .no_proxy()
        .build()
        .expect("HTTP client")
}

/// Waits until `url` answers at all (kube-proxy writes a Service's rules shortly after its
/// endpoints are ready).
pub async fn await_answer(http: &reqwest::Client, url: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while http.get(url).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "{url} does not answer in {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What a pull loop saw.
#[derive(Debug)]
pub struct Pulls {
    pub ok: u64,
    pub failed: u64,
    /// The first few failures, for the assertion message.
    pub errors: Vec<String>,
    pub elapsed: Duration,
}

impl Pulls {
    /// Whole pulls per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
}

/// Pulls one image (manifest, then every blob, checking each blob's digest) through a Service
/// address again and again, 4 pulls at a time, until stopped. Every request opens its own
/// connection, as many independent clients do: kube-proxy routes each to a pod that is Ready
/// then. (A client that keeps a connection to a pod that shuts down meets the race of every
/// keep-alive connection the server closes; Go clients such as containerd retry an idempotent
/// request then, and so does Flotilla's engine.)
pub struct PullLoop {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(u64, u64, Vec<String>)>>,
    started: Instant,
}

impl PullLoop {
    /// `base` is `http://IP:PORT/v2/REPO`; `blobs` the digests the manifest at `reference` names.
    pub fn start(base: &str, reference: &str, manifest: Vec<u8>, blobs: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let pulls = Arc::new(AtomicU64::new(0));
        let manifest = Arc::new(manifest);
        let tasks = (0..4)
            .map(|_| {
                let (stop, pulls, manifest) = (stop.clone(), pulls.clone(), manifest.clone());
                let (base, reference, blobs) =
                    (base.to_string(), reference.to_string(), blobs.clone());
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .connect_timeout(Duration::from_secs(2))
                        .timeout(Duration::from_secs(20))
                        .pool_max_idle_per_host(0)
                        .no_proxy()
                        .build()
                        .expect("HTTP client");
                    let (mut ok, mut failed, mut errors) = (0u64, 0u64, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match pull_once(&http, &base, &reference, &manifest, &blobs).await {
                            Ok(()) => ok += 1,
                            Err(e) => {
                                failed += 1;
                                if errors.len() < 5 {
                                    errors.push(e);
                                }
                            }
                        }
                        pulls.fetch_add(1, Ordering::Relaxed);
                    }
                    (ok, failed, errors)
                })
            })
            .collect();
        PullLoop {
            stop,
            tasks,
            started: Instant::now(),
        }
    }

    /// Stops the loop after the pulls in flight and reports what it saw.
    pub async fn stop(self) -> Pulls {
        self.stop.store(true, Ordering::Relaxed);
        let mut out = Pulls {
            ok: 0,
            failed: 0,
            errors: Vec::new(),
            elapsed: Duration::ZERO,
        };
        for t in self.tasks {
            let (ok, failed, errors) = t.await.expect("pull task");
            out.ok += ok;
            out.failed += failed;
            out.errors.extend(errors);
        }
        out.elapsed = self.started.elapsed();
        out
    }
}

async fn pull_once(
    http: &reqwest::Client,
    base: &str,
    reference: &str,
    manifest: &[u8],
    blobs: &[String],
) -> Result<(), String> {
    use sha2::{Digest, Sha256};
    let r = http
        .get(format!("{base}/manifests/{reference}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .map_err(|e| format!("manifest: {e:?}"))?;
    if !r.status().is_success() {
        return Err(format!("manifest: {}", r.status()));
    }
    let got = r
        .bytes()
        .await
        .map_err(|e| format!("manifest body: {e:?}"))?;
    if got[..] != manifest[..] {
        return Err("manifest: other bytes".into());
    }
    for digest in blobs {
        let r = http
            .get(format!("{base}/blobs/{digest}"))
            .send()
            .await
            .map_err(|e| format!("{digest}: {e:?}"))?;
        if !r.status().is_success() {
            return Err(format!("{digest}: {}", r.status()));
        }
        let got = r
            .bytes()
            .await
            .map_err(|e| format!("{digest} body: {e:?}"))?;
        if format!("sha256:{}", hex::encode(Sha256::digest(&got))) != *digest {
            return Err(format!("{digest}: other bytes"));
        }
    }
    Ok(())
}

/// After `down`: nothing of the node is left on the host (link, netns, filter rules, cgroups,
/// mounts, processes).
pub fn assert_node_gone(env: &BTreeMap<String, String>, dir: &Path) {
    let run = |cmd: &[&str]| {
        let out = Command::new(cmd[0]).args(&cmd[1..]).output().expect("run");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let link = &env["NODE_HOST_IF"];
    assert!(
        !run(&["ip", "-o", "link", "show"]).contains(&format!(" {link}@")),
        "link {link} left"
    );
    let netns = &env["NODE_NETNS"];
    assert!(
        !run(&["ip", "netns", "list"])
            .lines()
            .any(|l| l.split_whitespace().next() == Some(netns)),
        "netns {netns} left"
    );
    let rule = format!("flotilla node {}", env["NODE_SLOT"]);
    assert!(
        !run(&["iptables", "-S", "FORWARD"]).contains(&rule),
        "FORWARD rules \"{rule}\" left"
    );
    let cgroup = format!("/sys/fs/cgroup/memory{}", env["NODE_CGROUP"]);
    assert!(!Path::new(&cgroup).exists(), "cgroup {cgroup} left");
    let d = dir.display().to_string();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(&d), "mounts under {d} left");
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(&d).then_some(cmd)
        })
        .collect();
    assert!(procs.is_empty(), "processes of the node left: {procs:?}");
}
