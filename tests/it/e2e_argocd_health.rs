//! examples/argocd/health.lua, run in the Lua VM Argo CD embeds (gopher-lua, through
//! e2e/tools/lua-health), on the live Registry and ReplicationPolicy objects of a real control
//! plane and operator in each state: Progressing (no status yet), Healthy (in sync, fleet
//! ready), Degraded (a destination down, a Registry missing its S3 Secret) and Suspended.
//! The same running operator's `/metrics` must export every metric family (and every label
//! they group by) that the chart's alerts and dashboard use.

use crate::support::chart_metrics;
use crate::support::cluster;
use crate::support::packaging;
use crate::support::registry;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::{Cluster, Operator, root, wait_for};
use registry::{Pusher, Registry, free_port, layer, require_tools};

const WAIT: Duration = Duration::from_secs(90);

/// Argo CD's verdict on the live object `resource`: (status, message).
fn health(c: &Cluster, resource: &str) -> (String, String) {
    let json = c.kubectl_ok(&["get", resource, "-o", "json"]);
    let mut child = Command::new(packaging::tool("lua-health"))
        .arg(root().join("examples/argocd/health.lua"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lua-health");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(json.as_bytes())
        .expect("write object");
    let out = child.wait_with_output().expect("lua-health");
    assert!(
        out.status.success(),
        "health.lua failed on {resource}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("lua-health JSON");
    (
        v["status"].as_str().unwrap_or_default().to_string(),
        v["message"].as_str().unwrap_or_default().to_string(),
    )
}

fn policy(name: &str, source: &str, dest: &str, extra: &str) -> String {
    format!(
        "apiVersion: flotilla.dev/v1alpha1\nkind: ReplicationPolicy\nmetadata: {{name: {name}}}\nspec:\n  source: {{url: \"{source}\", insecure: true}}\n  destinations:\n  - {{name: d, url: \"{dest}\", insecure: true}}\n  retry: {{maxAttempts: 1}}\n{extra}"
    )
}

fn wait_health(c: &Cluster, resource: &str, want: &str) -> String {
    let mut last = (String::new(), String::new());
    wait_for(&format!("{resource} to be {want}"), WAIT, || {
        last = health(c, resource);
        last.0 == want
    });
    last.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_health_script_reads_live_objects_in_every_state() {
    require_tools();
    let c = Cluster::start();
    c.install_crds();
    let src = Registry::start().await;
    let dest = Registry::start().await;
    Pusher::new(&src.url())
        .image(
            "app",
            Some("v1"),
            "amd64",
            &[layer(&[("f", b"one")])],
            false,
        )
        .await;

    // Applied before any operator runs: no status yet.
    c.apply(&policy("healthy", &src.url(), &dest.url(), ""));
    c.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: fleet}\nspec:\n  storage: {emptyDir: {}}\n",
    );
    let (status, message) = health(&c, "rp/healthy");
    assert_eq!(status, "Progressing", "{message}");
    let (status, _) = health(&c, "registry/fleet");
    assert_eq!(status, "Progressing");

    let logs = std::env::temp_dir().join(format!("flotilla-e2e-argocd-{}", std::process::id()));
    std::fs::create_dir_all(&logs).expect("log dir");
    let op = Operator::start(&c, &logs);
    let closed = format!("http://127.0.0.1:{}", free_port());
    c.apply(&policy("degraded", &src.url(), &closed, ""));
    c.apply(&policy(
        "suspended",
        &src.url(),
        &dest.url(),
        "  suspend: true\n",
    ));
    c.apply(
        "apiVersion: flotilla.dev/v1alpha1\nkind: Registry\nmetadata: {name: no-keys}\nspec:\n  storage:\n    s3: {bucket: fleet-bucket, endpoint: \"http://127.0.0.1:1\", credentialsSecretRef: {name: missing}}\n",
    );

    let m = wait_health(&c, "rp/healthy", "Healthy");
    assert!(m.contains("InSync"), "{m}");
    wait_health(&c, "registry/fleet", "Healthy");
    let m = wait_health(&c, "rp/degraded", "Degraded");
    assert!(m.contains("127.0.0.1"), "names the destination: {m}");
    let m = wait_health(&c, "registry/no-keys", "Degraded");
    assert!(m.contains("missing"), "names the Secret: {m}");
    let m = wait_health(&c, "rp/suspended", "Suspended");
    assert!(m.contains("suspend"), "{m}");

    // No alert or panel on a metric the operator does not export.
    let exposition = op.get("/metrics").expect("/metrics");
    let exported = chart_metrics::exported_families(&exposition);
    let mut used: Vec<String> = chart_metrics::alerts()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    used.extend(chart_metrics::dashboard_queries());
    for expr in &used {
        for family in chart_metrics::families(expr) {
            assert!(
                exported.contains(&family),
                "{family} (used by `{expr}`) is not exported by the operator"
            );
        }
        // Every label an expression groups by appears on a sample of its families.
        if let Some(by) = expr.split("by (").nth(1).and_then(|r| r.split(')').next()) {
            for label in by.split(',').map(str::trim).filter(|l| *l != "le") {
                let on_sample = chart_metrics::families(expr).iter().any(|f| {
                    exposition
                        .lines()
                        .filter(|l| l.starts_with(f.as_str()) && !l.starts_with('#'))
                        .any(|l| l.contains(&format!("{label}=\"")))
                });
                let has_samples = chart_metrics::families(expr).iter().any(|f| {
                    exposition
                        .lines()
                        .any(|l| l.starts_with(f.as_str()) && !l.starts_with('#'))
                });
                assert!(
                    on_sample || !has_samples,
                    "label {label} of `{expr}` is on no exported sample"
                );
            }
        }
    }
}
