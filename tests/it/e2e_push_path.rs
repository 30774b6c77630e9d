//! Push work is not lost: a push that arrives while its policy's runs fail, one that arrives
//! while the operator restarts, and one the operator had received when it crashed are all
//! copied afterwards. Real control plane, the real operator, real registries notifying its
//! receiver.

use crate::support::cluster;
use crate::support::registry;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};
use registry::{Answer, Faults, Proxy, Pusher, Registry};

const TOKEN: &str = "test-receiver-token-push-path-0123";
const WAIT: Duration = Duration::from_secs(120);

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-push-path-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

fn operator_on(c: &Cluster, receiver_port: u16) -> Operator {
    Operator::launch(
        Path::new(env!("CARGO_BIN_EXE_flotilla")),
        c,
        &logs_dir(),
        receiver_port,
        &[],
        &[("FLOTILLA_RECEIVER_TOKEN", TOKEN)],
    )
}

fn receiver_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/v1/events")
}

/// The digest `base` serves for `repo:tag`, if any.
fn digest_at(base: &str, repo: &str, tag: &str) -> Option<String> {
    let host = base.trim_start_matches("http://");
    registry::skopeo_raw(host, &format!("{repo}:{tag}")).map(|raw| registry::sha256(&raw))
}

fn jsonpath(c: &Cluster, path: &str) -> String {
    c.jsonpath("replicationpolicy/pushed", path)
}

fn condition(c: &Cluster, type_: &str) -> String {
    jsonpath(
        c,
        &format!(
            r#"{{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}"#
        ),
    )
}

fn apply_policy(c: &Cluster, source: &str, dest: &str) {
    c.apply(&format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: pushed}}\nspec:\n  source: {{url: \"{source}\", insecure: true}}\n  destinations:\n  - {{name: dest, url: \"{dest}\", insecure: true}}\n  trigger: {{onPush: true}}\n"
    ));
}

async fn push(base: &str, tag: &str, seed: u64) -> String {
    let layer = registry::layer(&[("data.bin", &registry::pseudo_random(seed, 32 * 1024))]);
    let m = Pusher::new(base)
        .image("apps/web", Some(tag), "amd64", &[layer], false)
        .await;
    registry::sha256(&m)
}

/// A control plane, the operator with its receiver on `port`, a source notifying it and a
/// destination, with policy `pushed` (on push) in sync.
struct World {
    cluster: Cluster,
    operator: Operator,
    port: u16,
    source: Registry,
    dest: Registry,
}

