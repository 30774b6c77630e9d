//! `spec.verify` on Distribution 2.8 (no referrers API: cosign's `sha256-<hex>.sig` tag
//! scheme), with signatures made by the real `cosign` (key pairs from `cosign
//! generate-key-pair`, no transparency log): a signed image is copied with its signature; an
//! unsigned one, one signed by another key, one whose signature payload was tampered with and
//! one carrying another image's signature are not, and are reported; `cosign verify` on the
//! destination (the independent oracle) accepts what was copied; a dry run names what would
//! be held back; required attestations (`cosign attest`) are checked; and a city fed by a
//! region never receives an unverified artifact, even one the region already holds, and a
//! run with nothing to copy reads no signature.

use crate::support::registry;

use crate::support::supply_chain;

use std::path::Path;

use registry::*;
use supply_chain::{Cosign, KeyPair, Scheme, append_key_document, held_back, push_image};

const REPO: &str = "sec/app";

async fn image(p: &Pusher, tag: &str) -> String {
    push_image(p, REPO, tag).await
}

/// The cosign tag of `digest`'s signature.
fn sig_tag(digest: &str) -> String {
    format!("sha256-{}.sig", &digest["sha256:".len()..])
}

/// A policy file: the policy (`extra` appended to its spec) and a Secret holding `key`'s
/// public half under `cosign.pub`, which `spec.verify.keys` names.
fn signed_policy(
    dir: &Path,
    source: &str,
    dests: &[(&str, String, Option<&str>)],
    key: &KeyPair,
    extra: &str,
) -> std::path::PathBuf {
    let spec = format!(
        "  verify:\n    keys:\n      - secretKeyRef: {{name: cosign, key: cosign.pub}}\n{extra}"
    );
    let p = policy(dir, source, dests, &spec);
    append_key_document(&p, "Secret", "cosign", key);
    p
}

