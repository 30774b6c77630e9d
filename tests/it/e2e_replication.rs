//! ReplicationPolicy end to end: real control planes, the real operator, real registries that
//! notify the operator's receiver, and content pushed by the tests.

use crate::support::cluster;
use crate::support::registry;

use std::time::{Duration, Instant};

use cluster::{Cluster, Operator, wait_for};
use registry::{Pusher, Registry};

const TOKEN: &str = "test-receiver-token-0123456789";
const WAIT: Duration = Duration::from_secs(90);

fn logs_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-e2e-replication-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("log dir");
    dir
}

fn operator(c: &Cluster) -> Operator {
    Operator::start_with(c, &logs_dir(), &[], &[("FLOTILLA_RECEIVER_TOKEN", TOKEN)])
}

fn receiver_url(op: &Operator) -> String {
    format!("http://127.0.0.1:{}/v1/events", op.receiver_port)
}

/// Whether `base` serves `repo:tag` with exactly `digest` (a HEAD, as the engine does).
fn has(base: &str, repo: &str, tag: &str, digest: &str) -> bool {
    let out = std::process::Command::new("curl")
        .args(["-sfI", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"])
        .arg(format!("{base}/v2/{repo}/manifests/{tag}"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .to_ascii_lowercase()
        .contains(&format!("docker-content-digest: {digest}"))
}

fn condition(c: &Cluster, policy: &str, type_: &str) -> String {
    c.jsonpath(
        &format!("replicationpolicy/{policy}"),
        &format!(r#"{{.status.conditions[?(@.type=="{type_}")].status}}/{{.status.conditions[?(@.type=="{type_}")].reason}}"#),
    )
}

fn policy_yaml(name: &str, source: &str, dests: &[(&str, &str)], extra: &str) -> String {
    let mut y = format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: {name}}}\nspec:\n  source: {{url: \"{source}\", insecure: true}}\n  destinations:\n"
    );
    for (n, u) in dests {
        y.push_str(&format!(
            "  - {{name: {n}, url: \"{u}\", insecure: true}}\n"
        ));
    }
    y.push_str(extra);
    y
}

async fn push_image(base: &str, repo: &str, tag: &str, seed: u64) -> String {
    let p = Pusher::new(base);
    let layer = registry::layer(&[("app/data.bin", &registry::pseudo_random(seed, 64 * 1024))]);
    let m = p.image(repo, Some(tag), "amd64", &[layer], false).await;
    registry::sha256(&m)
}

fn metric(op: &Operator, line_prefix: &str) -> f64 {
    let text = op.get("/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn post(op: &Operator, auth: Option<&str>, body: &str) -> u16 {
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"]);
    cmd.args([
        "-H",
        "Content-Type: application/vnd.docker.distribution.events.v1+json",
    ]);
    if let Some(a) = auth {
        cmd.args(["-H", &format!("Authorization: Bearer {a}")]);
    }
    cmd.args(["--data-binary", body]).arg(receiver_url(op));
    let out = cmd.output().expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn master_to_three_slaves_on_push_and_scheduled_repair() {
    let c = Cluster::start();
    c.install_crds();
    let op = operator(&c);
    let master = Registry::start_notifying(&receiver_url(&op), TOKEN).await;
    let slaves = Registry::start_many::<3>().await;
    let dests: Vec<(String, String)> = slaves
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("slave-{i}"), s.url()))
        .collect();
    let dest_refs: Vec<(&str, &str)> = dests
        .iter()
        .map(|(n, u)| (n.as_str(), u.as_str()))
        .collect();
    c.apply(&policy_yaml(
        "fanout",
        &master.url(),
        &dest_refs,
        "  trigger: {onPush: true, schedule: \"* * * * *\"}\n",
    ));
    wait_for("the first full sync", WAIT, || {
        condition(&c, "fanout", "Ready") == "True/InSync"
    });
    let runs_before = metric(
        &op,
        "flotilla_sync_runs_total{policy=\"default/fanout\",trigger=\"Push\"",
    );

    // A push reaches all three slaves through the push event, within seconds.
    let pushed = Instant::now();
    let digest = push_image(&master.url(), "apps/web", "v1", 1).await;
    wait_for("v1 on every slave", WAIT, || {
        slaves
            .iter()
            .all(|s| has(&s.url(), "apps/web", "v1", &digest))
    });
    let lag = pushed.elapsed();
    println!("push-to-all-3-slaves lag: {:.2}s", lag.as_secs_f64());
    let runs_after = metric(
        &op,
        "flotilla_sync_runs_total{policy=\"default/fanout\",trigger=\"Push\"",
    );
    assert!(
        runs_after > runs_before,
        "no push-triggered run was counted (metrics: {runs_before} -> {runs_after})"
    );
    // The push's lag is in each destination's status and in the per-destination histogram,
    // and no longer than the test itself saw.
    wait_for("the push lag in status", WAIT, || {
        c.jsonpath(
            "replicationpolicy/fanout",
            "{.status.destinations[*].lastPushLagMillis}",
        )
        .split_whitespace()
        .count()
            == 3
    });
    for ms in c
        .jsonpath(
            "replicationpolicy/fanout",
            "{.status.destinations[*].lastPushLagMillis}",
        )
        .split_whitespace()
    {
        let ms: u128 = ms.parse().expect("millis");
        assert!(ms <= pushed.elapsed().as_millis(), "lag {ms} ms");
    }
    for (name, _) in &dests {
        let count = metric(
            &op,
            &format!(
                "flotilla_replication_lag_seconds_count{{policy=\"default/fanout\",destination=\"{name}\"}}"
            ),
        );
        assert!(count >= 1.0, "no lag observed for {name}");
    }
    for s in &slaves {
        assert!(
            registry::complete(&s.url(), "apps/web", "v1").await,
            "incomplete artifact at {}",
            s.url()
        );
    }

    // Unauthenticated or malformed posts are rejected and change nothing.
    let event = format!(
        r#"{{"events":[{{"id":"x","action":"push","target":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"apps/evil","tag":"v9","digest":"{digest}","url":"{}/v2/apps/evil/manifests/{digest}"}}}}]}}"#,
        master.url()
    );
    assert_eq!(post(&op, None, &event), 401);
    assert_eq!(post(&op, Some("wrong-token"), &event), 401);
    assert_eq!(post(&op, Some(TOKEN), "{not json"), 400);
    let runs_now = metric(
        &op,
        "flotilla_sync_runs_total{policy=\"default/fanout\",trigger=\"Push\"",
    );
    assert_eq!(runs_now, runs_after, "a rejected post started a sync");

    // A tag deleted by hand at one slave is repaired by the next scheduled sync.
    let del = std::process::Command::new("curl")
        .args(["-sf", "-X", "DELETE"])
        .arg(format!(
            "{}/v2/apps/web/manifests/{digest}",
            slaves[1].url()
        ))
        .status()
        .expect("curl");
    assert!(del.success(), "cannot delete at the slave");
    assert!(!has(&slaves[1].url(), "apps/web", "v1", &digest));
    wait_for(
        "the scheduled sync to repair slave-1",
        Duration::from_secs(150),
        || has(&slaves[1].url(), "apps/web", "v1", &digest),
    );
    wait_for("a Schedule run in status", WAIT, || {
        c.jsonpath("replicationpolicy/fanout", "{.status.lastSync.trigger}") == "Schedule"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_destination_down_is_degraded_and_repaired_when_back() {
    let c = Cluster::start();
    c.install_crds();
    let op = operator(&c);
    let source = Registry::start().await;
    let up = Registry::start().await;
    let mut down = Registry::start().await;
    let digest = push_image(&source.url(), "base/os", "1.0", 7).await;
    down.kill();
    c.apply(&policy_yaml(
        "pair",
        &source.url(),
        &[("up", &up.url()), ("down", &down.url())],
        "  retry: {maxAttempts: 2, initialBackoffMillis: 50}\n",
    ));
    wait_for("Degraded with the failed destination", WAIT, || {
        condition(&c, "pair", "Degraded") == "True/DestinationFailed"
    });
    assert!(
        has(&up.url(), "base/os", "1.0", &digest),
        "the healthy destination was not served"
    );
    assert_eq!(
        c.jsonpath("replicationpolicy/pair", "{.status.destinationsInSync}"),
        "1/2"
    );
    let error = c.jsonpath(
        "replicationpolicy/pair",
        r#"{.status.destinations[?(@.name=="down")].lastError}"#,
    );
    assert!(!error.is_empty(), "no lastError for the down destination");
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=pair",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("DestinationFailed"),
        "no DestinationFailed Event: {events}"
    );

    let failures: i64 = c
        .jsonpath("replicationpolicy/pair", "{.status.consecutiveFailures}")
        .parse()
        .unwrap_or(0);
    assert!(failures >= 1, "failures in a row not counted: {failures}");

    // Back up: the failed sync is retried on its own (backoff 10 s, doubling), no annotation.
    down.restart().await;
    let back = Instant::now();
    wait_for("in sync after the destination came back", WAIT, || {
        condition(&c, "pair", "Ready") == "True/InSync"
    });
    println!(
        "repaired by a retry {:.1} s after the destination came back",
        back.elapsed().as_secs_f64()
    );
    assert!(has(&down.url(), "base/os", "1.0", &digest));
    assert_eq!(
        c.jsonpath("replicationpolicy/pair", "{.status.lastSync.trigger}"),
        "Retry"
    );
    assert_eq!(
        c.jsonpath("replicationpolicy/pair", "{.status.consecutiveFailures}"),
        "",
        "a clean sync resets the failure count"
    );
    assert!(metric(&op, "flotilla_source_read_bytes_total") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dual_master_across_two_clusters_without_ping_pong() {
    let (ca, cb) = (Cluster::start(), Cluster::start());
    for c in [&ca, &cb] {
        c.install_crds();
    }
    let (op_a, op_b) = (operator(&ca), operator(&cb));
    let site_a = Registry::start_notifying(&receiver_url(&op_a), TOKEN).await;
    let site_b = Registry::start_notifying(&receiver_url(&op_b), TOKEN).await;
    ca.apply(&policy_yaml(
        "a-to-b",
        &site_a.url(),
        &[("site-b", &site_b.url())],
        "  overwrite: false\n",
    ));
    cb.apply(&policy_yaml(
        "b-to-a",
        &site_b.url(),
        &[("site-a", &site_a.url())],
        "  overwrite: false\n",
    ));
    wait_for("A's policy ready", WAIT, || {
        condition(&ca, "a-to-b", "Ready") == "True/InSync"
    });
    wait_for("B's policy ready", WAIT, || {
        condition(&cb, "b-to-a", "Ready") == "True/InSync"
    });

    let from_a = push_image(&site_a.url(), "team/a", "v1", 11).await;
    let from_b = push_image(&site_b.url(), "team/b", "v1", 12).await;
    wait_for("A's push on B", WAIT, || {
        has(&site_b.url(), "team/a", "v1", &from_a)
    });
    wait_for("B's push on A", WAIT, || {
        has(&site_a.url(), "team/b", "v1", &from_b)
    });

    // Each copy lands as a push on the other side, which looks back, finds the digest there
    // and copies nothing (counted as skipped): wait for those echoes, then count the copies.
    let count = |op: &Operator, policy: &str, dest: &str, result: &str| {
        metric(
            op,
            &format!(
                "flotilla_artifacts_total{{policy=\"default/{policy}\",destination=\"{dest}\",result=\"{result}\"}}"
            ),
        )
    };
    wait_for(
        "the echo of each copy to be skipped on the other side",
        WAIT,
        || {
            count(&op_a, "a-to-b", "site-b", "skipped") >= 1.0
                && count(&op_b, "b-to-a", "site-a", "skipped") >= 1.0
        },
    );
    let copied_a = count(&op_a, "a-to-b", "site-b", "copied");
    let copied_b = count(&op_b, "b-to-a", "site-a", "copied");
    assert_eq!(
        (copied_a, copied_b),
        (1.0, 1.0),
        "copies are not bounded: a->b {copied_a}, b->a {copied_b}"
    );
}

fn delete_manifest(base: &str, repo: &str, digest: &str) {
    let ok = std::process::Command::new("curl")
        .args(["-sf", "-X", "DELETE"])
        .arg(format!("{base}/v2/{repo}/manifests/{digest}"))
        .status()
        .expect("curl")
        .success();
    assert!(ok, "cannot delete {repo}@{digest} at {base}");
}

fn request_sync(c: &Cluster, policy: &str, value: &str) {
    c.kubectl_ok(&[
        "annotate",
        "--overwrite",
        &format!("replicationpolicy/{policy}"),
        &format!("flotilla.dev/sync-requested={value}"),
    ]);
    wait_for(&format!("{policy} to handle request {value}"), WAIT, || {
        c.jsonpath(
            &format!("replicationpolicy/{policy}"),
            "{.status.handledSyncRequest}",
        ) == value
            && c.jsonpath(
                &format!("replicationpolicy/{policy}"),
                r#"{.status.conditions[?(@.type=="Syncing")].status}"#,
            ) == "False"
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_sync_on_and_off_and_overwrite_false_conflicts() {
    let c = Cluster::start();
    c.install_crds();
    let _op = operator(&c);
    let source = Registry::start().await;
    let (mirror, keeper) = (Registry::start().await, Registry::start().await);
    let v1 = push_image(&source.url(), "rel/app", "v1", 21).await;
    let v2 = push_image(&source.url(), "rel/app", "v2", 22).await;
    // The destination already has its own `v3`; the source's v3 must not move it.
    let theirs = push_image(&mirror.url(), "rel/app", "v3", 23).await;
    let v3 = push_image(&source.url(), "rel/app", "v3", 24).await;
    c.apply(&policy_yaml(
        "with-deletion",
        &source.url(),
        &[("mirror", &mirror.url())],
        "  deletion: true\n  overwrite: false\n",
    ));
    c.apply(&policy_yaml(
        "without-deletion",
        &source.url(),
        &[("keeper", &keeper.url())],
        "  deletion: false\n",
    ));
    wait_for("first syncs", WAIT, || {
        c.jsonpath(
            "replicationpolicy/with-deletion",
            "{.status.syncedGeneration}",
        ) == "1"
            && c.jsonpath(
                "replicationpolicy/without-deletion",
                "{.status.syncedGeneration}",
            ) == "1"
    });
    for (base, d) in [
        (mirror.url(), &v1),
        (mirror.url(), &v2),
        (keeper.url(), &v1),
        (keeper.url(), &v2),
        (keeper.url(), &v3),
    ] {
        let tag = if d == &v1 {
            "v1"
        } else if d == &v2 {
            "v2"
        } else {
            "v3"
        };
        assert!(has(&base, "rel/app", tag, d), "{tag} missing at {base}");
    }
    assert!(
        has(&mirror.url(), "rel/app", "v3", &theirs),
        "overwrite: false moved the destination's v3"
    );
    let conflicts = c.jsonpath(
        "replicationpolicy/with-deletion",
        r#"{.status.destinations[?(@.name=="mirror")].conflicts}"#,
    );
    assert!(
        conflicts.contains("v3"),
        "the conflict is not reported in status: {conflicts:?}"
    );
    let events = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=with-deletion",
        "-o",
        "jsonpath={.items[*].reason}",
    ]);
    assert!(
        events.contains("TagConflict"),
        "no TagConflict Event: {events}"
    );

    // v2 goes away at the source: deleted at the mirror (deletion: true), kept at the keeper.
    delete_manifest(&source.url(), "rel/app", &v2);
    request_sync(&c, "with-deletion", "after-delete");
    request_sync(&c, "without-deletion", "after-delete");
    assert!(
        !has(&mirror.url(), "rel/app", "v2", &v2),
        "deletion sync did not delete v2"
    );
    assert!(
        has(&keeper.url(), "rel/app", "v2", &v2),
        "a policy without deletion deleted v2"
    );
    assert!(
        has(&mirror.url(), "rel/app", "v1", &v1) && has(&mirror.url(), "rel/app", "v3", &theirs)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hierarchical_hq_regions_cities_across_three_clusters() {
    let (hq, r1, r2) = (Cluster::start(), Cluster::start(), Cluster::start());
    for c in [&hq, &r1, &r2] {
        c.install_crds();
    }
    let op_hq = operator(&hq);
    let (_op_r1, _op_r2) = (operator(&r1), operator(&r2));
    let hq_reg = Registry::start().await;
    let regions = Registry::start_many::<2>().await;
    let cities = Registry::start_many::<4>().await;
    // Byte counters in front of every registry that feeds another.
    let hq_proxy = registry::Proxy::start(&hq_reg.url(), registry::Faults::default()).await;
    let region_proxies = [
        registry::Proxy::start(&regions[0].url(), registry::Faults::default()).await,
        registry::Proxy::start(&regions[1].url(), registry::Faults::default()).await,
    ];
    let seed_layer =
        |seed| registry::layer(&[("blob.bin", &registry::pseudo_random(seed, 2 * 1024 * 1024))]);

    // 1. One policy at HQ reaching every tier; cities are fed by their region.
    let p = Pusher::new(&hq_reg.url());
    let m = p
        .image("tiers/app", Some("v1"), "amd64", &[seed_layer(31)], false)
        .await;
    let d1 = registry::sha256(&m);
    let unique = p.unique_blob_bytes();
    let dests = [
        ("region-1", region_proxies[0].url(), None),
        ("region-2", region_proxies[1].url(), None),
        ("city-1", cities[0].url(), Some("region-1")),
        ("city-2", cities[1].url(), Some("region-1")),
        ("city-3", cities[2].url(), Some("region-2")),
        ("city-4", cities[3].url(), Some("region-2")),
    ];
    let mut y = format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: tiers}}\nspec:\n  source: {{url: \"{}\", insecure: true}}\n  repositories: {{include: [\"tiers/**\"]}}\n  destinations:\n",
        hq_proxy.url()
    );
    for (n, u, from) in &dests {
        let from = from.map(|f| format!(", from: {f}")).unwrap_or_default();
        y.push_str(&format!(
            "  - {{name: {n}, url: \"{u}\", insecure: true{from}}}\n"
        ));
    }
    hq.apply(&y);
    wait_for("every tier in sync", WAIT, || {
        condition(&hq, "tiers", "Ready") == "True/InSync"
    });
    for city in &cities {
        assert!(
            has(&city.url(), "tiers/app", "v1", &d1),
            "a city lacks tiers/app:v1"
        );
    }
    let (hq_bytes, r1_bytes, r2_bytes) = (
        hq_proxy.blob_bytes(),
        region_proxies[0].blob_bytes(),
        region_proxies[1].blob_bytes(),
    );
    println!(
        "one HQ policy: unique {unique} B; served by HQ {hq_bytes} B, region-1 {r1_bytes} B, region-2 {r2_bytes} B"
    );
    // Regions are read only by their cities; the engine reads each blob once per feeder and
    // streams it to every child that needs it.
    assert!(
        r1_bytes >= unique && r2_bytes >= unique,
        "cities were not fed by their regions"
    );
    assert!(
        hq_bytes < unique + unique / 10,
        "HQ served more than one copy: {hq_bytes} for {unique} unique bytes"
    );
    assert!(metric(&op_hq, "flotilla_source_read_bytes_total") > 0.0);

    // 2. Each region's own operator (its own cluster) pulls from HQ and feeds its cities.
    let m2 = p
        .image("pull/app", Some("v1"), "amd64", &[seed_layer(32)], false)
        .await;
    let d2 = registry::sha256(&m2);
    let (hq_before, r_before) = (
        hq_proxy.blob_bytes(),
        [
            region_proxies[0].blob_bytes(),
            region_proxies[1].blob_bytes(),
        ],
    );
    for (i, (cluster, proxy)) in [(&r1, &region_proxies[0]), (&r2, &region_proxies[1])]
        .into_iter()
        .enumerate()
    {
        let (ca, cb) = (&cities[2 * i], &cities[2 * i + 1]);
        cluster.apply(&format!(
            "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: from-hq}}\nspec:\n  source: {{url: \"{}\", insecure: true}}\n  repositories: {{include: [\"pull/**\"]}}\n  destinations:\n  - {{name: region, url: \"{}\", insecure: true}}\n  - {{name: city-a, url: \"{}\", insecure: true, from: region}}\n  - {{name: city-b, url: \"{}\", insecure: true, from: region}}\n",
            hq_proxy.url(), proxy.url(), ca.url(), cb.url()
        ));
    }
    for cluster in [&r1, &r2] {
        wait_for("the regional policy in sync", WAIT, || {
            condition(cluster, "from-hq", "Ready") == "True/InSync"
        });
    }
    for city in &cities {
        assert!(
            has(&city.url(), "pull/app", "v1", &d2),
            "a city lacks pull/app:v1"
        );
    }
    let hq_served = hq_proxy.blob_bytes() - hq_before;
    let r_served = [
        region_proxies[0].blob_bytes() - r_before[0],
        region_proxies[1].blob_bytes() - r_before[1],
    ];
    println!(
        "regional operators: HQ served {hq_served} B, region-1 {} B, region-2 {} B",
        r_served[0], r_served[1]
    );
    let unique2 = p.unique_blob_bytes() - unique;
    assert!(
        r_served.iter().all(|b| *b >= unique2),
        "cities were not fed by their region"
    );
    // Two independent regional operators each read HQ once.
    assert!(
        hq_served < 2 * unique2 + unique2 / 10,
        "HQ served more than one copy per region"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operator_killed_mid_sync_converges_after_restart() {
    let c = Cluster::start();
    c.install_crds();
    let source = Registry::start().await;
    let dest = Registry::start().await;
    let p = Pusher::new(&source.url());
    let mut digests = Vec::new();
    for i in 0..12u64 {
        let layer = registry::layer(&[(
            "data.bin",
            &registry::pseudo_random(100 + i, 3 * 1024 * 1024),
        )]);
        let m = p
            .image("bulk/app", Some(&format!("t{i}")), "amd64", &[layer], false)
            .await;
        digests.push(registry::sha256(&m));
    }
    // A slow sync (bandwidth limit) so the kill lands in the middle of it.
    let op = operator(&c);
    c.apply(&policy_yaml(
        "bulk",
        &source.url(),
        &[("dest", &dest.url())],
        "  concurrency: 2\n  bandwidthLimit: 4Mi\n",
    ));
    let present = |d: &Registry| {
        digests
            .iter()
            .enumerate()
            .filter(|(i, dg)| has(&d.url(), "bulk/app", &format!("t{i}"), dg))
            .count()
    };
    wait_for("the sync to be part-way", WAIT, || {
        c.jsonpath(
            "replicationpolicy/bulk",
            r#"{.status.conditions[?(@.type=="Syncing")].status}"#,
        ) == "True"
            && present(&dest) >= 1
    });
    drop(op); // SIGKILL in the middle of the sync
    let partial = present(&dest);
    println!("tags at the destination when the operator was killed: {partial}/12");
    assert!(
        partial < 12,
        "the sync had already finished when the operator was killed"
    );
    for (i, dg) in digests.iter().enumerate() {
        let tag = format!("t{i}");
        if has(&dest.url(), "bulk/app", &tag, dg) {
            assert!(
                registry::complete(&dest.url(), "bulk/app", &tag).await,
                "tag {tag} points at an incomplete artifact"
            );
        }
    }
    let _op = operator(&c);
    wait_for(
        "convergence after the restart",
        Duration::from_secs(180),
        || condition(&c, "bulk", "Ready") == "True/InSync",
    );
    for (i, d) in digests.iter().enumerate() {
        assert!(has(&dest.url(), "bulk/app", &format!("t{i}"), d));
    }
}
