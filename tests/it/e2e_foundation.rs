//! Foundation end-to-end tests on real control planes: the CRDs, their schema validation, the
//! scale subresource and printer columns, and the operator's validation reconcilers.

use crate::support::cluster;

use std::path::PathBuf;
use std::time::Duration;

use cluster::{Cluster, Operator, root, wait_for};

const WAIT: Duration = Duration::from_secs(60);

fn yaml_files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read examples") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

#[test]
fn schema_accepts_every_example_and_rejects_each_invalid_one_naming_the_field() {
    let c = Cluster::start();
    c.install_crds();
    let examples = root().join("examples");
    let mut files = Vec::new();
    yaml_files(&examples, &mut files);
    // examples/argocd/ holds Argo CD's own kinds (Application, argocd-cm), not installed here.
    let (invalid, valid): (Vec<_>, Vec<_>) = files
        .into_iter()
        .filter(|p| !p.starts_with(examples.join("argocd")))
        .partition(|p| p.starts_with(examples.join("invalid")));
    assert!(
        valid.len() >= 5,
        "expected the valid examples, found {valid:?}"
    );
    assert!(
        invalid.len() >= 12,
        "examples/invalid/ must hold at least 12 resources, found {}",
        invalid.len()
    );

    for file in &valid {
        let out = c.kubectl(&[
            "apply",
            "--dry-run=server",
            "-f",
            file.to_str().expect("utf-8"),
        ]);
        assert!(
            out.status.success(),
            "{} was rejected: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for file in &invalid {
        let text = std::fs::read_to_string(file).expect("read invalid example");
        let expected: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(
            !expected.is_empty(),
            "{} has no `# expect:` line",
            file.display()
        );
        let out = c.kubectl(&[
            "apply",
            "--dry-run=server",
            "-f",
            file.to_str().expect("utf-8"),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", file.display());
        for e in expected {
            assert!(
                stderr.contains(e),
                "{}: rejection does not say {e:?}:\n{stderr}",
                file.display()
            );
        }
    }
}

#[test]
fn scale_subresource_printer_columns_explain_and_separate_clusters() {
    let (a, b) = (Cluster::start(), Cluster::start());
    for c in [&a, &b] {
        c.install_crds();
    }
    a.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: fleet}\nspec:\n  replicas: 2\n  storage: {s3: {bucket: images}}\n",
    );
    a.kubectl_ok(&["scale", "registry/fleet", "--replicas=4"]);
    assert_eq!(a.jsonpath("registry/fleet", "{.spec.replicas}"), "4");
    // Scaling past what the storage allows is refused by the same schema rules.
    a.apply("apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: dev}\nspec:\n  storage: {emptyDir: {}}\n");
    let refused = a.kubectl(&["scale", "registry/dev", "--replicas=3"]);
    assert!(
        !refused.status.success(),
        "scaling an emptyDir Registry to 3 was accepted"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("needs shared storage"));

    let header = a.kubectl_ok(&["get", "registry"]);
    let first = header.lines().next().unwrap_or_default();
    for col in ["NAME", "REPLICAS", "READY", "STORAGE", "URL", "AGE"] {
        assert!(
            first.contains(col),
            "`kubectl get registry` lacks column {col}: {first}"
        );
    }
    a.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {name: p}\nspec:\n  source: {url: 'https://hq.example.com'}\n  destinations: [{name: east, url: 'https://east.example.com'}]\n",
    );
    let header = a.kubectl_ok(&["get", "replicationpolicy"]);
    let first = header.lines().next().unwrap_or_default();
    for col in [
        "NAME",
        "SOURCE",
        "DESTINATIONS",
        "LAST SYNC",
        "RESULT",
        "AGE",
    ] {
        assert!(
            first.contains(col),
            "`kubectl get replicationpolicy` lacks column {col}: {first}"
        );
    }
    assert!(
        a.kubectl_ok(&["get", "rp"]).contains("p "),
        "short name rp does not list the policy"
    );
    assert!(
        a.kubectl_ok(&["get", "reg"]).contains("fleet"),
        "short name reg does not list the registry"
    );

    let explain = a.kubectl_ok(&["explain", "registry.spec.storage.s3"]);
    for text in [
        "bucket",
        "forcePathStyle",
        "credentialsSecretRef",
        "S3-compatible",
        "Bucket name",
    ] {
        assert!(
            explain.contains(text),
            "kubectl explain lacks {text:?}:\n{explain}"
        );
    }

    // The second control plane is a separate cluster: it has none of the first one's objects.
    let listed = b.kubectl_ok(&["get", "registry", "-o", "name"]);
    assert!(
        listed.trim().is_empty(),
        "cluster B sees objects of cluster A: {listed}"
    );
}

