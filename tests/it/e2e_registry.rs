//! Registry controller end to end on a real control plane: kube-controller-manager turns the
//! Deployment into pods, kube-scheduler places them and kwok makes them Ready.

use crate::support::cluster;

use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};

const WAIT: Duration = Duration::from_secs(90);

const S3_SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: s3-creds}
stringData: {accessKey: AKIAFLOTILLA, secretKey: super-secret-s3-key}
"#;

const REGISTRY: &str = r#"apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {name: hq}
spec:
  replicas: 2
  storage:
    s3:
      bucket: images
      endpoint: http://minio.storage.svc:9000
      forcePathStyle: true
      rootDirectory: /hq
      credentialsSecretRef: {name: s3-creds}
"#;

fn condition(c: &Cluster, kind_name: &str, type_: &str) -> String {
    c.jsonpath(kind_name, &format!(r#"{{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}"#))
}

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-registry-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

#[test]
fn registry_fleet_is_created_scaled_rolled_repaired_and_removed() {
    let c = Cluster::start();
    c.install_crds();
    let logs = logs_dir();
    let op = Operator::start(&c, &logs);

    // A missing S3 Secret: nothing is created, the condition says what to fix.
    c.apply(REGISTRY);
    wait_for("Degraded=True S3CredentialsMissing", WAIT, || {
        condition(&c, "registry/hq", "Degraded") == "True/S3CredentialsMissing"
    });
    assert!(
        c.kubectl(&["get", "deployment/hq"]).status.code() != Some(0),
        "a Deployment was created for an invalid Registry"
    );

    c.apply(S3_SECRET);
    wait_for("Registry Available", WAIT, || {
        condition(&c, "registry/hq", "Available").starts_with("True/")
    });
    for obj in [
        "deployment/hq",
        "service/hq",
        "poddisruptionbudget/hq",
        "configmap/hq-config",
        "secret/hq-generated",
    ] {
        c.kubectl_ok(&["get", obj]);
    }
    assert_eq!(c.jsonpath("registry/hq", "{.status.readyReplicas}"), "2");
    assert_eq!(condition(&c, "registry/hq", "Degraded"), "False/AsExpected");
    let config = c.kubectl_ok(&["get", "configmap/hq-config", "-o", "yaml"]);
    assert!(
        !config.contains("super-secret-s3-key") && !config.contains("AKIAFLOTILLA"),
        "S3 credentials leaked into the ConfigMap"
    );
    let http_secret = c.jsonpath("secret/hq-generated", "{.data.http-secret}");
    assert!(!http_secret.is_empty());

    // kubectl scale on the Registry reaches the Deployment and the status.
    c.kubectl_ok(&["scale", "registry/hq", "--replicas=5"]);
    wait_for("Deployment at 5 and status.replicas 5", WAIT, || {
        c.jsonpath("deployment/hq", "{.spec.replicas}") == "5"
            && c.jsonpath("registry/hq", "{.status.replicas}") == "5"
    });
    // The scale subresource's selector is what the pods carry.
    let selector = c.jsonpath("registry/hq", "{.status.selector}");
    let pods = c.kubectl_ok(&["get", "pods", "-l", &selector, "-o", "name"]);
    assert!(
        pods.lines().count() >= 5,
        "selector {selector} selects {pods}"
    );

    // A scale done on the Deployment instead of the Registry is put back.
    c.kubectl_ok(&["scale", "deployment/hq", "--replicas=1"]);
    wait_for("Deployment corrected to 5", WAIT, || {
        c.jsonpath("deployment/hq", "{.spec.replicas}") == "5"
    });

    // A storage change rolls the pods (new checksum on the template), the http secret stays.
    let checksum = c.jsonpath(
        "deployment/hq",
        "{.spec.template.metadata.annotations.flotilla\\.dev/config-checksum}",
    );
    c.kubectl_ok(&[
        "patch",
        "registry/hq",
        "--type=merge",
        "-p",
        r#"{"spec":{"storage":{"s3":{"rootDirectory":"/hq-v2"}}}}"#,
    ]);
    wait_for("new pod template checksum", WAIT, || {
        let now = c.jsonpath(
            "deployment/hq",
            "{.spec.template.metadata.annotations.flotilla\\.dev/config-checksum}",
        );
        !now.is_empty() && now != checksum
    });
    wait_for("rollout complete", WAIT, || {
        c.jsonpath("deployment/hq", "{.status.updatedReplicas}") == "5"
            && condition(&c, "registry/hq", "Available").starts_with("True/")
    });
    assert_eq!(
        c.jsonpath("secret/hq-generated", "{.data.http-secret}"),
        http_secret,
        "http.secret changed across reconciles"
    );

    // A child deleted by hand comes back.
    c.kubectl_ok(&["delete", "service/hq", "--wait=true"]);
    wait_for("Service recreated", WAIT, || {
        c.kubectl(&["get", "service/hq"]).status.success()
    });

    // The http secret survives an operator restart.
    drop(op);
    let _op = Operator::start(&c, &logs);
    c.kubectl_ok(&["annotate", "registry/hq", "touch=1"]);
    c.kubectl_ok(&["delete", "configmap/hq-config", "--wait=true"]);
    wait_for("ConfigMap recreated after restart", WAIT, || {
        c.kubectl(&["get", "configmap/hq-config"]).status.success()
    });
    assert_eq!(
        c.jsonpath("secret/hq-generated", "{.data.http-secret}"),
        http_secret,
        "http.secret changed across an operator restart"
    );

    // Deleting the Registry removes what it owns (garbage collection), never the user's Secret.
    c.kubectl_ok(&["delete", "registry/hq", "--wait=true"]);
    wait_for("owned objects collected", WAIT, || {
        [
            "deployment/hq",
            "service/hq",
            "configmap/hq-config",
            "secret/hq-generated",
            "poddisruptionbudget/hq",
        ]
        .iter()
        .all(|o| !c.kubectl(&["get", o]).status.success())
    });
    c.kubectl_ok(&["get", "secret/s3-creds"]);
}

#[test]
fn single_replica_has_no_pdb_and_wrong_tls_secret_type_is_reported() {
    let c = Cluster::start();
    c.install_crds();
    let logs = logs_dir();
    let _op = Operator::start(&c, &logs);
    c.apply("apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: dev}\nspec:\n  storage: {emptyDir: {}}\n");
    wait_for("dev Available", WAIT, || {
        condition(&c, "registry/dev", "Available").starts_with("True/")
    });
    assert!(
        !c.kubectl(&["get", "poddisruptionbudget/dev"])
            .status
            .success(),
        "a PDB exists for one replica"
    );

    c.apply("apiVersion: v1\nkind: Secret\nmetadata: {name: not-tls}\nstringData: {tls.crt: \"cert\", tls.key: \"key\"}\n");
    c.apply("apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: secure}\nspec:\n  tls: {secretName: not-tls}\n  storage: {emptyDir: {}}\n");
    wait_for("TLSSecretInvalid", WAIT, || {
        condition(&c, "registry/secure", "Degraded") == "True/TLSSecretInvalid"
    });
    let message = c.jsonpath(
        "registry/secure",
        r#"{.status.conditions[?(@.type=="Degraded")].message}"#,
    );
    assert!(
        message.contains("spec.tls.secretName") || message.contains("kubernetes.io/tls"),
        "{message}"
    );
    assert!(
        !c.kubectl(&["get", "deployment/secure"]).status.success(),
        "half-applied: a Deployment exists"
    );
}
