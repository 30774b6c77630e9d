//! The relay tree at scale: HQ -> 10 regions -> 100 cities, 111 real `docker-registry`
//! processes on loopback, the operator (`flotilla run`) on a local control plane (real
//! etcd / kube-apiserver, `e2e/cluster.sh`) with one ReplicationPolicy of 110 destinations.
//!
//! Run: `cargo bench --bench tree [-- --regions N --cities M --no-outage]` (default 10 regions
//! of 10 cities). It prints, in one run:
//! - the physical floor: blobs of the new image's sizes PUT by this one process into all 110
//!   registries at once (no reads, no relays, no control plane);
//! - a push of a new ~20 MiB image (4 layers, one shared with an earlier image) to HQ: time
//!   from the push to the image at each region and city (p50 / p99 / max per tier, from each
//!   registry's own push notification), bytes HQ and each region served (their access logs),
//!   the operator's peak RSS and CPU;
//! - a no-op resync of the whole tree (`flotilla.dev/sync-requested`);
//! - a push during which one city per region is stopped and started again: when the other
//!   cities got it, and how long the stopped ones took to converge once back;
//! - `kubectl get rp`, the size of the policy's status and the Events it produced.

#[path = "../tests/it/support/cluster.rs"]
mod cluster;
#[path = "../tests/it/support/ports.rs"]
mod ports;
#[path = "../tests/it/support/registry.rs"]
mod registry;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::{Cluster, Operator};
use registry::{Pusher, Registry, layer, pseudo_random, sha256};

const TOKEN: &str = "bench-receiver-token-0123456789";
const REPO: &str = "tree/app";
const MIB: usize = 1024 * 1024;
/// Layer sizes of the images: the base is shared by all of them.
const BASE: usize = 8 * MIB;
const NEW_LAYERS: [usize; 3] = [6 * MIB, 4 * MIB, 2 * MIB];
const WAIT: Duration = Duration::from_secs(600);

/// First arrival of each (site, manifest digest) push notification.
type Arrivals = Arc<Mutex<HashMap<(String, String), Instant>>>;

struct Tree {
    hq: Registry,
    /// Region i, and its cities.
    regions: Vec<(Registry, Vec<Registry>)>,
}

fn region_name(r: usize) -> String {
    format!("region-{r:02}")
}

fn city_name(r: usize, c: usize) -> String {
    format!("city-{r:02}-{c:02}")
}

impl Tree {
    fn all(&self) -> impl Iterator<Item = (String, &Registry)> {
        self.regions
            .iter()
            .enumerate()
            .flat_map(|(r, (reg, cities))| {
                std::iter::once((region_name(r), reg)).chain(
                    cities
                        .iter()
                        .enumerate()
                        .map(move |(c, city)| (city_name(r, c), city)),
                )
            })
    }

    fn policy(&self) -> String {
        let mut y = format!(
            "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: tree}}\nspec:\n  source: {{url: \"{}\", insecure: true}}\n  repositories: {{include: [\"tree/**\"]}}\n  destinations:\n",
            self.hq.url()
        );
        for (r, (reg, cities)) in self.regions.iter().enumerate() {
            y.push_str(&format!(
                "  - {{name: {}, url: \"{}\", insecure: true}}\n",
                region_name(r),
                reg.url()
            ));
            for (c, city) in cities.iter().enumerate() {
                y.push_str(&format!(
                    "  - {{name: {}, url: \"{}\", insecure: true, from: {}}}\n",
                    city_name(r, c),
                    city.url(),
                    region_name(r)
                ));
            }
        }
        y
    }
}

/// A registry that tells `receiver` about every manifest pushed to it (blobs and pulls
/// ignored), and writes an access log.
async fn site(receiver: u16, name: &str) -> Registry {
    Registry::start_logging(&format!(
        "notifications:\n  endpoints:\n  - name: bench\n    url: http://127.0.0.1:{receiver}/events/{name}\n    timeout: 2s\n    threshold: 3\n    backoff: 200ms\n    ignoredmediatypes: [application/octet-stream]\n    ignore:\n      actions: [pull]\n"
    ))
    .await
}

