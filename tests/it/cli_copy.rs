//! `flotilla copy` with what `flotilla sync` has: `--src-ca-file` / `--dest-ca-file` (a
//! private CA made with `openssl`, trusted for one side only) and `--platform` (a
//! multi-platform index reduced as a policy's `platforms` does), against real
//! `docker-registry` processes, with skopeo as the oracle.

use crate::support::registry;

use registry::*;

/// Runs `flotilla copy ARGS -o json`: (exit code, summary or null, stderr).
async fn copy_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut all = vec!["copy"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = flotilla(&all).await;
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (
        out.status.code(),
        report,
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Asserts a one-line error (exit 2) containing every one of `needles`.
fn assert_one_line_error(code: Option<i32>, stderr: &str, needles: &[&str]) {
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "not one line: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{n:?} missing from: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_files_trust_each_side_and_bad_files_fail_naming_the_flag() {
    require_tools();
    require_openssl();
    let dir = TempDir::new("copy-ca");
    // Two registries with certificates of two different private CAs.
    let ca_a = TestCa::new(dir.path(), "flotilla-ca-a");
    let ca_b = TestCa::new(dir.path(), "flotilla-ca-b");
    let (cert_a, key_a) = ca_a.server_cert("registry-a");
    let (cert_b, key_b) = ca_b.server_cert("registry-b");
    let plain = Registry::start().await;
    let tls_a = Registry::start_tls(&cert_a, &key_a).await;
    let tls_b = Registry::start_tls(&cert_b, &key_b).await;
    let m = Pusher::new(&plain.url())
        .image(
            "secure/app",
            Some("v1"),
            "amd64",
            &[layer(&[("f", b"ca files")])],
            false,
        )
        .await;
    let ca_a_path = ca_a.cert.to_str().expect("path");
    let ca_b_path = ca_b.cert.to_str().expect("path");
    let from_plain = format!("{}/secure/app:v1", plain.host());
    let to_a = format!("{}/secure/app:v1", tls_a.host());
    let to_b = format!("{}/secure/app:v1", tls_b.host());

    // Without a CA file: untrusted, and the error names the flag that fixes it.
    let (code, _, err) = copy_json(&["--src-insecure", &from_plain, &to_a]).await;
    assert_one_line_error(
        code,
        &err,
        &[
            "destination",
            &tls_a.host(),
            "certificate",
            "--dest-ca-file",
        ],
    );

    // Missing file, no certificate in it, broken PEM: one line naming the flag and file.
    let missing = dir.path().join("nowhere.pem");
    let missing = missing.to_str().expect("path");
    let (code, _, err) = copy_json(&[
        "--src-insecure",
        "--dest-ca-file",
        missing,
        &from_plain,
        &to_a,
    ])
    .await;
    assert_one_line_error(code, &err, &["--dest-ca-file", missing, "cannot read"]);
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "just some text\n").expect("write");
    let not_pem = not_pem.to_str().expect("path");
    let (code, _, err) = copy_json(&["--src-ca-file", not_pem, &to_a, &to_b]).await;
    assert_one_line_error(
        code,
        &err,
        &["--src-ca-file", not_pem, "no PEM certificate"],
    );
    let broken = dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let broken = broken.to_str().expect("path");
    let (code, _, err) = copy_json(&[
        "--src-insecure",
        "--dest-ca-file",
        broken,
        &from_plain,
        &to_a,
    ])
    .await;
    assert_one_line_error(
        code,
        &err,
        &["--dest-ca-file", broken, "not a valid certificate"],
    );
    assert!(
        list_tags(&plain.url(), "secure/app")
            .await
            .contains(&"v1".to_string())
    );

    // The right CA: copied byte for byte.
    let (code, report, err) = copy_json(&[
        "--src-insecure",
        "--dest-ca-file",
        ca_a_path,
        &from_plain,
        &to_a,
    ])
    .await;
    assert_eq!(code, Some(0), "{report:#} {err} {}", tls_a.log());
    assert_eq!(report["copied"], 1, "{report:#}");
    assert_eq!(skopeo_raw_trusting(dir.path(), &ca_a.cert, &to_a), m);

    // HTTPS to HTTPS: each flag trusts its own side only (swapped, the source fails).
    let (code, _, err) = copy_json(&[
        "--src-ca-file",
        ca_b_path,
        "--dest-ca-file",
        ca_a_path,
        &to_a,
        &to_b,
    ])
    .await;
    assert_one_line_error(code, &err, &["source", &tls_a.host(), "--src-ca-file"]);
    let (code, report, err) = copy_json(&[
        "--src-ca-file",
        ca_a_path,
        "--dest-ca-file",
        ca_b_path,
        &to_a,
        &to_b,
    ])
    .await;
    assert_eq!(code, Some(0), "{report:#} {err}");
    assert_eq!(report["copied"], 1, "{report:#}");
    assert_eq!(skopeo_raw_trusting(dir.path(), &ca_b.cert, &to_b), m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_flag_reduces_an_index_like_a_policy() {
    require_tools();
    let src = Registry::start().await;
    let dst = Registry::start().await;
    let p = Pusher::new(&src.url());
    let base = layer(&[("etc/os-release", b"NAME=copy-platforms\n")]);
    let mut images = Vec::new();
    for (i, arch) in ["amd64", "arm64", "s390x"].into_iter().enumerate() {
        let own = layer(&[("bin/app", &pseudo_random(20 + i as u64, 100_000))]);
        let m = p
            .image("apps/multi", None, arch, &[base.clone(), own], false)
            .await;
        images.push((m, arch));
    }
    let idx = p.index("apps/multi", "v1", &images, false).await;
    let from = format!("{}/apps/multi:v1", src.host());
    let digest_of = |arch: &str| {
        images
            .iter()
            .find(|(_, a)| *a == arch)
            .map(|(m, _)| sha256(m))
            .expect("arch")
    };

    // Two platforms of three: a new index of those two, complete at the destination.
    let to = format!("{}/apps/two:v1", dst.host());
    let args = [
        "--src-insecure",
        "--dest-insecure",
        "--platform",
        "linux/amd64",
        "--platform",
        "linux/arm64",
        from.as_str(),
        to.as_str(),
    ];
    let (code, report, err) = copy_json(&args).await;
    assert_eq!(code, Some(0), "{report:#} {err}");
    assert_eq!(report["copied"], 1, "{report:#}");
    assert_eq!(report["platformFiltered"], 1, "{report:#}");
    let raw = skopeo_raw(&dst.host(), "apps/two:v1").expect("filtered index");
    assert_ne!(sha256(&raw), sha256(&idx), "must be a new index");
    assert_eq!(
        index_children(&raw),
        vec![
            (digest_of("amd64"), "amd64".to_string()),
            (digest_of("arm64"), "arm64".to_string())
        ]
    );
    assert!(complete(&dst.url(), "apps/two", "v1").await);
    assert!(!has_manifest(&dst.url(), "apps/two", &digest_of("s390x")).await);
    // Again: the destination holds the filtered digest, nothing is copied.
    let (code, report, err) = copy_json(&args).await;
    assert_eq!(code, Some(0), "{report:#} {err}");
    assert_eq!(report["skipped"], 1, "{report:#}");
    assert_eq!(report["destinations"][0]["bytesWritten"], 0, "{report:#}");

    // No platform of the index: nothing copied, reported (not a failure, as in a policy).
    let to = format!("{}/apps/none:v1", dst.host());
    let (code, report, err) = copy_json(&[
        "--src-insecure",
        "--dest-insecure",
        "--platform",
        "windows/amd64",
        &from,
        &to,
    ])
    .await;
    assert_eq!(code, Some(0), "{report:#} {err}");
    assert_eq!(report["platformUnmatched"], 1, "{report:#}");
    assert_eq!(report["copied"], 0, "{report:#}");
    assert!(list_tags(&dst.url(), "apps/none").await.is_empty());

    // Every platform: the source index byte for byte (text summary without a filter line).
    let to = format!("{}/apps/all:v1", dst.host());
    let mut all = vec!["copy", "--src-insecure", "--dest-insecure"];
    for a in ["linux/amd64", "linux/arm64", "linux/s390x"] {
        all.extend_from_slice(&["--platform", a]);
    }
    all.extend_from_slice(&[&from, &to]);
    let out = flotilla(&all).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("1 copied"), "{text}");
    assert!(!text.contains("wanted platforms"), "{text}");
    assert_eq!(skopeo_raw(&dst.host(), "apps/all:v1"), Some(idx));

    // A malformed platform: refused before anything runs, naming the flag.
    let out = flotilla(&["copy", "--platform", "linux", &from, &to]).await;
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--platform") && err.contains("os/arch"),
        "{err}"
    );
}
