//! `bandwidthLimit` is one limit for the whole sync, not one per transfer: four artifacts
//! copied at once to two destinations, against real `docker-registry` processes, read the
//! source no faster than the limit all together. (A lower bound on the duration is what the
//! limit promises; it cannot fail by the machine being slow.)

use crate::support::registry;

use registry::*;

const MIB: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_for_all_transfers_together() {
    require_tools();
    let dir = TempDir::new("bandwidth");
    let src = Registry::start().await;
    let [a, b] = Registry::start_many::<2>().await;
    let p = Pusher::new(&src.url());
    for i in 0..4u64 {
        let l = layer(&[("data", &pseudo_random(500 + i, 2 * MIB))]);
        p.image(&format!("bw/app{i}"), Some("v1"), "amd64", &[l], false)
            .await;
    }
    let unique = p.unique_blob_bytes() as f64;
    let rate = 2.0 * MIB as f64;
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("a", a.url(), None), ("b", b.url(), None)],
        "  concurrency: 4\n  bandwidthLimit: 2Mi\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["copied"], 4, "{report:#}");
    let read = report["bytesReadFromSource"].as_f64().expect("bytes read");
    let took = report["durationSeconds"].as_f64().expect("duration");
    // Fan-out: each blob read once for both destinations.
    assert!(
        read >= unique && read < unique * 1.05,
        "read {read} of {unique} unique bytes"
    );
    // The bucket starts empty and allows one second of burst at most.
    let least = read / rate - 1.0;
    assert!(
        took >= least,
        "{read} bytes in {took:.2} s: faster than 2 MiB/s for the whole sync (at least {least:.2} s)"
    );
}
