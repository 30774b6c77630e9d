//! Foreign (Docker `…rootfs.foreign.diff.tar.gzip`) and non-distributable (OCI
//! `…layer.nondistributable.v1.tar+gzip`) layers against real `docker-registry` 2.8
//! processes: the manifest is copied byte for byte, the layer (whose blob lives at its
//! `urls`, not in any registry) is not, and the summary counts it.
//!
//! Distribution 2.8 refuses such manifests with its default configuration: when
//! `validation.manifests.urls` has neither `allow` nor `deny`, it allows no URL at all
//! (`^$`). The registries here allow `https://` URLs, as an operator serving such images
//! must; the first assertion shows the default refusing.

use crate::support::registry;

use registry::*;

/// What a registry needs to accept layers with external `urls`.
const ALLOW_URLS: &str =
    "validation:\n  manifests:\n    urls:\n      allow:\n        - ^https://\n";

const DOCKER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
const OCI_NONDISTRIBUTABLE: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// An image of one ordinary layer (pushed) and one external layer (not pushed: its blob
/// is only at its URL). Returns (manifest media type, manifest bytes, external digest,
/// ordinary layer digest).
async fn external_layer_image(
    p: &Pusher,
    repo: &str,
    docker: bool,
) -> (&'static str, Vec<u8>, String, String) {
    let ordinary = layer(&[("etc/motd", b"hello\n")]);
    let external = layer(&[("Windows/System32/kernel.dll", &pseudo_random(9, 50_000))]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "windows",
        "rootfs": {"type": "layers", "diff_ids": [&external.1, &ordinary.1]},
    }))
    .expect("config");
    p.blob(repo, &config).await;
    let ordinary_digest = p.blob(repo, &ordinary.0).await;
    let external_digest = sha256(&external.0);
    let (mt, config_mt, layer_mt, external_mt) = if docker {
        (
            DOCKER_MANIFEST,
            "application/vnd.docker.container.image.v1+json",
            DOCKER_LAYER,
            DOCKER_FOREIGN,
        )
    } else {
        (
            OCI_MANIFEST,
            "application/vnd.oci.image.config.v1+json",
            OCI_LAYER,
            OCI_NONDISTRIBUTABLE,
        )
    };
    let mut ext = desc(external_mt, &external.0);
    ext["urls"] = serde_json::json!([format!(
        "https://layers.example.invalid/{}",
        external_digest
    )]);
    let m = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2, "mediaType": mt,
        "config": desc(config_mt, &config),
        "layers": [ext, desc(layer_mt, &ordinary.0)],
    }))
    .expect("manifest");
    (mt, m, external_digest, ordinary_digest)
}

