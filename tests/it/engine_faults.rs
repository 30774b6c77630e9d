//! Faults: a destination killed mid-sync, a corrupting proxy, a 503/429-ing proxy.

use crate::support::registry;

use std::sync::atomic::Ordering;
use std::time::Duration;

use registry::*;

const FAST_RETRY: &str = "  retry:\n    maxAttempts: 3\n    initialBackoffMillis: 10\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_destination_never_shows_incomplete_artifacts_and_converges() {
    require_tools();
    let src = Registry::start().await;
    let mut dst = Registry::start().await;
    let p = Pusher::new(&src.url());
    let base = layer(&[("base", &pseudo_random(1, 1_000_000))]);
    let mut tags = Vec::new();
    for i in 0..6u64 {
        let big = layer(&[("data", &pseudo_random(100 + i, 25 * 1024 * 1024))]);
        let m = p
            .image(
                "k/app",
                Some(&format!("v{i}")),
                "amd64",
                &[base.clone(), big],
                false,
            )
            .await;
        tags.push((format!("v{i}"), m));
    }
    let proxy = Proxy::start(&dst.url(), Faults::default()).await;
    let dir = TempDir::new("kill");
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("d", proxy.url(), None)],
        &format!("  concurrency: 2\n{FAST_RETRY}"),
    );
    let child = tokio::process::Command::new(flotilla_bin())
        .args(["sync", "-f", pol.to_str().expect("path"), "-o", "json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let stats = proxy.stats.clone();
    wait_for(
        "40 MB written to the destination",
        Duration::from_secs(120),
        || {
            let stats = stats.clone();
            async move { stats.bytes_received.load(Ordering::Relaxed) > 40 * 1024 * 1024 }
        },
    )
    .await;
    dst.kill();
    let out = child.wait_with_output().await.expect("wait");
    assert!(
        !out.status.success(),
        "sync should fail when its destination dies"
    );

    dst.restart().await;
    // No tag points at an incomplete artifact.
    let present = list_tags(&dst.url(), "k/app").await;
    assert!(
        present.len() < tags.len(),
        "the kill came too late: {present:?}"
    );
    for t in &present {
        assert!(
            complete(&dst.url(), "k/app", t).await,
            "tag {t} is incomplete"
        );
    }

    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    for (tag, bytes) in &tags {
        let raw = skopeo_raw(&dst.host(), &format!("k/app:{tag}")).expect("present");
        assert_eq!(&raw, bytes);
        assert!(complete(&dst.url(), "k/app", tag).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_blob_fails_with_digest_error_and_publishes_nothing() {
    require_tools();
    let src = Registry::start().await;
    let dst = Registry::start().await;
    let p = Pusher::new(&src.url());
    let bad_layer = layer(&[("x", &pseudo_random(5, 500_000))]);
    let bad_digest = sha256(&bad_layer.0);
    p.image("bad/img", Some("v1"), "amd64", &[bad_layer], false)
        .await;
    let good = p
        .image(
            "good/img",
            Some("v1"),
            "amd64",
            &[layer(&[("y", b"fine")])],
            false,
        )
        .await;
    let proxy = Proxy::start(
        &src.url(),
        Faults {
            flip_blob: Some(bad_digest.clone()),
            ..Default::default()
        },
    )
    .await;
    let dir = TempDir::new("flip");
    let pol = policy(
        dir.path(),
        &proxy.url(),
        &[("d", dst.url(), None)],
        FAST_RETRY,
    );
    let (ok, report, _) = sync_json(&pol).await;
    assert!(!ok, "must exit non-zero");
    assert_eq!(report["failed"], 1, "{report:#}");
    assert_eq!(report["copied"], 1, "{report:#}");
    let failure = report["failures"][0].to_string();
    assert!(
        failure.contains("bad/img:v1") && failure.contains("digest mismatch"),
        "{failure}"
    );
    assert!(
        list_tags(&dst.url(), "bad/img").await.is_empty(),
        "tag published"
    );
    let head = reqwest::Client::new()
        .head(format!("{}/v2/bad/img/blobs/{bad_digest}", dst.url()))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status().as_u16(), 404, "corrupt blob committed");
    assert_eq!(skopeo_raw(&dst.host(), "good/img:v1"), Some(good));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intermittent_503_and_429_still_converge() {
    require_tools();
    let src = Registry::start().await;
    let dst = Registry::start().await;
    let p = Pusher::new(&src.url());
    let base = layer(&[("b", &pseudo_random(9, 1_000_000))]);
    let mut tags = Vec::new();
    for i in 0..4u64 {
        let l = layer(&[("l", &pseudo_random(30 + i, 700_000))]);
        let m = p
            .image(
                "flaky/app",
                Some(&format!("t{i}")),
                "amd64",
                &[base.clone(), l],
                i % 2 == 0,
            )
            .await;
        tags.push((format!("t{i}"), m));
    }
    let faults = || Faults {
        fail_every: Some(4),
        ..Default::default()
    };
    let src_proxy = Proxy::start(&src.url(), faults()).await;
    let dst_proxy = Proxy::start(&dst.url(), faults()).await;
    let dir = TempDir::new("flaky");
    let pol = policy(
        dir.path(),
        &src_proxy.url(),
        &[("d", dst_proxy.url(), None)],
        "  retry:\n    maxAttempts: 8\n    initialBackoffMillis: 10\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert!(src_proxy.stats.injected.load(Ordering::Relaxed) > 0);
    assert!(dst_proxy.stats.injected.load(Ordering::Relaxed) > 0);
    for (tag, bytes) in &tags {
        assert_eq!(
            skopeo_raw(&dst.host(), &format!("flaky/app:{tag}")).as_ref(),
            Some(bytes)
        );
    }
}
