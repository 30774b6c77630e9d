//! Deletion sync on real `docker-registry` processes deletes only what it may: never more than
//! `maxDeletions` tags in one sync, and never a manifest that an index at the destination
//! still holds (Distribution 2.8 deletes by digest only).

use crate::support::registry;

use registry::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_that_would_delete_more_than_max_deletions_deletes_none() {
    require_tools();
    let dir = TempDir::new("max-deletions");
    let src = Registry::start().await;
    let dest = Registry::start().await;
    Pusher::new(&src.url())
        .image(
            "app",
            Some("keep"),
            "amd64",
            &[layer(&[("f", b"keep")])],
            false,
        )
        .await;
    // The destination holds five tags the source never had.
    let d = Pusher::new(&dest.url());
    for t in ["old1", "old2", "old3", "old4", "old5"] {
        d.image(
            "app",
            Some(t),
            "amd64",
            &[layer(&[("f", t.as_bytes())])],
            false,
        )
        .await;
    }
    let dests = [("d", dest.url(), None)];
    let pol = policy(
        dir.path(),
        &src.url(),
        &dests,
        "  deletion: true\n  maxDeletions: 4\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(!ok, "{report:#} {stderr}");
    assert_eq!(report["deleted"], 0, "{report:#}");
    assert_eq!(report["deletionsWithheld"], 5, "{report:#}");
    let msg = report["failures"][0]["error"].as_str().unwrap_or_default();
    assert!(msg.contains("spec.maxDeletions (4)"), "{msg}");
    assert_eq!(
        list_tags(&dest.url(), "app").await.len(),
        6,
        "nothing deleted"
    );

    let pol = policy(
        dir.path(),
        &src.url(),
        &dests,
        "  deletion: true\n  maxDeletions: 5\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["deleted"], 5, "{report:#}");
    assert_eq!(
        list_tags(&dest.url(), "app").await,
        vec!["keep".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_an_index_still_holds_is_not_deleted() {
    require_tools();
    let dir = TempDir::new("index-child");
    let src = Registry::start().await;
    let dest = Registry::start().await;
    for base in [src.url(), dest.url()] {
        let p = Pusher::new(&base);
        let amd = p
            .image("app", None, "amd64", &[layer(&[("a", b"amd")])], false)
            .await;
        let arm = p
            .image("app", None, "arm64", &[layer(&[("a", b"arm")])], false)
            .await;
        p.index(
            "app",
            "multi",
            &[(amd.clone(), "amd64"), (arm, "arm64")],
            false,
        )
        .await;
        if base == dest.url() {
            // A tag of the destination's own that points at a child of the index.
            p.manifest("app", "amd-only", OCI_MANIFEST, &amd).await;
        }
    }
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("d", dest.url(), None)],
        "  deletion: true\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(!ok, "the refused deletion is reported: {report:#} {stderr}");
    assert_eq!(report["deleted"], 0, "{report:#}");
    let msg = report["failures"][0]["error"].as_str().unwrap_or_default();
    assert!(msg.contains("index that tag \"multi\""), "{msg}");
    assert!(
        complete(&dest.url(), "app", "multi").await,
        "the index at the destination is whole"
    );
}
