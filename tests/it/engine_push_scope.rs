//! A run scoped to what notifications named (`SyncScope::Only`), against real registries:
//! it copies exactly the named artifacts by reference, reading neither the catalog nor a tag
//! list (every request counted by a proxy in front of each registry), and gives them what a
//! full sync gives them: the same filters, rewrite, platform selection and referrers. Deletes
//! travel by digest, only with deletion sync and only once the source lacks the digest.
//! Unreachable destinations come back as typed values when the run is told to skip them.

use crate::support::registry;

use flotilla::engine::client::EndpointConfig;
use flotilla::engine::config::OnUnreachable;
use flotilla::engine::digest::Digest;
use flotilla::engine::rewrite::Rewrite;
use flotilla::engine::sync::{Role, SyncError};
use flotilla::engine::{DestinationConfig, Named, SyncConfig, SyncScope, TagRules};
use registry::*;

fn endpoint(url: &str) -> EndpointConfig {
    EndpointConfig {
        url: url.to_string(),
        insecure: true,
        ..Default::default()
    }
}

fn dest(name: &str, url: &str) -> DestinationConfig {
    DestinationConfig {
        name: name.into(),
        from: None,
        endpoint: endpoint(url),
    }
}

/// The policy of these tests: `apps/**`, tags `v*`, renamed under `mirror/`, amd64 only,
/// referrers on.
fn policy(source: &str, dests: &[(&str, String)]) -> SyncConfig {
    SyncConfig {
        source: endpoint(source),
        destinations: dests.iter().map(|(n, u)| dest(n, u)).collect(),
        repositories_include: vec!["apps/**".into()],
        tags: TagRules {
            include: vec!["v*".into()],
            ..Default::default()
        },
        platforms: vec!["linux/amd64".into()],
        rewrite: Rewrite {
            strip_prefix: None,
            prefix: Some("mirror".into()),
        },
        ..Default::default()
    }
}

fn pushed(repository: &str, tag: &str) -> Named {
    Named::Pushed {
        repository: repository.into(),
        tag: tag.into(),
    }
}

/// Every request a proxy saw.
fn seen(p: &Proxy) -> Vec<String> {
    p.stats.seen.lock().expect("seen").clone()
}

fn listings(requests: &[String]) -> Vec<&String> {
    requests
        .iter()
        .filter(|r| r.contains("/_catalog") || r.contains("/tags/list"))
        .collect()
}

