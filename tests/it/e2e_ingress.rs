//! `Registry.spec.ingress` with real parts: the operator applies the Ingress to a real
//! kube-apiserver (which accepts it), and Debian's nginx, configured from that very Ingress
//! (its ingress-nginx annotations translated to nginx directives, its paths to locations),
//! proxies a 200 MB layer to the real `docker-registry` with `auth: token` and Flotilla's
//! token service, which the registry's realm sends clients to through the proxy.
//!
//! `spec.httpRoute`: a condition while the Gateway API CRDs are absent, the HTTPRoute accepted
//! by the API server once they are installed (from e2e/build-tools.sh's cache).
//!
//! As in e2e_access, the registry pods are kwok-simulated and the test plays the kubelet
//! (support/token_proc.rs); here the rendered realm is kept as rendered: it is the external
//! URL, the proxy.

use crate::support::cluster;
use crate::support::nginx;
use crate::support::registry;
use crate::support::registry_proc;
use crate::support::token_proc;
use crate::support::tools;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use cluster::{Cluster, Operator, wait_for};
use k8s_openapi::api::networking::v1::Ingress;
use sha2::{Digest, Sha256};

const WAIT: Duration = Duration::from_secs(90);
const PASSWORD: &str = "alice-wonderland-7";
/// The layer pushed through the proxy: 200 MiB of a seeded pseudo-random stream, as a tar.
const LAYER_BYTES: usize = 200 << 20;

fn dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("flotilla-e2e-ingress-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("test dir");
    d
}

fn run(cmd: &mut Command, what: &str) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}: install skopeo (apt-get install skopeo)"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn hq_yaml(external: &str) -> String {
    format!(
        r#"apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {{name: hq}}
spec:
  storage: {{emptyDir: {{}}}}
  externalURL: "{external}"
  auth: {{htpasswd: {{secretRef: {{name: users, key: htpasswd}}}}}}
  access:
    rules:
    - {{repositories: ["team-a/**"], users: [alice], actions: [pull, push]}}
  ingress:
    host: registry.example.test
    className: nginx
    tls: {{certManager: {{clusterIssuer: letsencrypt}}}}
    annotations: {{example.com/team: a}}
"#
    )
}

const PLAIN: &str = r#"apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {name: plain}
spec:
  storage: {emptyDir: {}}
  ingress: {host: plain.example.test, tls: {secretName: plain-tls}}
"#;

/// An OCI layout holding one image `v1` whose only layer is `layer`; returns the layer's and
/// the manifest's digests.
fn oci_layout(dir: &Path, layer: &[u8]) -> (String, String) {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("layout dir");
    let put = |bytes: &[u8]| -> String {
        let digest = registry::sha256(bytes);
        std::fs::write(blobs.join(&digest["sha256:".len()..]), bytes).expect("blob");
        digest
    };
    let layer_digest = put(layer);
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]}})
    .to_string();
    let config_digest = put(config.as_bytes());
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}]})
    .to_string();
    let manifest_digest = put(manifest.as_bytes());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest.len(),
        "annotations": {"org.opencontainers.image.ref.name": "v1"}}]});
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).expect("layout");
    (layer_digest, manifest_digest)
}

fn file_digest(path: &Path) -> (String, u64) {
    use std::io::Read as _;
    let mut f = std::fs::File::open(path).expect("open blob");
    let (mut h, mut n, mut buf) = (Sha256::new(), 0u64, vec![0u8; 1 << 20]);
    loop {
        let got = f.read(&mut buf).expect("read blob");
        if got == 0 {
            return (format!("sha256:{}", hex::encode(h.finalize())), n);
        }
        h.update(&buf[..got]);
        n += got as u64;
    }
}

/// A token for `scope` from the token service, as alice.
async fn token(url: &str, scope: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("{url}/token?service=hq.default.svc&scope={scope}"))
        .basic_auth("alice", Some(PASSWORD))
        .send()
        .await
        .expect("token request");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("token json");
    v["token"].as_str().expect("token").to_string()
}

