//! Garbage collection of a fleet on real parts: a real control plane (kwok nodes) and the
//! operator binary drive the window; the test plays the kubelet: it runs the real
//! `docker-registry` pods (two replicas on one real MinIO bucket) from the ConfigMap and the
//! environment the operator wrote, restarts them when the Deployment rolls, runs the Job's
//! command itself from the Job object and reports the pod's end as a kubelet would.

use crate::support::cluster;
use crate::support::registry;
use crate::support::registry_proc;
use crate::support::s3;

use std::collections::BTreeMap;
use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PodSpec, Secret};
use registry::Pusher;
use registry_proc::RegistryProc;

const WAIT: Duration = Duration::from_secs(120);
const BUCKET: &str = "images";
const BLOBS: &str = "hq/docker/registry/v2/blobs/";

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-gc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

fn get_json<T: serde::de::DeserializeOwned>(c: &Cluster, resource: &str) -> T {
    let json = c.kubectl_ok(&["get", resource, "-o", "json"]);
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{resource}: {e}"))
}

/// The container environment of `pod` with every Secret reference resolved, as the kubelet
/// would.
fn resolved_env(c: &Cluster, pod: &PodSpec) -> Vec<(String, String)> {
    let secrets: Vec<Secret> = pod.containers[0]
        .env
        .iter()
        .flatten()
        .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
        .map(|r| get_json::<Secret>(c, &format!("secret/{}", r.name)))
        .collect();
    registry_proc::pod_env(pod, &secrets)
}

fn config(c: &Cluster) -> String {
    c.jsonpath("configmap/hq-config", "{.data.config\\.yml}")
}

fn read_only(config: &str) -> bool {
    let v: serde_yaml::Value = serde_yaml::from_str(config).expect("config YAML");
    v["storage"]["maintenance"]["readonly"]["enabled"] == serde_yaml::Value::Bool(true)
}

/// The kubelet's part for the fleet: both replicas run the Deployment's pod as it is now.
async fn run_pods(c: &Cluster, ports: [u16; 2]) -> Vec<RegistryProc> {
    let deployment: Deployment = get_json(c, "deployment/hq");
    let pod = deployment.spec.template.spec.expect("pod");
    let (config, env) = (config(c), resolved_env(c, &pod));
    let mut pods = Vec::new();
    for (i, port) in ports.into_iter().enumerate() {
        pods.push(RegistryProc::start_on(port, &format!("hq-{i}"), &config, &env, &[]).await);
    }
    pods
}

fn gc(c: &Cluster, path: &str) -> String {
    c.jsonpath(
        "registry/hq",
        &format!("{{.status.garbageCollection{path}}}"),
    )
}

fn maintenance(c: &Cluster) -> String {
    c.jsonpath(
        "registry/hq",
        r#"{.status.conditions[?(@.type=="Maintenance")].status}/{.status.conditions[?(@.type=="Maintenance")].reason}"#,
    )
}

/// The kubelet's part for the Job: runs its command (the image's `registry` is Debian's
/// `docker-registry` here) with its environment and the ConfigMap it mounts, then reports
/// the pod Succeeded or Failed. Returns the command's output.
fn run_job(c: &Cluster, name: &str, fail: bool) -> String {
    let job: Job = get_json(c, &format!("job/{name}"));
    let pod = job.spec.expect("job spec").template.spec.expect("pod");
    let env = resolved_env(c, &pod);
    let mut command = pod.containers[0].command.clone().expect("command");
    assert_eq!(command[0], "registry");
    command[0] = registry_proc::registry_binary().display().to_string();
    let dir = logs_dir().join(name);
    std::fs::create_dir_all(&dir).expect("job dir");
    let local = registry_proc::localize(&config(c), 1, 2, &dir);
    let path = dir.join("config.yml");
    std::fs::write(&path, local).expect("config");
    *command.last_mut().expect("config argument") = path.display().to_string();
    let out = std::process::Command::new(&command[0])
        .args(&command[1..])
        .env_clear()
        .envs(env)
        .output()
        .expect("run garbage-collect");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{command:?}: {log}");
    let selector = format!("job-name={name}");
    let job_pod = || c.kubectl_ok(&["get", "pods", "-l", &selector, "-o", "name"]);
    wait_for(&format!("the pod of Job {name}"), WAIT, || {
        !job_pod().trim().is_empty()
    });
    let pod_name = job_pod();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (phase, code, reason) = if fail {
        ("Failed", 1, "Error")
    } else {
        ("Succeeded", 0, "Completed")
    };
    let patch = serde_json::json!({"status": {"phase": phase, "containerStatuses": [{
        "name": "garbage-collect", "image": pod.containers[0].image, "imageID": "",
        "ready": false, "restartCount": 0,
        "state": {"terminated": {"exitCode": code, "reason": reason,
            "startedAt": now, "finishedAt": now}}}]}});
    c.kubectl_ok(&[
        "patch",
        pod_name.trim(),
        "--subresource=status",
        "--type=merge",
        "-p",
        &patch.to_string(),
    ]);
    log
}

