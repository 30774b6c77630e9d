//! `platforms:` against real registries: an index with unwanted children is pushed as a new
//! index of the wanted ones (Distribution refuses an index whose children are missing), an
//! index wholly wanted keeps its exact bytes, one with nothing wanted is left out, and a
//! re-sync is a no-op (also with `overwrite: false`), through a relay destination too.

use crate::support::registry;

use registry::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_filter_pushes_a_reduced_index_and_resync_is_a_noop() {
    require_tools();
    let src = Registry::start().await;
    let hub = Registry::start().await;
    let leaf = Registry::start().await;
    let p = Pusher::new(&src.url());
    let base = layer(&[("etc/os-release", b"NAME=platforms\n")]);
    let amd_layer = layer(&[("bin/app", &pseudo_random(11, 200_000))]);
    let arm_layer = layer(&[("bin/app", &pseudo_random(12, 200_000))]);
    let m_amd = p
        .image(
            "apps/multi",
            None,
            "amd64",
            &[base.clone(), amd_layer.clone()],
            false,
        )
        .await;
    let m_arm = p
        .image(
            "apps/multi",
            None,
            "arm64",
            &[base.clone(), arm_layer.clone()],
            false,
        )
        .await;
    let idx = p
        .index(
            "apps/multi",
            "v1",
            &[(m_amd.clone(), "amd64"), (m_arm.clone(), "arm64")],
            false,
        )
        .await;
    // A second tag on the same index: the same filtered digest.
    p.manifest("apps/multi", "latest", OCI_INDEX, &idx).await;
    // A Docker list with only the wanted platform: copied byte for byte.
    let d_amd = p
        .image(
            "apps/docker",
            None,
            "amd64",
            std::slice::from_ref(&base),
            true,
        )
        .await;
    let list = p
        .index("apps/docker", "v1", &[(d_amd, "amd64")], true)
        .await;
    // An index with no wanted platform: left out.
    let only_arm = p
        .image(
            "apps/arm",
            None,
            "arm64",
            std::slice::from_ref(&arm_layer),
            false,
        )
        .await;
    p.index("apps/arm", "v1", &[(only_arm, "arm64")], false)
        .await;
    // A plain image: copied byte for byte.
    let plain = p
        .image(
            "apps/plain",
            Some("v1"),
            "amd64",
            std::slice::from_ref(&base),
            false,
        )
        .await;

    let proxy = Proxy::start(&src.url(), Faults::default()).await;
    let dir = TempDir::new("platforms");
    let dests = [("hub", hub.url(), None), ("leaf", leaf.url(), Some("hub"))];
    let pol = policy(
        dir.path(),
        &proxy.url(),
        &dests,
        "  platforms: [\"linux/amd64\"]\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["copied"], 4, "{report:#}");
    assert_eq!(
        report["platformFiltered"], 2,
        "two tags of one index: {report:#}"
    );
    assert_eq!(report["platformUnmatched"], 1, "{report:#}");
    // The arm64-only layer was never read from the source.
    let arm_bytes = arm_layer.0.len() as u64;
    let all = p.unique_blob_bytes();
    assert!(
        proxy.blob_bytes() <= all - arm_bytes,
        "source served {} blob bytes, arm64 layer ({arm_bytes}) included?",
        proxy.blob_bytes()
    );

    let src_digest = sha256(&idx);
    for d in [&hub, &leaf] {
        // skopeo (the oracle) sees an index of the amd64 child only, under a new digest.
        let raw = skopeo_raw(&d.host(), "apps/multi:v1").expect("filtered index at destination");
        assert_ne!(sha256(&raw), src_digest, "must be a new index");
        assert_eq!(
            index_children(&raw),
            vec![(sha256(&m_amd), "amd64".to_string())],
            "{}",
            String::from_utf8_lossy(&raw)
        );
        let v: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(v["mediaType"], OCI_INDEX);
        assert_eq!(
            skopeo_raw(&d.host(), "apps/multi:latest").as_deref(),
            Some(raw.as_slice()),
            "both tags hold the same filtered index"
        );
        assert!(complete(&d.url(), "apps/multi", "v1").await);
        assert!(!has_manifest(&d.url(), "apps/multi", &sha256(&m_arm)).await);
        // Wholly wanted index and plain image: exact bytes.
        assert_eq!(skopeo_raw(&d.host(), "apps/docker:v1"), Some(list.clone()));
        assert_eq!(skopeo_raw(&d.host(), "apps/plain:v1"), Some(plain.clone()));
        assert!(list_tags(&d.url(), "apps/arm").await.is_empty());
    }

    // Re-sync: nothing copied, no blob read, nothing written; with overwrite: false too
    // (the destination tag holds the filtered digest, which is what is wanted: no conflict).
    let before = proxy.blob_bytes();
    for extra in ["", "  overwrite: false\n"] {
        let pol = policy(
            dir.path(),
            &proxy.url(),
            &dests,
            &format!("  platforms: [\"linux/amd64\"]\n{extra}"),
        );
        let (ok, again, stderr) = sync_json(&pol).await;
        assert!(ok, "{again:#} {stderr}");
        assert_eq!(again["copied"], 0, "{again:#}");
        assert_eq!(again["skipped"], 4, "{again:#}");
        assert_eq!(again["conflicts"], 0, "{again:#}");
        for d in again["destinations"].as_array().expect("dests") {
            assert_eq!(d["bytesWritten"], 0, "{d}");
        }
    }
    assert_eq!(proxy.blob_bytes(), before, "a no-op re-sync read blobs");

    // Both platforms wanted: the original index, byte for byte, at a fresh destination.
    let whole = Registry::start().await;
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("whole", whole.url(), None)],
        "  platforms: [\"linux/amd64\", \"linux/arm64\"]\n  repositories:\n    include: [apps/multi]\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["platformFiltered"], 0, "{report:#}");
    assert_eq!(skopeo_raw(&whole.host(), "apps/multi:v1"), Some(idx));
}
