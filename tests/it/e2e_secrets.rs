//! Secrets stay secret: distinctive passwords, a docker config and S3 keys are planted in
//! Secrets, the operator is driven through every failure path it can reach with them (a
//! malformed `.dockerconfigjson`, wrong credentials, a TLS failure, a blob redirect to another
//! host), and then policy and Registry status, Events, ConfigMaps and the operator's log are
//! searched for them: zero hits.
//!
//! Real control plane, real operator process, real `docker-registry` processes; the redirect
//! comes from the hostile-registry double in front of one of them.

use crate::support::cluster;
use crate::support::hostile;
use crate::support::registry;

use std::time::Duration;

use base64::Engine as _;
use cluster::{Cluster, Operator, wait_for};

use registry::{Registry, require_tools};

const WAIT: Duration = Duration::from_secs(90);

const DOCKERCONFIG: &str = "PLANTED-DOCKERCONFIG-7f3a";
const WRONG_PASSWORD: &str = "PLANTED-PASSWORD-2c9d";
const TLS_PASSWORD: &str = "PLANTED-TLS-5e1b";
const S3_ACCESS: &str = "PLANTED-S3-ACCESS-1a2b";
const S3_SECRET: &str = "PLANTED-S3-SECRET-4d8a";
/// The real password of the source registry (used where the credentials must work).
const GOOD_PASSWORD: &str = "s3cret";

fn basic_auth_secret(name: &str, password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\ntype: kubernetes.io/basic-auth\nstringData: {{username: alice, password: \"{password}\"}}\n"
    )
}

fn policy(name: &str, source: &str, source_extra: &str, dest: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: {name}}}\nspec:\n  source: {{url: \"{source}\"{source_extra}}}\n  destinations:\n  - {{name: d, url: \"{dest}\", insecure: true}}\n  retry: {{maxAttempts: 1}}\n"
    )
}

/// Every place a secret must never appear, as one text.
fn observable(c: &Cluster, op: &Operator) -> String {
    let mut all = String::new();
    for args in [
        ["get", "replicationpolicies,registries", "-A", "-o", "json"],
        ["get", "events", "-A", "-o", "json"],
        ["get", "configmaps", "-A", "-o", "json"],
        ["get", "deployments,services", "-A", "-o", "json"],
    ] {
        all.push_str(&c.kubectl_ok(&args));
    }
    all.push_str(&op.log());
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_secret_reaches_status_events_configmaps_or_logs() {
    require_tools();
    let c = Cluster::start();
    c.install_crds();
    let logs = std::env::temp_dir().join(format!("flotilla-e2e-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("log dir");
    let op = Operator::start(&c, &logs);

    let source = hostile::RedirectingSource::start().await;
    let (src, redirecting) = (&source.registry, &source.proxy);
    let dest = Registry::start().await;

    let dockerconfig = format!("{{\"auths\":\"{DOCKERCONFIG}\"}}");
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: bad-json}}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{dockerconfig}'\n"
    ));
    c.apply(&basic_auth_secret("wrong", WRONG_PASSWORD));
    c.apply(&basic_auth_secret("tls", TLS_PASSWORD));
    c.apply(&basic_auth_secret("good", GOOD_PASSWORD));
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: s3}}\nstringData: {{accessKey: {S3_ACCESS}, secretKey: {S3_SECRET}}}\n"
    ));
    c.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: fleet}\nspec:\n  replicas: 2\n  storage:\n    s3: {bucket: fleet-bucket, endpoint: \"http://127.0.0.1:1\", credentialsSecretRef: {name: s3}}\n",
    );
    let d = dest.url();
    let creds = |s: &str| format!(", insecure: true, credentialsSecretRef: {{name: {s}}}");
    c.apply(&policy("bad-json", &src.url(), &creds("bad-json"), &d));
    c.apply(&policy("wrong", &src.url(), &creds("wrong"), &d));
    // TLS to a server that speaks plain HTTP: the handshake fails.
    let https = src.url().replace("http://", "https://");
    c.apply(&policy(
        "tls",
        &https,
        ", credentialsSecretRef: {name: tls}",
        &d,
    ));
    c.apply(&policy("redirect", &redirecting.url(), &creds("good"), &d));

    // Each policy reports its failure.
    for p in ["bad-json", "wrong", "tls", "redirect"] {
        wait_for(&format!("policy {p} to report its failure"), WAIT, || {
            let json = c.kubectl_ok(&["get", &format!("rp/{p}"), "-o", "json"]);
            let v: serde_json::Value = serde_json::from_str(&json).expect("json");
            v["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|cond| {
                    let bad = (cond["type"] == "Ready" && cond["status"] == "False")
                        || (cond["type"] == "Degraded" && cond["status"] == "True");
                    bad && cond["message"].as_str().is_some_and(|m| !m.is_empty())
                })
        });
    }
    // Each failure is the one this policy was set up for.
    for (p, expected) in [
        ("bad-json", "key .dockerconfigjson"),
        ("wrong", "rejected the credentials"),
        ("tls", "cannot reach registry"),
        ("redirect", "app:v1: reading blob"),
    ] {
        let conditions = c.jsonpath(&format!("rp/{p}"), "{.status.conditions}");
        assert!(conditions.contains(expected), "{p}: {conditions}");
    }
    wait_for("the fleet's Deployment", WAIT, || {
        c.kubectl(&["get", "deployment/fleet"]).status.success()
    });
    let (requests, authorizations) = source.stolen();
    assert!(requests > 0, "the redirect path was driven");
    assert!(
        authorizations.is_empty(),
        "credentials followed the redirect"
    );

    let seen = observable(&c, &op);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let good_basic = b64(&format!("alice:{GOOD_PASSWORD}"));
    let wrong_basic = b64(&format!("alice:{WRONG_PASSWORD}"));
    for planted in [
        DOCKERCONFIG,
        WRONG_PASSWORD,
        TLS_PASSWORD,
        S3_ACCESS,
        S3_SECRET,
        &b64(DOCKERCONFIG),
        &b64(WRONG_PASSWORD),
        &b64(S3_SECRET),
        &good_basic,
        &wrong_basic,
    ] {
        assert!(
            !seen.contains(planted),
            "a planted secret ({planted}) appears in status, Events, ConfigMaps, workloads or the operator log"
        );
    }
    // And the good password of the redirect policy only where it belongs (its Secret).
    assert!(
        !seen.contains(&format!("\"{GOOD_PASSWORD}\"")),
        "the source password appears in what the operator wrote or logged"
    );
}