/// Sizes of the blob data in the bucket, by key.
async fn blobs(minio: &s3::Minio) -> BTreeMap<String, u64> {
    minio.sizes(BUCKET, BLOBS).await
}

async fn status(method: reqwest::Method, url: &str) -> (u16, String) {
    let r = reqwest::Client::new()
        .request(method, url)
        .send()
        .await
        .expect("request");
    let code = r.status().as_u16();
    (code, r.text().await.unwrap_or_default())
}

/// Pulls every blob of `reference` (recursively through an index) and checks it against its
/// digest; the manifests themselves are compared by skopeo.
async fn pulls_byte_exact(host: &str, repo: &str, reference: &str, manifest: &[u8]) {
    let sep = if reference.starts_with("sha256:") {
        '@'
    } else {
        ':'
    };
    let raw = registry::skopeo_raw(host, &format!("{repo}{sep}{reference}"))
        .unwrap_or_else(|| panic!("skopeo cannot read {repo}:{reference}"));
    assert_eq!(raw, manifest, "{repo}:{reference} is not byte-exact");
    assert!(
        registry::complete(&format!("http://{host}"), repo, reference).await,
        "{repo}:{reference} lost a manifest or blob"
    );
    let v: serde_json::Value = serde_json::from_slice(manifest).expect("manifest");
    for d in v["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(v.get("config"))
    {
        let digest = d["digest"].as_str().expect("digest");
        let body = reqwest::get(format!("http://{host}/v2/{repo}/blobs/{digest}"))
            .await
            .expect("blob")
            .bytes()
            .await
            .expect("body");
        assert_eq!(
            registry::sha256(&body),
            digest,
            "blob of {repo}:{reference}"
        );
    }
}

/// Requests a run and returns the Job name once the window collects (the pods restarted on
/// the read-only config, as the rollout does).
async fn open_window(
    c: &Cluster,
    value: &str,
    ports: [u16; 2],
    pods: &mut Vec<RegistryProc>,
) -> String {
    let annotation = format!("flotilla.dev/gc-requested={value}");
    c.kubectl_ok(&["annotate", "registry/hq", &annotation, "--overwrite"]);
    wait_for("the read-only configuration", WAIT, || {
        read_only(&config(c))
    });
    assert!(maintenance(c).starts_with("True/"), "{}", maintenance(c));
    pods.clear();
    *pods = run_pods(c, ports).await;
    wait_for("phase Collecting", WAIT, || gc(c, ".phase") == "Collecting");
    let job = gc(c, ".current.jobName");
    assert!(job.starts_with("hq-gc-"), "{job}");
    c.kubectl_ok(&["get", &format!("job/{job}")]);
    job
}

/// Waits for the window to close and the pods to serve read-write again.
async fn close_window(c: &Cluster, ports: [u16; 2], pods: &mut Vec<RegistryProc>, result: &str) {
    wait_for("the read-write configuration", WAIT, || {
        !read_only(&config(c))
    });
    pods.clear();
    *pods = run_pods(c, ports).await;
    wait_for(&format!("lastRun {result}"), WAIT, || {
        gc(c, ".phase") == "Idle" && gc(c, ".lastRun.result") == result
    });
    assert_eq!(maintenance(c), format!("False/LastRun{result}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gc_window_frees_deleted_bytes_keeps_every_tag_and_always_returns_to_read_write() {
    registry::require_tools();
    let minio = s3::Minio::start().await;
    minio.create_bucket(BUCKET).await;
    let c = Cluster::start();
    c.install_crds();
    let logs = logs_dir();
    let mut op = Some(Operator::start(&c, &logs));
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s3}}\nstringData: {{accessKey: {}, secretKey: {}}}\n",
        s3::ACCESS_KEY,
        s3::SECRET_KEY
    ));
    c.apply(&format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {{name: hq}}\nspec:\n  replicas: 2\n  notifications: false\n  storage:\n    s3: {{bucket: {BUCKET}, endpoint: '{}', rootDirectory: /hq, credentialsSecretRef: {{name: s3}}}}\n  garbageCollection: {{uploadGraceSeconds: 0, timeoutSeconds: 300}}\n",
        minio.endpoint
    ));
    wait_for("the ConfigMap", WAIT, || !config(&c).is_empty());
    wait_for("Maintenance False/Idle", WAIT, || {
        maintenance(&c) == "False/Idle"
    });
    let ports = [registry_proc::free_port(), registry_proc::free_port()];
    let mut pods = run_pods(&c, ports).await;
    let a = pods[0].url.clone();
    let host_b = pods[1].host.clone();

    // Content: images sharing a layer, a 2-platform index, a signature, an image to delete.
    let push = Pusher::new(&a);
    let shared = registry::layer(&[("shared.bin", &registry::pseudo_random(1, 200_000))]);
    let only = |seed| registry::layer(&[("own.bin", &registry::pseudo_random(seed, 300_000))]);
    let v1 = push
        .image(
            "app",
            Some("v1"),
            "amd64",
            &[shared.clone(), only(2)],
            false,
        )
        .await;
    let v2_layer = only(3);
    let v2 = push
        .image(
            "app",
            Some("v2"),
            "amd64",
            &[shared.clone(), v2_layer.clone()],
            false,
        )
        .await;
    let sig = push
        .signature("app", &v1, registry::OCI_MANIFEST, "sig")
        .await;
    let amd = push.image("multi", None, "amd64", &[only(4)], false).await;
    let arm = push.image("multi", None, "arm64", &[only(5)], false).await;
    let index = push
        .index(
            "multi",
            "v1",
            &[(amd.clone(), "amd64"), (arm.clone(), "arm64")],
            false,
        )
        .await;
    let old_layer = only(6);
    let old = push
        .image(
            "old",
            Some("v1"),
            "amd64",
            std::slice::from_ref(&old_layer),
            false,
        )
        .await;
    pulls_byte_exact(&host_b, "multi", "v1", &index).await;
    let sig_tag = format!("sha256-{}.sig", &registry::sha256(&v1)["sha256:".len()..]);

    // Deleting by digest removes the tags app:v2 and old:v1; GC reclaims what only they use.
    let unique = |m: &[u8], layer: &(Vec<u8>, String)| {
        let v: serde_json::Value = serde_json::from_slice(m).expect("manifest");
        let config = v["config"]["size"].as_u64().expect("config size");
        m.len() as u64 + config + layer.0.len() as u64
    };
    let freed = unique(&v2, &v2_layer) + unique(&old, &old_layer);
    for (repo, m) in [("app", &v2), ("old", &old)] {
        let url = format!("{a}/v2/{repo}/manifests/{}", registry::sha256(m));
        assert_eq!(status(reqwest::Method::DELETE, &url).await.0, 202);
    }
    let before = blobs(&minio).await;

    // Window 1: the operator is killed while the Job runs, and resumes.
    let job = open_window(&c, "1", ports, &mut pods).await;
    let a = pods[0].url.clone();
    let (code, body) = status(reqwest::Method::POST, &format!("{a}/v2/app/blobs/uploads/")).await;
    assert_eq!(code, 405, "pushes are refused while read-only: {body}");
    assert!(
        body.contains("Method not allowed"),
        "read-only refusal: {body}"
    );
    pulls_byte_exact(&host_b, "app", "v1", &v1).await;
    drop(op.take());
    op = Some(Operator::start(&c, &logs));
    assert_eq!(gc(&c, ".phase"), "Collecting");
    assert!(
        read_only(&config(&c)),
        "the restarted operator keeps the window read-only"
    );
    let log = run_job(&c, &job, false);
    assert!(log.contains("blobs marked"), "{log}");
    close_window(&c, ports, &mut pods, "Succeeded").await;
    assert_eq!(gc(&c, ".lastRun.jobName"), job);
    let a = pods[0].url.clone();
    assert_eq!(
        status(reqwest::Method::POST, &format!("{a}/v2/app/blobs/uploads/"))
            .await
            .0,
        202
    );

    let after = blobs(&minio).await;
    let (sum_before, sum_after): (u64, u64) = (before.values().sum(), after.values().sum());
    assert_eq!(
        sum_before - sum_after,
        freed,
        "the bucket shrinks by the deleted artifacts' unique bytes ({} blobs before, {} after)",
        before.len(),
        after.len()
    );
    println!(
        "bucket blobs: {} objects / {sum_before} bytes before, {} / {sum_after} after; freed {freed} bytes",
        before.len(),
        after.len()
    );
    // The operator's own listing of the bucket, in the status, says the same.
    let measured = |what: &str| gc(&c, &format!(".lastRun.measured.{what}"));
    assert_eq!(
        (measured("before.blobs"), measured("before.bytes")),
        (before.len().to_string(), sum_before.to_string()),
        "status.garbageCollection.lastRun.measured.before (note: {})",
        measured("note")
    );
    assert_eq!(
        (measured("after.blobs"), measured("after.bytes")),
        (after.len().to_string(), sum_after.to_string())
    );
    assert_eq!(
        (measured("freed.blobs"), measured("freed.bytes")),
        ((before.len() - after.len()).to_string(), freed.to_string())
    );
    println!(
        "window 1 measured by the operator: {}",
        gc(&c, ".lastRun.measured")
    );
    let (host_a, host_b) = (pods[0].host.clone(), pods[1].host.clone());
    pulls_byte_exact(&host_a, "app", "v1", &v1).await;
    pulls_byte_exact(&host_b, "app", &sig_tag, &sig).await;
    pulls_byte_exact(&host_b, "multi", "v1", &index).await;
    for child in [&amd, &arm] {
        pulls_byte_exact(&host_a, "multi", &registry::sha256(child), child).await;
    }
    assert!(registry::skopeo_raw(&host_a, "app:v2").is_none());

    // Window 2: a policy copying into the fleet waits through it; the Job fails; the fleet
    // still returns to read-write, and the policy syncs then. (The operator restarts with the
    // address of pod 0 for `registryRef: hq`, as an operator outside the cluster is given.)
    let source = registry::Registry::start().await;
    let incoming = Pusher::new(&source.url())
        .image("incoming", Some("v1"), "amd64", &[only(7)], false)
        .await;
    drop(op.take());
    let hq_url = format!("default/hq=http://127.0.0.1:{}", ports[0]);
    op = Some(Operator::start_with(
        &c,
        &logs,
        &["--registry-url", &hq_url],
        &[],
    ));
    let job = open_window(&c, "2", ports, &mut pods).await;
    c.apply(&format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: into-hq}}\nspec:\n  source: {{url: '{}', insecure: true}}\n  destinations:\n  - {{name: hq, registryRef: {{name: hq}}}}\n  trigger: {{onPush: false}}\n",
        source.url()
    ));
    let syncing = || {
        c.jsonpath(
            "replicationpolicy/into-hq",
            r#"{.status.conditions[?(@.type=="Syncing")].status}/{.status.conditions[?(@.type=="Syncing")].reason}"#,
        )
    };
    wait_for(
        "policy into-hq waiting (Syncing False/MaintenanceWindow)",
        WAIT,
        || syncing() == "False/MaintenanceWindow",
    );
    assert_eq!(
        c.jsonpath("replicationpolicy/into-hq", "{.status.lastSync.result}"),
        "",
        "no sync ran (nor failed) into the fleet during its window"
    );
    let _ = run_job(&c, &job, true);
    close_window(&c, ports, &mut pods, "Failed").await;
    wait_for("policy into-hq synced after the window", WAIT, || {
        c.jsonpath("replicationpolicy/into-hq", "{.status.lastSync.result}") == "Succeeded"
    });
    assert!(
        registry::has_manifest(&pods[0].url, "incoming", &registry::sha256(&incoming)).await,
        "incoming:v1 did not reach hq after its window"
    );
    let events = c.kubectl_ok(&["get", "events", "-o", "yaml"]);
    assert!(
        events.contains("GarbageCollectionFailed"),
        "no Event for the failed run"
    );

    // deleteUntagged on Distribution 2.8: refused, the fleet never leaves read-write.
    c.kubectl_ok(&[
        "patch",
        "registry/hq",
        "--type=merge",
        "-p",
        r#"{"spec":{"garbageCollection":{"deleteUntagged":true}}}"#,
    ]);
    wait_for("Maintenance False/DeleteUntaggedUnsafe", WAIT, || {
        maintenance(&c) == "False/DeleteUntaggedUnsafe"
    });
    c.kubectl_ok(&[
        "annotate",
        "registry/hq",
        "flotilla.dev/gc-requested=3",
        "--overwrite",
    ]);
    wait_for("lastRun Refused", WAIT, || {
        gc(&c, ".lastRun.result") == "Refused"
    });
    assert!(!read_only(&config(&c)));

    // Why: the real 2.8 collector with --delete-untagged deletes the children of a tagged
    // index (run here by hand on the stopped fleet's bucket).
    pods.clear();
    let deployment: Deployment = get_json(&c, "deployment/hq");
    let pod = deployment.spec.template.spec.expect("pod");
    let dir = logs.join("untagged");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("config.yml");
    std::fs::write(&path, registry_proc::localize(&config(&c), 1, 2, &dir)).expect("config");
    let out = std::process::Command::new(registry_proc::registry_binary())
        .args(["garbage-collect", "--delete-untagged"])
        .arg(&path)
        .env_clear()
        .envs(resolved_env(&c, &pod))
        .output()
        .expect("garbage-collect");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = run_pods(&c, ports).await;
    assert!(
        !registry::has_manifest(&pods[0].url, "multi", &registry::sha256(&amd)).await,
        "Distribution 2.8 kept the index child: the refusal may be lifted"
    );
    drop(op);
}
