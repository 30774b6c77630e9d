//! A local fleet with htpasswd auth (one member also serving TLS with a private CA's
//! certificate), replicated by `registryRef` alone: the operator creates its own account at
//! each Registry and trusts their certificates, with no hand-made Secret in the policy.
//!
//! The control plane is real; the registry pods are kwok-simulated, so the test plays the
//! kubelet: it starts the real `docker-registry` with the ConfigMap, the environment and the
//! Secret files of the Deployment the operator wrote, on ports the operator was told to use for
//! those Registries (`--registry-url`, as for an operator running outside the cluster).

use crate::support::cluster;
use crate::support::registry;
use crate::support::registry_proc;

use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::PodSpec;
use registry_proc::RegistryProc;

const WAIT: Duration = Duration::from_secs(90);
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-fleet-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

fn users_secret(htpasswd: &str) -> String {
    let indented = htpasswd.replace('\n', "\n    ");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: users}}\nstringData:\n  htpasswd: |\n    {indented}\n"
    )
}

fn registry_yaml(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {{name: {name}}}\nspec:\n  storage: {{emptyDir: {{}}}}\n  auth: {{htpasswd: {{secretRef: {{name: users, key: htpasswd}}}}}}\n{extra}"
    )
}

/// A `kubernetes.io/tls` Secret `name` of a fresh test CA.
fn tls_secret(c: &Cluster, name: &str) {
    let dir = logs_dir().join(name);
    std::fs::create_dir_all(&dir).expect("cert dir");
    let ca = registry::TestCa::new(&dir, "flotilla-fleet-test-ca");
    c.apply(&ca.tls_secret_yaml(name));
}