/// Pushes a copy of the signature manifest at `tag` whose payload blob has one changed
/// byte range (the signature annotation kept), under the same tag.
async fn tamper_signature(p: &Pusher, base: &str, tag: &str) {
    let raw = reqwest::Client::new()
        .get(format!("{base}/v2/{REPO}/manifests/{tag}"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .expect("get sig")
        .bytes()
        .await
        .expect("sig bytes");
    let mut m: serde_json::Value = serde_json::from_slice(&raw).expect("sig json");
    let payload_digest = m["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_string();
    let payload = reqwest::get(format!("{base}/v2/{REPO}/blobs/{payload_digest}"))
        .await
        .expect("payload")
        .text()
        .await
        .expect("payload text");
    let forged = payload.replace("/sec/app", "/sec/evil");
    assert_ne!(
        forged, payload,
        "the payload names the repository: {payload}"
    );
    p.blob(REPO, forged.as_bytes()).await;
    m["layers"][0]["digest"] = sha256(forged.as_bytes()).into();
    m["layers"][0]["size"] = forged.len().into();
    let bytes = serde_json::to_vec(&m).expect("json");
    p.manifest(REPO, tag, OCI_MANIFEST, &bytes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_artifacts_signed_by_a_trusted_key_are_copied() {
    require_tools();
    let cosign = Cosign::new();
    let (trusted, other) = (cosign.key_pair("trusted"), cosign.key_pair("other"));
    let src = Registry::start().await;
    let p = Pusher::new(&src.url());
    let at = |d: &str| format!("{}/{REPO}@{d}", src.host());
    let signed = image(&p, "signed").await;
    cosign.sign(&trusted, &at(&signed), Scheme::Tags);
    image(&p, "unsigned").await;
    let by_other = image(&p, "other-key").await;
    cosign.sign(&other, &at(&by_other), Scheme::Tags);
    let tampered = image(&p, "tampered").await;
    cosign.sign(&trusted, &at(&tampered), Scheme::Tags);
    tamper_signature(&p, &src.url(), &sig_tag(&tampered)).await;
    // Another image's genuine signature under this one's signature tag.
    let replayed = image(&p, "replayed").await;
    let genuine = skopeo_raw(&src.host(), &format!("{REPO}:{}", sig_tag(&signed))).expect("sig");
    p.manifest(REPO, &sig_tag(&replayed), OCI_MANIFEST, &genuine)
        .await;

    let dest = Registry::start().await;
    let dir = TempDir::new("signatures");
    let pol = signed_policy(
        dir.path(),
        &src.url(),
        &[("prod", dest.url(), None)],
        &trusted,
        "",
    );

    // A dry run names what would be held back, and why; it writes nothing.
    let out = flotilla(&["sync", "--dry-run", "-f", pol.to_str().expect("path")]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    for (tag, why) in [
        ("unsigned", "unsigned: no cosign signature"),
        ("other-key", "untrusted: 1 signature(s) found"),
        ("tampered", "untrusted: 1 signature(s) found"),
        ("replayed", "digest mismatch: the signed payload names"),
    ] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("held back: {REPO}:{tag} ")))
            .unwrap_or_else(|| panic!("the dry run names {tag}: {text}"));
        assert!(line.contains(why), "{line}");
    }
    assert!(
        text.contains(&format!("would copy {REPO}:signed at prod")),
        "{text}"
    );
    assert!(
        list_tags(&dest.url(), REPO).await.is_empty(),
        "a dry run writes nothing"
    );

    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(
        ok,
        "held-back artifacts are no failure: {report:#} {stderr}"
    );
    assert_eq!(
        report["copied"], 2,
        "the signed image and its signature: {report:#}"
    );
    assert_eq!(report["unverified"], 4, "{report:#}");
    let tag = |t: &str| format!("{REPO}:{t}");
    assert_eq!(
        held_back(&report),
        vec![
            (tag("other-key"), "untrusted".into()),
            (tag("replayed"), "digestMismatch".into()),
            (tag("tampered"), "untrusted".into()),
            (tag("unsigned"), "unsigned".into()),
        ]
    );
    let mut tags = list_tags(&dest.url(), REPO).await;
    tags.sort();
    assert_eq!(tags, vec![sig_tag(&signed), "signed".to_string()]);
    // The independent oracle: cosign itself verifies the copy at the destination, and
    // refuses the other key there.
    let copied = format!("{}/{REPO}@{signed}", dest.host());
    let verified = cosign.verify(&trusted.public, &copied, Scheme::Tags);
    assert!(
        verified.is_ok(),
        "cosign verify at the destination: {verified:?}"
    );
    assert!(cosign.verify(&other.public, &copied, Scheme::Tags).is_err());
    assert_eq!(
        skopeo_raw(&dest.host(), &format!("{REPO}:{}", sig_tag(&signed))),
        Some(genuine),
        "the signature is copied byte for byte"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_attestations_are_checked() {
    require_tools();
    let cosign = Cosign::new();
    let key = cosign.key_pair("k");
    let src = Registry::start().await;
    let p = Pusher::new(&src.url());
    let at = |d: &str| format!("{}/{REPO}@{d}", src.host());
    let dir = TempDir::new("attest");
    let sbom = dir.path().join("sbom.spdx.json");
    std::fs::write(
        &sbom,
        r#"{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"app","dataLicense":"CC0-1.0","documentNamespace":"https://example.com/app","creationInfo":{"created":"2026-01-01T00:00:00Z","creators":["Tool: test"]},"packages":[]}"#,
    )
    .expect("sbom");
    let attested = image(&p, "attested").await;
    cosign.sign(&key, &at(&attested), Scheme::Tags);
    cosign.attest(&key, &at(&attested), &sbom, "spdxjson");
    let only_signed = image(&p, "only-signed").await;
    cosign.sign(&key, &at(&only_signed), Scheme::Tags);

    let dest = Registry::start().await;
    let pol = signed_policy(
        dir.path(),
        &src.url(),
        &[("prod", dest.url(), None)],
        &key,
        "    attestations: [\"https://spdx.dev/Document\"]\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(
        held_back(&report),
        vec![(format!("{REPO}:only-signed"), "missingAttestation".into())]
    );
    assert_eq!(
        report["copied"], 3,
        "the image, its signature and its attestation: {report:#}"
    );
    let att = format!("sha256-{}.att", &attested["sha256:".len()..]);
    let tags = list_tags(&dest.url(), REPO).await;
    assert!(
        tags.contains(&att) && !tags.contains(&"only-signed".to_string()),
        "{tags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_city_fed_by_a_region_never_receives_an_unverified_artifact() {
    require_tools();
    let cosign = Cosign::new();
    let key = cosign.key_pair("k");
    let [src, region, city] = Registry::start_many::<3>().await;
    let p = Pusher::new(&src.url());
    let signed = image(&p, "signed").await;
    cosign.sign(
        &key,
        &format!("{}/{REPO}@{signed}", src.host()),
        Scheme::Tags,
    );
    image(&p, "unsigned").await;
    // The region already holds the unsigned image (copied before verify was turned on):
    // the city is still never fed it.
    image(&Pusher::new(&region.url()), "unsigned").await;

    let dir = TempDir::new("relay-gate");
    let relay_policy = |source: &str| {
        let dests = [
            ("region", region.url(), None),
            ("city", city.url(), Some("region")),
        ];
        signed_policy(dir.path(), source, &dests, &key, "")
    };
    let pol = relay_policy(&src.url());
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(
        held_back(&report),
        vec![(format!("{REPO}:unsigned"), "unsigned".into())]
    );
    let mut tags = list_tags(&city.url(), REPO).await;
    tags.sort();
    assert_eq!(tags, vec![sig_tag(&signed), "signed".to_string()]);
    assert!(
        report["bytesReadFromRelays"].as_u64().unwrap_or_default() > 0,
        "the city was fed by the region: {report:#}"
    );
    let at_city = format!("{}/{REPO}@{signed}", city.host());
    let verified = cosign.verify(&key.public, &at_city, Scheme::Tags);
    assert!(verified.is_ok(), "cosign verify at the city: {verified:?}");

    // Again, through a proxy that records the source's requests: the signed image is settled
    // everywhere with its signature, so nothing of it is read (HEADs only); the unsigned one
    // is held back again.
    let proxy = Proxy::start(&src.url(), Faults::default()).await;
    let pol = relay_policy(&proxy.url());
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["unverified"], 1, "{report:#}");
    assert_eq!(report["copied"], 0, "{report:#}");
    let seen = proxy.stats.seen.lock().expect("seen").clone();
    let reads: Vec<&String> = seen
        .iter()
        .filter(|r| r.starts_with("GET") && (r.contains("/blobs/") || r.contains("/manifests/")))
        .collect();
    assert!(
        seen.iter().any(|r| r.starts_with("HEAD")),
        "the run went through the proxy: {seen:?}"
    );
    assert!(reads.is_empty(), "a no-op run read {reads:?}");
}
