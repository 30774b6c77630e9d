//! Real pods: a Registry of 3 replicas on MinIO, run by a real kubelet (containerd, runc) on the
//! `e2e/cluster.sh up DIR --real-node` control plane, with the operator as a local process.
//! The registry image is pulled from the node's bootstrap registry; the pods become Ready by
//! their own readiness probes; an image pushed through the Service (kube-proxy, iptables mode)
//! is pulled byte-identical from each pod's own address; a blob upload started on one pod is
//! finished on another; `kubectl scale registry/NAME --replicas=5` gives 5 serving pods; a
//! scale-down to 2 and a rolling update (config change) lose no pull of a loop through the
//! Service; a deleted pod and a killed container are replaced with no data lost; a
//! garbage-collection window runs its Job as a real pod and frees exactly the blobs no
//! manifest reaches.
//!
//! Needs root and what `.ci/run` installs (containernetworking-plugins, busybox-static,
//! docker-registry, libseccomp-dev) plus the binaries of `e2e/build-tools.sh`; a missing piece
//! fails the test with a message naming it.

use crate::support::cluster;
use crate::support::real_node;
use crate::support::s3;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::{Cluster, Operator, wait_for};
use real_node::Pod;
use sha2::{Digest, Sha256};

const NAME: &str = "fleet";
const REPLICAS: usize = 3;
const SELECTOR: &str = "app.kubernetes.io/name=registry,app.kubernetes.io/instance=fleet";
const PODS_READY: Duration = Duration::from_secs(180);

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

/// An image layout built by e2e/node-images.sh: its tag, manifest bytes and blob digests.
struct Layout {
    dir: std::path::PathBuf,
    tag: String,
    digest: String,
    manifest: Vec<u8>,
    blobs: Vec<String>,
}

