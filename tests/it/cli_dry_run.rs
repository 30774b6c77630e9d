//! `flotilla sync --dry-run` against real `docker-registry` processes: it reports every copy
//! and deletion a sync would make (hierarchical destinations included) and writes nothing;
//! the sync that follows makes exactly those changes.

use crate::support::registry;

use registry::*;

async fn dry_run_json(policy: &std::path::Path) -> (bool, serde_json::Value) {
    let p = policy.to_str().expect("path");
    let out = flotilla(&["sync", "--dry-run", "-f", p, "-o", "json"]).await;
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), v)
}

/// The planned changes as sorted `change artifact destination` lines.
fn planned(report: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = report["planned"]
        .as_array()
        .expect("planned")
        .iter()
        .map(|p| {
            format!(
                "{} {} {}",
                p["change"].as_str().unwrap_or_default(),
                p["artifact"].as_str().unwrap_or_default(),
                p["destination"].as_str().unwrap_or_default()
            )
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_reports_the_copies_and_deletions_and_writes_nothing() {
    require_tools();
    let dir = TempDir::new("dry-run");
    let src = Registry::start().await;
    let [region, city] = Registry::start_many::<2>().await;
    let p = Pusher::new(&src.url());
    p.image(
        "app",
        Some("v1"),
        "amd64",
        &[layer(&[("v1", b"one")])],
        false,
    )
    .await;
    let pol = policy(
        dir.path(),
        &src.url(),
        &[
            ("region", region.url(), None),
            ("city", city.url(), Some("region")),
        ],
        "  deletion: true\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok && report["copied"] == 1, "{report:#} {stderr}");

    // The source moves on: a new tag; the destinations hold a tag the source never had.
    let v2 = p
        .image(
            "app",
            Some("v2"),
            "amd64",
            &[layer(&[("v2", b"two")])],
            false,
        )
        .await;
    for d in [&region, &city] {
        Pusher::new(&d.url())
            .image(
                "app",
                Some("old"),
                "amd64",
                &[layer(&[("old", b"gone")])],
                false,
            )
            .await;
    }

    let (ok, report) = dry_run_json(&pol).await;
    assert!(ok, "{report:#}");
    assert_eq!(report["dryRun"], true, "{report:#}");
    assert_eq!(
        planned(&report),
        [
            "copy app:v2 city",
            "copy app:v2 region",
            "delete app:old city",
            "delete app:old region",
        ],
        "{report:#}"
    );
    assert_eq!(report["copied"], 1, "{report:#}");
    assert_eq!(report["skipped"], 1, "{report:#}");
    assert_eq!(report["deleted"], 2, "{report:#}");
    assert_eq!(report["bytesReadFromSource"], 0, "{report:#}");
    for d in [&region, &city] {
        assert_eq!(
            skopeo_raw(&d.host(), "app:v2"),
            None,
            "v2 written to {}",
            d.url()
        );
        assert!(
            skopeo_raw(&d.host(), "app:old").is_some(),
            "old deleted at {}",
            d.url()
        );
    }

    // The text summary says it is a dry run and lists the changes.
    let out = flotilla(&["sync", "--dry-run", "-f", pol.to_str().expect("path")]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("dry run: nothing was written"), "{text}");
    assert!(text.contains("would copy app:v2 at city"), "{text}");
    assert!(text.contains("would delete app:old at region"), "{text}");

    // The sync makes exactly what the dry run listed; a dry run after it plans nothing.
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(
        (&report["copied"], &report["deleted"]),
        (&1.into(), &2.into())
    );
    for d in [&region, &city] {
        assert_eq!(
            skopeo_raw(&d.host(), "app:v2").as_deref(),
            Some(v2.as_slice())
        );
        assert_eq!(skopeo_raw(&d.host(), "app:old"), None);
    }
    let (ok, report) = dry_run_json(&pol).await;
    assert!(ok, "{report:#}");
    assert!(planned(&report).is_empty(), "{report:#}");
    assert_eq!(report["skipped"], 2, "{report:#}");
}
