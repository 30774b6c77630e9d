//! Hierarchical replication 1→2→4: leaves are fed by their parents, not by the source.

use crate::support::registry;

use registry::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaves_are_fed_by_their_parents() {
    require_tools();
    let src = Registry::start().await;
    let east = Registry::start().await;
    let west = Registry::start().await;
    let leaves = Registry::start_many::<4>().await;
    let p = Pusher::new(&src.url());
    let base = layer(&[("base", &pseudo_random(10, 2_000_000))]);
    let mut tags = Vec::new();
    for i in 0..3u64 {
        let l = layer(&[("app", &pseudo_random(20 + i, 3_000_000))]);
        let m = p
            .image(
                "fleet/app",
                Some(&format!("v{i}")),
                "amd64",
                &[base.clone(), l],
                false,
            )
            .await;
        tags.push((format!("v{i}"), m));
    }
    let unique = p.unique_blob_bytes();

    let src_proxy = Proxy::start(&src.url(), Faults::default()).await;
    let east_proxy = Proxy::start(&east.url(), Faults::default()).await;
    let west_proxy = Proxy::start(&west.url(), Faults::default()).await;
    let dir = TempDir::new("hier");
    let pol = policy(
        dir.path(),
        &src_proxy.url(),
        &[
            ("east", east_proxy.url(), None),
            ("west", west_proxy.url(), None),
            ("e1", leaves[0].url(), Some("east")),
            ("e2", leaves[1].url(), Some("east")),
            ("w1", leaves[2].url(), Some("west")),
            ("w2", leaves[3].url(), Some("west")),
        ],
        "",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(
        report["copied"].as_u64(),
        Some(tags.len() as u64),
        "{report:#}"
    );

    let within = |served: u64, what: &str| {
        assert!(
            served >= unique && served as f64 <= unique as f64 * 1.05,
            "{what} served {served} blob bytes, unique corpus {unique}"
        );
    };
    // The source fed only the two regions, with one read; each region fed its two cities
    // with one read.
    within(src_proxy.blob_bytes(), "source");
    within(east_proxy.blob_bytes(), "east");
    within(west_proxy.blob_bytes(), "west");

    for r in [&east, &west].into_iter().chain(leaves.iter()) {
        for (tag, bytes) in &tags {
            let raw = skopeo_raw(&r.host(), &format!("fleet/app:{tag}")).expect("tag present");
            assert_eq!(&raw, bytes);
        }
    }
    let relays = report["bytesReadFromRelays"].as_u64().expect("relays");
    assert!(relays >= 2 * unique, "{report:#}");
}
