//! The product as a cluster admin installs it, on a real node (`e2e/cluster.sh up DIR
//! --real-node`): `helm install` of charts/flotilla with the operator image built from the
//! binary under test (pulled by the node from its bootstrap registry). The operator pods become
//! Ready by their real probes, using in-cluster config and their ServiceAccount token; one holds
//! the leader Lease and says so on its metrics, reached through the metrics Service. Registry
//! pods post their push notifications to the receiver Service by its DNS name; a push to `dev`
//! reaches `mirror` pod to pod, and the lag is printed; it also reaches `secure`, a Registry
//! with htpasswd auth serving TLS with a private CA's certificate for its Service name, which
//! the operator pod reaches by that name with its own account and the CA of the TLS Secret
//! (both mounted into the registry pod as Secret volumes). `secure` also has access rules, so
//! its pods run the token service as a sidecar (the operator's own image): the registry sends
//! clients there, the operator's copy and an anonymous pull go through it, and an anonymous
//! push or catalog is not granted. `secure` has an Ingress too, for a host nothing serves: its
//! challenges send clients to that external URL, and the operator pod still copies into it,
//! authorizing through the Service's token port. `helm uninstall` leaves the custom resources, the registry
//! pods and the S3 data alone.
//!
//! Needs root and what `.ci/run` installs, plus the binaries of `e2e/build-tools.sh` (helm
//! among them); a missing piece fails the test with a message naming it.

use crate::support::cluster;
use crate::support::packaging;
use crate::support::real_node;
use crate::support::registry;
use crate::support::s3;

use std::time::{Duration, Instant};

use cluster::{Cluster, wait_for};

const NS: &str = "flotilla-system";
const OPERATOR: &str = "app.kubernetes.io/name=flotilla";
const READY: Duration = Duration::from_secs(180);
const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

fn helm(c: &Cluster, args: &[&str]) -> String {
    let kubeconfig = c.kubeconfig();
    let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    packaging::run_ok(&packaging::tool("helm"), &all)
}