impl Layout {
    fn read(dir: std::path::PathBuf) -> Self {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
                .expect("index.json is JSON");
        let desc = &index["manifests"][0];
        let tag = desc["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .expect("tag annotation")
            .to_string();
        let digest = desc["digest"].as_str().expect("manifest digest");
        let manifest = std::fs::read(blob_path(&dir, digest)).expect("manifest");
        let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest JSON");
        let mut blobs = vec![m["config"]["digest"].as_str().expect("config").to_string()];
        for l in m["layers"].as_array().expect("layers") {
            blobs.push(l["digest"].as_str().expect("layer digest").to_string());
        }
        Layout {
            dir,
            tag,
            digest: digest.to_string(),
            manifest,
            blobs,
        }
    }

    fn bytes(&self) -> u64 {
        self.blobs
            .iter()
            .map(|d| {
                std::fs::metadata(blob_path(&self.dir, d))
                    .expect("blob")
                    .len()
            })
            .sum()
    }

    /// `flotilla copy` of the layout to `dest` (`http://HOST:PORT/REPO:TAG`).
    fn push(&self, dest: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_flotilla"))
            .args([
                "copy",
                "--progress",
                "never",
                "--dest-insecure",
                &format!("oci:{}:{}", self.dir.display(), self.tag),
                dest,
            ])
            .output()
            .expect("run flotilla copy");
        assert!(
            out.status.success(),
            "flotilla copy to {dest} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The whole image, byte-exact, from one pod's own address; returns the bytes pulled.
async fn pull_exact(http: &reqwest::Client, pod: &Pod, repo: &str, image: &Layout) -> usize {
    let base = format!("http://{}:5000/v2/{repo}", pod.ip);
    let r = http
        .get(format!("{base}/manifests/{}", image.tag))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET manifest from pod {} ({}): {e}", pod.name, pod.ip));
    assert!(
        r.status().is_success(),
        "manifest of {repo} from pod {} ({}): {}",
        pod.name,
        pod.ip,
        r.status()
    );
    let got = r.bytes().await.expect("manifest body");
    assert!(
        got[..] == image.manifest[..],
        "pod {} ({}) serves another manifest for {repo}",
        pod.name,
        pod.ip
    );
    let mut pulled = got.len();
    for digest in &image.blobs {
        let want = std::fs::read(blob_path(&image.dir, digest)).expect("blob in layout");
        let got = http
            .get(format!("{base}/blobs/{digest}"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("GET {digest} from pod {} ({}): {e}", pod.name, pod.ip))
            .bytes()
            .await
            .expect("blob body");
        assert_eq!(
            format!("sha256:{}", hex::encode(Sha256::digest(&got))),
            *digest,
            "pod {} ({}) serves other bytes for {digest}",
            pod.name,
            pod.ip
        );
        assert!(got[..] == want[..], "pod {}: {digest} differs", pod.name);
        pulled += got.len();
    }
    pulled
}

/// Pods of the Registry under test in `default`.
fn fleet_pods(c: &Cluster) -> Vec<Pod> {
    real_node::pods(c, "default", SELECTOR)
}

async fn await_fleet(c: &Cluster, n: usize) -> Vec<Pod> {
    real_node::await_ready_pods(c, "default", SELECTOR, n, PODS_READY).await
}

/// Waits until exactly `n` pods exist, terminating ones included (a scale-down has finished).
async fn await_pod_count(c: &Cluster, n: usize) {
    let deadline = Instant::now() + PODS_READY;
    loop {
        let all = c.kubectl_ok(&["get", "pods", "-l", SELECTOR, "-o", "name"]);
        if all.lines().count() == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still not {n} pods after {PODS_READY:?}: {all}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `kubectl patch --type=merge` of the Registry under test.
fn patch_fleet(c: &Cluster, patch: &str) {
    c.kubectl_ok(&[
        "patch",
        &format!("registry/{NAME}"),
        "--type=merge",
        "-p",
        patch,
    ]);
}

/// Waits for the Deployment's rollout to finish and its 2 pods to serve.
async fn await_rollout(c: &Cluster) -> Vec<Pod> {
    c.kubectl_ok(&[
        "rollout",
        "status",
        &format!("deployment/{NAME}"),
        "--timeout=240s",
    ]);
    await_pod_count(c, 2).await;
    await_fleet(c, 2).await
}

/// A pull loop of `image` through `base` (`http://SERVICE:5000/v2/REPO`).
fn pull_loop(base: &str, image: &Layout) -> real_node::PullLoop {
    real_node::PullLoop::start(
        base,
        &image.tag,
        image.manifest.clone(),
        image.blobs.clone(),
    )
}

/// The status of a blob upload started on `pod` in `repo` (202 accepted, 405 read-only).
async fn upload_status(http: &reqwest::Client, pod: &Pod, repo: &str) -> u16 {
    http.post(format!("http://{}:5000/v2/{repo}/blobs/uploads/", pod.ip))
        .send()
        .await
        .expect("POST upload")
        .status()
        .as_u16()
}

fn await_available(c: &Cluster, what: &str) {
    wait_for(what, Duration::from_secs(120), || {
        c.jsonpath(
            &format!("registry/{NAME}"),
            r#"{.status.conditions[?(@.type=="Available")].status}"#,
        ) == "True"
    });
}

/// The pid of the registry process (not the sandbox's pause) of the pod with `uid`: the
/// process whose memory cgroup is the pod's and whose command is docker-registry.
fn registry_pid(uid: &str) -> Option<u32> {
    let cgroup_part = format!("pod{uid}");
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        (cgroup.contains(&cgroup_part) && String::from_utf8_lossy(&cmd).contains("docker-registry"))
            .then_some(pid)
    })
}

/// Every pod and the Service address are routed onto the node link; from inside a pod the
/// API server answers through the `kubernetes` Service and the host's default gateway does not.
async fn check_containment(
    c: &Cluster,
    env: &BTreeMap<String, String>,
    pods: &[Pod],
    service_ip: &str,
) {
    let link = &env["NODE_HOST_IF"];
    for ip in pods.iter().map(|p| p.ip.as_str()).chain([service_ip]) {
        let r = real_node::route(ip);
        assert!(
            r.contains(&format!("dev {link} ")) && !r.contains("eth"),
            "{ip} is not routed onto the node link {link}: {r}"
        );
    }
    let gateway = real_node::default_gateway();
    c.apply(&format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: net-check}}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  containers:
  - name: nc
    image: flotilla.local/pause:1
    command: ["/bin/busybox", "sh", "-c", "/bin/busybox nc -w 3 {api} 443 </dev/null && echo api-reached; /bin/busybox nc -w 3 {gateway} 53 </dev/null && echo gateway-reached; /bin/busybox nslookup {NAME}.default.svc.cluster.local | /bin/busybox grep -q {service_ip} && echo dns-answered; true"]
"#,
        api = env["NODE_SERVICE_IP"],
    ));
    wait_for("pod net-check Succeeded", Duration::from_secs(60), || {
        c.jsonpath("pod/net-check", "{.status.phase}") == "Succeeded"
    });
    let net = c.kubectl_ok(&["logs", "net-check"]);
    assert!(
        net.contains("api-reached"),
        "a pod does not reach the API server through the kubernetes Service: {net}"
    );
    assert!(
        !net.contains("gateway-reached"),
        "a pod reached the host's default gateway {gateway}: {net}"
    );
    assert!(
        net.contains("dns-answered"),
        "the cluster DNS does not resolve service/{NAME} to {service_ip}: {net}"
    );
}

/// An upload started on one pod is finished on another (upload state signed with the shared
/// http.secret, data in the shared bucket) and served by a third.
async fn check_upload_across_pods(http: &reqwest::Client, pods: &[Pod]) -> String {
    let (first, second, third) = (&pods[0].ip, &pods[1].ip, &pods[2].ip);
    let start = http
        .post(format!("http://{first}:5000/v2/e2e/upload/blobs/uploads/"))
        .send()
        .await
        .expect("start an upload");
    assert_eq!(start.status().as_u16(), 202, "upload start on {first}");
    let location = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("upload Location")
        .to_string();
    let path = location
        .split_once("/v2/")
        .map(|(_, p)| format!("/v2/{p}"))
        .expect("Location has a /v2/ path");
    let body = b"an upload started on one pod and finished on another".to_vec();
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
    let sep = if path.contains('?') { '&' } else { '?' };
    let finish = http
        .put(format!("http://{second}:5000{path}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(body.clone())
        .send()
        .await
        .expect("finish the upload");
    assert_eq!(
        finish.status().as_u16(),
        201,
        "upload started on {first}, finished on {second}: {}",
        finish.text().await.unwrap_or_default()
    );
    let got = http
        .get(format!("http://{third}:5000/v2/e2e/upload/blobs/{digest}"))
        .send()
        .await
        .expect("GET the uploaded blob")
        .bytes()
        .await
        .expect("blob body");
    assert!(
        got[..] == body[..],
        "pod {third} serves other bytes for {digest}"
    );
    digest
}

fn assert_no_failed_pull(what: &str, pulls: &real_node::Pulls) {
    eprintln!(
        "{what}: {} pulls through the Service in {:.1}s ({:.1}/s), {} failed",
        pulls.ok,
        pulls.elapsed.as_secs_f64(),
        pulls.rate(),
        pulls.failed
    );
    assert!(pulls.ok > 0, "{what}: no pull succeeded");
    assert_eq!(
        pulls.failed,
        0,
        "{what}: {} of {} pulls failed: {:?}",
        pulls.failed,
        pulls.ok + pulls.failed,
        pulls.errors
    );
}

/// The fleet's blob data in the bucket (rootDirectory /fleet): digest -> size.
async fn bucket_blobs(minio: &s3::Minio) -> BTreeMap<String, u64> {
    minio
        .sizes("fleet", "fleet/docker/registry/v2/blobs/")
        .await
        .into_iter()
        .filter_map(|(key, size)| {
            // fleet/docker/registry/v2/blobs/sha256/ab/<hex>/data
            let hex = key.strip_suffix("/data")?.rsplit('/').next()?;
            Some((format!("sha256:{hex}"), size))
        })
        .collect()
}

fn gc_status(c: &Cluster, path: &str) -> String {
    c.jsonpath(
        &format!("registry/{NAME}"),
        &format!("{{.status.garbageCollection{path}}}"),
    )
}

/// A dry run: the Job's log (read through the kubelet) names every blob of `expected`; the
/// bucket keeps everything it held `before`.
async fn check_gc_dry_run(
    c: &Cluster,
    minio: &s3::Minio,
    expected: &[String],
    before: &BTreeMap<String, u64>,
) {
    // A dry run first: the Job's log (read through the kubelet) names what would go; the
    // bucket keeps everything.
    let registry = format!("registry/{NAME}");
    let dry_run = |on: bool| {
        patch_fleet(
            c,
            &format!(r#"{{"spec":{{"garbageCollection":{{"dryRun":{on}}}}}}}"#),
        );
    };
    dry_run(true);
    c.kubectl_ok(&["annotate", &registry, "flotilla.dev/gc-requested=dry-run"]);
    wait_for("GC dry run Succeeded", PODS_READY, || {
        gc_status(c, ".phase") == "Idle"
            && gc_status(c, ".lastRun.result") == "Succeeded"
            && gc_status(c, ".lastRun.dryRun") == "true"
    });
    let dry_job = gc_status(c, ".lastRun.jobName");
    let log = c.kubectl_ok(&["logs", &format!("job/{dry_job}")]);
    for digest in expected {
        assert!(
            log.contains(&format!("blob eligible for deletion: {digest}")),
            "the dry run's log does not name {digest}:\n{log}"
        );
    }
    assert_eq!(
        &bucket_blobs(minio).await,
        before,
        "a dry run deleted blobs"
    );
    // The status says what it would free: the log's blobs, sized by the operator's listing.
    let would_bytes: u64 = expected.iter().map(|d| before[d]).sum();
    assert_eq!(
        (
            gc_status(c, ".lastRun.measured.wouldFree.blobs"),
            gc_status(c, ".lastRun.measured.wouldFree.bytes")
        ),
        (expected.len().to_string(), would_bytes.to_string()),
        "status.garbageCollection.lastRun.measured of the dry run: {}",
        gc_status(c, ".lastRun.measured")
    );
    dry_run(false);
}

/// Garbage collection on real pods: the manifest of `gone` is deleted; a dry run names its blobs
/// and deletes nothing; then a window: the fleet
/// rolls read-only (pushes refused, pulls served), the Job runs `registry garbage-collect` in
/// a pod of its own, the fleet rolls back to read-write. The bucket loses exactly the blobs
/// no manifest reaches any more; `kept` still pulls byte-exact from every pod.
async fn check_garbage_collection(
    c: &Cluster,
    minio: &s3::Minio,
    http: &reqwest::Client,
    service_ip: &str,
    gone: &Layout,
    unreferenced: &str,
    kept: &Layout,
) -> (usize, u64) {
    patch_fleet(
        c,
        r#"{"spec":{"deleteEnabled":true,"garbageCollection":{"uploadGraceSeconds":0}}}"#,
    );
    await_rollout(c).await;
    let service = format!("http://{service_ip}:5000/v2");
    let deleted = http
        .delete(format!(
            "{service}/e2e/distribution/manifests/{}",
            gone.digest
        ))
        .send()
        .await
        .expect("DELETE manifest");
    assert_eq!(
        deleted.status().as_u16(),
        202,
        "delete of e2e/distribution's manifest"
    );
    let before = bucket_blobs(minio).await;
    let mut expected: Vec<String> = gone.blobs.clone();
    expected.push(gone.digest.clone());
    expected.push(unreferenced.to_string());
    expected.sort();

    check_gc_dry_run(c, minio, &expected, &before).await;
    let registry = format!("registry/{NAME}");

    c.kubectl_ok(&[
        "annotate",
        "--overwrite",
        &registry,
        "flotilla.dev/gc-requested=1",
    ]);
    wait_for("GC phase Collecting", PODS_READY, || {
        gc_status(c, ".phase") == "Collecting"
    });
    let job = gc_status(c, ".current.jobName");
    // Every ready pod serves the read-only configuration now.
    for pod in &fleet_pods(c)
        .into_iter()
        .filter(|p| p.ready)
        .collect::<Vec<_>>()
    {
        assert_eq!(
            upload_status(http, pod, "e2e/refused").await,
            405,
            "push to {} during the window",
            pod.name
        );
        pull_exact(http, pod, "e2e/pause", kept).await;
    }
    wait_for("GC lastRun Succeeded, phase Idle", PODS_READY, || {
        gc_status(c, ".phase") == "Idle" && gc_status(c, ".lastRun.result") == "Succeeded"
    });
    let job_pod = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("job-name={job}"),
        "-o",
        "jsonpath={.items[0].status.phase}",
    ]);
    assert_eq!(job_pod, "Succeeded", "the pod of GC Job {job}");
    let pods = await_rollout(c).await;

    let after = bucket_blobs(minio).await;
    let removed: Vec<&String> = before.keys().filter(|d| !after.contains_key(*d)).collect();
    let mut got: Vec<String> = removed.iter().map(|d| d.to_string()).collect();
    got.sort();
    assert_eq!(
        got, expected,
        "GC removed other blobs than those no manifest reaches"
    );
    for pod in &pods {
        pull_exact(http, pod, "e2e/pause", kept).await;
        assert_eq!(
            upload_status(http, pod, "e2e/again").await,
            202,
            "push to {} after the window",
            pod.name
        );
    }
    let freed: u64 = removed.iter().map(|d| before[*d]).sum();
    assert_eq!(
        (
            gc_status(c, ".lastRun.measured.freed.blobs"),
            gc_status(c, ".lastRun.measured.freed.bytes")
        ),
        (removed.len().to_string(), freed.to_string()),
        "status.garbageCollection.lastRun.measured: {}",
        gc_status(c, ".lastRun.measured")
    );
    (removed.len(), freed)
}

/// A scale-down to 5 -> 2 and then a rolling update (a config change: delete API off), each
/// while a pull loop runs through the Service: no pull may fail. Returns the rolled pods and
/// how long the rollout took.
async fn check_scale_down_and_roll(
    c: &Cluster,
    service_ip: &str,
    small: &Layout,
) -> (Vec<Pod>, Duration) {
    let base = format!("http://{service_ip}:5000/v2/e2e/pause");
    let pulls = pull_loop(&base, small);
    c.kubectl_ok(&["scale", &format!("registry/{NAME}"), "--replicas=2"]);
    await_pod_count(c, 2).await;
    await_fleet(c, 2).await;
    assert_no_failed_pull("scale 5 -> 2", &pulls.stop().await);

    // A configuration change (delete API off) rolls the pods, again under a pull loop.
    let pulls = pull_loop(&base, small);
    let before: Vec<String> = fleet_pods(c).into_iter().map(|p| p.name).collect();
    patch_fleet(c, r#"{"spec":{"deleteEnabled":false}}"#);
    let t_roll = Instant::now();
    let rolled = await_rollout(c).await;
    let roll_time = t_roll.elapsed();
    assert_no_failed_pull("rolling update of 2 pods", &pulls.stop().await);
    assert!(
        rolled.iter().all(|p| !before.contains(&p.name)),
        "the config change did not replace the pods: before {before:?}, after {rolled:?}"
    );

    (rolled, roll_time)
}

/// A deleted pod is replaced, a killed registry process restarted in its pod; both serve all
/// data afterwards.
async fn check_recovery(
    c: &Cluster,
    http: &reqwest::Client,
    rolled: &[Pod],
    big: &Layout,
    small: &Layout,
) {
    // A deleted pod is replaced and the fleet is Available again with all its data.
    let gone = rolled[0].name.clone();
    c.kubectl_ok(&["delete", "pod", &gone, "--wait=false"]);
    let deadline = Instant::now() + PODS_READY;
    let replaced = loop {
        let p = await_fleet(c, 2).await;
        if p.iter().all(|p| p.name != gone) {
            break p;
        }
        assert!(Instant::now() < deadline, "pod {gone} not replaced: {p:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    await_available(c, "Registry Available after a pod was deleted");
    for pod in &replaced {
        pull_exact(http, pod, "e2e/distribution", big).await;
        pull_exact(http, pod, "e2e/pause", small).await;
    }

    // A killed registry process: the kubelet restarts the container in the same pod.
    let victim = replaced[0].clone();
    let uid = c.jsonpath(&format!("pod/{}", victim.name), "{.metadata.uid}");
    let pid =
        registry_pid(&uid).unwrap_or_else(|| panic!("no registry process of pod {}", victim.name));
    let killed = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(killed.success(), "kill -KILL {pid}");
    let deadline = Instant::now() + PODS_READY;
    let restarted = loop {
        let p = fleet_pods(c);
        if let Some(v) = p
            .iter()
            .find(|p| p.name == victim.name && p.restarts > victim.restarts && p.ready)
        {
            break v.clone();
        }
        assert!(
            Instant::now() < deadline,
            "pod {} not restarted and Ready after its registry process was killed: {p:?}\n{}",
            victim.name,
            real_node::diagnostics(c, "default")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    await_available(c, "Registry Available after a container was killed");
    pull_exact(http, &restarted, "e2e/distribution", big).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_pods_on_a_real_node_serve_scale_roll_and_recover_without_a_failed_pull() {
    let t0 = Instant::now();
    let c = Cluster::start_real_node();
    let up = t0.elapsed();
    let env = real_node::node_env(c.dir());

    // MinIO on the node link's host address: the pods reach it, nothing else does.
    let minio = s3::Minio::start_on(&env["NODE_HOST_IP"]).await;
    minio.create_bucket("fleet").await;
    c.install_crds();
    let logs = c.dir().join("test-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let op = Operator::start(&c, &logs);
    let image = real_node::registry_image(&c);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s3-creds}}
stringData: {{accessKey: {}, secretKey: {}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {{name: {NAME}}}
spec:
  replicas: {REPLICAS}
  image: {}
  storage:
    s3:
      bucket: fleet
      region: {}
      endpoint: {}
      forcePathStyle: true
      rootDirectory: /fleet
      credentialsSecretRef: {{name: s3-creds}}
"#,
        s3::ACCESS_KEY,
        s3::SECRET_KEY,
        image,
        s3::REGION,
        minio.endpoint
    ));

    // Ready is the kubelet's verdict from the pod's own readiness probe (/debug/health on the
    // debug port, which includes the S3 storage check); the image was pulled from the node's
    // bootstrap registry.
    let t_pods = Instant::now();
    let pods = await_fleet(&c, REPLICAS).await;
    let pods_ready = t_pods.elapsed();
    let probe = c.jsonpath(
        &format!("deployment/{NAME}"),
        "{.spec.template.spec.containers[0].readinessProbe.httpGet.path}",
    );
    assert_eq!(probe, "/debug/health", "the pods' readiness probe");
    let pulled_events = c.kubectl_ok(&["get", "events", "--field-selector", "reason=Pulled"]);
    assert!(
        pulled_events.contains("Successfully pulled image"),
        "the registry image was not pulled (from the bootstrap registry): {pulled_events}"
    );
    await_available(&c, "Registry Available");
    let service_ip = c.jsonpath(&format!("service/{NAME}"), "{.spec.clusterIP}");
    assert!(!service_ip.is_empty(), "service/{NAME} has no ClusterIP");
    check_containment(&c, &env, &pods, &service_ip).await;

    let http = real_node::http();
    real_node::await_answer(
        &http,
        &format!("http://{service_ip}:5000/v2/"),
        Duration::from_secs(60),
    )
    .await;

    // Push the Distribution image's own layout through the Service (kube-proxy picks a pod);
    // every pod serves the same bytes from the shared storage, on its own address.
    let big = Layout::read(c.dir().join("images/distribution"));
    let t_push = Instant::now();
    big.push(&format!(
        "http://{service_ip}:5000/e2e/distribution:{}",
        big.tag
    ));
    let push_time = t_push.elapsed();
    let mut pulled = 0usize;
    for pod in &pods {
        pulled += pull_exact(&http, pod, "e2e/distribution", &big).await;
    }
    let uploaded = check_upload_across_pods(&http, &pods).await;

    // Scaled like a Deployment: 5 pods, each serving the same image from the shared storage.
    let t_scale = Instant::now();
    c.kubectl_ok(&["scale", &format!("registry/{NAME}"), "--replicas=5"]);
    for pod in &await_fleet(&c, 5).await {
        pull_exact(&http, pod, "e2e/distribution", &big).await;
    }
    let scale_time = t_scale.elapsed();
    wait_for("status.readyReplicas 5", Duration::from_secs(60), || {
        c.jsonpath(&format!("registry/{NAME}"), "{.status.readyReplicas}") == "5"
    });

    // Scale-down to 2 while clients pull through the Service: terminating pods leave the
    // Service first (preStop), then drain (http.draintimeout): no pull fails.
    let small = Layout::read(c.dir().join("images/pause"));
    small.push(&format!("http://{service_ip}:5000/e2e/pause:{}", small.tag));
    let (rolled, roll_time) = check_scale_down_and_roll(&c, &service_ip, &small).await;
    let t_recover = Instant::now();
    check_recovery(&c, &http, &rolled, &big, &small).await;
    let recover_time = t_recover.elapsed();

    let t_gc = Instant::now();
    let (removed, freed) =
        check_garbage_collection(&c, &minio, &http, &service_ip, &big, &uploaded, &small).await;
    let gc_time = t_gc.elapsed();

    eprintln!(
        "real node: cluster up {:.1}s, {REPLICAS} pods Ready {:.1}s, push of {} bytes through {service_ip} {:.1}s, \
         {pulled} bytes pulled byte-identical from {} pod IPs, scaled to 5 serving pods {:.1}s, \
         rolling update {:.1}s, pod deleted and container killed, both recovered {:.1}s, \
         GC dry run then window (each: roll read-only, Job, roll back) {:.1}s freeing {removed} blobs of {freed} bytes, total {:.1}s",
        up.as_secs_f64(),
        pods_ready.as_secs_f64(),
        big.bytes(),
        push_time.as_secs_f64(),
        pods.len(),
        scale_time.as_secs_f64(),
        roll_time.as_secs_f64(),
        recover_time.as_secs_f64(),
        gc_time.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    drop(op);
    // `down` (the cluster's drop) leaves nothing of the node on the host.
    let dir = c.dir().to_path_buf();
    drop(c);
    real_node::assert_node_gone(&env, &dir);
}
