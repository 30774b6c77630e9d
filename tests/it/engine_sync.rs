//! `flotilla sync` against real registries: every manifest kind copied byte-for-byte
//! (skopeo as the oracle), fan-out 1→3 reading the source once, no-op re-sync.

use crate::support::registry;

use registry::*;

/// The corpus: (repo, tag) pairs that must be replicated, with their manifest bytes.
struct Corpus {
    tags: Vec<(String, String, Vec<u8>)>,
}

async fn build_corpus(p: &Pusher) -> Corpus {
    let mut tags = Vec::new();
    // Shared base layer across images and repositories.
    let base = layer(&[("etc/os-release", b"NAME=flotilla-test\n")]);
    let amd = layer(&[("bin/app", &pseudo_random(1, 300_000))]);
    let arm = layer(&[("bin/app", &pseudo_random(2, 300_000))]);
    let m_amd = p
        .image("apps/web", None, "amd64", &[base.clone(), amd], false)
        .await;
    let m_arm = p
        .image("apps/web", None, "arm64", &[base.clone(), arm], false)
        .await;
    let idx = p
        .index(
            "apps/web",
            "v1.0.0",
            &[(m_amd.clone(), "amd64"), (m_arm, "arm64")],
            false,
        )
        .await;
    tags.push(("apps/web".into(), "v1.0.0".into(), idx.clone()));
    // Two tags on one digest.
    p.manifest("apps/web", "latest", OCI_INDEX, &idx).await;
    tags.push(("apps/web".into(), "latest".into(), idx.clone()));
    // Signature of the index (subject + cosign tag scheme).
    let sig = p.signature("apps/web", &idx, OCI_INDEX, "sig").await;
    let sig_tag = format!("sha256-{}.sig", &sha256(&idx)[7..]);
    tags.push(("apps/web".into(), sig_tag, sig));
    // Docker schema 2 list + manifests, sharing the base layer, in another repository.
    let d1 = p
        .image(
            "tools/cli",
            None,
            "amd64",
            std::slice::from_ref(&base),
            true,
        )
        .await;
    let list = p.index("tools/cli", "2.1", &[(d1, "amd64")], true).await;
    tags.push(("tools/cli".into(), "2.1".into(), list));
    // Helm chart.
    let chart = p.helm_chart("charts/demo", "0.1.0").await;
    tags.push(("charts/demo".into(), "0.1.0".into(), chart));
    // A layer over 100 MB.
    let big = layer(&[("data/blob.bin", &pseudo_random(3, 101 * 1024 * 1024))]);
    let m_big = p
        .image("data/big", Some("v1"), "amd64", &[base, big], false)
        .await;
    tags.push(("data/big".into(), "v1".into(), m_big));
    Corpus { tags }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_fans_out_exact_bytes_and_resync_is_a_noop() {
    require_tools();
    let src = Registry::start().await;
    let dests = Registry::start_many::<3>().await;
    let pusher = Pusher::new(&src.url());
    let corpus = build_corpus(&pusher).await;
    let unique = pusher.unique_blob_bytes();
    // Excluded repository: must not be copied.
    pusher.helm_chart("private/secret", "1").await;

    let proxy = Proxy::start(&src.url(), Faults::default()).await;
    let dir = TempDir::new("sync");
    let names = ["a", "b", "c"];
    let dlist: Vec<(&str, String, Option<&str>)> = names
        .iter()
        .zip(&dests)
        .map(|(n, d)| (*n, d.url(), None))
        .collect();
    let pol = policy(
        dir.path(),
        &proxy.url(),
        &dlist,
        "  repositories:\n    exclude: [\"private/**\"]\n  tags:\n    include: [\"v*\", \"latest\", \"2.*\", \"0.*\"]\n",
    );

    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "sync failed: {report:#} {stderr}");
    assert_eq!(report["failed"], 0, "{report:#}");
    assert_eq!(
        report["copied"].as_u64(),
        Some(corpus.tags.len() as u64),
        "{report:#}"
    );

    // Oracle: skopeo sees the source's exact bytes at every destination tag.
    for d in &dests {
        for (repo, tag, bytes) in &corpus.tags {
            let raw = skopeo_raw(&d.host(), &format!("{repo}:{tag}"))
                .unwrap_or_else(|| panic!("{repo}:{tag} missing at {}", d.host()));
            assert_eq!(&raw, bytes, "{repo}:{tag} differs at {}", d.host());
            let src_raw = skopeo_raw(&src.host(), &format!("{repo}:{tag}")).expect("source");
            assert_eq!(raw, src_raw);
        }
        assert!(
            list_tags(&d.url(), "private/secret").await.is_empty(),
            "excluded repo copied"
        );
    }

    // Fan-out: the source served each unique blob once (within 5%).
    let served = proxy.blob_bytes();
    assert!(
        served >= unique && (served as f64) <= unique as f64 * 1.05,
        "source served {served} blob bytes for {unique} unique bytes"
    );
    let read = report["bytesReadFromSource"].as_u64().expect("bytes read");
    assert!(
        (read as f64) <= unique as f64 * 1.05 + 100_000.0,
        "{read} vs {unique}"
    );
    for d in report["destinations"].as_array().expect("dests") {
        assert!(
            d["bytesWritten"].as_u64().expect("written") >= unique,
            "{d}"
        );
    }

    // Second sync of unchanged content: no blob bytes at all.
    let before = proxy.blob_bytes();
    let (ok, report2, stderr) = sync_json(&pol).await;
    assert!(ok, "{report2:#} {stderr}");
    assert_eq!(proxy.blob_bytes(), before, "no-op sync read blobs");
    assert_eq!(report2["copied"], 0, "{report2:#}");
    assert_eq!(report2["skipped"].as_u64(), Some(corpus.tags.len() as u64));
    for d in report2["destinations"].as_array().expect("dests") {
        assert_eq!(d["bytesWritten"], 0, "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_respects_filters_rewrite_overwrite_and_deletion() {
    require_tools();
    let src = Registry::start().await;
    let dst = Registry::start().await;
    let p = Pusher::new(&src.url());
    let l = layer(&[("a", b"a")]);
    for tag in ["v1.0.0", "v1.5.0", "v2.0.0", "dev"] {
        p.image(
            "library/app",
            Some(tag),
            "amd64",
            std::slice::from_ref(&l),
            false,
        )
        .await;
    }
    // The destination already has v1.5.0 pointing elsewhere, and an old in-scope tag.
    let dp = Pusher::new(&dst.url());
    let other = layer(&[("b", b"b")]);
    dp.image(
        "mirror/app",
        Some("v1.5.0"),
        "amd64",
        std::slice::from_ref(&other),
        false,
    )
    .await;
    dp.image(
        "mirror/app",
        Some("v1.1.0"),
        "arm64",
        std::slice::from_ref(&other),
        false,
    )
    .await;

    let dir = TempDir::new("filters");
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("d", dst.url(), None)],
        "  tags:\n    semver: \">=1, <2\"\n  rewrite:\n    stripPrefix: library/\n    prefix: mirror\n  overwrite: false\n  deletion: true\n",
    );
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["conflicts"], 1, "{report:#}");
    assert_eq!(report["deleted"], 1, "{report:#}");
    let mut tags = list_tags(&dst.url(), "mirror/app").await;
    tags.sort();
    assert_eq!(tags, vec!["v1.0.0".to_string(), "v1.5.0".to_string()]);
    // The conflicting tag was left alone.
    let at_dest = skopeo_raw(&dst.host(), "mirror/app:v1.5.0").expect("tag");
    let at_src = skopeo_raw(&src.host(), "library/app:v1.5.0").expect("tag");
    assert_ne!(at_dest, at_src);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_through_an_oci_layout_and_with_basic_auth() {
    require_tools();
    let src = Registry::start().await;
    let dst = Registry::start_with_auth().await;
    let p = Pusher::new(&src.url());
    let a = p
        .image("x/img", None, "amd64", &[layer(&[("f", b"1")])], false)
        .await;
    let b = p
        .image("x/img", None, "arm64", &[layer(&[("f", b"2")])], false)
        .await;
    let idx = p
        .index("x/img", "t1", &[(a, "amd64"), (b, "arm64")], false)
        .await;
    let dir = TempDir::new("layout");
    let layout = format!("oci:{}:t1", dir.path().join("lay").display());

    let out = flotilla(&[
        "copy",
        "--src-insecure",
        &format!("{}/x/img:t1", src.host()),
        &layout,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let auth = dir.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"username":"alice","password":"s3cret"}}}}}}"#,
            dst.host()
        ),
    )
    .expect("authfile");
    let auth = auth.to_str().expect("path");
    let target = format!("{}/y/img:t2", dst.host());
    let out = flotilla(&[
        "copy",
        "--dest-insecure",
        "--authfile",
        auth,
        &layout,
        &target,
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(registry::skopeo_raw_as("alice:s3cret", &target), idx);

    // Wrong credentials: one clear line, nothing written.
    std::fs::write(
        dir.path().join("bad.json"),
        format!(
            r#"{{"auths":{{"{}":{{"username":"alice","password":"nope"}}}}}}"#,
            dst.host()
        ),
    )
    .expect("authfile");
    let bad = dir.path().join("bad.json");
    let out = flotilla(&[
        "copy",
        "--dest-insecure",
        "--authfile",
        bad.to_str().expect("path"),
        &layout,
        &format!("{}/z/img:t3", dst.host()),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("rejected the credentials"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_one_clear_line_and_changes_nothing() {
    require_tools();
    let src = Registry::start().await;
    let dst = Registry::start().await;
    let p = Pusher::new(&src.url());
    p.image("r", Some("v1"), "amd64", &[layer(&[("f", b"x")])], false)
        .await;
    let dir = TempDir::new("bad");

    let one_line = |out: &std::process::Output, needle: &str| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "should fail: {err}");
        assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
        assert!(err.contains(needle), "{needle:?} not in {err}");
    };

    // Unreachable destination.
    let pol = policy(
        dir.path(),
        &src.url(),
        &[("d", "http://127.0.0.1:1".into(), None)],
        "",
    );
    let out = flotilla(&["sync", "-f", pol.to_str().expect("p")]).await;
    one_line(&out, "cannot reach registry 127.0.0.1:1");
    // Missing tag.
    let out = flotilla(&[
        "copy",
        "--src-insecure",
        "--dest-insecure",
        &format!("{}/r:nope", src.host()),
        &format!("{}/r:nope", dst.host()),
    ])
    .await;
    one_line(&out, "nope not found");
    // Malformed policy files.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kind: ReplicationPolicy\nspec:\n  source: [oops\n").expect("write");
    let out = flotilla(&["sync", "-f", bad.to_str().expect("p")]).await;
    one_line(&out, "bad.yaml");
    std::fs::write(
        &bad,
        "kind: ReplicationPolicy\nspec:\n  source: {registryRef: {name: hq}}\n  destinations: [{name: a, url: 'http://x'}]\n",
    )
    .expect("write");
    let out = flotilla(&["sync", "-f", bad.to_str().expect("p")]).await;
    one_line(&out, "set url");
    // Nothing reached the destination.
    assert!(list_tags(&dst.url(), "r").await.is_empty());
}
