//! Access rules through Flotilla's token service, with the real `docker-registry`
//! (`auth: token`) and real clients (skopeo, crane) as oracles.
//!
//! The control plane is real; the registry pods are kwok-simulated, so the test plays the
//! kubelet: it starts the real `docker-registry` from the ConfigMap, environment and Secret
//! files the operator rendered, and `flotilla token-service` from the sidecar container's own
//! arguments and Secret volumes, adapting only addresses and paths (the token realm points at
//! `localhost:<local token port>` instead of `<name>.<namespace>.svc:5002`). When a mounted Secret
//! changes, the test rewrites the files as the kubelet's refresh would.

use crate::support::cluster;
use crate::support::registry;
use crate::support::registry_proc;
use crate::support::token_proc;
use crate::support::tools;

use std::process::{Command, Output};
use std::time::Duration;

use base64::Engine as _;
use cluster::{Cluster, Operator, wait_for};
use k8s_openapi::api::core::v1::Secret;
use token_proc::{Member, Realm};

const WAIT: Duration = Duration::from_secs(90);
const USERS: [(&str, &str); 4] = [
    ("alice", "alice-wonderland-7"),
    ("bob", "bob-builder-9"),
    ("root", "root-toor-3"),
    ("carol", "carol-singer-5"),
];

fn password(user: &str) -> &'static str {
    USERS.iter().find(|(u, _)| *u == user).expect("user").1
}

fn creds(user: &str) -> String {
    format!("{user}:{}", password(user))
}

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-access-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

fn string_secret(name: &str, key: &str, value: &str) -> String {
    let indented = value.replace('\n', "\n    ");
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData:\n  {key}: |\n    {indented}\n"
    )
}

fn htpasswd(users: &[&str]) -> String {
    users
        .iter()
        .map(|u| format!("{u}:{}\n", bcrypt::hash(password(u), 4).expect("bcrypt")))
        .collect()
}

const HQ_RULES: &str = r#"
    - {repositories: ["library/**"], anonymous: [pull]}
    - {repositories: ["team-a/**"], groups: [team-a], actions: [pull, push, delete]}
    - {repositories: ["team-b/**"], groups: [team-b], actions: [pull, push, delete]}"#;

fn registry_yaml(name: &str, rules: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {{name: {name}}}\nspec:\n  storage: {{emptyDir: {{}}}}\n  auth: {{htpasswd: {{secretRef: {{name: users, key: htpasswd}}}}}}\n  access:\n    tokenExpirySeconds: 30\n    groupsSecretRef: {{name: groups, key: groups}}\n    admins: {{users: [root]}}\n    rules:{rules}\n"
    )
}

/// A `kubernetes.io/tls` Secret of a fresh test CA; returns the CA certificate's path.
fn tls_secret(c: &Cluster, name: &str) -> std::path::PathBuf {
    let dir = logs_dir().join(name);
    std::fs::create_dir_all(&dir).expect("cert dir");
    let ca = registry::TestCa::new(&dir, "flotilla-access-test-ca");
    c.apply(&ca.tls_secret_yaml(name));
    ca.cert.clone()
}

fn checksum(c: &Cluster, name: &str) -> String {
    c.jsonpath(
        &format!("deployment/{name}"),
        "{.spec.template.metadata.annotations.flotilla\\.dev/config-checksum}",
    )
}

/// Starts what the kubelet would run for Registry `name`.
async fn run_pod(c: &Cluster, name: &str, port: u16) -> Member {
    token_proc::run_pod(c, name, port, logs_dir().join(name), Realm::InCluster).await
}

fn refresh(c: &Cluster, m: &Member) {
    m.token
        .refresh(&|n: &str| c.get_json::<Secret>(&format!("secret/{n}")));
}

fn run(cmd: &mut Command, what: &str) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("{what}: {e}: install skopeo (apt-get install skopeo) / build crane (e2e/build-tools.sh)"))
}

/// `skopeo copy` from the scratch registry, as `user` (or anonymous).
fn skopeo_push(from: &str, to: &str, user: Option<&str>) -> Output {
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ]);
    match user {
        Some(u) => cmd.args(["--dest-creds", &creds(u)]),
        None => cmd.arg("--dest-no-creds"),
    };
    run(
        cmd.arg(format!("docker://{from}"))
            .arg(format!("docker://{to}")),
        "skopeo",
    )
}