async fn world() -> World {
    let cluster = Cluster::start();
    cluster.install_crds();
    let port = cluster::free_port();
    let operator = operator_on(&cluster, port);
    let source = Registry::start_notifying(&receiver_url(port), TOKEN).await;
    let dest = Registry::start().await;
    apply_policy(&cluster, &source.url(), &dest.url());
    wait_for("the first full sync", WAIT, || {
        condition(&cluster, "Ready") == "True/InSync"
    });
    World {
        cluster,
        operator,
        port,
        source,
        dest,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_while_the_runs_fail_is_copied_once_the_destination_is_back() {
    let World {
        cluster: c,
        operator: _op,
        source,
        mut dest,
        ..
    } = world().await;

    // The only destination goes away: every run fails (the engine cannot reach it).
    dest.kill();
    let first = push(&source.url(), "v1", 1).await;
    wait_for("a failed push run", WAIT, || {
        condition(&c, "Degraded") == "True/DestinationFailed"
            && jsonpath(&c, "{.status.lastSync.trigger}") == "Push"
    });
    // A second push while the runs keep failing.
    let second = push(&source.url(), "v2", 2).await;
    let failures: i64 = jsonpath(&c, "{.status.consecutiveFailures}")
        .parse()
        .unwrap_or(0);
    assert!(failures >= 1, "the runs did not fail");

    dest.restart().await;
    wait_for("both pushes at the destination", WAIT, || {
        digest_at(&dest.url(), "apps/web", "v1").as_deref() == Some(first.as_str())
            && digest_at(&dest.url(), "apps/web", "v2").as_deref() == Some(second.as_str())
    });
    wait_for("the policy in sync again", WAIT, || {
        condition(&c, "Degraded") == "False/AsExpected"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_during_an_operator_restart_is_copied_by_the_restarted_operator() {
    let World {
        cluster: c,
        operator: op,
        port,
        source,
        dest,
    } = world().await;
    let synced_at = jsonpath(&c, "{.status.lastFullSyncTime}");

    // The operator stops; the push's notification finds no receiver (the registry keeps it
    // and retries).
    let status = op.terminate();
    assert!(
        status.success(),
        "the operator did not stop cleanly: {status}"
    );
    let digest = push(&source.url(), "v1", 3).await;
    assert_eq!(digest_at(&dest.url(), "apps/web", "v1"), None);

    let _op = operator_on(&c, port);
    wait_for("the push at the destination", WAIT, || {
        digest_at(&dest.url(), "apps/web", "v1").as_deref() == Some(digest.as_str())
    });
    // Copied by a push run of the new operator, not by a full sync.
    wait_for("the push run in status", WAIT, || {
        jsonpath(&c, "{.status.lastSync.trigger}") == "Push"
    });
    assert_eq!(jsonpath(&c, "{.status.lastFullSyncTime}"), synced_at);
}

/// A TCP port that accepts connections and never answers: an upload sent there hangs.
fn black_hole() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind black hole");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.extend(conn.ok());
        }
    });
    port
}

/// A proxy in front of `dest` that, while `stall` is set, sends every blob upload of
/// `apps/web` to a port that never answers, so a run copying there hangs.
async fn stalling_proxy(dest: &Registry, stall: Arc<AtomicBool>) -> Proxy {
    let hole = black_hole();
    let answer: Answer = Arc::new(move |method, path_q| {
        let path = path_q.split('?').next().unwrap_or(path_q);
        let upload = *method == reqwest::Method::POST && path == "/v2/apps/web/blobs/uploads/";
        (upload && stall.load(Ordering::SeqCst)).then(|| {
            axum::response::Response::builder()
                .status(202)
                .header(
                    "location",
                    format!("http://127.0.0.1:{hole}/v2/apps/web/blobs/uploads/held"),
                )
                .header("docker-upload-uuid", "held")
                .header("range", "0-0")
                .body(axum::body::Body::empty())
                .expect("response")
        })
    });
    let faults = Faults {
        answer: Some(answer),
        ..Default::default()
    };
    Proxy::start(&dest.url(), faults).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_the_operator_had_received_when_it_crashed_is_copied_by_the_next_one() {
    let c = Cluster::start();
    c.install_crds();
    let port = cluster::free_port();
    let op = operator_on(&c, port);
    let source = Registry::start_notifying(&receiver_url(port), TOKEN).await;
    let dest = Registry::start().await;
    let stall = Arc::new(AtomicBool::new(false));
    let proxy = stalling_proxy(&dest, stall.clone()).await;
    apply_policy(&c, &source.url(), &proxy.url());
    wait_for("the first full sync", WAIT, || {
        condition(&c, "Ready") == "True/InSync"
    });
    let synced_at = jsonpath(&c, "{.status.lastFullSyncTime}");

    // The push is received and its run starts, listing it in the status; the run hangs on
    // its upload, and the operator is killed in the middle of it.
    stall.store(true, Ordering::SeqCst);
    let digest = push(&source.url(), "v1", 4).await;
    wait_for(
        "the push listed as pending while its run hangs",
        WAIT,
        || {
            jsonpath(&c, "{.status.pendingPushes.items[*].tag}") == "v1"
                && condition(&c, "Syncing").starts_with("True/")
        },
    );
    drop(op); // SIGKILL: no clean shutdown, nothing more written.
    assert_eq!(digest_at(&dest.url(), "apps/web", "v1"), None);

    // The registry's notification was acknowledged: only the status remembers the push. The
    // policy has no schedule and no failure to retry, so nothing but that copies it.
    stall.store(false, Ordering::SeqCst);
    let _op = operator_on(&c, port);
    wait_for("the push at the destination", WAIT, || {
        digest_at(&dest.url(), "apps/web", "v1").as_deref() == Some(digest.as_str())
    });
    wait_for("the pending list cleared by a push run", WAIT, || {
        jsonpath(&c, "{.status.pendingPushes}").is_empty()
            && jsonpath(&c, "{.status.lastSync.trigger}") == "Push"
            && jsonpath(&c, "{.status.lastSync.result}") == "Succeeded"
    });
    assert_eq!(jsonpath(&c, "{.status.lastFullSyncTime}"), synced_at);
}