fn ready(c: &Cluster, policy: &str) -> (String, String, String) {
    let status = c.jsonpath(
        &format!("replicationpolicy/{policy}"),
        r#"{.status.conditions[?(@.type=="Ready")].status}|{.status.conditions[?(@.type=="Ready")].reason}|{.status.observedGeneration}"#,
    );
    let mut parts = status.splitn(3, '|').map(str::to_string);
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

fn generation(c: &Cluster, resource: &str) -> String {
    c.jsonpath(resource, "{.metadata.generation}")
}

const CYCLIC: &str = r#"apiVersion: flotilla.dev/v1alpha1
kind: ReplicationPolicy
metadata: {name: tiers}
spec:
  source: {url: "https://hq.example.com"}
  destinations:
  - {name: region, url: "https://region.example.com", from: city}
  - {name: city, url: "https://city.example.com", from: region}
"#;

const MISSING_SECRET: &str = r#"apiVersion: flotilla.dev/v1alpha1
kind: ReplicationPolicy
metadata: {name: tiers}
spec:
  source: {url: "https://hq.example.com"}
  destinations:
  - {name: region, url: "https://region.example.com", credentialsSecretRef: {name: region-push}}
  - {name: city, url: "https://city.example.com", from: region}
"#;

const SECRET: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: region-push}
type: kubernetes.io/basic-auth
stringData: {username: robot, password: s3cr3t-value}
"#;

#[test]
fn operator_marks_cycles_and_missing_secrets_and_clears_them_when_fixed() {
    let c = Cluster::start();
    c.install_crds();
    let logs = tempfile_dir();
    let op = Operator::start(&c, &logs);

    c.apply(CYCLIC);
    wait_for("Ready=False CyclicDestinations", WAIT, || {
        let (s, r, g) = ready(&c, "tiers");
        s == "False" && r == "CyclicDestinations" && g == generation(&c, "replicationpolicy/tiers")
    });
    let message = c.jsonpath(
        "replicationpolicy/tiers",
        r#"{.status.conditions[?(@.type=="Ready")].message}"#,
    );
    assert!(
        message.contains("cycle") && message.contains("region"),
        "message does not explain the cycle: {message}"
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=tiers",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("CyclicDestinations"),
        "no Event recorded: {events}"
    );

    c.apply(MISSING_SECRET);
    wait_for(
        "Ready=False SecretNotFound at the new generation",
        WAIT,
        || {
            let (s, r, g) = ready(&c, "tiers");
            s == "False" && r == "SecretNotFound" && g == generation(&c, "replicationpolicy/tiers")
        },
    );
    assert_eq!(generation(&c, "replicationpolicy/tiers"), "2");

    // Creating the Secret (no change to the policy) clears the validation problem: the policy
    // goes on to sync (its example.com registries are unreachable here, so it is then
    // out of sync with a sync-time reason, not a validation one).
    c.apply(SECRET);
    wait_for(
        "the SecretNotFound problem cleared by a sync attempt",
        WAIT,
        || {
            let (s, r, _) = ready(&c, "tiers");
            s == "False"
                && r == "OutOfSync"
                && !c
                    .jsonpath("replicationpolicy/tiers", "{.status.lastSync.trigger}")
                    .is_empty()
        },
    );
    let status = c.kubectl_ok(&["get", "replicationpolicy/tiers", "-o", "json"]);
    assert!(
        !status.contains("s3cr3t-value"),
        "a secret value leaked into the resource"
    );

    // A spec change moves observedGeneration along.
    c.kubectl_ok(&[
        "patch",
        "replicationpolicy/tiers",
        "--type=merge",
        "-p",
        r#"{"spec":{"concurrency":2}}"#,
    ]);
    wait_for("observedGeneration 3", WAIT, || ready(&c, "tiers").2 == "3");

    // A Registry reference that does not exist is reported, and fixed by creating it.
    c.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {name: local}\nspec:\n  source: {registryRef: {name: hq}}\n  destinations: [{name: east, url: 'https://east.example.com'}]\n",
    );
    wait_for("Ready=False RegistryNotFound", WAIT, || {
        ready(&c, "local").1 == "RegistryNotFound"
    });
    c.apply("apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: hq}\nspec:\n  storage: {emptyDir: {}}\n");
    wait_for(
        "RegistryNotFound cleared once the Registry exists",
        WAIT,
        || {
            let reason = ready(&c, "local").1;
            !reason.is_empty() && reason != "RegistryNotFound"
        },
    );

    let metrics = op.get("/metrics").expect("metrics answer");
    assert!(
        metrics.contains("flotilla_reconciliations_total{kind=\"ReplicationPolicy\"}"),
        "{metrics}"
    );
    assert!(op.get("/healthz").is_some());
    let status = op.terminate();
    assert!(
        status.success(),
        "operator did not exit cleanly on SIGTERM: {status:?}"
    );
}

#[test]
fn operator_survives_the_api_server_going_away_and_coming_back() {
    let c = Cluster::start();
    c.install_crds();
    let logs = tempfile_dir();
    let mut op = Operator::start(&c, &logs);
    c.apply(CYCLIC);
    wait_for("first policy reconciled", WAIT, || {
        ready(&c, "tiers").1 == "CyclicDestinations"
    });

    c.stop("kube-apiserver");
    // While the API server is down the operator keeps running (it retries with backoff).
    wait_for("a failed watch noticed by the operator", WAIT, || {
        let log = op.log();
        log.contains("error") || log.contains("WARN") || log.contains("failed")
    });
    assert!(
        op.running(),
        "operator exited while the API server was down:\n{}",
        op.log()
    );
    c.start_component("kube-apiserver");

    c.apply(&CYCLIC.replace("name: tiers", "name: after-restart"));
    wait_for(
        "a policy created after the restart is reconciled",
        Duration::from_secs(120),
        || ready(&c, "after-restart").1 == "CyclicDestinations",
    );
    assert!(op.running());
}

fn tempfile_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}
