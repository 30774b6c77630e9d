//! Trust boundaries between tenants on a real control plane, with the real operator:
//! - a ReplicationPolicy of namespace `team-b` naming a Registry of `team-a` is refused
//!   (`Ready=False`, `ReferenceNotAllowed`, nothing copied) until `team-a`'s Registry allows
//!   `team-b`; then it syncs;
//! - a Registry whose ConfigMap name is taken by a user's ConfigMap applies nothing
//!   (`ObjectNotOwned`) and leaves that ConfigMap unowned, until it is gone;
//! - the receiver token of a Registry stops working when its notifications are turned off and
//!   when it is deleted.
//!
//! The Registry `team-a/hq` is played by a real `docker-registry` process the operator is
//! pointed at (`--registry-url`), as for an operator running outside the cluster.

use crate::support::cluster;
use crate::support::registry;

use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};
use registry::{Pusher, Registry};

const WAIT: Duration = Duration::from_secs(90);

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-tenancy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

/// `status/reason` of condition `type_` of `resource` in `namespace`.
fn condition(c: &Cluster, namespace: &str, resource: &str, type_: &str) -> String {
    let path = format!(
        r#"jsonpath={{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}"#
    );
    let out = c.kubectl(&["-n", namespace, "get", resource, "-o", &path]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(c: &Cluster, namespace: &str, resource: &str, path: &str) -> String {
    let out = c.kubectl(&[
        "-n",
        namespace,
        "get",
        resource,
        "-o",
        &format!("jsonpath={path}"),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn exists(c: &Cluster, namespace: &str, resource: &str) -> bool {
    c.kubectl(&["-n", namespace, "get", resource])
        .status
        .success()
}

/// Tags of `repo` at `base` (empty when the repository does not exist).
fn tags(base: &str, repo: &str) -> Vec<String> {
    let out = std::process::Command::new("curl")
        .args(["-sf", &format!("{base}/v2/{repo}/tags/list")])
        .output()
        .expect("curl");
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| serde_json::from_value(v["tags"].clone()).ok())
        .unwrap_or_default()
}

/// HTTP status of an empty notification envelope posted with `token`.
fn post_events(op: &Operator, token: &str) -> u16 {
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
        .args([
            "-H",
            "Content-Type: application/vnd.docker.distribution.events.v1+json",
        ])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--data-binary", r#"{"events":[]}"#])
        .arg(format!("http://127.0.0.1:{}/v1/events", op.receiver_port))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

fn notification_token(c: &Cluster, namespace: &str, registry: &str) -> Option<String> {
    use base64::Engine;
    let b64 = get(
        c,
        namespace,
        &format!("secret/{registry}-generated"),
        "{.data.notification-token}",
    );
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    String::from_utf8(bytes).ok().filter(|t| !t.is_empty())
}

fn registry_yaml(namespace: &str, name: &str, extra: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  storage: {{emptyDir: {{}}}}\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tenants_cannot_borrow_each_others_fleets_or_objects() {
    let c = Cluster::start();
    c.install_crds();
    for ns in ["team-a", "team-b"] {
        c.kubectl_ok(&["create", "namespace", ns]);
    }
    let hq = Registry::start().await;
    let mirror = Registry::start().await;
    let op = Operator::start_with(
        &c,
        &logs_dir(),
        &[
            "--registry-url",
            &format!("team-a/hq={}", hq.url()),
            "--receiver-url",
            "http://127.0.0.1:1/v1/events",
        ],
        &[],
    );
    let pusher = Pusher::new(&hq.url());
    let layer = registry::layer(&[("app/data.bin", &registry::pseudo_random(7, 4096))]);
    pusher
        .image("apps/web", Some("v1"), "amd64", &[layer], false)
        .await;

    // Tenancy: team-b names team-a's Registry.
    c.apply(&registry_yaml("team-a", "hq", ""));
    c.apply(&format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: borrow, namespace: team-b}}\nspec:\n  source: {{registryRef: {{name: hq, namespace: team-a}}}}\n  destinations:\n  - {{name: mirror, url: \"{}\", insecure: true}}\n",
        mirror.url()
    ));
    wait_for("Ready=False ReferenceNotAllowed", WAIT, || {
        condition(&c, "team-b", "replicationpolicy/borrow", "Ready") == "False/ReferenceNotAllowed"
    });
    let message = get(
        &c,
        "team-b",
        "replicationpolicy/borrow",
        r#"{.status.conditions[?(@.type=="Ready")].message}"#,
    );
    for part in [
        "spec.source.registryRef",
        "spec.replication.allowedNamespaces",
        "team-a/hq",
    ] {
        assert!(message.contains(part), "{part} not in {message:?}");
    }
    assert!(
        tags(&mirror.url(), "apps/web").is_empty(),
        "copied while refused"
    );
    assert!(
        get(
            &c,
            "team-b",
            "replicationpolicy/borrow",
            "{.status.lastSync}"
        )
        .is_empty(),
        "a sync ran while refused"
    );

    // team-a's owner allows team-b: the Registry's change re-triggers the policy.
    let allowed_at = std::time::Instant::now();
    c.apply(&registry_yaml(
        "team-a",
        "hq",
        "  replication: {allowedNamespaces: [team-b]}\n",
    ));
    wait_for("v1 copied to the mirror", WAIT, || {
        tags(&mirror.url(), "apps/web") == ["v1"]
    });
    wait_for("Ready=True", WAIT, || {
        condition(&c, "team-b", "replicationpolicy/borrow", "Ready").starts_with("True/")
    });
    println!(
        "allowed to in sync: {:.2}s",
        allowed_at.elapsed().as_secs_f64()
    );

    // Receiver tokens: valid while the Registry notifies, revoked when it stops or goes.
    wait_for("hq's notification token", WAIT, || {
        notification_token(&c, "team-a", "hq").is_some()
    });
    let hq_token = notification_token(&c, "team-a", "hq").expect("token");
    assert_eq!(post_events(&op, &hq_token), 200);
    c.apply(&registry_yaml(
        "team-a",
        "hq",
        "  notifications: false\n  replication: {allowedNamespaces: [team-b]}\n",
    ));
    wait_for(
        "hq's token refused once notifications are off",
        WAIT,
        || post_events(&op, &hq_token) == 401,
    );
    c.apply(&registry_yaml("team-a", "east", ""));
    wait_for("east's notification token", WAIT, || {
        notification_token(&c, "team-a", "east").is_some()
    });
    let east_token = notification_token(&c, "team-a", "east").expect("token");
    assert_eq!(post_events(&op, &east_token), 200);
    c.kubectl_ok(&["-n", "team-a", "delete", "registry/east", "--wait=false"]);
    wait_for("east's token refused once it is deleted", WAIT, || {
        post_events(&op, &east_token) == 401
    });

    // Ownership: a user's ConfigMap of the name a Registry would use is not taken over.
    c.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own-config, namespace: team-a}\ndata: {mine: \"yes\"}\n",
    );
    c.apply(&registry_yaml("team-a", "own", ""));
    wait_for("Ready=False ObjectNotOwned", WAIT, || {
        condition(&c, "team-a", "registry/own", "Ready") == "False/ObjectNotOwned"
    });
    let message = get(
        &c,
        "team-a",
        "registry/own",
        r#"{.status.conditions[?(@.type=="Ready")].message}"#,
    );
    assert!(
        message.contains("ConfigMap \"own-config\"") && message.contains("delete or rename"),
        "{message}"
    );
    assert!(
        get(
            &c,
            "team-a",
            "configmap/own-config",
            "{.metadata.ownerReferences}"
        )
        .is_empty(),
        "the user's ConfigMap got an owner"
    );
    assert_eq!(
        get(&c, "team-a", "configmap/own-config", "{.data.mine}"),
        "yes"
    );
    for obj in ["deployment/own", "service/own", "secret/own-generated"] {
        assert!(!exists(&c, "team-a", obj), "{obj} was created");
    }
    c.kubectl_ok(&["-n", "team-a", "delete", "configmap/own-config"]);
    wait_for("the Registry's own ConfigMap and Deployment", WAIT, || {
        exists(&c, "team-a", "deployment/own")
            && !get(
                &c,
                "team-a",
                "configmap/own-config",
                "{.metadata.ownerReferences}",
            )
            .is_empty()
    });
    let log = op.log();
    assert!(
        !log.contains(&hq_token) && !log.contains(&east_token),
        "a token in the log"
    );
}
