//! `flotilla sync` against a source registry that misbehaves on purpose (support/hostile.rs in
//! front of a real `docker-registry`), with `deletion: true` and real destinations: each run
//! ends with a one-line error naming the registry and the repository, a bounded peak RSS,
//! nothing written outside the policy's scope and nothing deleted.

use crate::support::registry;

use crate::support::hostile;

use std::time::Duration;

use hostile::{HUGE, Misbehaviour, Thief};
use registry::*;

/// Retries that keep the faulty runs short; deletion on.
const SPEC: &str = "  deletion: true\n  retry:\n    maxAttempts: 2\n    initialBackoffMillis: 10\n";

/// A source with `app:v1`, `app:v2` and `base:v1`, and two destinations that a clean sync
/// made equal to it.
struct Fleet {
    dir: TempDir,
    src: Registry,
    dests: [Registry; 2],
}

impl Fleet {
    async fn start() -> Self {
        require_tools();
        let dir = TempDir::new("hostile");
        let src = Registry::start().await;
        let dests = Registry::start_many::<2>().await;
        let p = Pusher::new(&src.url());
        for (repo, tag) in [("app", "v1"), ("app", "v2"), ("base", "v1")] {
            let content = format!("{repo}-{tag}");
            p.image(
                repo,
                Some(tag),
                "amd64",
                &[layer(&[("f", content.as_bytes())])],
                false,
            )
            .await;
        }
        let f = Fleet { dir, src, dests };
        let pol = f.policy(&f.src.url(), SPEC);
        let (ok, report, stderr) = sync_json(&pol).await;
        assert!(ok && report["copied"] == 3, "{report:#} {stderr}");
        f
    }

    fn policy(&self, source: &str, extra: &str) -> std::path::PathBuf {
        policy(
            self.dir.path(),
            source,
            &[
                ("east", self.dests[0].url(), None),
                ("west", self.dests[1].url(), None),
            ],
            extra,
        )
    }

    /// `app:v3` at the source only, so that the next sync must read its manifest and blobs.
    async fn push_new_tag(&self) {
        Pusher::new(&self.src.url())
            .image(
                "app",
                Some("v3"),
                "amd64",
                &[layer(&[("f", b"three")])],
                false,
            )
            .await;
    }

    /// Whether no destination got `app:v3`.
    async fn new_tag_is_nowhere(&self) -> bool {
        for d in &self.dests {
            if list_tags(&d.url(), "app").await.contains(&"v3".to_string()) {
                return false;
            }
        }
        true
    }

    /// Every tag of every repository at each destination.
    async fn held(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        for d in &self.dests {
            let mut tags = Vec::new();
            for repo in ["app", "base"] {
                for t in list_tags(&d.url(), repo).await {
                    tags.push(format!("{repo}:{t}"));
                }
            }
            tags.sort();
            out.push(tags);
        }
        out
    }

    /// Runs a sync from the hostile `proxy` and checks what every hostile run must give: a
    /// failed run, each failure one line naming the proxy, peak RSS below the hostile body,
    /// every destination tag still there. Returns the report.
    async fn sync_through(&self, proxy: &Proxy, extra: &str) -> serde_json::Value {
        let before = self.held().await;
        let pol = self.policy(&proxy.url(), extra);
        let p = pol.to_str().expect("path");
        let args = ["sync", "-f", p, "-o", "json"];
        let run = flotilla_peak_rss(&args);
        let (status, peak_kib, stdout) = tokio::time::timeout(Duration::from_secs(180), run)
            .await
            .expect("flotilla sync must end on its own within 3 minutes");
        let report: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("sync output is not JSON ({e}): {stdout}"));
        assert!(
            !status.success(),
            "a hostile source must fail the run: {report:#}"
        );
        let failures = report["failures"].as_array().expect("failures");
        assert!(!failures.is_empty(), "{report:#}");
        for f in failures {
            let error = f["error"].as_str().unwrap_or_default();
            assert!(!error.contains('\n'), "one line: {error}");
            assert!(error.len() < 600, "short: {error}");
        }
        assert!(
            failures.iter().any(|f| f["error"]
                .as_str()
                .unwrap_or_default()
                .contains(&proxy.host())),
            "an error names the registry {}: {report:#}",
            proxy.host()
        );
        assert!(
            peak_kib * 1024 < HUGE as u64,
            "peak RSS {peak_kib} KiB: the hostile body was read into memory"
        );
        assert_eq!(report["deleted"], 0, "{report:#}");
        assert_eq!(
            self.held().await,
            before,
            "nothing deleted at the destinations"
        );
        report
    }
}

