//! Referrers through the OCI 1.1 referrers API of a real registry (olareg; Distribution 2.8
//! has no such API, engine_referrers covers its tag scheme): signatures made by the real
//! `cosign` in its OCI 1.1 mode and an SBOM and a scan report attached by the real `oras
//! attach --artifact-type`. Without rules every referrer travels, byte for byte, as a
//! referrer of its subject at the destination; with `spec.verify` and `spec.referrerFilter`
//! only the image signed by the trusted key travels, with its signature and SBOM but not the
//! scan report, and `cosign verify --experimental-oci11` accepts it at the destination.

use crate::support::registry;

use crate::support::supply_chain;

use std::path::Path;

use registry::*;
use supply_chain::{
    Cosign, KeyPair, Olareg, Scheme, append_key_document, held_back, oras_attach, push_image,
    referrers,
};

const REPO: &str = "sec/app";
const SIG: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM: &str = "application/spdx+json";
const SCAN: &str = "application/vnd.example.scan-report.v1+json";

async fn image(p: &Pusher, tag: &str) -> String {
    push_image(p, REPO, tag).await
}

/// The raw manifest `digest` of `REPO` at `base`, if present.
async fn raw_manifest(base: &str, digest: &str) -> Option<Vec<u8>> {
    let r = reqwest::Client::new()
        .get(format!("{base}/v2/{REPO}/manifests/{digest}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get manifest");
    if !r.status().is_success() {
        return None;
    }
    Some(r.bytes().await.expect("bytes").to_vec())
}

/// A policy naming only `REPO` (olareg has no catalog), with `extra` in its spec and
/// `key`'s public half in a ConfigMap `keys` (key `cosign.pub`) when given.
fn api_policy(
    dir: &Path,
    src: &str,
    dest: String,
    extra: &str,
    key: Option<&KeyPair>,
) -> std::path::PathBuf {
    let spec = format!("  repositories:\n    include: [\"{REPO}\"]\n{extra}");
    let p = policy(dir, src, &[("prod", dest, None)], &spec);
    if let Some(key) = key {
        append_key_document(&p, "ConfigMap", "keys", key);
    }
    p
}

/// Attaches an SBOM and a scan report to `subject` with `oras attach`: their digests.
fn attach_sbom_and_scan(dir: &Path, subject: &str) -> (String, String) {
    std::fs::write(dir.join("sbom.spdx.json"), br#"{"spdxVersion":"SPDX-2.3"}"#).expect("sbom");
    std::fs::write(dir.join("scan.json"), br#"{"findings":[]}"#).expect("scan");
    (
        oras_attach(dir, subject, SBOM, "sbom.spdx.json"),
        oras_attach(dir, subject, SCAN, "scan.json"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_api_signatures_and_sboms_are_gated_and_filtered() {
    require_tools();
    let cosign = Cosign::new();
    let (trusted, other) = (cosign.key_pair("trusted"), cosign.key_pair("other"));
    let src = Olareg::start().await;
    let p = Pusher::new(&src.url());
    let at = |d: &str| format!("{}/{REPO}@{d}", src.host());
    let signed = image(&p, "signed").await;
    cosign.sign(&trusted, &at(&signed), Scheme::Referrers);
    let unsigned = image(&p, "unsigned").await;
    let by_other = image(&p, "other-key").await;
    cosign.sign(&other, &at(&by_other), Scheme::Referrers);
    let dir = TempDir::new("referrers-api");
    let (sbom, scan) = attach_sbom_and_scan(dir.path(), &at(&signed));
    let at_source = referrers(&src.url(), REPO, &signed).await;
    let types: Vec<&str> = at_source.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        at_source.len(),
        3,
        "signature, SBOM and scan report: {at_source:?}"
    );
    assert!(types.contains(&SIG) && types.contains(&SBOM) && types.contains(&SCAN));
    assert!(
        list_tags(&src.url(), REPO)
            .await
            .iter()
            .all(|t| !t.starts_with("sha256-")),
        "cosign used the referrers API, not its tag scheme"
    );

    // No rules: every referrer travels, byte for byte, and is a referrer at the destination.
    let plain = Olareg::start().await;
    let pol = api_policy(dir.path(), &src.url(), plain.url(), "", None);
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(
        report["copied"], 7,
        "3 images, 3 + 1 referrers by the API: {report:#}"
    );
    assert_eq!(referrers(&plain.url(), REPO, &signed).await, at_source);
    for (d, _) in &at_source {
        assert_eq!(
            raw_manifest(&plain.url(), d).await,
            raw_manifest(&src.url(), d).await,
            "{d} differs"
        );
    }
    assert_eq!(referrers(&plain.url(), REPO, &by_other).await.len(), 1);

    // Signed by the trusted key, and only signatures and SBOMs travel.
    let prod = Olareg::start().await;
    let rules = format!(
        "  verify:\n    keys:\n      - configMapKeyRef: {{name: keys, key: cosign.pub}}\n  referrerFilter:\n    include:\n      - artifactType: \"application/vnd.dev.cosign.*\"\n      - artifactType: \"{SBOM}\"\n"
    );
    let pol = api_policy(dir.path(), &src.url(), prod.url(), &rules, Some(&trusted));
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["unverified"], 2, "{report:#}");
    let held = held_back(&report);
    assert_eq!(
        held,
        vec![
            (format!("{REPO}:other-key"), "untrusted".to_string()),
            (format!("{REPO}:unsigned"), "unsigned".to_string()),
        ]
    );
    assert_eq!(
        report["copied"], 3,
        "the image, its signature and its SBOM: {report:#}"
    );
    let at_prod = referrers(&prod.url(), REPO, &signed).await;
    let mut want: Vec<(String, String)> = at_source
        .iter()
        .filter(|(d, _)| d != &scan)
        .cloned()
        .collect();
    want.sort();
    assert_eq!(at_prod, want);
    assert!(at_prod.iter().any(|(d, _)| d == &sbom));
    assert_eq!(
        list_tags(&prod.url(), REPO).await,
        vec!["signed".to_string()]
    );
    for d in [&unsigned, &by_other, &scan] {
        assert_eq!(
            raw_manifest(&prod.url(), d).await,
            None,
            "{d} must not be copied"
        );
    }
    let copied = format!("{}/{REPO}@{signed}", prod.host());
    let verified = cosign.verify(&trusted.public, &copied, Scheme::Referrers);
    assert!(
        verified.is_ok(),
        "cosign verify at the destination: {verified:?}"
    );
}
