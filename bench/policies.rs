//! Many ReplicationPolicies on one operator: N policies (default 10,000), each copying one
//! repository between two real `docker-registry` processes, applied to a real control plane
//! (kwok nodes) by 4 `kubectl create` processes at once. Prints how long the apply took, when
//! every policy was Ready (after the apply started and after it ended), the operator's peak
//! RSS and CPU seconds, and the requests the registries served.
//!
//! Run: `cargo bench --bench policies -- [N]`. Targets (issue 15): all Ready within 5 minutes
//! of the apply, peak RSS ≤ 150 MiB.

#[path = "../tests/it/support/cluster.rs"]
mod cluster;
#[path = "../tests/it/support/ports.rs"]
mod ports;
#[path = "../tests/it/support/registry.rs"]
mod registry;

use std::time::{Duration, Instant};

use cluster::{Cluster, Operator};

const NAMESPACE: &str = "bench";
const WRITERS: usize = 4;

fn policies_yaml(from: usize, to: usize, src: &str, dst: &str) -> String {
    let mut out = String::new();
    for i in from..to {
        out.push_str(&format!(
            "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: p-{i:05}, namespace: {NAMESPACE}}}\nspec:\n  source: {{url: '{src}', insecure: true}}\n  destinations:\n  - {{name: d, url: '{dst}', insecure: true}}\n  repositories: {{include: [app]}}\n  trigger: {{onPush: false}}\n---\n"
        ));
    }
    out
}

/// (VmHWM, utime + stime) of a process: peak RSS in KiB and CPU seconds.
fn usage(pid: u32) -> Option<(u64, f64)> {
    Some((
        registry::peak_rss_kib(pid)?,
        registry::process_cpu_seconds(pid),
    ))
}

/// How many policies have Ready=True, and how many exist.
fn ready(c: &Cluster) -> (usize, usize) {
    let out = c.kubectl_ok(&[
        "get",
        "replicationpolicies",
        "-n",
        NAMESPACE,
        "-o",
        r#"jsonpath={range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}"#,
    ]);
    let lines: Vec<&str> = out.lines().collect();
    (lines.iter().filter(|l| **l == "True").count(), lines.len())
}

fn create(c: &Cluster, yaml: &str) {
    let out = c.kubectl_stdin(&["create", "-f", "-", "-o", "name"], yaml);
    assert!(
        out.status.success(),
        "kubectl create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    registry::require_tools();
    let (src, dst) = (
        registry::Registry::start().await,
        registry::Registry::start().await,
    );
    let layer = registry::layer(&[("app/data", b"one small file")]);
    registry::Pusher::new(&src.url())
        .image("app", Some("v1"), "amd64", &[layer], false)
        .await;
    let c = Cluster::start();
    c.install_crds();
    c.kubectl_ok(&["create", "namespace", NAMESPACE]);
    let logs = std::env::temp_dir().join(format!("flotilla-bench-policies-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("log dir");
    let op = Operator::start(&c, &logs);
    let (_, cpu_idle) = usage(op.pid()).expect("operator usage");

    println!(
        "{n} policies, each app:v1 {} -> {}, {WRITERS} writers",
        src.url(),
        dst.url()
    );
    let started = Instant::now();
    let per = n.div_ceil(WRITERS);
    let batches: Vec<String> = (0..WRITERS)
        .map(|w| policies_yaml(w * per, ((w + 1) * per).min(n), &src.url(), &dst.url()))
        .collect();
    let mut peak_kib = 0;
    let (applied, all_ready) = std::thread::scope(|scope| {
        let writers: Vec<_> = batches
            .iter()
            .map(|yaml| scope.spawn(|| create(&c, yaml)))
            .collect();
        let mut applied: Option<Duration> = None;
        let mut last_print = Instant::now();
        let deadline = Duration::from_secs(1800);
        loop {
            if applied.is_none() && writers.iter().all(|w| w.is_finished()) {
                applied = Some(started.elapsed());
                println!("applied in {:.1}s", started.elapsed().as_secs_f64());
            }
            if let Some((kib, _)) = usage(op.pid()) {
                peak_kib = peak_kib.max(kib);
            }
            let (ok, total) = ready(&c);
            if last_print.elapsed() > Duration::from_secs(15) {
                println!(
                    "  {:>6.1}s: {ok}/{total} Ready, operator peak RSS {:.0} MiB",
                    started.elapsed().as_secs_f64(),
                    peak_kib as f64 / 1024.0
                );
                last_print = Instant::now();
            }
            if let (Some(applied), true) = (applied, ok == n) {
                return (applied, started.elapsed());
            }
            assert!(
                started.elapsed() < deadline,
                "not all Ready after {deadline:?}: {ok}/{total}\n{}",
                op.log()
                    .lines()
                    .rev()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    });
    let (hwm, cpu) = usage(op.pid()).expect("operator usage");
    println!(
        "\n| policies | apply | all Ready after apply start | after apply end | operator peak RSS | operator CPU |"
    );
    println!("|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.1} s | {:.1} s | {:.1} s | {:.0} MiB | {:.1} s |",
        applied.as_secs_f64(),
        all_ready.as_secs_f64(),
        (all_ready - applied).as_secs_f64(),
        hwm.max(peak_kib) as f64 / 1024.0,
        cpu - cpu_idle
    );
    println!("targets: all Ready within 300 s of the apply, peak RSS <= 150 MiB");
}
