//! The push path, measured: a source with many repositories and tags (1,000 and 5,000 by
//! default), a policy with three destinations, and pushes at a steady rate (10 per second for
//! 60 s); for each push the time from the source accepting it to every destination holding
//! it, and the registry requests the operator made per push, for one or two operator builds
//! in one run on the same registries.
//!
//! Run: `cargo bench --bench push_path -- [--old PATH] [--repos N] [--tags-per-repo N]
//! [--rate N] [--seconds N]`. `--old PATH` first measures another build (e.g. main's binary);
//! `FLOTILLA_BIN=<path>` replaces the build under test.
//!
//! Everything is real: a control plane (e2e/cluster.sh), the operator (`flotilla run`), four
//! `docker-registry` processes. The source posts its notifications to the operator; each
//! destination posts its own to this benchmark, which is how it learns, without polling, when
//! a push arrived there. Each registry sits behind a counting proxy (the operator talks to
//! the proxies; the source names its proxy in its events, `http.host`).

#[path = "../tests/it/support/cluster.rs"]
mod cluster;
#[path = "../tests/it/support/ports.rs"]
mod ports;
#[path = "../tests/it/support/registry.rs"]
mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::{Cluster, Operator, wait_for};
use registry::{Faults, Proxy, Pusher, Registry};

const TOKEN: &str = "bench-receiver-token-0123456789abcdef";

struct Args {
    old: Option<PathBuf>,
    repos: usize,
    tags_per_repo: usize,
    rate: u64,
    seconds: u64,
}

