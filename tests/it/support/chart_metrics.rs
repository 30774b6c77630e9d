//! The metrics the chart's monitoring objects use: the PrometheusRule's alert expressions and
//! the Grafana dashboard's panel queries, rendered by the real `helm`.
#![allow(dead_code)]

use super::tools;
pub use tools::tool;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `helm template` of the chart with the monitoring objects on, one template at a time.
pub fn render(template: &str) -> serde_yaml::Value {
    let out = Command::new(tool("helm"))
        .args(["template", "t"])
        .arg(repo().join("charts/flotilla"))
        .args([
            "--set",
            "prometheusRule.enabled=true",
            "--set",
            "grafanaDashboard.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
            "--show-only",
            template,
        ])
        .output()
        .expect("run helm");
    assert!(
        out.status.success(),
        "helm template {template}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::from_slice(&out.stdout).expect("rendered YAML")
}

/// The rendered PrometheusRule's `spec.groups`.
pub fn rule_groups() -> serde_yaml::Value {
    render("templates/prometheusrule.yaml")["spec"]["groups"].clone()
}

/// Every alert: (name, expression).
pub fn alerts() -> Vec<(String, String)> {
    let groups = rule_groups();
    groups
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_sequence().cloned().unwrap_or_default())
        .map(|r| {
            (
                r["alert"].as_str().unwrap_or_default().to_string(),
                r["expr"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The rendered dashboard JSON (from its ConfigMap).
pub fn dashboard() -> serde_json::Value {
    let cm = render("templates/grafana-dashboard.yaml");
    let text = cm["data"]["flotilla.json"].as_str().expect("flotilla.json");
    serde_json::from_str(text).expect("dashboard JSON")
}

/// Every query of the dashboard's panels.
pub fn dashboard_queries() -> Vec<String> {
    dashboard()["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .collect()
}

/// The `flotilla_*` metric families an expression names (`_total`, `_bucket`, `_sum` and
/// `_count` suffixes taken off).
pub fn families(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(pos) = expr[i..].find("flotilla_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &expr[start..end];
        let family = ["_total", "_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        out.insert(family.to_string());
        i = end;
    }
    out
}

/// The families (`# TYPE` lines) of an OpenMetrics exposition.
pub fn exported_families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Writes the rules file promtool reads into `dir`.
pub fn write_rules(dir: &Path) -> PathBuf {
    let path = dir.join("rules.yaml");
    let mut doc = serde_yaml::Mapping::new();
    doc.insert("groups".into(), rule_groups());
    std::fs::write(&path, serde_yaml::to_string(&doc).expect("yaml")).expect("write rules");
    path
}