fn skopeo_inspect(image: &str, user: Option<&str>) -> Output {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    match user {
        Some(u) => cmd.args(["--creds", &creds(u)]),
        None => cmd.arg("--no-creds"),
    };
    run(cmd.arg(format!("docker://{image}")), "skopeo")
}

/// crane with a Docker config holding `user`'s credentials for `host` (or none).
fn crane(host: &str, user: Option<&str>, args: &[&str]) -> Output {
    let dir = logs_dir().join(format!("crane-{}", user.unwrap_or("anonymous")));
    std::fs::create_dir_all(&dir).expect("docker config dir");
    let auths = match user {
        Some(u) => serde_json::json!({host: {
            "auth": base64::engine::general_purpose::STANDARD.encode(creds(u))}}),
        None => serde_json::json!({}),
    };
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"auths": auths}).to_string(),
    )
    .expect("config.json");
    run(
        Command::new(tools::tool("crane"))
            .env("DOCKER_CONFIG", &dir)
            .args(args)
            .arg("--insecure"),
        "crane",
    )
}

fn ok(out: &Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}

fn refused(out: &Output, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "{what} must be refused");
    assert!(
        err.contains("unauthorized") || err.contains("denied") || err.contains("401"),
        "{what}: refused for the wrong reason: {err}"
    );
}

/// A token straight from the service: (status, body).
async fn token(url: &str, user: Option<&str>, scope: &str) -> (u16, serde_json::Value) {
    let mut req =
        reqwest::Client::new().get(format!("{url}/token?service=hq.default.svc&scope={scope}"));
    if let Some(u) = user {
        req = req.basic_auth(u, Some(password(u)));
    }
    let r = req.send().await.expect("token request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Status of a GET of a manifest with a bearer token (curl, the header from stdin, so the
/// token is not in a process listing).
fn bearer_get(url: &str, token: &str) -> u16 {
    use std::io::Write as _;
    let mut child = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "@-"])
        .args(["-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"])
        .arg(url)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("curl");
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "Authorization: Bearer {token}").expect("header");
    drop(stdin);
    let out = child.wait_with_output().expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