/// Tag → digest of `repo` at `base` (listing and HEADs made by the test, not the engine).
async fn tag_digests(base: &str, repo: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in list_tags(base, repo).await {
        let raw = skopeo_raw(base.trim_start_matches("http://"), &format!("{repo}:{t}"))
            .unwrap_or_else(|| panic!("{repo}:{t} at {base}"));
        out.push((t, sha256(&raw)));
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_scoped_run_copies_exactly_what_was_named_without_listing() {
    require_tools();
    let src = Registry::start().await;
    let p = Pusher::new(&src.url());
    let base = layer(&[("etc/os-release", b"NAME=scope\n")]);
    let amd = p
        .image(
            "apps/web",
            None,
            "amd64",
            std::slice::from_ref(&base),
            false,
        )
        .await;
    let arm = p
        .image(
            "apps/web",
            None,
            "arm64",
            &[layer(&[("bin/arm", &pseudo_random(7, 4096))])],
            false,
        )
        .await;
    let idx = p
        .index(
            "apps/web",
            "v1",
            &[(amd.clone(), "amd64"), (arm, "arm64")],
            false,
        )
        .await;
    p.signature("apps/web", &idx, OCI_INDEX, "sig").await;
    p.image(
        "apps/web",
        Some("v2"),
        "amd64",
        std::slice::from_ref(&base),
        false,
    )
    .await;
    p.manifest("apps/web", "latest", OCI_INDEX, &idx).await;
    p.image(
        "apps/api",
        Some("v1"),
        "amd64",
        std::slice::from_ref(&base),
        false,
    )
    .await;
    p.image("other/x", Some("v1"), "amd64", &[base], false)
        .await;

    // The oracle: a full sync of the same policy to its own registry.
    let full = Registry::start().await;
    let report = flotilla::engine::sync::run(&policy(&src.url(), &[("full", full.url())]))
        .await
        .expect("full sync");
    assert!(report.success(), "{:?}", report.failures);

    let dests = Registry::start_many::<3>().await;
    let src_proxy = Proxy::start(&src.url(), Faults::default()).await;
    let mut dest_proxies = Vec::new();
    for d in &dests {
        dest_proxies.push(Proxy::start(&d.url(), Faults::default()).await);
    }
    let named: Vec<(&str, String)> = ["a", "b", "c"]
        .into_iter()
        .zip(dest_proxies.iter().map(Proxy::url))
        .collect();
    let mut cfg = policy(&src_proxy.url(), &named);
    cfg.scope = SyncScope::Only(vec![
        pushed("apps/web", "v1"),
        pushed("apps/web", "latest"),
        pushed("apps/api", "v1"),
        pushed("other/x", "v1"),
    ]);
    let report = flotilla::engine::sync::run(&cfg)
        .await
        .expect("scoped sync");
    assert!(report.success(), "{:?}", report.failures);

    let source_requests = seen(&src_proxy);
    println!(
        "source requests of the scoped run: {} ({source_requests:?})",
        source_requests.len()
    );
    assert!(listings(&source_requests).is_empty(), "{source_requests:?}");
    assert!(
        !source_requests.iter().any(|r| r.contains("other/x")
            || r.contains("/manifests/v2")
            || r.contains("/manifests/latest")),
        "a repository or tag outside the filters, or not named, was read: {source_requests:?}"
    );
    for dp in &dest_proxies {
        let r = seen(dp);
        assert!(listings(&r).is_empty(), "{r:?}");
    }
    // What the full sync gave the named tags, each destination has; nothing else.
    let want_web: Vec<(String, String)> = tag_digests(&full.url(), "mirror/apps/web")
        .await
        .into_iter()
        .filter(|(t, _)| t != "v2")
        .collect();
    assert_eq!(want_web.len(), 2, "v1 and its signature: {want_web:?}");
    let want_api = tag_digests(&full.url(), "mirror/apps/api").await;
    for d in &dests {
        assert_eq!(tag_digests(&d.url(), "mirror/apps/web").await, want_web);
        assert_eq!(tag_digests(&d.url(), "mirror/apps/api").await, want_api);
        assert!(list_tags(&d.url(), "mirror/other/x").await.is_empty());
    }
    // The index kept its amd64 child only (a new digest), as in the full sync.
    let v1 = want_web.iter().find(|(t, _)| t == "v1").expect("v1");
    assert_ne!(v1.1, sha256(&idx), "the platform filter made a new index");

    // A signature pushed later, by its tag alone, travels to the destinations holding its
    // subject (by the subject's digest, no listing).
    let before = seen(&src_proxy).len();
    let api = skopeo_raw(&src.host(), "apps/api:v1").expect("api");
    p.signature("apps/api", &api, OCI_MANIFEST, "sig").await;
    let sig_tag = format!("sha256-{}.sig", &sha256(&api)[7..]);
    cfg.scope = SyncScope::Only(vec![pushed("apps/api", &sig_tag)]);
    let report = flotilla::engine::sync::run(&cfg).await.expect("signature");
    assert!(report.success(), "{:?}", report.failures);
    let later = seen(&src_proxy)[before..].to_vec();
    assert!(listings(&later).is_empty(), "{later:?}");
    for d in &dests {
        assert!(
            list_tags(&d.url(), "mirror/apps/api")
                .await
                .contains(&sig_tag),
            "signature not copied to {}",
            d.url()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletes_travel_by_digest_only_with_deletion_sync_and_once_the_source_lacks_them() {
    require_tools();
    let src = Registry::start().await;
    let p = Pusher::new(&src.url());
    let keep = p
        .image(
            "apps/web",
            Some("v1"),
            "amd64",
            &[layer(&[("a", b"keep")])],
            false,
        )
        .await;
    let gone = p
        .image(
            "apps/api",
            Some("v1"),
            "amd64",
            &[layer(&[("b", b"gone")])],
            false,
        )
        .await;
    let dests = Registry::start_many::<3>().await;
    let proxies = [
        Proxy::start(&dests[0].url(), Faults::default()).await,
        Proxy::start(&dests[1].url(), Faults::default()).await,
        Proxy::start(&dests[2].url(), Faults::default()).await,
    ];
    let urls: Vec<(&str, String)> = ["a", "b", "c"]
        .into_iter()
        .zip(proxies.iter().map(Proxy::url))
        .collect();
    let mut cfg = policy(&src.url(), &urls);
    cfg.platforms.clear();
    cfg.scope = SyncScope::Only(vec![pushed("apps/web", "v1"), pushed("apps/api", "v1")]);
    let report = flotilla::engine::sync::run(&cfg).await.expect("copy");
    assert_eq!(report.copied, 2, "{:?}", report.failures);

    let gone_digest: Digest = sha256(&gone).parse().expect("digest");
    let keep_digest: Digest = sha256(&keep).parse().expect("digest");
    let del = std::process::Command::new("curl")
        .args(["-sf", "-X", "DELETE"])
        .arg(format!("{}/v2/apps/api/manifests/{gone_digest}", src.url()))
        .status()
        .expect("curl");
    assert!(del.success(), "cannot delete at the source");
    let deleted = |digest: &Digest, repo: &str| Named::Deleted {
        repository: repo.into(),
        digest: digest.clone(),
        tag: None,
    };
    cfg.scope = SyncScope::Only(vec![
        deleted(&gone_digest, "apps/api"),
        deleted(&keep_digest, "apps/web"),
    ]);
    // Without deletion sync nothing goes.
    let report = flotilla::engine::sync::run(&cfg)
        .await
        .expect("no deletion");
    assert_eq!(report.deleted, 0);
    for d in &dests {
        assert!(has_manifest(&d.url(), "mirror/apps/api", gone_digest.as_str()).await);
    }
    // With tag rules, a digest says nothing of the tags pointing at it: left to the full
    // sync, which compares tag lists.
    cfg.deletion = true;
    let report = flotilla::engine::sync::run(&cfg).await.expect("tag rules");
    assert_eq!(report.deleted, 0);
    // Without them, the digest the source lacks goes everywhere; the one it still serves
    // stays.
    cfg.tags = TagRules::default();
    let report = flotilla::engine::sync::run(&cfg).await.expect("deletion");
    assert!(report.success(), "{:?}", report.failures);
    assert_eq!(report.deleted, 3);
    for d in &dests {
        assert!(!has_manifest(&d.url(), "mirror/apps/api", gone_digest.as_str()).await);
        assert!(has_manifest(&d.url(), "mirror/apps/web", keep_digest.as_str()).await);
    }
    for pr in &proxies {
        let r = seen(pr);
        assert!(listings(&r).is_empty(), "{r:?}");
    }
    // Beyond maxDeletions, none is made.
    let again = p
        .image(
            "apps/api",
            Some("v1"),
            "amd64",
            &[layer(&[("b", b"again")])],
            false,
        )
        .await;
    cfg.scope = SyncScope::Only(vec![pushed("apps/api", "v1")]);
    flotilla::engine::sync::run(&cfg).await.expect("copy again");
    let again_digest: Digest = sha256(&again).parse().expect("digest");
    std::process::Command::new("curl")
        .args(["-sf", "-X", "DELETE"])
        .arg(format!(
            "{}/v2/apps/api/manifests/{again_digest}",
            src.url()
        ))
        .status()
        .expect("curl");
    cfg.max_deletions = 2;
    cfg.scope = SyncScope::Only(vec![deleted(&again_digest, "apps/api")]);
    let report = flotilla::engine::sync::run(&cfg).await.expect("withheld");
    assert_eq!((report.deleted, report.deletions_withheld), (0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unreachable_destinations_are_typed_and_skipped_on_request() {
    require_tools();
    let src = Registry::start().await;
    Pusher::new(&src.url())
        .image(
            "apps/web",
            Some("v1"),
            "amd64",
            &[layer(&[("a", b"x")])],
            false,
        )
        .await;
    let up = Registry::start().await;
    let closed = format!("http://127.0.0.1:{}", free_port());
    let mut cfg = policy(&src.url(), &[("up", up.url()), ("down", closed.clone())]);
    cfg.platforms.clear();
    cfg.destinations.push(DestinationConfig {
        name: "city".into(),
        from: Some("down".into()),
        endpoint: endpoint(&up.url()),
    });
    match flotilla::engine::sync::run(&cfg).await {
        Err(SyncError::Endpoint {
            role: Role::Destination { name, url },
            ..
        }) => assert_eq!((name.as_str(), url.as_str()), ("down", closed.as_str())),
        other => panic!("expected the destination down to stop the run: {other:?}"),
    }
    cfg.unreachable = OnUnreachable::Skip;
    let report = flotilla::engine::sync::run(&cfg).await.expect("skipping");
    let left_out: Vec<(&str, Option<&str>)> = report
        .unreachable
        .iter()
        .map(|u| (u.destination.as_str(), u.via.as_deref()))
        .collect();
    assert_eq!(left_out, [("down", None), ("city", Some("down"))]);
    assert!(has_tag(&up.url(), "mirror/apps/web", "v1").await);
    assert!(!report.success());
    let up_report = report
        .destinations
        .iter()
        .find(|d| d.name == "up")
        .expect("up");
    assert_eq!((up_report.copied, up_report.failed), (1, 0));
    // With no destination left, the run copies nothing and names each.
    cfg.destinations.retain(|d| d.name == "down");
    let report = flotilla::engine::sync::run(&cfg)
        .await
        .expect("all left out");
    assert_eq!((report.copied, report.unreachable.len()), (0, 1));
    assert!(!report.success());
}

async fn has_tag(base: &str, repo: &str, tag: &str) -> bool {
    list_tags(base, repo).await.iter().any(|t| t == tag)
}

/// Distribution sends a push's notification once the manifest is stored and links the tag
/// only after that, so a run the notification started can find no tag yet. The source here
/// answers the first two lookups of the tag with 404, as it would in that moment: the run
/// looks again and copies it, instead of reporting success with nothing copied.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_named_tag_the_source_links_late_is_copied_not_lost() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    require_tools();
    let src = Registry::start().await;
    let digest = Pusher::new(&src.url())
        .image(
            "apps/web",
            Some("v7"),
            "amd64",
            &[layer(&[("late.bin", &pseudo_random(11, 2048))])],
            false,
        )
        .await;
    let lookups = Arc::new(AtomicU32::new(0));
    let counted = lookups.clone();
    let answer: Answer = Arc::new(move |_, path_q| {
        let path = path_q.split('?').next().unwrap_or(path_q);
        let tag_lookup = path == "/v2/apps/web/manifests/v7";
        (tag_lookup && counted.fetch_add(1, Ordering::SeqCst) < 2).then(|| {
            axum::response::Response::builder()
                .status(404)
                .header("content-type", "application/json")
                .body(axum::body::Body::from(
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                ))
                .expect("response")
        })
    });
    let faults = Faults {
        answer: Some(answer),
        ..Default::default()
    };
    let proxy = Proxy::start(&src.url(), faults).await;
    let dst = Registry::start().await;
    let cfg = SyncConfig {
        scope: SyncScope::Only(vec![pushed("apps/web", "v7")]),
        ..policy(&proxy.url(), &[("d", dst.url())])
    };
    let report = flotilla::engine::sync::run(&cfg).await.expect("the run");
    assert!(report.success(), "{:?}", report.failures);
    assert_eq!(report.copied, 1, "the late tag was copied");
    assert!(
        lookups.load(Ordering::SeqCst) >= 3,
        "the tag was looked up again"
    );
    let at_dest = skopeo_raw(&dst.host(), "mirror/apps/web:v7").expect("at the destination");
    assert_eq!(sha256(&at_dest), sha256(&digest));
}
