//! The operator against a source registry that misbehaves on purpose (support/hostile.rs in
//! front of a real `docker-registry`), with `deletion: true`: a failed tag listing and a huge
//! manifest each end as a one-line `Degraded` message naming the registry and the repository,
//! the destination keeps every tag, and the operator's memory stays bounded.

use crate::support::cluster;
use crate::support::hostile;
use crate::support::registry;

use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};
use hostile::{HUGE, Misbehaviour};
use registry::{Pusher, Registry, layer, list_tags, require_tools};

const WAIT: Duration = Duration::from_secs(90);

fn policy(source: &str, dest: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: mirror}}\nspec:\n  source: {{url: \"{source}\", insecure: true}}\n  destinations:\n  - {{name: d, url: \"{dest}\", insecure: true}}\n  deletion: true\n  retry: {{maxAttempts: 2, initialBackoffMillis: 10}}\n"
    )
}

/// `status/reason: message` of the policy's condition `type_`.
fn condition(c: &Cluster, type_: &str) -> String {
    c.jsonpath(
        "replicationpolicy/mirror",
        &format!(
            r#"{{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}: {{.status.conditions[?(@.type=="{type_}")].message}}"#
        ),
    )
}

/// Peak resident memory of the operator process so far, bytes.
fn peak_rss(op: &Operator) -> u64 {
    registry::peak_rss_kib(op.pid()).expect("VmHWM of the operator") * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hostile_source_degrades_the_policy_and_deletes_nothing() {
    require_tools();
    let c = Cluster::start();
    c.install_crds();
    let logs = std::env::temp_dir().join(format!("flotilla-e2e-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("log dir");
    let op = Operator::start(&c, &logs);
    let src = Registry::start().await;
    let dest = Registry::start().await;
    let p = Pusher::new(&src.url());
    for tag in ["v1", "v2"] {
        p.image(
            "app",
            Some(tag),
            "amd64",
            &[layer(&[("f", tag.as_bytes())])],
            false,
        )
        .await;
    }
    c.apply(&policy(&src.url(), &dest.url()));
    wait_for("the first sync", WAIT, || {
        condition(&c, "Ready").starts_with("True/InSync")
    });
    let held = list_tags(&dest.url(), "app").await;
    assert_eq!(held.len(), 2, "{held:?}");

    // The source's tag listing fails: the policy is degraded, nothing is deleted.
    let failing = hostile::start(
        &src.url(),
        Misbehaviour::ListingStatus {
            repo: "app".into(),
            status: 404,
        },
    )
    .await;
    c.apply(&policy(&failing.url(), &dest.url()));
    wait_for("Degraded by the failed listing", WAIT, || {
        let d = condition(&c, "Degraded");
        d.starts_with("True/") && d.contains(&failing.host()) && d.contains("app")
    });
    let degraded = condition(&c, "Degraded");
    assert!(!degraded.contains('\n'), "one line: {degraded}");
    assert_eq!(list_tags(&dest.url(), "app").await, held, "nothing deleted");

    // A huge manifest: refused without being read, the operator's memory stays bounded.
    p.image("app", Some("v3"), "amd64", &[layer(&[("f", b"v3")])], false)
        .await;
    let huge = hostile::start(
        &src.url(),
        Misbehaviour::HugeManifest { repo: "app".into() },
    )
    .await;
    c.apply(&policy(&huge.url(), &dest.url()));
    wait_for("Degraded by the huge manifest", WAIT, || {
        let d = condition(&c, "Degraded");
        d.starts_with("True/") && d.contains("larger than") && d.contains(&huge.host())
    });
    assert_eq!(
        list_tags(&dest.url(), "app").await,
        held,
        "nothing deleted or added"
    );

    // The destination holds two tags the source never had; a limit of one withholds both,
    // with a Degraded condition and an Event.
    let d = Pusher::new(&dest.url());
    for t in ["old1", "old2"] {
        d.image(
            "app",
            Some(t),
            "amd64",
            &[layer(&[("f", t.as_bytes())])],
            false,
        )
        .await;
    }
    let before = list_tags(&dest.url(), "app").await;
    c.apply(&format!(
        "{}  maxDeletions: 1\n",
        policy(&src.url(), &dest.url())
    ));
    wait_for("Degraded by the withheld deletions", WAIT, || {
        condition(&c, "Degraded").contains("spec.maxDeletions (1)")
    });
    wait_for("the DeletionsWithheld Event", WAIT, || {
        c.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "reason=DeletionsWithheld",
            "-o",
            "name",
        ])
        .lines()
        .count()
            > 0
    });
    let after = list_tags(&dest.url(), "app").await;
    assert!(
        before.iter().all(|t| after.contains(t)),
        "nothing deleted: {before:?} → {after:?}"
    );
    let peak = peak_rss(&op);
    assert!(
        peak < HUGE as u64,
        "the operator's peak RSS {peak} bytes: the hostile body was read into memory"
    );
}
