//! Referrers on Distribution 2.8, which has no OCI referrers API: the engine falls back to
//! the cosign tag scheme (`sha256-<hex>.sig/.att/.sbom`). Signatures, attestations and SBOMs
//! of an artifact in scope are copied with it, byte for byte, even when the tag filter does
//! not name them; those of artifacts out of scope are not; `referrers: false` copies none.
//! (engine_sync covers a signature of an index among a larger corpus.)

use crate::support::registry;

use registry::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_scheme_referrers_follow_their_subject() {
    require_tools();
    let src = Registry::start().await;
    let p = Pusher::new(&src.url());
    let img = p
        .image(
            "sec/app",
            Some("v1"),
            "amd64",
            &[layer(&[("f", b"app")])],
            false,
        )
        .await;
    let sig = p.signature("sec/app", &img, OCI_MANIFEST, "sig").await;
    let att = p.signature("sec/app", &img, OCI_MANIFEST, "att").await;
    let sbom = p.signature("sec/app", &img, OCI_MANIFEST, "sbom").await;
    // An artifact out of scope (tag "dev"), signed too.
    let dev = p
        .image(
            "sec/app",
            Some("dev"),
            "amd64",
            &[layer(&[("f", b"dev")])],
            false,
        )
        .await;
    p.signature("sec/app", &dev, OCI_MANIFEST, "sig").await;
    let tag = |m: &[u8], kind: &str| format!("sha256-{}.{kind}", &sha256(m)[7..]);

    let dir = TempDir::new("referrers");
    let with = Registry::start().await;
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("d", with.url(), None)],
        "  tags:\n    include: [\"v*\"]\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(
        report["copied"], 4,
        "v1 and its three referrers: {report:#}"
    );
    for (kind, bytes) in [("sig", &sig), ("att", &att), ("sbom", &sbom)] {
        let raw = skopeo_raw(&with.host(), &format!("sec/app:{}", tag(&img, kind)))
            .unwrap_or_else(|| panic!(".{kind} not copied"));
        assert_eq!(&raw, bytes, ".{kind} differs");
        // Its subject is there too.
        let v: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        let subject = v["subject"]["digest"].as_str().expect("subject");
        assert!(complete(&with.url(), "sec/app", subject).await);
    }
    let mut tags = list_tags(&with.url(), "sec/app").await;
    tags.sort();
    let mut want = vec![
        "v1".to_string(),
        tag(&img, "att"),
        tag(&img, "sbom"),
        tag(&img, "sig"),
    ];
    want.sort();
    assert_eq!(
        tags, want,
        "the out-of-scope artifact's signature stays behind"
    );

    let without = Registry::start().await;
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("d", without.url(), None)],
        "  tags:\n    include: [\"v*\"]\n  referrers: false\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["copied"], 1, "{report:#}");
    assert_eq!(
        list_tags(&without.url(), "sec/app").await,
        vec!["v1".to_string()]
    );
}
