//! Real pods: a Registry of 3 replicas on MinIO, run by a real kubelet (containerd, runc) on the
//! `e2e/cluster.sh up DIR --real-node` control plane, with the operator as a local process.
//! The pods become Ready by their own readiness probes; an image pushed through the Service
//! (kube-proxy, iptables mode) is pulled byte-identical from each pod's own address; a blob
//! upload started on one pod is finished on another;
//! `kubectl scale registry/NAME --replicas=5` gives 5 pods serving it.
//!
//! Needs root and what `.ci/run` installs (containernetworking-plugins, busybox-static,
//! docker-registry, libseccomp-dev) plus the binaries of `e2e/build-tools.sh`; a missing piece
//! fails the test with a message naming it.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/s3.rs"]
mod s3;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cluster::{Cluster, Operator, wait_for};
use sha2::{Digest, Sha256};

const NAME: &str = "fleet";
const REPLICAS: usize = 3;
const PODS_READY: Duration = Duration::from_secs(180);

/// `KEY=value` lines of the cluster's `node.env` (slot, addresses, CIDRs).
fn node_env(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("node.env")).expect("node.env of a real node");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// (pod name, pod IP, Ready) of the Registry's pods.
fn pods_of(c: &Cluster) -> Vec<(String, String, bool)> {
    let out = c.kubectl(&[
        "get",
        "pods",
        "-l",
        &format!("app.kubernetes.io/instance={NAME}"),
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.status.podIP} {.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some((
                f.next()?.to_string(),
                f.next()?.to_string(),
                f.next() == Some("True"),
            ))
        })
        .collect()
}

/// What a failing wait shows: the pods, their events, the node's last log lines.
fn diagnostics(c: &Cluster) -> String {
    let describe = c.kubectl(&["describe", "pods"]);
    let kubelet = std::fs::read_to_string(c.dir().join("kubelet.log")).unwrap_or_default();
    let tail: Vec<&str> = kubelet.lines().rev().take(30).collect();
    format!(
        "{}\n--- kubelet.log (last lines, newest first) ---\n{}",
        String::from_utf8_lossy(&describe.stdout),
        tail.join("\n")
    )
}

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256 digest"))
}