/// The schema refuses a host that is no DNS name and a TLS with two sources.
fn schema_refusals(c: &Cluster) {
    for (spec, expected) in [
        ("{host: Bad_Host.example}", "spec.ingress.host"),
        (
            "{host: ok.example, tls: {secretName: mine, certManager: {issuer: ca}}}",
            "set exactly one of spec.ingress.tls.secretName",
        ),
    ] {
        let out = c.kubectl_stdin(
            &["apply", "-f", "-"],
            &format!("apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {{name: bad}}\nspec:\n  storage: {{emptyDir: {{}}}}\n  ingress: {spec}\n"),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(expected),
            "{spec}: {err}"
        );
    }
}

/// Removes the field at JSON pointer `path` from `resource`.
fn remove_field(c: &Cluster, resource: &str, path: &str) {
    let patch = serde_json::json!([{"op": "remove", "path": path}]).to_string();
    c.kubectl_ok(&["patch", resource, "--type=json", "-p", &patch]);
}

/// The Ingress of Registry `plain` as the API server holds it, its external URL, and its
/// deletion once `spec.ingress` goes.
fn plain_ingress_follows_the_spec(c: &Cluster) {
    wait_for("Ingress plain and its external URL", WAIT, || {
        c.jsonpath("registry/plain", "{.status.externalURL}") == "https://plain.example.test"
            && c.kubectl(&["get", "ingress/plain"]).status.success()
    });
    let i: Ingress = c.get_json("ingress/plain");
    let spec = i.spec.expect("spec");
    let tls = &spec.tls.expect("tls")[0];
    assert_eq!(tls.secret_name.as_deref(), Some("plain-tls"));
    let paths = &spec.rules.expect("rules")[0]
        .http
        .clone()
        .expect("http")
        .paths;
    assert_eq!(paths.len(), 1, "no token path without spec.access");
    let a = i.metadata.annotations.unwrap_or_default();
    assert!(!a.contains_key("nginx.ingress.kubernetes.io/backend-protocol"));
    remove_field(c, "registry/plain", "/spec/ingress");
    wait_for("Ingress plain deleted, no external URL", WAIT, || {
        !c.kubectl(&["get", "ingress/plain"]).status.success()
            && c.jsonpath("registry/plain", "{.status.externalURL}")
                .is_empty()
    });
}

const ROUTED: &str = r#"apiVersion: flotilla.dev/v1alpha1
kind: Registry
metadata: {name: routed}
spec:
  storage: {emptyDir: {}}
  externalURL: https://routed.example.test
  auth: {htpasswd: {secretRef: {name: users, key: htpasswd}}}
  access:
    rules:
    - {repositories: ["team-a/**"], users: [alice], actions: [pull, push]}
  httpRoute:
    parentRefs: [{name: gateway, namespace: infra, sectionName: https}]
    hostnames: [routed.example.test]
"#;