/// Starts what the kubelet would run for Registry `name`: its ConfigMap's `config.yml`, the
/// container environment and the Secret volumes' files, serving on `port`.
async fn run_pod(c: &Cluster, name: &str, port: u16) -> RegistryProc {
    let deployment: Deployment = c.get_json(&format!("deployment/{name}"));
    let pod: PodSpec = deployment.spec.template.spec.expect("pod template");
    let secrets = registry_proc::pod_secrets(&pod, &|s| c.get_json(&format!("secret/{s}")));
    let config = c.jsonpath(&format!("configmap/{name}-config"), "{.data.config\\.yml}");
    let env = registry_proc::pod_env(&pod, &secrets);
    let files = registry_proc::secret_files(&pod, &secrets);
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    RegistryProc::start_on(port, name, &config, &env, &files).await
}

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = std::process::Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo not found: install it (apt-get install skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn status_code(url: &str, user: Option<(&str, &str)>) -> String {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sk", "-o", "/dev/null", "-w", "%{http_code}"]);
    if let Some((u, p)) = user {
        cmd.args(["-u", &format!("{u}:{p}")]);
    }
    let out = cmd.arg(url).output().expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registry_refs_with_htpasswd_auth_use_the_operators_own_account() {
    let c = Cluster::start();
    c.install_crds();
    let hq_port = registry_proc::free_port();
    let edge_port = std::iter::repeat_with(registry_proc::free_port)
        .find(|p| *p != hq_port)
        .expect("a second free port");
    let hq_url = format!("http://127.0.0.1:{hq_port}");
    // Edge serves HTTPS with a certificate of a private CA: the operator must trust it by itself.
    let edge_url = format!("https://127.0.0.1:{edge_port}");
    let op = Operator::start_with(
        &c,
        &logs_dir(),
        &[
            "--registry-url",
            &format!("default/hq={hq_url}"),
            "--registry-url",
            &format!("default/edge={edge_url}"),
        ],
        &[],
    );
    let users = format!("{USER}:{}\n", bcrypt::hash(PASSWORD, 4).expect("bcrypt"));
    c.apply(&users_secret(&users));
    tls_secret(&c, "edge-tls");
    c.apply(&registry_yaml("hq", ""));
    c.apply(&registry_yaml("edge", "  tls: {secretName: edge-tls}\n"));
    for name in ["hq", "edge"] {
        wait_for(&format!("{name}'s generated htpasswd"), WAIT, || {
            c.secret_key(&format!("{name}-generated"), "htpasswd")
                .is_some()
        });
    }
    let account_user = c.secret_key("hq-generated", "username").expect("username");
    let account_password = c.secret_key("hq-generated", "password").expect("password");
    let account = (
        String::from_utf8(account_user).expect("utf-8"),
        String::from_utf8(account_password).expect("utf-8"),
    );
    assert_eq!(account.0, "flotilla-operator");
    let htpasswd =
        String::from_utf8(c.secret_key("hq-generated", "htpasswd").expect("file")).expect("utf-8");
    assert!(
        htpasswd.starts_with(&users) && htpasswd.contains("\nflotilla-operator:$2"),
        "the pods' htpasswd is the user's entries plus the operator's: {htpasswd}"
    );

    // The kubelet's part: both registries run exactly what the operator configured.
    let hq = run_pod(&c, "hq", hq_port).await;
    let edge = run_pod(&c, "edge", edge_port).await;
    for base in [&hq_url, &edge_url] {
        let v2 = format!("{base}/v2/");
        assert_eq!(status_code(&v2, None), "401", "auth is on at {base}");
        assert_eq!(status_code(&v2, Some((USER, PASSWORD))), "200");
    }

    // Content pushed to HQ by the user, then a policy naming both Registries by reference only.
    let scratch = registry::Registry::start().await;
    let pusher = registry::Pusher::new(&scratch.url());
    let layer = registry::layer(&[("app/data.bin", &registry::pseudo_random(7, 256 * 1024))]);
    let manifest = pusher
        .image("team/app", Some("v1"), "amd64", &[layer], false)
        .await;
    let creds = format!("{USER}:{PASSWORD}");
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--dest-creds",
        &creds,
        &format!("docker://{}/team/app:v1", scratch.host()),
        &format!("docker://{}/team/app:v1", hq.host),
    ]);
    c.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {name: to-edge}\nspec:\n  source: {registryRef: {name: hq}}\n  destinations:\n  - {name: edge, registryRef: {name: edge}}\n",
    );
    wait_for("the policy in sync", WAIT, || {
        c.jsonpath(
            "replicationpolicy/to-edge",
            r#"{.status.conditions[?(@.type=="Ready")].reason}/{.status.destinationsInSync}"#,
        ) == "InSync/1/1"
    });
    let copied = registry::skopeo_raw_as(&creds, &format!("{}/team/app:v1", edge.host));
    assert_eq!(copied, manifest, "edge holds HQ's manifest, byte for byte");

    // The account's password appears nowhere but in the generated Secrets.
    let status = c.kubectl_ok(&["get", "replicationpolicy/to-edge", "-o", "yaml"]);
    let events = c.kubectl_ok(&["get", "events", "-o", "yaml"]);
    let configs = c.kubectl_ok(&["get", "configmaps", "-o", "yaml"]);
    for (what, text) in [
        ("policy", status),
        ("events", events),
        ("configmaps", configs),
        ("operator log", op.log()),
    ] {
        assert!(
            !text.contains(&account.1),
            "the operator's password leaked into the {what}"
        );
    }

    // A user edit of the htpasswd Secret reaches the pods' file; the operator's line and
    // password stay (no needless rollout, no broken replication).
    let operator_line = |file: &str| {
        file.lines()
            .find(|l| l.starts_with("flotilla-operator:"))
            .map(str::to_string)
    };
    let before = operator_line(&htpasswd);
    let more_users = format!(
        "{users}bob:{}\n",
        bcrypt::hash("builder", 4).expect("bcrypt")
    );
    c.apply(&users_secret(&more_users));
    wait_for("bob in the generated htpasswd", WAIT, || {
        c.secret_key("hq-generated", "htpasswd")
            .is_some_and(|f| String::from_utf8_lossy(&f).contains("\nbob:"))
    });
    let after =
        String::from_utf8(c.secret_key("hq-generated", "htpasswd").expect("file")).expect("utf-8");
    assert_eq!(operator_line(&after), before);
    assert_eq!(
        c.secret_key("hq-generated", "password"),
        Some(account.1.into_bytes())
    );
}