/// The route the host takes to `ip`: must be the node link, never the default route.
fn route(ip: &str) -> String {
    let out = Command::new("ip")
        .args(["route", "get", ip])
        .output()
        .expect("ip route get");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host's default gateway (where a leaked packet would go), or a documentation address.
fn default_gateway() -> String {
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

#[tokio::test(flavor = "multi_thread")]
async fn three_registry_pods_on_minio_serve_an_image_pushed_through_the_service_from_each_pod_then_five()
 {
    let t0 = Instant::now();
    let c = Cluster::start_real_node();
    let up = t0.elapsed();
    let env = node_env(c.dir());
    let (host_ip, link) = (&env["NODE_HOST_IP"], &env["NODE_HOST_IF"]);

    // MinIO on the node link's host address: the pods reach it, nothing else does.
    let minio = s3::Minio::start_on(host_ip).await;
    minio.create_bucket("fleet").await;
    c.install_crds();
    let logs = c.dir().join("test-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    let op = Operator::start(&c, &logs);

    let image = std::fs::read_to_string(c.dir().join("registry.image"))
        .expect("registry.image written by cluster.sh --real-node");
    let image = image.trim();
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
  image: {image}
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
        s3::REGION,
        minio.endpoint
    ));

    // Ready is the kubelet's verdict from the pod's own readiness probe (/debug/health on the
    // debug port, which includes the S3 storage check).
    let t_pods = Instant::now();
    let deadline = Instant::now() + PODS_READY;
    loop {
        let p = pods_of(&c);
        if p.len() == REPLICAS && p.iter().all(|(_, ip, ready)| *ready && !ip.is_empty()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{REPLICAS} registry pods not Ready in {PODS_READY:?}: {p:?}\noperator log:\n{}\n{}",
            op.log(),
            diagnostics(&c)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pods_ready = t_pods.elapsed();
    let probe = c.jsonpath(
        &format!("deployment/{NAME}"),
        "{.spec.template.spec.containers[0].readinessProbe.httpGet.path}",
    );
    assert_eq!(probe, "/debug/health", "the pods' readiness probe");
    wait_for("Registry Available", Duration::from_secs(60), || {
        c.jsonpath(
            &format!("registry/{NAME}"),
            r#"{.status.conditions[?(@.type=="Available")].status}"#,
        ) == "True"
    });

    let pods = pods_of(&c);
    let service_ip = c.jsonpath(&format!("service/{NAME}"), "{.spec.clusterIP}");
    assert!(!service_ip.is_empty(), "service/{NAME} has no ClusterIP");
    // Containment: every pod and Service address is routed onto the node link.
    for ip in pods
        .iter()
        .map(|(_, ip, _)| ip.as_str())
        .chain([service_ip.as_str()])
    {
        let r = route(ip);
        assert!(
            r.contains(&format!("dev {link} ")) && !r.contains("eth"),
            "{ip} is not routed onto the node link {link}: {r}"
        );
    }

    // From inside a pod: the API server answers through the `kubernetes` Service (what the
    // operator in a pod needs); the host's default gateway is unreachable (no route out).
    let gateway = default_gateway();
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
    command: ["/bin/busybox", "sh", "-c", "/bin/busybox nc -w 3 {api} 443 </dev/null && echo api-reached; /bin/busybox nc -w 3 {gateway} 53 </dev/null && echo gateway-reached; true"]
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

    // kube-proxy writes a Service's rules shortly after its endpoints are ready: await them.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("HTTP client");
    let deadline = Instant::now() + Duration::from_secs(60);
    while http
        .get(format!("http://{service_ip}:5000/v2/"))
        .send()
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "service/{NAME} ({service_ip}:5000) does not answer in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Push the Distribution image's own layout through the Service (kube-proxy picks a pod).
    let layout = c.dir().join("images/distribution");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let manifest_desc = &index["manifests"][0];
    let tag = manifest_desc["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .expect("tag annotation");
    let manifest_digest = manifest_desc["digest"].as_str().expect("manifest digest");
    let t_push = Instant::now();
    let push = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args([
            "copy",
            "--dest-insecure",
            &format!("oci:{}:{tag}", layout.display()),
            &format!("http://{service_ip}:5000/e2e/distribution:{tag}"),
        ])
        .output()
        .expect("run flotilla copy");
    let push_time = t_push.elapsed();
    assert!(
        push.status.success(),
        "flotilla copy through the Service failed: {}{}",
        String::from_utf8_lossy(&push.stdout),
        String::from_utf8_lossy(&push.stderr)
    );

    // Every pod serves the same bytes from the shared storage, on its own address.
    let manifest_bytes = std::fs::read(blob_path(&layout, manifest_digest)).expect("manifest");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest_bytes).expect("manifest");
    let mut blobs = vec![
        manifest["config"]["digest"]
            .as_str()
            .expect("config")
            .to_string(),
    ];
    for l in manifest["layers"].as_array().expect("layers") {
        blobs.push(l["digest"].as_str().expect("layer digest").to_string());
    }
    let mut pulled = 0usize;
    for (pod, ip, _) in &pods {
        let base = format!("http://{ip}:5000/v2/e2e/distribution");
        let r = http
            .get(format!("{base}/manifests/{tag}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET manifest from pod {pod} ({ip}): {e}"));
        assert!(
            r.status().is_success(),
            "manifest from pod {pod} ({ip}): {}",
            r.status()
        );
        let got = r.bytes().await.expect("manifest body");
        assert!(
            got[..] == manifest_bytes[..],
            "pod {pod} ({ip}) serves another manifest"
        );
        for digest in &blobs {
            let want = std::fs::read(blob_path(&layout, digest)).expect("blob in layout");
            let r = http
                .get(format!("{base}/blobs/{digest}"))
                .send()
                .await
                .unwrap_or_else(|e| panic!("GET {digest} from pod {pod} ({ip}): {e}"));
            assert!(
                r.status().is_success(),
                "{digest} from pod {pod} ({ip}): {}",
                r.status()
            );
            let got = r.bytes().await.expect("blob body");
            assert_eq!(
                format!("sha256:{}", hex::encode(Sha256::digest(&got))),
                *digest,
                "pod {pod} ({ip}) serves other bytes for {digest}"
            );
            assert!(got[..] == want[..], "pod {pod} ({ip}): {digest} differs");
            pulled += got.len();
        }
    }
    // An upload started on one pod is finished on another: the upload state is signed with
    // the shared http.secret, the data sits in the shared bucket.
    let (first, second) = (&pods[0].1, &pods[1].1);
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
    let third = &pods[2].1;
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

    // Scaled like a Deployment: 5 pods, each serving the same image from the shared storage.
    let t_scale = Instant::now();
    c.kubectl_ok(&["scale", &format!("registry/{NAME}"), "--replicas=5"]);
    let deadline = Instant::now() + PODS_READY;
    let scaled = loop {
        let p = pods_of(&c);
        if p.len() == 5 && p.iter().all(|(_, ip, ready)| *ready && !ip.is_empty()) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "5 registry pods not Ready in {PODS_READY:?} after kubectl scale: {p:?}\n{}",
            diagnostics(&c)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (pod, ip, _) in &scaled {
        let r = http
            .get(format!(
                "http://{ip}:5000/v2/e2e/distribution/manifests/{tag}"
            ))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET manifest from pod {pod} ({ip}) after scaling: {e}"));
        assert!(
            r.status().is_success(),
            "manifest from pod {pod} ({ip}) after scaling: {}",
            r.status()
        );
        let got = r.bytes().await.expect("manifest body");
        assert!(
            got[..] == manifest_bytes[..],
            "pod {pod} ({ip}) serves another manifest"
        );
    }
    let scale_time = t_scale.elapsed();
    wait_for("status.readyReplicas 5", Duration::from_secs(60), || {
        c.jsonpath(&format!("registry/{NAME}"), "{.status.readyReplicas}") == "5"
    });

    let bytes: u64 = blobs
        .iter()
        .map(|d| {
            std::fs::metadata(blob_path(&layout, d))
                .expect("blob")
                .len()
        })
        .sum();
    eprintln!(
        "real node: cluster up {:.1}s, {REPLICAS} pods Ready {:.1}s, push of {bytes} bytes through {service_ip} {:.1}s, \
         {pulled} bytes pulled byte-identical from {} pod IPs, scaled to 5 serving pods {:.1}s, total {:.1}s",
        up.as_secs_f64(),
        pods_ready.as_secs_f64(),
        push_time.as_secs_f64(),
        pods.len(),
        scale_time.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
    drop(op);
}
