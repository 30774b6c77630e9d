//! Side-by-side benchmark: `flotilla sync` 1→3 against `skopeo sync` (one destination after
//! another), `crane copy` and `regsync once`, each on identical fresh destination registries,
//! reading through a counting proxy in front of one shared source.
//!
//! Run: `cargo bench --bench peers -- small|medium [--tools flotilla,skopeo,crane,regsync]
//! [--runs N]`. With `--runs N` every tool runs N times (fresh destinations each time) and the
//! table shows the medians; the load average is printed with the figures (2-core machines
//! shared with compilers give noisy wall times: compare tools of the same run).
//! `FLOTILLA_BIN=<path>` runs another build of flotilla (to compare two builds).
//! crane and regsync are built from their Go modules into `~/.cache/flotilla/bin/<tool>-<version>/`.

#[path = "../tests/it/support/ports.rs"]
mod ports;
#[path = "../tests/it/support/registry.rs"]
mod registry;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use registry::*;

const CRANE_MODULE: &str = "github.com/google/go-containerregistry/cmd/crane";
const CRANE_VERSION: &str = "v0.22.1";
const REGSYNC_MODULE: &str = "github.com/regclient/regclient/cmd/regsync";

struct Shape {
    repos: usize,
    tags: usize,
    base: usize,
    per_repo: usize,
    per_tag: usize,
}

fn shape(name: &str) -> Shape {
    const MIB: usize = 1024 * 1024;
    match name {
        "medium" => Shape {
            repos: 8,
            tags: 4,
            base: 50 * MIB,
            per_repo: 20 * MIB,
            per_tag: 25 * MIB,
        },
        _ => Shape {
            repos: 4,
            tags: 3,
            base: 5 * MIB,
            per_repo: 2 * MIB,
            per_tag: MIB,
        },
    }
}

fn cache_bin(tool: &str, version: &str) -> PathBuf {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    PathBuf::from(home)
        .join(".cache/flotilla/bin")
        .join(format!("{tool}-{version}"))
}

/// Builds `module@version` into the cache unless present; returns the binary.
fn go_tool(tool: &str, module: &str, version: &str) -> PathBuf {
    let dir = cache_bin(tool, version);
    let bin = dir.join(tool);
    if bin.exists() {
        return bin;
    }
    eprintln!("building {module}@{version} into {}", dir.display());
    let st = Command::new("go")
        .args(["install", &format!("{module}@{version}")])
        .env("GOBIN", &dir)
        .status()
        .expect("go is needed to build the peer tools");
    assert!(st.success(), "go install {module}@{version} failed");
    bin
}

fn latest(module: &str) -> String {
    let out = Command::new("go")
        .args([
            "list",
            "-m",
            "-f",
            "{{.Version}}",
            &format!("{}@latest", module_root(module)),
        ])
        .output()
        .expect("go list");
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !v.is_empty(),
        "cannot resolve the latest version of {module}"
    );
    v
}

fn module_root(module: &str) -> &str {
    module.split("/cmd/").next().unwrap_or(module)
}

/// What a tool's processes used: the largest peak RSS (KiB) and the CPU seconds (user +
/// system) of all of them.
#[derive(Clone, Copy, Default)]
struct Usage {
    rss_kib: u64,
    cpu: f64,
}

impl Usage {
    fn and(self, other: Usage) -> Usage {
        Usage {
            rss_kib: self.rss_kib.max(other.rss_kib),
            cpu: self.cpu + other.cpu,
        }
    }
}