fn ns_jsonpath(c: &Cluster, ns: &str, object: &str, path: &str) -> String {
    let out = c.kubectl(&["get", object, "-n", ns, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The manifest digest `url` (`http://HOST:PORT/v2/REPO/manifests/REF`) answers with, if any.
async fn manifest_digest(http: &reqwest::Client, url: &str) -> Option<String> {
    let r = http
        .head(url)
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The first image of an e2e/node-images.sh layout: its tag and manifest digest.
fn layout_image(dir: &std::path::Path) -> (String, String) {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    let desc = &index["manifests"][0];
    (
        desc["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .expect("tag")
            .to_string(),
        desc["digest"].as_str().expect("digest").to_string(),
    )
}

/// The operator's own metrics, from each operator pod's address: (pod, text).
async fn operator_metrics(
    http: &reqwest::Client,
    pods: &[real_node::Pod],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in pods {
        let text = http
            .get(format!("http://{}:8080/metrics", p.ip))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .unwrap_or_else(|e| panic!("metrics of operator pod {}: {e}", p.name))
            .text()
            .await
            .expect("metrics body");
        out.push((p.name.clone(), text));
    }
    out
}

/// Installs the chart with the operator image of the binary under test; returns the Ready
/// operator pods and how long that took.
async fn install_operator(c: &Cluster) -> (Vec<real_node::Pod>, Duration) {
    // The operator image of the binary under test, in the node's bootstrap registry.
    let image = c.operator_image();
    let (repository, tag) = image.rsplit_once(':').expect("image reference has a tag");
    let chart = cluster::root().join("charts/flotilla");
    let t_install = Instant::now();
    helm(
        c,
        &[
            "install",
            "flotilla",
            chart.to_str().expect("utf-8 path"),
            "--namespace",
            NS,
            "--create-namespace",
            "--set",
            &format!("image.repository={repository}"),
            "--set",
            &format!("image.tag={tag}"),
            "--set",
            "operator.logFormat=text",
        ],
    );
    let operators = real_node::await_ready_pods(c, NS, OPERATOR, 2, READY).await;
    let operator_ready = t_install.elapsed();
    let pulled = c.kubectl_ok(&[
        "get",
        "events",
        "-n",
        NS,
        "--field-selector",
        "reason=Pulled",
    ]);
    assert!(
        pulled.contains(&image),
        "the operator image {image} was not pulled by the node: {pulled}"
    );

    (operators, operator_ready)
}

/// One operator pod holds the Lease and says so on its metrics; the metrics Service answers.
async fn check_leader_and_metrics(
    c: &Cluster,
    http: &reqwest::Client,
    operators: &[real_node::Pod],
) {
    // Leader election on the Lease, visible on exactly one pod's metrics.
    let names: Vec<&str> = operators.iter().map(|p| p.name.as_str()).collect();
    wait_for(
        "a leader in Lease flotilla-leader",
        Duration::from_secs(60),
        || {
            let holder = ns_jsonpath(c, NS, "lease/flotilla-leader", "{.spec.holderIdentity}");
            names.contains(&holder.as_str())
        },
    );
    let metrics_ip = ns_jsonpath(c, NS, "service/flotilla-metrics", "{.spec.clusterIP}");
    let through_service = format!("http://{metrics_ip}:8080/metrics");
    real_node::await_answer(http, &through_service, Duration::from_secs(60)).await;
    let text = http
        .get(&through_service)
        .send()
        .await
        .expect("metrics through the Service")
        .text()
        .await
        .expect("metrics body");
    assert!(
        text.contains("flotilla_leader"),
        "service/flotilla-metrics serves no operator metrics: {text}"
    );
    let leaders: Vec<String> = operator_metrics(http, operators)
        .await
        .into_iter()
        .filter(|(_, m)| m.lines().any(|l| l.trim() == "flotilla_leader 1"))
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        leaders.len(),
        1,
        "pods reporting flotilla_leader 1: {leaders:?}"
    );
}

/// The quickstart's fleets on the node: returns the registry image and dev's pods.
async fn apply_fleets(c: &Cluster, minio: &s3::Minio) -> (String, Vec<real_node::Pod>) {
    // The quickstart's fleets (dev on S3 with 2 pods, mirror on emptyDir) and its policy.
    let registry_image = real_node::registry_image(c);
    c.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: s3-creds}}
stringData: {{accessKey: {}, secretKey: {}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {{name: dev}}
spec:
  replicas: 2
  image: {img}
  storage:
    s3: {{bucket: dev, region: {}, endpoint: {}, forcePathStyle: true, credentialsSecretRef: {{name: s3-creds}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {{name: mirror}}
spec:
  replicas: 1
  image: {img}
  storage: {{emptyDir: {{}}}}
"#,
        s3::ACCESS_KEY,
        s3::SECRET_KEY,
        s3::REGION,
        minio.endpoint,
        img = registry_image
    ));
    let dev = real_node::await_ready_pods(
        c,
        "default",
        "app.kubernetes.io/name=registry,app.kubernetes.io/instance=dev",
        2,
        READY,
    )
    .await;
    real_node::await_ready_pods(
        c,
        "default",
        "app.kubernetes.io/name=registry,app.kubernetes.io/instance=mirror",
        1,
        READY,
    )
    .await;
    (registry_image, dev)
}

/// `secure` and the policy dev-to-secure; returns an HTTPS client that reaches secure by its
/// Service name and trusts its CA.
async fn apply_secure(c: &Cluster, registry_image: &str) -> reqwest::Client {
    // `secure`: htpasswd auth, TLS with a private CA's certificate for its Service name.
    let certs = c.dir().join("secure-certs");
    std::fs::create_dir_all(&certs).expect("cert dir");
    let ca = registry::TestCa::new(&certs, "flotilla-operator-pod-test-ca");
    let (crt, key) = ca.server_cert_for("secure", "DNS:secure.default.svc");
    let b64 = |f: &std::path::Path| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(f).expect("pem"))
    };
    let users = format!("{USER}:{}", bcrypt::hash(PASSWORD, 4).expect("bcrypt"));
    c.apply(&format!(
        r#"apiVersion: v1
kind: Secret
metadata: {{name: secure-tls}}
type: kubernetes.io/tls
data: {{tls.crt: {}, tls.key: {}, ca.crt: {}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: users}}
data: {{htpasswd: {}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {{name: secure}}
spec:
  replicas: 1
  image: {}
  storage: {{emptyDir: {{}}}}
  tls: {{secretName: secure-tls}}
  auth: {{htpasswd: {{secretRef: {{name: users, key: htpasswd}}}}}}
  access:
    rules:
    - {{repositories: ["demo/**"], anonymous: [pull]}}
  ingress: {{host: {SECURE_EXTERNAL_HOST}, tls: {{secretName: secure-tls}}}}
---
apiVersion: flotilla.dev/v1alpha1
kind: ReplicationPolicy
metadata: {{name: dev-to-secure}}
spec:
  source: {{registryRef: {{name: dev}}}}
  destinations:
  - {{name: secure, registryRef: {{name: secure}}}}
  trigger: {{onPush: true}}
"#,
        b64(&crt),
        b64(&key),
        b64(&ca.cert),
        {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("{users}\n"))
        },
        registry_image
    ));
    real_node::await_ready_pods(
        c,
        "default",
        "app.kubernetes.io/name=registry,app.kubernetes.io/instance=secure",
        1,
        READY,
    )
    .await;
    wait_for(
        "policy dev-to-secure Ready",
        Duration::from_secs(120),
        || {
            c.jsonpath(
                "replicationpolicy/dev-to-secure",
                r#"{.status.conditions[?(@.type=="Ready")].status}"#,
            ) == "True"
        },
    );
    let secure_ip = c.jsonpath("service/secure", "{.spec.clusterIP}");
    // The host has no cluster DNS: the Service name is pinned to its address, the CA trusted.
    let secure_http = reqwest::Client::builder()
        .resolve(
            "secure.default.svc",
            format!("{secure_ip}:5000").parse().expect("socket address"),
        )
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(&ca.cert).expect("CA")).expect("CA PEM"),
        )
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("HTTPS client");
    let secure_v2 = "https://secure.default.svc:5000/v2/";
    real_node::await_answer(&secure_http, secure_v2, Duration::from_secs(60)).await;
    let anonymous = secure_http
        .get(secure_v2)
        .send()
        .await
        .expect("GET /v2/ of secure");
    assert_eq!(
        anonymous.status().as_u16(),
        401,
        "secure asks for credentials"
    );
    let challenge = anonymous
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // Outside clients are sent to the external URL; nothing in the test cluster serves that
    // host, so the operator's copy below shows it authorizes through the Service instead.
    let external_realm = format!("https://{SECURE_EXTERNAL_HOST}/token");
    assert!(
        challenge.starts_with(&format!("Bearer realm=\"{external_realm}\"")),
        "secure sends clients to its token service at its external URL, got {challenge:?}"
    );
    assert_eq!(
        c.jsonpath("registry/secure", "{.status.externalURL}"),
        format!("https://{SECURE_EXTERNAL_HOST}")
    );
    let pod = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app.kubernetes.io/instance=secure",
        "-o",
        "jsonpath={range .items[0].status.containerStatuses[*]}{.name}={.ready} {end}",
    ]);
    assert!(
        pod.contains("token-service=true") && pod.contains("registry=true"),
        "the token service runs ready beside the registry: {pod}"
    );
    // The rules: anonymous clients may pull demo/**, nothing else.
    let push = granted(&secure_http, "repository:demo/hello:pull,push").await;
    assert_eq!(
        push,
        vec!["pull".to_string()],
        "anonymous push is not granted"
    );
    let catalog = granted(&secure_http, "registry:catalog:*").await;
    assert!(
        catalog.is_empty(),
        "anonymous catalog is not granted: {catalog:?}"
    );
    secure_http
}