fn claims(jwt: &str) -> serde_json::Value {
    let part = jwt.split('.').nth(1).expect("claims part");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("b64url");
    serde_json::from_slice(&bytes).expect("claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn access_rules_anonymous_pull_teams_and_replication_through_the_token_service() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = Cluster::start();
    c.install_crds();
    // The schema refuses a rule that applies to nobody.
    let nobody = c.kubectl_stdin(
        &["apply", "-f", "-"],
        &registry_yaml(
            "nobody",
            "\n    - {repositories: [\"x/**\"], actions: [pull]}",
        ),
    );
    assert!(!nobody.status.success());
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("a rule applies to nobody"),
        "{}",
        String::from_utf8_lossy(&nobody.stderr)
    );

    let hq_port = registry_proc::free_port();
    let edge_port = std::iter::repeat_with(registry_proc::free_port)
        .find(|p| *p != hq_port)
        .expect("a second free port");
    let secure_port = std::iter::repeat_with(registry_proc::free_port)
        .find(|p| *p != hq_port && *p != edge_port)
        .expect("a third free port");
    let op = Operator::start_with(
        &c,
        &logs_dir(),
        &[
            "--registry-url",
            &format!("default/hq=http://127.0.0.1:{hq_port}"),
            "--registry-url",
            &format!("default/edge=http://127.0.0.1:{edge_port}"),
            "--registry-url",
            &format!("default/secure=https://127.0.0.1:{secure_port}"),
            "--token-service-image=ghcr.io/flotilla-dev/flotilla:test",
        ],
        &[],
    );
    c.apply(&string_secret(
        "users",
        "htpasswd",
        &htpasswd(&["alice", "bob", "root", "carol"]),
    ));
    c.apply(&string_secret(
        "groups",
        "groups",
        "team-a: alice carol\nteam-b: bob\n",
    ));
    // A glob the schema cannot judge: a condition names the rule.
    c.apply(&registry_yaml(
        "bad",
        "\n    - {repositories: [\"ok/**\"], anonymous: [pull]}\n    - {repositories: [\"a/[x\"], users: [alice], actions: [pull]}",
    ));
    c.apply(&registry_yaml("hq", HQ_RULES));
    c.apply(&registry_yaml(
        "edge",
        "\n    - {repositories: [\"imports/**\"], users: [alice], actions: [pull, push]}",
    ));
    // HTTPS: the registry and its token service serve the Registry's certificate.
    let ca = tls_secret(&c, "secure-tls");
    c.apply(&format!(
        "{}  tls: {{secretName: secure-tls}}\n",
        registry_yaml(
            "secure",
            "\n    - {repositories: [\"team-a/**\"], anonymous: [pull]}"
        )
    ));
    wait_for("the bad rule named in a condition", WAIT, || {
        c.jsonpath(
            "registry/bad",
            r#"{.status.conditions[?(@.type=="Ready")].message}"#,
        )
        .contains("spec.access.rules[1].repositories[0]")
    });
    for name in ["hq", "edge"] {
        wait_for(
            &format!("{name}'s access Secret and Deployment"),
            WAIT,
            || {
                c.secret_key(&format!("{name}-access"), "access.json")
                    .is_some()
                    && c.kubectl(&["get", &format!("deployment/{name}")])
                        .status
                        .success()
            },
        );
    }
    let hq = run_pod(&c, "hq", hq_port).await;
    let edge = run_pod(&c, "edge", edge_port).await;
    let secure = run_pod(&c, "secure", secure_port).await;
    let host = hq.registry.host.clone();

    // Content: library/base pushed by an admin, pulled by anyone.
    let scratch = registry::Registry::start().await;
    let pusher = registry::Pusher::new(&scratch.url());
    let layer = registry::layer(&[("data.bin", &registry::pseudo_random(3, 128 * 1024))]);
    let manifest = pusher
        .image("app", Some("v1"), "amd64", &[layer], false)
        .await;
    let src = format!("{}/app:v1", scratch.host());
    ok(
        &skopeo_push(&src, &format!("{host}/library/base:v1"), Some("root")),
        "root pushes library/base",
    );
    let anonymous = ok(
        &skopeo_inspect(&format!("{host}/library/base:v1"), None),
        "anonymous skopeo pull",
    );
    assert_eq!(anonymous, manifest);
    let by_crane = ok(
        &crane(
            &host,
            None,
            &["manifest", &format!("{host}/library/base:v1")],
        ),
        "anonymous crane pull",
    );
    assert_eq!(by_crane, manifest);
    refused(
        &skopeo_push(&src, &format!("{host}/library/other:v1"), None),
        "anonymous skopeo push",
    );
    refused(
        &crane(
            &host,
            None,
            &["copy", &src, &format!("{host}/library/other:v1")],
        ),
        "anonymous crane push",
    );
    refused(
        &crane(&host, None, &["catalog", &host]),
        "anonymous catalog",
    );
    refused(
        &crane(&host, Some("alice"), &["catalog", &host]),
        "a non-admin's catalog",
    );
    let catalog = ok(
        &crane(&host, Some("root"), &["catalog", &host]),
        "the admin's catalog",
    );
    assert_eq!(String::from_utf8_lossy(&catalog).trim(), "library/base");

    // Teams: each pushes its own prefix only; team A reads team B only once a rule says so.
    ok(
        &skopeo_push(&src, &format!("{host}/team-a/app:v1"), Some("alice")),
        "alice pushes team-a/app",
    );
    ok(
        &crane(
            &host,
            Some("carol"),
            &["copy", &src, &format!("{host}/team-a/tool:v1")],
        ),
        "carol (team-a) pushes by crane",
    );
    refused(
        &skopeo_push(&src, &format!("{host}/team-b/app:v1"), Some("alice")),
        "alice pushes team-b/app",
    );
    ok(
        &skopeo_push(&src, &format!("{host}/team-b/app:v1"), Some("bob")),
        "bob pushes team-b/app",
    );
    refused(
        &skopeo_inspect(&format!("{host}/team-b/app:v1"), Some("alice")),
        "alice pulls team-b/app without a rule",
    );
    refused(
        &skopeo_push(&src, &format!("{host}/library/base:v2"), Some("alice")),
        "alice pushes library/",
    );
    let before = checksum(&c, "hq");
    c.apply(&registry_yaml(
        "hq",
        &format!(
            "{HQ_RULES}\n    - {{repositories: [\"team-b/**\"], groups: [team-a], actions: [pull]}}"
        ),
    ));
    wait_for("the new rule in hq-access", WAIT, || {
        c.secret_key("hq-access", "access.json")
            .is_some_and(|b| String::from_utf8_lossy(&b).matches("team-b/**").count() == 2)
    });
    refresh(&c, &hq);
    wait_for("alice pulls team-b/app by the new rule", WAIT, || {
        skopeo_inspect(&format!("{host}/team-b/app:v1"), Some("alice"))
            .status
            .success()
    });
    refused(
        &crane(
            &host,
            Some("alice"),
            &["copy", &src, &format!("{host}/team-b/app:v2")],
        ),
        "alice pushes team-b/app (the new rule gives pull only)",
    );
    assert_eq!(
        checksum(&c, "hq"),
        before,
        "a rule change restarts no registry pod"
    );

    // A deleted user: new tokens refused at once, the old one's lifetime is the expiry.
    let (status, old) = token(&hq.token.url, Some("bob"), "repository:team-b/app:pull").await;
    assert_eq!(status, 200);
    let old_token = old["token"].as_str().expect("token").to_string();
    let cl = claims(&old_token);
    assert_eq!(old["expires_in"], 30);
    assert_eq!(
        cl["exp"].as_i64().expect("exp") - cl["iat"].as_i64().expect("iat"),
        30
    );
    assert_eq!(cl["access"][0]["actions"], serde_json::json!(["pull"]));
    c.apply(&string_secret(
        "users",
        "htpasswd",
        &htpasswd(&["alice", "root", "carol"]),
    ));
    wait_for("bob gone from hq-access", WAIT, || {
        c.secret_key("hq-access", "htpasswd")
            .is_some_and(|f| !String::from_utf8_lossy(&f).contains("bob:"))
    });
    refresh(&c, &hq);
    wait_for("bob's token requests refused", WAIT, || {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-u",
                &creds("bob"),
            ])
            .arg(format!(
                "{}/token?service=hq.default.svc&scope=repository:team-b/app:pull",
                hq.token.url
            ))
            .output()
            .expect("curl");
        out.stdout == b"401"
    });
    refused(
        &skopeo_inspect(&format!("{host}/team-b/app:v1"), Some("bob")),
        "deleted bob pulls",
    );
    let (wrong, _) = token(&hq.token.url, None, "repository:team-a/app:pull").await;
    assert_eq!(wrong, 200, "anonymous gets a token, with no access");
    // The token bob got before lives on until it expires (checked at the end).
    let old_exp = cl["exp"].as_i64().expect("exp");
    let bobs_url = format!("{}/v2/team-b/app/manifests/v1", hq.registry.url);
    assert_eq!(
        bearer_get(&bobs_url, &old_token),
        200,
        "an issued token is valid until it expires"
    );

    // Replication out of and into the fleet through registryRef, with the operator's account.
    ok(
        &skopeo_push(
            &src,
            &format!("{}/imports/tool:v1", edge.registry.host),
            Some("alice"),
        ),
        "alice pushes imports/tool at edge",
    );
    c.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {name: out}\nspec:\n  source: {registryRef: {name: hq}}\n  repositories: {include: [\"team-a/**\"]}\n  destinations:\n  - {name: edge, registryRef: {name: edge}}\n  - {name: secure, registryRef: {name: secure}}\n---\napiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {name: in}\nspec:\n  source: {registryRef: {name: edge}}\n  repositories: {include: [\"imports/**\"]}\n  destinations:\n  - {name: hq, registryRef: {name: hq}}\n",
    );
    for (p, n) in [("out", 2), ("in", 1)] {
        wait_for(&format!("policy {p} in sync"), WAIT, || {
            c.jsonpath(
                &format!("replicationpolicy/{p}"),
                r#"{.status.conditions[?(@.type=="Ready")].reason}/{.status.destinationsInSync}"#,
            ) == format!("InSync/{n}/{n}")
        });
    }
    // At the HTTPS fleet: an anonymous pull trusting only the test CA (registry and realm),
    // an anonymous push refused.
    let secure_host = secure.registry.host.clone();
    let pulled =
        registry::skopeo_raw_trusting(&logs_dir(), &ca, &format!("{secure_host}/team-a/app:v1"));
    assert_eq!(
        pulled, manifest,
        "replicated into the HTTPS fleet by registryRef"
    );
    refused(
        &skopeo_push(&src, &format!("{secure_host}/team-a/other:v1"), None),
        "anonymous push over HTTPS",
    );
    let out = ok(
        &skopeo_inspect(
            &format!("{}/team-a/app:v1", edge.registry.host),
            Some("root"),
        ),
        "team-a/app at edge",
    );
    assert_eq!(out, manifest);
    let into = ok(
        &skopeo_inspect(&format!("{host}/imports/tool:v1"), Some("root")),
        "imports/tool at hq",
    );
    assert_eq!(into, manifest);

    // A token-service restart: tokens issued before stay valid (the key is the Secret's).
    let (_, before_restart) =
        token(&hq.token.url, Some("alice"), "repository:team-a/app:pull").await;
    let kept = before_restart["token"].as_str().expect("token").to_string();
    let mut hq = hq;
    hq.token.restart();
    let manifest_url = format!("{}/v2/team-a/app/manifests/v1", hq.registry.url);
    assert_eq!(
        bearer_get(&manifest_url, &kept),
        200,
        "a token from before the restart"
    );
    let (_, after) = token(&hq.token.url, Some("alice"), "repository:team-a/app:pull").await;
    let fresh = after["token"].as_str().expect("token").to_string();
    assert_eq!(
        bearer_get(&manifest_url, &fresh),
        200,
        "a token from after the restart"
    );

    // Bob's old token: refused once expired (Distribution adds up to 60 s clock-skew leeway).
    let deadline = Duration::from_secs(u64::try_from(old_exp - unix_now() + 75).unwrap_or(0));
    let mut refused_at = 0;
    wait_for("bob's old token refused after its expiry", deadline, || {
        let status = bearer_get(&bobs_url, &old_token);
        refused_at = unix_now();
        status == 401
    });
    assert!(
        refused_at >= old_exp,
        "refused {}s before its expiry",
        old_exp - refused_at
    );
    eprintln!(
        "bob's old token refused {}s after its exp",
        refused_at - old_exp
    );

    // No password and no token in any log.
    let operator_password =
        String::from_utf8(c.secret_key("hq-generated", "password").expect("password"))
            .expect("utf-8");
    let logs = [
        ("hq token service", hq.token.log()),
        ("edge token service", edge.token.log()),
        ("secure token service", secure.token.log()),
        ("operator", op.log()),
    ];
    assert!(
        logs[0].1.contains("token issued"),
        "the service logs its grants: {}",
        logs[0].1
    );
    let secrets: Vec<String> = USERS
        .iter()
        .map(|(_, p)| p.to_string())
        .chain([operator_password, old_token, kept, fresh])
        .chain(
            USERS
                .iter()
                .map(|(u, _)| base64::engine::general_purpose::STANDARD.encode(creds(u))),
        )
        .collect();
    for (what, log) in &logs {
        for s in &secrets {
            assert!(
                !log.contains(s.as_str()),
                "a password or token leaked into the {what} log"
            );
        }
    }

    // A renewed certificate rolls the HTTPS fleet's pods (the registry and the token service
    // read it at start-up); a rule change did not (checked above).
    let before = checksum(&c, "secure");
    tls_secret(&c, "secure-tls");
    wait_for(
        "secure's pods rolled for the renewed certificate",
        WAIT,
        || {
            let now = checksum(&c, "secure");
            !now.is_empty() && now != before
        },
    );

    // Access rules removed: `edge-access` keeps neither rules nor users (the operator holds
    // no `delete` on Secrets; the Registry's deletion takes the empty Secret along).
    assert!(c.secret_key("edge-access", "htpasswd").is_some());
    c.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: edge}\nspec:\n  storage: {emptyDir: {}}\n  auth: {htpasswd: {secretRef: {name: users, key: htpasswd}}}\n",
    );
    wait_for("edge-access emptied", WAIT, || {
        c.secret_key("edge-access", "htpasswd").is_none()
            && c.secret_key("edge-access", "access.json").is_none()
    });
    assert!(
        c.kubectl(&["get", "secret/edge-access"]).status.success(),
        "emptied, not deleted"
    );
}