async fn blob_exists(base: &str, repo: &str, digest: &str) -> bool {
    reqwest::Client::new()
        .head(format!("{base}/v2/{repo}/blobs/{digest}"))
        .send()
        .await
        .expect("head blob")
        .status()
        .is_success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_layers_are_left_at_their_urls_and_counted() {
    require_tools();
    let dir = TempDir::new("foreign");

    // Distribution 2.8's default: no URL is allowed, the manifest is refused.
    let default = Registry::start().await;
    let p = Pusher::new(&default.url());
    let (mt, m, external, _) = external_layer_image(&p, "win/app", true).await;
    let r = reqwest::Client::new()
        .put(format!("{}/v2/win/app/manifests/v1", default.url()))
        .header("content-type", mt)
        .body(m)
        .send()
        .await
        .expect("put manifest");
    let status = r.status();
    let body = r.text().await.unwrap_or_default();
    // 2.8 answers 500 (an "invalid URL on layer" rendered as UNKNOWN) plus
    // MANIFEST_BLOB_UNKNOWN naming the layer.
    assert!(
        !status.is_success() && body.contains("MANIFEST_BLOB_UNKNOWN") && body.contains(&external),
        "default config refuses URLs: {status} {body}"
    );
    drop(default);

    let src = Registry::start_with_extra(ALLOW_URLS).await;
    let text_dest = Registry::start_with_extra(ALLOW_URLS).await;
    let json_dest = Registry::start_with_extra(ALLOW_URLS).await;
    let p = Pusher::new(&src.url());
    let mut images = Vec::new();
    for (repo, docker) in [("win/docker", true), ("win/oci", false)] {
        let (mt, m, external, ordinary) = external_layer_image(&p, repo, docker).await;
        p.manifest(repo, "v1", mt, &m).await;
        assert!(!blob_exists(&src.url(), repo, &external).await);
        images.push((repo, m, external, ordinary));
    }

    let text_policy = policy(
        dir.path(),
        &src.url(),
        &[("text", text_dest.url(), None)],
        "",
    );
    let out = flotilla(&["sync", "-f", text_policy.to_str().expect("path")]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout} {} {}",
        String::from_utf8_lossy(&out.stderr),
        text_dest.log()
    );
    assert!(stdout.contains("2 copied"), "{stdout}");
    assert!(
        stdout.contains("2 foreign/non-distributable layers not copied"),
        "{stdout}"
    );

    let json_policy = policy(
        dir.path(),
        &src.url(),
        &[("json", json_dest.url(), None)],
        "",
    );
    let (ok, report, stderr) = sync_json(&json_policy).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["copied"], 2, "{report:#}");
    assert_eq!(report["foreignLayersSkipped"], 2, "{report:#}");

    for dest in [&text_dest, &json_dest] {
        for (repo, m, external, ordinary) in &images {
            let raw = skopeo_raw(&dest.host(), &format!("{repo}:v1"));
            assert_eq!(
                raw.as_deref(),
                Some(m.as_slice()),
                "{repo} at {}",
                dest.url()
            );
            assert!(
                !blob_exists(&dest.url(), repo, external).await,
                "external layer of {repo} was copied to {}",
                dest.url()
            );
            assert!(blob_exists(&dest.url(), repo, ordinary).await);
        }
    }

    // A destination with the default configuration refuses the manifest: the artifact
    // fails there, with a line that says why and what to configure.
    let plain = Registry::start().await;
    let plain_policy = policy(dir.path(), &src.url(), &[("plain", plain.url(), None)], "");
    let (ok, report, _) = sync_json(&plain_policy).await;
    assert!(!ok, "{report:#}");
    assert_eq!(report["failed"], 2, "{report:#}");
    for f in report["failures"].as_array().expect("failures") {
        let e = f["error"].as_str().unwrap_or_default();
        assert!(
            e.contains("foreign/non-distributable")
                && e.contains("validation.manifests.urls.allow"),
            "{e}"
        );
    }

    // A re-sync finds everything in place and reads no layer.
    let (ok, report, stderr) = sync_json(&json_policy).await;
    assert!(ok, "{report:#} {stderr}");
    assert_eq!(report["skipped"], 2, "{report:#}");
    assert_eq!(report["copied"], 0, "{report:#}");
}

/// An ordinary layer (`…image.layer.v1.tar+gzip`) may carry `urls` too: alternative places
/// to fetch it. When the source holds its blob it is copied like any layer; when it does
/// not, it is left at its URLs and counted, as a foreign layer is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_layer_with_urls_is_copied_when_the_source_holds_it() {
    require_tools();
    let dir = TempDir::new("urls");
    let src = Registry::start_with_extra(ALLOW_URLS).await;
    let dest = Registry::start_with_extra(ALLOW_URLS).await;
    let p = Pusher::new(&src.url());
    let held = layer(&[("opt/held", &pseudo_random(41, 30_000))]);
    let away = layer(&[("opt/away", &pseudo_random(42, 30_000))]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [&held.1, &away.1]},
    }))
    .expect("config");
    p.blob("app/urls", &config).await;
    let held_digest = p.blob("app/urls", &held.0).await;
    let away_digest = sha256(&away.0);
    let with_urls = |bytes: &[u8], digest: &str| {
        let mut d = desc(OCI_LAYER, bytes);
        d["urls"] = serde_json::json!([format!("https://mirror.example.invalid/{digest}")]);
        d
    };
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": desc("application/vnd.oci.image.config.v1+json", &config),
        "layers": [with_urls(&held.0, &held_digest), with_urls(&away.0, &away_digest)],
    }))
    .expect("manifest");
    p.manifest("app/urls", "v1", OCI_MANIFEST, &m).await;
    assert!(!blob_exists(&src.url(), "app/urls", &away_digest).await);

    let pol = policy(dir.path(), &src.url(), &[("d", dest.url(), None)], "");
    let (ok, report, stderr) = sync_json(&pol).await;
    assert!(ok, "{report:#} {stderr} {}", dest.log());
    assert_eq!(report["copied"], 1, "{report:#}");
    assert_eq!(report["foreignLayersSkipped"], 1, "{report:#}");
    assert_eq!(
        skopeo_raw(&dest.host(), "app/urls:v1").as_deref(),
        Some(m.as_slice())
    );
    assert!(
        blob_exists(&dest.url(), "app/urls", &held_digest).await,
        "the layer the source holds was not copied"
    );
    assert!(!blob_exists(&dest.url(), "app/urls", &away_digest).await);
}