/// Runs a command under `/usr/bin/time`, returning its peak RSS and CPU time.
fn timed(cmd: &mut Command, dir: &Path) -> Usage {
    let rss_file = dir.join(format!("rss-{}", rand::random::<u32>()));
    let prog = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let out = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M %U %S")
        .arg("-o")
        .arg(&rss_file)
        .arg(&prog)
        .args(&args)
        .output()
        .expect("/usr/bin/time");
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    }
    if !out.status.success() {
        eprintln!(
            "warning: {} failed: {}{}",
            prog.to_string_lossy(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(&rss_file).unwrap_or_default();
    let fields: Vec<f64> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match fields.as_slice() {
        [rss, user, system] => Usage {
            rss_kib: *rss as u64,
            cpu: user + system,
        },
        _ => Usage::default(),
    }
}

struct Corpus {
    /// (repo, tag, manifest digest)
    tags: Vec<(String, String, String)>,
    unique: u64,
}

async fn build_corpus(src: &Registry, s: &Shape) -> Corpus {
    let p = Pusher::new(&src.url());
    let base = layer(&[("base/blob", &pseudo_random(1, s.base))]);
    let mut tags = Vec::new();
    for r in 0..s.repos {
        let repo = format!("bench/app{r}");
        let rl = layer(&[("repo/blob", &pseudo_random(1000 + r as u64, s.per_repo))]);
        for t in 0..s.tags {
            let tl = layer(&[(
                "tag/blob",
                &pseudo_random(100_000 + (r * 100 + t) as u64, s.per_tag),
            )]);
            let tag = format!("v1.{t}.0");
            let m = p
                .image(
                    &repo,
                    Some(&tag),
                    "amd64",
                    &[base.clone(), rl.clone(), tl],
                    false,
                )
                .await;
            tags.push((repo.clone(), tag, sha256(&m)));
        }
    }
    Corpus {
        tags,
        unique: p.unique_blob_bytes(),
    }
}

#[derive(Default)]
struct Row {
    tool: String,
    wall: f64,
    read: u64,
    rss_kib: u64,
    /// CPU seconds of the tool's processes during the sync.
    tool_cpu: f64,
    /// CPU seconds of the source and destination registries during the sync.
    registry_cpu: f64,
    noop_wall: f64,
    /// CPU seconds of the registries during the no-op re-sync.
    noop_registry_cpu: f64,
    /// CPU seconds of the tool's processes during the no-op re-sync.
    noop_tool_cpu: f64,
    noop_read: u64,
    ok: usize,
    total: usize,
}

async fn digests_ok(dests: &[Registry], corpus: &Corpus) -> usize {
    let c = reqwest::Client::new();
    let mut ok = 0;
    for d in dests {
        for (repo, tag, digest) in &corpus.tags {
            let r = c
                .head(format!("{}/v2/{repo}/manifests/{tag}", d.url()))
                .header("accept", "application/vnd.oci.image.manifest.v1+json")
                .send()
                .await;
            if let Ok(r) = r
                && r.headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    == Some(digest.as_str())
            {
                ok += 1;
            }
        }
    }
    ok
}

fn repos(corpus: &Corpus) -> Vec<String> {
    let mut r: Vec<String> = corpus.tags.iter().map(|t| t.0.clone()).collect();
    r.dedup();
    r
}

/// One pass of a tool from `src` (host) to `dests`; returns what its processes used.
fn pass(
    tool: &str,
    bins: &Bins,
    src: &str,
    dests: &[Registry],
    corpus: &Corpus,
    dir: &Path,
) -> Usage {
    match tool {
        "flotilla" => {
            let dl: Vec<(&str, String, Option<&str>)> = ["a", "b", "c"]
                .iter()
                .zip(dests)
                .map(|(n, d)| (*n, d.url(), None))
                .collect();
            let pol = policy(dir, &format!("http://{src}"), &dl, "");
            timed(
                Command::new(
                    std::env::var("FLOTILLA_BIN").unwrap_or_else(|_| flotilla_bin().into()),
                )
                .args(["sync", "-f", pol.to_str().unwrap_or_default()]),
                dir,
            )
        }
        "skopeo" => {
            let mut y = format!("{src}:\n  tls-verify: false\n  images:\n");
            for r in repos(corpus) {
                y.push_str(&format!("    {r}: []\n"));
            }
            let file = dir.join("skopeo-src.yaml");
            std::fs::write(&file, y).expect("yaml");
            dests
                .iter()
                .map(|d| {
                    timed(
                        Command::new("skopeo")
                            .args(["sync", "--all", "--preserve-digests", "--src", "yaml"])
                            .args(["--dest", "docker", "--dest-tls-verify=false"])
                            .arg(&file)
                            // skopeo keeps only the last path component without --scoped.
                            .arg(format!("{}/bench", d.host())),
                        dir,
                    )
                })
                .fold(Usage::default(), Usage::and)
        }
        "crane" => {
            // One `crane copy --all-tags` per repository and destination, as users script it.
            let mut used = Usage::default();
            for d in dests {
                for repo in repos(corpus) {
                    used = used.and(timed(
                        Command::new(&bins.crane)
                            .args(["copy", "--insecure", "--all-tags"])
                            .arg(format!("{src}/{repo}"))
                            .arg(format!("{}/{repo}", d.host())),
                        dir,
                    ));
                }
            }
            used
        }
        "regsync" => {
            let mut y = format!("version: 1\ncreds:\n  - registry: {src}\n    tls: disabled\n");
            for d in dests {
                y.push_str(&format!("  - registry: {}\n    tls: disabled\n", d.host()));
            }
            y.push_str("sync:\n");
            for d in dests {
                for r in repos(corpus) {
                    y.push_str(&format!(
                        "  - source: {src}/{r}\n    target: {}/{r}\n    type: repository\n",
                        d.host()
                    ));
                }
            }
            let file = dir.join("regsync.yaml");
            std::fs::write(&file, y).expect("yaml");
            timed(
                Command::new(&bins.regsync)
                    .args(["once", "-c"])
                    .arg(&file)
                    .args(["-v", "error"]),
                dir,
            )
        }
        other => panic!("unknown tool {other}"),
    }
}

struct Bins {
    crane: PathBuf,
    regsync: PathBuf,
    regsync_version: String,
}

/// The row of several runs of one tool: median times, the largest RSS, the fewest digests
/// that matched.
fn medians(rows: Vec<Row>) -> Row {
    let wall = median(rows.iter().map(|r| r.wall).collect());
    let noop_wall = median(rows.iter().map(|r| r.noop_wall).collect());
    let rss_kib = rows.iter().map(|r| r.rss_kib).max().unwrap_or_default();
    let tool_cpu = median(rows.iter().map(|r| r.tool_cpu).collect());
    let registry_cpu = median(rows.iter().map(|r| r.registry_cpu).collect());
    let noop_registry_cpu = median(rows.iter().map(|r| r.noop_registry_cpu).collect());
    let noop_tool_cpu = median(rows.iter().map(|r| r.noop_tool_cpu).collect());
    let ok = rows.iter().map(|r| r.ok).min().unwrap_or_default();
    let first = rows.into_iter().next().unwrap_or_default();
    Row {
        wall,
        noop_wall,
        rss_kib,
        tool_cpu,
        registry_cpu,
        noop_registry_cpu,
        noop_tool_cpu,
        ok,
        ..first
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let corpus_name = args
        .iter()
        .find(|a| *a == "small" || *a == "medium")
        .cloned()
        .unwrap_or_else(|| "small".into());
    let tools: Vec<String> = args
        .iter()
        .position(|a| a == "--tools")
        .and_then(|i| args.get(i + 1))
        .map(|t| t.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| {
            ["flotilla", "skopeo", "crane", "regsync"]
                .map(String::from)
                .to_vec()
        });
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(&corpus_name, &tools, runs));
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// One sync and one no-op re-sync of `tool` to fresh destinations.
async fn measure(tool: &str, bins: &Bins, src: &Registry, corpus: &Corpus, dir: &Path) -> Row {
    let dests = [
        Registry::start().await,
        Registry::start().await,
        Registry::start().await,
    ];
    let proxy = Proxy::start(&src.url(), Faults::default()).await;
    let served = || {
        proxy
            .stats
            .bytes_served
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let h = proxy.host();
    let registry_cpu = || src.cpu_seconds() + dests.iter().map(Registry::cpu_seconds).sum::<f64>();
    let load_before = load();
    let cpu0 = registry_cpu();
    let start = Instant::now();
    let used = tokio::task::block_in_place(|| pass(tool, bins, &h, &dests, corpus, dir));
    let wall = start.elapsed().as_secs_f64();
    let cpu1 = registry_cpu();
    let read = served();
    let start = Instant::now();
    let noop_used = tokio::task::block_in_place(|| pass(tool, bins, &h, &dests, corpus, dir));
    let noop_wall = start.elapsed().as_secs_f64();
    let cpu2 = registry_cpu();
    eprintln!(
        "  {tool}: sync {wall:.2} s, no-op {noop_wall:.3} s (load {load_before} -> {})",
        load()
    );
    Row {
        tool: match tool {
            "crane" => format!("crane {CRANE_VERSION}"),
            "regsync" => format!("regsync {}", bins.regsync_version),
            "skopeo" => "skopeo 1.9 sync".into(),
            other => other.to_string(),
        },
        wall,
        read,
        rss_kib: used.rss_kib.max(noop_used.rss_kib),
        tool_cpu: used.cpu,
        registry_cpu: cpu1 - cpu0,
        noop_wall,
        noop_registry_cpu: cpu2 - cpu1,
        noop_tool_cpu: noop_used.cpu,
        noop_read: served() - read,
        ok: digests_ok(&dests, corpus).await,
        total: dests.len() * corpus.tags.len(),
    }
}

async fn run(corpus_name: &str, tools: &[String], runs: usize) {
    require_tools();
    let regsync_version = if tools.iter().any(|t| t == "regsync") {
        latest(REGSYNC_MODULE)
    } else {
        String::new()
    };
    let bins = Bins {
        crane: if tools.iter().any(|t| t == "crane") {
            go_tool("crane", CRANE_MODULE, CRANE_VERSION)
        } else {
            PathBuf::new()
        },
        regsync: if tools.iter().any(|t| t == "regsync") {
            go_tool("regsync", REGSYNC_MODULE, &regsync_version)
        } else {
            PathBuf::new()
        },
        regsync_version,
    };
    let src = Registry::start().await;
    let s = shape(corpus_name);
    eprintln!("building the {corpus_name} corpus...");
    let corpus = build_corpus(&src, &s).await;
    let dir = TempDir::new("bench");
    let mut rows = Vec::new();
    let load_start = load();
    for tool in tools {
        eprintln!("running {tool}...");
        let mut all = Vec::new();
        for _ in 0..runs {
            all.push(measure(tool, &bins, &src, &corpus, dir.path()).await);
        }
        rows.push(medians(all));
    }
    println!(
        "corpus {corpus_name}: {} repositories, {} tags, {:.1} MiB unique blob bytes; 1 source -> 3 destinations (Distribution 2.8.2 on loopback)",
        s.repos,
        corpus.tags.len(),
        mib(corpus.unique)
    );
    println!(
        "{}load average (1 min) {load_start} at the start, {} at the end",
        if runs > 1 {
            format!("median of {runs} runs per tool; ")
        } else {
            String::new()
        },
        load()
    );
    println!(
        "| tool | sync 1->3 (s) | read from source (MiB) | peak RSS (MiB) | tool CPU (s) | registries' CPU (s) | no-op re-sync (s) | no-op read (MiB) | no-op registries' CPU (s) | digests ok |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {:.2} | {:.1} | {:.1} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {}/{} |",
            r.tool,
            r.wall,
            mib(r.read),
            r.rss_kib as f64 / 1024.0,
            r.tool_cpu,
            r.registry_cpu,
            r.noop_wall,
            mib(r.noop_read),
            r.noop_registry_cpu,
            r.ok,
            r.total
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for r in &rows {
        println!(
            "{}: the registries and the tool used {:.1} s of CPU for 1->3 and {:.2} s for the no-op: at least {:.1} s and {:.2} s of wall time on {cores} cores (the counting proxy, in this process, not included)",
            r.tool,
            r.tool_cpu + r.registry_cpu,
            r.noop_tool_cpu + r.noop_registry_cpu,
            (r.tool_cpu + r.registry_cpu) / cores as f64,
            (r.noop_tool_cpu + r.noop_registry_cpu) / cores as f64,
        );
    }
    if let (Some(f), Some(sk)) = (
        rows.iter().find(|r| r.tool == "flotilla"),
        rows.iter().find(|r| r.tool.starts_with("skopeo")),
    ) {
        println!(
            "flotilla vs skopeo: {:.1}x faster 1->3, {:.1}x faster no-op re-sync",
            sk.wall / f.wall,
            sk.noop_wall / f.noop_wall
        );
    }
}
