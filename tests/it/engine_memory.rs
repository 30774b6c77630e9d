//! Peak memory while a 1 GiB layer is copied to three destinations stays under 100 MiB.

use crate::support::registry;

use registry::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_gib_layer_to_three_destinations_in_bounded_memory() {
    require_tools();
    let src = Registry::start().await;
    let dests = Registry::start_many::<3>().await;
    let p = Pusher::new(&src.url());
    // 1 GiB generated while streaming, never held in memory.
    let (digest, size) = p.big_blob("huge/layer", 1024).await;
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    p.blob("huge/layer", config).await;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", config),
        "layers": [{"mediaType": OCI_LAYER, "digest": digest, "size": size}],
    }))
    .expect("manifest");
    p.manifest("huge/layer", "v1", OCI_MANIFEST, &manifest)
        .await;

    let dir = TempDir::new("mem");
    let dl: Vec<(&str, String, Option<&str>)> = ["a", "b", "c"]
        .iter()
        .zip(&dests)
        .map(|(n, d)| (*n, d.url(), None))
        .collect();
    let pol = policy(dir.path(), &src.url(), &dl, "");
    let (status, peak_kib, stdout) =
        flotilla_peak_rss(&["sync", "-f", pol.to_str().expect("path"), "-o", "json"]).await;
    assert!(status.success(), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let read = report["bytesReadFromSource"].as_u64().expect("read");
    assert!(read >= size && read < size + 1_000_000, "{report:#}");
    eprintln!("peak RSS {peak_kib} KiB for {size} bytes to 3 destinations (read {read})");
    assert!(
        peak_kib > 0 && peak_kib < 100 * 1024,
        "peak RSS {peak_kib} KiB"
    );
    for d in &dests {
        assert_eq!(
            skopeo_raw(&d.host(), "huge/layer:v1").as_ref(),
            Some(&manifest)
        );
    }
}