/// The failure whose artifact or message names `repo`.
fn failure_about<'a>(report: &'a serde_json::Value, repo: &str) -> &'a str {
    report["failures"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| {
            f["artifact"].as_str().is_some_and(|a| a.starts_with(repo))
                || f["error"].as_str().is_some_and(|e| e.contains(repo))
        })
        .and_then(|f| f["error"].as_str())
        .unwrap_or_else(|| panic!("no failure names {repo}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_manifest_is_refused_without_reading_it() {
    let f = Fleet::start().await;
    f.push_new_tag().await;
    let proxy = hostile::start(
        &f.src.url(),
        Misbehaviour::HugeManifest { repo: "app".into() },
    )
    .await;
    let report = f.sync_through(&proxy, SPEC).await;
    let e = failure_about(&report, "app");
    assert!(e.contains("larger than"), "{e}");
    assert!(
        f.new_tag_is_nowhere().await,
        "no tag points at an incomplete artifact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_longer_than_its_descriptor_is_cut_at_once() {
    let f = Fleet::start().await;
    f.push_new_tag().await;
    let proxy = hostile::start(
        &f.src.url(),
        Misbehaviour::EndlessBlobs { repo: "app".into() },
    )
    .await;
    // An endless stream ends the run only if it is cut when it passes the declared size.
    let report = f.sync_through(&proxy, SPEC).await;
    let e = failure_about(&report, "app");
    assert!(e.contains("longer than the"), "{e}");
    assert!(
        f.new_tag_is_nowhere().await,
        "no tag points at an incomplete artifact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_tag_page_endless_or_foreign_pagination_fail_the_listing_and_delete_nothing() {
    let f = Fleet::start().await;
    let thief = Thief::start().await;
    let cases = [
        (
            Misbehaviour::HugeTagPage { repo: "app".into() },
            "larger than",
        ),
        (Misbehaviour::SelfLink { repo: "app".into() }, "loops"),
        (
            Misbehaviour::ForeignLink {
                repo: "app".into(),
                to: thief.url(),
            },
            "another host",
        ),
    ];
    for (m, expected) in cases {
        let proxy = hostile::start(&f.src.url(), m.clone()).await;
        let report = f.sync_through(&proxy, SPEC).await;
        let e = failure_about(&report, "app");
        assert!(e.contains(expected), "{m:?}: {e}");
        assert_eq!(
            report["skipped"], 1,
            "base:v1 is served all the same: {report:#}"
        );
    }
    assert_eq!(
        thief.requests.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "a foreign Link is never followed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_cut_listing_is_never_read_as_no_tags() {
    let f = Fleet::start().await;
    let mut cases: Vec<Misbehaviour> = [404u16, 401, 403, 500]
        .into_iter()
        .map(|status| Misbehaviour::ListingStatus {
            repo: "app".into(),
            status,
        })
        .collect();
    cases.push(Misbehaviour::TruncatedListing { repo: "app".into() });
    for m in cases {
        let proxy = hostile::start(&f.src.url(), m.clone()).await;
        let report = f.sync_through(&proxy, SPEC).await;
        let e = failure_about(&report, "app");
        assert!(e.contains("listing the source failed"), "{m:?}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_outside_the_grammar_never_become_requests() {
    let f = Fleet::start().await;
    let escaping = [
        "../../v2/base",
        "app/../base",
        "app/%2e%2e/base",
        "APP",
        "app?x=1",
        "app#frag",
    ];
    let mut names: Vec<String> = escaping.iter().map(|s| s.to_string()).collect();
    names.push("app".into());
    let proxy = hostile::start(&f.src.url(), Misbehaviour::Catalog { names }).await;
    let report = f.sync_through(&proxy, SPEC).await;
    for bad in escaping {
        let e = failure_about(&report, bad);
        assert!(e.contains("not a valid"), "{bad}: {e}");
    }
    assert_eq!(
        report["skipped"], 2,
        "app:v1 and app:v2 still served: {report:#}"
    );
    let seen = proxy.stats.seen.lock().expect("seen").clone();
    for line in &seen {
        let path = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            path == "/v2/" || path.starts_with("/v2/_catalog") || path.starts_with("/v2/app/"),
            "a request outside the listed repository: {line}"
        );
        assert!(!path.contains(".."), "{line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_retry_after_slow_drip_and_deadline_end_the_run() {
    let f = Fleet::start().await;
    f.push_new_tag().await;
    let proxy = hostile::start(
        &f.src.url(),
        Misbehaviour::RetryAfter {
            repo: "app".into(),
            secs: 86400,
        },
    )
    .await;
    let report = f.sync_through(&proxy, SPEC).await;
    let e = failure_about(&report, "app");
    assert!(e.contains("retry after 86400 s"), "{e}");

    let drip = hostile::start(&f.src.url(), Misbehaviour::SlowDrip { repo: "app".into() }).await;
    let timeouts = format!("{SPEC}    requestTimeoutSeconds: 2\n");
    let report = f.sync_through(&drip, &timeouts).await;
    let e = failure_about(&report, "app");
    assert!(e.contains("timed out") || e.contains("timeout"), "{e}");

    // A run deadline shorter than the drip's request timeout stops the whole run.
    let pol = f.policy(
        &drip.url(),
        &format!("{SPEC}    requestTimeoutSeconds: 600\n  activeDeadlineSeconds: 3\n"),
    );
    let out = flotilla(&["sync", "-f", pol.to_str().expect("path")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("deadline of 3 s"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_never_follow_a_redirect_to_another_host() {
    require_tools();
    let dir = TempDir::new("hostile-redirect");
    let source = hostile::RedirectingSource::start().await;
    let proxy = &source.proxy;
    let dest = Registry::start().await;
    let auth = dir.path().join("auth.json");
    std::fs::write(
        &auth,
        format!(
            r#"{{"auths":{{"{}":{{"username":"alice","password":"s3cret"}}}}}}"#,
            proxy.host()
        ),
    )
    .expect("authfile");
    let pol = policy(dir.path(), &proxy.url(), &[("d", dest.url(), None)], SPEC);
    let out = flotilla(&[
        "sync",
        "-f",
        pol.to_str().expect("path"),
        "--authfile",
        auth.to_str().expect("path"),
        "-o",
        "json",
    ])
    .await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(!out.status.success(), "{report:#}");
    let (requests, authorizations) = source.stolen();
    assert!(requests > 0, "the redirect was followed");
    assert_eq!(
        authorizations,
        Vec::<String>::new(),
        "credentials reached another host"
    );
    assert!(
        list_tags(&dest.url(), "app").await.is_empty(),
        "no tag points at an incomplete artifact"
    );
}