/// `spec.httpRoute` without the Gateway API CRDs: a condition, nothing applied; with them
/// (installed afterwards), the HTTPRoute the API server accepts; without `spec.httpRoute`
/// again, none.
fn http_route_needs_the_gateway_api(c: &Cluster) {
    c.apply(ROUTED);
    wait_for("GatewayAPIMissing on routed", WAIT, || {
        c.jsonpath(
            "registry/routed",
            r#"{.status.conditions[?(@.type=="Ready")].reason}"#,
        ) == "GatewayAPIMissing"
    });
    let message = c.jsonpath(
        "registry/routed",
        r#"{.status.conditions[?(@.type=="Ready")].message}"#,
    );
    assert!(message.contains("spec.httpRoute"), "{message}");
    assert!(
        !c.kubectl(&["get", "deployment/routed"]).status.success(),
        "nothing is applied while the Gateway API is missing"
    );
    tools::install_gateway_api(c);
    c.kubectl_ok(&["annotate", "registry/routed", "example.com/nudge=1"]);
    wait_for("HTTPRoute routed", WAIT, || {
        c.kubectl(&["get", "httproute/routed"]).status.success()
    });
    let route: serde_json::Value = c.get_json("httproute/routed");
    let spec = &route["spec"];
    assert_eq!(spec["hostnames"][0], "routed.example.test");
    assert_eq!(spec["parentRefs"][0]["sectionName"], "https");
    assert_eq!(spec["rules"][0]["matches"][0]["path"]["value"], "/v2");
    assert_eq!(spec["rules"][0]["backendRefs"][0]["name"], "routed");
    assert_eq!(spec["rules"][0]["backendRefs"][0]["port"], 5000);
    assert_eq!(spec["rules"][0]["timeouts"]["request"], "0s");
    assert_eq!(spec["rules"][1]["matches"][0]["path"]["type"], "Exact");
    assert_eq!(spec["rules"][1]["matches"][0]["path"]["value"], "/token");
    assert_eq!(spec["rules"][1]["backendRefs"][0]["port"], 5002);
    assert_eq!(route["metadata"]["ownerReferences"][0]["name"], "routed");
    let realm = c.jsonpath("configmap/routed-config", "{.data.config\\.yml}");
    assert!(
        realm.contains("realm: https://routed.example.test/token"),
        "{realm}"
    );
    remove_field(c, "registry/routed", "/spec/httpRoute");
    wait_for("HTTPRoute routed deleted", WAIT, || {
        !c.kubectl(&["get", "httproute/routed"]).status.success()
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_200_mb_layer_through_nginx_configured_from_the_ingress_arrives_intact() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let work = dir();
    let c = Cluster::start();
    c.install_crds();
    schema_refusals(&c);
    let _op = Operator::start_with(
        &c,
        &work,
        &["--token-service-image=ghcr.io/flotilla-dev/flotilla:test"],
        &[],
    );
    let proxy_port = registry_proc::free_port();
    let registry_port = std::iter::repeat_with(registry_proc::free_port)
        .find(|p| *p != proxy_port)
        .expect("a second free port");
    let external = format!("http://localhost:{proxy_port}");
    let users = format!("alice:{}\n", bcrypt::hash(PASSWORD, 4).expect("bcrypt"));
    c.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: users}}\nstringData:\n  htpasswd: \"{}\"\n",
        users.trim()
    ));
    c.apply(&hq_yaml(&external));
    c.apply(PLAIN);

    // The Ingress the API server accepted, with the proxy settings.
    wait_for("Ingress hq", WAIT, || {
        c.kubectl(&["get", "ingress/hq"]).status.success()
            && c.kubectl(&["get", "deployment/hq"]).status.success()
    });
    let ingress: Ingress = c.get_json("ingress/hq");
    let a = ingress.metadata.annotations.clone().unwrap_or_default();
    for (k, v) in [
        ("nginx.ingress.kubernetes.io/proxy-body-size", "0"),
        ("nginx.ingress.kubernetes.io/proxy-request-buffering", "off"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "900"),
        ("nginx.ingress.kubernetes.io/proxy-send-timeout", "900"),
        ("cert-manager.io/cluster-issuer", "letsencrypt"),
        ("example.com/team", "a"),
    ] {
        assert_eq!(a.get(k).map(String::as_str), Some(v), "annotation {k}");
    }
    let spec = ingress.spec.clone().expect("spec");
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    assert_eq!(
        spec.tls.as_ref().expect("tls")[0].secret_name.as_deref(),
        Some("hq-ingress-tls")
    );
    assert_eq!(
        ingress
            .metadata
            .owner_references
            .as_ref()
            .map(|o| o[0].name.as_str()),
        Some("hq")
    );
    wait_for("status.externalURL of hq", WAIT, || {
        c.jsonpath("registry/hq", "{.status.externalURL}") == external
    });
    plain_ingress_follows_the_spec(&c);
    http_route_needs_the_gateway_api(&c);

    // The pod, and nginx in front of it, configured from the Ingress.
    let hq = token_proc::run_pod(
        &c,
        "hq",
        registry_port,
        work.join("hq"),
        token_proc::Realm::Rendered,
    )
    .await;
    let backends = BTreeMap::from([
        ("http".to_string(), hq.registry.host.clone()),
        (
            "token".to_string(),
            hq.token.url.trim_start_matches("http://").to_string(),
        ),
    ]);
    let conf = nginx::config(&ingress, proxy_port, &work.join("nginx"), &backends);
    assert!(conf.contains("client_max_body_size 0;"), "{conf}");
    let proxy = nginx::Nginx::start(&conf, proxy_port, work.join("nginx"));

    // Clients are sent to the external URL for tokens, and get relative upload Locations.
    let http = reqwest::Client::new();
    let challenge = http
        .get(format!("{external}/v2/"))
        .send()
        .await
        .expect("GET /v2/ through nginx");
    assert_eq!(challenge.status(), 401);
    let www = challenge.headers()["www-authenticate"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        www.contains(&format!("realm=\"{external}/token\"")),
        "{www}"
    );
    let push = token(&external, "repository:team-a/big:pull,push").await;
    let started = http
        .post(format!("{external}/v2/team-a/big/blobs/uploads/"))
        .bearer_auth(&push)
        .send()
        .await
        .expect("start an upload through nginx");
    assert_eq!(started.status(), 202);
    let location = started.headers()["location"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        location.starts_with("/v2/team-a/big/blobs/uploads/"),
        "{location}"
    );

    // 200 MB through the proxy, by skopeo as alice.
    let layout = work.join("layout");
    let layer = registry::tar(&[("big.bin", &registry::pseudo_random(200, LAYER_BYTES))]);
    let (layer_digest, manifest_digest) = oci_layout(&layout, &layer);
    let layer_len = layer.len() as u64;
    drop(layer);
    let target = format!("docker://{}/team-a/big:v1", proxy.host);
    run(
        Command::new("skopeo")
            .args(["copy", "--preserve-digests", "--dest-tls-verify=false"])
            .args(["--dest-creds", &format!("alice:{PASSWORD}")])
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(&target),
        "skopeo push of 200 MB through nginx",
    );

    // At the registry directly: the blob, whole, by its digest.
    let pull = token(&hq.token.url, "repository:team-a/big:pull").await;
    let mut blob = http
        .get(format!(
            "{}/v2/team-a/big/blobs/{layer_digest}",
            hq.registry.url
        ))
        .bearer_auth(&pull)
        .send()
        .await
        .expect("blob from the registry");
    assert_eq!(blob.status(), 200);
    let (mut h, mut n) = (Sha256::new(), 0u64);
    while let Some(chunk) = blob.chunk().await.expect("blob body") {
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    assert_eq!(
        format!("sha256:{}", hex::encode(h.finalize())),
        layer_digest
    );
    assert_eq!(n, layer_len);

    // And pulled back through the proxy.
    let back = work.join("pulled");
    run(
        Command::new("skopeo")
            .args(["copy", "--preserve-digests", "--src-tls-verify=false"])
            .args(["--src-creds", &format!("alice:{PASSWORD}")])
            .arg(&target)
            .arg(format!("oci:{}:v1", back.display())),
        "skopeo pull through nginx",
    );
    let pulled = back
        .join("blobs/sha256")
        .join(&layer_digest["sha256:".len()..]);
    assert_eq!(file_digest(&pulled), (layer_digest.clone(), layer_len));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(back.join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"][0]["digest"], manifest_digest.as_str());
    let log = proxy.log();
    assert!(
        log.contains("PUT /v2/team-a/big/blobs/uploads/") && log.contains("GET /token?"),
        "the upload and the token requests went through nginx: {log}"
    );
    let _ = std::fs::remove_dir_all(&work);
}
