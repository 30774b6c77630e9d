//! A destination serving TLS with a certificate of a private CA (made with `openssl`):
//! `flotilla sync` trusts it through the endpoint's `caSecretRef` (a Secret in the policy
//! file), and without it, or with another CA, fails before writing anything with one line
//! naming the endpoint and the certificate problem.

use crate::support::registry;

use registry::*;

/// A policy from the plain-HTTP `source` to the HTTPS `dest`, with `ca` (PEM) as the
/// destination's `caSecretRef` when given.
fn tls_policy(
    dir: &std::path::Path,
    source: &str,
    dest: &str,
    ca: Option<&str>,
) -> std::path::PathBuf {
    let mut s = format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata:\n  name: tls\nspec:\n  source:\n    url: {source}\n    insecure: true\n  destinations:\n    - name: secure\n      url: {dest}\n"
    );
    if let Some(pem) = ca {
        s.push_str("      caSecretRef: {name: private-ca, key: ca.crt}\n");
        s.push_str("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: private-ca\nstringData:\n  ca.crt: |\n");
        for line in pem.lines() {
            s.push_str(&format!("    {line}\n"));
        }
    }
    let p = dir.join(format!("policy-{}.yaml", rand::random::<u32>()));
    std::fs::write(&p, s).expect("write policy");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_ca_is_trusted_through_ca_secret_ref_and_required_without_it() {
    require_tools();
    require_openssl();
    let dir = TempDir::new("tls");
    let ca = TestCa::new(dir.path(), "flotilla-test-ca");
    let (cert, key) = ca.server_cert("registry");
    let src = Registry::start().await;
    let dst = Registry::start_tls(&cert, &key).await;
    assert!(dst.url().starts_with("https://"));
    let p = Pusher::new(&src.url());
    let m = p
        .image(
            "secure/app",
            Some("v1"),
            "amd64",
            &[layer(&[("f", b"tls")])],
            false,
        )
        .await;

    // Without the CA: the system roots do not know it.
    let pol = tls_policy(dir.path(), &src.url(), &dst.url(), None);
    let out = flotilla(&["sync", "-f", pol.to_str().expect("path")]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(
        err.contains("destination secure"),
        "names the endpoint: {err}"
    );
    assert!(err.contains(&dst.host()), "names the host: {err}");
    assert!(
        err.contains("certificate") && err.contains("caSecretRef"),
        "names the certificate problem and the fix: {err}"
    );
    assert!(
        list_tags(&src.url(), "secure/app")
            .await
            .contains(&"v1".to_string())
    );

    // Another CA: still untrusted.
    let other = TestCa::new(dir.path(), "someone-else");
    let pol = tls_policy(dir.path(), &src.url(), &dst.url(), Some(&other.pem()));
    let out = flotilla(&["sync", "-f", pol.to_str().expect("path")]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("certificate"), "{err}");

    // With the CA: copied, byte for byte (skopeo trusting the same CA is the oracle).
    let pol = tls_policy(dir.path(), &src.url(), &dst.url(), Some(&ca.pem()));
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr} {}", dst.log());
    assert_eq!(report["copied"], 1, "{report:#}");
    let raw = skopeo_raw_trusting(
        dir.path(),
        &ca.cert,
        &format!("{}/secure/app:v1", dst.host()),
    );
    assert_eq!(raw, m);
}