/// Realm of `secure`'s token service as clients in the cluster reach it: its Service name, on
/// the token port, over TLS.
const SECURE_REALM: &str = "https://secure.default.svc:5002/token";
/// `secure`'s Ingress host, which nothing serves here (`.invalid` never resolves).
const SECURE_EXTERNAL_HOST: &str = "registry.secure.invalid";

/// An anonymous token of `secure`'s token service for `scope`.
async fn anonymous_token(http: &reqwest::Client, scope: &str) -> String {
    let url = url::Url::parse_with_params(
        SECURE_REALM,
        &[("service", "secure.default.svc"), ("scope", scope)],
    )
    .expect("token URL");
    let r = http.get(url).send().await.expect("GET the token service");
    assert!(
        r.status().is_success(),
        "token service answered {}",
        r.status()
    );
    let body: serde_json::Value = r.json().await.expect("token JSON");
    body["token"].as_str().expect("a token").to_string()
}

/// The actions an anonymous token for `scope` grants (of its first access entry).
async fn granted(http: &reqwest::Client, scope: &str) -> Vec<String> {
    use base64::Engine as _;
    let jwt = anonymous_token(http, scope).await;
    let payload = jwt.split('.').nth(1).expect("JWT payload");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("claims");
    claims["access"][0]["actions"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `helm uninstall`: the operator goes; CRDs, custom resources, dev's pods, its bucket and
/// mirror's copy stay.
async fn uninstall_keeps_fleets(
    c: &Cluster,
    minio: &s3::Minio,
    http: &reqwest::Client,
    dev: &[real_node::Pod],
    at_mirror: &str,
    digest: &str,
) {
    // helm uninstall: the operator goes, the fleets and their data stay.
    let objects_before = minio.list("dev", "").await;
    assert!(
        objects_before.contains("demo/hello"),
        "dev's bucket holds no demo/hello: {objects_before}"
    );
    helm(
        c,
        &[
            "uninstall",
            "flotilla",
            "--namespace",
            NS,
            "--wait",
            "--timeout",
            "120s",
        ],
    );
    wait_for("operator pods gone", READY, || {
        real_node::pods(c, NS, OPERATOR).is_empty()
    });
    let crds = c.kubectl_ok(&["get", "crd", "-o", "name"]);
    assert!(
        crds.contains("registries.flotilla.dev")
            && crds.contains("replicationpolicies.flotilla.dev"),
        "helm uninstall removed a CRD: {crds}"
    );
    c.kubectl_ok(&[
        "get",
        "registry/dev",
        "registry/mirror",
        "replicationpolicy/dev-to-mirror",
    ]);
    let dev_after = real_node::pods(
        c,
        "default",
        "app.kubernetes.io/name=registry,app.kubernetes.io/instance=dev",
    );
    assert_eq!(
        dev_after
            .iter()
            .map(|p| (&p.name, p.ready))
            .collect::<Vec<_>>(),
        dev.iter().map(|p| (&p.name, true)).collect::<Vec<_>>(),
        "dev's pods changed with helm uninstall"
    );
    assert_eq!(
        minio.list("dev", "").await,
        objects_before,
        "dev's bucket changed with helm uninstall"
    );
    assert_eq!(
        manifest_digest(http, at_mirror).await.as_deref(),
        Some(digest),
        "mirror no longer serves demo/hello:v1 after helm uninstall"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn helm_installed_operator_pod_replicates_a_push_pod_to_pod_and_uninstall_keeps_the_data() {
    let t0 = Instant::now();
    let c = Cluster::start_real_node();
    let env = real_node::node_env(c.dir());
    let minio = s3::Minio::start_on(&env["NODE_HOST_IP"]).await;
    minio.create_bucket("dev").await;

    let (operators, operator_ready) = install_operator(&c).await;
    let http = real_node::http();
    check_leader_and_metrics(&c, &http, &operators).await;
    let (registry_image, dev) = apply_fleets(&c, &minio).await;
    let secure_http = apply_secure(&c, &registry_image).await;
    c.kubectl_ok(&[
        "apply",
        "-f",
        cluster::root()
            .join("examples/quickstart/policy.yaml")
            .to_str()
            .expect("utf-8 path"),
    ]);
    wait_for(
        "policy dev-to-mirror Ready",
        Duration::from_secs(120),
        || {
            c.jsonpath(
                "replicationpolicy/dev-to-mirror",
                r#"{.status.conditions[?(@.type=="Ready")].status}"#,
            ) == "True"
        },
    );
    let dev_ip = c.jsonpath("service/dev", "{.spec.clusterIP}");
    let mirror_ip = c.jsonpath("service/mirror", "{.spec.clusterIP}");
    real_node::await_answer(
        &http,
        &format!("http://{dev_ip}:5000/v2/"),
        Duration::from_secs(60),
    )
    .await;
    real_node::await_answer(
        &http,
        &format!("http://{mirror_ip}:5000/v2/"),
        Duration::from_secs(60),
    )
    .await;

    // A push to dev through its Service; only dev's notification (the policy's schedule is
    // every 30 minutes) can bring it to mirror within the wait.
    let layout = c.dir().join("images/pause");
    let (layout_tag, digest) = layout_image(&layout);
    let pushed = Instant::now();
    packaging::run_ok(
        std::path::Path::new(env!("CARGO_BIN_EXE_flotilla")),
        &[
            "copy",
            "--progress",
            "never",
            "--dest-insecure",
            &format!("oci:{}:{layout_tag}", layout.display()),
            &format!("http://{dev_ip}:5000/demo/hello:v1"),
        ],
    );
    let pushed_in = pushed.elapsed();
    let at_mirror = format!("http://{mirror_ip}:5000/v2/demo/hello/manifests/v1");
    let deadline = Instant::now() + Duration::from_secs(60);
    while manifest_digest(&http, &at_mirror).await.as_deref() != Some(digest.as_str()) {
        assert!(
            Instant::now() < deadline,
            "demo/hello:v1 did not reach mirror within 60 s of the push; operator logs:\n{}",
            c.kubectl_ok(&["logs", "-n", NS, "-l", OPERATOR, "--tail=40"])
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lag = pushed.elapsed() - pushed_in;
    let at_secure = "https://secure.default.svc:5000/v2/demo/hello/manifests/v1";
    // An anonymous pull, with a token of the token service (the rules allow it).
    let pull = anonymous_token(&secure_http, "repository:demo/hello:pull").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = secure_http
            .head(at_secure)
            .bearer_auth(&pull)
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await;
        let got = r.ok().filter(|r| r.status().is_success()).and_then(|r| {
            r.headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
        if got.as_deref() == Some(digest.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "demo/hello:v1 did not reach secure (TLS, htpasswd, token service) within 60 s; operator logs:\n{}",
            c.kubectl_ok(&["logs", "-n", NS, "-l", OPERATOR, "--tail=40"])
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut status_lag = String::new();
    wait_for(
        "status.destinations[0].lastPushLagMillis",
        Duration::from_secs(30),
        || {
            status_lag = c.jsonpath(
                "replicationpolicy/dev-to-mirror",
                "{.status.destinations[0].lastPushLagMillis}",
            );
            !status_lag.is_empty()
        },
    );

    uninstall_keeps_fleets(&c, &minio, &http, &dev, &at_mirror, &digest).await;

    eprintln!(
        "operator pod: helm install to 2 Ready operator pods {:.1}s; push to dev through its Service {:.2}s, \
         then at mirror after {:.2}s (seen from the host, polled every 50 ms; status lastPushLagMillis {status_lag}); \
         total {:.1}s",
        operator_ready.as_secs_f64(),
        pushed_in.as_secs_f64(),
        lag.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}