fn args() -> Args {
    let mut a = Args {
        old: None,
        repos: 1000,
        tags_per_repo: 5,
        rate: 10,
        seconds: 60,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--old" => a.old = Some(PathBuf::from(value())),
            "--repos" => a.repos = value().parse().expect("--repos N"),
            "--tags-per-repo" => a.tags_per_repo = value().parse().expect("--tags-per-repo N"),
            "--rate" => a.rate = value().parse().expect("--rate N"),
            "--seconds" => a.seconds = value().parse().expect("--seconds N"),
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// `(repository, tag)` → `(destination index, when it announced the push)`.
type Seen = HashMap<(String, String), Vec<(usize, Instant)>>;

/// When each destination announced each `repo:tag` (its own push notifications).
#[derive(Default)]
struct Arrivals {
    seen: Mutex<Seen>,
}

/// Receives the destinations' notifications: `/d/<index>`.
async fn arrivals_receiver(arrivals: Arc<Arrivals>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new()
        .route(
            "/d/{index}",
            axum::routing::post(
                |axum::extract::State(arrivals): axum::extract::State<Arc<Arrivals>>,
                 axum::extract::Path(index): axum::extract::Path<usize>,
                 body: axum::body::Bytes| async move {
                    let now = Instant::now();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let events = v["events"].as_array().cloned().unwrap_or_default();
                    let mut seen = arrivals.seen.lock().expect("lock");
                    for e in events {
                        let (Some(repo), Some(tag)) = (
                            e["target"]["repository"].as_str(),
                            e["target"]["tag"].as_str(),
                        ) else {
                            continue;
                        };
                        if e["action"] == "push" {
                            seen.entry((repo.to_string(), tag.to_string()))
                                .or_default()
                                .push((index, now));
                        }
                    }
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(arrivals);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// A registry behind a counting proxy; `extra` gets the proxy URL.
async fn proxied(extra: impl FnOnce(&str) -> String) -> (Registry, Proxy) {
    let mut r = Registry::start().await;
    let p = Proxy::start(&r.url(), Faults::default()).await;
    r.set_extra(extra(&p.url()));
    r.restart().await;
    (r, p)
}

/// One small image per repository (shared blobs within it) under `tags` tags, pushed to
/// every registry in `bases`, 32 repositories at once.
async fn populate(bases: &[String], repos: usize, tags: usize) {
    use futures::StreamExt;
    let pushers: Vec<Pusher> = bases.iter().map(|b| Pusher::new(b)).collect();
    let pushers = &pushers;
    futures::stream::iter(0..repos)
        .map(|r| async move {
            let repo = format!("team-{:02}/app-{r:04}", r % 50);
            let layer = registry::layer(&[("app/bin", &registry::pseudo_random(r as u64, 2048))]);
            for p in pushers {
                let m = p
                    .image(
                        &repo,
                        Some("1.0.0"),
                        "amd64",
                        std::slice::from_ref(&layer),
                        false,
                    )
                    .await;
                for t in 1..tags {
                    let tagged = fresh_manifest(&m, t as u64);
                    p.manifest(&repo, &format!("1.{t}.0"), registry::OCI_MANIFEST, &tagged)
                        .await;
                }
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// A manifest for `repo` whose blobs the repository already holds (only the manifest is
/// new: a re-tag with a new annotation, as a CI pipeline pushing a build).
fn fresh_manifest(base_manifest: &[u8], n: u64) -> Vec<u8> {
    let mut m: serde_json::Value = serde_json::from_slice(base_manifest).expect("manifest");
    m["annotations"] = serde_json::json!({"bench.flotilla.dev/push": n.to_string()});
    serde_json::to_vec(&m).expect("manifest")
}

struct Figures {
    pushes: usize,
    arrived: usize,
    p50: f64,
    p90: f64,
    p99: f64,
    max: f64,
    source_per_push: f64,
    dest_per_push: f64,
    catalog: usize,
    tag_lists: usize,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn seen_since(p: &Proxy, from: usize) -> Vec<String> {
    p.stats.seen.lock().expect("seen")[from..].to_vec()
}

/// The lag of each push every destination announced so far: from the source accepting it to
/// the last destination's notification.
fn lags_so_far(
    arrivals: &Arrivals,
    pushed: &[(String, String, Instant)],
    dests: usize,
) -> Vec<f64> {
    let seen = arrivals.seen.lock().expect("lock");
    let mut lags = Vec::new();
    for (repo, tag, at) in pushed {
        let Some(v) = seen.get(&(repo.clone(), tag.clone())) else {
            continue;
        };
        let mut first = vec![None; dests];
        for (i, t) in v {
            first[*i] = Some(first[*i].map_or(*t, |o: Instant| o.min(*t)));
        }
        if first.iter().all(Option::is_some) {
            let last = first.iter().flatten().max().copied().unwrap_or(*at);
            lags.push(last.saturating_duration_since(*at).as_secs_f64());
        }
    }
    lags
}

struct World {
    cluster: Cluster,
    source: (Registry, Proxy),
    dests: Vec<(Registry, Proxy)>,
    arrivals: Arc<Arrivals>,
    receiver_port: u16,
    logs: PathBuf,
}

/// Measures one build: starts it, applies the policy, waits for the first (full) sync, pushes
/// `rate` per second for `seconds`, waits for the stragglers, stops it.
async fn measure(w: &World, bin: &Path, label: &str, a: &Args) -> Figures {
    let op = Operator::launch(
        bin,
        &w.cluster,
        &w.logs,
        w.receiver_port,
        &[],
        &[
            ("FLOTILLA_RECEIVER_TOKEN", TOKEN),
            (
                "RUST_LOG",
                "info,flotilla::notifications=debug,flotilla::controller=debug",
            ),
        ],
    );
    let mut yaml = format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: bench}}\nspec:\n  source: {{url: \"{}\", insecure: true}}\n  trigger: {{onPush: true}}\n  concurrency: 8\n  destinations:\n",
        w.source.1.url()
    );
    for (i, (_, p)) in w.dests.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{name: d{i}, url: \"{}\", insecure: true}}\n",
            p.url()
        ));
    }
    w.cluster.apply(&yaml);
    let synced = Instant::now();
    wait_for("the first full sync", Duration::from_secs(1800), || {
        w.cluster.jsonpath(
            "replicationpolicy/bench",
            r#"{.status.conditions[?(@.type=="Ready")].reason}"#,
        ) == "InSync"
    });
    println!(
        "{label}: first full sync (no-op, destinations pre-filled) in {:.1}s",
        synced.elapsed().as_secs_f64()
    );

    let src_from = w.source.1.stats.seen.lock().expect("seen").len();
    let dest_from: Vec<usize> = w
        .dests
        .iter()
        .map(|(_, p)| p.stats.seen.lock().expect("seen").len())
        .collect();
    let pusher = Pusher::new(&w.source.0.url());
    let total = a.rate * a.seconds;
    let mut pushed: Vec<(String, String, Instant)> = Vec::new();
    let mut base_manifests: HashMap<String, Vec<u8>> = HashMap::new();
    let start = Instant::now();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / a.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let r = (n as usize * 7919) % a.repos;
        let repo = format!("team-{:02}/app-{r:04}", r % 50);
        if !base_manifests.contains_key(&repo) {
            let raw = registry::skopeo_raw(&w.source.0.host(), &format!("{repo}:1.0.0"))
                .expect("base manifest");
            base_manifests.insert(repo.clone(), raw);
        }
        let m = fresh_manifest(&base_manifests[&repo], n);
        let tag = format!("{label}-{n}");
        pusher
            .manifest(&repo, &tag, registry::OCI_MANIFEST, &m)
            .await;
        pushed.push((repo, tag, Instant::now()));
    }
    let pushing = start.elapsed().as_secs_f64();
    // Stragglers: at most 60 s more.
    let deadline = Instant::now() + Duration::from_secs(60);
    let lags = loop {
        let lags = lags_so_far(&w.arrivals, &pushed, w.dests.len());
        if lags.len() == pushed.len() || Instant::now() > deadline {
            break lags;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let src = seen_since(&w.source.1, src_from);
    let at_dests: Vec<Vec<String>> = w
        .dests
        .iter()
        .zip(&dest_from)
        .map(|((_, p), from)| seen_since(p, *from))
        .collect();
    let dest_requests: usize = at_dests.iter().map(Vec::len).sum();
    let all: Vec<&String> = src.iter().chain(at_dests.iter().flatten()).collect();
    let catalog = all.iter().filter(|r| r.contains("/_catalog")).count();
    let tag_lists = all.iter().filter(|r| r.contains("/tags/list")).count();
    println!(
        "{label}: {total} pushes in {pushing:.1}s, {} reached all {} destinations",
        lags.len(),
        w.dests.len()
    );
    drop(op);
    w.cluster
        .kubectl_ok(&["delete", "replicationpolicy", "bench", "--wait=true"]);
    let mut sorted = lags.clone();
    sorted.sort_by(f64::total_cmp);
    Figures {
        pushes: pushed.len(),
        arrived: lags.len(),
        p50: quantile(&sorted, 0.5),
        p90: quantile(&sorted, 0.9),
        p99: quantile(&sorted, 0.99),
        max: sorted.last().copied().unwrap_or(f64::NAN),
        source_per_push: src.len() as f64 / pushed.len().max(1) as f64,
        dest_per_push: dest_requests as f64 / pushed.len().max(1) as f64,
        catalog,
        tag_lists,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let a = args();
    let under_test = std::env::var_os("FLOTILLA_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_flotilla")));
    println!("load average at the start: {}", load_average());
    let logs = std::env::temp_dir().join(format!("flotilla-bench-push-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("logs");
    let cluster = Cluster::start();
    cluster.install_crds();
    let receiver_port = cluster::free_port();
    let receiver = format!("http://127.0.0.1:{receiver_port}/v1/events");
    let arrivals = Arc::new(Arrivals::default());
    let arrivals_port = arrivals_receiver(arrivals.clone()).await;
    let source = proxied(|proxy| {
        format!(
            "  host: {proxy}\n{}",
            registry::notifications(&receiver, TOKEN)
        )
    })
    .await;
    let mut dests = Vec::new();
    for i in 0..3 {
        let url = format!("http://127.0.0.1:{arrivals_port}/d/{i}");
        dests.push(proxied(|_| registry::notifications(&url, "bench")).await);
    }
    // While filling, the source's notifications go to a sink that accepts them (no operator
    // yet, and the registry would keep them and replay them at the first operator).
    let sink = tokio::net::TcpListener::bind(("127.0.0.1", receiver_port))
        .await
        .expect("bind the sink");
    let sink = tokio::spawn(async move {
        let app = axum::Router::new().fallback(|| async { axum::http::StatusCode::OK });
        let _ = axum::serve(sink, app).await;
    });
    let filled = Instant::now();
    let mut bases = vec![source.0.url()];
    bases.extend(dests.iter().map(|(r, _)| r.url()));
    populate(&bases, a.repos, a.tags_per_repo).await;
    println!(
        "source and destinations filled: {} repositories, {} tags in each registry, in {:.1}s",
        a.repos,
        a.repos * a.tags_per_repo,
        filled.elapsed().as_secs_f64()
    );
    // Let the source deliver what it still holds, then free the port for the operator.
    tokio::time::sleep(Duration::from_secs(2)).await;
    sink.abort();
    let _ = sink.await;
    let w = World {
        cluster,
        source,
        dests,
        arrivals,
        receiver_port,
        logs,
    };
    let mut rows = Vec::new();
    if let Some(old) = &a.old {
        rows.push((
            format!("old ({})", old.display()),
            measure(&w, old, "old", &a).await,
        ));
    }
    rows.push((
        format!("new ({})", under_test.display()),
        measure(&w, &under_test, "new", &a).await,
    ));
    println!("\nload average at the end: {}", load_average());
    println!(
        "\n{} repositories, {} tags, {} pushes/s for {} s, 3 destinations\n",
        a.repos,
        a.repos * a.tags_per_repo,
        a.rate,
        a.seconds
    );
    println!(
        "| build | pushes | at all 3 | lag p50 (s) | p90 (s) | p99 (s) | max (s) | source requests/push | destination requests/push | catalog requests | tag lists |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, f) in rows {
        println!(
            "| {label} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} | {} | {} |",
            f.pushes,
            f.arrived,
            f.p50,
            f.p90,
            f.p99,
            f.max,
            f.source_per_push,
            f.dest_per_push,
            f.catalog,
            f.tag_lists
        );
    }
}
