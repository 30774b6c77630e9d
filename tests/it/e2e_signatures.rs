//! `spec.verify` through the operator on a real control plane: the policy's trusted key is a
//! ConfigMap of its namespace; the image signed by the real `cosign` is copied, the unsigned
//! one is not, and the run reports it in `status.lastSync.unverified`, an `ArtifactsHeldBack`
//! Event and `flotilla_artifacts_unverified_total{reason="unsigned"}`.

use crate::support::cluster;
use crate::support::registry;
use crate::support::supply_chain;

use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};
use registry::{Pusher, Registry, list_tags};
use supply_chain::{Cosign, Scheme, push_image};

const WAIT: Duration = Duration::from_secs(90);
const REPO: &str = "sec/app";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_operator_holds_back_and_reports_unsigned_artifacts() {
    let cosign = Cosign::new();
    let key = cosign.key_pair("release");
    let src = Registry::start().await;
    let dest = Registry::start().await;
    let p = Pusher::new(&src.url());
    let signed = push_image(&p, REPO, "signed").await;
    cosign.sign(
        &key,
        &format!("{}/{REPO}@{signed}", src.host()),
        Scheme::Tags,
    );
    push_image(&p, REPO, "unsigned").await;

    let c = Cluster::start();
    c.install_crds();
    let logs = std::env::temp_dir().join(format!("flotilla-e2e-signatures-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("log dir");
    let op = Operator::start(&c, &logs);
    let pem: String = key
        .public_pem()
        .lines()
        .map(|l| format!("    {l}\n"))
        .collect();
    c.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: release-keys}}\ndata:\n  cosign.pub: |\n{pem}"
    ));
    c.apply(&format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: prod}}\nspec:\n  source: {{url: \"{}\", insecure: true}}\n  destinations:\n  - {{name: prod, url: \"{}\", insecure: true}}\n  verify:\n    keys:\n    - configMapKeyRef: {{name: release-keys, key: cosign.pub}}\n",
        src.url(),
        dest.url()
    ));
    wait_for("a sync that held the unsigned image back", WAIT, || {
        c.jsonpath("replicationpolicy/prod", "{.status.lastSync.unverified}") == "1"
    });
    assert_eq!(
        c.jsonpath("replicationpolicy/prod", "{.status.lastSync.result}"),
        "Succeeded",
        "holding back is no failure"
    );
    let mut tags = list_tags(&dest.url(), REPO).await;
    tags.sort();
    assert_eq!(
        tags,
        vec![
            format!("sha256-{}.sig", &signed["sha256:".len()..]),
            "signed".to_string()
        ]
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=prod,reason=ArtifactsHeldBack",
        "-o",
        "jsonpath={.items[*].message}",
    ]);
    assert!(
        events.contains("sec/app:unsigned (unsigned)"),
        "no ArtifactsHeldBack Event naming the image: {events:?}"
    );
    let metrics = op.get("/metrics").unwrap_or_default();
    let held: f64 = metrics
        .lines()
        .filter(|l| {
            l.starts_with("flotilla_artifacts_unverified_total{")
                && l.contains("policy=\"default/prod\"")
                && l.contains("reason=\"unsigned\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(held >= 1.0, "metric missing: {metrics}");
}