async fn start_tree(receiver: u16, operator: &Operator, regions: usize, cities: usize) -> Tree {
    let hq = Registry::start_logging(&format!(
        "notifications:\n  endpoints:\n  - name: flotilla\n    url: http://127.0.0.1:{}/v1/events\n    headers:\n      Authorization: [\"Bearer {TOKEN}\"]\n    timeout: 2s\n    threshold: 3\n    backoff: 200ms\n    ignoredmediatypes: [application/octet-stream]\n    ignore:\n      actions: [pull]\n",
        operator.receiver_port
    ))
    .await;
    let mut out = Vec::new();
    for r in 0..regions {
        let reg = site(receiver, &region_name(r)).await;
        let cs = futures::future::join_all((0..cities).map(|c| {
            let name = city_name(r, c);
            async move { site(receiver, &name).await }
        }))
        .await;
        out.push((reg, cs));
    }
    Tree { hq, regions: out }
}

/// The receiver of the sites' notifications.
async fn receiver(arrivals: Arrivals) -> u16 {
    use axum::extract::{Path, State};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let port = listener.local_addr().expect("addr").port();
    let app = axum::Router::new()
        .route(
            "/events/{site}",
            axum::routing::post(
                |State(a): State<Arrivals>, Path(site): Path<String>, body: Bytes| async move {
                    let now = Instant::now();
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let mut a = a.lock().expect("arrivals");
                    for e in v["events"].as_array().into_iter().flatten() {
                        if e["action"] == "push" && e["target"]["repository"] == REPO {
                            let d = e["target"]["digest"].as_str().unwrap_or_default();
                            a.entry((site.clone(), d.to_string())).or_insert(now);
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

/// An image of the shared base and three new layers made from `seed`; returns its manifest
/// digest and the bytes of its blobs that HQ did not hold before.
async fn push_image(p: &Pusher, tag: &str, seed: u64, base: &(Vec<u8>, String)) -> (String, u64) {
    let before = p.unique_blob_bytes();
    let mut layers = vec![base.clone()];
    for (i, size) in NEW_LAYERS.iter().enumerate() {
        layers.push(layer(&[(
            "data.bin",
            &pseudo_random(seed * 10 + i as u64, *size),
        )]));
    }
    let m = p.image(REPO, Some(tag), "amd64", &layers, false).await;
    (sha256(&m), p.unique_blob_bytes() - before)
}

/// The physical floor: `sizes` bytes of fresh blobs PUT by this process into every registry
/// at once (each registry's blobs one after the other, as one upload stream per registry).
async fn floor(urls: &[String], sizes: &[usize], seed: u64) -> f64 {
    let blobs: Vec<(String, Bytes)> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let b = pseudo_random(seed + i as u64, *s);
            (sha256(&b), Bytes::from(b))
        })
        .collect();
    let pushers: Vec<Pusher> = urls.iter().map(|u| Pusher::new(u)).collect();
    let start = Instant::now();
    futures::future::join_all(pushers.iter().map(|p| {
        let blobs = blobs.clone();
        async move {
            for (digest, body) in blobs {
                p.upload("floor/app", &digest, reqwest::Body::from(body))
                    .await;
            }
        }
    }))
    .await;
    start.elapsed().as_secs_f64()
}

/// Peak RSS (VmHWM) of `pid` in MiB since the last [`reset_peak`].
fn peak_rss_mib(pid: u32) -> f64 {
    registry::peak_rss_kib(pid).map_or(0.0, |k| k as f64 / 1024.0)
}

/// Starts a new peak-RSS window of `pid` (`clear_refs` 5 resets VmHWM).
fn reset_peak(pid: u32) {
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");
}

/// What the operator used in one phase.
struct Usage {
    cpu: f64,
    rss: f64,
}

fn phase_start(op: &Operator) -> f64 {
    reset_peak(op.pid());
    registry::process_cpu_seconds(op.pid())
}

fn phase_end(op: &Operator, cpu0: f64) -> Usage {
    Usage {
        cpu: registry::process_cpu_seconds(op.pid()) - cpu0,
        rss: peak_rss_mib(op.pid()),
    }
}

/// Waits until every site in `names` reported `digest`; returns seconds from `t0` per site.
async fn arrivals_of(
    arrivals: &Arrivals,
    names: &[String],
    digest: &str,
    t0: Instant,
    timeout: Duration,
) -> Vec<(String, f64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<(String, f64)> = {
            let a = arrivals.lock().expect("arrivals");
            names
                .iter()
                .filter_map(|n| {
                    a.get(&(n.clone(), digest.to_string()))
                        .map(|t| (n.clone(), t.saturating_duration_since(t0).as_secs_f64()))
                })
                .collect()
        };
        if got.len() == names.len() {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {} of {} sites got {digest}",
            got.len(),
            names.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
        v.get(i).copied().unwrap_or_default()
    };
    (at(0.5), at(0.99), v.last().copied().unwrap_or_default())
}

fn tier_line(tier: &str, times: &[(String, f64)], prefix: &str) -> f64 {
    let v: Vec<f64> = times
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|t| t.1)
        .collect();
    let n = v.len();
    let (p50, p99, max) = percentiles(v);
    println!("| {tier} ({n}) | {p50:.2} | {p99:.2} | {max:.2} |");
    max
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Blob bytes HQ and each region served so far.
fn served(tree: &Tree) -> (u64, Vec<u64>) {
    (
        tree.hq.blob_bytes_served(),
        tree.regions
            .iter()
            .map(|(r, _)| r.blob_bytes_served())
            .collect(),
    )
}

fn print_served(tree: &Tree, before: &(u64, Vec<u64>), unique: u64) {
    let now = served(tree);
    println!(
        "HQ served {:.2} MiB of blobs (the image's new blobs: {:.2} MiB, i.e. {:.2} copies)",
        mib(now.0 - before.0),
        mib(unique),
        (now.0 - before.0) as f64 / unique.max(1) as f64
    );
    let per: Vec<String> = now
        .1
        .iter()
        .zip(&before.1)
        .map(|(a, b)| format!("{:.1}", mib(a - b)))
        .collect();
    println!(
        "each region served (MiB, to its {} cities): {}",
        tree.regions.first().map_or(0, |r| r.1.len()),
        per.join(" ")
    );
}

/// Events of the policy so far, by reason (with their repeat counts).
fn events(c: &Cluster) -> std::collections::BTreeMap<String, u64> {
    let out = c.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=tree",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    let mut by = std::collections::BTreeMap::new();
    for e in v["items"].as_array().into_iter().flatten() {
        let reason = e["reason"].as_str().unwrap_or_default().to_string();
        *by.entry(reason).or_default() += e["count"].as_u64().unwrap_or(1).max(1);
    }
    by
}

/// The Events recorded since `before`, e.g. `Synced 1, DestinationFailed 6`.
fn new_events(c: &Cluster, before: &std::collections::BTreeMap<String, u64>) -> String {
    let now = events(c);
    let parts: Vec<String> = now
        .iter()
        .filter_map(|(r, n)| {
            let d = n - before.get(r).copied().unwrap_or_default();
            (d > 0).then(|| format!("{r} {d}"))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn print_status(c: &Cluster) {
    println!("\n$ kubectl get rp");
    print!("{}", c.kubectl_ok(&["get", "rp"]));
    let json = c.kubectl_ok(&["get", "rp", "tree", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    let status = serde_json::to_vec(&v["status"]).unwrap_or_default();
    let longest = v["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["message"].as_str().map_or(0, str::len))
        .max()
        .unwrap_or_default();
    for cond in v["status"]["conditions"].as_array().into_iter().flatten() {
        if cond["type"] == "Degraded" && cond["status"] == "True" {
            println!("Degraded: {}", cond["message"].as_str().unwrap_or_default());
        }
    }
    println!(
        "policy object {} bytes, of which status {} bytes ({} destinations listed; longest condition message {} bytes); the API server's limit is 1.5 MiB",
        json.len(),
        status.len(),
        v["status"]["destinations"].as_array().map_or(0, Vec::len),
        longest
    );
}

struct Args {
    regions: usize,
    cities: usize,
    outage: bool,
}

fn args() -> Args {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |flag: &str, default: usize| {
        a.iter()
            .position(|x| x == flag)
            .and_then(|i| a.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(default)
    };
    Args {
        regions: num("--regions", 10),
        cities: num("--cities", 10),
        outage: !a.iter().any(|x| x == "--no-outage"),
    }
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(a));
}

async fn run(a: Args) {
    registry::require_tools();
    let logs = registry::TempDir::new("tree-bench");
    let c = Cluster::start();
    c.install_crds();
    let op = Operator::start_with(
        &c,
        logs.path(),
        &[],
        &[("FLOTILLA_RECEIVER_TOKEN", TOKEN), ("RUST_LOG", "info")],
    );
    let arrivals: Arrivals = Arc::default();
    let port = receiver(arrivals.clone()).await;
    let started = Instant::now();
    let tree = start_tree(port, &op, a.regions, a.cities).await;
    let names: Vec<String> = tree.all().map(|(n, _)| n).collect();
    eprintln!(
        "{} registries up in {:.1} s",
        names.len() + 1,
        started.elapsed().as_secs_f64()
    );

    // An earlier image, everywhere after the first full sync.
    let p = Pusher::new(&tree.hq.url());
    let base = layer(&[("base.bin", &pseudo_random(1, BASE))]);
    let (d1, _) = push_image(&p, "v1", 1, &base).await;
    let t = Instant::now();
    c.apply(&tree.policy());
    arrivals_of(&arrivals, &names, &d1, t, WAIT).await;
    eprintln!(
        "first full sync: v1 at every site in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    cluster::wait_for("the first sync's status", WAIT, || {
        c.jsonpath("rp/tree", "{.status.destinationsInSync}") == format!("{0}/{0}", names.len())
    });

    // The floor, then the push.
    let urls: Vec<String> = tree.all().map(|(_, r)| r.url()).collect();
    let mut sizes: Vec<usize> = NEW_LAYERS.to_vec();
    sizes.push(700);
    let load0 = load();
    let floor_s = floor(&urls, &sizes, 500).await;
    let before = served(&tree);
    let ev0 = events(&c);
    let cpu0 = phase_start(&op);
    let (d2, unique) = push_image(&p, "v2", 2, &base).await;
    let t0 = Instant::now();
    let times = arrivals_of(&arrivals, &names, &d2, t0, WAIT).await;
    let push_use = phase_end(&op, cpu0);
    println!(
        "\ntree: HQ -> {} regions -> {} cities; image v2 {:.1} MiB, {:.2} MiB of it new (3 layers + config; the 8 MiB base is shared with v1); load {load0} -> {}",
        a.regions,
        a.regions * a.cities,
        mib((BASE + NEW_LAYERS.iter().sum::<usize>()) as u64),
        mib(unique),
        load()
    );
    println!(
        "physical floor: the new blobs' sizes PUT by one process into all {} registries at once: {floor_s:.2} s",
        urls.len()
    );
    println!("\n| tier | p50 (s) | p99 (s) | max (s) |\n|---|---:|---:|---:|");
    tier_line("regions", &times, "region-");
    let cities_max = tier_line("cities", &times, "city-");
    println!(
        "all cities complete {cities_max:.2} s after the push: {:.2}x the floor (goal 1.5x)",
        cities_max / floor_s
    );
    print_served(&tree, &before, unique);
    println!(
        "operator: peak RSS {:.1} MiB, CPU {:.2} s",
        push_use.rss, push_use.cpu
    );
    for (n, r) in tree.all() {
        assert!(
            registry::complete(&r.url(), REPO, "v2").await,
            "{n} lacks part of v2"
        );
    }
    cluster::wait_for("the push run's status", WAIT, || {
        c.jsonpath(
            "rp/tree",
            "{.status.conditions[?(@.type==\"Syncing\")].status}",
        ) == "False"
    });
    println!("Events of the push: {}", new_events(&c, &ev0));
    print_status(&c);

    noop(&c, &op, &tree).await;
    if a.outage {
        outage(&c, &op, tree, &p, &base, &arrivals, &times).await;
    }
    let kept = std::env::temp_dir().join("flotilla-tree-bench-operator.log");
    if std::fs::write(&kept, op.log()).is_ok() {
        eprintln!("the operator's log: {}", kept.display());
    }
}

/// A requested full sync when every site is in sync already.
async fn noop(c: &Cluster, op: &Operator, tree: &Tree) {
    let before = served(tree);
    let requests0: usize = tree
        .all()
        .map(|(_, r)| r.log().lines().count())
        .sum::<usize>()
        + tree.hq.log().lines().count();
    let cpu0 = phase_start(op);
    let t = Instant::now();
    c.kubectl_ok(&[
        "annotate",
        "rp",
        "tree",
        "--overwrite",
        "flotilla.dev/sync-requested=noop",
    ]);
    cluster::wait_for("the no-op sync", WAIT, || {
        c.jsonpath("rp/tree", "{.status.handledSyncRequest}") == "noop"
    });
    let wall = t.elapsed().as_secs_f64();
    let u = phase_end(op, cpu0);
    let requests: usize = tree
        .all()
        .map(|(_, r)| r.log().lines().count())
        .sum::<usize>()
        + tree.hq.log().lines().count()
        - requests0;
    let now = served(tree);
    println!(
        "\nno-op resync of the whole tree: {wall:.2} s from the request to the status ({}), {requests} requests to the 111 registries, blob bytes served {} (HQ) + {} (regions); operator peak RSS {:.1} MiB, CPU {:.2} s",
        c.jsonpath("rp/tree", "{.status.lastSync.result}"),
        now.0 - before.0,
        now.1.iter().sum::<u64>() - before.1.iter().sum::<u64>(),
        u.rss,
        u.cpu
    );
}

/// A push during which the first city of every region is stopped, then started again.
async fn outage(
    c: &Cluster,
    op: &Operator,
    mut tree: Tree,
    p: &Pusher,
    base: &(Vec<u8>, String),
    arrivals: &Arrivals,
    clean: &[(String, f64)],
) {
    let ev0 = events(c);
    let cpu0 = phase_start(op);
    let before = served(&tree);
    let (d3, unique) = push_image(p, "v3", 3, base).await;
    let t0 = Instant::now();
    // Stopped as soon as the first region holds the image: their region is about to feed them.
    let regions: Vec<String> = (0..tree.regions.len()).map(region_name).collect();
    let first = regions.first().cloned().into_iter().collect::<Vec<_>>();
    arrivals_of(arrivals, &first, &d3, t0, WAIT).await;
    let stopped: Vec<String> = (0..tree.regions.len()).map(|r| city_name(r, 0)).collect();
    for (_, cities) in tree.regions.iter_mut() {
        cities[0].kill();
    }
    let killed_at = t0.elapsed().as_secs_f64();
    let others: Vec<String> = tree
        .all()
        .map(|(n, _)| n)
        .filter(|n| !stopped.contains(n))
        .collect();
    let times = arrivals_of(arrivals, &others, &d3, t0, WAIT).await;
    let rest_done = t0.elapsed().as_secs_f64();
    cluster::wait_for("the outage run's status", WAIT, || {
        c.jsonpath(
            "rp/tree",
            "{.status.conditions[?(@.type==\"Syncing\")].status}",
        ) == "False"
    });
    println!(
        "\nwhile {} cities are down ({:.2} s after the push):",
        stopped.len(),
        t0.elapsed().as_secs_f64()
    );
    print_status(c);
    for (_, cities) in tree.regions.iter_mut() {
        cities[0].restart().await;
    }
    let restarted = Instant::now();
    let back = arrivals_of(arrivals, &stopped, &d3, restarted, WAIT).await;
    let u = phase_end(op, cpu0);
    println!(
        "\noutage: {} cities (one per region) stopped {killed_at:.2} s after the push of v3, started again at {rest_done:.2} s, once the other {} sites held v3",
        stopped.len(),
        others.len()
    );
    println!("\n| tier | p50 (s) | p99 (s) | max (s) |\n|---|---:|---:|---:|");
    tier_line("regions", &times, "region-");
    let busy = tier_line("cities still up", &times, "city-");
    let (_, _, clean_max) = percentiles(
        clean
            .iter()
            .filter(|(n, _)| n.starts_with("city-") && !stopped.contains(n))
            .map(|t| t.1)
            .collect(),
    );
    println!(
        "the cities still up: max {busy:.2} s with the outage against {clean_max:.2} s for the same cities in the clean push"
    );
    let (p50, _, max) = percentiles(back.iter().map(|t| t.1).collect());
    println!(
        "stopped cities converged {p50:.2} s (p50) / {max:.2} s (max) after they were started again"
    );
    print_served(&tree, &before, unique);
    println!("operator: peak RSS {:.1} MiB, CPU {:.2} s", u.rss, u.cpu);
    cluster::wait_for("the policy back in sync", WAIT, || {
        c.jsonpath(
            "rp/tree",
            "{.status.conditions[?(@.type==\"Ready\")].status}",
        ) == "True"
    });
    println!(
        "Events from the push to the policy back in sync: {}",
        new_events(c, &ev0)
    );
    print_status(c);
}
